"""dualuse: find dual-use and sanctions-risk goods in customs-line descriptions."""

from .api import load, score_frame
from .errors import DualUseError
from .prediction import OUTPUT_COLUMNS, Prediction, Source
from .predict import Screener
from .taxonomy import load_taxonomy

__version__ = "0.1.0"
__all__ = [
    "load",
    "score_frame",
    "Screener",
    "Prediction",
    "Source",
    "OUTPUT_COLUMNS",
    "DualUseError",
    "load_taxonomy",
    "__version__",
]
