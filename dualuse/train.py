"""Rebuild the shipped model: ``dualuse train`` / ``make model``.

Deterministic: the curated split, the calibration folds and the solver are seeded, so the same data
and versions give the same coefficients, temperature and metrics.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .metrics import classification_report
from .model import DualUseClassifier
from .persistence import save_model
from .training import DEFAULT_DIR, training_data

__all__ = ["TrainConfig", "train_model", "DEFAULT_STATIC", "evaluate_screener"]

logger = logging.getLogger(__name__)

DEFAULT_STATIC = Path(__file__).resolve().parents[1] / "models" / "static"


@dataclass(frozen=True)
class TrainConfig:
    """What ``dualuse train`` fits."""

    encoder: str | None = "static"
    encoder_path: str | None = str(DEFAULT_STATIC)
    n_char_features: int = 2**17
    use_rules: bool = True
    C: float = 10.0
    nomenclature_weight: float = 0.3
    catalog_weight: float = 1.0
    calibration_folds: int = 3
    random_state: int = 0

    def estimator(self) -> DualUseClassifier:
        return DualUseClassifier(
            encoder=self.encoder,
            encoder_path=self.encoder_path if self.encoder == "static" else None,
            n_char_features=self.n_char_features,
            use_rules=self.use_rules,
            C=self.C,
            calibration_folds=self.calibration_folds,
            random_state=self.random_state,
        )


def evaluate_screener(screener: Any, texts: list[str], labels: list[str], langs: list[str] | None = None,
                      hs_codes: list[object] | None = None) -> dict[str, object]:
    """Score ``texts`` with a :class:`~dualuse.Screener` and report the figures of :mod:`dualuse.metrics`."""
    preds = screener.predict(texts, hs_codes)
    report = classification_report(
        labels, [p.category for p in preds], confidence=[p.confidence for p in preds], langs=langs
    )
    report["source_share_model"] = sum(p.source.value == "model" for p in preds) / max(len(preds), 1)
    return report


def heldout_metrics(clf: Any, data: Any) -> dict[str, Any]:
    """The manifest's ``metrics``: ``clf`` alone and in a :class:`~dualuse.Screener` (text only, and with
    the declared codes) on the held-out curated lines of ``data`` (:class:`~dualuse.training.TrainingData`)."""
    from .predict import Screener

    held = data.heldout
    texts, labels, langs = held["text"].tolist(), held["category"].tolist(), held["lang"].tolist()
    model_only = classification_report(labels, list(clf.predict(texts)), langs=langs,
                                       confidence=clf.predict_proba(texts).max(axis=1))
    screener = Screener(model=clf)
    return {
        "heldout_model_only": model_only,
        "heldout_screener_text_only": evaluate_screener(screener, texts, labels, langs),
        "heldout_screener_with_declared_hs": evaluate_screener(screener, texts, labels, langs,
                                                               hs_codes=held["hs_code"].tolist()),
        "oof_ece": getattr(clf, "oof_ece_", None),
        "temperature": clf.temperature_,
    }


def train_model(out: str | Path | None, config: TrainConfig = TrainConfig(), *, data_dir: Path = DEFAULT_DIR) -> dict[str, Any]:
    """Fit on the training split, evaluate on the held-out curated lines, save to ``out`` (unless None).

    Returns the metrics written to the manifest.
    """
    t0 = time.perf_counter()
    data = training_data(data_dir, nomenclature_weight=config.nomenclature_weight,
                         catalog_weight=config.catalog_weight, random_state=config.random_state)
    logger.info("training on %d texts (%d curated held out)", len(data.train), len(data.heldout))
    clf = config.estimator()
    clf.fit(data.train["text"].tolist(), data.train["category"].tolist(), sample_weight=data.train["weight"].to_numpy())
    fit_seconds = time.perf_counter() - t0
    training = {**data.summary(), "config": config.__dict__, "fit_seconds": round(fit_seconds, 1)}
    if out is not None:  # saved before the evaluation, so a failure there never loses a long fit
        save_model(clf, out, training=training, metrics={})
    metrics = heldout_metrics(clf, data)
    if out is not None:
        save_model(clf, out, training=training, metrics=metrics)
    model_only, combined = metrics["heldout_model_only"], metrics["heldout_screener_text_only"]
    logger.info(
        "held-out macro-F1 %.3f (model only %.3f), accuracy %.3f, ECE %.3f; fit %.0f s",
        combined["macro_f1"], model_only["macro_f1"], combined["accuracy"], combined.get("ece", float("nan")), fit_seconds,
    )
    return {"metrics": metrics, "training": training, "model": clf}
