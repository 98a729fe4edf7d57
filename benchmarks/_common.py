"""Shared helpers of the benchmark scripts: environment record, timing, README sections."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
README = HERE / "README.md"
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def environment() -> dict[str, Any]:
    def v(d: str) -> str | None:
        try:
            return metadata.version(d)
        except metadata.PackageNotFoundError:
            return None

    mem = None
    try:
        with open("/proc/meminfo") as fh:
            mem = round(int(fh.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "ram_gib": mem,
        "versions": {d: v(d) for d in ("dualuse", "scikit-learn", "numpy", "torch", "sentence-transformers", "setfit", "pandas")},
    }


def env_line(env: dict[str, Any]) -> str:
    vs = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    return f"{env['date']} · {env['cores']} cores, {env['ram_gib']} GiB · Python {env['python']} · {vs}"


def median_rate(fn: Callable[[], Any], n_items: int, repeats: int = 3) -> dict[str, float]:
    """Items per second, median (and min/max) over ``repeats`` timed runs in this process."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        rates.append(n_items / (time.perf_counter() - t0))
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "repeats": repeats}


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=float) + "\n", encoding="utf-8")
    return path


def write_section(name: str, markdown: str) -> None:
    """Replace the block between ``<!-- name:start -->`` and ``<!-- name:end -->`` in benchmarks/README.md."""
    text = README.read_text(encoding="utf-8") if README.exists() else "# Benchmarks\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _m: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    README.write_text(text, encoding="utf-8")


def fmt(x: Any, nd: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if x != x:
            return "–"
        return f"{x:.{nd}f}"
    return str(x)


def pct(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and x != x) else f"{100 * x:.1f} %"


def risk_counts(risk: dict[str, Any]) -> tuple[int, int, int, int]:
    """(risk rows found, risk rows, ``none`` rows flagged, ``none`` rows) of a ``risk_detection`` dict;
    results written before the counts were stored give them back from the rates."""
    n_risk, n_none = int(risk["n_risk"]), int(risk["n_none"])
    tp = risk.get("tp")
    fp = risk.get("fp")
    if tp is None:
        rec = risk.get("recall")
        tp = 0 if rec is None or rec != rec else round(rec * n_risk)
    if fp is None:
        f = risk.get("fpr_none")
        fp = 0 if f is None or f != f else round(f * n_none)
    return int(tp), n_risk, int(fp), n_none


def with_interval(k: int, n: int, as_pct: bool = False) -> str:
    """``k/n = rate (95 % Wilson interval)``, e.g. ``18/23 = 0.78 (0.58–0.90)``."""
    from dualuse.metrics import proportion_interval

    if n == 0:
        return "–"
    lo, hi = proportion_interval(k, n)
    if as_pct:
        return f"{k}/{n} = {100 * k / n:.1f} % ({100 * lo:.1f}–{100 * hi:.1f} %)"
    return f"{k}/{n} = {k / n:.2f} ({lo:.2f}–{hi:.2f})"


def interval_table(rows: list[tuple[str, dict[str, dict[str, Any]]]], sets: list[str],
                   recall_target: float = 0.80, fpr_target: float = 0.05) -> str:
    """Markdown table: per system and set, risk rows found and ``none`` rows flagged with 95 % Wilson
    intervals, and whether issue 3's targets (recall >= 0.80, false positives on ``none`` <= 5 %) are met;
    when the target lies inside the interval the set cannot tell the system from one exactly at the target,
    and the verdict says so."""
    from dualuse.metrics import proportion_interval

    def verdict(k: int, n: int, target: float, higher_is_better: bool) -> str:
        label = f"{target:.2f}" if higher_is_better else f"{100 * target:g} %"
        if n == 0:
            return "–"
        lo, hi = proportion_interval(k, n)
        rate = k / n
        met = rate >= target if higher_is_better else rate <= target
        if lo <= target <= hi:  # the set cannot tell this system from one exactly at the target
            return f"{'yes' if met else 'no'} ({label} inside the interval)"
        if met:
            return "yes"
        return f"**no** (interval {'below' if higher_is_better else 'above'} the target)"

    out = [f"| system | set | risk rows found = recall (95 % interval) | recall ≥ {recall_target:.2f} | "
           f"`none` rows flagged = FPR (95 % interval) | FPR ≤ {100 * fpr_target:g} % |",
           "|---|---|---|---|---|---|"]
    for name, ev in rows:
        for s in sets:
            e = ev.get(s)
            if not e:
                continue
            tp, n_risk, fp, n_none = risk_counts(e["risk"])
            out.append(f"| {name} | {s} | {with_interval(tp, n_risk)} | {verdict(tp, n_risk, recall_target, True)} | "
                       f"{with_interval(fp, n_none, as_pct=True)} | {verdict(fp, n_none, fpr_target, False)} |")
    return "\n".join(out)
