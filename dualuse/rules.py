"""The transparent rules classifier: multilingual keyword cues, part-number patterns and HS evidence.

How a line is scored (every number below is a keyword argument of :class:`RulesClassifier`):

1. The text is put in :func:`~dualuse.text.match_form` and split into tokens; every cue of the taxonomy
   is looked up in one pass over the tokens through an index (dictionary lookups, not a regex per cue);
   at each position the longest cue wins, so "copper scrap" shadows "copper". Part-number patterns
   are regular expressions over the NFKC text.
2. Each category collects points from its distinct cues: a strong cue, a brand or a pattern is worth
   ``strong`` (3.0), a weak cue ``weak`` (1.0); a category's points are summed with decaying weights
   (1, ½, ¼ …) so many cues count more than one, but not linearly.
3. Use context: a cue after a "with" marker ("with", "containing", "built in", "в комплекте",
   "内置", "配有" …) names a component or accessory ("TOOTHBRUSH WITH RECHARGEABLE BATTERY" is not a
   battery); a cue after a "for" marker ("for", "для", "с", "用于" …) when another cue stands before it
   names the use ("BATTERY FOR DJI MAVIC" is a battery); in Chinese a cue right before "用"/"专用" is
   the use ("无人机用锂电池" is a battery). Such cues count ``context`` (0.3) times.
4. Hard negatives: an ``exclude`` cue vetoes its category (points set to 0) unless a brand or pattern
   of that category fired too, or the cue stands in the use context of step 3. When the veto cancelled
   points and no other category holds a strong cue, ``none`` gets ``hard_negative`` (2.0) points.
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

_CJK_CHAR = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True, slots=True)
class Hit:
    """One cue that fired."""

    category: str
    kind: str  # strong | weak | exclude | brand | pattern
    cue: str
    context: bool = False  # stood after a "for" marker

    def describe(self) -> str:
        where = " (after 'for'/'with': what it is for or comes with)" if self.context else ""
        return f"{self.kind} cue '{self.cue}' -> {self.category}{where}"


@dataclass(frozen=True, slots=True)
class TextEvidence:
    """Everything the rules found in one text, independent of any HS code."""

    points: tuple[float, ...]  # per taxonomy category, in taxonomy order (after exclusions)
    hits: tuple[Hit, ...]
    vetoed: tuple[str, ...]


_SHARED_CACHES: dict[tuple[object, ...], dict[str, "TextEvidence"]] = {}


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

    @cached_property
    def _index_tables(self) -> "_CueIndex":
        index = _CueIndex()
        for cat in self.tax.categories.values():
            for kind in ("strong", "weak", "exclude"):
                cues = getattr(cat, kind)
                for lang in LANGUAGES:
                    for cue in cues.get(lang, ()):
                        index.add(cue, cat.id, kind)
            for brand in cat.brands:
                index.add(brand, cat.id, "brand")
        return index

    @cached_property
    def _patterns(self) -> list[tuple[re.Pattern[str], str, str]]:
        # one alternation per category: a category needs one pattern hit, and one scan per category
        # is several times cheaper than one per pattern
        out = []
        for cat in self.tax.categories.values():
            if cat.patterns:
                joined = "|".join(f"(?:{pat})" for pat in cat.patterns)
                out.append((re.compile(joined, re.IGNORECASE), cat.id, joined))
        return out

    # -- evidence ----------------------------------------------------------------------------
    def evidence(self, text: str) -> TextEvidence:
        """Cues found in ``text`` and the per-category points they give (cached per text)."""
        cache = self._cache
        cached = cache.get(text)
        if cached is not None:
            return cached
        ev = self._evidence(text)
        if len(cache) > 200_000:
            cache.clear()
        cache[text] = ev
        return ev

    @cached_property
    def _cache(self) -> dict[str, TextEvidence]:
        # shared by every classifier with the same taxonomy and weights: the model's rule features
        # and the screener's fallback look at the same lines, so each line is matched once
        key = (self.tax.sha256, self.strong, self.weak, self.context, self.hard_negative, self.none_prior)
        return _SHARED_CACHES.setdefault(key, {})

    def _evidence(self, text: str) -> TextEvidence:
        toks = match_form(text).split()
        found = self._index_tables.find(toks)  # (start, end, category, kind, cue)
        raw_hits = [(a, c, k, q) for a, _b, c, k, q in found]
        if self._patterns:
            nfkc = normalize_for_patterns(text)
            for rx, cat, pat in self._patterns:
                m = rx.search(nfkc)
                if m:
                    pos = float(len(match_form(nfkc[: m.start()]).split()))
                    raw_hits.append((pos, cat, "pattern", m.group(0)))
        spans = [(a, b) for a, b, _c, kind, _q in found if kind != "exclude"]
        spans += [(pos, pos) for pos, _c, kind, _q in raw_hits[len(found):]]
        context_at = _context_positions(toks, spans)
        hits: list[Hit] = []
        seen: set[tuple[str, str]] = set()
        for pos, cat, kind, cue in sorted(raw_hits, key=lambda h: h[0]):
            key = (cat, cue.lower())
            if key in seen:
                continue
            seen.add(key)
            hits.append(Hit(cat, kind, cue, context_at(pos)))
        return self._points(hits)

    def _points(self, hits: list[Hit]) -> TextEvidence:
        idx = self._index
        per_cat: dict[str, list[float]] = {}
        excluded: set[str] = set()
        anchored: set[str] = set()
        for h in hits:
            if h.kind == "exclude":
                if not h.context:  # "DRONE WITH SPARE PROPELLERS": a negative after "with" vetoes nothing
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
        # only a veto that cancels points is recorded (a negative of a category with no cue is moot)
        vetoed = tuple(sorted(c for c in excluded if c not in anchored and c != "none" and points[idx[c]] > 0))
        cancelled = bool(vetoed)
        for cat in vetoed:
            points[idx[cat]] = 0.0
        none_i = idx["none"]
        # a hard negative speaks for 'none' only when it cancelled a category and nothing else
        # claims the line strongly ("TOY EXCAVATOR" -> none; "LAPTOP AC ADAPTER" -> adapter)
        others = max((p for i, p in enumerate(points) if i != none_i), default=0.0)
        boost = self.hard_negative if cancelled and others < self.strong else 0.0
        points[none_i] = self.none_prior + boost
        scored = set(per_cat) | {"none"}
        hits = [h for h in hits if h.kind != "exclude" or h.category in scored]
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


# "for" markers: what follows is the use, when a cue names the good before it.
_FOR_MARKERS = frozenset({"for", "для", "под", "с", "со", "用于", "适用于", "适用", "适配", "配套"})
_FOR_PAIRS = frozenset({("compatible", "with"), ("suitable", "for"), ("fit", "for"), ("used", "in"), ("used", "for")})
# "with" markers: what follows is a component or accessory, whatever precedes ("toothbrush with a
# rechargeable battery" is not a battery).
_WITH_MARKERS = frozenset({"with", "w", "containing", "contains", "including", "includes", "incl", "powered",
                           "equipped", "fitted", "plus", "встроенн", "встроенным", "встроенной", "встроенными",
                           "содержащ", "оснащенн", "комплекте"})
_WITH_STEMS = ("встроенн", "содержащ", "оснащен", "укомплектован")
_WITH_PAIRS = frozenset({("built", "in"), ("comes", "with"), ("в", "комплекте"), ("powered", "by"), ("runs", "on")})
# Chinese: "X用Y" / "X专用Y" is a Y *for* X; "Y，用于X" puts the use after; "配有/内置/含" the extras.
_ZH_FOR = re.compile(r"用于|适用于|适用|适配|配套|兼容")
_ZH_WITH = re.compile(r"配有|带有|配备|附带|含有|内置|装有|内含|附|含")
_ZH_BEFORE = re.compile(r"专用|用(?![途户品于法量])")


def _is_with(toks: list[str], i: int) -> bool:
    t = toks[i]
    if t in _WITH_MARKERS or t.startswith(_WITH_STEMS):
        return not (t == "w" and i > 0 and toks[i - 1].isdigit())  # "1.6W" is watts, "W/" is with
    return i + 1 < len(toks) and (t, toks[i + 1]) in _WITH_PAIRS


def _context_positions(toks: list[str], spans: list[tuple[float, float]]):
    """A predicate telling whether a cue starting at a position names what the good is *for* or comes
    *with*, rather than what it is.

    English/Russian: cues after the first "with" marker ("with", "containing", "built in", "в комплекте
    с" …), and cues after the first "for" marker ("for", "для", "с" …) when a cue stands before it.
    Chinese: the same with "配有/内置/含" and "用于/适用于"; cues right before "用"/"专用" when a cue
    follows ("无人机用锂电池" is a lithium battery for drones)."""
    starts = [a for a, _b in spans]
    marker: float | None = None
    for i, t in enumerate(toks):
        if _CJK_CHAR.match(t):
            mw, mf = _ZH_WITH.search(t), _ZH_FOR.search(t)
            cands = []
            if mw:
                cands.append(i + mw.start() / 1000.0)
            if mf and any(0 <= a < i + mf.start() / 1000.0 for a in starts):
                cands.append(i + mf.start() / 1000.0)
            if cands:
                marker = min(cands)
                break
            continue
        if _is_with(toks, i):
            marker = float(i)
            break
        if (t in _FOR_MARKERS or (i + 1 < len(toks) and (t, toks[i + 1]) in _FOR_PAIRS)) and any(
            0 <= a < i for a in starts
        ):
            marker = float(i)
            break
    if marker is not None:
        at = marker
        return lambda pos: pos > at
    ends = {round(b, 3) for _a, b in spans}
    for i, t in enumerate(toks):
        if not _CJK_CHAR.match(t):
            continue
        for m in _ZH_BEFORE.finditer(t):
            at = i + m.start() / 1000.0
            after = i + m.end() / 1000.0
            if round(at, 3) in ends and any(a >= after for a in starts):
                return lambda pos, at=at: 0 <= pos < at
    return lambda pos: False


_EQ, _PREFIX, _SUFFIX = 0, 1, 2


class _CueIndex:
    """Cues indexed for fast matching over match-form tokens (no big regex alternation).

    A Latin/Cyrillic cue is a sequence of tokens, each exact or a stem (``арамидн*``). A CJK token of
    a cue matches inside a CJK run of the text: as a substring when the cue is that token alone, as the
    end of the text token when it opens a longer cue, as its start when it closes one. At every
    position the longest cue wins and matching resumes after it, so "copper scrap" shadows "copper"."""

    def __init__(self) -> None:
        self.exact: dict[str, list[tuple[tuple[tuple[int, str], ...], str, str, str]]] = {}
        self.stems: dict[str, list[tuple[tuple[tuple[int, str], ...], str, str, str]]] = {}
        self.cjk: dict[str, list[tuple[str, str, str]]] = {}
        self.cjk_lengths: set[int] = set()

    def add(self, cue: str, category: str, kind: str) -> None:
        parts: list[str] = []
        for word in cue.split():
            star = word.endswith("*")
            form = match_form(word.rstrip("*"))
            if not form:
                continue
            sub = form.split()
            if star:
                sub[-1] += "*"
            parts.extend(sub)
        if not parts:
            return
        if len(parts) == 1 and _CJK_CHAR.match(parts[0]):
            word = parts[0].rstrip("*")
            self.cjk.setdefault(word, []).append((category, kind, cue))
            self.cjk_lengths.add(len(word))
            return
        entry = (self._checks(parts), category, kind, cue)
        first = parts[0]
        if _CJK_CHAR.match(first):
            # opening CJK token: matched as the end of a text token, indexed by its last character
            self.exact.setdefault("~" + first.rstrip("*")[-1], []).append(entry)
        elif first.endswith("*"):
            self.stems.setdefault(first[:-1], []).append(entry)
        else:
            self.exact.setdefault(first, []).append(entry)

    @staticmethod
    def _checks(parts: list[str]) -> tuple[tuple[int, str], ...]:
        """How each cue token must match its text token, decided once when the cue is indexed:
        ``(_EQ, core)``, ``(_PREFIX, core)`` (a stem, or a CJK token closing a cue) or ``(_SUFFIX, core)``
        (a CJK token opening one)."""
        out = []
        k = len(parts)
        for j, pattern in enumerate(parts):
            first, last = j == 0, j == k - 1
            if _CJK_CHAR.match(pattern):
                core = pattern.rstrip("*")
                mode = _SUFFIX if first and not last else _PREFIX if last and not first else _EQ
            elif pattern.endswith("*"):
                core, mode = pattern[:-1], _PREFIX
            else:
                core, mode = pattern, _EQ
            out.append((mode, core))
        return tuple(out)

    @staticmethod
    def _matches(checks: tuple[tuple[int, str], ...], toks: list[str], i: int) -> bool:
        for j, (mode, core) in enumerate(checks):
            tok = toks[i + j]
            if mode == _EQ:
                if tok != core:
                    return False
            elif mode == _PREFIX:
                if not tok.startswith(core):
                    return False
            elif not tok.endswith(core):
                return False
        return True

    def _candidates(self, tok: str):
        yield from self.exact.get(tok, ())
        if tok and _CJK_CHAR.match(tok[-1]):
            yield from self.exact.get("~" + tok[-1], ())
        for n in range(1, len(tok) + 1):
            hit = self.stems.get(tok[:n])
            if hit:
                yield from hit

    def find(self, toks: list[str]) -> list[tuple[float, float, str, str, str]]:
        """(start, end, category, kind, cue) of every cue found; positions are token indexes, with
        the character offset inside a CJK run as thousandths."""
        out: list[tuple[float, float, str, str, str]] = []
        i = 0
        n = len(toks)
        while i < n:
            tok = toks[i]
            best_k = 0
            best: list[tuple[str, str, str]] = []  # every cue spanning the most tokens here
            for parts, cat, kind, cue in self._candidates(tok):
                k = len(parts)
                if i + k > n or k < best_k:
                    continue
                if self._matches(parts, toks, i):
                    if k > best_k:
                        best_k, best = k, []
                    best.append((cat, kind, cue))
            if best_k > 1:
                out.extend((float(i), float(i + best_k), c, kd, q) for c, kd, q in best)
                i += best_k
                continue
            if self.cjk and _CJK_CHAR.match(tok):
                out.extend(self._find_cjk(tok, i))
            out.extend((float(i), float(i + 1), c, kd, q) for c, kd, q in best)
            i += 1
        # hard negatives are never shadowed: a longer cue of another category ("remote control toy")
        # must not hide this category's own negative ("toy") inside it
        have = {(c, q) for _a, _b, c, _kd, q in out}
        for i, tok in enumerate(toks):
            for parts, cat, kind, cue in self._candidates(tok):
                if kind != "exclude" or (cat, cue) in have:
                    continue
                k = len(parts)
                if i + k <= n and self._matches(parts, toks, i):
                    out.append((float(i), float(i + k), cat, kind, cue))
                    have.add((cat, cue))
        return out

    def _find_cjk(self, run: str, i: int) -> list[tuple[float, float, str, str, str]]:
        out: list[tuple[float, float, str, str, str]] = []
        lengths = sorted(self.cjk_lengths, reverse=True)
        pos = 0
        while pos < len(run):
            for length in lengths:
                hit = self.cjk.get(run[pos : pos + length]) if pos + length <= len(run) else None
                if hit:
                    out.extend((i + pos / 1000.0, i + (pos + length) / 1000.0, c, kd, q) for c, kd, q in hit)
                    pos += length
                    break
            else:
                pos += 1
        return out


def normalize_for_patterns(text: str) -> str:
    """NFKC text for the part-number patterns (case is ignored by the patterns)."""
    import unicodedata

    return unicodedata.normalize("NFKC", text)
