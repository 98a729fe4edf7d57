"""Reading and writing tables (dualuse.io) and scoring DataFrames (dualuse.batch)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from dualuse.batch import Summary, score_frame
from dualuse.errors import ColumnNotFoundError, FileFormatError, InvalidArgumentError
from dualuse.io import (
    TableFormat,
    TableWriter,
    detect_hs_column,
    detect_text_column,
    iter_chunks,
    read_table,
    resolve_columns,
    resolve_format,
    scored_path,
)
from dualuse.prediction import OUTPUT_COLUMNS


# -- formats and paths ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, fmt, expected",
    [
        ("a.csv", None, TableFormat("csv")),
        ("a.CSV", None, TableFormat("csv")),
        ("a.tsv.gz", None, TableFormat("tsv", True)),
        ("a.ndjson", None, TableFormat("jsonl")),
        ("a.jsonl.gz", None, TableFormat("jsonl", True)),
        ("a.parquet", None, TableFormat("parquet")),
        ("-", None, TableFormat("csv")),
        ("-", "jsonl", TableFormat("jsonl")),
        ("a.txt", "tsv", TableFormat("tsv")),
        ("a.txt.gz", "csv", TableFormat("csv", True)),
    ],
)
def test_resolve_format(path, fmt, expected):
    assert resolve_format(path, fmt) == expected


def test_unknown_extension_lists_the_supported_ones():
    with pytest.raises(FileFormatError) as err:
        resolve_format("lines.xlsx")
    msg = str(err.value)
    assert "lines.xlsx" in msg and ".csv" in msg and ".parquet" in msg and ".jsonl.gz" in msg


def test_bad_format_arguments():
    with pytest.raises(InvalidArgumentError):
        resolve_format("a.csv", "xlsx")
    with pytest.raises(FileFormatError):
        resolve_format("a.parquet.gz")


@pytest.mark.parametrize(
    "path, fmt, expected",
    [
        ("data/lines.csv", None, "data/lines.scored.csv"),
        ("lines.csv.gz", None, "lines.scored.csv.gz"),
        ("lines.jsonl", None, "lines.scored.jsonl"),
        ("lines.csv", "parquet", "lines.scored.parquet"),
        ("lines.tsv.gz", "jsonl", "lines.scored.jsonl.gz"),
    ],
)
def test_scored_path(path, fmt, expected):
    assert scored_path(path, fmt) == Path(expected)


# -- column detection -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "columns, text, hs",
    [
        (["id", "description", "hs_code"], "description", "hs_code"),
        (["ID", "Goods Description", "HS Code"], "Goods Description", "HS Code"),
        (["№", "Описание товара", "Код ТН ВЭД"], "Описание товара", "Код ТН ВЭД"),
        (["序号", "品名", "商品编码"], "品名", "商品编码"),
        (["name", "description"], "description", None),  # the better name wins
        (["\ufeffdescription", "TNVED"], "\ufeffdescription", "TNVED"),
    ],
)
def test_detect_columns(columns, text, hs):
    assert detect_text_column(columns) == text
    assert detect_hs_column(columns) == hs
    assert resolve_columns(columns) == (text, hs)


def test_no_text_column_lists_columns_and_the_option():
    with pytest.raises(ColumnNotFoundError) as err:
        detect_text_column(["id", "qty", "price"])
    msg = str(err.value)
    assert "'id', 'qty', 'price'" in msg and "--text-col" in msg and "\n" not in msg


def test_explicit_columns():
    cols = ["id", "Beschreibung", "Zolltarif"]
    assert resolve_columns(cols, "Beschreibung", "Zolltarif") == ("Beschreibung", "Zolltarif")
    assert resolve_columns(cols, "beschreibung") == ("Beschreibung", None)  # unambiguous case fold
    with pytest.raises(ColumnNotFoundError, match="'id', 'Beschreibung', 'Zolltarif'"):
        resolve_columns(cols, "text")
    with pytest.raises(ColumnNotFoundError, match="--hs-col"):
        resolve_columns(cols, "Beschreibung", "hs")


# -- reading --------------------------------------------------------------------------------------
def _write(path: Path, data: str | bytes) -> Path:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def test_csv_is_read_as_text_in_chunks(tmp_path):
    rows = "".join(f"{i:03d},N/A,,00{i}\n" for i in range(7))
    path = _write(tmp_path / "a.csv", "id,description,empty,hs_code\n" + rows)
    chunks = list(iter_chunks(path, chunksize=3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    df = pd.concat(chunks)
    assert df["id"].tolist()[:2] == ["000", "001"]
    assert set(df["description"]) == {"N/A"} and set(df["empty"]) == {""}
    assert df["hs_code"].iloc[0] == "000"


def test_header_only_csv_gives_one_empty_chunk(tmp_path):
    chunks = list(iter_chunks(_write(tmp_path / "a.csv", "description,hs_code\n")))
    assert len(chunks) == 1 and list(chunks[0].columns) == ["description", "hs_code"] and chunks[0].empty


def test_bom_is_stripped(tmp_path):
    path = _write(tmp_path / "a.csv", b"\xef\xbb\xbfdescription\nTEA\n")
    assert list(read_table(path).columns) == ["description"]
    path = _write(tmp_path / "a.jsonl", b'\xef\xbb\xbf{"description": "TEA"}\n')
    assert read_table(path)["description"].tolist() == ["TEA"]


def test_semicolon_csv_is_sniffed(tmp_path):
    path = _write(tmp_path / "a.csv", "описание;код тн вэд\nПОДШИПНИК;8482\n")
    assert read_table(path).columns.tolist() == ["описание", "код тн вэд"]


def test_other_encodings(tmp_path):
    path = _write(tmp_path / "a.csv", "description\nПОДШИПНИК\n".encode("cp1251"))
    with pytest.raises(FileFormatError, match=r"a\.csv: line 2: not UTF-8 .*--encoding"):
        list(iter_chunks(path))
    assert read_table(path, encoding="cp1251")["description"].tolist() == ["ПОДШИПНИК"]
    with pytest.raises(InvalidArgumentError, match="unknown encoding"):
        iter_chunks(path, encoding="klingon")


def test_ragged_row_names_the_line(tmp_path):
    body = 'description,hs_code\nA,1\n"MULTI\nLINE",2\n\nB,2,EXTRA\nC,3\n'
    path = _write(tmp_path / "a.csv", body)
    with pytest.raises(FileFormatError) as err:
        list(iter_chunks(path, chunksize=1))
    msg = str(err.value)
    assert msg.startswith(f"{path}: line 6: 3 fields, but the header has 2")
    assert "\n" not in msg


def test_ragged_row_in_gzip_and_tsv(tmp_path):
    with pytest.raises(FileFormatError, match="line 3"):
        list(iter_chunks(_write(tmp_path / "a.csv.gz", "description\nA\nB,C\n")))
    with pytest.raises(FileFormatError, match="line 2: 3 fields"):
        list(iter_chunks(_write(tmp_path / "a.tsv", "description\ths\nA\t1\t2\n")))


def test_first_row_too_long_is_not_taken_as_an_index(tmp_path):
    # pandas would silently make the first column the index (or drop the extra field)
    with pytest.raises(FileFormatError, match="line 2: 3 fields, but the header has 2"):
        list(iter_chunks(_write(tmp_path / "a.csv", "description,hs\nA,1,2\nB,2\n")))


def test_unclosed_quote_names_the_line(tmp_path):
    with pytest.raises(FileFormatError, match="line 4: a quoted field is never closed"):
        list(iter_chunks(_write(tmp_path / "a.csv", 'description\nA\nB\n"C\nD\n')))


def test_jsonl_errors_name_the_line(tmp_path):
    with pytest.raises(FileFormatError, match=r"a\.jsonl: line 3: invalid JSON"):
        list(iter_chunks(_write(tmp_path / "a.jsonl", '{"description": "A"}\n\n{"description": \n')))
    with pytest.raises(FileFormatError, match="line 2: expected a JSON object"):
        list(iter_chunks(_write(tmp_path / "b.jsonl", '{"description": "A"}\n["A"]\n')))
    with pytest.raises(FileFormatError, match="line 3: key 'late'"):
        list(iter_chunks(_write(tmp_path / "c.jsonl", '{"d": 1}\n{"d": 2}\n{"d": 3, "late": 1}\n'), chunksize=2))
    with pytest.raises(FileFormatError, match="line 2: not UTF-8"):
        list(iter_chunks(_write(tmp_path / "d.jsonl", b'{"d": "a"}\n{"d": "\xe9"}\n')))


def test_jsonl_keeps_values_and_key_union(tmp_path):
    path = _write(tmp_path / "a.jsonl", '{"description": "A", "qty": 5}\n{"description": "B", "hs": null, "x": [1]}\n')
    df = read_table(path)
    assert df.columns.tolist() == ["description", "qty", "hs", "x"]
    assert df["qty"].tolist() == [5, None] and df["x"].tolist() == [None, [1]]


@pytest.mark.parametrize("name, data", [("a.parquet", b"not parquet at all"), ("a.csv.gz", b"not gzip")])
def test_unreadable_binary_files(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(FileFormatError, match=name.replace(".", r"\.")):
        list(iter_chunks(tmp_path / name))


def test_missing_file_is_both_error_kinds(tmp_path):
    with pytest.raises(FileFormatError, match="no such file") as err:
        iter_chunks(tmp_path / "nope.csv")
    assert isinstance(err.value, FileNotFoundError)


def test_empty_file(tmp_path):
    with pytest.raises(FileFormatError, match="empty"):
        list(iter_chunks(_write(tmp_path / "a.csv", "")))


def test_chunksize_must_be_positive(tmp_path):
    with pytest.raises(InvalidArgumentError):
        iter_chunks(_write(tmp_path / "a.csv", "description\nA\n"), chunksize=0)


# -- writing --------------------------------------------------------------------------------------
FRAME = pd.DataFrame({"id": ["007", "N/A"], "description": ["ПОДШИПНИК, SKF", '锂电池 3/4" "x"'], "n": ["", "00"]})


@pytest.mark.parametrize("name", ["o.csv", "o.tsv", "o.jsonl", "o.parquet", "o.csv.gz", "o.ndjson.gz", "o.tsv.gz"])
def test_writer_round_trip(tmp_path, name):
    out = tmp_path / name
    with TableWriter(out) as w:
        w.write(FRAME.iloc[:1])
        w.write(FRAME.iloc[1:])
    back = read_table(out)
    assert back.columns.tolist() == FRAME.columns.tolist()
    assert back.astype(object).values.tolist() == FRAME.values.tolist()
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_writer_is_atomic(tmp_path):
    out = tmp_path / "o.csv"
    out.write_text("old\n")
    with pytest.raises(RuntimeError):
        with TableWriter(out) as w:
            w.write(FRAME)
            raise RuntimeError("boom")
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["o.csv"]


def test_writer_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with TableWriter(tmp_path / "no" / "o.csv"):
            pass


def test_writer_stdout(capsys):
    with TableWriter("-", "jsonl") as w:
        w.write(FRAME)
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["007", "N/A"]


# -- score_frame and Summary ----------------------------------------------------------------------
def test_score_frame_keeps_rows_index_and_input(rules_screener):
    df = pd.DataFrame({"description": ["LITHIUM ION BATTERY 18650", "", None, "TEA"], "hs": ["8507.60", "00", None, pd.NA]},
                      index=[10, 10, 3, 7])
    before = df.copy()
    out = score_frame(df, "description", "hs", screener=rules_screener)
    pd.testing.assert_frame_equal(df, before)
    assert out.index.tolist() == [10, 10, 3, 7]
    assert out.columns.tolist() == ["description", "hs", *OUTPUT_COLUMNS]
    assert out["dualuse_category"].iloc[0] == "batteries"
    assert "missing_text" in out["dualuse_flags"].iloc[2]
    assert "non_string_text" not in out["dualuse_flags"].iloc[3]


def test_score_frame_replaces_output_columns(rules_screener):
    df = pd.DataFrame({"description": ["TEA", "LITHIUM ION BATTERY 18650"]})
    once = score_frame(df, screener=rules_screener)
    twice = score_frame(once, screener=rules_screener)
    pd.testing.assert_frame_equal(once, twice)


def test_score_frame_errors(rules_screener):
    with pytest.raises(ColumnNotFoundError, match="'text'"):
        score_frame(pd.DataFrame({"text": ["A"]}), "description", screener=rules_screener)
    with pytest.raises(InvalidArgumentError):
        score_frame(["A"], screener=rules_screener)  # type: ignore[arg-type]
    assert score_frame(pd.DataFrame({"text": ["A"]}), None, screener=rules_screener).shape == (1, 1 + len(OUTPUT_COLUMNS))


def test_summary_counts(rules_screener):
    df = pd.DataFrame({"description": ["LITHIUM ION BATTERY 18650", "", "TEA"], "hs": ["8507.60", "x", None]})
    s = Summary().add(score_frame(df, "description", "hs", screener=rules_screener))
    s.add(score_frame(df.iloc[:1], "description", "hs", screener=rules_screener))
    d = s.to_dict()
    assert d["rows"] == 4 and sum(d["categories"].values()) == 4
    assert d["categories"]["batteries"] == 2 and d["sources"] == {"rules": 4}
    assert d["flagged_rows"] == 1 and d["flags"]["invalid_hs"] == 1
    json.dumps(d)
    text = s.to_text()
    assert "scored 4 rows" in text and "batteries" in text
