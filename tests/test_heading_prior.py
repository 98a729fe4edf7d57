"""The heading prior: the heading classifier's n-gram part as category evidence in the screener.

Fast tests fit a tiny n-gram part on a few lines; the e2e test uses the shipped one."""

from __future__ import annotations

import numpy as np
import pytest

from dualuse import Screener
from dualuse.errors import InvalidArgumentError
from dualuse.heading_prior import HeadingPrior
from dualuse.hs_heads import SHIPPED_HEADS, HeadingClassifier, TextHeads

from .test_predict import _FixedModel

LINES = [
    ("QUADCOPTER DRONE WITH CAMERA", "8806"), ("quadcopter frame carbon", "8806"), ("drone quadcopter gps", "8806"),
    ("plastic toy car for kids", "9503"), ("toy doll for kids", "9503"), ("kids toy puzzle plastic", "9503"),
    ("copper scrap berry", "7404"), ("berry copper cuttings", "7404"), ("copper waste scrap", "7404"),
]


@pytest.fixture(scope="module")
def prior(taxonomy) -> HeadingPrior:
    texts, headings = zip(*LINES)
    classes = np.array(sorted(set(headings)))
    text = TextHeads.fit(list(texts), list(headings), classes, alpha=1e-5, epochs=30, keep=0)
    heads = HeadingClassifier(classes, np.zeros((3, 4), np.float32), np.zeros(3, np.float32), text=text)
    return HeadingPrior.from_heads(heads, taxonomy)


def test_shares_map_each_heading_through_the_taxonomy(prior, taxonomy):
    labels = list(taxonomy.ids)
    assert prior.headings.tolist() == ["7404", "8806", "9503"] and prior.unmapped == ("body_armour",)
    mapped = [j for j, c in enumerate(labels) if c != "body_armour"]
    assert np.allclose(prior.shares[:, mapped].sum(axis=1), 1.0)
    # no heading identifies body armour (vests are declared as garments): it gets none's evidence
    assert np.array_equal(prior.shares[:, labels.index("body_armour")], prior.shares[:, labels.index("none")])
    assert prior.shares[1, labels.index("uav")] == 1.0  # every 8806 subheading is a drone
    assert prior.shares[2, labels.index("none")] == 1.0 and prior.shares[0, labels.index("none")] == 1.0


def test_combine_multiplies_the_heading_evidence_in(prior, taxonomy):
    labels = list(taxonomy.ids)
    p = np.full((2, len(labels)), 0.01)
    p[:, labels.index("uav")] = p[:, labels.index("none")] = 0.4
    p /= p.sum(axis=1, keepdims=True)
    out, best, best_p = prior.combine(p, ["quadcopter carbon frame", "plastic toy for kids"])
    assert out.shape == p.shape and np.allclose(out.sum(axis=1), 1.0) and best.tolist() == [1, 2]
    assert ((best_p > 0.5) & (best_p <= 1.0)).all()
    # read in batches of one: the same result
    one = prior.combine(p, ["quadcopter carbon frame", "plastic toy for kids"], batch_size=1)
    assert np.allclose(one[0], out) and one[1].tolist() == [1, 2]
    assert labels[int(out[0].argmax())] == "uav" and labels[int(out[1].argmax())] == "none"
    assert prior.describe(1, 0.9) == "reads as HS heading 8806 (Unmanned aircraft) p=0.90 -> uav"
    assert prior.describe(2, 0.8).startswith("reads as HS heading 9503 (") and prior.describe(2, 0.8).endswith("-> none")
    same, _, _ = HeadingPrior(prior.text, prior.headings, prior.shares, prior.labels, weight=0.0).combine(p, ["x", "y"])
    assert np.allclose(same, p)
    with pytest.raises(InvalidArgumentError, match="shape"):
        prior.combine(p[:1], ["a", "b"])


def test_bad_parameters_and_foreign_labels_are_refused(prior, taxonomy):
    with pytest.raises(InvalidArgumentError, match="sharpness > 0"):
        HeadingPrior(prior.text, prior.headings, prior.shares, prior.labels, sharpness=0.0)
    with pytest.raises(InvalidArgumentError, match="headings × labels"):
        HeadingPrior(prior.text, prior.headings, prior.shares[:, :3], prior.labels)
    foreign = HeadingPrior(prior.text, prior.headings, prior.shares[:, ::-1].copy(), prior.labels[::-1])
    with pytest.raises(InvalidArgumentError, match="taxonomy"):
        Screener(model=_FixedModel(taxonomy.ids, {"none": 1.0}), heading_prior=foreign)
    with pytest.raises(InvalidArgumentError, match="n-gram text part"):
        HeadingPrior.from_heads(HeadingClassifier(prior.headings, np.zeros((3, 4), np.float32),
                                                  np.zeros(3, np.float32)), taxonomy)


def test_screener_applies_the_prior_to_the_model_and_says_so(prior, taxonomy):
    unsure = {"none": 0.5, "uav": 0.45, "aerospace": 0.05}
    # rules_override off: the rules would read "quadcopter" themselves
    plain = Screener(model=_FixedModel(taxonomy.ids, unsure), rules_override=None)
    with_prior = Screener(model=_FixedModel(taxonomy.ids, unsure), heading_prior=prior, rules_override=None)
    line = "quadcopter carbon frame"
    a, b = plain.predict_one(line), with_prior.predict_one(line)
    assert a.category == "none" and "heading_prior" not in a.flags
    assert b.category == "uav" and b.source.value == "model" and "heading_prior" in b.flags
    assert any(e.startswith("reads as HS heading 8806") for e in b.evidence)
    assert "model: none p=0.50" in b.evidence  # the model's own probability stays visible
    # a line the prior agrees with is not flagged; an empty line never reaches it
    toy = with_prior.predict_one("plastic toy for kids")
    assert toy.category == "none" and "heading_prior" not in toy.flags
    assert with_prior.predict_one("").flags == ("empty_text",)


def test_near_certain_model_keeps_none_against_a_rules_cue(taxonomy):
    line = "НИТЬ АРАМИДНАЯ"
    sure = {"none": 0.995, "aramid_fibre": 0.005}
    p = Screener(model=_FixedModel(taxonomy.ids, sure)).predict_one(line)
    assert p.category == "none" and "rules_override" not in p.flags
    p = Screener(model=_FixedModel(taxonomy.ids, sure), override_max_none_p=1.0).predict_one(line)
    assert p.category == "aramid_fibre" and "rules_override" in p.flags
    p = Screener(model=_FixedModel(taxonomy.ids, {"none": 0.9, "aramid_fibre": 0.1})).predict_one(line)
    assert p.category == "aramid_fibre" and "rules_override" in p.flags
    # the limit (0.97) is inclusive: at it the model keeps none, just below it the cue wins
    at = Screener(model=_FixedModel(taxonomy.ids, {"none": 0.97, "aramid_fibre": 0.03})).predict_one(line)
    below = Screener(model=_FixedModel(taxonomy.ids, {"none": 0.96, "aramid_fibre": 0.04})).predict_one(line)
    assert (at.category, below.category) == ("none", "aramid_fibre")


def _stub_heads(text: TextHeads, dim: int = 16) -> HeadingClassifier:
    """A heading classifier whose embedding part (stub encoder, ``dim`` dims) reads every text as 8806."""
    coef = np.zeros((3, dim), np.float32)
    intercept = np.array([0.0, 6.0, 0.0], np.float32)  # rows: 7404, 8806, 9503
    return HeadingClassifier(np.array(["7404", "8806", "9503"]), coef, intercept, {"encoder": "stub"}, text)


def test_the_embedding_part_adds_its_evidence_and_needs_embeddings(prior, taxonomy):
    from dualuse.heading_prior import (EMBEDDING_PRIOR_SHARPNESS, EMBEDDING_PRIOR_WEIGHT, HEADING_PRIOR_SHARPNESS,
                                       HEADING_PRIOR_WEIGHT)

    full = HeadingPrior.from_heads(_stub_heads(prior.text, dim=4), taxonomy, embeddings=True)
    assert full.needs_embeddings and not prior.needs_embeddings and full.encoder == "stub"
    assert (full.sharpness, full.weight) == (EMBEDDING_PRIOR_SHARPNESS, EMBEDDING_PRIOR_WEIGHT)
    assert (prior.sharpness, prior.weight) == (HEADING_PRIOR_SHARPNESS, HEADING_PRIOR_WEIGHT)
    labels = list(taxonomy.ids)
    p = np.full((1, len(labels)), 0.01)
    p[:, labels.index("uav")] = p[:, labels.index("none")] = 0.4
    p /= p.sum(axis=1, keepdims=True)
    toy = ["plastic toy for kids"]
    emb = np.ones((1, 4), np.float32)
    # the n-gram part reads a toy; the embedding part (intercept 6 on 8806) pulls towards drones
    assert prior.heading_proba(toy).argmax() == 2
    hp = full.heading_proba(toy, emb)
    assert hp[0, 1] > prior.heading_proba(toy)[0, 1] and np.allclose(hp.sum(), 1.0)
    without = HeadingPrior.from_heads(_stub_heads(prior.text, dim=4), taxonomy, embeddings=False,
                                      sharpness=EMBEDDING_PRIOR_SHARPNESS, weight=EMBEDDING_PRIOR_WEIGHT)
    out, _, _ = full.combine(p, toy, embeddings=emb)
    base, _, _ = without.combine(p, toy)
    assert out[0, labels.index("uav")] > base[0, labels.index("uav")]
    with pytest.raises(InvalidArgumentError, match="also reads stub embeddings"):
        full.combine(p, toy)
    with pytest.raises(InvalidArgumentError, match=r"shape \(1, 4\)"):
        full.combine(p, toy, embeddings=np.ones((1, 3), np.float32))
    with pytest.raises(InvalidArgumentError, match="embedding part of 3 rows"):
        HeadingPrior(prior.text, prior.headings, prior.shares, prior.labels, coef=np.zeros((2, 4), np.float32),
                     intercept=np.zeros(2, np.float32))


def test_screener_hands_the_models_embeddings_to_the_prior_once(prior, taxonomy):
    from dualuse.model import DualUseClassifier

    texts = ["QUADCOPTER DRONE WITH CAMERA", "drone quadcopter gps", "FPV DRONE FRAME", "КВАДРОКОПТЕР",
             "plastic toy car for kids", "toy doll for kids", "CERAMIC FLOOR TILES", "COTTON T-SHIRTS"]
    model = DualUseClassifier(encoder="stub", n_char_features=2**10, calibration_folds=0).fit(
        texts, ["uav"] * 4 + ["none"] * 4)
    full = HeadingPrior.from_heads(_stub_heads(prior.text), taxonomy, embeddings=True)
    s = Screener(model=model, heading_prior=full, rules_override=None)
    assert "+ heading prior (n-grams + stub) +" in s.describe()
    encoder = model._builder().encoder
    seen: list[str] = []
    encode = encoder.encode
    encoder.encode = lambda t, **kw: (seen.extend(t), encode(t, **kw))[1]  # type: ignore[method-assign]
    lines = ["FPV DRONE 5 INCH", "toy doll", "CERAMIC TILES 60X60"]
    preds = s.predict(lines)
    assert sorted(seen) == sorted(lines)  # each line encoded once, for the model and the prior together
    assert len(preds) == 3 and any(e.startswith("reads as HS heading") for e in preds[0].evidence)
    # a prior reading another encoder's embeddings than the model's is refused
    with pytest.raises(InvalidArgumentError, match="reads stub embeddings, but the model's encoder is 'static'"):
        Screener(model=DualUseClassifier(encoder="static"), heading_prior=full)
    with pytest.raises(InvalidArgumentError, match="model's encoder is None"):
        Screener(model=_FixedModel(taxonomy.ids, {"none": 1.0}), heading_prior=full)


@pytest.mark.e2e
def test_load_attaches_the_shipped_prior():
    import dualuse

    assert (SHIPPED_HEADS / "manifest.json").is_file()
    s = dualuse.load()
    assert s.heading_prior is not None and len(s.heading_prior.headings) == 1228
    assert not s.heading_prior.needs_embeddings  # the fast model runs no MiniLM: the n-gram part only
    assert "+ heading prior +" in s.describe()
    assert dualuse.load(heading_prior=False).heading_prior is None
    assert dualuse.load(rules_only=True).heading_prior is None
    p = s.predict_one("DJI MAVIC 3 QUADCOPTER WITH RC")
    assert p.category == "uav" and any(e.startswith("reads as HS heading 8806") for e in p.evidence)
    # the README's example: the model alone says none, the heading (8542) makes it a chip
    ic = "ПРОЦЕССОРЫ AMD RYZEN 9 7950X BOX 30 ШТ"
    assert dualuse.load(heading_prior=False).predict_one(ic).category == "none"
    p = s.predict_one(ic)
    assert p.category == "integrated_circuits" and "heading_prior" in p.flags
    # the issue's own lines keep their categories with the prior
    for text, cat in [("НИТЬ АРАМИДНАЯ", "aramid_fibre"), ("挖掘机 履带式", "earthmoving"),
                      ("STM32F103C8T6", "integrated_circuits"), ("CERAMIC FLOOR TILES", "none")]:
        assert s.predict_one(text).category == cat, text


@pytest.mark.e2e
def test_the_accurate_model_gets_the_minilm_part_too():
    import dualuse

    s = dualuse.load("accurate")
    assert s.heading_prior is not None and s.heading_prior.needs_embeddings and s.heading_prior.encoder == "minilm"
    assert "+ heading prior (n-grams + minilm) +" in s.describe()
    assert not dualuse.load("accurate", heading_prior=False).heading_prior
    for text, cat in [("DJI MAVIC 3 QUADCOPTER WITH RC", "uav"), ("НИТЬ АРАМИДНАЯ", "aramid_fibre"),
                      ("STM32F103C8T6", "integrated_circuits"), ("CERAMIC FLOOR TILES", "none")]:
        assert s.predict_one(text).category == cat, text
