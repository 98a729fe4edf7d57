"""End-to-end tests with the real shipped model, the real encoders and the real example file.

They run in CI with the fast tests (``make test``); ``make test-fast`` skips them (``-m 'not e2e'``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import dualuse
from dualuse.cli import main

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shipped(repo):
    path = repo / "models" / "default"
    assert (path / "manifest.json").is_file(), "models/default is missing: run `make model`"
    return dualuse.load(path)


def test_default_load_is_the_shipped_model(shipped, repo):
    clf = dualuse.load()
    p = clf.predict_one("DJI MAVIC 3 QUADCOPTER WITH RC", hs_code="8806.22")
    assert p.category == "uav"
    assert p.source is dualuse.Source.MODEL
    manifest = json.loads((repo / "models" / "default" / "manifest.json").read_text())
    assert sorted(manifest["labels"]) == sorted(dualuse.load_taxonomy().ids)
    assert manifest["encoder"]["name"] == "static"


def test_shipped_model_on_the_issue_examples(shipped):
    cases = {
        "DJI MAVIC 3 QUADCOPTER WITH RC": "uav",
        "НИТЬ АРАМИДНАЯ": "aramid_fibre",
        "挖掘机 履带式": "earthmoving",
        "STM32F103C8T6": "integrated_circuits",
        "CERAMIC FLOOR TILES 600X600 GLAZED": "none",
    }
    preds = shipped.predict(list(cases))
    assert [p.category for p in preds] == list(cases.values())


def test_evasion_caught_with_the_model(shipped):
    p = shipped.predict_one("TOY DRONE WITH HD CAMERA FOLDABLE 4K", hs_code="9503.00")
    assert p.category == "uav" and p.hs_mismatch and p.declared_hs_category == "none"
    q = shipped.predict_one("BARE COPPER WIRE 2.6MM ON WOODEN DRUMS", hs_code="7404.00")
    assert q.category == "copper_wire" and q.hs_mismatch


def test_demo_file_scores_every_row_and_matches_the_labels(repo, tmp_path, capsys):
    out = tmp_path / "scored.csv"
    assert main(["score", str(repo / "examples" / "customs_lines.csv"), "-o", str(out)]) == 0
    src = pd.read_csv(repo / "examples" / "customs_lines.csv", dtype=str, keep_default_na=False)
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(got) == len(src)
    assert list(got.columns) == list(src.columns) + list(dualuse.OUTPUT_COLUMNS)
    assert got["line_id"].tolist() == src["line_id"].tolist()
    pd.testing.assert_frame_equal(got[src.columns], src)
    expected = pd.read_csv(repo / "examples" / "expected.csv", dtype=str, keep_default_na=False)
    merged = got.merge(expected, on="line_id")
    accuracy = (merged["dualuse_category"] == merged["expected_category"]).mean()
    assert accuracy >= 0.9, merged.loc[merged["dualuse_category"] != merged["expected_category"],
                                       ["line_id", "expected_category", "dualuse_category", "description"]]
    evasion = merged[merged["evasion"] == "yes"]
    assert (evasion["dualuse_hs_mismatch"] == "True").sum() >= len(evasion) - 2
    assert "rows" in capsys.readouterr().err


def test_accurate_model_scores_the_demo_file(repo, tmp_path, capsys):
    # the shipped MiniLM model, chosen by name as a user would (`--model accurate`)
    manifest = json.loads((repo / "models" / "accurate" / "manifest.json").read_text())
    assert manifest["encoder"]["name"] == "minilm"
    out = tmp_path / "scored.csv"
    assert main(["score", str(repo / "examples" / "customs_lines.csv"), "-o", str(out), "--model", "accurate", "-q"]) == 0
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    expected = pd.read_csv(repo / "examples" / "expected.csv", dtype=str, keep_default_na=False)
    merged = got.merge(expected, on="line_id")
    assert len(got) == len(expected)
    accuracy = (merged["dualuse_category"] == merged["expected_category"]).mean()
    assert accuracy >= 0.9, merged.loc[merged["dualuse_category"] != merged["expected_category"],
                                       ["line_id", "expected_category", "dualuse_category", "description"]]
    evasion = merged[merged["evasion"] == "yes"]
    assert (evasion["dualuse_hs_mismatch"] == "True").sum() >= len(evasion) - 2
    assert set(got["dualuse_source"]) <= {"model", "rules"} and "model" in set(got["dualuse_source"])


def test_static_encoder_is_deterministic_and_fast_path(repo):
    from dualuse.encoders import StaticEncoder

    enc = StaticEncoder(repo / "models" / "static")
    a = enc.encode(["QUADCOPTER", "ПОДШИПНИК", "无人机"])
    b = enc.encode(["QUADCOPTER", "ПОДШИПНИК", "无人机"])
    assert a.shape == (3, 256) and np.array_equal(a, b)
    assert np.all(np.isfinite(a))


def test_static_encoder_equals_the_sentence_transformers_reference(repo):
    import torch

    from dualuse.encoders import StaticEncoder

    enc = StaticEncoder(repo / "models" / "static")
    texts = ["QUADCOPTER DRONE 4K", "ПОДШИПНИК ШАРИКОВЫЙ SKF 6205", "无人机 履带式", "STM32F103C8T6 LQFP48"]
    ref = enc.as_sentence_transformers()  # StaticEmbedding: an EmbeddingBag mean over the token ids
    with torch.no_grad():
        want = ref(ref.preprocess(texts))["sentence_embedding"].numpy()
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert np.allclose(enc.encode(texts, batch_size=3), want, atol=1e-5)


def test_minilm_loads_offline_from_the_pypi_package():
    from dualuse.encoders import MiniLMEncoder

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    emb = MiniLMEncoder().encode(["drone with camera", "quadcopter"])
    assert emb.shape == (2, 384)
    cos = float(emb[0] @ emb[1] / (np.linalg.norm(emb[0]) * np.linalg.norm(emb[1])))
    assert cos > 0.3


def test_benchmark_smoke_runs(repo, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    r = subprocess.run([sys.executable, str(repo / "benchmarks" / "model_eval.py"), "--smoke"],
                       cwd=repo / "benchmarks", env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((repo / "benchmarks" / "results" / "model_eval_smoke.json").read_text())
    assert res["smoke"] is True and "throughput_lines_per_s" in res
