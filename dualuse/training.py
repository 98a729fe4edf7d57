"""Training data: curated customs-style lines plus nomenclature texts labelled through the taxonomy.

Sources (see ``models/training/README.md``):

* ``models/training/curated/*.csv`` — lines written for this project (``text,category,lang,hs_code,note``);
* ``dualuse/data/hs2022.csv`` — HS 2022 headings and subheadings, labelled by their code's longest
  taxonomy prefix;
* ``models/training/nomenclature/cn8_2023_{en,de,fr,nl}.csv`` — EU Combined Nomenclature texts,
  labelled the same way;
* ``models/training/catalog/*.csv`` — product lines written for this project for every HS 2022 heading
  (``text,lang,hs_code``: marketplace titles, declarations, ruling sentences), labelled like the
  nomenclature through their code's longest taxonomy prefix, so most are ``none``: ordinary goods in
  the words real listings use.

The curated lines are split once, stratified by category and language with a fixed seed, into a
training part and a held-out part that only evaluation reads.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from .errors import DualUseError
from .taxonomy import Taxonomy, load_taxonomy

__all__ = ["TrainingData", "load_catalog", "load_curated", "load_nomenclature", "split_catalog", "split_curated",
           "training_data", "DEFAULT_DIR"]

#: The training folder of a checkout.
DEFAULT_DIR = Path(__file__).resolve().parents[1] / "models" / "training"
CURATED_COLUMNS = ["text", "category", "lang", "hs_code", "note"]
CATALOG_COLUMNS = ["text", "lang", "hs_code"]


@dataclass(frozen=True)
class TrainingData:
    """Texts, labels and sample weights to fit on, with the held-out curated lines kept apart."""

    train: pd.DataFrame
    heldout: pd.DataFrame
    sha256: str
    #: the catalog lines kept out of training (:func:`split_catalog`), for evaluation
    catalog_heldout: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self) -> dict[str, object]:
        return {
            "n_train": int(len(self.train)),
            "n_heldout": int(len(self.heldout)),
            "n_catalog_heldout": int(len(self.catalog_heldout)),
            "train_by_source": {k: int(v) for k, v in self.train["source"].value_counts().sort_index().items()},
            "curated_train_by_category": {
                k: int(v)
                for k, v in self.train[self.train.source == "curated"]["category"].value_counts().sort_index().items()
            },
            "data_sha256": self.sha256,
        }


def _check_dir(folder: Path) -> Path:
    if not folder.is_dir():
        raise DualUseError(
            f"expected the training data folder {folder} (with curated/ and nomenclature/); "
            "run from a checkout of the dualuse repository or pass --data"
        )
    return folder


def load_curated(folder: Path = DEFAULT_DIR, taxonomy: Taxonomy | None = None) -> pd.DataFrame:
    """All curated lines, validated (known categories, languages, no duplicate texts)."""
    tax = taxonomy or load_taxonomy()
    files = sorted((_check_dir(folder) / "curated").glob("*.csv"))
    if not files:
        raise DualUseError(f"no curated CSV files in {folder / 'curated'}")
    frames = []
    for f in files:
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
        if list(df.columns) != CURATED_COLUMNS:
            raise DualUseError(f"{f}: expected columns {CURATED_COLUMNS}, got {list(df.columns)}")
        df["file"] = f.name
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df["text"] = df["text"].str.strip()
    df = df[df["text"] != ""]
    bad = sorted(set(df["category"]) - set(tax.ids))
    if bad:
        raise DualUseError(f"curated data uses unknown categories {bad}; expected taxonomy ids")
    bad_lang = sorted(set(df["lang"]) - {"en", "ru", "zh"})
    if bad_lang:
        raise DualUseError(f"curated data uses unknown languages {bad_lang}; expected en, ru, zh")
    df = df.drop_duplicates("text", keep="first").reset_index(drop=True)
    df["source"] = "curated"
    return df


def load_catalog(folder: Path = DEFAULT_DIR, taxonomy: Taxonomy | None = None) -> pd.DataFrame:
    """The catalog lines (``catalog/*.csv``), validated, with the category of their HS 2022 code.

    Returns the curated columns (``note`` is ``catalog``) plus ``source``; an empty frame when the
    folder has no ``catalog/``. Every ``hs_code`` must be a 6-digit HS 2022 subheading.
    """
    tax = taxonomy or load_taxonomy()
    files = sorted((_check_dir(folder) / "catalog").glob("*.csv"))
    if not files:
        return pd.DataFrame(columns=[*CURATED_COLUMNS, "source"])
    subs = _hs2022_subheadings()
    frames = []
    for f in files:
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
        if list(df.columns) != CATALOG_COLUMNS:
            raise DualUseError(f"{f}: expected columns {CATALOG_COLUMNS}, got {list(df.columns)}")
        bad = sorted(set(df["hs_code"]) - subs)
        if bad:
            raise DualUseError(f"{f}: expected 6-digit HS 2022 subheadings in hs_code, got {bad[:5]}")
        bad_lang = sorted(set(df["lang"]) - {"en", "ru", "zh"})
        if bad_lang:
            raise DualUseError(f"{f}: unknown languages {bad_lang}; expected en, ru, zh")
        frames.append(df.assign(file=f.name))
    df = pd.concat(frames, ignore_index=True)
    df["text"] = df["text"].str.strip()
    df = df[df["text"] != ""].drop_duplicates("text", keep="first").reset_index(drop=True)
    df["category"] = [str(tax.category_for_hs(c) or "none") for c in df["hs_code"]]
    df["note"] = "catalog"
    df["source"] = "catalog"
    return df[[*CURATED_COLUMNS, "file", "source"]]


def split_catalog(catalog: pd.DataFrame, folds: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, held-out) parts of the catalog: a line is held out when the sha256 of its text is 0
    modulo ``folds`` (1 in 5), so the split never depends on the order or the other lines."""
    held = np.asarray([int(hashlib.sha256(t.encode("utf-8")).hexdigest(), 16) % folds == 0 for t in catalog["text"]],
                      dtype=bool)
    return catalog[~held].reset_index(drop=True), catalog[held].reset_index(drop=True)


def _hs2022_subheadings() -> set[str]:
    from .hs import _nomenclature  # the packaged HS 2022 texts, read once per process

    return {c for c in _nomenclature() if len(c) == 6 and c.isdigit() and c[:2] != "99"}


def load_nomenclature(folder: Path = DEFAULT_DIR, taxonomy: Taxonomy | None = None,
                      languages: tuple[str, ...] = ("en", "de", "fr", "nl")) -> pd.DataFrame:
    """HS 2022 (levels 4 and 6) and CN8 texts, each labelled by its code's longest taxonomy prefix."""
    tax = taxonomy or load_taxonomy()
    rows: list[tuple[str, str, str, str]] = []
    hs_text = (resources.files("dualuse") / "data" / "hs2022.csv").read_text(encoding="utf-8")
    for r in csv.DictReader(io.StringIO(hs_text)):
        code = r["hscode"]
        if len(code) in (4, 6) and code[:2] != "99":
            rows.append((r["description"], str(tax.category_for_hs(code)), "en", code))
    for lang in languages:
        path = _check_dir(folder) / "nomenclature" / f"cn8_2023_{lang}.csv"
        with open(path, encoding="utf-8", newline="") as fh:
            for r in csv.DictReader(fh, delimiter=";"):
                code = r["code"].strip()
                if code.isdigit():
                    rows.append((r["description"].strip(), str(tax.category_for_hs(code)), lang, code))
    df = pd.DataFrame(rows, columns=["text", "category", "lang", "hs_code"])
    df = df[df["text"].str.len() > 3].drop_duplicates("text").reset_index(drop=True)
    df["note"] = ""
    df["source"] = "nomenclature"
    return df


def split_curated(curated: pd.DataFrame, test_size: float = 0.2, random_state: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified (category × language) split of the curated lines; fixed seed, so always the same."""
    strata = curated["category"] + "/" + curated["lang"]
    counts = strata.value_counts()
    strata = strata.where(strata.map(counts) >= 2, curated["category"])
    train, held = train_test_split(curated, test_size=test_size, random_state=random_state, stratify=strata)
    return train.sort_index(), held.sort_index()


def _hash_inputs(folder: Path, languages: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    paths = [*sorted((folder / "curated").glob("*.csv")), *sorted((folder / "catalog").glob("*.csv")),
             *(folder / "nomenclature" / f"cn8_2023_{l}.csv" for l in languages)]
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    h.update((resources.files("dualuse") / "data" / "hs2022.csv").read_bytes())
    return h.hexdigest()


def training_data(folder: Path = DEFAULT_DIR, *, nomenclature_weight: float = 0.3, catalog_weight: float = 1.0,
                  languages: tuple[str, ...] = ("en", "de", "fr", "nl"), test_size: float = 0.2,
                  random_state: int = 0) -> TrainingData:
    """The training set (curated train split + catalog + nomenclature, with a ``weight`` column) and the
    held-out curated lines; one catalog line in five (:func:`split_catalog`) is kept out as ``catalog_heldout``."""
    tax = load_taxonomy()
    curated = load_curated(folder, tax)
    train_cur, held = split_curated(curated, test_size, random_state)
    nom = load_nomenclature(folder, tax, languages) if nomenclature_weight > 0 else curated.iloc[:0]
    cat = load_catalog(folder, tax) if catalog_weight > 0 else curated.iloc[:0]
    held_texts = set(held["text"])
    nom = nom[~nom["text"].isin(held_texts)]
    cat = cat[~cat["text"].isin(held_texts | set(train_cur["text"]))].drop(columns="file", errors="ignore")
    cat, cat_held = split_catalog(cat)
    train_cur = train_cur.assign(weight=1.0)
    nom = nom.assign(weight=float(nomenclature_weight))
    cat = cat.assign(weight=float(catalog_weight))
    train = pd.concat([train_cur, cat, nom], ignore_index=True)
    train["weight"] = train["weight"].astype(np.float64)
    return TrainingData(train=train, heldout=held.reset_index(drop=True), sha256=_hash_inputs(folder, languages),
                        catalog_heldout=cat_held)
