"""Scoring at scale: rejects, cross-chunk dedup, the embedding cache, worker processes, resume, progress."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dualuse.batch import score_file
from dualuse.cli import main
from dualuse.dedup import DedupScreener
from dualuse.embcache import CachedEncoder, EmbeddingCache
from dualuse.encoders import StubEncoder

REPO = Path(__file__).resolve().parents[1]
TRICKY = [
    ("LITHIUM ION BATTERY 18650", "8507.60"),
    ("LITHIUM ION BATTERY 18650", "850760"),
    ("LITHIUM\x00 ION BATTERY  18650", "8507.60"),
    ("", "8806.22"),
    ("КВAДРОКОПТЕР DJI", "garbage"),
    ("CERAMIC FLOOR TILES", ""),
    ("LITHIUM ION BATTERY 18650", "8507.60"),
    ("TEA", "101"),
    ("КВAДРОКОПТЕР DJI", "garbage"),
    ("CERAMIC FLOOR TILES", "6907.21"),
]


@pytest.fixture(autouse=True)
def rules_load(monkeypatch, rules_screener):
    monkeypatch.setattr("dualuse.api.load", lambda *a, **k: rules_screener)


def write_csv(path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...] = ("description", "hs_code")) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


# -- nothing lost ---------------------------------------------------------------------------------
def test_unreadable_rows_go_to_the_rejects_file(tmp_path, capsys):
    src = tmp_path / "lines.csv"
    src.write_bytes(b'description,hs_code\nA,1\nB,2,EXTRA\n"MULTI\nLINE",3\nCAF\xc9,4\nD,5\n\nE\n"F,6\n')
    code = main(["score", str(src), "--rules-only", "--chunksize", "2", "--summary-json", str(tmp_path / "s.json")])
    err = capsys.readouterr().err
    assert code == 0, err
    out = pd.read_csv(tmp_path / "lines.scored.csv", dtype=str, keep_default_na=False)
    rej = pd.read_csv(tmp_path / "lines.scored.csv.rejects.csv", dtype=str, keep_default_na=False)
    assert out["description"].tolist() == ["A", "MULTI\nLINE", "D", "E"]
    assert rej["line"].tolist() == ["3", "6", "10"]
    assert rej["raw"].tolist() == ["B,2,EXTRA", "CAF\\xc9,4", '"F,6']
    assert "3 fields" in rej["reason"][0] and "UTF-8" in rej["reason"][1] and "never closed" in rej["reason"][2]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["rows"] + summary["rejected_rows"] == 7  # rows out + rejects == rows in
    assert "unreadable rows: 3" in err


def test_rejects_path_option_and_jsonl(tmp_path, capsys):
    src = tmp_path / "a.jsonl"
    src.write_text('{"description": "TEA"}\n{"description": \n["x"]\n{"description": "LITHIUM BATTERY"}\n',
                   encoding="utf-8")
    code = main(["score", str(src), "--rules-only", "-o", str(tmp_path / "o.jsonl"), "--rejects", str(tmp_path / "r.csv"), "-q"])
    assert code == 0
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 2
    assert pd.read_csv(tmp_path / "r.csv")["line"].tolist() == [2, 3]


def test_no_rejects_file_when_every_row_is_readable(tmp_path, capsys):
    src = write_csv(tmp_path / "a.csv", TRICKY)
    assert main(["score", str(src), "--rules-only", "-q"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.scored.csv"]


def test_nothing_readable_exits_2_and_keeps_the_rejects(tmp_path, capsys):
    src = tmp_path / "a.csv"
    src.write_bytes(b"description\nCAF\xc9\n")
    code = main(["score", str(src), "--rules-only"])
    err = capsys.readouterr().err
    assert code == 2 and "no row could be read" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.scored.csv.rejects.csv"]


# -- dedup, cache, jobs -----------------------------------------------------------------------------
def test_dedup_screener_equals_the_screener(rules_screener):
    texts, codes = [t for t, _ in TRICKY], [c for _, c in TRICKY]
    dedup = DedupScreener(rules_screener, maxsize=3)
    got = dedup.predict(texts[:5], codes[:5]) + dedup.predict(texts[5:], codes[5:])
    want = rules_screener.predict(texts, codes)
    assert [p.to_dict() for p in got] == [p.to_dict() for p in want]
    assert dedup.hits > 0


def test_dedup_memo_keeps_each_cell_as_written(rules_screener):
    # equal values of different types (8542 == 8542.0) and repeated raw texts across batches must
    # come out exactly as the screener alone gives them, row by row
    texts = ["FPGA XC7Z020", "FPGA XC7Z020", " FPGA  XC7Z020 ", "FPGA XC7Z020\x00", None, 8542, "FPGA XC7Z020"]
    codes = [8542, 8542.0, "8542.0", "8542", float("nan"), None, True]
    dedup = DedupScreener(rules_screener, maxsize=10)
    got = [p.to_dict() for b in range(3) for p in dedup.predict(texts, codes)]
    want = [p.to_dict() for p in rules_screener.predict(texts, codes)] * 3
    assert got == want
    assert dedup.hits > 0


def test_dedup_does_not_change_the_output(tmp_path, capsys):
    src = write_csv(tmp_path / "a.csv", TRICKY * 3)
    assert main(["score", str(src), "--rules-only", "-o", str(tmp_path / "x.csv"), "--chunksize", "4", "--dedup", "0"]) == 0
    assert main(["score", str(src), "--rules-only", "-o", str(tmp_path / "y.csv"), "--chunksize", "4", "--dedup", "5"]) == 0
    assert (tmp_path / "x.csv").read_bytes() == (tmp_path / "y.csv").read_bytes()


def test_embedding_cache_is_reused(tmp_path):
    texts = ["QUADCOPTER", "ПОДШИПНИК", "QUADCOPTER", "无人机"]
    cache = EmbeddingCache(tmp_path, "stub-test", 16)
    first = CachedEncoder(StubEncoder(), cache)
    a = first.encode(texts)
    assert (first.hits, first.misses) == (0, 3) and len(cache) == 3
    second = CachedEncoder(StubEncoder(), EmbeddingCache(tmp_path, "stub-test", 16))
    b = second.encode(texts)
    assert (second.hits, second.misses) == (3, 0)
    assert np.array_equal(a, b)
    np.testing.assert_allclose(a, StubEncoder().encode(texts), atol=1e-3)


def test_jobs_give_the_same_output(tmp_path, capsys):
    src = write_csv(tmp_path / "a.csv", TRICKY * 5)
    assert main(["score", str(src), "--rules-only", "-o", str(tmp_path / "one.csv"), "--chunksize", "7", "-q"]) == 0
    assert main(["score", str(src), "--rules-only", "-o", str(tmp_path / "two.csv"), "--chunksize", "7", "-q",
                 "--jobs", "2"]) == 0
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()


# -- resume ---------------------------------------------------------------------------------------
def _many_lines(path: Path, n: int) -> Path:
    rows = [(f"{t} #{i % 997}", c) for i, (t, c) in zip(range(n), TRICKY * (n // len(TRICKY) + 1))]
    rows[n // 2] = ("ROW,WITH", "TOO", "MANY")  # one reject in the middle
    return write_csv(path, rows)


def _score_cmd(src: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dualuse", "score", str(src), "-o", str(out), "--rules-only", "--chunksize", "50",
            "-q", *extra]


def _wait_for_chunks(checkpoint: Path, proc: subprocess.Popen, chunks: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(checkpoint.read_text())["chunks"] >= chunks:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.005)
    pytest.fail("the run finished or stalled before it could be killed; raise the number of lines")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_resumes_to_identical_output(tmp_path, sig):
    src = _many_lines(tmp_path / "in.csv", 3000)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    full = tmp_path / "full.csv"
    subprocess.run(_score_cmd(src, full), check=True, env=env, timeout=600)
    out = tmp_path / "out.csv"
    checkpoint = tmp_path / ".out.csv.checkpoint.json"
    # SIG_DFL in the child (a shell's background job would hand it SIGINT ignored): Python's handler
    proc = subprocess.Popen(_score_cmd(src, out), env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for_chunks(checkpoint, proc, 5)
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    assert code == (-9 if sig == signal.SIGKILL else 130)
    assert not out.exists() and (tmp_path / ".out.csv.partial").exists()
    done = json.loads(checkpoint.read_text())["chunks"]
    assert 5 <= done < 3000 // 50
    subprocess.run(_score_cmd(src, out, "--resume"), check=True, env=env, timeout=600)
    assert out.read_bytes() == full.read_bytes()
    assert (tmp_path / "out.csv.rejects.csv").read_bytes() == (tmp_path / "full.csv.rejects.csv").read_bytes()
    assert not checkpoint.exists() and not (tmp_path / ".out.csv.partial").exists()


class _SwallowingScreener:
    """Wraps a screener; in the batch holding ``LINE 25`` a Ctrl-C arrives where it gets lost (as in a
    finaliser)."""

    def __init__(self, screener) -> None:  # type: ignore[no-untyped-def]
        self.screener, self.lost = screener, 0

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.screener, name)

    def predict(self, texts, hs_codes=None):  # type: ignore[no-untyped-def]
        if "LINE 25" in texts:
            self.lost += 1
            try:
                signal.raise_signal(signal.SIGINT)  # delivered to this (the main) thread
                time.sleep(1)  # not reached: the handler raises first
            except KeyboardInterrupt:
                pass  # lost, as "Exception ignored in ..." would lose it
        return self.screener.predict(texts, hs_codes)


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler during the test (a shell's background job starts with SIGINT ignored)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_an_interrupt_lost_inside_a_chunk_still_stops_the_run(tmp_path, rules_screener, python_sigint):
    src = write_csv(tmp_path / "in.csv", [(f"LINE {i}", "") for i in range(40)])
    out = tmp_path / "out.csv"
    swallowing = _SwallowingScreener(rules_screener)
    with pytest.raises(KeyboardInterrupt):
        score_file(src, out, screener=swallowing, chunksize=10, progress=False)  # type: ignore[arg-type]
    assert swallowing.lost == 1 and not out.exists()
    assert json.loads((tmp_path / ".out.csv.checkpoint.json").read_text())["chunks"] == 1  # resumable
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    score_file(src, out, screener=rules_screener, chunksize=10, progress=False, resume=True)
    assert len(pd.read_csv(out)) == 40


def test_resume_refuses_a_changed_input(tmp_path, capsys):
    src = write_csv(tmp_path / "a.csv", TRICKY)
    out = tmp_path / "o.csv"
    (tmp_path / ".o.csv.partial").write_text("description,hs_code\n")
    (tmp_path / ".o.csv.checkpoint.json").write_text(json.dumps(
        {"version": 1, "chunks": 1, "rows": 0, "output_bytes": 20, "fingerprint": {"input": None}, "state": {}}))
    code = main(["score", str(src), "-o", str(out), "--rules-only", "--resume"])
    assert code == 2 and "changed since the interrupted run" in capsys.readouterr().err
    assert main(["score", str(src), "-o", str(out), "--rules-only", "-q"]) == 0  # without --resume: starts over
    assert not (tmp_path / ".o.csv.checkpoint.json").exists() and out.exists()


def test_resume_needs_files(tmp_path, capsys):
    src = write_csv(tmp_path / "a.csv", TRICKY)
    code = main(["score", str(src), "-o", "-", "--rules-only", "--resume"])
    assert code == 2 and "--resume" in capsys.readouterr().err


# -- progress ---------------------------------------------------------------------------------------
def test_progress_bar_shows_rows_per_second(tmp_path, capsys, rules_screener):
    src = write_csv(tmp_path / "a.csv", TRICKY * 20)
    score_file(src, tmp_path / "o.csv", screener=rules_screener, chunksize=50, progress=True)
    err = capsys.readouterr().err
    assert "rows/s" in err and "200 rows" in err
    score_file(src, tmp_path / "o.csv", screener=rules_screener, chunksize=50)  # stderr is not a terminal
    assert capsys.readouterr().err == ""


# -- report ---------------------------------------------------------------------------------------
def test_report_renders_every_section(tmp_path, capsys, repo):
    scored = tmp_path / "customs_lines.scored.csv"
    assert main(["score", str(repo / "examples" / "customs_lines.csv"), "-o", str(scored), "--rules-only", "-q"]) == 0
    code = main(["report", str(scored), "-o", str(tmp_path / "report.html")])
    assert code == 0, capsys.readouterr().err
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    for section in ("totals", "categories", "chpl", "mismatches", "parties", "monthly"):
        assert f'<section id="{section}">' in page
    assert page.count('src="data:image/png;base64,') >= 4  # category lines and value, CHPL tiers, months
    assert "value_usd" in page and "exporter" in page and "importer" in page and "2024-01" in page
    assert "No mismatch" not in page and "No date column" not in page
    assert "src=\"http" not in page  # self-contained


def test_report_refuses_an_unscored_file(repo, capsys):
    code = main(["report", str(repo / "examples" / "customs_lines.csv"), "-o", "-"])
    assert code == 2 and "not a scored file" in capsys.readouterr().err
