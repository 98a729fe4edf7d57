"""The ``dualuse`` command, run in-process through ``main(argv)`` (plus two subprocess checks)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dualuse
from dualuse.api import load as real_load
from dualuse.cli import build_parser, main
from dualuse.prediction import OUTPUT_COLUMNS

COLUMNS = ["id", "description", "hs_code", "note"]
ROWS = [
    ["001", "LITHIUM ION BATTERY 18650", "8507.60", "N/A"],
    ["002", "ПОДШИПНИК ШАРИКОВЫЙ SKF 6205", "8482.10", ""],
    ["003", "锂电池 18650", "00", "NA"],
    ["004", "", "", "null"],
    ["005", 'STEEL PIPE 3/4", 2 PCS', "7306.30.00.00", "multi\nline"],
    ["006", "CERAMIC FLOOR TILES", "0690", "0"],
    ["007", "LITHIUM ION BATTERY 18650", "8507.60", " padded "],
]


@pytest.fixture(autouse=True)
def loads(monkeypatch, rules_screener) -> list[tuple[object, bool]]:
    """Every command shares the session's rules screener (its evidence cache keeps the tests fast);
    the arguments the CLI passes to ``dualuse.load`` are recorded."""
    calls: list[tuple[object, bool]] = []

    def load(path=None, *, rules_only=False, heading_prior=True, **options):
        calls.append((path, rules_only) if heading_prior else (path, rules_only, "no heading prior"))
        return rules_screener

    monkeypatch.setattr("dualuse.api.load", load)
    return calls


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def score(capsys, *argv: str) -> tuple[int, str, str]:
    return run(capsys, "score", *argv, "--rules-only")


# -- writing inputs and reading outputs without dualuse.io ----------------------------------------
def write_input(path: Path, columns: list[str] = COLUMNS, rows: list[list[str]] = ROWS) -> Path:
    name = path.name
    kind = name.removesuffix(".gz").rsplit(".", 1)[-1]
    if kind == "parquet":
        pq.write_table(pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)}), path)
        return path
    buf = io.StringIO(newline="")
    if kind in ("csv", "tsv"):
        writer = csv.writer(buf, delimiter="\t" if kind == "tsv" else ",", lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        buf.writelines(json.dumps(dict(zip(columns, r)), ensure_ascii=False) + "\n" for r in rows)
    data = buf.getvalue().encode("utf-8")
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def read_output(path: Path) -> tuple[list[str], list[list[object]]]:
    name = path.name
    kind = name.removesuffix(".gz").rsplit(".", 1)[-1]
    if kind == "parquet":
        t = pq.read_table(path)
        return t.column_names, [list(r.values()) for r in t.to_pylist()]
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        if kind == "jsonl":
            records = [json.loads(line) for line in fh]
            return list(records[0]), [list(r.values()) for r in records]
        reader = csv.reader(fh, delimiter="\t" if kind == "tsv" else ",")
        header = next(reader)
        return header, list(reader)


# -- score: formats -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["lines.csv", "lines.tsv", "lines.jsonl", "lines.parquet", "lines.csv.gz"])
def test_score_round_trip(tmp_path, capsys, name):
    src = write_input(tmp_path / name)
    code, out, err = score(capsys, str(src))
    assert code == 0, err
    assert out == ""
    scored = tmp_path / name.replace("lines.", "lines.scored.")
    header, rows = read_output(scored)
    assert header == COLUMNS + list(OUTPUT_COLUMNS)
    assert len(rows) == len(ROWS)
    assert [r[: len(COLUMNS)] for r in rows] == ROWS  # input values unchanged, in order
    categories = [r[len(COLUMNS)] for r in rows]
    assert set(categories) <= set(dualuse.load_taxonomy().ids)
    assert categories[0] == categories[6] == "batteries"


def test_jsonl_keeps_json_types(tmp_path, capsys):
    src = tmp_path / "a.jsonl"
    src.write_text('{"description": "TEA", "qty": 5, "hs": null, "tags": ["a"]}\n', encoding="utf-8")
    assert score(capsys, str(src), "-o", str(tmp_path / "b.jsonl"))[0] == 0
    rec = json.loads((tmp_path / "b.jsonl").read_text(encoding="utf-8"))
    assert rec["qty"] == 5 and rec["hs"] is None and rec["tags"] == ["a"]
    assert isinstance(rec["dualuse_confidence"], float) and isinstance(rec["dualuse_hs_mismatch"], bool)


def test_output_format_and_explicit_output(tmp_path, capsys):
    src = write_input(tmp_path / "lines.csv")
    assert score(capsys, str(src), "--output-format", "parquet")[0] == 0
    header, rows = read_output(tmp_path / "lines.scored.parquet")
    assert header[: len(COLUMNS)] == COLUMNS and len(rows) == len(ROWS)
    assert score(capsys, str(src), "-o", str(tmp_path / "x.tsv"))[0] == 0
    assert read_output(tmp_path / "x.tsv")[1][0][: len(COLUMNS)] == ROWS[0]


def test_stdin_to_stdout(tmp_path, capsys, monkeypatch):
    data = write_input(tmp_path / "in.csv").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    code, out, err = score(capsys, "-", "-q")
    assert code == 0 and err == ""
    df = pd.read_csv(io.StringIO(out), dtype=str, keep_default_na=False)
    assert df.columns.tolist() == COLUMNS + list(OUTPUT_COLUMNS)
    assert df[COLUMNS].values.tolist() == ROWS


def test_stdin_jsonl_to_stdout_tsv(tmp_path, capsys, monkeypatch):
    data = write_input(tmp_path / "in.jsonl").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    code, out, _ = score(capsys, "-", "--format", "jsonl", "--output-format", "tsv", "-q")
    assert code == 0
    df = pd.read_csv(io.StringIO(out), sep="\t", dtype=str, keep_default_na=False)
    assert len(df) == len(ROWS) and df["id"].tolist() == [r[0] for r in ROWS]


def test_parquet_to_stdout(tmp_path, capsysbinary):
    src = write_input(tmp_path / "lines.csv")
    assert main(["score", str(src), "-o", "-", "--output-format", "parquet", "-q", "--rules-only"]) == 0
    table = pq.read_table(io.BytesIO(capsysbinary.readouterr().out))
    assert table.column_names == COLUMNS + list(OUTPUT_COLUMNS) and table.num_rows == len(ROWS)


@pytest.mark.parametrize("name", ["lines.csv", "lines.jsonl", "lines.parquet"])
def test_chunking_gives_the_same_output(tmp_path, capsys, name):
    src = write_input(tmp_path / name)
    ext = name.split(".", 1)[1]
    assert score(capsys, str(src), "-o", str(tmp_path / f"one.{ext}"))[0] == 0
    assert score(capsys, str(src), "-o", str(tmp_path / f"many.{ext}"), "--chunksize", "3")[0] == 0
    assert read_output(tmp_path / f"one.{ext}") == read_output(tmp_path / f"many.{ext}")


def test_rescoring_replaces_the_columns(tmp_path, capsys):
    src = write_input(tmp_path / "lines.csv")
    assert score(capsys, str(src))[0] == 0
    first = tmp_path / "lines.scored.csv"
    assert score(capsys, str(first), "-o", str(tmp_path / "again.csv"))[0] == 0
    assert read_output(tmp_path / "again.csv") == read_output(first)


@pytest.mark.parametrize(
    "columns, text, hs",
    [
        (["№", "Описание", "Код ТН ВЭД"], "Описание", "Код ТН ВЭД"),
        (["序号", "品名", "商品编码"], "品名", "商品编码"),
    ],
)
def test_column_auto_detection(tmp_path, capsys, columns, text, hs):
    rows = [["1", "LITHIUM ION BATTERY 18650", "8507.60"], ["2", "ЧАЙ", ""]]
    src = write_input(tmp_path / "lines.csv", columns, rows)
    summary = tmp_path / "summary.json"
    code, _, err = score(capsys, str(src), "--summary-json", str(summary))
    assert code == 0, err
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert (data["text_col"], data["hs_col"], data["rows"]) == (text, hs, 2)
    assert text in err
    header, out_rows = read_output(tmp_path / "lines.scored.csv")
    assert header == columns + list(OUTPUT_COLUMNS) and out_rows[0][3] == "batteries"


def test_summary_on_stderr(tmp_path, capsys):
    code, out, err = score(capsys, str(write_input(tmp_path / "lines.csv")))
    assert code == 0 and out == ""
    assert f"scored {len(ROWS)} rows" in err and "batteries" in err and "lines.scored.csv" in err
    code, out, err = score(capsys, str(write_input(tmp_path / "lines.csv")), "-q")
    assert code == 0 and out == err == ""


# -- score: errors --------------------------------------------------------------------------------
def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dualuse: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_column(tmp_path, capsys):
    src = write_input(tmp_path / "lines.csv", ["id", "qty"], [["1", "2"]])
    code, _, err = score(capsys, str(src))
    assert_one_line_error(code, err, "'id', 'qty'", "--text-col")
    code, _, err = score(capsys, str(src), "--text-col", "goods")
    assert_one_line_error(code, err, "'goods'", "'id', 'qty'")
    assert not (tmp_path / "lines.scored.csv").exists()


def test_ragged_csv(tmp_path, capsys):
    src = tmp_path / "lines.csv"
    src.write_text("description,hs_code\nA,1\nB,2\nC,3,EXTRA\nD,4\n", encoding="utf-8")
    code, _, err = score(capsys, str(src), "--chunksize", "1", "--strict")
    assert_one_line_error(code, err, "lines.csv", "line 4", "3 fields")
    assert [p.name for p in tmp_path.iterdir()] == ["lines.csv"]  # no partial output, no temp file


def test_bad_encoding(tmp_path, capsys):
    src = tmp_path / "lines.csv"
    src.write_bytes("description\nCAFÉ MACHINE\n".encode("latin-1"))
    code, _, err = score(capsys, str(src), "--strict")
    assert_one_line_error(code, err, "lines.csv", "line 2", "not UTF-8", "--encoding")
    code, _, err = score(capsys, str(src), "--encoding", "latin-1", "-q")
    assert code == 0, err
    assert read_output(tmp_path / "lines.scored.csv")[1][0][0] == "CAFÉ MACHINE"


def test_utf8_bom_is_accepted(tmp_path, capsys):
    src = tmp_path / "lines.csv"
    src.write_bytes("description\nTEA\n".encode("utf-8-sig"))
    assert score(capsys, str(src), "-q")[0] == 0
    assert read_output(tmp_path / "lines.scored.csv")[0][0] == "description"


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["nope.csv"], ["nope.csv", "no such file"]),
        (["lines.xlsx"], ["lines.xlsx", ".csv", ".parquet"]),
        (["lines.csv", "-o", "missing/out.csv"], ["does not exist"]),
        (["lines.csv", "--encoding", "klingon"], ["unknown encoding"]),
    ],
)
def test_file_errors(tmp_path, capsys, monkeypatch, argv, fragments):
    monkeypatch.chdir(tmp_path)
    write_input(tmp_path / "lines.csv")
    (tmp_path / "lines.xlsx").write_bytes(b"PK")
    code, _, err = score(capsys, *argv)
    assert_one_line_error(code, err, *fragments)


def test_verbose_shows_the_traceback(tmp_path, capsys):
    code, _, err = score(capsys, str(tmp_path / "nope.csv"), "-v")
    assert code == 2 and "Traceback" in err and err.strip().endswith("no such file")


def test_usage_errors_exit_2(capsys):
    assert run(capsys, "score")[0] == 2
    assert run(capsys)[0] == 2
    assert run(capsys, "frobnicate")[0] == 2
    assert run(capsys, "score", "a.csv", "--chunksize", "0")[0] == 2
    assert run(capsys, "score", "a.csv", "--model", "m", "--rules-only")[0] == 2


def test_interrupt_exits_130(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("dualuse.batch.score_file", interrupted)
    code, _, err = score(capsys, str(write_input(tmp_path / "lines.csv")))
    assert code == 130 and "Traceback" not in err


# -- classify, categories, train, version ---------------------------------------------------------
def test_classify_explains(capsys):
    code, out, err = run(capsys, "classify", "LITHIUM ION BATTERY 18650", "--hs", "8507.60", "--rules-only")
    assert code == 0, err
    for label in ("category", "confidence", "source", "top 3", "evidence", "declared HS", "HS category",
                  "HS mismatch", "CHPL tier", "flags"):
        assert f"  {label} " in out
    assert "batteries" in out and "8507.60" in out and "HS2022" in out


def test_model_options_reach_load(capsys, loads):
    assert run(capsys, "classify", "TEA", "--rules-only")[0] == 0
    assert run(capsys, "classify", "TEA", "--model", "some/folder")[0] == 0
    assert run(capsys, "classify", "TEA", "--no-heading-prior")[0] == 0
    assert loads == [(None, True), ("some/folder", False), (None, False, "no heading prior")]


def test_classify_with_a_fresh_rules_screener(capsys, monkeypatch):
    monkeypatch.setattr("dualuse.api.load", real_load)
    code, out, err = run(capsys, "classify", "TEA", "--rules-only")
    assert code == 0, err
    assert "rules only" in out


def test_missing_model_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("dualuse.api.load", real_load)
    code, _, err = run(capsys, "classify", "TEA", "--model", str(tmp_path / "nope"))
    assert_one_line_error(code, err, "nope")


def test_classify_without_code(capsys):
    code, out, _ = run(capsys, "classify", "CERAMIC FLOOR TILES", "--rules-only")
    assert code == 0 and "none given" in out


def test_classify_json(capsys):
    code, out, _ = run(capsys, "classify", "ПОДШИПНИК SKF 6205", "--hs", "8482.10", "--json", "--rules-only")
    assert code == 0
    data = json.loads(out)
    assert data["declared_hs"] == "848210" and data["source"] == "rules"
    assert len(data["top"]) == 3 and set(data) >= {"category", "confidence", "hs_mismatch", "chpl_tier", "evidence"}


def test_categories_lists_every_id(capsys):
    ids = dualuse.load_taxonomy().ids
    assert len(ids) == 23
    code, out, _ = run(capsys, "categories")
    assert code == 0
    for cid in ids:
        assert f"\n{cid} — " in out
    assert "8456-8463" in out  # ranges are shown compactly
    code, out, _ = run(capsys, "categories", "--json")
    data = json.loads(out)
    assert [c["id"] for c in data] == list(ids)
    assert set(data[0]) == {"id", "name", "risk", "hs_prefixes", "definition"}


def test_train_passes_options_and_prints_metrics(tmp_path, capsys, monkeypatch):
    seen = {}
    report = {"n": 10, "macro_f1": 0.81234, "accuracy": 0.9, "ece": 0.05, "risk": {"precision": 0.95, "recall": 0.9}}

    def fake_train(out, config, *, data_dir):
        seen.update(out=out, seed=config.random_state, data_dir=data_dir, encoder=config.encoder,
                    encoder_path=config.encoder_path)
        metrics = {"heldout_model_only": report, "heldout_screener_text_only": report,
                   "heldout_screener_with_declared_hs": report, "oof_ece": float("nan"), "temperature": 1.5}
        return {"metrics": metrics, "training": {}, "model": None}

    monkeypatch.setattr("dualuse.train.train_model", fake_train)
    code, out, _ = run(capsys, "train", "--out", str(tmp_path / "m"), "--data", str(tmp_path), "--seed", "7")
    assert code == 0
    assert seen.pop("encoder") == "static" and seen.pop("encoder_path").endswith("static")
    assert seen == {"out": str(tmp_path / "m"), "seed": 7, "data_dir": tmp_path}
    assert "0.812" in out and "screener + declared HS" in out and "temperature 1.500" in out
    code, out, _ = run(capsys, "train", "--json")
    assert code == 0 and json.loads(out)["oof_ece"] is None
    assert Path(seen["out"]).name == "default"


def test_train_minilm_writes_models_accurate_by_default(capsys, monkeypatch):
    seen = {}
    report = {"n": 1, "macro_f1": 0.5, "accuracy": 0.5}

    def fake_train(out, config, *, data_dir):
        seen.update(out=out, encoder=config.encoder, encoder_path=config.encoder_path)
        metrics = {"heldout_model_only": report, "heldout_screener_text_only": report,
                   "heldout_screener_with_declared_hs": report, "oof_ece": 0.1, "temperature": 1.0}
        return {"metrics": metrics, "training": {}, "model": None}

    monkeypatch.setattr("dualuse.train.train_model", fake_train)
    code, _, _ = run(capsys, "train", "--encoder", "minilm")
    assert code == 0
    assert Path(seen["out"]).name == "accurate" and Path(seen["out"]).parent.name == "models"
    assert seen["encoder"] == "minilm" and seen["encoder_path"] is None
    code, _, err = run(capsys, "train", "--encoder", "bert")
    assert code == 2 and "invalid choice" in err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"dualuse {dualuse.__version__}"


def test_python_m_dualuse_version():
    proc = subprocess.run([sys.executable, "-m", "dualuse", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"dualuse {dualuse.__version__}"


def test_installed_script():
    script = Path(sys.executable).with_name("dualuse")
    exe = str(script) if script.exists() else shutil.which("dualuse")
    if exe is None:
        pytest.skip("the dualuse script is not installed (pip install -e .)")
    proc = subprocess.run([exe, "categories"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "\nuav — " in proc.stdout


def test_every_command_is_documented(repo):
    readme = (repo / "README.md").read_text(encoding="utf-8")
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    commands = list(sub.choices)
    assert commands == ["score", "report", "classify", "categories", "train"]
    for command in commands:
        assert f"dualuse {command}" in readme
