"""Parse, normalise and validate declared HS codes as customs data really holds them.

Accepted shapes: ``8542.31``, ``854231``, ``8542 31 00 00``, ``8542310000``, ``'8806'``, spreadsheet
floats (``8542.0``), ``HS 8806.22``, ``ТН ВЭД 8806220000``. Missing values (``None``, NaN, ``""``,
``N/A``, ``-``) give an empty :class:`HSCode` without a flag; anything else that is not a code gets
the ``invalid_hs`` flag. The row is never failed.

Editions: codes are read as HS 2022. A six-digit subheading that does not exist in HS 2022 but is in
the packaged HS 2017 -> 2022 table (``data/hs2017_to_hs2022.csv``: heading 8803 -> 8807, 8525.80 ->
8525.89, …) is mapped and marked ``edition="HS2017"`` with the ``hs2017_mapped`` flag. Known limit: an
HS 2017 code that still exists in HS 2022 with another scope (a camera drone declared 8802.20 or 9503
before 2022) cannot be told apart from an HS 2022 code; the text decides the category in that case.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["HSCode", "parse_hs", "hs_description", "HS2022", "HS2017"]

HS2022 = "HS2022"
HS2017 = "HS2017"

_MISSING = {"", "n/a", "na", "nan", "none", "null", "-", "--", "0", "нет", "无", "#n/a"}
_PREFIX = re.compile(r"^\s*(?:hs|hts|h\.s\.|тн\s*вэд|тнвэд|код|cn|taric|hs\s*code|商品编码|编码)\s*[:#№]?\s*", re.I)
_ALLOWED = re.compile(r"^[0-9][0-9 .\-]*$")


@dataclass(frozen=True, slots=True)
class HSCode:
    """A declared HS code: what was received and what it normalises to."""

    raw: str | None
    digits: str | None
    edition: str | None = None
    flags: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.digits is not None

    @property
    def missing(self) -> bool:
        return self.raw is None or (self.digits is None and "invalid_hs" not in self.flags)

    @property
    def hs6(self) -> str | None:
        return self.digits[:6] if self.digits and len(self.digits) >= 6 else None

    def formatted(self) -> str:
        """``8542.31.00.00`` style, or ``""``."""
        if not self.digits:
            return ""
        d = self.digits
        parts = [d[:4]] + [d[i : i + 2] for i in range(4, len(d), 2)]
        return ".".join(parts) if len(d) > 2 else d


@cache
def _nomenclature() -> dict[str, str]:
    text = (resources.files("dualuse") / "data" / "hs2022.csv").read_text(encoding="utf-8")
    return {row["hscode"]: row["description"] for row in csv.DictReader(text.splitlines())}


@cache
def _hs2017_map() -> dict[str, str]:
    text = (resources.files("dualuse") / "data" / "hs2017_to_hs2022.csv").read_text(encoding="utf-8")
    return {row["hs2017"]: row["hs2022"] for row in csv.DictReader(text.splitlines())}


def hs_description(code: str | None) -> str | None:
    """HS 2022 nomenclature text of a 2-, 4- or 6-digit code (longest known prefix), if any."""
    if not code:
        return None
    nom = _nomenclature()
    for n in (6, 4, 2):
        if len(code) >= n and code[:n] in nom:
            return nom[code[:n]]
    return None


def _to_text(raw: object) -> str | None:
    """The raw value as text; ``None`` for missing values."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        return str(raw)
    if isinstance(raw, float):
        if math.isnan(raw):
            return None
        # spreadsheets turn 8542 into 8542.0 and 8542.31 into 8542.31
        text = repr(float(raw))
        return text[:-2] if raw.is_integer() else text
    if isinstance(raw, int):
        return str(raw)
    try:  # numpy scalars, Decimal, pandas NA …
        if raw != raw:  # noqa: PLR0124 - NaN-like
            return None
    except (TypeError, ValueError):
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if hasattr(raw, "item") and not isinstance(raw, str):
        return _to_text(raw.item())
    return str(raw)


def parse_hs(raw: object) -> HSCode:
    """Normalise a declared HS code. Never raises; problems become flags.

    >>> parse_hs("HS 8806.22").digits
    '880622'
    >>> parse_hs(8542.0).digits
    '8542'
    >>> parse_hs("garbage").flags
    ('invalid_hs',)
    """
    was_number = isinstance(raw, (int, float)) and not isinstance(raw, bool)
    text = _to_text(raw)
    if text is None:
        return HSCode(raw=None, digits=None)
    stripped = text.strip().strip("'\"`").strip()
    if stripped.lower() in _MISSING:
        return HSCode(raw=text, digits=None)
    body = _PREFIX.sub("", stripped).strip()
    if re.fullmatch(r"\d{2,10}\.0", body):
        # a spreadsheet float written out as text ("8542.0"): the ".0" is not a subheading
        body = body.split(".")[0]
    if not _ALLOWED.match(body):
        return HSCode(raw=text, digits=None, flags=("invalid_hs",))
    digits = re.sub(r"\D", "", body)
    flags: list[str] = []
    # a float like 8542.3 lost its trailing zero: 8542.30 -> "85423" -> pad right
    if len(digits) % 2 == 1 and was_number and "." in body and len(body.split(".")[1]) % 2 == 1:
        digits += "0"
    if len(digits) % 2 == 1:
        # leading zero lost in a spreadsheet (0101 -> 101, 030490 -> 30490)
        padded = "0" + digits
        if len(padded) >= 4 and _chapter_known(padded) and padded[:4] in _nomenclature():
            digits = padded
            flags.append("hs_zero_padded")
        else:
            return HSCode(raw=text, digits=None, flags=("invalid_hs",))
    if not 2 <= len(digits) <= 10 and len(digits) != 12:
        return HSCode(raw=text, digits=None, flags=("invalid_hs",))
    digits = digits[:10]
    if not _chapter_known(digits):
        return HSCode(raw=text, digits=None, flags=("invalid_hs",))
    edition = HS2022
    if len(digits) >= 6 and digits[:6] not in _nomenclature():
        mapped = _hs2017_map().get(digits[:6])
        if mapped is not None:
            digits = mapped + digits[6:]
            edition = HS2017
            flags.append("hs2017_mapped")
        else:
            flags.append("unknown_hs_subheading")
    elif len(digits) >= 4 and digits[:4] not in _nomenclature():
        flags.append("unknown_hs_subheading")
    return HSCode(raw=text, digits=digits, edition=edition, flags=tuple(flags))


def _chapter_known(digits: str) -> bool:
    return digits[:2] in _nomenclature()
