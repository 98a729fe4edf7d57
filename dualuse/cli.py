"""The ``dualuse`` command line: ``score``, ``report``, ``classify``, ``categories``, ``train``.

A thin layer over the library: it parses arguments, configures logging (the only place that does),
and turns every :class:`~dualuse.errors.DualUseError` into one line ``dualuse: error: …`` on stderr
with exit code 2 (130 when interrupted). ``-v`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import textwrap
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import DualUseError

if TYPE_CHECKING:
    from .predict import Screener
    from .prediction import Prediction

__all__ = ["main", "build_parser"]

logger = logging.getLogger(__name__)

PROG = "dualuse"
EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 2, 130, 141
FORMAT_CHOICES = ("csv", "tsv", "jsonl", "parquet")


# -- logging --------------------------------------------------------------------------------------
class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (so redirected or captured stderr works)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it; ignore
        pass


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    pkg = logging.getLogger("dualuse")
    for h in [h for h in pkg.handlers if isinstance(h, _StderrHandler)]:
        pkg.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    pkg.addHandler(handler)
    pkg.setLevel(level)
    pkg.propagate = False


# -- parser ---------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="more log messages (-vv for debug) and tracebacks on errors")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="only errors: no summary, no progress bar")
    return common


def _model_options() -> argparse.ArgumentParser:
    opts = argparse.ArgumentParser(add_help=False)
    group = opts.add_mutually_exclusive_group()
    group.add_argument("--model", metavar="PATH",
                       help="model folder, or a shipped model's name: 'default' (static encoder, fast) or 'accurate' "
                            "(MiniLM, ~20x slower on new lines) (default: $DUALUSE_MODEL, else models/default)")
    group.add_argument("--rules-only", action="store_true", help="use the rules alone, no trained model")
    opts.add_argument("--no-heading-prior", dest="heading_prior", action="store_false",
                      help="do not multiply the model's probabilities by the evidence of the HS heading the text "
                           "reads as (models/hs_heads; on by default)")
    return opts


def _add_score(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "score", parents=parents, help="score a table of customs lines",
        description="Score every row of INPUT and write it with the dualuse_* columns appended. "
        "Formats by extension: .csv .tsv .jsonl .ndjson (each also .gz) .parquet; '-' is stdin/stdout.",
    )
    p.add_argument("input", metavar="INPUT", help="input table, or '-' for stdin")
    p.add_argument("-o", "--output", metavar="OUTPUT",
                   help="output table, or '-' for stdout (default: INPUT's name + .scored, beside it)")
    p.add_argument("--text-col", metavar="NAME", help="description column (default: detected by name)")
    p.add_argument("--hs-col", metavar="NAME", help="declared HS code column (default: detected; optional)")
    p.add_argument("--format", choices=FORMAT_CHOICES, help="input format (default: by extension; csv for stdin)")
    p.add_argument("--output-format", choices=FORMAT_CHOICES,
                   help="output format (default: by extension; the input's format for stdout)")
    p.add_argument("--encoding", default="utf-8", metavar="ENC", help="input text encoding (default: utf-8, BOM accepted)")
    p.add_argument("--chunksize", type=_positive_int, default=50_000, metavar="N",
                   help="rows per chunk; bounds memory (default: 50000)")
    p.add_argument("--summary-json", metavar="PATH", help="also write the summary as JSON to PATH")
    p.add_argument("--suggest-hs", action="store_true",
                   help="also fill dualuse_suggested_hs/_text: the top-3 HS 2022 subheadings (MiniLM on every new line: slow)")
    p.add_argument("--rejects", metavar="PATH",
                   help="where unreadable rows go, with line number and reason (default: OUTPUT.rejects.csv, "
                        "created only when there are any)")
    p.add_argument("--strict", action="store_true", help="stop with an error at the first unreadable row instead")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run into the same OUTPUT (same input and options)")
    p.add_argument("--dedup", type=_non_negative_int, default=None, metavar="N",
                   help="remember the predictions of the last N distinct lines across chunks (default: 200000; 0: off)")
    p.add_argument("--cache", metavar="DIR", help="keep the sentence embeddings in DIR for the next run (SQLite)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                       help="score new lines in N worker processes (default: 1; see README for when it helps)")
    group.add_argument("--dask", metavar="ADDRESS",
                       help="score on the Dask cluster whose scheduler is at ADDRESS (pip install dualuse[dask])")
    p.set_defaults(handler=_cmd_score)


def _add_report(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", parents=parents, help="an HTML report of a scored table",
                       description="Summarise a table written by `dualuse score` in one self-contained HTML page.")
    p.add_argument("input", metavar="SCORED_FILE", help="a table written by dualuse score")
    p.add_argument("-o", "--output", metavar="OUTPUT", help="HTML file, '-' for stdout (default: SCORED_FILE + .html)")
    p.add_argument("--format", choices=FORMAT_CHOICES, help="input format (default: by extension)")
    p.add_argument("--text-col", metavar="NAME", help="description column (default: detected)")
    p.add_argument("--hs-col", metavar="NAME", help="declared HS code column (default: detected)")
    p.add_argument("--title", help="page title")
    p.set_defaults(handler=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    output = args.output or f"{args.input}.html"
    write_report(args.input, output, fmt=args.format, text_col=args.text_col, hs_col=args.hs_col, title=args.title)
    if not args.quiet and output != "-":
        print(f"wrote the report to {output}", file=sys.stderr)
    return EXIT_OK


def _add_classify(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("classify", parents=parents, help="classify one line and explain why",
                       description="Classify one customs line and show the evidence.")
    p.add_argument("text", metavar="TEXT", help="the goods description")
    p.add_argument("--hs", metavar="CODE", help="the declared HS code, checked against the text")
    p.add_argument("--json", action="store_true", help="print the prediction as JSON")
    p.set_defaults(handler=_cmd_classify)


def _add_categories(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("categories", parents=parents, help="list the taxonomy",
                       description="List the categories: id, name, risk, HS prefixes, definition.")
    p.add_argument("--json", action="store_true", help="print the categories as JSON")
    p.set_defaults(handler=_cmd_categories)


def _add_train(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train", parents=parents, help="retrain the model (deterministic)",
                       description="Fit the model on the training data, evaluate it on the held-out lines, save it.")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="model folder to write (default: models/default of this checkout for --encoder static, "
                        "models/accurate for --encoder minilm)")
    p.add_argument("--data", metavar="DIR", help="training data folder (default: models/training)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default: 0)")
    p.add_argument("--encoder", choices=("static", "minilm"), default="static",
                   help="sentence encoder: static (fast, the shipped models/default) or minilm "
                        "(all-MiniLM-L6-v2, ~50x slower; models/accurate) (default: static)")
    p.add_argument("--json", action="store_true", help="print every metric as JSON")
    p.set_defaults(handler=_cmd_train)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``dualuse`` command."""
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog=PROG, parents=[common],
        description="Find dual-use and sanctions-risk goods in customs-line descriptions.",
        epilog="Exit codes: 0 success, 2 error (bad input or usage), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    model = _model_options()
    _add_score(sub, [common, model])
    _add_report(sub, [common])
    _add_classify(sub, [common, model])
    _add_categories(sub, [common])
    _add_train(sub, [common])
    return parser


# -- commands -------------------------------------------------------------------------------------
def _screener(args: argparse.Namespace) -> Screener:
    from .api import load

    screener = load(args.model, rules_only=args.rules_only, heading_prior=getattr(args, "heading_prior", True))
    logger.info("screener: %s", screener.describe())
    return screener


def _precheck_score(args: argparse.Namespace, output: str) -> None:
    """Fail on a bad input or output before a model is loaded."""
    from .io import iter_chunks, resolve_format

    iter_chunks(args.input, args.chunksize, args.format, encoding=args.encoding)
    resolve_format(output, args.output_format)


def _cmd_score(args: argparse.Namespace) -> int:
    from .batch import DEFAULT_DEDUP, score_file
    from .io import scored_path
    from .parallel import ModelSpec

    output = args.output
    if output is None:
        output = "-" if args.input == "-" else str(scored_path(args.input, args.output_format))
    _precheck_score(args, output)
    suggest = bool(getattr(args, "suggest_hs", False))
    screener = _screener(args)
    screener.suggest_hs = suggest  # hs_fit is computed either way
    client = _dask_client(args.dask) if args.dask else None
    try:
        summary = score_file(
            args.input, output, text_col=args.text_col, hs_col=args.hs_col, screener=screener,
            chunksize=args.chunksize, fmt_in=args.format, fmt_out=args.output_format, encoding=args.encoding,
            progress=False if args.quiet else (True if args.verbose else None),
            strict=args.strict, rejects=args.rejects, resume=args.resume,
            dedup=DEFAULT_DEDUP if args.dedup is None else args.dedup, cache_dir=args.cache, jobs=args.jobs,
            spec=ModelSpec(args.model, args.rules_only, suggest_hs=suggest,
                           heading_prior=getattr(args, "heading_prior", True)), dask_client=client,
        )
    finally:
        if client is not None:
            client.close()
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    if not args.quiet:
        where = "stdout" if output == "-" else output
        print(f"{summary.to_text()}\nwrote {summary.rows:,} rows to {where}", file=sys.stderr)
    return EXIT_OK


def _dask_client(address: str) -> Any:
    try:
        from distributed import Client
    except ImportError:
        raise DualUseError("--dask needs the Dask extra: pip install 'dualuse[dask]'") from None
    try:
        return Client(address, timeout="30s")
    except OSError as exc:
        raise DualUseError(f"--dask {address}: cannot reach the Dask scheduler ({exc})") from None


def _cmd_classify(args: argparse.Namespace) -> int:
    screener = _screener(args)
    screener.suggest_hs = True
    p = screener.predict_one(args.text, args.hs)
    if args.json:
        print(json.dumps(p.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(explain(p, args.text, screener))
    return EXIT_OK


def explain(p: Prediction, text: str, screener: Screener) -> str:
    """The human-readable explanation printed by ``dualuse classify``."""
    from .hs import parse_hs

    tax = screener.taxonomy
    rows = [
        ("category", f"{p.category} — {tax[p.category].name} (risk: {p.risk})"),
        ("confidence", f"{p.confidence:.2f}"),
        ("source", f"{p.source.value} ({screener.describe()})"),
        ("top 3", "  ".join(f"{c} {s:.2f}" for c, s in p.top)),
    ]
    rows += [("evidence" if i == 0 else "", e) for i, e in enumerate(p.evidence or ("none",))]
    if p.declared_hs_raw is None:
        rows.append(("declared HS", "none given (--hs CODE to check one)"))
    else:
        code = parse_hs(p.declared_hs_raw).formatted() or "not a valid HS code"
        rows += [
            ("declared HS", f"{p.declared_hs_raw!r} -> {code}" + (f" ({p.declared_hs_edition})" if p.declared_hs_edition else "")),
            ("HS category", p.declared_hs_category or "-"),
            ("HS fit", _fit_text(p, screener)),
            ("HS mismatch", "yes: the code contradicts the text" if p.hs_mismatch else "no"),
            ("CHPL tier", p.chpl_tier or "not on the CHPL"),
        ]
    for label, sugg in (("suggested HS", p.suggested_hs), ("HS headings", p.suggested_hs4)):
        rows += [(label if i == 0 else "", f"{_dotted(c)} {_short(t)} ({s:.2f})") for i, (c, t, s) in enumerate(sugg)]
    rows.append(("flags", ", ".join(p.flags) or "none"))
    return "\n".join([text] + [f"  {k:<12} {v}" for k, v in rows])


def _fit_text(p: Prediction, screener: Screener) -> str:
    if p.hs_fit is None:
        return "- (needs a code of at least 4 digits in HS 2022)"
    model = screener.hs_fit_calibration()
    edition = f", read as HS 2022 ({p.declared_hs_edition} code mapped)" if p.declared_hs_edition != "HS2022" else ""
    below = f" (< {model.threshold:.3f}: does not fit)" if p.hs_fit < model.threshold else ""
    return f"{p.hs_fit:.3f}{below}{edition}"


def _dotted(code: str) -> str:
    return f"{code[:4]}.{code[4:]}" if len(code) == 6 else code


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _cmd_categories(args: argparse.Namespace) -> int:
    from .taxonomy import load_taxonomy

    tax = load_taxonomy()
    cats = list(tax.categories.values())
    if args.json:
        data = [{"id": c.id, "name": c.name, "risk": c.risk, "hs_prefixes": list(c.hs_prefixes),
                 "definition": c.definition} for c in cats]
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"taxonomy {tax.version}: {len(cats)} categories")
    for c in cats:
        print(f"\n{c.id} — {c.name} (risk: {c.risk})")
        print(f"  HS: {_prefixes(c.hs_prefixes)}")
        if c.definition:
            print(textwrap.fill(c.definition, width=100, initial_indent="  ", subsequent_indent="  "))
    return EXIT_OK


def _prefixes(prefixes: Sequence[str]) -> str:
    """``8456, 8457, …, 8463`` -> ``8456-8463`` (consecutive same-length prefixes are merged)."""
    if not prefixes:
        return "— (text only)"
    out: list[list[str]] = []
    for p in prefixes:
        last = out[-1] if out else None
        if last and len(last[-1]) == len(p) and int(p) == int(last[-1]) + 1:
            last.append(p)
        else:
            out.append([p])
    return ", ".join(run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in out)


def _cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .train import TrainConfig, train_model
    from .training import DEFAULT_DIR

    config = replace(TrainConfig(), random_state=args.seed, encoder=args.encoder,
                     encoder_path=TrainConfig.encoder_path if args.encoder == "static" else None)
    data_dir = Path(args.data) if args.data else DEFAULT_DIR
    if args.out is None:
        from .api import SHIPPED_MODELS

        args.out = str(SHIPPED_MODELS / ("default" if args.encoder == "static" else "accurate"))
    result = train_model(args.out, config, data_dir=data_dir)
    metrics = result["metrics"]
    if args.json:
        print(json.dumps(_json_safe(metrics), indent=2, ensure_ascii=False))
    else:
        print(_metrics_text(metrics))
        print(f"saved the model to {args.out}")
    return EXIT_OK


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return _json_safe(value.item())
    return value


def _fmt(x: object) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "-"


def _metrics_text(metrics: dict[str, Any]) -> str:
    """The held-out figures of ``train_model`` as a small table."""
    names = {
        "heldout_model_only": "model only",
        "heldout_screener_text_only": "screener, text only",
        "heldout_screener_with_declared_hs": "screener + declared HS",
    }
    lines = [f"{'held-out evaluation':<26} {'n':>5} {'macro-F1':>9} {'accuracy':>9} {'ECE':>7} "
             f"{'risk P':>7} {'risk R':>7}"]
    for key, label in names.items():
        m = metrics.get(key)
        if not isinstance(m, dict):
            continue
        risk = m.get("risk") if isinstance(m.get("risk"), dict) else {}
        lines.append(f"{label:<26} {m.get('n', '-'):>5} {_fmt(m.get('macro_f1')):>9} {_fmt(m.get('accuracy')):>9} "
                     f"{_fmt(m.get('ece')):>7} {_fmt(risk.get('precision')):>7} {_fmt(risk.get('recall')):>7}")
    lines.append(f"out-of-fold ECE {_fmt(metrics.get('oof_ece'))}, temperature {_fmt(metrics.get('temperature'))}")
    return "\n".join(lines)


# -- entry point ----------------------------------------------------------------------------------
def _error_message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, DualUseError) and exc.strerror:
        msg = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        msg = str(exc) or type(exc).__name__
    return re.sub(r"\s*\n\s*", " ", msg).strip()


def _silence_stdout() -> None:
    """After a closed pipe (``dualuse score x.csv -o - | head``), stop Python complaining at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace, verbose: int) -> int:
    try:
        return handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (DualUseError, OSError) as exc:
        if verbose:
            traceback.print_exc(file=sys.stderr)
        print(f"{PROG}: error: {_error_message(exc)}", file=sys.stderr)
        return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dualuse`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_ERROR)
    verbose, quiet = getattr(args, "verbose", 0), getattr(args, "quiet", False)
    args.verbose, args.quiet = verbose, quiet
    _configure_logging(verbose, quiet)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: a command is required (score, report, classify, categories, train)", file=sys.stderr)
        return EXIT_ERROR
    return _run(handler, args, verbose)
