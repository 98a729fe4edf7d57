"""Top-level entry points: :func:`load` and :func:`score_frame`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .predict import Screener

if TYPE_CHECKING:
    import pandas as pd

    from .heading_prior import HeadingPrior

__all__ = ["load", "score_frame", "default_model_path"]

logger = logging.getLogger(__name__)

#: Environment variable that points :func:`load` at a model folder.
MODEL_ENV = "DUALUSE_MODEL"


#: Folder of the models shipped with a checkout: ``default`` (static encoder, fast) and ``accurate`` (MiniLM).
SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "models"


def resolve_model_path(path: str | os.PathLike[str]) -> Path:
    """``path`` itself when it exists; else, when it is a bare name such as ``accurate`` or ``default``,
    the shipped ``models/<name>`` folder (if that holds a model); else ``path`` unchanged (loading it
    then fails with a clear error)."""
    p = Path(path)
    if not p.exists() and str(path) == p.name and (SHIPPED_MODELS / p.name / "manifest.json").is_file():
        return SHIPPED_MODELS / p.name
    return p


def default_model_path() -> Path | None:
    """``$DUALUSE_MODEL`` if set, else the shipped ``models/default`` beside the package (a checkout or
    an editable install), else ``None``."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env)
    shipped = SHIPPED_MODELS / "default"
    return shipped if (shipped / "manifest.json").is_file() else None


def load(path: str | os.PathLike[str] | None = None, *, rules_only: bool = False, heading_prior: bool = True,
         **options: float) -> Screener:
    """The screener to use: the trained model at ``path`` (a folder, or the name of a shipped model:
    ``"default"`` or ``"accurate"``; default: :func:`default_model_path`) with
    the rules as fallback, or the rules alone with ``rules_only=True`` or when no model is shipped.

    With a model and ``heading_prior`` (default), the shipped heading classifier's n-gram part
    (``models/hs_heads``) adds the evidence of the HS heading each text reads as
    (:class:`dualuse.heading_prior.HeadingPrior`), with its MiniLM part too when the model encodes with
    MiniLM (``accurate``); without that folder the model is used alone, with a warning.

    ``options`` (``abstain_threshold``, ``mismatch_threshold``, ``hs_odds``) go to :class:`Screener`.
    """
    if rules_only:
        return Screener(**options)  # type: ignore[arg-type]
    model_path = resolve_model_path(path) if path is not None else default_model_path()
    if model_path is None:
        logger.info("no trained model found (set %s or ship models/default); using the rules only", MODEL_ENV)
        return Screener(**options)  # type: ignore[arg-type]
    from .persistence import load_model

    model, info = load_model(model_path)
    prior = _shipped_prior(getattr(model, "encoder", None)) if heading_prior else None
    return Screener(model=model, model_info=info, heading_prior=prior, **options)  # type: ignore[arg-type]


def _shipped_prior(model_encoder: str | None) -> "HeadingPrior | None":
    """The shipped heading classifier as a prior: its n-gram part, and its embedding part too when the
    model runs the classifier's encoder (the accurate model: MiniLM), whose embeddings it then reuses."""
    from .heading_prior import HeadingPrior
    from .hs_heads import SHIPPED_HEADS, HeadingClassifier
    from .taxonomy import load_taxonomy

    if not (SHIPPED_HEADS / "manifest.json").is_file():
        logger.warning("no heading classifier at %s (make hs-heads): the model decides without the heading prior",
                       SHIPPED_HEADS)
        return None
    heads = HeadingClassifier.load(SHIPPED_HEADS)
    return HeadingPrior.from_heads(heads, load_taxonomy(),
                                   embeddings=model_encoder is not None and model_encoder == heads.info.get("encoder"))


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
