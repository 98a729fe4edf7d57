"""Generate large customs-line CSVs for the scale benchmark, into benchmarks/data/ (git-ignored).

Lines are resampled from the curated training lines (models/training/curated/*.csv) and perturbed the
way declarations vary: casing, quantities and pack sizes, a typo, a prefix/suffix, the HS code written
with or without dots. Repetition is heavy and skewed, as in real export data: a pool of
``distinct × N`` variants (default 2 %) is drawn with Zipf-like weights (a few descriptions make up much of the file).

    python make_lines.py 10k 100k 1m 5m          # -> data/lines_10k.csv …
    python make_lines.py 100k --distinct 0.5      # less repetition
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CURATED = HERE.parent / "models" / "training" / "curated"
DATA = HERE / "data"
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000, "5m": 5_000_000}
COLUMNS = ["line_id", "date", "exporter", "importer", "description", "hs_code", "quantity", "value_usd"]
EXPORTERS = [f"{c} {k} CO LTD" for c in ("SHENZHEN", "NINGBO", "YIWU", "QINGDAO", "GUANGZHOU", "XIAMEN", "HUNAN")
             for k in ("XINGYUAN TRADING", "HAIXIN TECH", "JIAHE IMPORT EXPORT", "LONGSHENG")]
IMPORTERS = [f'ООО "{n}"' for n in ("ТЕХНОСНАБ", "ВОСТОК-ИМПОРТ", "АЛЬЯНС", "МАРКЕТ ЛАЙН", "ПРОМКОМПЛЕКТ", "СИБТРЕЙД")]
_NUM = re.compile(r"\d+")


def curated_lines() -> list[tuple[str, str]]:
    out = []
    for path in sorted(CURATED.glob("*.csv")):
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("text"):
                    out.append((row["text"], row.get("hs_code") or ""))
    return out


def perturb(text: str, code: str, rng: random.Random) -> tuple[str, str]:
    r = rng.random()
    if r < 0.15:
        text = text.lower()
    elif r < 0.25:
        text = text.title()
    if rng.random() < 0.5:
        text = _NUM.sub(lambda m: str(max(1, int(m.group()) * rng.choice((1, 2, 5, 10)) + rng.randint(0, 3)))
                        if len(m.group()) <= 3 else m.group(), text, count=1)
    if rng.random() < 0.1 and len(text) > 6:
        i = rng.randrange(1, len(text) - 2)
        text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]  # a swapped pair of letters
    if rng.random() < 0.15:
        text = rng.choice(("NEW ", "BRAND NEW ", "")) + text + rng.choice((" 1 CTN", " (SAMPLE)", " PACKED IN BOXES", ""))
    digits = re.sub(r"\D", "", code)
    if digits and rng.random() < 0.5:
        code = digits.ljust(10, "0") if rng.random() < 0.5 else f"{digits[:4]}.{digits[4:6]}"
    return text, code


def make(n: int, path: Path, *, distinct: float = 0.02, seed: int = 0) -> Path:
    rng = random.Random(seed)
    base = curated_lines()
    pool = [perturb(*rng.choice(base), rng) for _ in range(max(len(base), int(n * distinct)))]
    np_rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(pool) + 1) ** 0.8  # Zipf-like: heavy head, long tail
    weights /= weights.sum()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for start in range(0, n, 100_000):
            m = min(100_000, n - start)
            picks = np_rng.choice(len(pool), size=m, p=weights)
            qty = np_rng.integers(1, 5000, size=m)
            price = np_rng.uniform(0.5, 500, size=m)
            month = np_rng.integers(1, 13, size=m)
            day = np_rng.integers(1, 29, size=m)
            ex = np_rng.integers(0, len(EXPORTERS), size=m)
            im = np_rng.integers(0, len(IMPORTERS), size=m)
            w.writerows(
                (f"L{start + i:08d}", f"2024-{month[i]:02d}-{day[i]:02d}", EXPORTERS[ex[i]], IMPORTERS[im[i]],
                 pool[picks[i]][0], pool[picks[i]][1], int(qty[i]), f"{qty[i] * price[i]:.2f}")
                for i in range(m)
            )
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="+", help=f"sizes: {', '.join(SIZES)} or a number of lines")
    ap.add_argument("--distinct", type=float, default=0.02, help="distinct variants per line (default 0.02)")
    ap.add_argument("--out", type=Path, default=DATA, help="output folder (default benchmarks/data)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for size in args.sizes:
        n = SIZES.get(size.lower()) or int(size)
        path = make(n, args.out / f"lines_{size.lower()}.csv", distinct=args.distinct, seed=args.seed)
        print(f"{path}: {n:,} lines", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
