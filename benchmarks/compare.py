"""Issue 4: dualuse side by side with the alternatives a user would pick, on the same data, in one run.

Every system is trained on ``dualuse.training.training_data().train`` and scored on the held-out
curated lines and the real-world sets (``realworld.sets()``, evaluation only). Each system is trained
in one child process and loaded and scored in another, so the peak RSS of each (``ru_maxrss`` of that
child) is its own. Throughput is timed in the scoring child, interleaved with the encoders alone, so
the ratios are measured side by side under the same load.

    python benchmarks/compare.py                   # full: results/compare.json + a section of README.md
    python benchmarks/compare.py --smoke           # tiny sizes, a subset of systems, no README update
    python benchmarks/compare.py --systems rules,tfidf-lr --no-readme
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import HERE, RESULTS, env_line, environment, fmt, interval_table, pct, save_json, write_section
from _systems import SHIPPED, SHIPPED_ACCURATE, System, disk_bytes, dump_json, make_systems, shipped_data_sha

SMOKE_SYSTEMS = ("hs-lookup", "rules", "tfidf-lr", "zero-shot", "dualuse-fast")
#: run only when named: an hour of MiniLM encoding on 2 cores (the shipped `dualuse-accurate` is the same recipe)
OPT_IN_SYSTEMS = ("dualuse-accurate-retrained",)
FULL_SETFIT_STEPS = 10


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data(smoke: bool):  # type: ignore[no-untyped-def]
    import realworld
    from dualuse.training import training_data

    data = training_data()
    train, held = data.train, data.heldout
    sets = realworld.sets() if realworld.available() else {}
    if smoke:
        train = train.groupby(["category", "source"], group_keys=False).head(6)
        held = held.groupby("category", group_keys=False).head(2)
        sets = {k: v.head(40) for k, v in sets.items()}
    return data, train, held, sets


def _lines(held, n: int) -> tuple[list[str], list[object]]:  # type: ignore[no-untyped-def]
    """``n`` distinct lines (held-out texts numbered, so no cache or dedup helps) and their declared codes."""
    texts, codes = held["text"].tolist(), held["hs_code"].tolist()
    reps = -(-n // len(texts))
    return [f"{t} {i}" for i, t in enumerate((texts * reps)[:n])], (codes * reps)[:n]


# -- child processes ----------------------------------------------------------------------------
def child_train(system: System, folder: Path, smoke: bool) -> dict[str, Any]:
    data, train, _, _ = _data(smoke)
    rss0 = _maxrss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    info = system.fit(train, folder, smoke=smoke)
    return {"fit_seconds": time.perf_counter() - t0, "fit_cpu_seconds": time.process_time() - c0,
            "n_train": int(len(train)), "peak_rss_mb_train": _maxrss_mb(), "rss_mb_before_fit": rss0,
            "info": info, "loadavg": os.getloadavg(), "data_sha256": data.sha256}


def _report(y, pred, conf, **kw):  # type: ignore[no-untyped-def]
    from dualuse.metrics import classification_report

    return classification_report(y, pred, confidence=conf, **kw)


def child_score(system: System, folder: Path, smoke: bool, n_lines: int, repeats: int, minilm_lines: int) -> dict[str, Any]:
    from dualuse.encoders import MiniLMEncoder, StaticEncoder
    from dualuse.train import DEFAULT_STATIC

    data, _, held, sets = _data(smoke)
    out: dict[str, Any] = {"loadavg_start": os.getloadavg(), "rss_mb_before_load": _maxrss_mb(), "data_sha256": data.sha256}
    t0 = time.perf_counter()
    system.load(folder)
    out["load_seconds"] = time.perf_counter() - t0
    y, langs = held["category"].tolist(), held["lang"].tolist()
    ev: dict[str, Any] = {}
    codes = held["hs_code"].tolist()
    # text only, except hs-lookup, which has nothing but the declared code
    pred, conf = system.predict(held["text"].tolist(), codes if system.name == "hs-lookup" else None)
    ev["heldout"] = _report(y, pred, conf, langs=langs)
    if system.takes_codes and system.name != "hs-lookup":
        pred, conf = system.predict(held["text"].tolist(), codes)
        ev["heldout_with_codes"] = _report(y, pred, conf, langs=langs)
    for name, df in sets.items():
        pred, conf = system.predict(df["text"].tolist())
        ev[name] = _report(df["category"].tolist(), pred, conf, min_support=3)
        if system.name == "hs-lookup":
            pred, conf = system.predict(df["text"].tolist(), df["gold_hs"].tolist())
            ev[f"{name}_gold_code"] = _report(df["category"].tolist(), pred, conf, min_support=3)
    out["eval"] = ev
    # throughput: the system, then the encoders alone, interleaved round by round
    if system.encoder == "minilm":
        n_lines = min(n_lines, minilm_lines)
    lines, line_codes = _lines(held, n_lines)
    use_codes = line_codes if system.name == "hs-lookup" else None
    system.predict(lines[:16], None if use_codes is None else use_codes[:16])
    runs: dict[str, list[float]] = {"system": [], "static_encoder": []}
    encoders: dict[str, Any] = {}
    for r in range(repeats):
        t0 = time.perf_counter()
        system.predict(lines, use_codes)
        runs["system"].append(n_lines / (time.perf_counter() - t0))
        if r == 0:
            # peak RSS of load + evaluation + scoring n_lines, before the reference encoders are loaded
            out["peak_rss_mb_score"] = _maxrss_mb()
            encoders["static_encoder"] = StaticEncoder(DEFAULT_STATIC)
            if system.encoder == "minilm":
                encoders["minilm_encoder"] = MiniLMEncoder()
                runs["minilm_encoder"] = []
            for enc in encoders.values():
                enc.encode(lines[:16])
        for key, enc in encoders.items():
            t0 = time.perf_counter()
            enc.encode(lines)
            runs[key].append(n_lines / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in runs.items()}
    out["throughput"] = {"n_lines": n_lines, "repeats": repeats, "runs": runs, "median": med,
                         "vs_static_encoder": med["system"] / med["static_encoder"]}
    if "minilm_encoder" in med:
        out["throughput"]["vs_minilm_encoder"] = med["system"] / med["minilm_encoder"]
    paths = system.files(folder)
    out["size_bytes"] = disk_bytes(paths)
    out["size_paths"] = [str(p) for p in paths]
    out["loadavg_end"] = os.getloadavg()
    return out


def run_child(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", choices=("train", "score"), required=True)
    ap.add_argument("--system", required=True)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--lines", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--minilm-lines", type=int, default=1000)
    ap.add_argument("--setfit-steps", type=int, default=FULL_SETFIT_STEPS)
    a = ap.parse_args(argv)
    system = make_systems(a.setfit_steps)[a.system]
    folder = a.workdir / a.system
    if a.child == "train":
        res = child_train(system, folder, a.smoke)
    else:
        res = child_score(system, folder, a.smoke, a.lines, a.repeats, a.minilm_lines)
    dump_json(a.workdir / f"{a.system}.{a.child}.json", res)
    return 0


# -- the parent ---------------------------------------------------------------------------------
def _spawn(kind: str, name: str, args: argparse.Namespace, workdir: Path, timeout: float) -> dict[str, Any]:
    import json

    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--system", name, "--workdir", str(workdir),
           "--lines", str(args.lines), "--minilm-lines", str(args.minilm_lines), "--repeats", str(args.repeats), "--setfit-steps", str(args.setfit_steps)]
    if args.smoke:
        cmd.append("--smoke")
    log = workdir / f"{name}.{kind}.log"
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        try:
            rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=HERE, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return {"error": f"{kind} did not finish within {timeout:.0f} s (stopped)", "timeout": True, "wall_seconds": timeout}
    out_file = workdir / f"{name}.{kind}.json"
    if rc != 0 or not out_file.is_file():
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        return {"error": f"{kind} exited with {rc}", "log_tail": tail}
    res = json.loads(out_file.read_text())
    res["wall_seconds"] = time.perf_counter() - t0
    return res


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--child" in argv:
        return run_child(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, a subset of systems; no README update")
    ap.add_argument("--systems", default=None, help="comma-separated system names (default: all; smoke: a subset)")
    ap.add_argument("--lines", type=int, default=None, help="lines for the throughput runs (default 10,000; smoke 200)")
    ap.add_argument("--minilm-lines", type=int, default=None,
                    help="lines for the throughput runs of MiniLM-based systems (default 1,000; smoke 100)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per system (median reported)")
    ap.add_argument("--render", type=Path, default=None, help="only rewrite the README section from this results JSON")
    ap.add_argument("--setfit-steps", type=int, default=None,
                    help=f"SetFit body fine-tuning steps (default {FULL_SETFIT_STEPS}; smoke 2)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds allowed to each child process")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default results/compare[_smoke].json)")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite the README section")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the trained systems here (default: a temp dir)")
    ap.add_argument("--merge", action="store_true",
                    help="re-run only --systems and replace their rows in the existing results JSON (the run is "
                         "recorded under 'merged_runs' and named in the README)")
    args = ap.parse_args(argv)
    if args.render:
        import json

        write_section("compare", render(json.loads(args.render.read_text(encoding="utf-8"))))
        return 0
    args.lines = args.lines or (200 if args.smoke else 10_000)
    args.minilm_lines = args.minilm_lines or (100 if args.smoke else 1000)
    args.setfit_steps = args.setfit_steps or (2 if args.smoke else FULL_SETFIT_STEPS)
    systems = make_systems(args.setfit_steps)
    names = (args.systems.split(",") if args.systems else
             list(SMOKE_SYSTEMS if args.smoke else [n for n in systems if n not in OPT_IN_SYSTEMS]))
    if args.merge and not args.systems:
        ap.error("--merge needs --systems (the systems to re-run)")
    unknown = [n for n in names if n not in systems]
    if unknown:
        ap.error(f"unknown systems {unknown}; expected some of {', '.join(systems)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dualuse-compare-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data, train, held, sets = _data(args.smoke)
    results: dict[str, Any] = {
        "environment": environment(), "smoke": args.smoke,
        "command": "python benchmarks/compare.py" + (" " + " ".join(argv) if argv else ""),
        "settings": {"lines": args.lines, "minilm_lines": args.minilm_lines, "repeats": args.repeats,
                     "setfit_steps": args.setfit_steps},
        "data": {**data.summary(), "n_train_used": int(len(train)), "n_heldout_used": int(len(held)),
                 "heldout_by_lang": held["lang"].value_counts().to_dict(),
                 "heldout_code_share": float((held["hs_code"].str.strip() != "").mean()),
                 "realworld": {k: {"n": int(len(v)), "n_risk": int((v["category"] != "none").sum())} for k, v in sets.items()},
                 "shipped_model_data_sha256": shipped_data_sha(),
                 "accurate_model_data_sha256": shipped_data_sha(SHIPPED_ACCURATE)},
        "systems": {},
    }
    t_all = time.perf_counter()
    for name in names:
        system = systems[name]
        why = system.available()
        if why:
            results["systems"][name] = {"skipped": why, "note": system.note}
            print(f"{name}: skipped ({why})", flush=True)
            continue
        r: dict[str, Any] = {"note": system.note, "encoder": system.encoder}
        if hasattr(system, "manifest_training"):  # shipped: trained by `make model…`, on the same split
            t = system.manifest_training()
            r["train"] = {"from_manifest": True, "fit_seconds": t.get("fit_seconds"),
                          "model_data_sha256": t.get("data_sha256")}
        if system.trains:
            print(f"{name}: training …", flush=True)
            r["train"] = _spawn("train", name, args, workdir, system.train_budget_s or args.timeout)
        if "error" not in r.get("train", {}):
            print(f"{name}: scoring …", flush=True)
            r["score"] = _spawn("score", name, args, workdir, args.timeout)
        results["systems"][name] = r
        err = r.get("train", {}).get("error") or r.get("score", {}).get("error")
        print(f"{name}: {'FAILED: ' + err if err else _summary(r)}", flush=True)
        _ratios(results)
        dump_json(workdir / "partial.json", results)  # inspect while the run goes on
    results["wall_seconds"] = time.perf_counter() - t_all
    out = args.out or RESULTS / ("compare_smoke.json" if args.smoke else "compare.json")
    if args.merge:
        results = _merge(out, results, names)
    _ratios(results)
    if args.out:
        out.parent.mkdir(parents=True, exist_ok=True)
        dump_json(out, results)
    else:
        out = save_json(out.name, results)
    print(f"wrote {out}")
    if not (args.smoke or args.no_readme):
        write_section("compare", render(results))
        print(f"updated {HERE / 'README.md'}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    # a system that ran out of its time budget is a result (reported as such), not a failure of the benchmark
    failed = [n for n, r in results["systems"].items()
              if any("error" in r.get(k, {}) and not r[k].get("timeout") for k in ("train", "score"))]
    return 1 if failed else 0


def _merge(path: Path, new: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The results at ``path`` with the rows of ``names`` replaced by those of ``new``."""
    import json

    if not path.is_file():
        raise SystemExit(f"--merge: expected earlier results at {path}; run without --merge first")
    old = json.loads(path.read_text(encoding="utf-8"))
    for name in names:
        old["systems"][name] = new["systems"][name]
    old.setdefault("merged_runs", []).append({
        "systems": names, "command": new["command"], "environment": new["environment"],
        "wall_seconds": new["wall_seconds"], "data_sha256": new["data"]["data_sha256"],
        **{k: new["data"].get(k) for k in _MODEL_SHA_KEYS.values()}})
    for k in _MODEL_SHA_KEYS.values():
        old["data"][k] = new["data"].get(k)
    return old


#: per shipped system, the key under which a run records the data sha256 in that model's manifest
_MODEL_SHA_KEYS = {"dualuse-fast": "shipped_model_data_sha256", "dualuse-accurate": "accurate_model_data_sha256"}


def _scored_on(res: dict[str, Any], name: str) -> dict[str, Any]:
    """The data record of the run whose row for ``name`` is shown: the latest merged run holding it, else the main run."""
    for m in reversed(res.get("merged_runs", [])):
        if name in m["systems"]:
            return m
    return res["data"]


def _summary(r: dict[str, Any]) -> str:
    s = r["score"]
    h = s["eval"]["heldout"]
    return (f"held-out macro-F1 {h['macro_f1']:.3f}, accuracy {h['accuracy']:.3f}, "
            f"{s['throughput']['median']['system']:,.0f} lines/s, peak RSS {s['peak_rss_mb_score']:.0f} MB")


def _ratios(results: dict[str, Any]) -> None:
    """Throughput relative to the fastest system: each system's rate is first divided by the static
    encoder's rate measured in the same process, interleaved (so load from other jobs cancels out)."""
    norm = {n: r["score"]["throughput"]["vs_static_encoder"] for n, r in results["systems"].items()
            if "throughput" in r.get("score", {})}
    if not norm:
        return
    fastest = max(norm, key=norm.get)  # type: ignore[arg-type]
    results["fastest_system"] = fastest
    for n, v in norm.items():
        results["systems"][n]["score"]["throughput"]["vs_fastest"] = v / norm[fastest]


# -- README -------------------------------------------------------------------------------------
def _ok(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in results["systems"].items() if "eval" in r.get("score", {})}


def _mb(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def render(res: dict[str, Any]) -> str:
    ok = _ok(res)
    d = res["data"]
    sets = list(d["realworld"])
    lines = [
        "## Side by side (issue 4) — `python benchmarks/compare.py`",
        "",
        f"Command: `{res['command']}` (also `make bench`). {env_line(res['environment'])}. "
        f"Wall time {res['wall_seconds'] / 60:.0f} min.",
        *[f"**Re-run later and merged in:** {', '.join(f'`{x}`' for x in m['systems'])} — `{m['command']}`, "
          f"{env_line(m['environment'])}, {m['wall_seconds'] / 60:.0f} min, same training data "
          f"(sha256 `{m['data_sha256'][:12]}…`)" + ("" if m["data_sha256"] == res["data"]["data_sha256"] else " **— differs from the main run's**")
          + "." for m in res.get("merged_runs", [])],
        "",
        f"Training data: {d['n_train_used']:,} lines (curated training split + nomenclature texts at weight 0.3), "
        f"data sha256 `{d['data_sha256'][:12]}…`. Held-out: {d['n_heldout_used']} curated lines never seen in training "
        f"({', '.join(f'{k} {v}' for k, v in sorted(d['heldout_by_lang'].items()))}). Real-world (evaluation only, labelled "
        "through the taxonomy's HS prefixes): "
        + ", ".join(f"{k} {v['n']} rows ({v['n_risk']} in a risk category)" for k, v in d["realworld"].items()) + ".",
        "",
        "### Quality on the held-out curated lines (text only; `hs-lookup` gets the declared code)",
        "",
        "| system | macro-F1 | accuracy | EN acc | RU acc | ZH acc | FPR none | ECE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, r in ok.items():
        h = r["score"]["eval"]["heldout"]
        la = h.get("accuracy_by_lang", {})
        lines.append(f"| {n} | {fmt(h['macro_f1'])} | {fmt(h['accuracy'])} | {fmt(la.get('en'))} | {fmt(la.get('ru'))} | "
                     f"{fmt(la.get('zh'))} | {pct(h['risk']['fpr_none'])} | {fmt(h.get('ece'))} |")
    with_codes = {n: r["score"]["eval"]["heldout_with_codes"] for n, r in ok.items() if "heldout_with_codes" in r["score"]["eval"]}
    if with_codes:
        lines += ["", f"Systems that take a declared code, given the held-out lines' own codes as evidence "
                  f"({pct(d['heldout_code_share'])} of the lines have one):", "",
                  "| system | macro-F1 | accuracy | FPR none | ECE |", "|---|---|---|---|---|"]
        for n, h in with_codes.items():
            lines.append(f"| {n} | {fmt(h['macro_f1'])} | {fmt(h['accuracy'])} | {pct(h['risk']['fpr_none'])} | {fmt(h.get('ece'))} |")
    if sets:
        head = "| system | " + " | ".join(f"{s} macro-F1 | {s} acc | {s} FPR none | {s} risk P | {s} risk R" for s in sets) + " |"
        lines += ["", "### Real-world sets (text only; risk P/R = precision/recall of \"is a risk category\")", "",
                  head, "|---|" + "---|" * (5 * len(sets))]
        rows = [(n, r["score"]["eval"]) for n, r in ok.items()]
        if "hs-lookup" in ok:
            rows.append(("hs-lookup given the gold code (upper bound)",
                         {s: ok["hs-lookup"]["score"]["eval"].get(f"{s}_gold_code") for s in sets}))
        for n, ev in rows:
            cells = []
            for s in sets:
                e = ev.get(s)
                cells += (["–"] * 5 if not e else
                          [fmt(e["macro_f1"]), fmt(e["accuracy"]), pct(e["risk"]["fpr_none"]),
                           fmt(e["risk"]["precision"], 2), fmt(e["risk"]["recall"], 2)])
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        shipped = [(n, r["score"]["eval"]) for n, r in ok.items() if n in ("dualuse-fast", "dualuse-accurate", "rules")]
        if shipped:
            lines += ["", "Issue 3's real-world targets with 95 % Wilson intervals (`dualuse.metrics.proportion_interval`): "
                      "the sets hold few risk rows, so one row moves recall by 3–4 points and an interval that "
                      "contains the target means the set cannot tell the system from one exactly at the target.", "",
                      interval_table(shipped, sets)]
    lines += ["", "### Cost", "",
              f"Throughput on {res['settings']['lines']:,} distinct lines (median of {res['settings']['repeats']} runs in one "
              f"warm process; systems on MiniLM on {res['settings'].get('minilm_lines', res['settings']['lines']):,} lines, "
              "since each of their runs, and each run of the encoder beside them, takes minutes on this machine — the rate "
              "is per line and batches are of 32–64 either way). *× static enc* / *× MiniLM enc*: the system's rate over the encoder alone, timed interleaved "
              "in the same process (the gap is the cost of everything but the encoder). *× fastest*: against the fastest "
              f"system (`{res.get('fastest_system', '–')}`), each rate first normalised by the static encoder timed beside it, "
              "so that load from other jobs cancels. Peak RSS = `resource.getrusage(RUSAGE_SELF).ru_maxrss` of a child "
              "process per system: *train* = fitting it, *score* = loading it, scoring the held-out and real-world "
              "lines and the first throughput run. Size = files it needs to score (model, encoder, taxonomy).", "",
              "| system | training s | lines/s | × fastest | × static enc | × MiniLM enc | peak RSS train MB | peak RSS score MB | size MB |",
              "|---|---|---|---|---|---|---|---|---|"]
    for n, r in ok.items():
        s, t = r["score"], r.get("train", {})
        tp = s["throughput"]
        fit = t.get("fit_seconds")
        fit_s = ("–" if fit is None else fmt(fit, 0)) + (" (manifest)" if t.get("from_manifest") and fit is not None else "")
        lines.append(
            f"| {n} | {fit_s} | {tp['median']['system']:,.0f} | {fmt(tp.get('vs_fastest'), 4)} | "
            f"{fmt(tp['vs_static_encoder'], 3)} | {fmt(tp.get('vs_minilm_encoder'), 2)} | {_mb(t.get('peak_rss_mb_train'))} | "
            f"{_mb(s['peak_rss_mb_score'])} | {s['size_bytes'] / 2**20:,.1f} |")
    enc_rates = {k: statistics.median([r["score"]["throughput"]["median"][k] for r in ok.values()
                                       if k in r["score"]["throughput"]["median"]])
                 for k in ("static_encoder", "minilm_encoder") if any(k in r["score"]["throughput"]["median"] for r in ok.values())}
    loads = [x for r in ok.values() for x in (r["score"]["loadavg_start"][0], r["score"]["loadavg_end"][0])]
    lines += ["", "Encoders alone (median over the scoring processes): "
              + ", ".join(f"{k.replace('_', ' ')} {v:,.0f} lines/s" for k, v in enc_rates.items())
              + (f". 1-min load average during scoring: {min(loads):.1f}–{max(loads):.1f} on {res['environment']['cores']} cores "
                 "(other jobs were running): absolute rates are noisy, the side-by-side ratios less so." if loads else ".")]
    lines += ["", "### Per-category F1", ""] + _per_category(ok, "heldout", "held-out")
    for s in sets:
        lines += [""] + _per_category(ok, s, f"{s} (categories with ≥ 3 rows)")
    lines += ["", "### Systems", ""]
    for n, r in res["systems"].items():
        lines.append(f"- **{n}**: {r['note']}" + (f" — *skipped: {r['skipped']}*" if "skipped" in r else "")
                     + (f" — *{'stopped' if r.get('train', {}).get('timeout') or r.get('score', {}).get('timeout') else 'failed'}: "
                        f"{r.get('train', {}).get('error') or r.get('score', {}).get('error')}*"
                        if n not in ok and "skipped" not in r else ""))
    lines += _notes(res)
    return "\n".join(x for x in lines if x is not None)


def _per_category(ok: dict[str, dict[str, Any]], key: str, title: str) -> list[str]:
    names = [n for n in ok if key in ok[n]["score"]["eval"]]
    if not names:
        return []
    cats = sorted({c for n in names for c in ok[n]["score"]["eval"][key]["per_category_f1"]})
    out = [f"{title}:", "", "| category | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for c in cats:
        out.append(f"| {c} | " + " | ".join(fmt(ok[n]["score"]["eval"][key]["per_category_f1"].get(c), 2) for n in names) + " |")
    return out


def _notes(res: dict[str, Any]) -> list[str]:
    out = ["", "### Notes", ""]
    d = res["data"]
    sf = res["systems"].get("setfit", {}).get("train", {}).get("info")
    if sf:
        full, cur = sf["default_recipe"]["all_training_data"], sf["default_recipe"]["curated_lines"]
        out.append(
            f"- **SetFit's default recipe cannot run here.** Its pair sampler (`oversampling`, one epoch, batch 16) draws "
            f"2 × max(positive, negative) of all n(n+1)/2 pairs: on the {full['n_texts']:,} training lines that is "
            f"{full['pairs']:,} pairs = {full['steps']:,} steps, and building the index alone needs "
            f"{full['sampler_index_gib']:,.1f} GiB (the machine has {res['environment']['ram_gib']} GiB). Even on the "
            f"{cur['n_texts']:,} curated training lines it is {cur['steps']:,} steps. One step (16 pairs, MiniLM forward + "
            f"backward on 2 cores under load) took {sf['seconds_per_step']:.2f} s here, so those would take "
            f"{full['hours_at_measured_step_time']:,.0f} h and {cur['hours_at_measured_step_time']:,.1f} h. The row above is "
            f"a **reduced budget**: {sf['body_steps']} steps on pairs of the {sf['n_curated']:,} curated training lines "
            f"({sf['body_seconds'] / 60:.1f} min), then SetFit's default head (LogisticRegression) on the embeddings of those "
            f"lines ({sf['head_seconds'] / 60:.1f} min, nearly all of it MiniLM encoding). Its figures are those of a "
            "barely fine-tuned MiniLM, not of SetFit at its best.")
    acc = res["systems"].get("dualuse-accurate-retrained", {}).get("train", {})
    if "error" in acc:
        out.append(f"- **`dualuse-accurate-retrained` did not finish training** ({acc['error']}): it encodes every "
                   f"training line ({d['n_train_used']:,}) with MiniLM before four logistic-regression fits.")
    if acc.get("fit_seconds"):
        out.append(f"- `dualuse-accurate-retrained` (the shipped accurate recipe, trained in this run) took "
                   f"{acc['fit_seconds'] / 60:.1f} min to train, most of it MiniLM encoding the training lines.")
    shipped = res["systems"].get("dualuse-accurate", {})
    fit = shipped.get("train", {}).get("fit_seconds")
    if fit:
        out.append(f"- `dualuse-accurate` is the shipped `models/accurate` (`make model-accurate`); its training time "
                   f"({fit / 60:.0f} min) is the one its manifest records. Most of it is MiniLM encoding the "
                   f"{d['n_train_used']:,} training lines (the long nomenclature texts first) on 2 cores.")
    for name, key in _MODEL_SHA_KEYS.items():
        run = _scored_on(res, name)
        model_sha = run.get(key) or d.get(key)
        if name in res["systems"] and model_sha and model_sha != run["data_sha256"]:
            out.append(f"- **`{name}` was trained on an earlier version of the curated data** (its manifest's data "
                       f"sha256 `{model_sha[:12]}…` ≠ `{run['data_sha256'][:12]}…`), so some of today's held-out lines may "
                       "have been in its training split and its held-out figures may be optimistic; the `-retrained` "
                       "system of the same configuration, trained in this run on this split, is the clean comparison.")
    shas = {r[k]["data_sha256"] for r in res["systems"].values() for k in ("train", "score") if r.get(k, {}).get("data_sha256")}
    if len(shas) > 1:
        out.append(f"- **The training data changed during the run** ({len(shas)} different data hashes across the child "
                   "processes; the curated files were being edited): systems were not all trained and scored on exactly "
                   "the same lines. See `data_sha256` per system in `results/compare.json`.")
    out += [f"- {n}" for n in res.get("notes", [])]
    out += [
        "- `hs-lookup` given the gold code scores 1.0 on the real-world sets by construction (their labels *are* the "
        "gold code through the taxonomy): it is the ceiling of a code-only screen when every declared code is right. "
        "Given no code it says `none` for every line (recall 0).",
        "- ECE (15 bins, top label) is shown for systems with probabilities: dualuse's calibrated confidence, the logistic "
        "regressions' `predict_proba` (uncalibrated), zero-shot's softmax of similarities over a fitted temperature.",
        "- dualuse rows are the whole screener (model + rules fallback below p = 0.5 + rules override), scored through "
        "`Screener.predict`, which returns `Prediction` objects; the others return a label and a probability. The "
        "shipped `dualuse-fast` / `dualuse-accurate` rows load the models with `dualuse.load`, so with the heading prior "
        "(`dualuse/heading_prior.py`); the `-retrained` rows are the model and rules alone.",
    ]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
