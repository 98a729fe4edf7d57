"""Issue 5's figures: `dualuse score` end to end on large files — lines/s and peak RSS, with and
without the cross-chunk dedup, 1 vs 2 worker processes, and Dask LocalCluster vs one process.

Each measurement runs `dualuse score` in a child process (model load and file I/O included) and
samples the RSS of the child and its worker processes with psutil (the sum over the process tree).
Files come from make_lines.py (benchmarks/data/, generated when missing).

    python benchmarks/scale.py                                  # 100k and 1m, writes README + results/
    python benchmarks/scale.py --sizes 100k 1m 5m --repeats 3
    python benchmarks/scale.py --smoke                          # tiny, rules only, no README (CI)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import HERE, REPO, RESULTS, env_line, environment, save_json, write_section

import make_lines

CONFIGS = {
    # name: extra `dualuse score` arguments
    "dedup, 1 job": [],
    "no dedup, 1 job": ["--dedup", "0"],
    "dedup, 2 jobs": ["--jobs", "2"],
    "no dedup, 2 jobs": ["--dedup", "0", "--jobs", "2"],
}


def run_score(src: Path, out: Path, extra: list[str], *, dask: str | None = None) -> dict[str, float]:
    """Wall time and peak RSS (MB, summed over the process tree) of one `dualuse score` run."""
    import psutil

    cmd = [sys.executable, "-m", "dualuse", "score", str(src), "-o", str(out), "-q", *extra]
    if dask:
        cmd += ["--dask", dask]
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, env=env)
    peak = 0
    while proc.poll() is None:
        try:
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}")
    return {"seconds": seconds, "peak_rss_mb": peak / 2**20}


def measure(src: Path, n: int, extra: list[str], repeats: int, **kw: str | None) -> dict[str, float]:
    runs = []
    with tempfile.TemporaryDirectory(dir=HERE) as tmp:
        for _ in range(repeats):
            runs.append(run_score(src, Path(tmp) / "out.csv", extra, **kw))
    secs = [r["seconds"] for r in runs]
    return {"lines": n, "repeats": repeats, "seconds_median": statistics.median(secs), "seconds_min": min(secs),
            "seconds_max": max(secs), "lines_per_s": n / statistics.median(secs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}


def dask_cluster():  # type: ignore[no-untyped-def]
    from distributed import LocalCluster

    return LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name in CONFIGS:
        pts = [(r["lines"], r) for r in results["runs"] if r["config"] == name]
        if pts:
            xs = [p[0] for p in pts]
            a.plot(xs, [p[1]["lines_per_s"] for p in pts], marker="o", label=name)
            b.plot(xs, [p[1]["peak_rss_mb"] for p in pts], marker="o", label=name)
    for ax, title in ((a, "lines/s (median)"), (b, "peak RSS, MB (process tree)")):
        ax.set_xscale("log")
        ax.set_xlabel("lines in the file")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(results: dict) -> str:
    env = results["environment"]
    rows = ["| lines | configuration | lines/s (median) | seconds (min–max) | runs | peak RSS MB |",
            "|---:|---|---:|---|---:|---:|"]
    for r in results["runs"]:
        rows.append(f"| {r['lines']:,} | {r['config']} | {r['lines_per_s']:,.0f} | {r['seconds_median']:.1f} "
                    f"({r['seconds_min']:.1f}–{r['seconds_max']:.1f}) | {r['repeats']} | {r['peak_rss_mb']:,.0f} |")
    ratios = "\n".join(f"- {k}: **{v:.2f}×**" for k, v in results["ratios"].items())
    return f"""## Scoring at scale (`benchmarks/scale.py`)

{env_line(env)}

`dualuse score FILE.csv` end to end in a child process (model load, CSV reading, writing, checkpoints
included) with the shipped static model; files from `make_lines.py`: curated lines resampled and
perturbed (casing, quantities, typos, prefixes, HS-code spelling) with Zipf-like repetition,
{results['distinct']:.0%} distinct variants. Peak RSS is sampled every 0.1 s over the process tree
(workers included). **This machine is shared**: other engineers ran jobs at the same time, so absolute
numbers are noisy; the ratios below come from runs made side by side and are the figures to trust.

{chr(10).join(rows)}

Side-by-side ratios (time without ÷ time with):

{ratios}

![lines/s and peak RSS](results/scale.png)
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["100k", "1m"])
    ap.add_argument("--repeats", type=int, default=3, help="runs per configuration at the smallest size")
    ap.add_argument("--big-repeats", type=int, default=1, help="runs per configuration at larger sizes")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--big-configs", nargs="+", default=["dedup, 1 job", "dedup, 2 jobs"], choices=list(CONFIGS))
    ap.add_argument("--dask-size", default="1m", help="size for Dask vs one process ('' to skip)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, rules only, no README")
    args = ap.parse_args(argv)
    extra: list[str] = []
    if args.smoke:
        args.sizes, args.repeats, args.big_repeats, args.dask_size = ["2000"], 1, 1, ""
        args.configs = ["dedup, 1 job", "no dedup, 1 job"]
        extra = ["--rules-only"]
    data = Path(tempfile.mkdtemp(dir=HERE)) if args.smoke else make_lines.DATA
    runs = []
    for i, size in enumerate(args.sizes):
        n = make_lines.SIZES.get(size.lower()) or int(size)
        src = data / f"lines_{size.lower()}.csv"
        if not src.exists():
            make_lines.make(n, src)
        configs, repeats = (args.configs, args.repeats) if i == 0 else (args.big_configs, args.big_repeats)
        for name in configs:
            r = measure(src, n, CONFIGS[name] + extra, repeats)
            runs.append({"config": name, **r})
            print(f"{n:>9,} {name:<18} {r['lines_per_s']:>9,.0f} lines/s  {r['peak_rss_mb']:>7,.0f} MB", file=sys.stderr)
    if args.dask_size:
        n = make_lines.SIZES.get(args.dask_size.lower()) or int(args.dask_size)
        src = data / f"lines_{args.dask_size.lower()}.csv"
        if not src.exists():
            make_lines.make(n, src)
        with dask_cluster() as cluster:
            r = measure(src, n, extra, 1, dask=cluster.scheduler_address)
            runs.append({"config": "Dask LocalCluster (2 workers)", **r})
            print(f"{n:>9,} {'dask':<18} {r['lines_per_s']:>9,.0f} lines/s", file=sys.stderr)
        r = measure(src, n, extra, 1)
        runs.append({"config": "one process (beside Dask)", **r})
    ratios = {}
    for size in {r["lines"] for r in runs}:
        by = {r["config"]: r for r in runs if r["lines"] == size}
        if "dedup, 1 job" in by and "no dedup, 1 job" in by:
            ratios[f"dedup speed-up at {size:,} lines"] = by["no dedup, 1 job"]["seconds_median"] / by["dedup, 1 job"]["seconds_median"]
        if "dedup, 1 job" in by and "dedup, 2 jobs" in by:
            ratios[f"2 jobs vs 1 at {size:,} lines (dedup)"] = by["dedup, 1 job"]["seconds_median"] / by["dedup, 2 jobs"]["seconds_median"]
        if "no dedup, 1 job" in by and "no dedup, 2 jobs" in by:
            ratios[f"2 jobs vs 1 at {size:,} lines (no dedup)"] = by["no dedup, 1 job"]["seconds_median"] / by["no dedup, 2 jobs"]["seconds_median"]
        if "Dask LocalCluster (2 workers)" in by and "one process (beside Dask)" in by:
            ratios[f"Dask (2 workers) vs one process at {size:,} lines"] = (
                by["one process (beside Dask)"]["seconds_median"] / by["Dask LocalCluster (2 workers)"]["seconds_median"])
    results = {"smoke": args.smoke, "environment": environment(), "distinct": 0.02, "runs": runs, "ratios": ratios}
    save_json("scale_smoke.json" if args.smoke else "scale.json", results)
    if not args.smoke:
        plot(results, RESULTS / "scale.png")
        write_section("scale", markdown(results))
    else:
        import shutil

        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
