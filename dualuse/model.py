"""The trained classifier: a scikit-learn estimator on raw strings.

Features (see :mod:`dualuse.features`): a sentence embedding (``static`` or ``minilm`` encoder), hashed
character 1–4-grams and the rules' per-category points, concatenated; a multinomial logistic
regression on top; probabilities calibrated by temperature scaling fitted on out-of-fold logits.

The estimator follows scikit-learn's rules: ``__init__`` only stores its arguments, ``fit`` returns
``self``, learned attributes end in ``_``, and an unfitted model raises ``NotFittedError`` through
``check_is_fitted``. It takes raw strings (``__sklearn_tags__``: ``input_tags.string``), so it works
in a ``Pipeline`` and a ``GridSearchCV``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .encoders import Encoder, get_encoder
from .errors import InvalidArgumentError
from .features import FeatureBuilder
from .metrics import expected_calibration_error
from .rules import RulesClassifier

__all__ = ["DualUseClassifier", "fit_temperature"]

logger = logging.getLogger(__name__)


def _as_texts(X: object) -> list[str]:
    if isinstance(X, (str, bytes)):
        raise InvalidArgumentError(
            f"X must be a sequence of strings, got a single {type(X).__name__}; wrap it in a list"
        )
    if hasattr(X, "ndim") and getattr(X, "ndim") == 2:
        arr = np.asarray(X)
        if arr.shape[1] != 1:
            raise InvalidArgumentError(
                f"X must be a 1-d sequence of strings (or one column), got shape {arr.shape}"
            )
        X = arr[:, 0]
    try:
        items = list(X)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidArgumentError(f"X must be a sequence of strings, got {type(X).__name__}") from None
    out = []
    for i, t in enumerate(items):
        if isinstance(t, str):
            out.append(t)
        elif t is None or (isinstance(t, float) and t != t):
            out.append("")
        else:
            raise InvalidArgumentError(
                f"X must hold strings; item {i} is {type(t).__name__} ({t!r:.40}). "
                "Convert the column with .astype(str) or use dualuse.Screener, which flags bad rows"
            )
    return out


def fit_temperature(logits: np.ndarray, y_idx: np.ndarray) -> float:
    """The temperature T > 0 minimising the negative log-likelihood of ``softmax(logits / T)``."""

    def nll(log_t: float) -> float:
        lp = log_softmax(logits / np.exp(log_t), axis=1)
        return float(-lp[np.arange(len(y_idx)), y_idx].mean())

    res = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return float(np.exp(res.x))


class DualUseClassifier(ClassifierMixin, BaseEstimator):
    """Embedding + character n-gram + rules features -> calibrated multinomial logistic regression.

    Parameters:
        encoder: encoder name (``static``, ``minilm``, ``stub``) or ``None`` for no embedding block.
        encoder_path: folder of the encoder (``static`` needs it; ``minilm`` defaults to the packaged weights).
        n_char_features: size of the hashed character n-gram block (0 disables it).
        use_rules: add the rules' per-category points as features.
        C: inverse regularisation strength of the logistic regression.
        calibration_folds: folds for the out-of-fold logits the temperature is fitted on (0 = none).
        max_iter: iterations of the solver.
        random_state: seed of the calibration folds.
    """

    def __init__(
        self,
        encoder: str | None = "static",
        encoder_path: str | None = None,
        *,
        n_char_features: int = 2**17,
        use_rules: bool = True,
        C: float = 10.0,
        calibration_folds: int = 3,
        max_iter: int = 3000,
        random_state: int = 0,
    ) -> None:
        self.encoder = encoder
        self.encoder_path = encoder_path
        self.n_char_features = n_char_features
        self.use_rules = use_rules
        self.C = C
        self.calibration_folds = calibration_folds
        self.max_iter = max_iter
        self.random_state = random_state

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.input_tags.one_d_array = True
        return tags

    # -- features ----------------------------------------------------------------------------
    def _make_encoder(self) -> Encoder | None:
        if self.encoder is None:
            return None
        return get_encoder(self.encoder, self.encoder_path)

    def _builder(self) -> FeatureBuilder:
        builder = getattr(self, "_builder_cache", None)
        if builder is None:
            builder = FeatureBuilder(
                self._make_encoder(),
                n_char_features=self.n_char_features,
                rules=RulesClassifier() if self.use_rules else None,
            )
            self._builder_cache = builder
        return builder

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_builder_cache", None)
        return state

    def set_params(self, **params):  # type: ignore[no-untyped-def]
        self.__dict__.pop("_builder_cache", None)
        return super().set_params(**params)

    def _lr(self) -> LogisticRegression:
        return LogisticRegression(C=self.C, max_iter=self.max_iter, tol=1e-4)

    # -- fit / predict -----------------------------------------------------------------------
    def fit(self, X: Sequence[str], y: Sequence[str], sample_weight: Sequence[float] | None = None) -> "DualUseClassifier":
        texts = _as_texts(X)
        y_arr = np.asarray(y)
        if len(texts) != len(y_arr):
            raise InvalidArgumentError(f"X and y differ in length: {len(texts)} texts, {len(y_arr)} labels")
        check_classification_targets(y_arr)
        self.classes_ = np.unique(y_arr)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least two classes to fit, got {len(self.classes_)}: {self.classes_!r}")
        y_idx = np.searchsorted(self.classes_, y_arr)
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        self.__dict__.pop("_builder_cache", None)
        builder = self._builder()
        logger.info("building features for %d texts (%s)", len(texts), ", ".join(builder.blocks()))
        feats = builder.transform(texts)
        self.n_features_ = feats.shape[1]
        self.feature_blocks_ = builder.blocks()
        self.temperature_ = 1.0
        counts = np.bincount(y_idx, minlength=len(self.classes_))
        folds = min(self.calibration_folds, int(counts.min()))
        if self.calibration_folds and folds >= 2:
            oof = np.zeros((len(texts), len(self.classes_)))
            skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.random_state)
            for k, (tr, te) in enumerate(skf.split(np.zeros(len(y_idx)), y_idx)):
                logger.info("calibration fold %d/%d", k + 1, folds)
                lr = self._lr().fit(feats[tr], y_idx[tr], sample_weight=None if w is None else w[tr])
                full = np.full((len(te), len(self.classes_)), -1e4)
                full[:, lr.classes_] = lr.decision_function(feats[te])
                oof[te] = full
            self.temperature_ = fit_temperature(oof, y_idx)
            cal = softmax(oof / self.temperature_, axis=1)
            self.oof_ece_ = expected_calibration_error(cal.max(axis=1), cal.argmax(axis=1) == y_idx)
        lr = self._lr().fit(feats, y_idx, sample_weight=w)
        self.coef_ = lr.coef_.astype(np.float32)
        self.intercept_ = lr.intercept_.astype(np.float32)
        if self.coef_.shape[0] == 1:  # binary: sklearn keeps one row
            self.coef_ = np.vstack([-self.coef_, self.coef_]) / 2
            self.intercept_ = np.array([-self.intercept_[0], self.intercept_[0]], dtype=np.float32) / 2
        return self

    def embed(self, X: Sequence[str]) -> np.ndarray | None:
        """The encoder's embeddings of ``X`` (``None`` for a model without an embedding block), to pass
        back as ``embeddings=`` so that a caller that also needs them encodes each text once."""
        if self.encoder is None:
            return None
        texts = _as_texts(X)
        return self._builder().embed(texts) if texts else np.zeros((0, self._builder().encoder.dim), np.float32)

    def decision_function(self, X: Sequence[str], *, embeddings: np.ndarray | None = None) -> np.ndarray:
        """Logits per class; ``embeddings`` (from :meth:`embed` on the same ``X``) skip the encoder."""
        check_is_fitted(self, ("coef_", "classes_"))
        texts = _as_texts(X)
        if not texts:
            return np.zeros((0, len(self.classes_)))
        feats = self._builder().transform(texts, embeddings=None if self.encoder is None else embeddings)
        if feats.shape[1] != self.coef_.shape[1]:
            raise InvalidArgumentError(
                f"the features have {feats.shape[1]} columns but the model expects {self.coef_.shape[1]}: "
                "the encoder or n_char_features differ from training"
            )
        return np.asarray(feats @ self.coef_.T.astype(np.float32)) + self.intercept_

    def predict_proba(self, X: Sequence[str], *, embeddings: np.ndarray | None = None) -> np.ndarray:
        """Calibrated class probabilities (columns: :attr:`classes_`); ``embeddings`` as in
        :meth:`decision_function`."""
        logits = self.decision_function(X, embeddings=embeddings)
        return softmax(logits / self.temperature_, axis=1)

    def predict(self, X: Sequence[str]) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)] if len(proba) else np.array([], dtype=self.classes_.dtype)
