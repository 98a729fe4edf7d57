"""Training data: the catalog lines (loading, validation, split) and how they reach the model and the HS index."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dualuse.errors import DualUseError
from dualuse.hs_suggest import dense_documents, nomenclature_documents
from dualuse.training import load_catalog, split_catalog, training_data

CATALOG = """text,lang,hs_code
"DJI Mini 4 Pro Drone 4K Camera Quadcopter, Fly More Combo",en,880622
10PCS Stainless Steel Jump Rings Connectors for Jewelry Making DIY,en,711719
Серьги бижутерия с коннекторами позолота,ru,711719
铜线 裸铜线 2.5mm 电工用,zh,740811
"Women's Cotton Knit T-Shirt Summer Casual Tee 3 Pack",en,610910
"""


@pytest.fixture
def folder(tmp_path: Path, repo: Path) -> Path:
    """A training folder: the repository's curated lines and English CN8 texts plus a tiny catalog."""
    src = repo / "models" / "training"
    (tmp_path / "nomenclature").mkdir()
    shutil.copy(src / "nomenclature" / "cn8_2023_en.csv", tmp_path / "nomenclature")
    shutil.copytree(src / "curated", tmp_path / "curated")
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "part.csv").write_text(CATALOG, encoding="utf-8")
    return tmp_path


def test_catalog_lines_get_the_category_of_their_code(folder: Path) -> None:
    cat = load_catalog(folder)
    assert len(cat) == 5 and set(cat["source"]) == {"catalog"} and set(cat["note"]) == {"catalog"}
    by_text = dict(zip(cat["text"], cat["category"]))
    assert by_text["DJI Mini 4 Pro Drone 4K Camera Quadcopter, Fly More Combo"] == "uav"
    assert by_text["铜线 裸铜线 2.5mm 电工用"] == "copper_wire"
    assert by_text["10PCS Stainless Steel Jump Rings Connectors for Jewelry Making DIY"] == "none"
    assert list(cat["hs_code"]) == ["880622", "711719", "711719", "740811", "610910"]  # leading zeros kept


@pytest.mark.parametrize("body, match", [
    ("text,lang,code\nx,en,880622\n", "expected columns"),
    ("text,lang,hs_code\nx,en,8806\n", "6-digit HS 2022 subheadings"),
    ("text,lang,hs_code\nx,en,999999\n", "6-digit HS 2022 subheadings"),
    ("text,lang,hs_code\nx,de,880622\n", "unknown languages"),
])
def test_bad_catalog_files_are_refused_with_the_reason(folder: Path, body: str, match: str) -> None:
    (folder / "catalog" / "bad.csv").write_text(body, encoding="utf-8")
    with pytest.raises(DualUseError, match=match):
        load_catalog(folder)


def test_catalog_split_is_by_text_hash_and_stable(repo: Path) -> None:
    cat = load_catalog(repo / "models" / "training")
    if not len(cat):
        pytest.skip("no catalog in this checkout")
    train, held = split_catalog(cat)
    assert len(train) + len(held) == len(cat) and not set(train["text"]) & set(held["text"])
    assert 0.1 < len(held) / len(cat) < 0.3
    # the same line is held out whatever else the catalog holds
    _, held_half = split_catalog(cat.iloc[::2])
    assert set(held_half["text"]) == set(held["text"]) & set(cat.iloc[::2]["text"])


def test_training_data_keeps_held_out_catalog_lines_out(folder: Path) -> None:
    data = training_data(folder, languages=("en",))
    train_texts = set(data.train["text"])
    catalog = load_catalog(folder)
    _, held = split_catalog(catalog)
    assert not set(held["text"]) & train_texts
    assert set(catalog["text"]) - set(held["text"]) <= train_texts
    assert set(data.train.loc[data.train["source"] == "catalog", "weight"]) == {1.0}
    assert data.summary()["n_catalog_heldout"] == len(held)


def test_catalog_lines_are_hs_documents_and_english_ones_are_embedded(folder: Path) -> None:
    texts, codes = nomenclature_documents(folder)
    assert ("10PCS Stainless Steel Jump Rings Connectors for Jewelry Making DIY", "711719") in set(zip(texts, codes))
    left_out = nomenclature_documents(folder, exclude_texts=frozenset({"铜线 裸铜线 2.5mm 电工用"}))[0]
    assert "铜线 裸铜线 2.5mm 电工用" in texts and "铜线 裸铜线 2.5mm 电工用" not in left_out
    dense = dict(zip(*dense_documents(folder)))
    assert dense.get("Women's Cotton Knit T-Shirt Summer Casual Tee 3 Pack") == "610910"
    assert "Серьги бижутерия с коннекторами позолота" not in dense  # MiniLM embeds English only


def test_heldout_metrics_report_model_and_screener(folder: Path) -> None:
    from dualuse.model import DualUseClassifier
    from dualuse.train import heldout_metrics

    data = training_data(folder, languages=("en",), nomenclature_weight=0.0)
    train = data.train.groupby("category", group_keys=False).head(8)
    clf = DualUseClassifier(encoder=None, n_char_features=2**12, use_rules=False, calibration_folds=0)
    clf.fit(train["text"].tolist(), train["category"].tolist())
    m = heldout_metrics(clf, data)
    assert set(m) >= {"heldout_model_only", "heldout_screener_text_only", "heldout_screener_with_declared_hs"}
    for k in ("heldout_model_only", "heldout_screener_text_only"):
        assert 0.0 <= m[k]["macro_f1"] <= 1.0 and m[k]["n"] == len(data.heldout)
