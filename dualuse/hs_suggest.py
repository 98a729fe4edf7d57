"""Suggest HS 2022 subheadings for a description, and measure how well a declared code fits it.

:class:`HSSuggester` is a retrieval index over the nomenclature texts shipped in the repository:

* one document per HS 2022 subheading (``dualuse/data/hs2022.csv``: heading text + subheading text);
* the English EU Combined Nomenclature texts (``models/training/nomenclature/cn8_2023_en.csv``), each a
  document of its HS-6 (the German, French and Dutch texts add nothing measurable and double the cost);
* the curated training lines (``models/training/curated/*.csv``) as documents of their declared HS-6,
  except ``evasion`` lines, whose declared code hides the good;
* the catalog lines (``models/training/catalog/*.csv``): marketplace titles, declarations and ruling
  sentences written for every HS 2022 heading, as documents of their subheading.

Texts become sublinear TF-IDF vectors of hashed character 3–5-grams inside word boundaries (on
:func:`dualuse.text.normalize`); n-grams in more than ``max_df`` of the documents are dropped. A
subheading's similarity to a description is the best cosine over its documents. Suggestions add
``category_weight`` × the text's probability of the subheading's taxonomy category (what the trained
model knows), so a drone description ranks 8806 first even when the nomenclature wording differs, and,
with ``dense_weight`` > 0 (:data:`DENSE_WEIGHT` = 0.5 in :func:`default_suggester`), ``dense_weight`` ×
the description's share of Latin letters × the best MiniLM cosine of the description over the
subheading's HS 2022 text and English catalog lines (:func:`dense_documents`), and, with
``heading_weight`` > 0 (:data:`HEADING_WEIGHT` = 1.0 in :func:`default_suggester`), ``heading_weight`` ×
the probability of the subheading's heading under a logistic regression over the 1,228 headings on the
description's MiniLM embedding (:mod:`dualuse.hs_heads`, shipped in ``models/hs_heads``; the same
embedding serves both terms), summed in log space with ``heading_text_weight`` (:data:`HEADING_TEXT_WEIGHT`
= 0.5) × the classifier's n-gram part. A heading scores as its best subheading.

The heading classifier (added 2026-11-24) moved the dev sets (4-digit top-1 / top-3) from 72.8 / 86.3 %
to 71.2 / 88.6 % (held-out curated) and from 44.1 / 62.1 % to 50.4 / 67.2 % (held-out catalog), and on
the real-world sets measured afterwards from 55.1 to 63.8 % (HSCodeComp) and 46.2 to 55.8 % (ATLAS)
4-digit top-3; what was tried is in :mod:`dualuse.hs_heads`.

Two more catalog batches (2026-12-07, 14,772 lines: six per heading each, marketplace titles, ruling
sentences, buyer's phrases; see ``models/training/README.md``) went into the index, the dense documents
(now 24,491 texts) and the heading classifier. On the real-world sets 4-digit top-1 / top-3 moved from
43.5 / 63.8 to 48.7 / 66.5 % (HSCodeComp) and from 38.0 / 55.8 to 44.5 / 62.0 % (ATLAS); 6-digit top-3
from 43.8 to 50.8 % and 33.2 to 41.0 %. A grid over ``heading_weight`` 0.5–3 × ``dense_weight`` 0–0.5
on the dev sets (held-out curated lines; held-out catalog fifth, now 4,284 lines) found no setting
with a higher 4-digit top-3 on both (``heading_weight`` 0.5: 80.3 / 90.8 % and 77.5 / 85.5 %; 1.0: 76.0 / 90.6 % and
77.0 / 85.9 %; 3.0: 67.5 / 87.2 % and 75.0 / 86.6 %), so the weights stay. The new batches make the
held-out catalog fifth an easier set than before (products of one heading written by the same hand
on both sides of the split), so its figures are not comparable with the earlier ones.

Catalog batch 4 (2026-12-07, 4,728 marketplace titles for the 590 headings of consumer-goods chapters)
and the heading classifier's n-gram part (:class:`dualuse.hs_heads.TextHeads`) made the classifier alone
better than the fused score on the real-world sets (HSCodeComp 4-digit top-3 70.1 % alone, 68.7 % fused
at the earlier weights), so the weights were searched again on the dev sets (held-out curated lines;
held-out catalog fifth, now 5,167 lines), 4-digit top-1 / top-3 and 6-digit top-3:

======================================  ==========================  ==========================
n-gram part / heading / dense weight    held-out curated            held-out catalog
======================================  ==========================  ==========================
1 / 1 / 0.25 (as before)                78.3 / 90.8, 6-digit 75.7   81.3 / 88.8, 6-digit 82.0
1 / 1 / 0.5                             78.0 / 91.1, 6-digit 76.4   81.4 / 88.8, 6-digit 82.1
0.5 / 1 / 0.5 (shipped)                 77.8 / 91.1, 6-digit 77.6   81.3 / 88.7, 6-digit 82.4
1.5 / 1 / 0.5                           77.8 / 90.4, 6-digit 76.7   81.3 / 88.6, 6-digit 81.7
1 / 2 / 0.5                             75.1 / 88.8, 6-digit 73.0   80.9 / 88.9, 6-digit 81.3
1 / 3 / 0.25                            74.1 / 87.2, 6-digit 70.7   80.8 / 88.9, 6-digit 81.0
1 / 5 / 0.5                             73.2 / 85.8, 6-digit 70.3   80.7 / 88.9, 6-digit 80.8
======================================  ==========================  ==========================

A larger heading weight gains nothing on the catalog and loses on the curated lines; the n-gram part at
half weight inside the fusion (the TF-IDF similarity already counts the same n-grams) ties on 4 digits and
is best on 6 digits on both sets, so it was chosen with ``dense_weight`` 0.5. On the analysis halves of
the real-world sets (rows whose text's sha256 is even, see :mod:`dualuse.hs_heads`) the same choice moved
HSCodeComp 4-digit top-3 from 64.2 to 68.2 % and ATLAS from 65.7 to 64.7 %. ``hs_fit`` reads the
classifier with its own n-gram weight (1), as it was calibrated.

With the catalog (6,563 lines) in the index, on the two sets the weights are chosen on (each against an
index without it; 4-digit top-1 / top-3): held-out curated lines 72.5 / 86.0 % (70.3 / 83.1 % before
the catalog), the held-out catalog fifth (1,349 lines of every chapter, the closest thing to ordinary
trade we may tune on) 44.3 / 62.2 %. A grid over ``dense_weight`` 0–1.5 × ``category_weight``
0.1–0.3 found nothing clearly better than the shipped 0.25 / 0.2 (best mean top-3: 0.5 / 0.2, 74.3
against 74.1 %), so the weights stay. The measurements below predate the catalog.

What was measured on the held-out curated lines (``dualuse.training.split_curated``, 437 lines with a
6-digit code, index without them; 4-digit top-1 / top-3), and why the index is what it is:

* character TF-IDF + category (shipped before): 69.3 / 82.2 %; the static embeddings
  (``models/static``) instead of TF-IDF were far behind (4-digit top-3 0.24 against 0.73 earlier);
* word-level TF-IDF: 60.6 / 75.3 % alone, and any mix with the character n-grams lowered 4-digit top-1
  (0.7 × char + 0.3 × word: 67.5 / 81.5 %), so it is not used;
* scoring a heading by its best subheading plus a share of its mean, or by a soft maximum, moved
  top-3 by under one point either way (max + 0.1 × mean: 68.2 / 82.8 %), so the plain maximum stays;
* the HS 2022 documents include their heading's title; adding titles to the CN8 documents was not tried.
* MiniLM (``dualuse.encoders.MiniLMEncoder``, local weights) over the 5,612 HS 2022 texts: 17.8 /
  29.5 % alone (an English model: 29.3 / 49.1 % on the English lines, near nothing on Russian and
  Chinese), but added to the TF-IDF score it helps the English lines: 0.25 × MiniLM gives 69.1 / 82.6 %
  overall, 76.3 / 90.1 % on English lines (TF-IDF + category: 74.1 / 88.4 %) and 45.4 / 62.2 % on the
  ``none`` lines closest to ordinary trade (44.5 / 59.7 %); scaling it by the Latin share keeps it off
  Russian and Chinese lines: 70.3 / 83.1 % overall, 48.7 / 62.2 % on ``none`` (shipped). Weights of 0.5
  and more lowered top-3 (0.5: 69.8 / 81.5 %), reciprocal rank fusion more (k = 10: 59.3 / 80.3 %). MiniLM is used on the
  suggestion path only (``suggest_hs``), never for ``hs_fit``. The CN8 and curated documents are not
  embedded: the 5,612 texts already took about 20 min of wall time on the busy 2-core machine.

:meth:`HSSuggester.declared_scores` (the ``hs_fit`` features, computed for every line with a code)
uses the TF-IDF part only: the declared chapter's subheadings and the chapter and heading centroids.

The TF-IDF index is built from the shipped CSV files on first use (about 3 s on an idle 2-core
machine) and cached as ``.npz`` arrays (``allow_pickle=False``) plus a JSON manifest with sha256 (see
:func:`default_suggester`); the MiniLM embeddings of the HS 2022 texts are computed on the first
suggestion and cached the same way. Nothing is pickled or downloaded.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.utils.validation import check_is_fitted

from .errors import InvalidArgumentError, ModelLoadError
from .persistence import sha256_file
from .text import normalize

__all__ = ["HSSuggester", "DeclaredScores", "nomenclature_documents", "dense_documents", "default_suggester"]

logger = logging.getLogger(__name__)

_TRAINING_DIR = Path(__file__).resolve().parents[1] / "models" / "training"
_FORMAT = "dualuse-hs-index"
#: weight of the MiniLM similarity in the default suggester's scores (see the module docstring)
DENSE_WEIGHT = 0.5
#: weight of the heading classifier's probability in the default suggester's scores (see dualuse.hs_heads)
HEADING_WEIGHT = 1.0
#: weight of the heading classifier's n-gram part in the default suggester's scores (see the module docstring)
HEADING_TEXT_WEIGHT = 0.5


@cache
def _hs2022_rows() -> tuple[dict[str, str], ...]:
    text = (resources.files("dualuse") / "data" / "hs2022.csv").read_text(encoding="utf-8")
    return tuple(csv.DictReader(io.StringIO(text)))


def _hs2022_documents() -> tuple[list[str], list[str]]:
    """One document per HS 2022 subheading, ``"heading text; subheading text"``, in code order."""
    rows = _hs2022_rows()
    heading = {r["hscode"]: r["description"] for r in rows if r["level"] == "4"}
    subs = {r["hscode"]: r["description"] for r in rows if r["level"] == "6" and not r["hscode"].startswith("99")}
    return [f"{heading.get(c[:4], '')}; {d}" for c, d in subs.items()], list(subs)


def nomenclature_documents(
    folder: Path | None = _TRAINING_DIR, *, languages: tuple[str, ...] = ("en",), curated: bool = True,
    exclude_texts: frozenset[str] = frozenset(),
) -> tuple[list[str], list[str]]:
    """The documents of the default index as ``(texts, hs6_codes)``.

    ``folder`` is the training folder (``models/training``); when it is ``None`` or missing, only the
    packaged HS 2022 texts are used. ``exclude_texts`` leaves out curated lines (cross-fitting).
    """
    texts, codes = _hs2022_documents()
    subs = set(codes)
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
        for text, code, r in _written_lines(folder, ("curated", "catalog")):
            if r.get("note") != "evasion" and text not in exclude_texts and code in subs:
                texts.append(text)
                codes.append(code)
    return texts, codes


def dense_documents(folder: Path | None = _TRAINING_DIR) -> tuple[list[str], list[str]]:
    """The documents MiniLM embeds for the suggestions: every HS 2022 text plus the English catalog
    lines (``catalog/*.csv``, ``lang`` = ``en``; MiniLM is an English model), as ``(texts, hs6_codes)``."""
    texts, codes = _hs2022_documents()
    if folder is None or not Path(folder).is_dir():
        return texts, codes
    subs = set(codes)
    for text, code, r in _written_lines(Path(folder), ("catalog",)):
        if r.get("lang") == "en" and code in subs:
            texts.append(text)
            codes.append(code)
    return texts, codes


def _written_lines(folder: Path, subdirs: tuple[str, ...]) -> Iterator[tuple[str, str | None, dict[str, str]]]:
    """``(text, HS-6 code or None, row)`` of every non-empty line of the CSV files in ``folder/<subdir>/``
    (the curated and catalog lines written for this project), files in name order."""
    from .hs import parse_hs

    for sub in subdirs:
        for path in sorted((folder / sub).glob("*.csv")):
            with open(path, encoding="utf-8", newline="") as fh:
                for r in csv.DictReader(fh):
                    text = (r.get("text") or "").strip()
                    if text:
                        yield text, parse_hs(r.get("hs_code")).hs6, r


@dataclass(frozen=True)
class DeclaredScores:
    """Similarities of descriptions to their declared codes, and how the code's chapter and heading rank.

    Within the declared chapter: ``s6`` the best cosine over the declared subheading's documents (for a
    4-digit code: its heading's), ``s4`` over the declared heading's, ``s2`` over the chapter's (so
    ``s2 - s6`` is how far the declared subheading is below the best one of its own chapter).
    Across the nomenclature, from centroids (the L2-normalised sum of a group's documents): ``c2`` the
    cosine to the declared chapter's centroid, ``c2_best`` the best of any chapter, ``c2_rank`` how many
    chapters beat the declared one; ``c4``, ``c4_best``, ``c4_rank`` the same for headings. Gaps and
    ranks do not depend on how close the description is to the nomenclature's wording as a whole, so
    they carry over to texts unlike any indexed document. All 0 for rows without a code of 4+
    digits; a chapter or heading that is not indexed ranks after all of them.
    """

    s6: np.ndarray
    s4: np.ndarray
    s2: np.ndarray
    c2: np.ndarray
    c2_best: np.ndarray
    c2_rank: np.ndarray
    c4: np.ndarray
    c4_best: np.ndarray
    c4_rank: np.ndarray

    @classmethod
    def zeros(cls, n: int) -> "DeclaredScores":
        return cls(*(np.zeros(n, dtype=np.float32) for _ in fields(cls)))


class HSSuggester(BaseEstimator):
    """Character n-gram TF-IDF retrieval over HS-6 documents (see the module docstring).

    Parameters:
        ngram_range: character n-gram sizes (``char_wb`` analyzer).
        n_features: size of the hashed feature space.
        max_df: n-grams in more than this share of the documents get weight 0 (speed; no measurable loss).
        category_weight: weight of the text's category probability added to a suggestion's score.
        dense_weight: weight of the MiniLM cosine added to a suggestion's score (0: TF-IDF only). Needs
            the documents' embeddings: :meth:`fit_dense`, or the cached ones :func:`default_suggester`
            attaches. Only :meth:`suggest` / :meth:`scores` use it, never :meth:`declared_scores`.
        heading_weight: weight of the probability of a subheading's heading under the MiniLM heading
            classifier (:class:`dualuse.hs_heads.HeadingClassifier`, attribute ``heads_``; 0: not used).
            Shares the description's MiniLM embedding with ``dense_weight``; suggestions only.
        heading_text_weight: weight of the classifier's n-gram part inside it (None: the classifier's own,
            :attr:`dualuse.hs_heads.HeadingClassifier.text_weight`); lower here because the TF-IDF
            similarity already counts the same n-grams.
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
        dense_weight: float = 0.0,
        heading_weight: float = 0.0,
        heading_text_weight: float | None = None,
        k: int = 3,
        batch_size: int = 512,
    ) -> None:
        self.ngram_range = ngram_range
        self.n_features = n_features
        self.max_df = max_df
        self.category_weight = category_weight
        self.dense_weight = dense_weight
        self.heading_weight = heading_weight
        self.heading_text_weight = heading_text_weight
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
        return sublinear_tfidf(counts, self.idf_)

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

    def fit_dense(self, X: Sequence[str], y: Sequence[str], encoder: Any = None) -> "HSSuggester":
        """Embed documents ``X`` labelled with 6-digit codes ``y`` (at least one for every indexed
        subheading) with ``encoder`` (default :class:`dualuse.encoders.MiniLMEncoder`) for the
        ``dense_weight`` part of the scores. :func:`default_suggester` uses the HS 2022 texts only."""
        check_is_fitted(self, "docs_")
        codes = np.asarray([str(c) for c in y])
        order = np.argsort(codes, kind="stable")
        uniq, starts = np.unique(codes[order], return_index=True)
        if len(codes) != len(X) or not np.array_equal(uniq, self.codes_):
            raise InvalidArgumentError(
                f"fit_dense needs one code per document and documents for exactly the {len(self.codes_)} indexed "
                f"subheadings; got {len(X)} documents for {len(uniq)} subheadings")
        self.encoder_ = encoder if encoder is not None else _minilm()
        self.dense_docs_ = np.asarray(self.encoder_.encode([str(X[i]) for i in order]), dtype=np.float32)
        self.dense_starts_ = starts.astype(np.int64)
        return self

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """MiniLM embeddings of ``texts`` (the encoder of the dense documents)."""
        if not hasattr(self, "encoder_"):
            if getattr(self, "_dense_loader", None) is not None:
                self._dense_docs()
            else:
                self.encoder_ = _minilm()
        return np.asarray(self.encoder_.encode([str(t) for t in texts]), dtype=np.float32)

    def dense_similarity(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """(n_texts, n_codes) best encoder cosine of each text over each subheading's dense documents."""
        docs = self._dense_docs()
        q = self.embed(texts) if embeddings is None else embeddings
        out = np.empty((len(q), len(self.codes_)), dtype=np.float32)
        for s in range(0, len(q), self.batch_size):
            out[s : s + self.batch_size] = np.maximum.reduceat(q[s : s + self.batch_size] @ docs.T, self.dense_starts_, axis=1)
        return out

    def heading_proba(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """(n_texts, n_codes) probability of each subheading's heading under the heading classifier
        ``heads_`` (0 for a heading it does not know)."""
        heads = getattr(self, "heads_", None)
        if heads is None:
            raise InvalidArgumentError(
                f"heading_weight={self.heading_weight} needs a heading classifier; set `heads_` "
                "(dualuse.hs_heads.HeadingClassifier.load()), use default_suggester(), or set heading_weight=0")
        q = self.embed(texts) if embeddings is None else embeddings
        cols = heads.columns_for(self.codes_)
        p = np.hstack([heads.proba(q, list(texts), text_weight=self.heading_text_weight), np.zeros((len(q), 1), np.float32)])
        return p[:, cols]

    @property
    def needs_embeddings(self) -> bool:
        """Whether :meth:`scores` embeds the texts (a MiniLM term is switched on)."""
        return bool(self.dense_weight or self.heading_weight)

    @staticmethod
    def dense_weights(texts: Sequence[str]) -> np.ndarray:
        """Per text, the share of ``dense_weight`` it gets: its share of Latin letters. The encoder and
        the HS texts are English; on Russian and Chinese lines its cosine is noise (measured: without
        this, held-out 4-digit top-1 drops from 70.3 to 69.1 %)."""
        from .hs_fit import latin_share

        return np.asarray([latin_share(str(t)) for t in texts], dtype=np.float32)

    def _dense_docs(self) -> np.ndarray:
        if not hasattr(self, "dense_docs_"):
            loader = getattr(self, "_dense_loader", None)
            if loader is None:
                raise InvalidArgumentError(
                    f"dense_weight={self.dense_weight} needs document embeddings; call fit_dense(texts, codes) "
                    "after fit, or use default_suggester(), or set dense_weight=0")
            self.encoder_, self.dense_docs_, self.dense_starts_ = loader(self)
        return self.dense_docs_

    def scores(
        self, texts: Sequence[str], category_proba: np.ndarray | None = None, labels: Sequence[str] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> np.ndarray:
        """(n_texts, n_codes) suggestion scores: TF-IDF similarity + ``dense_weight`` × the text's Latin
        share × MiniLM similarity + ``heading_weight`` × the heading classifier's probability of the
        subheading's heading + ``category_weight`` × the text's probability of the subheading's
        category. ``embeddings``: the texts' MiniLM embeddings when the caller has them already."""
        check_is_fitted(self, "docs_")
        out = self.similarity(texts)
        if self.needs_embeddings and len(texts):
            q = self.embed(texts) if embeddings is None else embeddings
            if self.dense_weight:
                out += self.dense_weight * self.dense_weights(texts)[:, None] * self.dense_similarity(texts, q)
            if self.heading_weight:
                out += self.heading_weight * self.heading_proba(texts, q)
        if category_proba is not None:
            if labels is None:
                raise InvalidArgumentError("category_proba needs the labels of its columns")
            index = {c: j for j, c in enumerate(labels)}
            cols = np.asarray([index.get(c, -1) for c in self.code_category_])
            proba = np.hstack([np.asarray(category_proba, dtype=np.float32), np.zeros((len(out), 1), np.float32)])
            out += self.category_weight * proba[:, cols]
        return out

    def suggest(
        self, texts: Sequence[str], category_proba: np.ndarray | None = None, labels: Sequence[str] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> tuple[list[tuple[tuple[str, str, float], ...]], list[tuple[tuple[str, str, float], ...]]]:
        """Top ``k`` subheadings and top ``k`` headings per text, as ``(code, text, score)`` tuples.

        Scores are :meth:`scores`; a heading scores as its best subheading. Ties go to the lower code,
        so results are deterministic.
        """
        check_is_fitted(self, "docs_")
        sugg6: list[tuple[tuple[str, str, float], ...]] = []
        sugg4: list[tuple[tuple[str, str, float], ...]] = []
        for s in range(0, len(texts), self.batch_size):
            part = category_proba[s : s + self.batch_size] if category_proba is not None else None
            emb = embeddings[s : s + self.batch_size] if embeddings is not None else None
            scores = self.scores(list(texts[s : s + self.batch_size]), part, labels, emb)
            head = np.maximum.reduceat(scores, self.heading_starts_, axis=1)
            for top, names, titles, out in ((_top_k(scores, self.k), self.codes_, self.titles_, sugg6),
                                             (_top_k(head, self.k), self.headings_, self.heading_titles_, sugg4)):
                vals = np.round(np.take_along_axis(scores if out is sugg6 else head, top, axis=1), 4)
                for r in range(len(top)):
                    out.append(tuple((str(names[j]), str(titles[j]), float(v)) for j, v in zip(top[r], vals[r])))
        return sugg6, sugg4

    def declared_scores(self, texts: Sequence[str], codes: Sequence[str | None]) -> DeclaredScores:
        """Similarities of each text to its declared code (HS 2022 digits, ≥ 4) and the ranks of its
        chapter and heading (see :class:`DeclaredScores`). Subheadings are scored only within the
        declared chapter, chapters and headings by their centroids, so the cost is a fraction of a full
        :meth:`similarity`."""
        check_is_fitted(self, "docs_")
        out = DeclaredScores.zeros(len(texts))
        chapters: dict[str, list[int]] = {}
        for i, c in enumerate(codes):
            if c and len(c) >= 4:
                chapters.setdefault(c[:2], []).append(i)
        if not chapters:
            return out
        rows_all = np.asarray(sorted(i for rows in chapters.values() for i in rows))
        q_all = self.transform([texts[i] for i in rows_all])
        pos = {int(i): j for j, i in enumerate(rows_all)}
        self._centroid_ranks(q_all, rows_all, [str(codes[i]) for i in rows_all], out)
        for ch, rows in chapters.items():
            lo, hi = np.searchsorted(self.codes_, [ch, ch + "\uffff"])
            if lo == hi:
                continue
            d_lo = self.doc_starts_[lo]
            d_hi = self.doc_starts_[hi] if hi < len(self.codes_) else self.docs_.shape[0]
            sub = q_all[[pos[i] for i in rows]] @ self.docs_[d_lo:d_hi].T
            per_code = np.maximum.reduceat(sub.toarray(), self.doc_starts_[lo:hi] - d_lo, axis=1)
            _within_chapter(per_code, self.codes_[lo:hi], np.asarray(rows), [str(codes[i]) for i in rows], out)
        return out

    def _centroid_ranks(self, q: sp.csr_matrix, rows: np.ndarray, codes: list[str], out: DeclaredScores) -> None:
        """Fill the ``c2*`` and ``c4*`` fields of ``rows`` from one product with the stacked centroids."""
        scores = (q @ self.centroids_.T).toarray()
        n2 = len(self.chapters_)
        for groups, block, own_f, best_f, rank_f in (
            (self.chapters_, scores[:, :n2], out.c2, out.c2_best, out.c2_rank),
            (self.headings_, scores[:, n2:], out.c4, out.c4_best, out.c4_rank),
        ):
            keys = np.asarray([c[: len(groups[0])] for c in codes])
            j = np.minimum(np.searchsorted(groups, keys), len(groups) - 1)
            own = np.where(groups[j] == keys, block[np.arange(len(rows)), j], 0.0)
            own_f[rows] = own
            best_f[rows] = block.max(axis=1)
            rank_f[rows] = np.where(groups[j] == keys, (block > own[:, None]).sum(axis=1), len(groups))

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
        self.chapters_ = np.unique([c[:2] for c in self.codes_])
        doc_codes = self.codes_[self.doc_code_]
        self.centroids_ = sp.vstack([_centroids(self.docs_, doc_codes, 2), _centroids(self.docs_, doc_codes, 4)]).tocsr()


def sublinear_tfidf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Rows of n-gram ``counts`` as (1 + log tf) × ``idf``, L2-normalised (float32; an idf of 0 drops
    the n-gram)."""
    x = counts.tocsr().astype(np.float32)
    x.data = 1.0 + np.log(x.data)
    x = x @ sp.diags(idf)
    x.eliminate_zeros()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ x, dtype=np.float32)


def _centroids(docs: sp.csr_matrix, doc_codes: np.ndarray, n_digits: int) -> sp.csr_matrix:
    """Per ``n_digits`` prefix of ``doc_codes`` (sorted), the L2-normalised sum of its documents."""
    groups, inv = np.unique([c[:n_digits] for c in doc_codes], return_inverse=True)
    member = sp.csr_matrix((np.ones(len(inv), np.float32), (inv, np.arange(len(inv)))), shape=(len(groups), docs.shape[0]))
    cent = (member @ docs).tocsr()
    norms = np.sqrt(np.asarray(cent.multiply(cent).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ cent, dtype=np.float32)


def _within_chapter(per_code: np.ndarray, ch_codes: np.ndarray, rows: np.ndarray, codes: list[str],
                    out: DeclaredScores) -> None:
    """Fill ``s6``, ``s4``, ``s2`` of ``rows`` (all declared in one chapter) from their similarities to
    the chapter's subheadings ``per_code`` (rows × ``ch_codes``)."""
    heads, h_starts = np.unique([c[:4] for c in ch_codes], return_index=True)
    head_max = np.maximum.reduceat(per_code, h_starts, axis=1)
    r = np.arange(len(rows))
    keys4, keys6 = np.asarray([c[:4] for c in codes]), np.asarray([c[:6] for c in codes])
    h = np.minimum(np.searchsorted(heads, keys4), len(heads) - 1)
    in_head = heads[h] == keys4
    j = np.minimum(np.searchsorted(ch_codes, keys6), len(ch_codes) - 1)
    exact = in_head & (ch_codes[j] == keys6) & (np.char.str_len(keys6) == 6)
    own4 = np.where(in_head, head_max[r, h], 0.0)
    out.s2[rows] = per_code.max(axis=1)
    out.s4[rows] = own4
    out.s6[rows] = np.where(exact, per_code[r, j], own4)


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


def _minilm() -> Any:
    from .encoders import MiniLMEncoder

    return MiniLMEncoder()


def _dense_cache_loader(where: Path, folder: Path | None) -> Any:
    """A loader for :meth:`HSSuggester._dense_docs`: the MiniLM embeddings of :func:`dense_documents`
    (the HS 2022 texts and the English catalog lines of ``folder``) from beside ``where`` (``dense.npz`` float16 + ``manifest.json`` with sha256), or
    computed once and saved there. Runs only when a suggestion with
    ``dense_weight > 0`` is first asked for."""

    def load(sugg: HSSuggester) -> tuple[Any, np.ndarray, np.ndarray]:
        import time

        from .embcache import encoder_identity

        enc = _minilm()
        # keyed like the embedding cache: sha256 of every file of the weights, so other weights re-embed
        target = where.with_name(f"{where.name}-minilm-{encoder_identity(enc)}")
        texts, codes = dense_documents(folder)
        order = np.argsort(np.asarray(codes), kind="stable")
        uniq, starts = np.unique(np.asarray(codes)[order], return_index=True)
        if not np.array_equal(uniq, sugg.codes_):
            raise ModelLoadError(f"expected dense documents for the {len(sugg.codes_)} indexed subheadings, got {len(uniq)}")
        starts = starts.astype(np.int64)
        if (target / "manifest.json").is_file():
            try:
                emb = _read_dense(target, len(texts))
                logger.info("loaded the HS document embeddings from %s", target)
                return enc, emb, starts
            except (ModelLoadError, OSError, ValueError, KeyError) as exc:
                logger.warning("re-embedding the HS documents: cannot read %s (%s)", target, exc)
        t0 = time.perf_counter()
        emb = np.asarray(enc.encode([texts[i] for i in order]), dtype=np.float32)
        logger.info("embedded %d HS 2022 and catalog texts with MiniLM in %.0f s", len(texts), time.perf_counter() - t0)
        try:
            _write_dense(target, emb)
        except OSError as exc:
            logger.info("could not cache the HS document embeddings in %s: %s", target, exc)
        return enc, emb, starts

    return load


def _write_dense(folder: Path, emb: np.ndarray) -> None:
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    np.savez(tmp / "dense.npz", embeddings=emb.astype(np.float16))
    manifest = {"format": _FORMAT + "-dense", "format_version": 1, "encoder": "minilm",
                "n_documents": int(len(emb)), "sha256": {"dense.npz": sha256_file(tmp / "dense.npz")}}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if folder.exists():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.replace(folder)


def _read_dense(folder: Path, n_docs: int) -> np.ndarray:
    """Embeddings written by :func:`_write_dense`; checks the format, sha256 and size, never unpickles."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("format") != _FORMAT + "-dense":
        raise ModelLoadError(f"{folder}: not HS document embeddings (format {manifest.get('format')!r})")
    if sha256_file(folder / "dense.npz") != manifest.get("sha256", {}).get("dense.npz"):
        raise ModelLoadError(f"{folder / 'dense.npz'}: sha256 differs from the manifest; refusing to load it")
    with np.load(folder / "dense.npz", allow_pickle=False) as z:
        emb = np.asarray(z["embeddings"], dtype=np.float32)
    if emb.shape[0] != n_docs:
        raise ModelLoadError(f"{folder}: expected embeddings of {n_docs} documents, found {emb.shape[0]}")
    return emb


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
        for p in [Path(folder) / "nomenclature" / "cn8_2023_en.csv", *sorted((Path(folder) / "curated").glob("*.csv")),
                  *sorted((Path(folder) / "catalog").glob("*.csv"))]:
            if p.is_file():
                h.update(p.name.encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


@cache
def default_suggester(folder: Path | None = _TRAINING_DIR) -> HSSuggester:
    """The index over the shipped nomenclature and curated lines, once per process, with
    ``dense_weight`` = :data:`DENSE_WEIGHT`.

    Building the TF-IDF part takes about 3 s; it is then saved under ``$DUALUSE_CACHE`` (default
    ``~/.cache/dualuse``) as ``hs-index-<hash of the source files>/`` and loaded from there (~0.3 s)
    while the sources are unchanged. The MiniLM embeddings of the documents are computed only when a
    suggestion is first asked for (5,612 HS 2022 texts and 5,335 English catalog lines, a few minutes on
    2 cores), and cached beside it in
    ``hs-index-<hash>-minilm-<hash of the encoder files>/``. A cache that cannot be read or written is
    rebuilt or skipped.
    """
    where = _cache_dir() / f"hs-index-{_sources_digest(folder, HSSuggester().get_params())}"
    sugg = _tfidf_index(folder, where)
    sugg.set_params(dense_weight=DENSE_WEIGHT)
    if DENSE_WEIGHT:
        sugg._dense_loader = _dense_cache_loader(where, folder)
    from .hs_heads import SHIPPED_HEADS, HeadingClassifier

    if HEADING_WEIGHT and (SHIPPED_HEADS / "manifest.json").is_file():
        sugg.heads_ = HeadingClassifier.load(SHIPPED_HEADS)
        sugg.set_params(heading_weight=HEADING_WEIGHT, heading_text_weight=HEADING_TEXT_WEIGHT)
    elif HEADING_WEIGHT:
        logger.warning("no heading classifier at %s (make hs-heads): suggestions use retrieval only", SHIPPED_HEADS)
    return sugg


def _tfidf_index(folder: Path | None, where: Path) -> HSSuggester:
    import time

    t0 = time.perf_counter()
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
