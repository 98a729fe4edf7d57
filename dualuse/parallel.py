"""Scoring in other processes: a picklable :class:`ModelSpec`, loaded once per process.

``dualuse score --jobs N`` and ``--dask ADDRESS`` send batches of lines (only the ones the run has not
seen yet) to worker processes. A worker builds its screener from the spec the first time and keeps it
(:func:`screener_for`), so a model is loaded once per worker, never per batch.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .predict import Screener
    from .prediction import Prediction

__all__ = ["ModelSpec", "screener_for", "predict_rows", "process_pool", "dask_submitter"]


@dataclass(frozen=True)
class ModelSpec:
    """How to build a screener: :func:`dualuse.load` arguments, whether it suggests HS codes, and an
    optional embedding cache folder."""

    path: str | None = None
    rules_only: bool = False
    cache_dir: str | None = None
    suggest_hs: bool = False
    heading_prior: bool = True

    def load(self) -> Screener:
        from . import api

        screener = api.load(self.path, rules_only=self.rules_only, heading_prior=self.heading_prior)
        screener.suggest_hs = self.suggest_hs
        if self.cache_dir:
            from .embcache import with_embedding_cache

            screener = with_embedding_cache(screener, self.cache_dir)
        return screener


@functools.lru_cache(maxsize=4)
def screener_for(spec: ModelSpec) -> Screener:
    """The screener of ``spec``, built once per process."""
    return spec.load()


def predict_rows(spec: ModelSpec, texts: Sequence[object], codes: Sequence[object] | None) -> list[Prediction]:
    """``screener_for(spec).predict(texts, codes)``: the function worker processes run."""
    return screener_for(spec).predict(texts, codes)


Submit = Callable[..., "Future[Any]"]


def process_pool(jobs: int) -> Executor:
    """``jobs`` worker processes (started with ``spawn``: safe with the threads of pyarrow and tokenizers)."""
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


def dask_submitter(client: Any) -> Submit:
    """``submit(fn, *args)`` on a ``dask.distributed.Client`` (``pure=False``: every batch is its own task)."""
    return functools.partial(client.submit, pure=False)


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
