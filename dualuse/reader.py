"""Reading tables without stopping at a bad row: unreadable rows become :class:`Reject` records.

:func:`open_batches` yields ``(chunk, rejects)`` pairs: a DataFrame of at most ``chunksize`` good rows
and the rows that could not be read since the previous chunk (a CSV row with more fields than the
header, bytes that do not decode, an invalid JSON line, a quote never closed). With ``strict=True`` it
reads exactly like :func:`dualuse.io.iter_chunks` and the first bad row raises
:class:`~dualuse.errors.FileFormatError` (and every batch has no rejects).

CSV and TSV are parsed with Python's :mod:`csv` module (the same dialect pandas' C parser reads: a
double quote quotes, ``""`` escapes, short rows are filled with ``""``, blank lines are skipped,
duplicate column names get ``.1``, ``.2``), so every row is judged on its own.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import pandas as pd

from .errors import FileFormatError
from .io import (
    _codec,
    _display,
    _is_stdio,
    _open_binary,
    _records_frame,
    _sniff_sep,
    iter_chunks,
    resolve_format,
)

__all__ = ["Reject", "BatchReader", "open_batches", "REJECT_COLUMNS"]

#: Columns of a rejects file, in order.
REJECT_COLUMNS = ("line", "reason", "raw")
_MAX_FIELD = 1 << 30


@dataclass(frozen=True, slots=True)
class Reject:
    """An input row that could not be read: its first physical line (1 = the header), why, and its text."""

    line: int
    reason: str
    raw: str


class BatchReader:
    """Iterator of ``(DataFrame, list[Reject])``; :meth:`position` says how many input bytes were read."""

    def __init__(self, path: str | os.PathLike[str], chunksize: int, fmt: str | None, *, encoding: str,
                 strict: bool) -> None:
        self.path = path
        self.table = resolve_format(path, fmt)
        self.total = None if _is_stdio(path) else os.path.getsize(path) if os.path.isfile(path) else None
        self._raw: Any = None
        if strict or self.table.kind == "parquet":
            self._it: Iterator[tuple[pd.DataFrame, list[Reject]]] = (
                (chunk, []) for chunk in iter_chunks(path, chunksize, fmt, encoding=encoding)
            )
            return
        codec = _codec(encoding)
        source = _open_binary(path, self.table.gzip)  # fails now on a missing file
        self._raw = getattr(source, "fileobj", None) or source
        if self.table.kind == "jsonl":
            self._it = _jsonl_batches(path, source, chunksize, codec)
        else:
            sep = _sniff_sep(path, self.table, codec)
            self._it = _csv_batches(path, source, chunksize, codec, sep)

    def __iter__(self) -> BatchReader:
        return self

    def __next__(self) -> tuple[pd.DataFrame, list[Reject]]:
        return next(self._it)

    def position(self) -> int | None:
        """Bytes of the input file read so far (compressed bytes for ``.gz``), ``None`` when unknown."""
        try:
            return int(self._raw.tell()) if self._raw is not None else None
        except (OSError, ValueError, AttributeError):
            return None


def open_batches(path: str | os.PathLike[str], chunksize: int = 50_000, fmt: str | None = None, *,
                 encoding: str = "utf-8", strict: bool = False) -> BatchReader:
    """``(chunk, rejects)`` pairs from the table at ``path`` (see the module docstring).

    The format, the encoding and the file's existence are checked at once. Whole-file problems (an
    empty file, a file that is not gzip or Parquet) still raise :class:`FileFormatError`.
    """
    if strict or resolve_format(path, fmt).kind == "parquet":
        iter_chunks(path, chunksize, fmt, encoding=encoding)  # the same early checks
    return BatchReader(path, chunksize, fmt, encoding=encoding, strict=strict)


# -- CSV / TSV ------------------------------------------------------------------------------------
class _LineTap:
    """Feeds lines to :func:`csv.reader` and keeps the ones of the current record."""

    def __init__(self, fh: IO[str]) -> None:
        self.fh = fh
        self.lines: list[str] = []
        self.count = 0

    def __iter__(self) -> _LineTap:
        return self

    def __next__(self) -> str:
        line = self.fh.readline()
        if not line:
            raise StopIteration
        self.count += 1
        self.lines.append(line)
        return line


def _header_names(record: list[str]) -> list[str]:
    """Column names as pandas gives them: empty names -> ``Unnamed: i``, duplicates -> ``name.1``."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(record):
        name = name or f"Unnamed: {i}"
        base, n = name, seen.get(name, 0)
        while name in seen:
            n += 1
            name = f"{base}.{n}"
        seen[base] = n
        seen[name] = 0
        names.append(name)
    return names


def _raw_text(lines: list[str], encoding: str) -> str:
    """The record's lines as readable text: undecodable bytes shown as ``\\xNN``."""
    text = "".join(lines).rstrip("\r\n")
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode(encoding, "surrogateescape").decode(encoding, "backslashreplace")


def _undecodable(values: list[str]) -> bool:
    for v in values:
        if not v.isascii():
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def _records(reader: Any, tap: _LineTap) -> Iterator[tuple[int, list[str], list[str], bool]]:
    """``(first line, fields, raw lines, is_last)`` for each record, one record ahead."""
    prev = None
    while True:
        tap.lines = []
        start = tap.count + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        if prev is not None:
            yield (*prev, False)
        prev = (start, record, tap.lines)
    if prev is not None:
        yield (*prev, True)


def _csv_batches(path: str | os.PathLike[str], source: IO[bytes], chunksize: int, encoding: str,
                 sep: str) -> Iterator[tuple[pd.DataFrame, list[Reject]]]:
    name = _display(path)
    label = "UTF-8" if encoding in ("utf-8", "utf-8-sig") else encoding
    csv.field_size_limit(_MAX_FIELD)
    fh = io.TextIOWrapper(source, encoding=encoding, errors="surrogateescape", newline="")
    tap = _LineTap(fh)
    reader = csv.reader(tap, delimiter=sep, quotechar='"', doublequote=True, strict=False)
    header: list[str] | None = None
    width = 0
    rows: list[list[str]] = []
    rejects: list[Reject] = []
    yielded = False
    try:
        for start, record, lines, last in _records(reader, tap):
            if header is None:
                if _undecodable(record):
                    raise FileFormatError(f"{name}: line 1: the header is not {label}; pass --encoding")
                header = _header_names(record)
                width = len(header)
                continue
            if not record:
                continue  # a blank line
            n = len(record)
            if _undecodable(record):
                reason = f"not {label}; pass --encoding"
            elif last and record[-1].endswith(("\n", "\r")) and "".join(lines).count('"') % 2:
                reason = "a quoted field is never closed (a stray '\"'?)"
            elif n > width:
                reason = f"{n} fields, but the header has {width}"
            else:
                if n < width:
                    record += [""] * (width - n)
                rows.append(record)
                if len(rows) >= chunksize:
                    yield pd.DataFrame(rows, columns=header, dtype=object), rejects
                    rows, rejects, yielded = [], [], True
                continue
            rejects.append(Reject(start, reason, _raw_text(lines, encoding)))
        if header is None:
            raise FileFormatError(f"{name}: the file is empty (no header row)")
        if rows or rejects or not yielded:
            yield pd.DataFrame(rows, columns=header, dtype=object), rejects
    except (EOFError, gzip.BadGzipFile) as exc:
        raise FileFormatError(f"{name}: not a readable gzip file ({exc})") from None
    finally:
        if not _is_stdio(path):
            source.close()


# -- JSON Lines -----------------------------------------------------------------------------------
def _json_reject(raw: bytes, encoding: str) -> tuple[dict[str, Any] | None, str | None, str]:
    """``(record, reason, text)``: the record, or why the line is rejected; ``(None, None, "")`` when blank."""
    try:
        line = raw.decode(encoding)
    except UnicodeDecodeError:
        text = raw.decode(encoding, "backslashreplace").rstrip("\r\n")
        return None, f"not {'UTF-8' if encoding in ('utf-8', 'utf-8-sig') else encoding}; pass --encoding", text
    text = line.lstrip("\ufeff").rstrip("\r\n")
    if not text.strip():
        return None, None, ""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg} at column {exc.colno})", text
    if not isinstance(obj, dict):
        return None, f"expected a JSON object {{...}}, got {type(obj).__name__}", text
    return obj, None, text


def _jsonl_batches(path: str | os.PathLike[str], source: IO[bytes], chunksize: int,
                   encoding: str) -> Iterator[tuple[pd.DataFrame, list[Reject]]]:
    name = _display(path)
    columns: dict[str, None] = {}
    fixed = False
    records: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    try:
        for lineno, raw in enumerate(source, 1):
            obj, reason, text = _json_reject(raw, encoding)
            if obj is None:
                if reason is not None:
                    rejects.append(Reject(lineno, reason, text))
                continue
            if fixed:
                new = [k for k in obj if k not in columns]
                if new:
                    rejects.append(Reject(lineno, f"key {new[0]!r} does not appear in the first {chunksize} "
                                          "records (raise --chunksize)", text))
                    continue
            else:
                columns.update(dict.fromkeys(obj))
            records.append(obj)
            if len(records) >= chunksize:
                yield _records_frame(records, list(columns)), rejects
                records, rejects, fixed = [], [], True
        if records or rejects or not fixed:
            yield _records_frame(records, list(columns)), rejects
    except (EOFError, gzip.BadGzipFile) as exc:
        raise FileFormatError(f"{name}: not a readable gzip file ({exc})") from None
    finally:
        if not _is_stdio(path):
            source.close()
