"""``hs_fit``: how well a declared HS code fits a description, in [0, 1].

``hs_fit = text_fit × category_fit``, the code read as HS 2022 (HS 2017 codes already mapped by
:func:`dualuse.hs.parse_hs`):

* ``category_fit`` = the text-only probability (model, or rules) of the code's taxonomy category divided
  by that of the text's most likely category: 1 when the code's category is the one the text supports,
  near 0 when the text clearly belongs elsewhere (a quadcopter under 9503 toys, ballistic plates under
  3926 plastics). It comes from the calibrated classifier, so it follows the model when it is retrained.
* ``text_fit`` = a calibrated score of twelve retrieval features (:data:`FEATURES`, all from
  :meth:`dualuse.hs_suggest.HSSuggester.declared_scores`, which scores subheadings only within the
  declared chapter and chapters / headings by their centroids, so it stays cheap):

  * ``s6`` / ``s4`` — retrieval similarity of the description to the declared subheading's / heading's
    nomenclature texts;
  * ``chapter_gap`` — how far the declared subheading is below the best subheading of its own chapter;
  * ``latin`` — the share of the text's letters that are Latin, alone and times ``s6`` and ``s4``: the
    nomenclature texts are English, so a low similarity is evidence against the code for an English
    description more than for a Russian or Chinese one;
  * ``c2``, ``c2_gap``, ``c2_rank`` — cosine to the declared chapter's centroid, its gap to the best
    chapter's and ``log1p`` of the number of chapters that beat it; ``c4``, ``c4_gap``, ``c4_rank`` the
    same for the declared heading among all 1,228 headings: "is there a clearly better place for this
    text elsewhere in the nomenclature?"

The score is a gradient-boosted tree ensemble (:data:`GBT_PARAMS`: 100 trees of at most 15 leaves,
scikit-learn's ``HistGradientBoostingClassifier``), exported to plain arrays (:class:`Trees`) in
``dualuse/data/hs_fit.json`` and evaluated with numpy, so loading it runs no code from the file.

It is fitted on the curated lines (``models/training/curated``) and the training four fifths of the
catalog (``models/training/catalog``: marketplace-style lines for every HS heading, see
:func:`dualuse.training.split_catalog`): positives are lines with their own code when its category is
the line's category (``evasion`` lines, and lines such as ballistic plates under 3926.90 whose correct
tariff code lies outside the risk category, are not positives), negatives are ``evasion`` lines with
their declared code plus, for each positive, its code swapped for one of another chapter (from another
line) and one of the same chapter (another subheading of the chapter). Classes are weighted equally, so
``text_fit = 0.5`` means even odds. The similarities come from an index that leaves the line's own half
of the lines out (two-fold cross-fitting), as a new description would see it, and every pair is seen a
second time with features from an index of the nomenclature texts alone, so the ensemble has also seen
descriptions unlike every indexed document. Report and threshold use out-of-fold predictions.

How it was chosen (``python -m dualuse.hs_fit`` reports the cross-fitted AUCs; the held-out catalog fifth
is scored by ``benchmarks/hs_eval.py``), all with the catalog in the training pairs:

=====================================  =================  ================  ==================
``text_fit`` form                      other chapter      same chapter      evasion
                                       (cv / catalog)     (cv / catalog)    (cv)
=====================================  =================  ================  ==================
logistic regression × category_fit     0.969 / 0.958      0.916 / 0.912     0.890
logistic with log category_fit input   0.974 / 0.963      0.926 / 0.921     0.809
trees with category_fit input          0.977 / 0.968      0.932 / 0.929     0.789
trees × category_fit (shipped)         0.974 / 0.965      0.923 / 0.921     0.886
=====================================  =================  ================  ==================

Feeding ``category_fit`` to the learner lets retrieval outvote the category, which is exactly what an
evasion line (a drone text under the toys heading, whose nomenclature words it shares) must not do, so
the product stays. Larger ensembles (200 × 31 leaves, 300 at rate 0.05) scored within 0.002. Adding
the catalog to the training pairs (before: curated lines only, logistic) moved the real-world AUCs
measured afterwards (``benchmarks/README.md``) from 0.838 to 0.879 (HSCodeComp, other chapter) and the
trees to 0.889 (ATLAS: 0.839, 0.859, 0.876). The table's figures were taken with the model's text
probabilities under ``Screener(override_min_model_p=0.1)``; the shipped fit uses the default (0), and
the model without the heading prior (:mod:`dualuse.heading_prior`), whose n-gram part was fitted on the
same training lines.

**With the heading classifier** (``dualuse/data/hs_fit_heads.json``, used where MiniLM runs anyway:
``suggest_hs`` / ``dualuse score --suggest-hs`` / ``dualuse classify``, or ``Screener(hs_fit_heads=True)``)
the ensemble also reads :data:`HEAD_FEATURES`: the probability that the heading classifier of
:mod:`dualuse.hs_heads` gives the declared heading, its gap to the best heading's and the declared
heading's rank among the 1,228. In the fitting the classifier is cross-fitted like the index (fitted on
the documents that leave the fold's lines out, and on the nomenclature texts alone for the second view),
so the ensemble never sees a probability of a line the classifier was trained on. It has its own
threshold, chosen the same way. Measured before it was shipped, the classifier's probability alone
told the real-world gold heading from another chapter's with ROC-AUC 0.95 (HSCodeComp) / 0.96 (ATLAS)
against 0.89 / 0.88 for the retrieval-only ``hs_fit``; figures of the shipped pair are in
``benchmarks/README.md``. The retrieval-only calibration stays the default because the heading
classifier needs a MiniLM encoding of every line, 25–60× slower than the static model.

The threshold of ``hs_mismatch`` is the ``hs_fit`` below which 3 % (``FALSE_ALARM_RATE``) of the
correctly declared training lines fall out of fold (capped at 0.5). Real declarations are further from
every indexed text than our lines, so more of their correct codes fall below it (about 11 % of the
HSCodeComp gold codes, 19 % of ATLAS's) while 75 % / 91 % of other-chapter swaps do; see
``benchmarks/README.md``. Refit after retraining the model with ``python -m dualuse.hs_fit``
(``make hs-fit``). ``../shared/data/realworld`` is never read here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ModelLoadError

if TYPE_CHECKING:
    from .hs_suggest import DeclaredScores, HSSuggester
    from .predict import Screener

__all__ = ["HSFitModel", "FEATURES", "HEAD_FEATURES", "fit_features", "fit_hs_fit", "fit_hs_fits", "heading_features"]

logger = logging.getLogger(__name__)

FEATURES: tuple[str, ...] = ("s6", "s4", "chapter_gap", "latin", "latin_s6", "latin_s4",
                             "c2", "c2_gap", "c2_rank", "c4", "c4_gap", "c4_rank")
#: the features the heading classifier adds where MiniLM embeddings are at hand (see the module docstring)
HEAD_FEATURES: tuple[str, ...] = ("h4", "h4_gap", "h4_rank")
#: share of correctly declared curated lines allowed below the mismatch threshold
FALSE_ALARM_RATE = 0.03
_FILE = "hs_fit.json"
_FILE_HEADS = "hs_fit_heads.json"


def latin_share(text: str) -> float:
    """Share of the letters of ``text`` that are ASCII Latin (0 for a text without letters)."""
    letters = [c for c in text if c.isalpha()]
    return sum(c.isascii() for c in letters) / len(letters) if letters else 0.0


def fit_features(scores: "DeclaredScores", texts: Sequence[str]) -> np.ndarray:
    """The (n, 12) feature matrix of :data:`FEATURES` (ranks as ``log1p``, so the first places count most)."""
    d = scores
    lat = np.asarray([latin_share(t) for t in texts], dtype=np.float64)
    return np.column_stack([
        d.s6, d.s4, d.s2 - d.s6, lat, lat * d.s6, lat * d.s4,
        d.c2, d.c2_best - d.c2, np.log1p(d.c2_rank), d.c4, d.c4_best - d.c4, np.log1p(d.c4_rank),
    ]).astype(np.float64)


def heading_features(proba: np.ndarray, headings: np.ndarray, codes: Sequence[str]) -> np.ndarray:
    """The (n, 3) matrix of :data:`HEAD_FEATURES` from heading-classifier probabilities ``proba``
    (columns: the sorted ``headings``): the declared heading's probability, how far it is below the best
    heading's, and ``log1p`` of the number of headings above it (probability 0 and every heading above
    for a heading the classifier does not know)."""
    from .hs_heads import heading_columns

    p = np.asarray(proba, dtype=np.float64)
    j = heading_columns(headings, codes)
    known = j >= 0
    own = np.where(known, p[np.arange(len(p)), np.maximum(j, 0)], 0.0)
    rank = np.where(known, (p > own[:, None]).sum(axis=1), len(headings))
    return np.column_stack([own, p.max(axis=1) - own, np.log1p(rank)]).astype(np.float64)


def category_fit(text_proba: np.ndarray, code_columns: np.ndarray) -> np.ndarray:
    """Probability of each code's category (column index per row) over the text's best category's."""
    p = np.asarray(text_proba, dtype=np.float64)
    rows = np.arange(len(p))
    best = p.max(axis=1)
    best[best <= 0] = 1.0
    return p[rows, code_columns] / best


@dataclass(frozen=True, eq=False)
class Trees:
    """A binary gradient-boosted tree ensemble (scikit-learn's ``HistGradientBoostingClassifier``) as
    flat arrays, so it is stored as plain numbers in JSON and evaluated here with numpy: nothing is
    unpickled. Node ``i`` sends a row left when ``X[feature[i]] <= threshold[i]`` (NaN: when
    ``missing_left[i]``); the raw score is ``baseline`` plus the leaf value of every tree."""

    baseline: float
    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    is_leaf: np.ndarray
    missing_left: np.ndarray

    _FIELDS = ("roots", "feature", "threshold", "left", "right", "value", "is_leaf", "missing_left")
    _DTYPES = (np.int64, np.int64, np.float64, np.int64, np.int64, np.float64, bool, bool)

    @classmethod
    def from_sklearn(cls, model: Any) -> "Trees":
        """Export a fitted binary ``HistGradientBoostingClassifier`` (numerical features only)."""
        parts: dict[str, list[np.ndarray]] = {k: [] for k in cls._FIELDS}
        offset = 0
        for (pred,) in model._predictors:
            nodes = pred.nodes
            if np.any(nodes["is_categorical"]):
                raise ValueError("categorical splits are not supported")
            leaf = nodes["is_leaf"].astype(bool)
            parts["roots"].append(np.asarray([offset]))
            parts["feature"].append(nodes["feature_idx"].astype(np.int64))
            parts["threshold"].append(nodes["num_threshold"].astype(np.float64))
            parts["left"].append(np.where(leaf, 0, nodes["left"].astype(np.int64) + offset))
            parts["right"].append(np.where(leaf, 0, nodes["right"].astype(np.int64) + offset))
            parts["value"].append(nodes["value"].astype(np.float64))
            parts["is_leaf"].append(leaf)
            parts["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
            offset += len(nodes)
        return cls(float(np.ravel(model._baseline_prediction)[0]), *(np.concatenate(parts[k]) for k in cls._FIELDS))

    def __post_init__(self) -> None:
        # walking arrays: a leaf points to itself, so every row can take the same number of steps
        own = np.arange(len(self.value))
        object.__setattr__(self, "_go_left", np.where(self.is_leaf, own, self.left))
        object.__setattr__(self, "_go_right", np.where(self.is_leaf, own, self.right))
        # the deepest tree's depth: steps from the roots until only leaves remain
        frontier, steps = np.unique(self.roots), 0
        while len(frontier := frontier[~self.is_leaf[frontier]]):
            if steps >= len(own):
                raise ValueError("the trees have a cycle")
            frontier, steps = np.unique(np.r_[self.left[frontier], self.right[frontier]]), steps + 1
        object.__setattr__(self, "_steps", steps)

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Raw scores (log-odds) of the rows of ``X``: all trees walked at once, one level per step."""
        X = np.asarray(X, dtype=np.float64)
        flat = X.ravel()
        offsets = (np.arange(len(X)) * X.shape[1])[:, None]
        idx = np.broadcast_to(self.roots, (len(X), len(self.roots))).copy()
        has_nan = bool(np.isnan(flat).any())
        for _ in range(self._steps):
            x = flat[offsets + self.feature[idx]]
            left = x <= self.threshold[idx]
            if has_nan:
                left = np.where(np.isnan(x), self.missing_left[idx], left)
            idx = np.where(left, self._go_left[idx], self._go_right[idx])
        return self.baseline + self.value[idx].sum(axis=1)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"baseline": self.baseline}
        for k in self._FIELDS:
            v = getattr(self, k)
            out[k] = [round(float(x), 8) for x in v] if v.dtype == np.float64 else [int(x) for x in v]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Trees":
        arrays = [np.asarray(data[k], dtype=d) for k, d in zip(cls._FIELDS, cls._DTYPES)]
        n = len(arrays[1])
        if any(len(a) != n for a in arrays[1:]) or not len(arrays[0]):
            raise ValueError("node arrays of different lengths")
        inner = ~arrays[6]
        if (arrays[0] >= n).any() or (arrays[3][inner] >= n).any() or (arrays[4][inner] >= n).any():
            raise ValueError("a node points outside the ensemble")
        return cls(float(data["baseline"]), *arrays)


@dataclass(frozen=True)
class HSFitModel:
    """The calibration of ``text_fit`` (a gradient-boosted tree ensemble, or a logistic regression with
    ``coef`` and ``intercept``) and the threshold below which a code is a mismatch."""

    coef: tuple[float, ...] = ()
    intercept: float = 0.0
    threshold: float = 0.2
    features: tuple[str, ...] = FEATURES
    info: dict[str, Any] = field(default_factory=dict, compare=False)
    trees: Trees | None = field(default=None, compare=False)

    def text_fit(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        z = self.trees.raw(X) if self.trees is not None else X @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def predict(self, X: np.ndarray, category_fit: np.ndarray) -> np.ndarray:
        """``hs_fit`` = ``text_fit(X)`` × ``category_fit``."""
        return self.text_fit(X) * np.clip(np.asarray(category_fit, dtype=np.float64), 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": "dualuse-hs-fit", "features": list(self.features), "threshold": self.threshold,
                               "info": self.info}
        if self.trees is not None:
            out["kind"] = "gradient_boosting"
            out["trees"] = self.trees.to_dict()
        else:
            out.update(kind="logistic", coef=list(self.coef), intercept=self.intercept)
        return out

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @property
    def uses_heads(self) -> bool:
        """Whether the calibration also reads the heading classifier (:data:`HEAD_FEATURES`)."""
        return tuple(self.features) == FEATURES + HEAD_FEATURES

    @classmethod
    def load(cls, path: str | Path | None = None, *, heads: bool = False) -> "HSFitModel":
        """The packaged calibration (``dualuse/data/hs_fit.json``, or ``hs_fit_heads.json`` with
        ``heads``: the one that also reads the heading classifier), or the file at ``path``."""
        name = _FILE_HEADS if heads else _FILE
        where = path or name
        expected = FEATURES + HEAD_FEATURES if heads else FEATURES
        try:
            if path is None:
                text = (resources.files("dualuse") / "data" / name).read_text(encoding="utf-8")
            else:
                text = Path(path).read_text(encoding="utf-8")
            data = json.loads(text)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read the hs_fit calibration {where}: {exc}") from None
        if data.get("format") != "dualuse-hs-fit" or tuple(data.get("features", ())) != expected:
            raise ModelLoadError(f"{where}: expected an hs_fit calibration with features {expected}, "
                                 f"got {tuple(data.get('features', ()))}; refit it with `make hs-fit`")
        try:
            if data.get("kind", "logistic") == "gradient_boosting":
                return cls(threshold=float(data["threshold"]), features=expected, info=data.get("info", {}),
                           trees=Trees.from_dict(data["trees"]))
            return cls(coef=tuple(float(c) for c in data["coef"]), intercept=float(data["intercept"]),
                       threshold=float(data["threshold"]), features=expected, info=data.get("info", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{where}: expected a logistic or gradient_boosting hs_fit calibration: {exc}") from None


def _pairs(curated: Any, nomenclature_codes: np.ndarray, seed: int) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """(texts, declared HS 2022 codes, labels, kind) of the calibration set; see the module docstring."""
    from .hs import parse_hs
    from .taxonomy import load_taxonomy

    tax = load_taxonomy()
    rng = np.random.default_rng(seed)
    rows = []
    for text, raw, note, cat in zip(curated["text"], curated["hs_code"], curated["note"], curated["category"]):
        code = parse_hs(raw)
        if code.digits and len(code.digits) >= 6:
            consistent = tax.category_for_hs(code.digits) == cat
            if consistent or note == "evasion":
                rows.append((text, code.digits[:6], note == "evasion"))
    own = [r for r in rows if not r[2]]
    texts, codes, labels, kinds = [], [], [], []
    for text, code, evasion in rows:
        texts.append(text); codes.append(code); labels.append(0 if evasion else 1)
        kinds.append("evasion" if evasion else "own")
    own_codes = np.asarray([c for _, c, _ in own])
    chapters = np.asarray([c[:2] for c in nomenclature_codes])
    for text, code, _ in own:
        other = own_codes[np.asarray([c[:2] != code[:2] for c in own_codes])]
        same = nomenclature_codes[(chapters == code[:2]) & (nomenclature_codes != code)]
        for pool, kind in ((other, "other_chapter"), (same, "same_chapter")):
            if len(pool):
                texts.append(text); codes.append(str(pool[rng.integers(len(pool))])); labels.append(0)
                kinds.append(kind)
    return texts, codes, np.asarray(labels), kinds


def fit_hs_fit(screener: "Screener", folder: Path | None = None, *, seed: int = 0, folds: int = 2,
               threshold: float | None = None, heads: bool = False,
               embed: Callable[[Sequence[str]], np.ndarray] | None = None) -> tuple[HSFitModel, dict[str, Any]]:
    """Fit the calibration on the curated lines with ``screener``'s text probabilities; returns the
    model and a report (cross-fitted ROC-AUC per negative kind, rates at the threshold).

    With ``heads`` the features also hold :data:`HEAD_FEATURES` from heading classifiers fitted like
    the indexes (on the documents that leave the fold's lines out, and on the nomenclature alone) on the
    embeddings ``embed(texts)`` returns (default: MiniLM through the on-disk embedding cache,
    :func:`dualuse.hs_heads.embed_documents`)."""
    return fit_hs_fits(screener, folder, seed=seed, folds=folds, threshold=threshold, variants=(heads,),
                       embed=embed)[heads]


def fit_hs_fits(screener: "Screener", folder: Path | None = None, *, seed: int = 0, folds: int = 2,
                threshold: float | None = None, variants: Sequence[bool] = (False, True),
                embed: Callable[[Sequence[str]], np.ndarray] | None = None) -> dict[bool, tuple[HSFitModel, dict[str, Any]]]:
    """:func:`fit_hs_fit` for each of ``variants`` (``heads`` False / True), computing the retrieval
    features, indexes and text probabilities they share once."""
    from .hs_suggest import HSSuggester, _TRAINING_DIR, nomenclature_documents
    import pandas as pd

    from .training import load_catalog, load_curated, split_catalog

    heads = any(variants)
    folder = folder or _TRAINING_DIR
    catalog, _ = split_catalog(load_catalog(folder, screener.taxonomy))  # the catalog's held-out fifth stays out
    curated = pd.concat([load_curated(folder, screener.taxonomy), catalog], ignore_index=True)
    base_texts, base_codes = nomenclature_documents(folder, curated=False)
    texts, codes, y, kinds = _pairs(curated, np.unique(base_codes), seed)
    fold_of = np.asarray([int(hashlib.sha256(t.encode()).hexdigest(), 16) % folds for t in texts])
    X = np.zeros((len(texts), len(FEATURES) + (len(HEAD_FEATURES) if heads else 0)))
    if heads:
        from .hs_heads import embed_documents, fit_heading_classifier

        embed = embed or embed_documents
        vectors = _EmbeddingTable(embed, [*texts, *nomenclature_documents(folder)[0]])
    proba = screener.text_proba(texts)
    labels = screener.taxonomy.ids
    cols = np.asarray([labels.index(str(screener.taxonomy.category_for_hs(c))) for c in codes])
    cat_fit = category_fit(proba, cols)
    for k in range(folds):
        held = frozenset(t for t, f in zip(texts, fold_of) if f == k)
        d_texts, d_codes = nomenclature_documents(folder, exclude_texts=held)
        index = HSSuggester().fit(d_texts, d_codes)
        rows = np.flatnonzero(fold_of == k)
        scores = index.declared_scores([texts[i] for i in rows], [codes[i] for i in rows])
        X[rows, : len(FEATURES)] = fit_features(scores, [texts[i] for i in rows])
        if heads:
            clf = fit_heading_classifier(vectors(d_texts), d_codes, d_texts, seed=seed)
            sub = [texts[i] for i in rows]
            X[rows, len(FEATURES):] = _heading_block(clf, vectors(sub), sub, [codes[i] for i in rows])
    # the same pairs against the nomenclature alone: descriptions unlike any curated line
    foreign = HSSuggester().fit(base_texts, base_codes)
    X_foreign = fit_features(foreign.declared_scores(texts, codes), texts)
    if heads:
        clf = fit_heading_classifier(vectors(base_texts), base_codes, base_texts, seed=seed)
        X_foreign = np.hstack([X_foreign, _heading_block(clf, vectors(texts), texts, codes)])
    out = {}
    for variant in variants:
        features = FEATURES + HEAD_FEATURES if variant else FEATURES
        out[variant] = _calibrate(X[:, : len(features)], X_foreign[:, : len(features)], y, kinds, fold_of, cat_fit,
                                  features, screener.describe(), seed=seed, folds=folds, threshold=threshold)
    return out


def _calibrate(X: np.ndarray, X_foreign: np.ndarray, y: np.ndarray, kinds: list[str], fold_of: np.ndarray,
               cat_fit: np.ndarray, features: tuple[str, ...], screener_info: str, *, seed: int, folds: int,
               threshold: float | None) -> tuple[HSFitModel, dict[str, Any]]:
    """The tree ensemble on the pairs' features (and their nomenclature-only view), its out-of-fold
    report and threshold."""
    from sklearn.metrics import roc_auc_score

    both_X, both_y = np.vstack([X, X_foreign]), np.r_[y, y]
    # out-of-fold predictions (a fold's pairs scored by an ensemble fitted without them) for the report
    # and the threshold, so both describe codes the calibration has never seen
    p, p_foreign = np.zeros(len(y)), np.zeros(len(y))
    for k in range(folds):
        tr = np.r_[fold_of != k, fold_of != k]
        m = _booster(seed).fit(both_X[tr], both_y[tr])
        rows = fold_of == k
        p[rows] = m.predict_proba(X[rows])[:, 1] * cat_fit[rows]
        p_foreign[rows] = m.predict_proba(X_foreign[rows])[:, 1] * cat_fit[rows]
    booster = _booster(seed).fit(both_X, both_y)
    trees = Trees.from_sklearn(booster)
    # the exported arrays must score exactly as scikit-learn does
    check = np.vstack([X[:2000], X_foreign[:2000]])
    if not np.allclose(trees.raw(check), booster.decision_function(check), atol=1e-6):
        raise AssertionError("the exported tree ensemble disagrees with scikit-learn")
    kinds_arr = np.asarray(kinds)
    report: dict[str, Any] = {"n": int(len(y)), "n_positive": int(y.sum()), "seed": seed, "folds": folds,
                              "model": f"HistGradientBoostingClassifier({GBT_PARAMS})", "n_nodes": int(len(trees.value))}
    for kind in ("other_chapter", "same_chapter", "evasion"):
        m = (kinds_arr == "own") | (kinds_arr == kind)
        if (kinds_arr == kind).any():
            report[f"auc_{kind}"] = round(float(roc_auc_score(y[m], p[m])), 4)
            report[f"auc_{kind}_nomenclature_only"] = round(float(roc_auc_score(y[m], p_foreign[m])), 4)
    if threshold is None:
        # the highest threshold that keeps at most FALSE_ALARM_RATE of correctly declared lines below
        # it: a mismatch flag must stay rare on honest declarations or analysts stop reading it
        threshold = float(np.quantile(p[y == 1], FALSE_ALARM_RATE))
        threshold = round(min(threshold, 0.5), 3)
    report["threshold"] = threshold
    report["positives_below_threshold"] = round(float((p[y == 1] < threshold).mean()), 4)
    for kind in ("other_chapter", "same_chapter", "evasion"):
        m = kinds_arr == kind
        if m.any():
            report[f"{kind}_below_threshold"] = round(float((p[m] < threshold).mean()), 4)
    model = HSFitModel(threshold=threshold, trees=trees, features=features,
                       info={"fitted_on": "models/training/curated + catalog (cross-fitted)",
                             "screener": screener_info, "report": report})
    return model, report


class _EmbeddingTable:
    """``embed`` once over the distinct texts it is built with; called with texts, returns their rows."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray], texts: Sequence[str]) -> None:
        self._texts = list(dict.fromkeys(texts))
        self._row = {t: i for i, t in enumerate(self._texts)}
        self._table = np.asarray(embed(self._texts), dtype=np.float32)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._row]
        if missing:
            raise ValueError(f"{len(missing)} texts were not embedded up front, e.g. {missing[0]!r}")
        return self._table[[self._row[t] for t in texts]]


def _heading_block(clf: Any, embeddings: np.ndarray, texts: Sequence[str], codes: Sequence[str],
                   batch: int = 2048) -> np.ndarray:
    """:func:`heading_features` of ``codes`` under the heading classifier ``clf``, in batches."""
    return np.vstack([heading_features(clf.proba(embeddings[s : s + batch], texts[s : s + batch]), clf.headings,
                                       codes[s : s + batch]) for s in range(0, len(codes), batch)])


#: the tree ensemble of ``text_fit`` (see the module docstring for how it was chosen)
GBT_PARAMS: dict[str, Any] = {"max_iter": 100, "max_leaf_nodes": 15, "learning_rate": 0.1}


def _booster(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**GBT_PARAMS, class_weight="balanced", random_state=seed)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dualuse.hs_fit``: refit both calibrations with the shipped model (retrieval only, and
    with the heading classifier of ``models/hs_heads``; ``--only`` one of them)."""
    data = Path(__file__).resolve().parent / "data"
    ap = argparse.ArgumentParser(prog="python -m dualuse.hs_fit", description=main.__doc__)
    ap.add_argument("--out", default=str(data / _FILE), help="the retrieval-only calibration")
    ap.add_argument("--out-heads", default=str(data / _FILE_HEADS), help="the calibration with the heading classifier")
    ap.add_argument("--only", choices=("retrieval", "heads"), default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from .api import load

    outs = {False: args.out, True: args.out_heads}
    variants = [v for v in (False, True) if args.only in (None, "heads" if v else "retrieval")]
    # the model's own text probabilities: the heading prior's n-gram part was fitted on these very lines
    for heads, (model, report) in fit_hs_fits(load(heading_prior=False), seed=args.seed, variants=variants).items():
        model.save(outs[heads])
        logger.info("%s", json.dumps(report, indent=2))
        logger.info("wrote %s", outs[heads])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
