"""The systems that ``compare.py`` puts side by side, behind one small interface.

Each system is fitted (if it learns anything) on the same training data, saved to a folder, loaded
back in a fresh process and asked for ``predict(texts, codes) -> (categories, confidences | None)``.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

import dualuse
from dualuse.encoders import MiniLMEncoder, minilm_path
from dualuse.hs import parse_hs
from dualuse.model import DualUseClassifier, fit_temperature
from dualuse.persistence import read_manifest, save_model
from dualuse.taxonomy import load_taxonomy
from dualuse.train import DEFAULT_STATIC

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "default"
SHIPPED_ACCURATE = REPO / "models" / "accurate"
TAXONOMY_FILE = Path(str(resources.files("dualuse") / "data" / "taxonomy.toml"))
SEED = 0

Result = tuple[list[str], list[float] | None]


class System:
    """What every system offers; the defaults are those of a system that learns nothing."""

    name = ""
    encoder: str | None = None  # the sentence encoder it runs on, for the "× encoder" ratio
    takes_codes = False  # uses a declared HS code when given one
    trains = False
    note = ""
    train_budget_s: float | None = None  # stop its training after this many seconds (None: the run's --timeout)

    def available(self) -> str | None:
        """``None`` when the system can run here, else why not."""
        return None

    def fit(self, train: pd.DataFrame, folder: Path, *, smoke: bool) -> dict[str, Any]:
        return {}

    def load(self, folder: Path) -> None:
        raise NotImplementedError

    def predict(self, texts: Sequence[str], codes: Sequence[object] | None = None) -> Result:
        raise NotImplementedError

    def files(self, folder: Path) -> list[Path]:
        """Everything it needs on disk to score (for the model size)."""
        return [folder]


class HSLookup(System):
    """What analysts do today: the category of the declared code's longest taxonomy prefix."""

    name = "hs-lookup"
    takes_codes = True
    note = "category of the declared HS code's longest taxonomy prefix; `none` when no code"

    def load(self, folder: Path) -> None:
        self.tax = load_taxonomy()

    def predict(self, texts: Sequence[str], codes: Sequence[object] | None = None) -> Result:
        if codes is None:
            return ["none"] * len(texts), None
        return [self.tax.category_for_hs(parse_hs(c).digits) or "none" for c in codes], None

    def files(self, folder: Path) -> list[Path]:
        return [TAXONOMY_FILE]


class _ScreenerSystem(System):
    takes_codes = True

    def predict(self, texts: Sequence[str], codes: Sequence[object] | None = None) -> Result:
        preds = self.screener.predict(list(texts), None if codes is None else list(codes))
        return [p.category for p in preds], [p.confidence for p in preds]


class Rules(_ScreenerSystem):
    name = "rules"
    note = "`dualuse.load(rules_only=True)`: keywords, brands, part-number patterns"

    def load(self, folder: Path) -> None:
        self.screener = dualuse.load(rules_only=True)

    def files(self, folder: Path) -> list[Path]:
        return [TAXONOMY_FILE]


class DualUseShipped(_ScreenerSystem):
    """A model shipped in ``models/`` (trained by ``make model`` / ``make model-accurate`` on the same
    training split as every system here), loaded with :func:`dualuse.load`; its training time is the
    one recorded in its manifest."""

    def __init__(self, name: str, folder: Path, encoder: str, note: str) -> None:
        self.name, self.folder, self.encoder, self.note = name, folder, encoder, note

    def available(self) -> str | None:
        if (self.folder / "manifest.json").is_file():
            return None
        make = "make model" if self.folder.name == "default" else f"make model-{self.folder.name}"
        return f"no shipped model at {self.folder} (build it with `{make}`)"

    def load(self, folder: Path) -> None:
        self.screener = dualuse.load(self.folder)

    def files(self, folder: Path) -> list[Path]:
        return [self.folder, DEFAULT_STATIC if self.encoder == "static" else minilm_path()]

    def manifest_training(self) -> dict[str, Any]:
        """What the manifest says of the model's training (data hash, fit seconds)."""
        return manifest_training(self.folder)


class DualUseTrained(_ScreenerSystem):
    """A :class:`DualUseClassifier` trained in the benchmark and loaded as a screener."""

    trains = True

    def __init__(self, name: str, encoder: str, note: str, train_budget_s: float | None = None) -> None:
        self.name, self.encoder, self.note, self.train_budget_s = name, encoder, note, train_budget_s

    def fit(self, train: pd.DataFrame, folder: Path, *, smoke: bool) -> dict[str, Any]:
        clf = DualUseClassifier(encoder=self.encoder, encoder_path=str(DEFAULT_STATIC) if self.encoder == "static" else None,
                                calibration_folds=0 if smoke else 3, random_state=SEED)
        clf.fit(train["text"].tolist(), train["category"].tolist(), sample_weight=train["weight"].to_numpy())
        save_model(clf, folder)
        return {"feature_blocks": list(clf.feature_blocks_), "temperature": clf.temperature_}

    def load(self, folder: Path) -> None:
        self.screener = dualuse.load(folder)

    def files(self, folder: Path) -> list[Path]:
        return [folder, DEFAULT_STATIC if self.encoder == "static" else minilm_path()]


class TfidfLR(System):
    name = "tfidf-lr"
    trains = True
    note = "scikit-learn TF-IDF word 1–2-grams + char_wb 2–5-grams, multinomial logistic regression (C=10)"

    def fit(self, train: pd.DataFrame, folder: Path, *, smoke: bool) -> dict[str, Any]:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, Pipeline
        from skops.io import dump

        pipe = Pipeline([
            ("tfidf", FeatureUnion([
                ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
                ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True,
                                         max_features=300_000, dtype=np.float32)),
            ])),
            ("lr", LogisticRegression(C=10.0, max_iter=2000, random_state=SEED)),
        ])
        t0 = time.perf_counter()
        X = pipe.named_steps["tfidf"].fit_transform(train["text"].tolist())
        vec_s = time.perf_counter() - t0
        pipe.named_steps["lr"].fit(X, train["category"].to_numpy(), sample_weight=train["weight"].to_numpy())
        folder.mkdir(parents=True, exist_ok=True)
        dump(pipe, folder / "pipeline.skops")
        lr = pipe.named_steps["lr"]
        return {"n_features": int(lr.coef_.shape[1]), "n_iter": int(lr.n_iter_.max()), "vectorize_seconds": vec_s,
                "lr_seconds": time.perf_counter() - t0 - vec_s}

    def load(self, folder: Path) -> None:
        from skops.io import get_untrusted_types, load

        path = folder / "pipeline.skops"
        # written by fit() above in this run, so its sklearn/numpy types are trusted
        self.pipe = load(path, trusted=get_untrusted_types(file=path))

    def predict(self, texts: Sequence[str], codes: Sequence[object] | None = None) -> Result:
        proba = self.pipe.predict_proba(list(texts))
        classes = self.pipe.classes_
        best = proba.argmax(axis=1)
        return [str(c) for c in classes[best]], proba[np.arange(len(best)), best].tolist()


class ZeroShot(System):
    """Cosine similarity between the line and "name: definition" of each category (MiniLM)."""

    name = "zero-shot"
    encoder = "minilm"
    trains = True
    note = ("MiniLM cosine similarity to each category's `name: definition`, argmax; softmax temperature "
            "fitted on 300 curated training lines (for ECE only; the argmax learns nothing)")

    def fit(self, train: pd.DataFrame, folder: Path, *, smoke: bool) -> dict[str, Any]:
        tax = load_taxonomy()
        enc = MiniLMEncoder()
        labels = np.asarray(tax.ids)
        label_emb = enc.encode([f"{c.name}: {c.definition}" for c in tax.categories.values()])
        cur = train[train["source"] == "curated"]
        cur = cur.sample(n=min(len(cur), 300), random_state=SEED)  # for the temperature only
        sims = enc.encode(cur["text"].tolist()) @ label_emb.T
        index = {c: i for i, c in enumerate(labels)}
        temperature = fit_temperature(sims, np.array([index[c] for c in cur["category"]]))
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "labels.npz", embeddings=label_emb, labels=labels, temperature=np.array([temperature]))
        return {"temperature": temperature, "n_calibration": int(len(cur))}

    def load(self, folder: Path) -> None:
        with np.load(folder / "labels.npz", allow_pickle=False) as z:
            self.label_emb, self.labels, self.temperature = z["embeddings"], z["labels"], float(z["temperature"][0])
        self.enc = MiniLMEncoder()

    def predict(self, texts: Sequence[str], codes: Sequence[object] | None = None) -> Result:
        from scipy.special import softmax

        p = softmax((self.enc.encode(list(texts)) @ self.label_emb.T) / self.temperature, axis=1)
        best = p.argmax(axis=1)
        return [str(c) for c in self.labels[best]], p[np.arange(len(best)), best].tolist()

    def files(self, folder: Path) -> list[Path]:
        return [folder, minilm_path()]


def setfit_pairs(labels: Sequence[str]) -> dict[str, int]:
    """How many contrastive pairs and steps SetFit's default recipe (``sampling_strategy="oversampling"``,
    one epoch, batch 16) would draw from these labels: all pairs with replacement, split into positive
    and negative, the smaller side oversampled to the larger."""
    n = len(labels)
    counts = pd.Series(list(labels)).value_counts().to_numpy(dtype=np.int64)
    pos = int((counts * (counts + 1) // 2).sum())
    neg = n * (n + 1) // 2 - pos
    pairs = 2 * max(pos, neg)
    return {"n_texts": n, "positive_pairs": pos, "negative_pairs": neg, "pairs": pairs, "steps": -(-pairs // 16)}


class SetFit(System):
    """SetFit from the local MiniLM: contrastive body fine-tuning, then its logistic-regression head."""

    name = "setfit"
    encoder = "minilm"
    trains = True

    def __init__(self, max_steps: int) -> None:
        self.max_steps = max_steps
        self.note = (f"SetFit {_version('setfit')} from the local MiniLM, default `TrainingArguments` (seed {SEED}) but a "
                     f"**reduced budget**: `max_steps={max_steps}` (batch 16) of contrastive fine-tuning on pairs of the "
                     "curated training lines, then its default LogisticRegression head on those lines "
                     "(`Trainer.train_embeddings` + `train_classifier`); the nomenclature texts are not used")

    def available(self) -> str | None:
        import importlib.util

        return None if importlib.util.find_spec("setfit") else "setfit is not installed (pip install setfit)"

    def fit(self, train: pd.DataFrame, folder: Path, *, smoke: bool) -> dict[str, Any]:
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments

        cur = train[train["source"] == "curated"]
        model = SetFitModel.from_pretrained(str(minilm_path()))
        args = TrainingArguments(output_dir=str(folder / "checkpoints"), max_steps=self.max_steps, seed=SEED,
                                 report_to="none", save_strategy="no", show_progress_bar=False)
        ds = Dataset.from_dict({"text": cur["text"].tolist(), "label": cur["category"].tolist()})
        trainer = Trainer(model=model, args=args, train_dataset=ds)
        t0 = time.perf_counter()
        trainer.train_embeddings(ds["text"], ds["label"])
        body_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        trainer.train_classifier(ds["text"], ds["label"])
        head_s = time.perf_counter() - t0
        model.save_pretrained(str(folder / "model"))
        s_per_step = body_s / max(self.max_steps, 1)
        default = {"all_training_data": setfit_pairs(train["category"]), "curated_lines": setfit_pairs(cur["category"])}
        for v in default.values():
            v["hours_at_measured_step_time"] = v["steps"] * s_per_step / 3600
            # numpy's triu_indices + permutation in setfit's pair sampler: 3 int64 arrays of n(n+1)/2
            v["sampler_index_gib"] = 3 * 8 * (v["n_texts"] * (v["n_texts"] + 1) // 2) / 2**30
        return {"body_steps": self.max_steps, "body_seconds": body_s, "seconds_per_step": s_per_step,
                "head_seconds": head_s, "n_curated": int(len(cur)), "default_recipe": default}

    def load(self, folder: Path) -> None:
        from setfit import SetFitModel

        # the head is a joblib pickle that fit() wrote in this run (setfit's own format)
        self.model = SetFitModel.from_pretrained(str(folder / "model"))

    def predict(self, texts: Sequence[str], codes: Sequence[object] | None = None) -> Result:
        p = np.asarray(self.model.predict_proba(list(texts), as_numpy=True))
        classes = self.model.model_head.classes_
        best = p.argmax(axis=1)
        return [str(c) for c in classes[best]], p[np.arange(len(best)), best].tolist()

    def files(self, folder: Path) -> list[Path]:
        return [folder / "model"]


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def make_systems(setfit_steps: int) -> dict[str, System]:
    systems: list[System] = [
        HSLookup(), Rules(),
        DualUseShipped("dualuse-fast", SHIPPED, "static",
                       "the shipped model `models/default` (static encoder + char n-grams + rules features), rules fallback"),
        DualUseShipped("dualuse-accurate", SHIPPED_ACCURATE, "minilm",
                       "the shipped model `models/accurate` (MiniLM + char n-grams + rules features), rules fallback"),
        TfidfLR(),
        DualUseTrained("dualuse-fast-retrained", "static",
                       "the shipped configuration (static encoder) trained in this run on this split"),
        ZeroShot(), SetFit(setfit_steps),
        DualUseTrained("dualuse-accurate-retrained", "minilm",
                       "`DualUseClassifier(encoder=\"minilm\")`: MiniLM + char n-grams + rules features, trained in this run",
                       train_budget_s=3600),
    ]
    return {s.name: s for s in systems}


def manifest_training(folder: Path) -> dict[str, Any]:
    """The ``training`` entry of a model folder's manifest (``{}`` when there is none)."""
    try:
        return read_manifest(folder).get("training", {})
    except Exception:  # noqa: BLE001 - only informative
        return {}


def shipped_data_sha(folder: Path = SHIPPED) -> str | None:
    return manifest_training(folder).get("data_sha256")


def disk_bytes(paths: Sequence[Path]) -> int:
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total


def dump_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=float) + "\n", encoding="utf-8")
