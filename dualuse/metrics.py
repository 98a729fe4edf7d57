"""Evaluation figures used by ``dualuse train`` and the benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, f1_score

from .errors import InvalidArgumentError

__all__ = ["classification_report", "risk_detection", "expected_calibration_error", "proportion_interval"]


def proportion_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / trials`` (``scipy.stats.binomtest``).

    Labelled sets of real declarations are small: 18 of 23 risk rows found is a recall of 0.78 whose 95 %
    interval runs from 0.58 to 0.90, so that set can neither confirm nor refute a target of 0.80. The
    benchmarks print these intervals beside the real-world recall and false-positive rates.
    ``(nan, nan)`` when ``trials`` is 0.
    """
    if isinstance(successes, bool) or isinstance(trials, bool) or not all(
            isinstance(v, (int, np.integer)) for v in (successes, trials)):
        raise InvalidArgumentError(
            f"proportion_interval expects whole counts, got successes={successes!r}, trials={trials!r}; "
            "pass the number of hits and the number of rows, not rates")
    if not 0 <= successes <= trials:
        raise InvalidArgumentError(
            f"proportion_interval expects 0 <= successes <= trials, got successes={successes}, trials={trials}")
    if not 0.0 < confidence < 1.0:
        raise InvalidArgumentError(f"confidence must lie strictly between 0 and 1, got {confidence!r} (e.g. 0.95)")
    if trials == 0:
        return (math.nan, math.nan)
    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 15) -> float:
    """Top-label ECE with equal-width bins, from each prediction's confidence and whether it was right."""
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    if len(conf) == 0:
        return float("nan")
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(ok[m].mean() - conf[m].mean())
    return float(ece)


def risk_detection(y_true: Sequence[str], y_pred: Sequence[str], none: str = "none") -> dict[str, object]:
    """Binary "is a risk category" view: precision, recall, false-positive rate on ``none`` rows, the
    counts behind them (``tp``, ``fp``, ``fn``) and a 95 % Wilson interval for each rate
    (``precision_ci``, ``recall_ci``, ``fpr_none_ci``, as ``[low, high]``)."""
    t = np.asarray(y_true) != none
    p = np.asarray(y_pred) != none
    tp = int((t & p).sum())
    fp = int((~t & p).sum())
    fn = int((t & ~p).sum())
    n_none = int((~t).sum())
    return {
        "n_risk": int(t.sum()),
        "n_none": n_none,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "fpr_none": fp / n_none if n_none else float("nan"),
        # right category among the true risk rows (not just "some risk")
        "category_recall": float(np.mean(np.asarray(y_pred)[t] == np.asarray(y_true)[t])) if t.any() else float("nan"),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision_ci": list(proportion_interval(tp, tp + fp)),
        "recall_ci": list(proportion_interval(tp, tp + fn)),
        "fpr_none_ci": list(proportion_interval(fp, n_none)),
    }


def classification_report(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    *,
    confidence: Sequence[float] | None = None,
    langs: Sequence[str] | None = None,
    min_support: int = 1,
) -> dict[str, object]:
    """macro-F1, accuracy, per-category F1 (categories with ≥ ``min_support`` true rows), per-language
    accuracy, ECE (when confidences are given) and the risk-detection view."""
    yt = np.asarray(y_true, dtype=object)
    yp = np.asarray(y_pred, dtype=object)
    labels, counts = np.unique(yt, return_counts=True)
    kept = [str(l) for l, c in zip(labels, counts) if c >= min_support]
    per_cat = f1_score(yt, yp, labels=kept, average=None, zero_division=0) if kept else []
    out: dict[str, object] = {
        "n": int(len(yt)),
        "macro_f1": float(np.mean(per_cat)) if len(kept) else float("nan"),
        "accuracy": float(accuracy_score(yt, yp)) if len(yt) else float("nan"),
        "per_category_f1": {c: round(float(f), 4) for c, f in zip(kept, per_cat)},
        "support": {str(l): int(c) for l, c in zip(labels, counts)},
        "risk": risk_detection(yt, yp),
    }
    if langs is not None:
        la = np.asarray(langs)
        out["accuracy_by_lang"] = {
            str(l): float(np.mean(yt[la == l] == yp[la == l])) for l in sorted(set(la.tolist()))
        }
    if confidence is not None:
        out["ece"] = expected_calibration_error(confidence, yt == yp)
    return out
