"""Loaders for the real-world evaluation sets in ``../shared/data/realworld/`` (evaluation only:
nothing here is ever used for training). Each row is labelled by mapping its gold HS code through the
taxonomy's prefixes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from dualuse.taxonomy import load_taxonomy

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__import__("os").environ.get("DUALUSE_SHARED", REPO.parent / "shared"))
REALWORLD = SHARED / "data" / "realworld"

_ATLAS_Q = re.compile(r"^What is the HTS US Code for (.*?)\??$", re.S)
_ATLAS_A = re.compile(r"HTS US Code -> ([0-9.]+)")


def available() -> bool:
    return REALWORLD.is_dir()


def _label(df: pd.DataFrame) -> pd.DataFrame:
    tax = load_taxonomy()
    df["category"] = [tax.category_for_hs(c) or "none" for c in df["gold_hs"]]
    return df


def hscodecomp() -> pd.DataFrame:
    """632 e-commerce product titles with 10-digit US HTS codes: columns text, gold_hs, category."""
    rows = []
    with open(REALWORLD / "hscodecomp" / "test_data.jsonl", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            rows.append({"text": r["product_name"].strip(), "gold_hs": str(r["hs_code"]).zfill(10)})
    return _label(pd.DataFrame(rows))


def atlas() -> pd.DataFrame:
    """400 product descriptions from US customs rulings (test + validation): text, gold_hs, category."""
    rows = []
    for split in ("test", "validation"):
        with open(REALWORLD / "atlas_cross" / f"atlas_{split}.jsonl", encoding="utf-8") as fh:
            for line in fh:
                msgs = json.loads(line)["messages"]
                q = next(m["content"] for m in msgs if m["role"] == "user")
                a = next(m["content"] for m in msgs if m["role"] == "assistant")
                mq, ma = _ATLAS_Q.match(q.strip()), _ATLAS_A.search(a)
                if not (mq and ma):
                    continue
                rows.append({"text": mq.group(1).strip(), "gold_hs": ma.group(1).replace(".", "")})
    return _label(pd.DataFrame(rows))


def sets() -> dict[str, pd.DataFrame]:
    return {"hscodecomp": hscodecomp(), "atlas": atlas()}
