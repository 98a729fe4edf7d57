"""The category taxonomy and the CHPL table, read from packaged data files.

The taxonomy lives in ``dualuse/data/taxonomy.toml`` (see the comment block at its top for the
format); the Common High Priority List in ``dualuse/data/chpl_2024-02.csv``. Both are read once,
lazily, on first use -- never at import.
"""

from __future__ import annotations

import csv
import hashlib
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Mapping

from .errors import TaxonomyError

__all__ = ["Category", "Taxonomy", "load_taxonomy", "RISK_LEVELS", "CHPL_TIERS", "LANGUAGES"]

RISK_LEVELS: tuple[str, ...] = ("high", "medium", "low", "none")
CHPL_TIERS: tuple[str, ...] = ("TIER_1", "TIER_2", "TIER_3_A", "TIER_3_B", "TIER_4_A", "TIER_4_B")
LANGUAGES: tuple[str, ...] = ("en", "ru", "zh")
_CUE_KINDS = ("strong", "weak", "exclude")


@dataclass(frozen=True, slots=True)
class Category:
    """One taxonomy category: what it covers and the evidence the rules look for."""

    id: str
    name: str
    definition: str
    risk: str
    hs_prefixes: tuple[str, ...] = ()
    strong: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    weak: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    exclude: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    brands: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    def keywords(self, kind: str = "strong") -> tuple[str, ...]:
        """All cues of one kind (``strong``, ``weak`` or ``exclude``) across languages."""
        cues: Mapping[str, tuple[str, ...]] = getattr(self, kind)
        return tuple(k for lang in LANGUAGES for k in cues.get(lang, ()))


@dataclass(frozen=True, eq=False)
class Taxonomy:
    """Categories by id, an HS-prefix index (longest prefix wins) and the CHPL tiers."""

    version: str
    categories: Mapping[str, Category]
    chpl: Mapping[str, str]
    sha256: str

    @property
    def ids(self) -> tuple[str, ...]:
        """Category ids in file order; ``none`` is last."""
        return tuple(self.categories)

    def __getitem__(self, category_id: str) -> Category:
        try:
            return self.categories[category_id]
        except KeyError:
            raise TaxonomyError(
                f"unknown category {category_id!r}; expected one of: {', '.join(self.categories)}"
            ) from None

    def __contains__(self, category_id: object) -> bool:
        return category_id in self.categories

    def __len__(self) -> int:
        return len(self.categories)

    @property
    def _prefix_index(self) -> Mapping[str, str]:
        return _prefix_index(self)

    def category_for_hs(self, digits: str | None) -> str | None:
        """Category of a normalised HS code by its longest matching prefix.

        Returns ``"none"`` for a valid code that matches no prefix and ``None`` when there is no code.
        """
        if not digits:
            return None
        index = self._prefix_index
        for n in range(min(len(digits), 10), 1, -1):
            hit = index.get(digits[:n])
            if hit is not None:
                return hit
        return "none"

    def matching_prefix(self, digits: str | None) -> str | None:
        """The longest taxonomy prefix that ``digits`` starts with, if any."""
        if not digits:
            return None
        index = self._prefix_index
        for n in range(min(len(digits), 10), 1, -1):
            if digits[:n] in index:
                return digits[:n]
        return None

    def chpl_tier(self, digits: str | None) -> str | None:
        """CHPL tier of a code whose first six digits are on the list, else ``None``."""
        if not digits or len(digits) < 6:
            return None
        return self.chpl.get(digits[:6])

    def risk(self, category_id: str) -> str:
        return self[category_id].risk


@cache
def _prefix_index(tax: Taxonomy) -> Mapping[str, str]:
    index: dict[str, str] = {}
    for cat in tax.categories.values():
        for prefix in cat.hs_prefixes:
            if prefix in index and index[prefix] != cat.id:
                raise TaxonomyError(
                    f"HS prefix {prefix} is claimed by both {index[prefix]!r} and {cat.id!r}; "
                    "each prefix must belong to one category"
                )
            index[prefix] = cat.id
    return MappingProxyType(index)


def _expand_prefix(item: str, where: str) -> list[str]:
    """``"8456-8463"`` -> ``["8456", …, "8463"]``; a plain prefix is returned as is."""
    item = str(item).strip()
    if "-" in item:
        lo, hi = (p.strip() for p in item.split("-", 1))
        if not (lo.isdigit() and hi.isdigit() and len(lo) == len(hi) and int(lo) <= int(hi)):
            raise TaxonomyError(f"{where}: bad HS prefix range {item!r}; expected e.g. '8456-8463'")
        return [str(v).zfill(len(lo)) for v in range(int(lo), int(hi) + 1)]
    if not item.isdigit() or not 2 <= len(item) <= 10:
        raise TaxonomyError(f"{where}: bad HS prefix {item!r}; expected 2 to 10 digits")
    return [item]


def _cue_map(raw: object, where: str) -> Mapping[str, tuple[str, ...]]:
    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, dict):
        raise TaxonomyError(f"{where}: expected a table of language -> list of cues, got {type(raw).__name__}")
    out: dict[str, tuple[str, ...]] = {}
    for lang, cues in raw.items():
        if lang not in LANGUAGES:
            raise TaxonomyError(f"{where}: unknown language {lang!r}; expected one of {LANGUAGES}")
        if not isinstance(cues, list) or not all(isinstance(c, str) and c.strip() for c in cues):
            raise TaxonomyError(f"{where}.{lang}: expected a list of non-empty strings")
        out[lang] = tuple(c.strip() for c in cues)
    return MappingProxyType(out)


def parse_taxonomy(toml_text: str, chpl_csv: str) -> Taxonomy:
    """Build a :class:`Taxonomy` from the texts of the TOML and CHPL files (validates both)."""
    try:
        data = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as exc:
        raise TaxonomyError(f"taxonomy.toml is not valid TOML: {exc}") from exc
    entries = data.get("category")
    if not isinstance(entries, list) or not entries:
        raise TaxonomyError("taxonomy.toml: expected [[category]] tables, found none")
    cats: dict[str, Category] = {}
    for i, entry in enumerate(entries):
        cid = entry.get("id")
        where = f"taxonomy.toml category #{i + 1} ({cid!r})"
        if not isinstance(cid, str) or not cid:
            raise TaxonomyError(f"{where}: missing 'id'")
        if cid in cats:
            raise TaxonomyError(f"{where}: duplicate id")
        risk = entry.get("risk", "none")
        if risk not in RISK_LEVELS:
            raise TaxonomyError(f"{where}: risk {risk!r} is not one of {RISK_LEVELS}")
        prefixes = [p for item in entry.get("hs_prefixes", []) for p in _expand_prefix(item, where)]
        cats[cid] = Category(
            id=cid,
            name=str(entry.get("name", cid)),
            definition=str(entry.get("definition", "")),
            risk=risk,
            hs_prefixes=tuple(prefixes),
            strong=_cue_map(entry.get("strong"), f"{where}.strong"),
            weak=_cue_map(entry.get("weak"), f"{where}.weak"),
            exclude=_cue_map(entry.get("exclude"), f"{where}.exclude"),
            brands=tuple(entry.get("brands", ())),
            patterns=tuple(entry.get("patterns", ())),
        )
    if "none" not in cats:
        raise TaxonomyError("taxonomy.toml: the 'none' category is required")
    cats["none"] = cats.pop("none")  # keep 'none' last
    chpl: dict[str, str] = {}
    for row in csv.DictReader(chpl_csv.splitlines()):
        code, tier = row.get("hs6", "").strip(), row.get("tier", "").strip()
        if not (code.isdigit() and len(code) == 6) or tier not in CHPL_TIERS:
            raise TaxonomyError(f"CHPL file: bad row {row!r}; expected a 6-digit hs6 and a tier in {CHPL_TIERS}")
        chpl[code] = tier
    digest = hashlib.sha256((toml_text + "\0" + chpl_csv).encode("utf-8")).hexdigest()
    tax = Taxonomy(
        version=str(data.get("version", "unknown")),
        categories=MappingProxyType(cats),
        chpl=MappingProxyType(chpl),
        sha256=digest,
    )
    _prefix_index(tax)  # validate prefixes now
    return tax


@cache
def load_taxonomy() -> Taxonomy:
    """The packaged taxonomy (read once, then cached)."""
    base = resources.files("dualuse") / "data"
    toml_text = (base / "taxonomy.toml").read_text(encoding="utf-8")
    chpl_csv = (base / "chpl_2024-02.csv").read_text(encoding="utf-8")
    return parse_taxonomy(toml_text, chpl_csv)
