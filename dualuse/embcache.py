"""An on-disk embedding cache that a second run reuses: ``dualuse score --cache DIR``.

Vectors are stored as float16 blobs in one SQLite file per encoder, ``DIR/embeddings-<id>.sqlite``,
keyed by the sha1 of the text. ``<id>`` is derived from the encoder's name, its dimension and the
sha256 of every file of its folder (the hashes a model manifest lists), so a changed encoder never
reads another's vectors. The model folder itself is not changed: :func:`with_embedding_cache` returns
a copy of the screener whose model encodes through :class:`CachedEncoder`.

Every vector that goes through the cache is rounded to float16, also on the first run, so a run that
fills the cache and a run that reads it give the same output. Compared with a run without ``--cache``
a confidence can differ in its fourth decimal.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from .encoders import Encoder
    from .predict import Screener

__all__ = ["EmbeddingCache", "CachedEncoder", "encoder_identity", "with_embedding_cache"]

logger = logging.getLogger(__name__)
_BATCH = 500  # SQLite host parameters per query


def encoder_identity(encoder: Encoder) -> str:
    """A short hex id of the encoder: name, dimension and the sha256 of the files of its folder."""
    from .persistence import _tree_hashes

    h = hashlib.sha256(f"{encoder.name}:{encoder.dim}".encode())
    folder = getattr(encoder, "path", None)
    if folder is None and encoder.name == "minilm":
        from .encoders import minilm_path

        folder = minilm_path()
    if folder is not None and Path(folder).is_dir():
        for rel, digest in _tree_hashes(Path(folder)).items():
            h.update(f"{rel}:{digest}".encode())
    return h.hexdigest()[:16]


class EmbeddingCache:
    """sha1(text) -> float16 vector, in SQLite (WAL, so several processes can share it)."""

    def __init__(self, folder: str | os.PathLike[str], identity: str, dim: int) -> None:
        self.folder = Path(folder)
        self.identity = identity
        self.dim = dim
        self.path = self.folder / f"embeddings-{identity}.sqlite"
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            if self.folder.exists() and not self.folder.is_dir():
                raise InvalidArgumentError(f"--cache {self.folder}: is a file; give a folder")
            self.folder.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=120, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS emb (key BLOB PRIMARY KEY, vec BLOB NOT NULL) WITHOUT ROWID")
            self._db = db
        return self._db

    def __getstate__(self) -> dict[str, Any]:  # a connection does not cross processes
        state = self.__dict__.copy()
        state["_db"] = None
        return state

    def get(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        out: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), _BATCH):
            part = keys[start : start + _BATCH]
            q = f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(part))})"
            for key, blob in self.db.execute(q, part):
                out[key] = np.frombuffer(blob, dtype=np.float16)
        return out

    def put(self, items: Sequence[tuple[bytes, np.ndarray]]) -> None:
        if not items:
            return
        db = self.db
        db.execute("BEGIN")
        try:
            db.executemany("INSERT OR IGNORE INTO emb (key, vec) VALUES (?, ?)",
                           [(k, v.astype(np.float16).tobytes()) for k, v in items])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM emb").fetchone()[0])


class CachedEncoder:
    """An :class:`~dualuse.encoders.Encoder` that asks ``cache`` first and stores what it had to encode."""

    def __init__(self, encoder: Encoder, cache: EmbeddingCache) -> None:
        self.encoder = encoder
        self.cache = cache
        self.name = encoder.name
        self.hits = 0
        self.misses = 0

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None,
               show_progress_bar: bool | None = None) -> np.ndarray:
        texts = [str(t) for t in texts]
        keys = [hashlib.sha1(t.encode("utf-8", "surrogatepass")).digest() for t in texts]
        known = self.cache.get(list(dict.fromkeys(keys)))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        todo: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            v = known.get(k)
            if v is not None:
                out[i] = v
            elif k not in todo:
                todo[k] = i
        self.hits += len(known)
        self.misses += len(todo)
        if todo:
            kwargs = {} if batch_size is None else {"batch_size": batch_size}
            new = self.encoder.encode([texts[i] for i in todo.values()], show_progress_bar=show_progress_bar, **kwargs)
            new16 = np.asarray(new, dtype=np.float32).astype(np.float16)
            self.cache.put(list(zip(todo, new16)))
            fresh = dict(zip(todo, new16))
            for i, k in enumerate(keys):
                v = fresh.get(k)
                if v is not None:
                    out[i] = v
        return out


def with_embedding_cache(screener: Screener, folder: str | os.PathLike[str]) -> Screener:
    """A copy of ``screener`` whose model's encoder reads and fills the cache in ``folder``.

    The screener is returned unchanged when it has no model or its model has no encoder."""
    model = getattr(screener, "model", None)
    build = getattr(model, "_builder", None)
    if build is None:
        logger.info("--cache: the screener has no model encoder; the cache is not used")
        return screener
    builder = build()
    if builder.encoder is None:
        logger.info("--cache: the model has no embedding block; the cache is not used")
        return screener
    if isinstance(builder.encoder, CachedEncoder):
        return screener
    cache = EmbeddingCache(folder, encoder_identity(builder.encoder), builder.encoder.dim)
    new_builder = copy.copy(builder)
    new_builder.encoder = CachedEncoder(builder.encoder, cache)
    new_model = copy.copy(model)
    new_model._builder_cache = new_builder
    new = copy.copy(screener)
    new.model = new_model
    logger.info("embedding cache %s", cache.path)
    return new
