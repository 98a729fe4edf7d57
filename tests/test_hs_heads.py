"""The MiniLM heading classifier of the HS suggestions: fitting, safe persistence, fusion into the scores.

Fast tests use test_hs_suggest's 4-d bag-of-words stand-in for MiniLM; the e2e test loads the shipped
classifier."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from dualuse.errors import InvalidArgumentError, ModelLoadError
from dualuse.hs_heads import SHIPPED_HEADS, HeadingClassifier, fit_heading_classifier
from dualuse.hs_suggest import HSSuggester

from .test_hs_suggest import FITTING_CODES, ISSUE_MISMATCHES, _BagEncoder

DOCS = [
    ("Unmanned aircraft; for remote-controlled flight only", "880622"),
    ("QUADCOPTER DRONE WITH CAMERA", "880622"),
    ("drone frame kit", "880622"),
    ("Toys; wheeled toys, dolls, puzzles, scale models", "950300"),
    ("plastic toy car for kids", "950300"),
    ("Copper; waste and scrap", "740400"),
    ("copper scrap berry", "740400"),
    ("Ceramic tiles; flags and paving, hearth or wall tiles", "690721"),
    ("porcelain floor tile 60x60", "690721"),
]


@pytest.fixture(scope="module")
def heads():
    texts, codes = zip(*DOCS)
    return fit_heading_classifier(_BagEncoder().encode(texts), codes, C=100.0)


def test_fit_learns_headings_and_probabilities(heads):
    assert heads.headings.tolist() == ["6907", "7404", "8806", "9503"]
    p = heads.proba(_BagEncoder().encode(["drone", "copper", "tile"]))
    assert p.shape == (3, 4) and np.allclose(p.sum(axis=1), 1.0)
    assert heads.headings[p.argmax(axis=1)].tolist() == ["8806", "7404", "6907"]
    assert heads.columns_for(["880622", "950300", "010121"]).tolist() == [2, 3, -1]
    with pytest.raises(ModelLoadError, match="dimension 4"):
        heads.proba(np.zeros((1, 5)))


@pytest.fixture(scope="module")
def text_heads():
    # the text part keeps n-grams of two or more documents: a second porcelain, quadcopter and berry line
    more = [("porcelain wall tile glazed", "690721"), ("quadcopter frame carbon", "880622"), ("berry copper cuttings", "740400")]
    texts, codes = zip(*DOCS, *more)
    return fit_heading_classifier(_BagEncoder().encode(texts), codes, list(texts), C=100.0, text_epochs=30,
                                  text_keep=0, text_alpha=1e-5)


def test_text_part_reads_words_the_embedding_does_not_know(heads, text_heads):
    # "porcelain", "berry" and "quadcopter" are not among the stand-in encoder's four words
    q = ["porcelain glazed", "berry cuttings", "QUADCOPTER CARBON"]
    want = np.array([0, 1, 2])  # 6907, 7404, 8806
    E = _BagEncoder().encode(q)
    assert heads.text is None and text_heads.text is not None
    assert text_heads.headings.tolist() == ["6907", "7404", "8806", "9503"]
    assert text_heads.text.logits(q).argmax(axis=1).tolist() == want.tolist()
    p, plain = text_heads.proba(E, q), heads.proba(E)
    assert p.shape == (3, 4) and np.allclose(p.sum(axis=1), 1.0)
    assert (p[np.arange(3), want] > plain[np.arange(3), want]).all()
    with pytest.raises(InvalidArgumentError, match="text part"):
        text_heads.proba(E)


def test_text_part_keeps_the_largest_weights_per_heading(text_heads):
    from dualuse.hs_heads import TextHeads

    texts, codes = zip(*DOCS, ("porcelain wall tile glazed", "690721"), ("quadcopter frame carbon", "880622"),
                       ("berry copper cuttings", "740400"))
    pruned = TextHeads.fit(texts, [c[:4] for c in codes], text_heads.headings, alpha=1e-5, epochs=30, keep=25)
    full = text_heads.text.coef.toarray()
    assert np.array_equal(pruned.cols, text_heads.text.cols) and pruned.coef.getnnz(axis=1).tolist() == [25] * 4
    for row, kept in zip(full, pruned.coef.toarray()):
        assert np.allclose(kept[kept != 0], row[kept != 0])  # the same weights (float16), just fewer
        assert np.abs(row[kept != 0]).min() >= np.abs(row[kept == 0]).max()


def test_suggester_weighs_the_text_part_on_its_own(text_heads):
    texts, codes = zip(*DOCS)
    q = ["porcelain glazed drone"]
    E = _BagEncoder().encode(q)
    cols = text_heads.columns_for(["690721", "880622"])
    for w in (0.0, 0.5):
        sugg = HSSuggester(max_df=1.0, heading_weight=1.0, heading_text_weight=w).fit(list(texts), list(codes))
        sugg.heads_, sugg.encoder_ = text_heads, _BagEncoder()
        hp = sugg.heading_proba(q)
        want = text_heads.proba(E, q, text_weight=w)
        assert np.allclose(hp[0, [list(sugg.codes_).index("690721"), list(sugg.codes_).index("880622")]], want[0, cols])
    assert not np.allclose(text_heads.proba(E, q, text_weight=0.0), text_heads.proba(E, q))


def test_text_part_roundtrip(text_heads, tmp_path):
    back = HeadingClassifier.load(text_heads.save(tmp_path / "t"))
    q = ["porcelain floor", "drone frame"]
    E = _BagEncoder().encode(q)
    assert back.text is not None and back.text_weight == text_heads.text_weight
    assert np.allclose(back.proba(E, q), text_heads.proba(E, q), atol=1e-6)
    muted = HeadingClassifier.load(dataclasses.replace(text_heads, text_weight=0.0).save(tmp_path / "m"))
    assert muted.text_weight == 0.0  # a weight of 0 is kept, not taken for "missing"


def test_save_load_roundtrip_refuses_tampering(heads, tmp_path):
    folder = heads.save(tmp_path / "h")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "dualuse-hs-heads" and "heads.npz" in manifest["sha256"]
    assert "scikit-learn" in manifest["versions"] and manifest["C"] == 100.0
    back = HeadingClassifier.load(folder)
    assert back.headings.tolist() == heads.headings.tolist() and np.allclose(back.coef, heads.coef)
    (folder / "heads.npz").write_bytes((folder / "heads.npz").read_bytes() + b"x")
    with pytest.raises(ModelLoadError, match="sha256"):
        HeadingClassifier.load(folder)
    with pytest.raises(ModelLoadError, match="make hs-heads"):
        HeadingClassifier.load(tmp_path / "missing")


def test_heading_probability_is_fused_into_the_scores(heads):
    texts, codes = zip(*DOCS)
    plain = HSSuggester(max_df=1.0).fit(list(texts), list(codes))
    fused = HSSuggester(max_df=1.0, heading_weight=2.0).fit(list(texts), list(codes))
    with pytest.raises(InvalidArgumentError, match="heading classifier"):
        fused.heading_proba(["drone"], np.ones((1, 4), np.float32))
    fused.heads_, fused.encoder_ = heads, _BagEncoder()
    q = ["my drone"]
    hp = fused.heading_proba(q)
    assert hp.shape == (1, len(fused.codes_))
    # every subheading of a heading gets that heading's probability
    assert np.isclose(hp[0, list(fused.codes_).index("880622")], heads.proba(_BagEncoder().encode(q), q)[0, 2])
    assert np.allclose(fused.scores(q), plain.scores(q) + 2.0 * hp)
    assert fused.suggest(q)[0][0][0][0] == "880622"


@pytest.mark.e2e
def test_shipped_classifier_loads_and_ranks_a_drone_first():
    from dualuse.hs_suggest import _minilm

    heads = HeadingClassifier.load(SHIPPED_HEADS)
    assert len(heads.headings) == 1228 and heads.dim == 384
    assert heads.info["encoder"] == "minilm" and heads.info["n_documents"] > 20_000 and heads.text is not None
    q = ["DJI MAVIC 3 QUADCOPTER WITH RC", "porcelain floor tiles 600x600 mm"]
    p = heads.proba(_minilm().encode(q), q)
    top3 = heads.headings[np.argsort(-p, axis=1)[:, :3]]
    assert "8806" in top3[0] and "6907" in top3[1]


def test_heading_features_rank_the_declared_heading():
    from dualuse.hs_fit import HEAD_FEATURES, heading_features

    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.2, 0.5, 0.3]])
    X = heading_features(p, np.array(["7404", "8806", "9503"]), ["880622", "950300", "010121"])
    assert X.shape == (3, len(HEAD_FEATURES))
    assert np.allclose(X[0], [0.3, 0.3, np.log1p(1)])
    assert np.allclose(X[1], [0.3, 0.2, np.log1p(1)])
    assert np.allclose(X[2], [0.0, 0.5, np.log1p(3)])  # a heading the classifier does not know


def _calibrations():
    from dualuse.hs_fit import FEATURES, HEAD_FEATURES, HSFitModel

    # retrieval only: every code fits (0.99); with the heads: the fit is the declared heading's probability
    plain = HSFitModel(coef=(0.0,) * len(FEATURES), intercept=5.0, threshold=0.5)
    with_heads = HSFitModel(coef=(0.0,) * len(FEATURES) + (20.0, 0.0, 0.0), intercept=-10.0, threshold=0.5,
                            features=FEATURES + HEAD_FEATURES)
    return plain, with_heads


def test_heading_calibration_roundtrip_and_feature_check(tmp_path):
    from dualuse.hs_fit import HSFitModel

    _, with_heads = _calibrations()
    path = with_heads.save(tmp_path / "fit_heads.json")
    back = HSFitModel.load(path, heads=True)
    assert back.uses_heads and back.coef == with_heads.coef
    with pytest.raises(ModelLoadError, match="make hs-fit"):
        HSFitModel.load(path)  # read as the retrieval-only calibration: wrong features
    assert HSFitModel.load(heads=True).uses_heads and not HSFitModel.load().uses_heads  # the shipped pair


def test_screener_reads_the_heading_classifier_where_minilm_runs_anyway(heads):
    from dualuse.predict import Screener

    texts, codes = zip(*DOCS)
    index = HSSuggester(max_df=1.0, heading_weight=1.0).fit(list(texts), list(codes))
    index.heads_, index.encoder_ = heads, _BagEncoder()
    plain, with_heads = _calibrations()
    s = Screener(hs_index=index, hs_fit_model=plain, hs_fit_heads_model=with_heads)
    # by default (no suggestions) the retrieval-only calibration: both codes fit
    fits = [p.hs_fit for p in s.predict(["plastic toy car", "plastic toy car"], ["9503.00", "6907.21"])]
    assert all(f is not None and f > 0.9 for f in fits) and s.hs_fit_calibration() is plain
    # suggestions embed every line, so the fit also reads the heading classifier: the tile code does not fit
    s.suggest_hs = True
    good, bad = s.predict(["plastic toy car", "plastic toy car"], ["9503.00", "6907.21"])
    assert s.hs_fit_calibration() is with_heads
    assert good.hs_fit > 0.5 and not good.hs_mismatch
    assert bad.hs_fit < 0.5 and bad.hs_mismatch
    assert any("with the heading classifier" in e and "< 0.500: mismatch" in e for e in bad.evidence)
    assert good.suggested_hs[0][0] == "950300"
    s.hs_fit_heads = False  # forced off
    assert s.predict_one("plastic toy car", "6907.21").hs_fit > 0.9
    bare = Screener(hs_index=HSSuggester(max_df=1.0).fit(list(texts), list(codes)), hs_fit_model=plain,
                    hs_fit_heads=True)
    with pytest.raises(InvalidArgumentError, match="heading classifier"):
        bare.predict_one("plastic toy car", "6907.21")


@pytest.fixture(scope="module")
def suggesting():
    import dualuse

    return dualuse.load(suggest_hs=True)


@pytest.mark.e2e
@pytest.mark.parametrize("text, code", ISSUE_MISMATCHES)
def test_issue_examples_are_clear_mismatches_with_the_heading_calibration(suggesting, text, code):
    p = suggesting.predict_one(text, hs_code=code)
    assert suggesting.hs_fit_calibration().uses_heads
    assert p.hs_fit is not None and p.hs_fit < 0.05 and p.hs_mismatch
    assert any("with the heading classifier" in e for e in p.evidence)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "text, code", FITTING_CODES + [("Women's Cotton Crew Neck T-Shirt Short Sleeve Summer Tops", "6109.10")])
def test_fitting_codes_fit_with_the_heading_calibration(suggesting, text, code):
    p = suggesting.predict_one(text, hs_code=code)
    assert p.hs_fit is not None and p.hs_fit > 0.5 and not p.hs_mismatch
