"""The result type of every classification: one frozen :class:`Prediction` per input line."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

__all__ = ["Source", "Prediction", "OUTPUT_COLUMNS"]


class Source(str, Enum):
    """Which component decided the category."""

    MODEL = "model"
    RULES = "rules"

    def __str__(self) -> str:
        return self.value


#: Columns appended by ``dualuse score`` / :func:`dualuse.score_frame`, in this order.
OUTPUT_COLUMNS: tuple[str, ...] = (
    "dualuse_category",
    "dualuse_confidence",
    "dualuse_source",
    "dualuse_chpl_tier",
    "dualuse_declared_hs_category",
    "dualuse_hs_mismatch",
    "dualuse_flags",
    "dualuse_suggested_hs",
    "dualuse_suggested_hs_text",
    "dualuse_hs_fit",
)


@dataclass(frozen=True, slots=True)
class Prediction:
    """What dualuse says about one customs line.

    Attributes:
        category: taxonomy id of the predicted category (``"none"`` for ordinary goods).
        confidence: calibrated probability of ``category`` in [0, 1].
        source: :class:`Source` that decided the category.
        top: the three best ``(category, score)`` pairs, best first.
        risk: default risk level of ``category`` (``high``, ``medium``, ``low`` or ``none``).
        declared_hs: the declared HS code normalised to digits, or ``None`` when absent/invalid.
        declared_hs_raw: the declared HS code as received (``None`` when not given).
        declared_hs_category: the category the declared code maps to, ``None`` without a valid code.
        declared_hs_edition: the HS edition assumed for the declared code (``"HS2022"`` or ``"HS2017"``).
        hs_mismatch: the declared code's category contradicts what the text supports.
        chpl_tier: CHPL tier of the declared code (``"TIER_1"`` … ``"TIER_4_B"``), else ``None``.
        flags: per-row flags (``empty_text``, ``invalid_hs``, ``low_confidence`` …).
        evidence: human-readable reasons (keywords, patterns and HS evidence that fired).
        suggested_hs: the top-3 HS 2022 subheadings retrieved for the text, ``(code6, text, score)``
            best first (empty when suggestions are off or the text is empty).
        suggested_hs4: the same for the 4-digit headings.
        hs_fit: how well the declared code (read as HS 2022, see ``declared_hs_edition``) fits the
            text, a calibrated probability in [0, 1]; ``None`` without a code of at least 4 digits.
    """

    category: str
    confidence: float
    source: Source
    top: tuple[tuple[str, float], ...] = ()
    risk: str = "none"
    declared_hs: str | None = None
    declared_hs_raw: str | None = None
    declared_hs_category: str | None = None
    declared_hs_edition: str | None = None
    hs_mismatch: bool = False
    chpl_tier: str | None = None
    flags: tuple[str, ...] = ()
    evidence: tuple[str, ...] = field(default=(), compare=False)
    suggested_hs: tuple[tuple[str, str, float], ...] = ()
    suggested_hs4: tuple[tuple[str, str, float], ...] = ()
    hs_fit: float | None = None

    @property
    def is_risk(self) -> bool:
        """True when the line falls in any category other than ``none``."""
        return self.category != "none"

    def to_columns(self) -> dict[str, object]:
        """The values of :data:`OUTPUT_COLUMNS` for this prediction (flags joined with ``;``)."""
        return {
            "dualuse_category": self.category,
            "dualuse_confidence": round(float(self.confidence), 4),
            "dualuse_source": self.source.value,
            "dualuse_chpl_tier": self.chpl_tier or "",
            "dualuse_declared_hs_category": self.declared_hs_category or "",
            "dualuse_hs_mismatch": bool(self.hs_mismatch),
            "dualuse_flags": ";".join(self.flags),
            "dualuse_suggested_hs": ";".join(c for c, _, _ in self.suggested_hs),
            "dualuse_suggested_hs_text": " | ".join(t for _, t, _ in self.suggested_hs),
            # text, so the column has one type in every chunk and format ("" without a code)
            "dualuse_hs_fit": "" if self.hs_fit is None else f"{float(self.hs_fit):.4f}",
        }

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict of every field."""
        return {
            "category": self.category,
            "confidence": float(self.confidence),
            "source": self.source.value,
            "top": [[c, float(s)] for c, s in self.top],
            "risk": self.risk,
            "declared_hs": self.declared_hs,
            "declared_hs_raw": self.declared_hs_raw,
            "declared_hs_category": self.declared_hs_category,
            "declared_hs_edition": self.declared_hs_edition,
            "hs_mismatch": self.hs_mismatch,
            "chpl_tier": self.chpl_tier,
            "flags": list(self.flags),
            "evidence": list(self.evidence),
            "suggested_hs": [[c, t, float(s)] for c, t, s in self.suggested_hs],
            "suggested_hs4": [[c, t, float(s)] for c, t, s in self.suggested_hs4],
            "hs_fit": self.hs_fit,
        }
