"""Scoring tables: a DataFrame in memory (:func:`score_frame`) or a file streamed chunk by chunk
(:func:`score_file`), with a :class:`Summary` of what was found.

The :class:`~dualuse.Screener` already deduplicates repeated (description, code) pairs within a batch,
so each chunk costs as much as its distinct lines.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import ColumnNotFoundError, FileFormatError, InvalidArgumentError
from .io import TableWriter, column_list, iter_chunks, resolve_columns, resolve_format
from .prediction import OUTPUT_COLUMNS, Prediction

if TYPE_CHECKING:
    from .predict import Screener

__all__ = ["score_frame", "score_file", "Summary"]

logger = logging.getLogger(__name__)


def _cells(series: pd.Series) -> list[object]:
    """A column as a list of Python values, with pandas' missing markers turned into ``None``."""
    return [None if v is pd.NA or v is pd.NaT else v for v in series.tolist()]


def _column(df: pd.DataFrame, name: object, what: str) -> pd.Series:
    if name not in df.columns:
        raise ColumnNotFoundError(f"{what} column {name!r} not found; the columns are: {column_list(df.columns)}")
    col = df[name]
    if isinstance(col, pd.DataFrame):
        raise InvalidArgumentError(f"{what} column {name!r} appears {col.shape[1]} times; rename the duplicates")
    return col


def _output_values(preds: list[Prediction]) -> dict[str, list[object]]:
    values: dict[str, list[object]] = {c: [] for c in OUTPUT_COLUMNS}
    cache: dict[int, dict[str, object]] = {}  # the screener shares one Prediction among duplicate rows
    for p in preds:
        row = cache.get(id(p))
        if row is None:
            row = cache[id(p)] = p.to_columns()
        for c in OUTPUT_COLUMNS:
            values[c].append(row[c])
    return values


def score_frame(
    df: pd.DataFrame,
    text_col: Any = "description",
    hs_col: Any = None,
    *,
    screener: Screener | None = None,
) -> pd.DataFrame:
    """``df`` with the :data:`~dualuse.OUTPUT_COLUMNS` appended: same rows, order and index.

    ``df`` is not changed. Output columns already in ``df`` (a scored table scored again) are replaced,
    not duplicated. ``text_col=None`` detects the description column (see :mod:`dualuse.io`).
    ``screener`` defaults to :func:`dualuse.load`.
    """
    if not isinstance(df, pd.DataFrame):
        raise InvalidArgumentError(f"score_frame needs a pandas DataFrame, got {type(df).__name__}")
    if text_col is None:
        text_col, _ = resolve_columns(df.columns)
    texts = _cells(_column(df, text_col, "text"))
    codes = _cells(_column(df, hs_col, "HS code")) if hs_col is not None else None
    if screener is None:
        from .api import load

        screener = load()
    preds = screener.predict(texts, codes)
    stale = [c for c in OUTPUT_COLUMNS if c in df.columns]
    out = df.drop(columns=stale) if stale else df.copy(deep=False)
    for col, values in _output_values(preds).items():
        out[col] = values
    return out


@dataclass
class Summary:
    """Counts over scored rows; :meth:`add` each scored chunk, then :meth:`to_text` or :meth:`to_dict`."""

    rows: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    chpl_tiers: Counter[str] = field(default_factory=Counter)
    flags: Counter[str] = field(default_factory=Counter)
    mismatches: int = 0
    flagged: int = 0
    seconds: float = 0.0
    screener: str = ""
    text_col: str | None = None
    hs_col: str | None = None

    def add(self, scored: pd.DataFrame) -> Summary:
        """Count the rows of a frame returned by :func:`score_frame`; returns ``self``."""
        self.rows += len(scored)
        self.categories.update(_counts(scored["dualuse_category"]))
        self.sources.update(_counts(scored["dualuse_source"]))
        self.chpl_tiers.update({k: v for k, v in _counts(scored["dualuse_chpl_tier"]).items() if k})
        self.mismatches += sum(v for k, v in _counts(scored["dualuse_hs_mismatch"]).items() if _truthy(k))
        for value, n in _counts(scored["dualuse_flags"]).items():
            if value:
                self.flagged += n
                self.flags.update({f: n for f in value.split(";")})
        return self

    @property
    def risk_rows(self) -> int:
        """Rows in a category other than ``none``."""
        return self.rows - self.categories.get("none", 0)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict of every count."""
        return {
            "rows": self.rows,
            "risk_rows": self.risk_rows,
            "categories": dict(self.categories.most_common()),
            "sources": dict(self.sources.most_common()),
            "hs_mismatches": self.mismatches,
            "chpl_tiers": dict(sorted(self.chpl_tiers.items())),
            "flagged_rows": self.flagged,
            "flags": dict(self.flags.most_common()),
            "seconds": round(self.seconds, 3),
            "screener": self.screener,
            "text_col": self.text_col,
            "hs_col": self.hs_col,
        }

    def to_text(self) -> str:
        """A short multi-line report for people."""
        lines = [self._headline()]
        if self.text_col is not None:
            lines.append(f"columns: text {self.text_col!r}, HS code {self.hs_col!r}" if self.hs_col is not None
                         else f"columns: text {self.text_col!r}, no HS code column")
        lines.append(f"risk categories: {_rows(self.risk_rows)} ({_pct(self.risk_rows, self.rows)})")
        risky = [(c, n) for c, n in self.categories.most_common() if c != "none"]
        width = max((len(c) for c, _ in risky), default=0)
        lines += [f"  {c:<{width}}  {n:>9,}  {_pct(n, self.rows):>6}" for c, n in risky]
        lines.append(f"no risk (none): {_rows(self.categories.get('none', 0))}")
        if self.sources:
            lines.append("decided by: " + _join(self.sources.most_common()))
        lines.append(f"declared HS code contradicts the text: {_rows(self.mismatches)}")
        if self.chpl_tiers:
            lines.append("CHPL tiers: " + _join(sorted(self.chpl_tiers.items())))
        lines.append(f"rows with flags: {self.flagged:,}" + (f" ({_join(self.flags.most_common())})" if self.flags else ""))
        return "\n".join(lines)

    def _headline(self) -> str:
        head = f"scored {_rows(self.rows)}"
        if self.seconds > 0:
            head += f" in {self.seconds:.1f} s ({self.rows / self.seconds:,.0f} rows/s)"
        return head + (f" with {self.screener}" if self.screener else "")


def _counts(series: pd.Series) -> dict[Any, int]:
    return {k: int(v) for k, v in series.value_counts(dropna=False).items()}


def _truthy(value: object) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1")


def _rows(n: int) -> str:
    return f"{n:,} row" + ("" if n == 1 else "s")


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"


def _join(items: list[tuple[str, int]]) -> str:
    return " · ".join(f"{k} {v:,}" for k, v in items)


def _progress_bar(enabled: bool | None, total: int | None = None) -> Any:
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = bool(getattr(sys.stderr, "isatty", lambda: False)())
    return tqdm(total=total, unit=" rows", unit_scale=True, desc="dualuse", file=sys.stderr,
                disable=not enabled, dynamic_ncols=True)


def score_file(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    text_col: Any = None,
    hs_col: Any = None,
    screener: Screener | None = None,
    chunksize: int = 50_000,
    fmt_in: str | None = None,
    fmt_out: str | None = None,
    encoding: str = "utf-8",
    progress: bool | None = None,
) -> Summary:
    """Score the table ``input`` into ``output`` chunk by chunk (``-`` for stdin / stdout).

    Every input column and row is kept in order and the ``dualuse_*`` columns are appended. The
    columns are detected when not given (:func:`dualuse.io.resolve_columns`). ``fmt_out`` defaults to
    the output's extension, or to the input's format for stdout. The output file appears only when
    every row was written. The progress bar shows when stderr is a terminal, or with ``progress=True``.

    Raises:
        FileFormatError, ColumnNotFoundError, InvalidArgumentError: see :mod:`dualuse.io`.
    """
    chunks = iter_chunks(input, chunksize, fmt_in, encoding=encoding)
    if str(output) == "-" and fmt_out is None:
        fmt_out = resolve_format(input, fmt_in).kind
    if screener is None:
        from .api import load

        screener = load()
    summary = Summary(screener=screener.describe())
    t0 = time.perf_counter()
    with TableWriter(output, fmt_out) as writer, _progress_bar(progress) as bar:
        for chunk in chunks:
            if summary.text_col is None:
                summary.text_col, summary.hs_col = resolve_columns(chunk.columns, text_col, hs_col)
                logger.info("text column %r, HS column %r", summary.text_col, summary.hs_col)
            scored = score_frame(chunk, summary.text_col, summary.hs_col, screener=screener)
            writer.write(scored)
            summary.add(scored)
            bar.update(len(chunk))
        if summary.text_col is None:
            raise FileFormatError(f"{input if str(input) != '-' else '<stdin>'}: the input is empty (no columns)")
    summary.seconds = time.perf_counter() - t0
    logger.info("%s", summary.to_text().splitlines()[0])
    return summary
