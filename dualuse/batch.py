"""Scoring tables: a DataFrame in memory (:func:`score_frame`) or a file streamed chunk by chunk
(:func:`score_file`), with a :class:`Summary` of what was found.

The :class:`~dualuse.Screener` already deduplicates repeated (description, code) pairs within a batch,
so each chunk costs as much as its distinct lines.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import ColumnNotFoundError, FileFormatError, InvalidArgumentError
from .io import TableWriter, column_list, resolve_columns, resolve_format
from .prediction import OUTPUT_COLUMNS, Prediction

if TYPE_CHECKING:
    from .dedup import DedupScreener
    from .parallel import ModelSpec
    from .predict import Screener

__all__ = ["score_frame", "score_file", "Summary", "default_rejects_path", "NothingReadError", "DEFAULT_DEDUP"]

logger = logging.getLogger(__name__)

#: Predictions kept by ``score_file``'s cross-chunk LRU (``--dedup``); about 1 KB each.
DEFAULT_DEDUP = 200_000


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
    return _with_columns(df, screener.predict(texts, codes))


def _with_columns(df: pd.DataFrame, preds: list[Prediction]) -> pd.DataFrame:
    """``df`` (unchanged) with the output columns of ``preds`` appended or replaced."""
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
    rejected: int = 0
    rejects_path: str | None = None
    dedup_hits: int = 0

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
            "rejected_rows": self.rejected,
            "rejects_file": self.rejects_path,
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
        if self.rejected:
            lines.append(f"unreadable rows: {self.rejected:,}" + (f", written to {self.rejects_path}" if self.rejects_path else ""))
        return "\n".join(lines)

    _STATE = ("rows", "categories", "sources", "chpl_tiers", "flags", "mismatches", "flagged", "rejected",
              "text_col", "hs_col")

    def to_state(self) -> dict[str, Any]:
        """The counts as JSON (a checkpoint stores them); :meth:`restore` reads them back."""
        return {k: dict(v) if isinstance(v, Counter) else v for k in self._STATE for v in [getattr(self, k)]}

    def restore(self, state: dict[str, Any]) -> Summary:
        for k in self._STATE:
            if k in state:
                v = getattr(self, k)
                setattr(self, k, Counter(state[k]) if isinstance(v, Counter) else state[k])
        return self

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


class _Progress:
    """tqdm on stderr: input bytes (for the ETA) when the input's size is known, with rows and rows/s."""

    def __init__(self, enabled: bool | None, total: int | None) -> None:
        from tqdm.auto import tqdm

        if enabled is None:
            enabled = bool(getattr(sys.stderr, "isatty", lambda: False)())
        self.by_bytes = bool(total)
        unit = dict(unit="B", unit_scale=True, unit_divisor=1024) if self.by_bytes else dict(unit=" rows", unit_scale=True)
        self.bar = tqdm(total=total or None, desc="dualuse", file=sys.stderr, disable=not enabled,
                        dynamic_ncols=True, **unit)
        self.rows = 0
        self.t0 = time.perf_counter()

    def update(self, rows: int, position: int | None) -> None:
        self.rows += rows
        if self.bar.disable:
            return
        if self.by_bytes:
            # the reader reads ahead; a closed reader (None) has read everything
            self.bar.n = self.bar.total if position is None else min(position, self.bar.total)
            rate = self.rows / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix_str(f"{self.rows:,} rows, {rate:,.0f} rows/s")
        else:
            self.bar.update(rows)

    def close(self) -> None:
        self.bar.close()


def default_rejects_path(input: str | os.PathLike[str], output: str | os.PathLike[str]) -> Path:
    """``OUTPUT.rejects.csv``; for stdout ``INPUT.rejects.csv``; for stdin to stdout ``dualuse.rejects.csv``."""
    if str(output) != "-":
        return Path(f"{output}.rejects.csv")
    if str(input) != "-":
        return Path(f"{input}.rejects.csv")
    return Path("dualuse.rejects.csv")


class NothingReadError(FileFormatError):
    """Every data row of the input was unreadable (the rejects file says why)."""


class _Pipeline:
    """Scores chunks in order: here, or (``submit``) the lines not seen yet in other processes, with
    up to ``window`` chunks in flight."""

    def __init__(self, scorer: DedupScreener, submit: Any = None, spec: Any = None, window: int = 1) -> None:
        self.scorer = scorer
        self.submit = submit
        self.spec = spec
        self.window = window
        self.queue: deque[tuple[pd.DataFrame, list[Any], Any, Any]] = deque()

    def push(self, chunk: pd.DataFrame, bad: list[Any], text_col: Any, hs_col: Any) -> Iterator[tuple[pd.DataFrame, list[Any], pd.DataFrame]]:
        if chunk.shape[1] == 0:  # every line of a JSON Lines input so far was unreadable
            self.queue.append((chunk, bad, None, None))
        else:
            texts = _cells(_column(chunk, text_col, "text"))
            codes = _cells(_column(chunk, hs_col, "HS code")) if hs_col is not None else None
            if self.submit is None:
                self.queue.append((chunk, bad, None, _with_columns(chunk, self.scorer.predict(texts, codes))))
            else:
                from .dedup import plan_inputs
                from .parallel import predict_rows

                plan = self.scorer.plan(texts, codes)
                fut = self.submit(predict_rows, self.spec, *plan_inputs(plan)) if plan.todo_rows else None
                self.queue.append((chunk, bad, plan, fut))
        while len(self.queue) > self.window:
            yield self._pop()

    def drain(self) -> Iterator[tuple[pd.DataFrame, list[Any], pd.DataFrame]]:
        while self.queue:
            yield self._pop()

    def _pop(self) -> tuple[pd.DataFrame, list[Any], pd.DataFrame]:
        chunk, bad, plan, result = self.queue.popleft()
        if plan is None:
            return chunk, bad, chunk if result is None else result
        computed = result.result() if result is not None else []
        return chunk, bad, _with_columns(chunk, self.scorer.finish(plan, computed))

    def cancel(self) -> None:
        for *_, fut in self.queue:
            if fut is not None and hasattr(fut, "cancel"):
                fut.cancel()
        self.queue.clear()


class _Interrupts:
    """Ctrl-C that is never lost. Python raises ``KeyboardInterrupt`` wherever the main thread is when the
    signal arrives; inside a finaliser run by the garbage collector it is printed as "Exception ignored"
    and the run goes on. While active (main thread, default SIGINT handler only), the handler also
    records the signal, and :meth:`check` raises it again at the next chunk boundary."""

    def __init__(self) -> None:
        self.seen = False

    @contextlib.contextmanager
    def active(self) -> Iterator["_Interrupts"]:
        if threading.current_thread() is not threading.main_thread() or \
                signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield self
            return

        def handler(signum: int, frame: object) -> None:
            self.seen = True
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def check(self) -> None:
        if self.seen:
            raise KeyboardInterrupt


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
    strict: bool = False,
    rejects: str | os.PathLike[str] | None = None,
    resume: bool = False,
    dedup: int = DEFAULT_DEDUP,
    cache_dir: str | os.PathLike[str] | None = None,
    jobs: int = 1,
    spec: ModelSpec | None = None,
    dask_client: Any = None,
) -> Summary:
    """Score the table ``input`` into ``output`` chunk by chunk (``-`` for stdin / stdout).

    Every readable input row comes out once, in order, with the ``dualuse_*`` columns appended; the
    columns are detected when not given (:func:`dualuse.io.resolve_columns`).

    * Unreadable rows go to ``rejects`` (default :func:`default_rejects_path`, created only when there
      are any) and are counted in the summary; ``strict=True`` raises on the first one instead.
    * Each distinct ``(text, HS code)`` is scored once per run: an LRU of ``dedup`` predictions
      (0 = off); ``cache_dir`` keeps the embeddings on disk for the next run (:mod:`dualuse.embcache`).
    * ``jobs`` > 1 scores the new lines in that many worker processes; ``dask_client`` on a Dask
      cluster. Workers build their screener from ``spec`` (default: the shipped model).
    * File outputs (CSV/TSV/JSON Lines) are checkpointed after every chunk and appear only when
      complete; ``resume=True`` continues an interrupted run (:mod:`dualuse.checkpoint`).

    Raises:
        FileFormatError, ColumnNotFoundError, InvalidArgumentError: see :mod:`dualuse.io`;
        NothingReadError when rows were rejected and none could be read.
    """
    from .checkpoint import RejectsWriter, ResumableWriter, input_fingerprint
    from .dedup import DedupScreener
    from .reader import open_batches

    reader = open_batches(input, chunksize, fmt_in, encoding=encoding, strict=strict)
    to_stdout = str(output) == "-"
    if to_stdout and fmt_out is None:
        fmt_out = reader.table.kind
    out_kind = resolve_format(output, fmt_out).kind
    if resume and (to_stdout or str(input) == "-" or out_kind == "parquet"):
        raise InvalidArgumentError("--resume needs an input file and a CSV, TSV or JSON Lines output file "
                                   "(not stdin, stdout or Parquet)")
    if screener is None:
        from .api import load

        screener = load()
    if cache_dir is not None:
        from .embcache import with_embedding_cache

        screener = with_embedding_cache(screener, cache_dir)
    rejects_path = Path(rejects) if rejects is not None else default_rejects_path(input, output)
    summary = Summary(screener=screener.describe(), rejects_path=str(rejects_path))
    if to_stdout or out_kind == "parquet":
        writer: Any = TableWriter(output, fmt_out)
    else:
        options = {"chunksize": chunksize, "text_col": repr(text_col), "hs_col": repr(hs_col), "fmt_in": fmt_in,
                   "fmt_out": fmt_out, "encoding": encoding, "strict": strict, "screener": summary.screener,
                   "cache": cache_dir is not None}
        fingerprint = {"input": None if str(input) == "-" else input_fingerprint(input), "options": options}
        writer = ResumableWriter(output, fmt_out, fingerprint=fingerprint, resume=resume)
    scorer = DedupScreener(screener, dedup)
    pool = None
    submit = None
    window = 1
    if dask_client is not None or jobs > 1:
        from dataclasses import replace as _replace

        from .parallel import ModelSpec, dask_submitter, process_pool

        spec = spec or ModelSpec()
        if cache_dir is not None:
            spec = _replace(spec, cache_dir=str(cache_dir))
        if dask_client is not None:
            submit = dask_submitter(dask_client)
            window = 2 * max(1, len(dask_client.scheduler_info().get("workers", {})))
        else:
            pool = process_pool(jobs)
            submit, window = pool.submit, 2 * jobs
    pipeline = _Pipeline(scorer, submit, spec, window)
    t0 = time.perf_counter()
    try:
        with writer as out, RejectsWriter(rejects_path, resume_bytes=getattr(out, "state", {}).get("rejects_bytes"),
                                          keep_on=(NothingReadError,)) as rej:
            skip = getattr(out, "chunks_done", 0)
            if skip:
                summary.restore(out.state["summary"])
            bar = _Progress(progress, reader.total)
            done = skip
            with _Interrupts().active() as interrupts:
                try:
                    for k, (chunk, bad) in enumerate(reader):
                        if summary.text_col is None and chunk.shape[1]:
                            summary.text_col, summary.hs_col = resolve_columns(chunk.columns, text_col, hs_col)
                            logger.info("text column %r, HS column %r", summary.text_col, summary.hs_col)
                        if k < skip:
                            continue
                        for done_chunk, done_bad, scored in pipeline.push(chunk, bad, summary.text_col,
                                                                          summary.hs_col):
                            interrupts.check()
                            done += 1
                            _emit(out, rej, summary, bar, reader, done, done_chunk, done_bad, scored)
                    for done_chunk, done_bad, scored in pipeline.drain():
                        interrupts.check()
                        done += 1
                        _emit(out, rej, summary, bar, reader, done, done_chunk, done_bad, scored)
                    interrupts.check()
                finally:
                    pipeline.cancel()
                    bar.close()
            if summary.text_col is None and not summary.rejected:
                raise FileFormatError(f"{input if str(input) != '-' else '<stdin>'}: the input is empty (no columns)")
            if summary.rows == 0 and summary.rejected:
                raise NothingReadError(f"{input if str(input) != '-' else '<stdin>'}: no row could be read; "
                                       f"the {summary.rejected:,} unreadable rows are in {rejects_path}")
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    if not summary.rejected:
        summary.rejects_path = None
    summary.seconds = time.perf_counter() - t0
    summary.dedup_hits = scorer.hits
    logger.info("%s", summary.to_text().splitlines()[0])
    logger.info("distinct lines scored %d, reused %d (LRU of %d)", scorer.misses, scorer.hits, dedup)
    return summary


def _emit(out: Any, rej: Any, summary: Summary, bar: _Progress, reader: Any, done: int, chunk: pd.DataFrame,
          bad: list[Any], scored: pd.DataFrame) -> None:
    if chunk.shape[1]:
        out.write(scored)
        summary.add(scored)
    rej.write(bad)
    summary.rejected += len(bad)
    if hasattr(out, "checkpoint"):
        out.checkpoint(done, {"summary": summary.to_state(), "rejects_bytes": rej.bytes})
    bar.update(len(chunk), reader.position())
