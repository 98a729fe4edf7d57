"""Scoring at scale with the real model: Dask (a real LocalCluster) and the benchmark's smoke mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dualuse.cli import main

pytestmark = pytest.mark.e2e
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as c:
        yield c


def test_dask_score_matches_the_single_process_output(repo, tmp_path, cluster, capsys):
    import dualuse.dask

    src = repo / "examples" / "customs_lines.csv"
    single = tmp_path / "single.csv"
    assert main(["score", str(src), "-o", str(single), "-q"]) == 0
    with distributed.Client(cluster) as client:
        ddf = dd.read_csv(src, dtype=str, keep_default_na=False, blocksize=None).repartition(npartitions=4)
        scored = dualuse.dask.score(ddf, text_col="description", hs_col="hs_code")
        assert list(scored.columns) == list(scored._meta.columns)
        got = client.compute(scored).result().reset_index(drop=True)
        assert len(client.scheduler_info()["workers"]) == 2
    text = got.astype(object).to_csv(index=False, lineterminator="\n")
    assert text == single.read_text(encoding="utf-8")


def test_cli_dask_output_is_byte_identical(repo, tmp_path, cluster, capsys):
    src = repo / "examples" / "customs_lines.csv"
    assert main(["score", str(src), "-o", str(tmp_path / "single.csv"), "-q"]) == 0
    assert main(["score", str(src), "-o", str(tmp_path / "dask.csv"), "-q", "--chunksize", "20",
                 "--dask", cluster.scheduler_address]) == 0
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "single.csv").read_bytes()
    # the workers also compute the suggested HS codes when asked
    assert main(["score", str(src), "-o", str(tmp_path / "single_s.csv"), "-q", "--suggest-hs"]) == 0
    assert main(["score", str(src), "-o", str(tmp_path / "dask_s.csv"), "-q", "--chunksize", "20", "--suggest-hs",
                 "--dask", cluster.scheduler_address]) == 0
    assert (tmp_path / "dask_s.csv").read_bytes() == (tmp_path / "single_s.csv").read_bytes()


def test_scale_benchmark_smoke_runs(repo):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    r = subprocess.run([sys.executable, str(repo / "benchmarks" / "scale.py"), "--smoke"], cwd=repo / "benchmarks",
                       env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((repo / "benchmarks" / "results" / "scale_smoke.json").read_text())
    assert res["smoke"] is True and {r["config"] for r in res["runs"]} == {"dedup, 1 job", "no dedup, 1 job"}
    assert all(r["lines_per_s"] > 0 and r["peak_rss_mb"] > 0 for r in res["runs"])


def test_suggestions_in_worker_processes_match_one_process(repo, tmp_path):
    src = repo / "examples" / "customs_lines.csv"
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert main(["score", str(src), "-o", str(one), "-q", "--suggest-hs", "--chunksize", "40"]) == 0
    assert main(["score", str(src), "-o", str(two), "-q", "--suggest-hs", "--chunksize", "40", "--jobs", "2"]) == 0
    assert one.read_bytes() == two.read_bytes()
    import pandas as pd

    got = pd.read_csv(one, dtype=str, keep_default_na=False)
    filled = got.loc[got["description"].str.strip() != "", "dualuse_suggested_hs"]
    assert (filled != "").all()
