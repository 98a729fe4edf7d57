"""Suggest HS 2022 subheadings for a description, and measure how well a declared code fits it.

:class:`HSSuggester` is a retrieval index over the nomenclature texts shipped in the repository:

* one document per HS 2022 subheading (``dualuse/data/hs2022.csv``: heading text + subheading text);
* the English EU Combined Nomenclature texts (``models/training/nomenclature/cn8_2023_en.csv``), each a
  document of its HS-6 (the German, French and Dutch texts add nothing measurable and double the cost);
* the curated training lines (``models/training/curated/*.csv``) as documents of their declared HS-6,
  except ``evasion`` lines, whose declared code hides the good.

Texts become sublinear TF-IDF vectors of hashed character 3–5-grams inside word boundaries (on
:func:`dualuse.text.normalize`); n-grams in more than ``max_df`` of the documents are dropped. A
subheading's similarity to a description is the best cosine over its documents. Suggestions add
``category_weight`` × the text's probability of the subheading's taxonomy category (what the trained
model knows), so a drone description ranks 8806 first even when the nomenclature wording differs.
Character TF-IDF beat the static embeddings (``models/static``) by a wide margin on held-out curated
lines (4-digit top-3 0.73 against 0.24), so the embeddings are not used; see ``benchmarks/hs_eval.py``.

The index is built from the shipped CSV files on first use (about 3 s on an idle 2-core machine) and
cached as ``.npz`` arrays (``allow_pickle=False``) plus a JSON manifest with sha256 (see
:func:`default_suggester`); nothing is pickled.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.utils.validation import check_is_fitted

from .errors import InvalidArgumentError, ModelLoadError
from .persistence import sha256_file
from .text import normalize

__all__ = ["HSSuggester", "DeclaredScores", "nomenclature_documents", "default_suggester"]

logger = logging.getLogger(__name__)

_TRAINING_DIR = Path(__file__).resolve().parents[1] / "models" / "training"
_FORMAT = "dualuse-hs-index"


@cache
def _hs2022_rows() -> tuple[dict[str, str], ...]:
    text = (resources.files("dualuse") / "data" / "hs2022.csv").read_text(encoding="utf-8")
    return tuple(csv.DictReader(io.StringIO(text)))


def nomenclature_documents(
    folder: Path | None = _TRAINING_DIR, *, languages: tuple[str, ...] = ("en",), curated: bool = True,
    exclude_texts: frozenset[str] = frozenset(),
) -> tuple[list[str], list[str]]:
    """The documents of the default index as ``(texts, hs6_codes)``.

    ``folder`` is the training folder (``models/training``); when it is ``None`` or missing, only the
    packaged HS 2022 texts are used. ``exclude_texts`` leaves out curated lines (cross-fitting).
    """
    from .hs import parse_hs

    rows = _hs2022_rows()
    heading = {r["hscode"]: r["description"] for r in rows if r["level"] == "4"}
    subs = {r["hscode"]: r["description"] for r in rows if r["level"] == "6" and not r["hscode"].startswith("99")}
    texts = [f"{heading.get(c[:4], '')}; {d}" for c, d in subs.items()]
    codes = list(subs)
    if folder is None or not Path(folder).is_dir():
        logger.warning("no training folder at %s: the HS index holds the HS 2022 texts only", folder)
        return texts, codes
    folder = Path(folder)
    for lang in languages:
        path = folder / "nomenclature" / f"cn8_2023_{lang}.csv"
        if not path.is_file():
            logger.warning("missing %s: the HS index is built without it", path)
            continue
        with open(path, encoding="utf-8", newline="") as fh:
            for r in csv.DictReader(fh, delimiter=";"):
                c = r["code"].strip()[:6]
                if c in subs and r["description"].strip():
                    texts.append(r["description"].strip())
                    codes.append(c)
    if curated:
        for path in sorted((folder / "curated").glob("*.csv")):
            with open(path, encoding="utf-8", newline="") as fh:
                for r in csv.DictReader(fh):
                    text = (r.get("text") or "").strip()
                    if not text or r.get("note") == "evasion" or text in exclude_texts:
                        continue
                    code = parse_hs(r.get("hs_code")).hs6
                    if code in subs:
                        texts.append(text)
                        codes.append(code)
    return texts, codes


@dataclass(frozen=True)
class DeclaredScores:
    """Similarities of descriptions to their declared codes, computed within the declared chapter.

    ``s6``: best cosine over the declared subheading's documents (for a 4-digit code: its heading's);
    ``s4``: over the declared heading's; ``s2``: over the declared chapter's (so ``s2 - s6`` is how far
    the declared subheading is from the best one of its own chapter). All 0 for an unknown code.
    """

    s6: np.ndarray
    s4: np.ndarray
    s2: np.ndarray


class HSSuggester(BaseEstimator):
    """Character n-gram TF-IDF retrieval over HS-6 documents (see the module docstring).

    Parameters:
        ngram_range: character n-gram sizes (``char_wb`` analyzer).
        n_features: size of the hashed feature space.
        max_df: n-grams in more than this share of the documents get weight 0 (speed; no measurable loss).
        category_weight: weight of the text's category probability added to a suggestion's score.
        k: number of suggestions.
        batch_size: descriptions scored against the whole index at a time (memory: batch × documents floats).
    """

    def __init__(
        self,
        *,
        ngram_range: tuple[int, int] = (3, 5),
        n_features: int = 2**20,
        max_df: float = 0.05,
        category_weight: float = 0.2,
        k: int = 3,
        batch_size: int = 512,
    ) -> None:
        self.ngram_range = ngram_range
        self.n_features = n_features
        self.max_df = max_df
        self.category_weight = category_weight
        self.k = k
        self.batch_size = batch_size

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        return tags

    # -- building ----------------------------------------------------------------------------
    def _hasher(self) -> HashingVectorizer:
        return HashingVectorizer(
            analyzer="char_wb", ngram_range=tuple(self.ngram_range), n_features=self.n_features,
            alternate_sign=False, norm=None, preprocessor=normalize, dtype=np.float32,
        )

    def fit(self, X: Sequence[str], y: Sequence[str]) -> "HSSuggester":
        """Index documents ``X`` labelled with their 6-digit HS 2022 codes ``y``."""
        texts = [str(t) for t in X]
        codes = np.asarray([str(c) for c in y])
        if len(texts) != len(codes) or not len(texts):
            raise InvalidArgumentError(f"fit needs one HS code per document; got {len(texts)} texts, {len(codes)} codes")
        if not all(len(c) == 6 and c.isdigit() for c in codes):
            raise InvalidArgumentError("fit needs 6-digit HS codes (digits only) as labels")
        order = np.argsort(codes, kind="stable")
        codes = codes[order]
        counts = self._hasher().transform([texts[i] for i in order]).tocsr()
        df = np.bincount(counts.indices, minlength=self.n_features)
        idf = (np.log((1.0 + counts.shape[0]) / (1.0 + df)) + 1.0).astype(np.float32)
        idf[df > self.max_df * counts.shape[0]] = 0.0
        self.idf_ = idf
        self.docs_ = self._weigh(counts)
        uniq, self.doc_code_ = np.unique(codes, return_inverse=True)
        self._finish(uniq)
        return self

    def _weigh(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        x = counts.tocsr().astype(np.float32)
        x.data = 1.0 + np.log(x.data)
        x = x @ sp.diags(self.idf_)
        x.eliminate_zeros()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sp.csr_matrix(sp.diags(1.0 / norms) @ x, dtype=np.float32)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """L2-normalised TF-IDF rows of ``texts`` (the query side of the index)."""
        check_is_fitted(self, "docs_")
        return self._weigh(self._hasher().transform([str(t) for t in texts]))

    # -- retrieval ---------------------------------------------------------------------------
    def similarity(self, texts: Sequence[str] | sp.csr_matrix) -> np.ndarray:
        """(n_texts, n_codes) best cosine of each text over each subheading's documents."""
        q = texts if sp.issparse(texts) else self.transform(texts)
        out = np.empty((q.shape[0], len(self.codes_)), dtype=np.float32)
        for s in range(0, q.shape[0], self.batch_size):
            dense = (q[s : s + self.batch_size] @ self.docs_.T).toarray()
            out[s : s + self.batch_size] = np.maximum.reduceat(dense, self.doc_starts_, axis=1)
        return out

    def suggest(
        self, texts: Sequence[str], category_proba: np.ndarray | None = None, labels: Sequence[str] | None = None,
    ) -> tuple[list[tuple[tuple[str, str, float], ...]], list[tuple[tuple[str, str, float], ...]]]:
        """Top ``k`` subheadings and top ``k`` headings per text, as ``(code, text, score)`` tuples.

        ``category_proba`` (n_texts × len(labels)): the text's category probabilities; each
        subheading's score gets ``category_weight`` × the probability of its category. A heading
        scores as its best subheading. Ties go to the lower code, so results are deterministic.
        """
        check_is_fitted(self, "docs_")
        n = len(texts)
        sugg6: list[tuple[tuple[str, str, float], ...]] = []
        sugg4: list[tuple[tuple[str, str, float], ...]] = []
        if n == 0:
            return sugg6, sugg4
        cat_cols = None
        if category_proba is not None:
            if labels is None:
                raise InvalidArgumentError("category_proba needs the labels of its columns")
            index = {c: j for j, c in enumerate(labels)}
            cat_cols = np.asarray([index.get(c, -1) for c in self.code_category_])
            proba = np.hstack([np.asarray(category_proba, dtype=np.float32), np.zeros((n, 1), np.float32)])
        q = self.transform(texts)
        for s in range(0, n, self.batch_size):
            scores = self.similarity(q[s : s + self.batch_size])
            if cat_cols is not None:
                scores += self.category_weight * proba[s : s + self.batch_size][:, cat_cols]
            head = np.maximum.reduceat(scores, self.heading_starts_, axis=1)
            for top, names, titles, out in ((_top_k(scores, self.k), self.codes_, self.titles_, sugg6),
                                             (_top_k(head, self.k), self.headings_, self.heading_titles_, sugg4)):
                vals = np.round(np.take_along_axis(scores if out is sugg6 else head, top, axis=1), 4)
                for r in range(len(top)):
                    out.append(tuple((str(names[j]), str(titles[j]), float(v)) for j, v in zip(top[r], vals[r])))
        return sugg6, sugg4

    def declared_scores(self, texts: Sequence[str], codes: Sequence[str | None]) -> DeclaredScores:
        """Similarities of each text to its declared code (HS 2022 digits, ≥ 4), computed only against
        the declared chapter's documents, so the cost is a fraction of a full :meth:`similarity`."""
        check_is_fitted(self, "docs_")
        n = len(texts)
        s6, s4, s2 = (np.zeros(n, dtype=np.float32) for _ in range(3))
        chapters: dict[str, list[int]] = {}
        for i, c in enumerate(codes):
            if c and len(c) >= 4:
                chapters.setdefault(c[:2], []).append(i)
        if not chapters:
            return DeclaredScores(s6, s4, s2)
        rows_all = sorted(i for rows in chapters.values() for i in rows)
        q_all = self.transform([texts[i] for i in rows_all])
        pos = {i: j for j, i in enumerate(rows_all)}
        for ch, rows in chapters.items():
            lo, hi = np.searchsorted(self.codes_, [ch, ch + "\uffff"])
            if lo == hi:
                continue
            d_lo = self.doc_starts_[lo]
            d_hi = self.doc_starts_[hi] if hi < len(self.codes_) else self.docs_.shape[0]
            sub = q_all[[pos[i] for i in rows]] @ self.docs_[d_lo:d_hi].T
            per_code = np.maximum.reduceat(sub.toarray(), self.doc_starts_[lo:hi] - d_lo, axis=1)
            ch_codes = self.codes_[lo:hi]
            heads = np.asarray([c[:4] for c in ch_codes])
            for r, i in enumerate(rows):
                c = codes[i]
                assert c is not None
                in_head = heads == c[:4]
                s2[i] = per_code[r].max()
                if not in_head.any():
                    continue
                s4[i] = per_code[r][in_head].max()
                j = np.searchsorted(ch_codes, c[:6])
                exact = len(c) >= 6 and j < len(ch_codes) and ch_codes[j] == c[:6]
                s6[i] = per_code[r][j] if exact else s4[i]
        return DeclaredScores(s6, s4, s2)

    # -- persistence -------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``index.npz`` (arrays, no objects) and ``manifest.json`` (parameters, sha256)."""
        check_is_fitted(self, "docs_")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {
            "idf": self.idf_, "data": self.docs_.data, "indices": self.docs_.indices, "indptr": self.docs_.indptr,
            "codes": self.codes_.astype("U6"), "doc_code": self.doc_code_,
        }
        np.savez_compressed(folder / "index.npz", **arrays)
        manifest = {
            "format": _FORMAT, "format_version": 1, "params": _json_params(self.get_params()),
            "n_documents": int(self.docs_.shape[0]), "sha256": {"index.npz": sha256_file(folder / "index.npz")},
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "HSSuggester":
        """Read a folder written by :meth:`save`; checks the format and the sha256, never unpickles."""
        folder = Path(folder)
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"expected an HS index folder with manifest.json at {folder}: {exc}") from None
        if manifest.get("format") != _FORMAT:
            raise ModelLoadError(f"{folder}: not an HS index (format {manifest.get('format')!r}, expected {_FORMAT!r})")
        if sha256_file(folder / "index.npz") != manifest.get("sha256", {}).get("index.npz"):
            raise ModelLoadError(f"{folder / 'index.npz'}: sha256 differs from the manifest; refusing to load it")
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in manifest["params"].items()}
        self = cls(**params)
        with np.load(folder / "index.npz", allow_pickle=False) as z:
            self.idf_ = z["idf"]
            self.doc_code_ = z["doc_code"]
            codes = z["codes"]
            self.docs_ = sp.csr_matrix((z["data"], z["indices"], z["indptr"]),
                                       shape=(len(self.doc_code_), self.n_features))
        self._finish(codes)
        return self

    def _finish(self, codes: np.ndarray) -> None:
        from .taxonomy import load_taxonomy

        self.codes_ = np.asarray(codes)
        self.doc_starts_ = np.r_[0, np.flatnonzero(np.diff(self.doc_code_)) + 1].astype(np.int64)
        self.titles_ = np.asarray([_title(c) for c in self.codes_])
        tax = load_taxonomy()
        self.code_category_ = np.asarray([tax.category_for_hs(c) for c in self.codes_])
        self.headings_, self.heading_starts_ = np.unique([c[:4] for c in self.codes_], return_index=True)
        self.heading_titles_ = np.asarray([_title(h) for h in self.headings_])


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` best scores per row, best first; ties to the lower index."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.tile(np.arange(k), (len(scores), 1))
    vals = np.take_along_axis(scores, part, axis=1)
    # the k-th best may tie with columns argpartition left out: take the lowest index among them
    kth = vals.min(axis=1, keepdims=True)
    out = np.empty_like(part)
    for r in range(len(scores)):
        if (scores[r] == kth[r]).sum() > (vals[r] == kth[r]).sum():
            better = np.flatnonzero(scores[r] > kth[r])
            tied = np.flatnonzero(scores[r] == kth[r])
            cand = np.r_[better, tied[: k - len(better)]]
        else:
            cand = part[r]
        order = np.lexsort((cand, -scores[r][cand]))
        out[r] = cand[order]
    return out


def _title(code: str) -> str:
    from .hs import hs_description

    return hs_description(code) or ""


def _json_params(params: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def _cache_dir() -> Path:
    base = os.environ.get("DUALUSE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "dualuse")
    return Path(base)


def _sources_digest(folder: Path | None, params: dict) -> str:
    from . import __version__

    h = hashlib.sha256(json.dumps([__version__, _json_params(params)], sort_keys=True).encode())
    h.update((resources.files("dualuse") / "data" / "hs2022.csv").read_bytes())
    h.update((resources.files("dualuse") / "data" / "taxonomy.toml").read_bytes())
    if folder is not None and Path(folder).is_dir():
        for p in [Path(folder) / "nomenclature" / "cn8_2023_en.csv", *sorted((Path(folder) / "curated").glob("*.csv"))]:
            if p.is_file():
                h.update(p.name.encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


@cache
def default_suggester(folder: Path | None = _TRAINING_DIR) -> HSSuggester:
    """The index over the shipped nomenclature and curated lines, once per process.

    Building it takes about 3 s; it is then saved under ``$DUALUSE_CACHE`` (default
    ``~/.cache/dualuse``) as ``hs-index-<hash of the source files>/`` and loaded from there (~0.3 s)
    while the sources are unchanged. A cache that cannot be read or written is rebuilt or skipped.
    """
    import time

    t0 = time.perf_counter()
    where = _cache_dir() / f"hs-index-{_sources_digest(folder, HSSuggester().get_params())}"
    if (where / "manifest.json").is_file():
        try:
            sugg = HSSuggester.load(where)
            logger.info("loaded the HS index from %s in %.1f s", where, time.perf_counter() - t0)
            return sugg
        except (ModelLoadError, OSError, ValueError, KeyError) as exc:
            logger.warning("rebuilding the HS index: cannot read the cached copy at %s (%s)", where, exc)
    texts, codes = nomenclature_documents(folder)
    sugg = HSSuggester().fit(texts, codes)
    logger.info("built the HS index: %d documents, %d subheadings in %.1f s", len(texts), len(sugg.codes_),
                time.perf_counter() - t0)
    try:
        tmp = where.with_name(where.name + f".tmp{os.getpid()}")
        sugg.save(tmp)
        if where.exists():  # another process cached it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.replace(where)
    except OSError as exc:
        logger.info("could not cache the HS index in %s: %s", where, exc)
    return sugg
