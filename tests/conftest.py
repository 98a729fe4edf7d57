"""Shared fixtures. Fast tests use the rules-only screener and tiny in-memory data; tests marked
``e2e`` use the real shipped model, real encoders and real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def rules_screener():
    import dualuse

    return dualuse.load(rules_only=True)


@pytest.fixture(scope="session")
def taxonomy():
    from dualuse.taxonomy import load_taxonomy

    return load_taxonomy()
