"""Reading and writing tables: CSV, TSV, JSON Lines and Parquet, chosen by file extension.

* ``.csv``, ``.tsv``, ``.jsonl`` / ``.ndjson`` (each optionally ``.gz``) and ``.parquet``;
  ``-`` means stdin / stdout, whose format is given by ``fmt`` (default ``csv``).
* CSV and TSV are read with every column as text (``"N/A"``, ``"00"`` and leading zeros stay as
  they are), in chunks, so memory stays bounded whatever the file size.
* Malformed input raises :class:`~dualuse.errors.FileFormatError` with a one-line message that names
  the file, the line and the reason.
* :class:`TableWriter` appends chunks to a temporary file beside the output and renames it into place
  only when every chunk was written, so a failed run never leaves a half-written output behind.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import json
import logging
import math
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from .errors import ColumnNotFoundError, FileFormatError, InvalidArgumentError

__all__ = [
    "FORMATS",
    "SUPPORTED_EXTENSIONS",
    "TEXT_COLUMN_NAMES",
    "HS_COLUMN_NAMES",
    "TableFormat",
    "TableWriter",
    "resolve_format",
    "iter_chunks",
    "read_table",
    "scored_path",
    "detect_text_column",
    "detect_hs_column",
    "resolve_columns",
]

logger = logging.getLogger(__name__)

#: Table formats, as accepted by ``fmt`` / ``--format``.
FORMATS: tuple[str, ...] = ("csv", "tsv", "jsonl", "parquet")
_EXTENSIONS: dict[str, str] = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
#: Every file ending :func:`resolve_format` recognises.
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(_EXTENSIONS) + tuple(
    f"{ext}.gz" for ext, kind in _EXTENSIONS.items() if kind != "parquet"
)
STDIO = "-"

#: Column names taken as the description, best first (compared case-insensitively; ``_``, ``-`` and
#: spaces are equivalent).
TEXT_COLUMN_NAMES: tuple[str, ...] = (
    "description", "goods_description", "product_description", "item_description", "product_name",
    "product", "goods", "commodity", "text", "title", "name", "desc",
    "описание", "описание товара", "наименование", "наименование товара",
    "品名", "商品名称", "货物描述", "描述",
)  # fmt: skip
#: Column names taken as the declared HS code, best first.
HS_COLUMN_NAMES: tuple[str, ...] = (
    "hs_code", "hscode", "hs", "tnved", "тн вэд", "код тн вэд", "commodity_code", "tariff_code",
    "hs编码", "商品编码", "税号",
)  # fmt: skip

_MAX_LISTED_COLUMNS = 40
_PANDAS_RAGGED = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_PANDAS_EOF_IN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


# -- formats --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TableFormat:
    """How a table is stored: ``kind`` is one of :data:`FORMATS`; ``gzip`` for ``.gz`` files."""

    kind: str
    gzip: bool = False

    @property
    def sep(self) -> str:
        return "\t" if self.kind == "tsv" else ","

    @property
    def extension(self) -> str:
        return f".{self.kind}" + (".gz" if self.gzip else "")


def _is_stdio(path: str | os.PathLike[str]) -> bool:
    return str(path) == STDIO


def _display(path: str | os.PathLike[str]) -> str:
    return "<stdin>" if _is_stdio(path) else str(path)


def _check_fmt(fmt: str) -> str:
    kind = {"ndjson": "jsonl"}.get(fmt.lower(), fmt.lower())
    if kind not in FORMATS:
        raise InvalidArgumentError(f"unknown table format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    return kind


def _split_extension(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``("lines", ".csv.gz")`` for ``lines.csv.gz``; the extension is ``""`` when unknown."""
    name = Path(path).name
    lower = name.lower()
    for ext in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if lower.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)], name[-len(ext) :]
    return name, ""


def resolve_format(path: str | os.PathLike[str], fmt: str | None = None) -> TableFormat:
    """The format of ``path``: ``fmt`` when given (a ``.gz`` ending still means gzip), else the extension.

    Raises:
        FileFormatError: the extension is not one of :data:`SUPPORTED_EXTENSIONS` and no ``fmt`` was given.
    """
    if _is_stdio(path):
        return TableFormat(_check_fmt(fmt or "csv"))
    gz = str(path).lower().endswith(".gz")
    if fmt is not None:
        kind = _check_fmt(fmt)
    else:
        _, ext = _split_extension(path)
        if not ext:
            raise FileFormatError(
                f"{path}: unknown file type; supported: {', '.join(SUPPORTED_EXTENSIONS)} "
                "(or pass --format)"
            )
        kind = _EXTENSIONS[ext.lower().removesuffix(".gz")]
    if kind == "parquet" and gz:
        raise FileFormatError(f"{path}: gzip-compressed Parquet is not supported; Parquet is compressed inside")
    return TableFormat(kind, gz)


def scored_path(path: str | os.PathLike[str], fmt: str | None = None) -> Path:
    """Default output of ``dualuse score``: ``lines.csv.gz`` -> ``lines.scored.csv.gz`` beside the input.

    With ``fmt`` the extension becomes that format's (``lines.csv`` + ``parquet`` -> ``lines.scored.parquet``).
    """
    p = Path(path)
    stem, ext = _split_extension(p)
    if fmt is not None:
        kind = _check_fmt(fmt)
        ext = f".{kind}" + (".gz" if ext.lower().endswith(".gz") and kind != "parquet" else "")
    elif not ext:
        stem, ext = p.stem, p.suffix
    return p.with_name(f"{stem}.scored{ext}")


# -- reading --------------------------------------------------------------------------------------
def _codec(encoding: str) -> str:
    """The codec to read with; plain UTF-8 also accepts a byte-order mark."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise InvalidArgumentError(f"unknown encoding {encoding!r}; try utf-8, utf-8-sig, cp1251, gb18030 or latin-1") from None
    return "utf-8-sig" if name == "utf-8" else name


def _open_binary(path: str | os.PathLike[str], gz: bool) -> IO[bytes]:
    if _is_stdio(path):
        return getattr(sys.stdin, "buffer", sys.stdin)  # type: ignore[return-value]
    p = Path(path)
    if not p.exists():
        raise _MissingInputError(f"{path}: no such file")
    if p.is_dir():
        raise FileFormatError(f"{path}: is a folder, not a file")
    return gzip.open(p, "rb") if gz else open(p, "rb")  # noqa: SIM115 - closed by the caller


class _MissingInputError(FileFormatError, FileNotFoundError):
    """The input file does not exist (both a :class:`FileFormatError` and a :class:`FileNotFoundError`)."""


def _encoding_error(name: str, line: int | None, exc: UnicodeDecodeError, encoding: str) -> FileFormatError:
    where = f"{name}: line {line}" if line else name
    byte = exc.object[exc.start : exc.start + 1].hex() if exc.object else "?"
    label = "UTF-8" if encoding in ("utf-8", "utf-8-sig") else encoding
    return FileFormatError(
        f"{where}: not {label} (byte 0x{byte}); re-save as UTF-8 or pass --encoding (e.g. cp1251, gb18030, latin-1)"
    )


def _first_undecodable_line(path: str | os.PathLike[str], gz: bool, encoding: str) -> int | None:
    """Line number of the first line that does not decode (used only to word an error)."""
    if _is_stdio(path):
        return None
    try:
        with _open_binary(path, gz) as fh:
            for lineno, raw in enumerate(fh, 1):
                try:
                    raw.decode(encoding)
                except UnicodeDecodeError:
                    return lineno
    except (OSError, EOFError):
        return None
    return None


def _first_long_record(path: str | os.PathLike[str], fmt: TableFormat, encoding: str, sep: str) -> tuple[int, int, int] | None:
    """``(line, fields, expected)`` of the first CSV record with more fields than the header."""
    if _is_stdio(path):
        return None
    try:
        opener = gzip.open if fmt.gzip else open
        with opener(path, "rt", encoding=encoding, errors="replace", newline="") as fh:  # type: ignore[operator]
            reader = csv.reader(fh, delimiter=sep)
            header = next(reader, [])
            for record in reader:
                if len(record) > len(header):
                    return reader.line_num, len(record), len(header)
    except (OSError, EOFError, csv.Error):
        return None
    return None


def _sniff_sep(path: str | os.PathLike[str], fmt: TableFormat, encoding: str) -> str:
    """``,`` unless the header of a ``.csv`` file has no comma but semicolons, tabs or pipes."""
    if fmt.kind != "csv" or _is_stdio(path):
        return fmt.sep
    try:
        with _open_binary(path, fmt.gzip) as fh:
            header = fh.readline(1 << 20).decode(encoding, errors="replace")
    except (OSError, EOFError):
        return fmt.sep
    if "," in header:
        return ","
    counts = {s: header.count(s) for s in (";", "\t", "|")}
    best = max(counts, key=counts.__getitem__)
    if counts[best]:
        logger.info("%s: the header has no comma; reading %r as the separator", path, best)
        return best
    return ","


def _csv_chunks(path: str | os.PathLike[str], fmt: TableFormat, chunksize: int, encoding: str) -> Iterator[pd.DataFrame]:
    name = _display(path)
    sep = _sniff_sep(path, fmt, encoding)
    source: Any = _open_binary(path, fmt.gzip)
    try:
        # index_col=False: a first row with one field too many must not become an index silently
        reader = pd.read_csv(
            source, sep=sep, dtype=str, keep_default_na=False, na_filter=False, encoding=encoding,
            chunksize=chunksize, on_bad_lines="error", engine="c", index_col=False,
        )  # fmt: skip
        with reader:
            while (chunk := _next_chunk(reader)) is not None:
                yield chunk
    except pd.errors.EmptyDataError:
        raise FileFormatError(f"{name}: the file is empty (no header row)") from None
    except UnicodeDecodeError as exc:
        raise _encoding_error(name, _first_undecodable_line(path, fmt.gzip, encoding), exc, encoding) from None
    except pd.errors.ParserError as exc:
        raise _csv_parse_error(path, fmt, encoding, sep, str(exc)) from None
    except _RowTooLong:
        raise _ragged_error(path, fmt, encoding, sep, None) from None
    except (EOFError, gzip.BadGzipFile) as exc:
        raise FileFormatError(f"{name}: not a readable gzip file ({exc})") from None
    finally:
        if not _is_stdio(path):
            source.close()


class _RowTooLong(Exception):
    """pandas warned that a row longer than the header would lose data (the first data row)."""


def _next_chunk(reader: Any) -> pd.DataFrame | None:
    """The next chunk, or ``None`` at the end; pandas' "data would be lost" warning becomes an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            return next(reader)
        except StopIteration:
            return None
        except pd.errors.ParserWarning:
            raise _RowTooLong from None


def _ragged_error(path: str | os.PathLike[str], fmt: TableFormat, encoding: str, sep: str,
                  reported: tuple[int, int, int] | None) -> FileFormatError:
    """``reported`` is pandas' ``(line, fields, expected)``; the file is re-read for the exact line."""
    name = _display(path)
    found = _first_long_record(path, fmt, encoding, sep) or reported
    if found is None:
        return FileFormatError(f"{name}: the first data row (line 2) has more fields than the header")
    line, saw, expected = found
    sep_name = "tabs" if sep == "\t" else repr(sep)
    return FileFormatError(
        f"{name}: line {line}: {saw} fields, but the header has {expected} (quote fields that contain {sep_name})"
    )


def _csv_parse_error(path: str | os.PathLike[str], fmt: TableFormat, encoding: str, sep: str, message: str) -> FileFormatError:
    detail = message.replace("Error tokenizing data. C error: ", "").strip()
    m = _PANDAS_RAGGED.search(detail)
    if m:
        expected, line, saw = (int(g) for g in m.groups())
        return _ragged_error(path, fmt, encoding, sep, (line, saw, expected))
    m = _PANDAS_EOF_IN_QUOTE.search(detail)
    if m:
        line = int(m.group(1)) + 1
        return FileFormatError(f"{_display(path)}: line {line}: a quoted field is never closed (a stray '\"'?)")
    return FileFormatError(f"{_display(path)}: malformed {fmt.kind.upper()}: {_one_line(detail)}")


def _jsonl_chunks(path: str | os.PathLike[str], fmt: TableFormat, chunksize: int, encoding: str) -> Iterator[pd.DataFrame]:
    name = _display(path)
    source = _open_binary(path, fmt.gzip)
    columns: dict[str, None] = {}
    fixed = False
    records: list[dict[str, Any]] = []
    try:
        for lineno, raw in enumerate(source, 1):
            obj = _json_record(raw, lineno, name, encoding)
            if obj is None:
                continue
            if fixed:
                new = [k for k in obj if k not in columns]
                if new:
                    raise FileFormatError(
                        f"{name}: line {lineno}: key {new[0]!r} does not appear in the first {chunksize} "
                        "records; put every key on the first line or raise --chunksize"
                    )
            else:
                columns.update(dict.fromkeys(obj))
            records.append(obj)
            if len(records) >= chunksize:
                yield _records_frame(records, list(columns))
                records, fixed = [], True
        if records:
            yield _records_frame(records, list(columns))
    except (EOFError, gzip.BadGzipFile) as exc:
        raise FileFormatError(f"{name}: not a readable gzip file ({exc})") from None
    finally:
        if not _is_stdio(path):
            source.close()


def _json_record(raw: bytes, lineno: int, name: str, encoding: str) -> dict[str, Any] | None:
    """One JSON Lines record; ``None`` for a blank line."""
    try:
        line = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _encoding_error(name, lineno, exc, encoding) from None
    if lineno == 1:
        line = line.lstrip("\ufeff")
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{name}: line {lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise FileFormatError(f"{name}: line {lineno}: expected a JSON object {{...}}, got {type(obj).__name__}")
    return obj


def _records_frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    rows = [[r.get(c) for c in columns] for r in records]
    return pd.DataFrame(rows, columns=columns, dtype=object)


def _parquet_chunks(path: str | os.PathLike[str], chunksize: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = _display(path)
    if _is_stdio(path):
        source: Any = pa.BufferReader(_open_binary(path, False).read())
    else:
        source = _open_binary(path, False)
    try:
        pf = pq.ParquetFile(source)
        empty = True
        for batch in pf.iter_batches(batch_size=chunksize):
            empty = False
            yield batch.to_pandas(types_mapper=pd.ArrowDtype)
        if empty:
            yield pf.schema_arrow.empty_table().to_pandas(types_mapper=pd.ArrowDtype)
    except (pa.ArrowException, OSError) as exc:
        raise FileFormatError(f"{name}: not a readable Parquet file ({_one_line(str(exc))})") from None
    finally:
        source.close()


def iter_chunks(
    path: str | os.PathLike[str], chunksize: int = 50_000, fmt: str | None = None, *, encoding: str = "utf-8"
) -> Iterator[pd.DataFrame]:
    """The table at ``path`` (``-`` for stdin) as DataFrames of at most ``chunksize`` rows.

    CSV/TSV columns are all text. The format, the encoding and the file's existence are checked at
    once; parsing errors are raised while iterating. At least one (possibly empty) chunk comes out
    unless the file has no columns at all.

    Raises:
        FileFormatError: unknown extension, missing file, bad encoding, ragged rows, invalid JSON …
        InvalidArgumentError: ``chunksize`` < 1, unknown ``fmt`` or ``encoding``.
    """
    if not isinstance(chunksize, int) or chunksize < 1:
        raise InvalidArgumentError(f"chunksize must be a positive integer, got {chunksize!r}")
    table = resolve_format(path, fmt)
    codec = _codec(encoding)
    if not _is_stdio(path):
        _open_binary(path, table.gzip).close()  # fail now on a missing file, not at the first chunk
    if table.kind in ("csv", "tsv"):
        return _csv_chunks(path, table, chunksize, codec)
    if table.kind == "jsonl":
        return _jsonl_chunks(path, table, chunksize, codec)
    return _parquet_chunks(path, chunksize)


def read_table(path: str | os.PathLike[str], fmt: str | None = None, *, encoding: str = "utf-8") -> pd.DataFrame:
    """The whole table at ``path`` in one DataFrame (see :func:`iter_chunks`)."""
    chunks = list(iter_chunks(path, 1_000_000, fmt, encoding=encoding))
    if not chunks:
        return pd.DataFrame()
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- columns --------------------------------------------------------------------------------------
def _norm(name: object) -> str:
    return " ".join(str(name).lstrip("\ufeff").replace("_", " ").replace("-", " ").casefold().split())


def column_list(columns: Iterable[object]) -> str:
    cols = [str(c) for c in columns]
    if not cols:
        return "(no columns)"
    shown = ", ".join(repr(c) for c in cols[:_MAX_LISTED_COLUMNS])
    more = len(cols) - _MAX_LISTED_COLUMNS
    return shown + (f" … and {more} more" if more > 0 else "")


def _find(columns: list[object], candidates: Iterable[str]) -> object | None:
    by_norm: dict[str, object] = {}
    for c in columns:
        by_norm.setdefault(_norm(c), c)
    for cand in candidates:
        hit = by_norm.get(_norm(cand))
        if hit is not None:
            return hit
    return None


def detect_text_column(columns: Iterable[object]) -> Any:
    """The description column among ``columns`` (see :data:`TEXT_COLUMN_NAMES`).

    Raises:
        ColumnNotFoundError: none of the usual names is present; the message lists the columns.
    """
    cols = list(columns)
    hit = _find(cols, TEXT_COLUMN_NAMES)
    if hit is None:
        raise ColumnNotFoundError(
            f"no description column found; the columns are: {column_list(cols)}; "
            "pass --text-col NAME (text_col= in Python)"
        )
    return hit


def detect_hs_column(columns: Iterable[object]) -> Any | None:
    """The declared-HS-code column among ``columns`` (see :data:`HS_COLUMN_NAMES`), or ``None``."""
    return _find(list(columns), HS_COLUMN_NAMES)


def _explicit(columns: list[object], name: object, what: str, option: str) -> Any:
    if name in columns:
        return name
    folded = [c for c in columns if _norm(c) == _norm(name)]
    if len(folded) == 1:
        logger.info("using column %r for %s %r", folded[0], option, name)
        return folded[0]
    raise ColumnNotFoundError(f"{what} column {name!r} ({option}) not found; the columns are: {column_list(columns)}")


def resolve_columns(columns: Iterable[object], text_col: object = None, hs_col: object = None) -> tuple[Any, Any | None]:
    """``(text column, HS column or None)``: the given names (checked) or the detected ones."""
    cols = list(columns)
    text = _explicit(cols, text_col, "text", "--text-col") if text_col is not None else detect_text_column(cols)
    if hs_col is not None:
        hs = _explicit(cols, hs_col, "HS code", "--hs-col")
    else:
        hs = detect_hs_column(c for c in cols if c != text)
    return text, hs


# -- writing --------------------------------------------------------------------------------------
def _json_value(value: Any) -> Any:
    """A cell as a JSON-ready value (NaN / NA -> null, numpy scalars -> Python)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, (str, bool, int, list, dict)):
        return value
    if hasattr(value, "item") and not hasattr(value, "__len__"):
        return _json_value(value.item())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _text_cell(value: Any) -> Any:
    """An object cell as Parquet text: strings stay, null stays null, anything else becomes JSON text."""
    v = _json_value(value)
    if v is None or isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, default=str)


class _TextSink:
    """CSV / TSV / JSON Lines writer on an open text stream."""

    def __init__(self, fh: IO[str], fmt: TableFormat) -> None:
        self.fh = fh
        self.fmt = fmt
        self.header_written = False

    def write(self, df: pd.DataFrame) -> None:
        if self.fmt.kind == "jsonl":
            self._write_jsonl(df)
        else:
            df.to_csv(self.fh, sep=self.fmt.sep, header=not self.header_written, index=False, lineterminator="\n")
        self.header_written = True

    def _write_jsonl(self, df: pd.DataFrame) -> None:
        keys = [str(c) for c in df.columns]
        columns = [df.iloc[:, j].tolist() for j in range(df.shape[1])]
        lines = (
            json.dumps(dict(zip(keys, (_json_value(v) for v in row))), ensure_ascii=False, default=str)
            for row in zip(*columns)
        )
        self.fh.writelines(line + "\n" for line in lines)

    def close(self, ok: bool = True) -> None:
        self.fh.flush()


class _ParquetSink:
    """Parquet writer: the first chunk fixes the schema; text-like object columns are stored as strings."""

    def __init__(self, where: Any) -> None:
        self.where = where
        self.writer: Any = None
        self.header_written = False

    def write(self, df: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        df = df.copy(deep=False)
        df.columns = [str(c) for c in df.columns]
        for col in df.columns[df.dtypes == object]:
            df[col] = [_text_cell(v) for v in df[col].tolist()]
        if self.writer is None:
            table = pa.Table.from_pandas(df, preserve_index=False)
            schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in table.schema],
                               metadata=table.schema.metadata)
            self.writer = pq.ParquetWriter(self.where, schema)
        table = pa.Table.from_pandas(df, schema=self.writer.schema, preserve_index=False)
        self.writer.write_table(table)
        self.header_written = True

    def close(self, ok: bool = True) -> None:
        if self.writer is not None:
            self.writer.close()
        elif ok:
            raise FileFormatError("nothing to write: a Parquet file needs at least one chunk (even an empty one)")


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class TableWriter:
    """Write DataFrame chunks to ``path`` (``-`` for stdout) in the format of its extension or ``fmt``.

    Files are written to a temporary file in the same folder and renamed into place when the ``with``
    block ends without error; on error the temporary file is removed. Stdout is streamed directly.

    >>> with TableWriter("out.csv") as w:          # doctest: +SKIP
    ...     for chunk in chunks:
    ...         w.write(chunk)
    """

    def __init__(self, path: str | os.PathLike[str], fmt: str | None = None) -> None:
        self.path = path
        self.fmt = fmt
        self.rows_written = 0
        self._sink: _TextSink | _ParquetSink | None = None
        self._tmp: Path | None = None
        self._fh: IO[Any] | None = None

    def __enter__(self) -> TableWriter:
        table = resolve_format(self.path, self.fmt)
        if _is_stdio(self.path):
            self._sink = self._stdout_sink(table)
            return self
        target = Path(self.path)
        if not target.parent.is_dir():
            raise FileNotFoundError(f"{target}: the output folder {target.parent} does not exist")
        if target.is_dir():
            raise FileFormatError(f"{target}: is a folder; give a file name for the output")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            self._sink = self._file_sink(self._tmp, table)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        return self

    def _stdout_sink(self, table: TableFormat) -> _TextSink | _ParquetSink:
        if table.kind == "parquet":
            sys.stdout.flush()
            return _ParquetSink(sys.stdout.buffer)
        return _TextSink(sys.stdout, table)

    def _file_sink(self, tmp: Path, table: TableFormat) -> _TextSink | _ParquetSink:
        if table.kind == "parquet":
            return _ParquetSink(str(tmp))
        if table.gzip:
            self._fh = gzip.open(tmp, "wt", encoding="utf-8", newline="", compresslevel=6)
        else:
            self._fh = open(tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in __exit__
        return _TextSink(self._fh, table)

    def write(self, df: pd.DataFrame) -> None:
        """Append ``df`` (its header is written with the first chunk)."""
        if self._sink is None:
            raise InvalidArgumentError("TableWriter.write() called outside its `with` block")
        self._sink.write(df)
        self.rows_written += len(df)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        sink, self._sink = self._sink, None
        try:
            if sink is not None:
                sink.close(ok=exc_type is None)
        except BaseException:
            self._discard()
            raise
        finally:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
        if exc_type is not None:
            self._discard()
        elif self._tmp is not None:
            os.chmod(self._tmp, _default_file_mode())
            os.replace(self._tmp, self.path)
            logger.info("wrote %d rows to %s", self.rows_written, self.path)
            self._tmp = None

    def _discard(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
