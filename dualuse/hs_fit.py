"""``hs_fit``: how well a declared HS code fits a description, in [0, 1].

``hs_fit = text_fit × category_fit``, the code read as HS 2022 (HS 2017 codes already mapped by
:func:`dualuse.hs.parse_hs`):

* ``category_fit`` = the text-only probability (model, or rules) of the code's taxonomy category divided
  by that of the text's most likely category: 1 when the code's category is the one the text supports,
  near 0 when the text clearly belongs elsewhere (a quadcopter under 9503 toys, ballistic plates under
  3926 plastics). It comes from the calibrated classifier, so it follows the model when it is retrained.
* ``text_fit`` = a logistic calibration of twelve retrieval features (:data:`FEATURES`, all from
  :meth:`dualuse.hs_suggest.HSSuggester.declared_scores`, which scores subheadings only within the
  declared chapter and chapters / headings by their centroids, so it stays cheap):

  * ``s6`` / ``s4`` — retrieval similarity of the description to the declared subheading's / heading's
    nomenclature texts;
  * ``chapter_gap`` — how far the declared subheading is below the best subheading of its own chapter;
  * ``latin`` — the share of the text's letters that are Latin, alone and times ``s6`` and ``s4``: the
    nomenclature texts are English, so a low similarity is evidence against the code for an English
    description but not for a Russian or Chinese one (whose only documents are the curated lines);
  * ``c2``, ``c2_gap``, ``c2_rank`` — cosine to the declared chapter's centroid, its gap to the best
    chapter's and ``log1p`` of the number of chapters that beat it; ``c4``, ``c4_gap``, ``c4_rank`` the
    same for the declared heading among all 1,228 headings. These relative features answer "is there a
    clearly better place for this text elsewhere in the nomenclature?", which the within-chapter
    features cannot see. Chosen on the held-out curated lines (``split_curated``; calibration fitted on
    the training split): ROC-AUC against evasion codes 0.845 → 0.880, other-chapter swaps 0.985 →
    0.986, same-chapter 0.933 → 0.936; in-chapter subheading / heading ranks added nothing and were
    left out. Cost, CPU time measured side by side on 6,000 curated lines: ``declared_scores`` +
    :func:`fit_features` 0.21 ms a line against 0.15–0.18 ms before, in a screener path (model + rules +
    ``hs_fit``) of about 1.0 ms a line, so about 1.06× the path's cost before.

The logistic regression is fitted on the curated training lines (``models/training/curated``):
positives are lines with their own code when its category is the line's category (``evasion`` lines,
and lines such as ballistic plates under 3926.90 whose correct tariff code lies outside the risk
category, are not positives), negatives are ``evasion`` lines
with their declared code plus, for each positive, its code swapped for one of another chapter (from
another curated line) and one of the same chapter (another subheading of the chapter). Classes are
weighted equally, so ``text_fit = 0.5`` means even odds. The similarities come from an index that
leaves the line's own half of the curated lines out (two-fold cross-fitting), as a new description
would see it. The regression sees every pair twice: with those features, and with features from an
index of the nomenclature texts alone (no curated lines), so it has also seen descriptions unlike every
indexed document, as real declarations in other words are (held-out curated lines, nomenclature-only
view: same-chapter AUC 0.858 → 0.867, evasion 0.861 → 0.853, cross-fitted view 0.936 → 0.940 and
0.880 → 0.883; the report of ``python -m dualuse.hs_fit`` gives both views). The threshold of
``hs_mismatch`` is the ``hs_fit`` below which 3 % (``FALSE_ALARM_RATE``) of the correctly declared
curated lines fall (capped at 0.5), on the cross-fitted view. Measured once afterwards on the real-world
sets (``benchmarks/README.md``): ROC-AUC rose a little (HSCodeComp 0.822 → 0.838 across chapters,
ATLAS 0.835 → 0.839), and real descriptions now get higher fits overall, gold and swapped codes alike:
``hs_mismatch`` fires on 9 % / 15 % of gold codes (22 % before) but also on only 18 % / 37 % of
other-chapter swaps (75 % / 85 % before). The coefficients are shipped in
``dualuse/data/hs_fit.json``; refit them after retraining the model with ``python -m dualuse.hs_fit``
(``make hs-fit``). ``../shared/data/realworld`` is never read here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ModelLoadError

if TYPE_CHECKING:
    from .hs_suggest import DeclaredScores, HSSuggester
    from .predict import Screener

__all__ = ["HSFitModel", "FEATURES", "fit_features", "fit_hs_fit"]

logger = logging.getLogger(__name__)

FEATURES: tuple[str, ...] = ("s6", "s4", "chapter_gap", "latin", "latin_s6", "latin_s4",
                             "c2", "c2_gap", "c2_rank", "c4", "c4_gap", "c4_rank")
#: share of correctly declared curated lines allowed below the mismatch threshold
FALSE_ALARM_RATE = 0.03
_FILE = "hs_fit.json"


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


def category_fit(text_proba: np.ndarray, code_columns: np.ndarray) -> np.ndarray:
    """Probability of each code's category (column index per row) over the text's best category's."""
    p = np.asarray(text_proba, dtype=np.float64)
    rows = np.arange(len(p))
    best = p.max(axis=1)
    best[best <= 0] = 1.0
    return p[rows, code_columns] / best


@dataclass(frozen=True)
class HSFitModel:
    """The logistic calibration of ``hs_fit`` and the threshold below which a code is a mismatch."""

    coef: tuple[float, ...]
    intercept: float
    threshold: float = 0.2
    features: tuple[str, ...] = FEATURES
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    def text_fit(self, X: np.ndarray) -> np.ndarray:
        z = np.asarray(X, dtype=np.float64) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def predict(self, X: np.ndarray, category_fit: np.ndarray) -> np.ndarray:
        """``hs_fit`` = ``text_fit(X)`` × ``category_fit``."""
        return self.text_fit(X) * np.clip(np.asarray(category_fit, dtype=np.float64), 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"format": "dualuse-hs-fit", "features": list(self.features), "coef": list(self.coef),
                "intercept": self.intercept, "threshold": self.threshold, "info": self.info}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path | None = None) -> "HSFitModel":
        """The packaged calibration (``dualuse/data/hs_fit.json``), or the file at ``path``."""
        try:
            if path is None:
                text = (resources.files("dualuse") / "data" / _FILE).read_text(encoding="utf-8")
            else:
                text = Path(path).read_text(encoding="utf-8")
            data = json.loads(text)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read the hs_fit calibration {path or _FILE}: {exc}") from None
        if data.get("format") != "dualuse-hs-fit" or tuple(data.get("features", ())) != FEATURES:
            raise ModelLoadError(f"{path or _FILE}: not an hs_fit calibration with features {FEATURES}")
        return cls(coef=tuple(float(c) for c in data["coef"]), intercept=float(data["intercept"]),
                   threshold=float(data["threshold"]), info=data.get("info", {}))


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
               threshold: float | None = None) -> tuple[HSFitModel, dict[str, Any]]:
    """Fit the calibration on the curated lines with ``screener``'s text probabilities; returns the
    model and a report (cross-fitted ROC-AUC per negative kind, rates at the threshold)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from .hs_suggest import HSSuggester, _TRAINING_DIR, nomenclature_documents
    from .training import load_curated

    folder = folder or _TRAINING_DIR
    curated = load_curated(folder, screener.taxonomy)
    base_texts, base_codes = nomenclature_documents(folder, curated=False)
    texts, codes, y, kinds = _pairs(curated, np.unique(base_codes), seed)
    fold_of = np.asarray([int(hashlib.sha256(t.encode()).hexdigest(), 16) % folds for t in texts])
    X = np.zeros((len(texts), len(FEATURES)))
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
        X[rows] = fit_features(scores, [texts[i] for i in rows])
    # the same pairs against the nomenclature alone: descriptions unlike any curated line
    foreign = HSSuggester().fit(base_texts, base_codes)
    X_foreign = fit_features(foreign.declared_scores(texts, codes), texts)
    lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(np.vstack([X, X_foreign]), np.r_[y, y])
    p = lr.predict_proba(X)[:, 1] * cat_fit
    kinds_arr = np.asarray(kinds)
    report: dict[str, Any] = {"n": int(len(y)), "n_positive": int(y.sum()), "seed": seed, "folds": folds}
    p_foreign = lr.predict_proba(X_foreign)[:, 1] * cat_fit
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
    model = HSFitModel(coef=tuple(round(float(c), 6) for c in lr.coef_[0]), intercept=round(float(lr.intercept_[0]), 6),
                       threshold=threshold, info={"fitted_on": "models/training/curated (cross-fitted)",
                                                  "screener": screener.describe(), "report": report})
    return model, report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dualuse.hs_fit [--out PATH]``: refit the calibration with the shipped model."""
    ap = argparse.ArgumentParser(prog="python -m dualuse.hs_fit", description=main.__doc__)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "data" / _FILE))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from .api import load

    model, report = fit_hs_fit(load(), seed=args.seed)
    model.save(args.out)
    logger.info("%s", json.dumps(report, indent=2))
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
