"""Exceptions raised by dualuse. Every library error subclasses :class:`DualUseError`."""

from __future__ import annotations

__all__ = [
    "DualUseError",
    "InvalidArgumentError",
    "TaxonomyError",
    "ModelLoadError",
    "UntrustedModelError",
    "FileFormatError",
    "ColumnNotFoundError",
]


class DualUseError(Exception):
    """Base class of every error dualuse raises on purpose."""


class InvalidArgumentError(DualUseError, TypeError):
    """An API function got an argument of the wrong type or shape."""


class TaxonomyError(DualUseError, ValueError):
    """The taxonomy data file is malformed, or a category id is unknown."""


class ModelLoadError(DualUseError):
    """A model folder is missing, incomplete, tampered with or of an incompatible format."""


class UntrustedModelError(ModelLoadError):
    """A model file holds types outside the trusted allowlist."""


class FileFormatError(DualUseError):
    """An input file cannot be read (unknown extension, bad encoding, malformed rows)."""


class ColumnNotFoundError(DualUseError, KeyError):
    """The text or HS column is not in the input."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""
