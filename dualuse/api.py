"""Top-level entry points: :func:`load` and :func:`score_frame`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .predict import Screener

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load", "score_frame", "default_model_path"]

logger = logging.getLogger(__name__)

#: Environment variable that points :func:`load` at a model folder.
MODEL_ENV = "DUALUSE_MODEL"


def default_model_path() -> Path | None:
    """``$DUALUSE_MODEL`` if set, else the shipped ``models/default`` beside the package (a checkout or
    an editable install), else ``None``."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env)
    shipped = Path(__file__).resolve().parents[1] / "models" / "default"
    return shipped if (shipped / "manifest.json").is_file() else None


def load(path: str | os.PathLike[str] | None = None, *, rules_only: bool = False, **options: float) -> Screener:
    """The screener to use: the trained model at ``path`` (default: :func:`default_model_path`) with
    the rules as fallback, or the rules alone with ``rules_only=True`` or when no model is shipped.

    ``options`` (``abstain_threshold``, ``mismatch_threshold``, ``hs_odds``) go to :class:`Screener`.
    """
    if rules_only:
        return Screener(**options)  # type: ignore[arg-type]
    model_path = Path(path) if path is not None else default_model_path()
    if model_path is None:
        logger.info("no trained model found (set %s or ship models/default); using the rules only", MODEL_ENV)
        return Screener(**options)  # type: ignore[arg-type]
    from .persistence import load_model

    model, info = load_model(model_path)
    return Screener(model=model, model_info=info, **options)  # type: ignore[arg-type]


def score_frame(
    df: "pd.DataFrame",
    text_col: str = "description",
    hs_col: str | None = None,
    *,
    screener: Screener | None = None,
) -> "pd.DataFrame":
    """Score a pandas DataFrame: the input columns plus the ``dualuse_*`` columns, same rows and order."""
    from .batch import score_frame as _score_frame

    return _score_frame(df, text_col=text_col, hs_col=hs_col, screener=screener)
