"""Evaluation figures: risk detection with its counts and 95 % Wilson intervals."""

from __future__ import annotations

import math

import pytest

from dualuse.errors import DualUseError, InvalidArgumentError
from dualuse.metrics import proportion_interval, risk_detection

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The textbook Wilson score interval, written out independently of scipy."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(18, 23), (19, 23), (11, 28), (28, 609), (1, 3), (0, 10), (10, 10)])
def test_proportion_interval_is_the_wilson_interval(k: int, n: int) -> None:
    lo, hi = proportion_interval(k, n)
    elo, ehi = wilson(k, n)
    assert lo == pytest.approx(max(elo, 0.0), abs=1e-9) and hi == pytest.approx(min(ehi, 1.0), abs=1e-9)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_small_sets_give_wide_intervals_and_wider_at_higher_confidence() -> None:
    lo, hi = proportion_interval(18, 23)  # the fast model's HSCodeComp recall
    assert lo < 0.80 < hi
    lo99, hi99 = proportion_interval(18, 23, confidence=0.99)
    assert lo99 < lo and hi99 > hi
    lo_big, hi_big = proportion_interval(861, 927)
    assert hi_big - lo_big < (hi - lo) / 5


def test_proportion_interval_of_nothing_is_nan() -> None:
    assert all(math.isnan(x) for x in proportion_interval(0, 0))


@pytest.mark.parametrize("args,match", [
    ((5, 3), "0 <= successes <= trials"),
    ((-1, 3), "0 <= successes <= trials"),
    ((0.7, 10), "whole counts"),
    ((True, 10), "whole counts"),
    ((1, 10, 1.5), "strictly between 0 and 1"),
])
def test_proportion_interval_refuses_bad_input_with_the_reason(args: tuple, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match) as info:
        proportion_interval(*args)
    assert isinstance(info.value, DualUseError)


def test_risk_detection_reports_counts_rates_and_intervals() -> None:
    y_true = ["uav"] * 4 + ["none"] * 6
    y_pred = ["uav", "uav", "helmets", "none"] + ["uav", "none", "none", "none", "none", "none"]
    r = risk_detection(y_true, y_pred)
    assert (r["n_risk"], r["n_none"], r["tp"], r["fp"], r["fn"]) == (4, 6, 3, 1, 1)
    assert r["recall"] == pytest.approx(3 / 4) and r["precision"] == pytest.approx(3 / 4)
    assert r["fpr_none"] == pytest.approx(1 / 6) and r["category_recall"] == pytest.approx(2 / 4)
    assert r["recall_ci"] == pytest.approx(list(wilson(3, 4)))
    assert r["fpr_none_ci"] == pytest.approx(list(wilson(1, 6)))
    assert r["precision_ci"] == pytest.approx(list(wilson(3, 4)))


def test_risk_detection_without_risk_rows_gives_nan_not_an_error() -> None:
    r = risk_detection(["none", "none"], ["none", "uav"])
    assert r["tp"] == 0 and r["fp"] == 1 and math.isnan(r["recall"])
    assert all(math.isnan(x) for x in r["recall_ci"])
    assert r["fpr_none_ci"] == pytest.approx(list(wilson(1, 2)))
