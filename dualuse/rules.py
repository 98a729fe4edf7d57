"""The transparent rules classifier: multilingual keyword cues, part-number patterns and HS evidence.

How a line is scored (every number below is a keyword argument of :class:`RulesClassifier`):

1. The text is put in :func:`~dualuse.text.match_form` and every cue of the taxonomy is looked for in
   one pass (one compiled alternation, longest cue first, so "copper scrap" shadows "copper").
2. Each category collects points from its distinct cues: a strong cue, a brand or a pattern is worth
   ``strong`` (3.0), a weak cue ``weak`` (1.0); a category's points are summed with decaying weights
   (1, ½, ¼ …) so many cues count more than one, but not linearly.
3. Use context: when a cue appears after a "for" marker ("for", "для", "用于" …) and another cue stands
   before it, the later cue names what the good is *for*, not what it *is* ("BATTERY FOR DJI MAVIC" is
   a battery): its points are multiplied by ``context`` (0.3).
4. Hard negatives: an ``exclude`` cue vetoes its category (points set to 0) unless a brand or pattern
   of that category fired too, and adds ``hard_negative`` (2.0) points to ``none``.
5. ``none`` starts with ``none_prior`` (1.5) points, so a line needs at least one strong cue, or
   several weak ones, to leave ``none``.
6. The declared HS code is evidence, weaker than the text: its category gets ``hs_weight`` (2.0)
   points (``none`` gets half of that when a valid code maps to no category). Text beats code: a
   strong cue (3.0) outweighs a contradicting code, which is how evasion (a drone declared as a toy)
   is caught. With no textual cue at all, the code alone decides.
7. Points become probabilities with a softmax of ``sharpness`` × points.

The text-only probabilities (steps 1–5 and 7) are kept too: the HS check compares the declared
code's category against them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .taxonomy import LANGUAGES, Taxonomy, load_taxonomy
from .text import match_form, normalize

__all__ = ["RulesClassifier", "TextEvidence", "Hit"]

_FOR_MARKERS = re.compile(
    r"(?<![^ ])(?:for|compatible with|suitable for|fits|fit for|для|под|用于|适用于|适用|适配|配套|用)(?![^ ])"
)
_CJK_CHAR = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True, slots=True)
class Hit:
    """One cue that fired."""

    category: str
    kind: str  # strong | weak | exclude | brand | pattern
    cue: str
    context: bool = False  # stood after a "for" marker

    def describe(self) -> str:
        where = " (after 'for': use context)" if self.context else ""
        return f"{self.kind} cue '{self.cue}' -> {self.category}{where}"


@dataclass(frozen=True, slots=True)
class TextEvidence:
    """Everything the rules found in one text, independent of any HS code."""

    points: tuple[float, ...]  # per taxonomy category, in taxonomy order (after exclusions)
    hits: tuple[Hit, ...]
    vetoed: tuple[str, ...]


class RulesClassifier:
    """Keyword / pattern / HS-evidence classifier over the packaged taxonomy."""

    def __init__(
        self,
        taxonomy: Taxonomy | None = None,
        *,
        strong: float = 3.0,
        weak: float = 1.0,
        context: float = 0.3,
        hard_negative: float = 2.0,
        none_prior: float = 1.5,
        hs_weight: float = 2.0,
        sharpness: float = 1.5,
    ) -> None:
        self.taxonomy = taxonomy
        self.strong = strong
        self.weak = weak
        self.context = context
        self.hard_negative = hard_negative
        self.none_prior = none_prior
        self.hs_weight = hs_weight
        self.sharpness = sharpness
        self._cache: dict[str, TextEvidence] = {}

    # -- compilation -------------------------------------------------------------------------
    @cached_property
    def tax(self) -> Taxonomy:
        return self.taxonomy if self.taxonomy is not None else load_taxonomy()

    @cached_property
    def labels(self) -> tuple[str, ...]:
        return self.tax.ids

    @cached_property
    def _index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.labels)}

    @staticmethod
    def _cue_regex(cue: str, lang: str) -> str | None:
        if lang == "zh" or _CJK_CHAR.search(cue):
            form = normalize(cue.replace("*", ""))
            return re.escape(form) if form else None
        parts: list[str] = []
        for word in cue.split():
            star = word.endswith("*")
            form = match_form(word.rstrip("*"))
            if not form:
                continue
            piece = re.escape(form)
            parts.append(piece + (r"[^ ]*" if star else ""))
        if not parts:
            return None
        return r"(?<![^ ])" + " ".join(parts) + r"(?![^ ])"

    @cached_property
    def _matcher(self) -> tuple[re.Pattern[str], list[tuple[str, str, str]]]:
        entries: list[tuple[str, str, str, str]] = []  # (regex, category, kind, cue)
        for cat in self.tax.categories.values():
            for kind in ("strong", "weak", "exclude"):
                cues = getattr(cat, kind)
                for lang in LANGUAGES:
                    for cue in cues.get(lang, ()):
                        rx = self._cue_regex(cue, lang)
                        if rx:
                            entries.append((rx, cat.id, kind, cue))
            for brand in cat.brands:
                rx = self._cue_regex(brand, "en")
                if rx:
                    entries.append((rx, cat.id, "brand", brand))
        # longest literal first so that longer phrases shadow their parts
        entries.sort(key=lambda e: -len(e[0]))
        meta = [(cat, kind, cue) for _, cat, kind, cue in entries]
        big = "|".join(f"(?P<g{i}>{rx})" for i, (rx, *_rest) in enumerate(entries))
        return re.compile(big or r"(?!x)x"), meta

    @cached_property
    def _patterns(self) -> list[tuple[re.Pattern[str], str, str]]:
        out = []
        for cat in self.tax.categories.values():
            for pat in cat.patterns:
                out.append((re.compile(pat, re.IGNORECASE), cat.id, pat))
        return out

    # -- evidence ----------------------------------------------------------------------------
    def evidence(self, text: str) -> TextEvidence:
        """Cues found in ``text`` and the per-category points they give (cached per text)."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        ev = self._evidence(text)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[text] = ev
        return ev

    def _evidence(self, text: str) -> TextEvidence:
        regex, meta = self._matcher
        form = " " + match_form(text) + " "
        marker = _FOR_MARKERS.search(form)
        marker_at = marker.start() if marker else None
        raw_hits: list[tuple[int, str, str, str]] = []
        for m in regex.finditer(form):
            cat, kind, cue = meta[int(m.lastgroup[1:])]  # type: ignore[index]
            raw_hits.append((m.start(), cat, kind, cue))
        if self._patterns:
            nfkc = normalize_for_patterns(text)
            for rx, cat, pat in self._patterns:
                m = rx.search(nfkc)
                if m:
                    # position in the match form is unknown; patterns count as the good itself
                    raw_hits.append((-1, cat, "pattern", m.group(0)))
        has_cue_before = marker_at is not None and any(
            0 <= pos < marker_at and kind != "exclude" for pos, _c, kind, _q in raw_hits
        )
        hits: list[Hit] = []
        seen: set[tuple[str, str]] = set()
        for pos, cat, kind, cue in raw_hits:
            key = (cat, cue)
            if key in seen:
                continue
            seen.add(key)
            ctx = bool(has_cue_before and marker_at is not None and pos > marker_at)
            hits.append(Hit(cat, kind, cue, ctx))
        return self._points(hits)

    def _points(self, hits: list[Hit]) -> TextEvidence:
        idx = self._index
        per_cat: dict[str, list[float]] = {}
        excluded: set[str] = set()
        anchored: set[str] = set()
        for h in hits:
            if h.kind == "exclude":
                excluded.add(h.category)
                continue
            if h.kind in ("brand", "pattern") and not h.context:
                anchored.add(h.category)
            w = self.weak if h.kind == "weak" else self.strong
            if h.context:
                w *= self.context
            per_cat.setdefault(h.category, []).append(w)
        points = [0.0] * len(self.labels)
        for cat, ws in per_cat.items():
            ws.sort(reverse=True)
            points[idx[cat]] = sum(w * 0.5**i for i, w in enumerate(ws))
        vetoed = tuple(sorted(c for c in excluded if c not in anchored and c != "none"))
        for cat in vetoed:
            points[idx[cat]] = 0.0
        none_i = idx["none"]
        points[none_i] = self.none_prior + (self.hard_negative if excluded else 0.0)
        return TextEvidence(points=tuple(points), hits=tuple(hits), vetoed=vetoed)

    # -- probabilities -----------------------------------------------------------------------
    def _softmax(self, points: np.ndarray) -> np.ndarray:
        z = self.sharpness * points
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def text_points(self, texts: list[str]) -> np.ndarray:
        """Per-category points from the text alone, shape (n, n_categories)."""
        return np.array([self.evidence(t).points for t in texts], dtype=np.float64).reshape(len(texts), len(self.labels))

    def hs_points(self, hs_categories: list[str | None]) -> np.ndarray:
        """Points the declared codes add, shape (n, n_categories)."""
        out = np.zeros((len(hs_categories), len(self.labels)))
        none_i = self._index["none"]
        for row, cat in enumerate(hs_categories):
            if cat is None:
                continue
            i = self._index.get(cat)
            if i is None:
                continue
            out[row, i] += self.hs_weight / 2 if i == none_i else self.hs_weight
        return out

    def predict_proba(self, texts: list[str], hs_categories: list[str | None] | None = None) -> np.ndarray:
        """Probabilities over :attr:`labels` (taxonomy order); text only when no HS categories given."""
        points = self.text_points(texts)
        if hs_categories is not None:
            points = points + self.hs_points(hs_categories)
        return self._softmax(points)

    def proba_from_points(self, points: np.ndarray) -> np.ndarray:
        return self._softmax(points)


def normalize_for_patterns(text: str) -> str:
    """NFKC text for the part-number patterns (case is ignored by the patterns)."""
    import unicodedata

    return unicodedata.normalize("NFKC", text)
