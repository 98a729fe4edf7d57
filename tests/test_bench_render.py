"""The benchmark reports: interval tables and re-rendering from the committed results (fast, no model)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"


@pytest.fixture(scope="module")
def common():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("_common")
    finally:
        sys.path.remove(str(BENCH))


def _risk(tp: int, n_risk: int, fp: int, n_none: int) -> dict:
    return {"risk": {"n_risk": n_risk, "n_none": n_none, "tp": tp, "fp": fp,
                     "recall": tp / n_risk, "fpr_none": fp / n_none}}


def test_interval_table_says_met_missed_or_undecided(common) -> None:
    rows = [("a", {"small": _risk(18, 23, 28, 609), "big": _risk(900, 1000, 10, 5000)}),
            ("b", {"small": _risk(11, 28, 80, 609)})]
    table = common.interval_table(rows, ["small", "big"]).splitlines()
    assert len(table) == 2 + 3  # header, rule, one row per system and set present
    a_small, a_big, b_small = table[2:]
    assert "18/23 = 0.78 (0.58–0.90)" in a_small and "no (0.80 inside the interval)" in a_small
    assert "28/609 = 4.6 % (3.2–6.6 %)" in a_small and "yes (5 % inside the interval)" in a_small
    assert a_big.count("| yes |") == 2
    assert "**no** (interval below the target)" in b_small and "**no** (interval above the target)" in b_small


def test_risk_counts_of_older_results_come_back_from_the_rates(common) -> None:
    old = {"n_risk": 23, "n_none": 609, "recall": 18 / 23, "fpr_none": 28 / 609}
    assert common.risk_counts(old) == (18, 23, 28, 609)
    assert common.risk_counts({**old, "tp": 17, "fp": 3}) == (17, 23, 3, 609)


@pytest.mark.parametrize("script,results", [("model_eval", "model_eval.json"), ("compare", "compare.json")])
def test_committed_results_render_with_intervals(common, script: str, results: str) -> None:
    path = BENCH / "results" / results
    if not path.is_file():
        pytest.skip(f"{path} is not committed")
    sys.path.insert(0, str(BENCH))
    try:
        module = importlib.import_module(script)
    finally:
        sys.path.remove(str(BENCH))
    text = module.render(json.loads(path.read_text(encoding="utf-8")))
    assert "95 % interval" in text and "| hscodecomp |" in text and "| atlas |" in text
