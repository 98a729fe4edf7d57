"""Scoring a Dask dataframe: :func:`score` (``pip install 'dualuse[dask]'``).

    import dask.dataframe as dd
    from distributed import Client
    import dualuse.dask

    client = Client("tcp://scheduler:8786")
    ddf = dd.read_parquet("exports/*.parquet")
    scored = dualuse.dask.score(ddf, text_col="description", hs_col="hs_code")
    scored.to_parquet("exports_scored/")

Each worker process loads the model once (:func:`dualuse.parallel.screener_for`, cached by model
path) and scores its partitions with it; the columns are those of :func:`dualuse.score_frame`.
``dualuse score --dask ADDRESS`` instead reads the file locally and sends the lines it has not seen
yet to the cluster, so its output is byte-identical to a single-process run.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from .parallel import ModelSpec, screener_for

__all__ = ["score"]

try:
    import dask.dataframe as dd
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("dualuse.dask needs Dask: pip install 'dualuse[dask]'") from exc


def _score_partition(df: pd.DataFrame, text_col: Any, hs_col: Any, spec: ModelSpec) -> pd.DataFrame:
    from .batch import score_frame

    return score_frame(df, text_col, hs_col, screener=screener_for(spec))


def score(
    ddf: dd.DataFrame,
    text_col: Any = "description",
    hs_col: Any = None,
    *,
    model: str | os.PathLike[str] | None = None,
    rules_only: bool = False,
    suggest_hs: bool = False,
) -> dd.DataFrame:
    """``ddf`` with the ``dualuse_*`` columns appended, partition by partition (lazy).

    ``model`` is a model folder that every worker can read, or a shipped model's name (default: the
    shipped model, or ``$DUALUSE_MODEL`` on the worker); ``rules_only=True`` uses the rules alone;
    ``suggest_hs=True`` also fills the suggested HS codes (MiniLM on every line: slow).
    """
    from .batch import score_frame

    spec = ModelSpec(None if model is None else str(model), rules_only, suggest_hs=suggest_hs)
    # the columns and dtypes: score a fake non-empty partition with the rules (cheap, no model load)
    meta = score_frame(ddf._meta_nonempty, text_col, hs_col, screener=screener_for(ModelSpec(rules_only=True))).iloc[:0]
    return ddf.map_partitions(_score_partition, text_col, hs_col, spec, meta=meta)

