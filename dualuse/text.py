"""Input inspection and text normalisation shared by the rules and the model.

:func:`inspect_text` turns whatever a row holds into a usable string plus per-row flags, so bad input
never fails a batch. :func:`normalize` produces the canonical form the rules match against.

Flags (documented in the README):
    missing_text       None / NaN / pandas NA.
    non_string_text    a number, bytes or another object; converted with ``str``.
    empty_text         empty or only white space after cleaning.
    text_truncated     longer than :data:`MAX_TEXT_CHARS`; only the start is classified.
    control_chars      control / zero-width characters were removed.
    mixed_scripts      a word mixes Latin and Cyrillic letters (look-alike obfuscation such as
                       a Latin "A" in "КВAДРОКОПТЕР"); the look-alikes are folded before matching.
"""

from __future__ import annotations

import math
import re
import unicodedata

__all__ = ["MAX_TEXT_CHARS", "inspect_text", "normalize", "match_form", "tokens"]

#: Longer descriptions are cut to this many characters before classification (flag ``text_truncated``).
MAX_TEXT_CHARS = 2000

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060\ufeff]")
_WS = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]+")
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_EDGE = re.compile(rf"(?<=[{_CJK}])(?=[^{_CJK}\s])|(?<=[^{_CJK}\s])(?=[{_CJK}])")
_LATIN = re.compile(r"[a-z]")
_CYR = re.compile(r"[а-я]")
# Latin letters that look like Cyrillic ones, and back.
_LAT2CYR = str.maketrans("aceopxykmhtb", "асеорхукмнтв")
_CYR2LAT = str.maketrans("асеорхукмнтв", "aceopxykmhtb")
_NORM_CACHE: dict[str, str] = {}


def inspect_text(value: object) -> tuple[str, tuple[str, ...]]:
    """Return ``(text, flags)`` for one input cell. Never raises."""
    flags: list[str] = []
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "", ("missing_text", "empty_text")
    if not isinstance(value, str):
        try:
            if value != value:  # noqa: PLR0124 - pandas NA / numpy NaN
                return "", ("missing_text", "empty_text")
        except (TypeError, ValueError):
            pass
        flags.append("non_string_text")
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", errors="replace")
        else:
            try:
                value = str(value)
            except Exception:  # noqa: BLE001 - a broken __str__ must not lose the batch
                return "", ("non_string_text", "empty_text")
    text = value
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS]
        flags.append("text_truncated")
    cleaned = _CONTROL.sub(" ", text)
    if cleaned != text:
        flags.append("control_chars")
    cleaned = _WS.sub(" ", cleaned).strip()
    if not cleaned:
        flags.append("empty_text")
    elif _has_mixed_word(cleaned):
        flags.append("mixed_scripts")
    return cleaned, tuple(flags)


def _has_mixed_word(text: str) -> bool:
    for word in _WORD.findall(text.lower()):
        if _LATIN.search(word) and _CYR.search(word):
            return True
    return False


def _fold_word(word: str) -> str:
    """Fold look-alike letters of a mixed Latin/Cyrillic word into its majority script."""
    lat = len(_LATIN.findall(word))
    cyr = len(_CYR.findall(word))
    if not lat or not cyr:
        return word
    return word.translate(_LAT2CYR) if cyr >= lat else word.translate(_CYR2LAT)


def normalize(text: str) -> str:
    """Canonical form for matching: NFKC, lower case, ``ё``->``е``, look-alikes folded, CJK runs
    separated from Latin/digits, every non-alphanumeric character turned into one space.

    >>> normalize("КВAДРОКОПТЕР DJI-Mavic3 无人机x2")
    'квадрокоптер dji mavic3 无人机 x2'
    """
    cached = _NORM_CACHE.get(text)
    if cached is not None:
        return cached
    out = unicodedata.normalize("NFKC", text).lower().replace("ё", "е")
    out = _CJK_EDGE.sub(" ", out)
    words = _WORD.findall(out)
    out = " ".join(_fold_word(w) for w in words)
    if len(_NORM_CACHE) > 200_000:
        _NORM_CACHE.clear()
    _NORM_CACHE[text] = out
    return out


_ALNUM_EDGE = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")


def match_form(text: str) -> str:
    """:func:`normalize`, then letters and digits split apart (``mavic3`` -> ``mavic 3``), the form
    keyword cues are matched against, so a cue ``mavic`` finds ``MAVIC3`` and ``XE215`` finds ``XE 215``."""
    return _ALNUM_EDGE.sub(" ", normalize(text))


def tokens(text: str) -> list[str]:
    """Tokens of the normalised text."""
    return normalize(text).split()
