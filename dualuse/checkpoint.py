"""Resumable, atomic output for ``dualuse score``: a killed run continues with ``--resume``.

:class:`ResumableWriter` appends each scored chunk to ``.<name>.partial`` beside the output and, after
each chunk, records in ``.<name>.checkpoint.json`` how many chunks are done, how many bytes the output
and rejects files then had, the summary so far, and a fingerprint of the input and the options. The
partial file is renamed to the output when every chunk is written. After a kill (Ctrl-C, SIGKILL, a
crash) the partial and checkpoint files stay; ``--resume`` cuts them back to the last checkpoint, skips
the chunks already done and appends the rest, so the output is byte-identical to an uninterrupted run.

Text formats only (CSV, TSV, JSON Lines, each also ``.gz``: one gzip member per chunk). A run that
fails on an error (not an interruption) removes its partial files.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import IO, Any

import pandas as pd

from .errors import FileFormatError, InvalidArgumentError
from .io import TableFormat, _default_file_mode, _TextSink, resolve_format
from .reader import REJECT_COLUMNS, Reject

__all__ = ["ResumableWriter", "RejectsWriter", "input_fingerprint", "partial_paths"]

logger = logging.getLogger(__name__)
_VERSION = 1


def partial_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(partial output, checkpoint)`` beside ``path``."""
    p = Path(path)
    return p.with_name(f".{p.name}.partial"), p.with_name(f".{p.name}.checkpoint.json")


def input_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Size, modification time and the sha1 of the first and last MiB of the input file."""
    p = Path(path)
    st = p.stat()
    h = hashlib.sha1()
    with open(p, "rb") as fh:
        h.update(fh.read(1 << 20))
        if st.st_size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read())
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha1": h.hexdigest()}


class _BytesSink(_TextSink):
    """A :class:`_TextSink` writing to a string buffer, so each chunk becomes bytes."""


def _chunk_bytes(df: pd.DataFrame, table: TableFormat, header: bool) -> bytes:
    import io

    buf = io.StringIO()
    sink = _BytesSink(buf, table)
    sink.header_written = not header
    sink.write(df)
    data = buf.getvalue().encode("utf-8")
    return gzip.compress(data, compresslevel=6, mtime=0) if table.gzip else data


def _truncate(path: Path, size: int) -> None:
    if not path.exists() or path.stat().st_size < size:
        raise FileFormatError(f"{path}: shorter than its checkpoint says; run without --resume to start over")
    with open(path, "r+b") as fh:
        fh.truncate(size)


class ResumableWriter:
    """Write DataFrame chunks to ``path`` with a checkpoint after each (see the module docstring).

    ``state`` is what the caller stored with the last checkpoint (``{}`` on a fresh start) and
    ``chunks_done`` how many chunks to skip.
    """

    def __init__(self, path: str | os.PathLike[str], fmt: str | None, *, fingerprint: dict[str, Any],
                 resume: bool = False) -> None:
        self.path = Path(path)
        self.table = resolve_format(path, fmt)
        if self.table.kind == "parquet":
            raise InvalidArgumentError("resumable output needs CSV, TSV or JSON Lines; Parquet is written at the end")
        self.fingerprint = fingerprint
        self.resume = resume
        self.partial, self.checkpoint_path = partial_paths(path)
        self.chunks_done = 0
        self.state: dict[str, Any] = {}
        self.rows_written = 0
        self._fh: IO[bytes] | None = None
        self._header = True

    def __enter__(self) -> ResumableWriter:
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"{self.path}: the output folder {self.path.parent} does not exist")
        if self.path.is_dir():
            raise FileFormatError(f"{self.path}: is a folder; give a file name for the output")
        saved = self._saved() if self.resume else None
        if saved is not None:
            _truncate(self.partial, saved["output_bytes"])
            self.chunks_done = saved["chunks"]
            self.state = saved["state"]
            self.rows_written = saved["rows"]
            self._header = saved["output_bytes"] == 0
            self._fh = open(self.partial, "ab")  # noqa: SIM115 - closed in __exit__
            logger.info("resuming %s after %d chunks (%d rows)", self.path, self.chunks_done, self.rows_written)
        else:
            if self.resume:
                logger.warning("nothing to resume for %s; starting from the beginning", self.path)
            elif self.checkpoint_path.exists():
                logger.info("an interrupted run of %s is discarded (use --resume to continue it)", self.path)
            self._fh = open(self.partial, "wb")  # noqa: SIM115 - closed in __exit__
        return self

    def _saved(self) -> dict[str, Any] | None:
        if not (self.checkpoint_path.is_file() and self.partial.is_file()):
            return None
        try:
            saved = json.loads(self.checkpoint_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            logger.warning("%s is unreadable; starting from the beginning", self.checkpoint_path)
            return None
        if saved.get("version") != _VERSION or saved.get("fingerprint") != self.fingerprint:
            raise FileFormatError(
                f"{self.path}: the input or the options changed since the interrupted run; "
                "run again without --resume to start over"
            )
        return saved

    def write(self, df: pd.DataFrame) -> None:
        assert self._fh is not None, "write() outside the with block"
        self._fh.write(_chunk_bytes(df, self.table, self._header))
        self._header = False
        self.rows_written += len(df)

    def checkpoint(self, chunks: int, state: dict[str, Any]) -> None:
        """Record that ``chunks`` chunks are written; ``state`` comes back as :attr:`state` on resume."""
        assert self._fh is not None
        self._fh.flush()
        os.fsync(self._fh.fileno())
        data = {"version": _VERSION, "chunks": chunks, "rows": self.rows_written, "output_bytes": self._fh.tell(),
                "fingerprint": self.fingerprint, "state": state}
        tmp = self.checkpoint_path.with_name(self.checkpoint_path.name + ".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.checkpoint_path)

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if exc_type is None:
            os.chmod(self.partial, _default_file_mode())
            os.replace(self.partial, self.path)
            self.checkpoint_path.unlink(missing_ok=True)
            logger.info("wrote %d rows to %s", self.rows_written, self.path)
        elif issubclass(exc_type, KeyboardInterrupt):
            logger.warning("interrupted; `--resume` continues from the last checkpoint")
        else:
            self.partial.unlink(missing_ok=True)
            self.checkpoint_path.unlink(missing_ok=True)


class RejectsWriter:
    """Unreadable rows to a CSV file (line, reason, raw), written beside it and renamed at the end.

    The file appears only when there is at least one reject. ``resume_bytes`` continues a partial file;
    ``keep_on`` are exceptions after which the file is still kept."""

    def __init__(self, path: str | os.PathLike[str], *, resume_bytes: int | None = None,
                 keep_on: tuple[type[BaseException], ...] = ()) -> None:
        self.path = Path(path)
        self.keep_on = keep_on
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        self.count = 0
        self.bytes = 0
        self._resume = resume_bytes
        self._fh: IO[bytes] | None = None

    def __enter__(self) -> RejectsWriter:
        if self._resume:
            _truncate(self.partial, self._resume)
            self._fh = open(self.partial, "ab")  # noqa: SIM115
            self.bytes = self._resume
        return self

    def write(self, rejects: list[Reject]) -> None:
        if not rejects:
            return
        df = pd.DataFrame([(r.line, r.reason, r.raw) for r in rejects], columns=list(REJECT_COLUMNS))
        data = df.to_csv(index=False, header=self._fh is None, lineterminator="\n").encode("utf-8")
        if self._fh is None:
            self._fh = open(self.partial, "wb")  # noqa: SIM115
        self._fh.write(data)
        self._fh.flush()
        self.bytes = self._fh.tell()
        self.count += len(rejects)

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if (exc_type is None or issubclass(exc_type, self.keep_on)) and self.bytes:
            os.chmod(self.partial, _default_file_mode())
            os.replace(self.partial, self.path)
        elif exc_type is None or not issubclass(exc_type, KeyboardInterrupt):
            self.partial.unlink(missing_ok=True)
