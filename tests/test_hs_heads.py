"""The MiniLM heading classifier of the HS suggestions: fitting, safe persistence, fusion into the scores.

Fast tests use test_hs_suggest's 4-d bag-of-words stand-in for MiniLM; the e2e test loads the shipped
classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dualuse.errors import InvalidArgumentError, ModelLoadError
from dualuse.hs_heads import SHIPPED_HEADS, HeadingClassifier, fit_heading_classifier
from dualuse.hs_suggest import HSSuggester

from .test_hs_suggest import _BagEncoder

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
    assert np.isclose(hp[0, list(fused.codes_).index("880622")], heads.proba(_BagEncoder().encode(q))[0, 2])
    assert np.allclose(fused.scores(q), plain.scores(q) + 2.0 * hp)
    assert fused.suggest(q)[0][0][0][0] == "880622"


@pytest.mark.e2e
def test_shipped_classifier_loads_and_ranks_a_drone_first():
    from dualuse.hs_suggest import _minilm

    heads = HeadingClassifier.load(SHIPPED_HEADS)
    assert len(heads.headings) == 1228 and heads.dim == 384
    assert heads.info["encoder"] == "minilm" and heads.info["n_documents"] > 20_000
    p = heads.proba(_minilm().encode(["DJI MAVIC 3 QUADCOPTER WITH RC", "porcelain floor tiles 600x600 mm"]))
    top3 = heads.headings[np.argsort(-p, axis=1)[:, :3]]
    assert "8806" in top3[0] and "6907" in top3[1]
