"""The side-by-side benchmark (benchmarks/compare.py) still runs: its smoke mode, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.mark.skipif(not (SHARED / "data" / "realworld").is_dir(), reason="../shared/data/realworld is not present")
def test_compare_smoke(tmp_path: Path) -> None:
    readme = REPO / "benchmarks" / "README.md"
    before = readme.read_text(encoding="utf-8") if readme.exists() else None
    out = tmp_path / "compare_smoke.json"
    proc = subprocess.run(
        [sys.executable, "compare.py", "--smoke", "--out", str(out), "--workdir", str(tmp_path / "work")],
        cwd=REPO / "benchmarks", capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["smoke"] is True
    assert {"hs-lookup", "rules", "tfidf-lr"} <= set(res["systems"])
    for name, r in res["systems"].items():
        if "skipped" in r:
            continue
        s = r["score"]
        assert 0.0 <= s["eval"]["heldout"]["macro_f1"] <= 1.0, name
        assert {"hscodecomp", "atlas"} <= set(s["eval"]), name
        assert s["throughput"]["median"]["system"] > 0, name
        assert s["peak_rss_mb_score"] > 0 and s["size_bytes"] > 0, name
    assert "hscodecomp_gold_code" in res["systems"]["hs-lookup"]["score"]["eval"]
    assert "fit_seconds" in res["systems"]["tfidf-lr"]["train"]
    assert res["systems"]["dualuse-fast"]["train"]["from_manifest"] is True
    # --merge re-runs one system and keeps the others' rows
    proc = subprocess.run(
        [sys.executable, "compare.py", "--smoke", "--systems", "rules", "--merge", "--out", str(out),
         "--workdir", str(tmp_path / "work2")],
        cwd=REPO / "benchmarks", capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    merged = json.loads(out.read_text(encoding="utf-8"))
    assert set(merged["systems"]) == set(res["systems"])
    assert merged["systems"]["tfidf-lr"] == res["systems"]["tfidf-lr"]
    assert [m["systems"] for m in merged["merged_runs"]] == [["rules"]]
    # smoke mode never rewrites the README
    after = readme.read_text(encoding="utf-8") if readme.exists() else None
    assert after == before
