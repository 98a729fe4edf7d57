"""Score each distinct line once per run: an LRU of predictions across chunks.

Customs data repeats the same description (and code) thousands of times. :class:`DedupScreener` keys
every row by ``(cleaned text, HS digits)`` — the key the :class:`~dualuse.Screener` itself uses inside
one batch — and keeps the last ``maxsize`` predictions, so a description seen in an earlier chunk is not
embedded or scored again. Row-specific fields (the row's own text and code flags, the code as written)
are put back on the cached prediction, so the output equals scoring without the cache.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .hs import HSCode, parse_hs
from .prediction import Prediction
from .text import inspect_text

if TYPE_CHECKING:
    from .predict import Screener

__all__ = ["DedupScreener", "Plan"]

Key = tuple[str, "str | None"]
#: distinct raw texts / codes remembered between chunks before the memo starts over
_MEMO_MAX = 200_000
#: raw code types safe to memoise by value (a NaN float is never found again, which is harmless)
_MEMO_CODE_TYPES = (str, int, float)


@dataclass
class Plan:
    """One batch split into what the cache knows and what must be computed."""

    keys: list[Key]
    extras: list[tuple[tuple[str, ...], str | None]]  # per row: (row flags, the code as written)
    found: dict[Key, Prediction]
    todo_rows: list[int]  # one row per key to compute
    texts: list[object]
    codes: list[object] | None


class DedupScreener:
    """Wraps a screener with an LRU of ``maxsize`` predictions (``maxsize=0``: no cache).

    It has the screener's ``predict``, ``predict_one``, ``describe`` and ``taxonomy``, so it can stand
    in for it. :meth:`plan` / :meth:`finish` split a batch so the misses can be computed elsewhere
    (another process, a Dask worker).
    """

    def __init__(self, screener: Screener, maxsize: int = 200_000) -> None:
        self.screener = screener
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._lru: OrderedDict[Key, Prediction] = OrderedDict()
        # the raw cells repeat as much as the keys: inspect each distinct text and code once
        self._texts: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._codes: dict[tuple[type, object], HSCode] = {}

    @property
    def taxonomy(self):  # type: ignore[no-untyped-def]
        return self.screener.taxonomy

    def describe(self) -> str:
        return self.screener.describe()

    def predict_one(self, text: object, hs_code: object = None) -> Prediction:
        return self.predict([text], [hs_code])[0]

    def predict(self, texts: Sequence[object], hs_codes: Sequence[object] | None = None) -> list[Prediction]:
        if self.maxsize <= 0:
            return self.screener.predict(texts, hs_codes)
        plan = self.plan(texts, hs_codes)
        computed = self.screener.predict(*plan_inputs(plan)) if plan.todo_rows else []
        return self.finish(plan, computed)

    def plan(self, texts: Sequence[object], hs_codes: Sequence[object] | None = None) -> Plan:
        """Keys of every row, the cached predictions, and one row per key still to compute."""
        texts = list(texts)
        codes = list(hs_codes) if hs_codes is not None else None
        keys: list[Key] = []
        extras: list[tuple[tuple[str, ...], str | None]] = []
        found: dict[Key, Prediction] = {}
        todo: dict[Key, int] = {}
        lru = self._lru
        seen_texts, seen_codes = self._texts, self._codes
        if len(seen_texts) > _MEMO_MAX:
            seen_texts.clear()
        if len(seen_codes) > _MEMO_MAX:
            seen_codes.clear()
        for i, t in enumerate(texts):
            if type(t) is str:
                tinfo = seen_texts.get(t)
                if tinfo is None:
                    tinfo = seen_texts[t] = inspect_text(t)
                text, tflags = tinfo
            else:
                text, tflags = inspect_text(t)
            raw_code = codes[i] if codes is not None else None
            ckey = (type(raw_code), raw_code)  # 8542 and 8542.0 are equal keys but different cells
            code = seen_codes.get(ckey) if ckey[0] in _MEMO_CODE_TYPES else None
            if code is None:
                code = parse_hs(raw_code)
                if ckey[0] in _MEMO_CODE_TYPES:
                    seen_codes[ckey] = code
            key = (text, code.digits)
            keys.append(key)
            extras.append((tflags + code.flags, code.raw))
            if key in found or key in todo:
                continue
            p = lru.get(key)
            if p is None:
                todo[key] = i
            else:
                lru.move_to_end(key)
                found[key] = p
        self.hits += len(found)
        self.misses += len(todo)
        return Plan(keys, extras, found, list(todo.values()), texts, codes)

    def finish(self, plan: Plan, computed: Sequence[Prediction]) -> list[Prediction]:
        """The predictions of every row, given those of ``plan.todo_rows`` (in that order)."""
        found = plan.found
        for i, p in zip(plan.todo_rows, computed):
            flags, _raw = plan.extras[i]
            base = replace(p, flags=tuple(f for f in p.flags if f not in flags)) if flags else p
            found[plan.keys[i]] = base
            self._remember(plan.keys[i], base)
        out: list[Prediction] = []
        for key, (flags, raw) in zip(plan.keys, plan.extras):
            base = found[key]
            if flags or raw != base.declared_hs_raw:
                base = replace(base, flags=tuple(dict.fromkeys(flags + base.flags)), declared_hs_raw=raw)
            out.append(base)
        return out

    def _remember(self, key: Key, p: Prediction) -> None:
        if self.maxsize <= 0:
            return
        self._lru[key] = p
        if len(self._lru) > self.maxsize:
            self._lru.popitem(last=False)


def plan_inputs(plan: Plan) -> tuple[list[object], list[object] | None]:
    """The ``(texts, codes)`` of the rows ``plan`` still has to compute."""
    texts = [plan.texts[i] for i in plan.todo_rows]
    codes = [plan.codes[i] for i in plan.todo_rows] if plan.codes is not None else None
    return texts, codes
