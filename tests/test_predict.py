"""The prediction API: shapes, order, flags for bad input, errors for wrong arguments."""

import math
from dataclasses import FrozenInstanceError

import pytest

import dualuse
from dualuse.errors import DualUseError, InvalidArgumentError
from dualuse.prediction import OUTPUT_COLUMNS, Prediction, Source


def test_public_api_names():
    for name in dualuse.__all__:
        assert hasattr(dualuse, name)
    assert isinstance(dualuse.__version__, str)


def test_predict_one_fields(rules_screener):
    p = rules_screener.predict_one("TOY DRONE WITH HD CAMERA FOLDABLE 4K", hs_code="9503.00")
    assert isinstance(p, Prediction)
    assert p.source is Source.RULES
    assert 0.0 <= p.confidence <= 1.0
    assert len(p.top) == 3 and p.top[0][0] == p.category
    assert [s for _, s in p.top] == sorted((s for _, s in p.top), reverse=True)
    assert p.declared_hs == "950300" and p.declared_hs_raw == "9503.00"
    assert p.declared_hs_category == "none"
    assert p.declared_hs_edition == "HS2022"
    with pytest.raises(FrozenInstanceError):
        p.category = "x"  # type: ignore[misc]


def test_batch_same_order_and_length(rules_screener):
    texts = ["QUADCOPTER DJI MAVIC 3", "CERAMIC FLOOR TILES", "QUADCOPTER DJI MAVIC 3", "ПОДШИПНИК SKF 6205"]
    preds = rules_screener.predict(texts, hs_codes=["8806.22", None, "9503", "8482.10"])
    assert len(preds) == 4
    assert preds[0].declared_hs == "880622" and preds[2].declared_hs == "9503"
    assert preds[3].declared_hs_category == "bearings"
    assert rules_screener.predict([]) == []


def test_predict_accepts_iterables(rules_screener):
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    a = rules_screener.predict(np.array(["LITHIUM BATTERY 18650", "TEA"]))
    b = rules_screener.predict(pd.Series(["LITHIUM BATTERY 18650", "TEA"]))
    c = rules_screener.predict(t for t in ["LITHIUM BATTERY 18650", "TEA"])
    assert [p.category for p in a] == [p.category for p in b] == [p.category for p in c]


@pytest.mark.parametrize(
    "value, flag",
    [
        ("", "empty_text"),
        ("   \t ", "empty_text"),
        (None, "missing_text"),
        (math.nan, "missing_text"),
        (12345, "non_string_text"),
        (b"\xd0\x94\xd0\xa0\xd0\x9e\xd0\x9d", "non_string_text"),
        ("QUADCOPTER " * 20_000, "text_truncated"),
        ("QUAD\x00COPTER\x07 DJI", "control_chars"),
        ("КВAДРОКОПТЕР", "mixed_scripts"),
    ],
)
def test_bad_input_gets_a_flag_and_a_prediction(rules_screener, value, flag):
    preds = rules_screener.predict(["LITHIUM BATTERY", value, "TEA"])
    assert len(preds) == 3
    assert flag in preds[1].flags
    assert preds[1].category in rules_screener.taxonomy
    assert preds[0].flags == () and preds[2].flags == ()


def test_object_with_broken_str_does_not_lose_the_batch(rules_screener):
    class Broken:
        def __str__(self):
            raise RuntimeError("boom")

    preds = rules_screener.predict(["TEA", Broken()])
    assert "non_string_text" in preds[1].flags


def test_empty_text_with_code_takes_category_from_code(rules_screener):
    p = rules_screener.predict_one("", hs_code="8542.31")
    assert p.category == "integrated_circuits"
    assert "empty_text" in p.flags
    assert p.chpl_tier == "TIER_1"


def test_invalid_hs_flag_keeps_row(rules_screener):
    p = rules_screener.predict_one("CERAMIC TILES", hs_code="XX12")
    assert "invalid_hs" in p.flags
    assert p.declared_hs is None and p.declared_hs_raw == "XX12"
    assert p.declared_hs_category is None and not p.hs_mismatch


def test_same_text_different_raw_codes_keep_their_raw(rules_screener):
    a, b = rules_screener.predict(["LITHIUM BATTERY", "LITHIUM BATTERY"], ["8507.60", "850760"])
    assert a.declared_hs == b.declared_hs == "850760"
    assert (a.declared_hs_raw, b.declared_hs_raw) == ("8507.60", "850760")


@pytest.mark.parametrize("bad", ["ONE STRING", b"bytes", 42, None])
def test_wrong_texts_type_raises_clear_error(rules_screener, bad):
    with pytest.raises(InvalidArgumentError, match="sequence of texts"):
        rules_screener.predict(bad)


def test_length_mismatch_raises(rules_screener):
    with pytest.raises(InvalidArgumentError, match="one entry per text: got 2 texts and 1 codes"):
        rules_screener.predict(["A", "B"], hs_codes=["8806"])
    assert issubclass(InvalidArgumentError, DualUseError)


def test_to_columns_matches_output_columns(rules_screener):
    p = rules_screener.predict_one("КВАДРОКОПТЕР", hs_code="9503")
    cols = p.to_columns()
    assert tuple(cols) == OUTPUT_COLUMNS
    d = p.to_dict()
    assert d["category"] == p.category and isinstance(d["flags"], list)


def test_describe_says_rules_only(rules_screener):
    assert "rules only" in rules_screener.describe()


class _FixedModel:
    """A text model that gives every line the same probabilities (``none`` on top)."""

    def __init__(self, labels: tuple[str, ...], probs: dict[str, float]) -> None:
        self.classes_ = list(labels)
        self._row = [probs.get(c, 0.0) for c in labels]

    def predict_proba(self, X):  # type: ignore[no-untyped-def]
        import numpy as np

        return np.tile(np.asarray(self._row, dtype=float), (len(X), 1))


def test_rules_override_and_its_optional_model_floor():
    from dualuse import Screener, load_taxonomy

    labels = load_taxonomy().ids
    text = "НИТЬ АРАМИДНАЯ 1670 ДТЕКС"  # an explicit aramid cue for the rules
    confident_none = {"none": 0.9, "aramid_fibre": 0.05, "composites": 0.05}
    # by default any explicit cue overrides a `none`, however sure the model is
    p = Screener(model=_FixedModel(labels, confident_none)).predict_one(text)
    assert p.category == "aramid_fibre" and "rules_override" in p.flags and p.source.value == "rules"
    # with a floor, a model that gives the cue's category less than it keeps its `none` ...
    p = Screener(model=_FixedModel(labels, confident_none), override_min_model_p=0.1).predict_one(text)
    assert p.category == "none" and "rules_override" not in p.flags and p.source.value == "model"
    # ... and an unsure one is still overridden
    unsure = {"none": 0.6, "aramid_fibre": 0.3, "composites": 0.1}
    p = Screener(model=_FixedModel(labels, unsure), override_min_model_p=0.1).predict_one(text)
    assert p.category == "aramid_fibre" and "rules_override" in p.flags
