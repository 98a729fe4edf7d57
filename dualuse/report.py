"""``dualuse report SCORED_FILE -o report.html``: one self-contained HTML page for analysts.

The scored table is read chunk by chunk (any size) and summarised: totals; lines and value per
category and CHPL tier; declared-HS mismatches with examples; top shippers and consignees; a monthly
series. Sections whose columns are missing (no value, party or date column) say so. Charts are
matplotlib PNGs embedded as base64, so the page is one file that opens offline.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .errors import ColumnNotFoundError
from .io import _find, column_list, iter_chunks, resolve_columns

__all__ = ["build_report", "write_report", "VALUE_COLUMNS", "PARTY_COLUMNS", "DATE_COLUMNS"]

VALUE_COLUMNS = ("value_usd", "value", "amount", "usd", "invoice_value", "customs_value", "fob_value", "cif_value",
                 "стоимость", "金额")
PARTY_COLUMNS = ("exporter", "shipper", "seller", "importer", "consignee", "buyer",
                 "отправитель", "получатель", "发货人", "收货人")
DATE_COLUMNS = ("date", "declaration_date", "shipment_date", "month", "period", "дата", "日期")
_EXAMPLES = 25
_TOP = 15


@dataclass
class _Totals:
    rows: int = 0
    value: float = 0.0
    lines: Counter[str] = field(default_factory=Counter)
    values: Counter[str] = field(default_factory=Counter)
    tier_lines: Counter[str] = field(default_factory=Counter)
    tier_values: Counter[str] = field(default_factory=Counter)
    mismatches: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    parties: dict[str, tuple[Counter[str], Counter[str], Counter[str]]] = field(default_factory=dict)
    months: Counter[str] = field(default_factory=Counter)
    risk_months: Counter[str] = field(default_factory=Counter)


def _numbers(series: pd.Series) -> pd.Series:
    text = series.astype(str).str.replace(r"[\s,]", "", regex=True)
    return pd.to_numeric(text, errors="coerce").fillna(0.0)


def _truthy(series: pd.Series) -> pd.Series:
    return series.astype(str).str.strip().str.lower().isin(("true", "1"))


def _add(t: _Totals, df: pd.DataFrame, cols: dict[str, Any]) -> None:
    t.rows += len(df)
    cat = df["dualuse_category"].astype(str)
    tier = df["dualuse_chpl_tier"].astype(str).replace({"nan": "", "None": ""})
    risk = cat != "none"
    value = _numbers(df[cols["value"]]) if cols["value"] is not None else None
    t.lines.update(cat.value_counts().to_dict())
    t.tier_lines.update(tier[tier != ""].value_counts().to_dict())
    if value is not None:
        t.value += float(value.sum())
        t.values.update(value.groupby(cat).sum().to_dict())
        t.tier_values.update(value[tier != ""].groupby(tier[tier != ""]).sum().to_dict())
    mism = _truthy(df["dualuse_hs_mismatch"])
    t.mismatches += int(mism.sum())
    if len(t.examples) < _EXAMPLES and mism.any():
        show = [c for c in (cols["text"], cols["hs"], "dualuse_declared_hs_category", "dualuse_category",
                            "dualuse_confidence", *cols["parties"][:1]) if c is not None]
        t.examples += df.loc[mism, show].head(_EXAMPLES - len(t.examples)).astype(str).to_dict("records")
    for col in cols["parties"]:
        lines, risk_lines, vals = t.parties.setdefault(str(col), (Counter(), Counter(), Counter()))
        names = df[col].astype(str)
        lines.update(names.value_counts().to_dict())
        risk_lines.update(names[risk].value_counts().to_dict())
        if value is not None:
            vals.update(value[risk].groupby(names[risk]).sum().to_dict())
    if cols["date"] is not None:
        month = pd.to_datetime(df[cols["date"]].astype(str), errors="coerce", format="mixed").dt.strftime("%Y-%m")
        t.months.update(month.dropna().value_counts().to_dict())
        t.risk_months.update(month[risk].dropna().value_counts().to_dict())


def _columns(columns: list[Any], text_col: Any, hs_col: Any) -> dict[str, Any]:
    missing = [c for c in ("dualuse_category", "dualuse_chpl_tier", "dualuse_hs_mismatch") if c not in columns]
    if missing:
        raise ColumnNotFoundError(f"not a scored file: columns {missing} are missing (run `dualuse score` first); "
                                  f"the columns are: {column_list(columns)}")
    plain = [c for c in columns if not str(c).startswith("dualuse_")]
    try:
        text, hs = resolve_columns(plain, text_col, hs_col)
    except ColumnNotFoundError:
        text, hs = None, None
    parties = [c for name in PARTY_COLUMNS if (c := _find(plain, [name])) is not None]
    return {"text": text, "hs": hs, "value": _find(plain, VALUE_COLUMNS), "date": _find(plain, DATE_COLUMNS),
            "parties": list(dict.fromkeys(parties))}


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _bar(labels: list[str], values: list[float], title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.3 * len(labels) + 1))
    ax.barh(labels[::-1], values[::-1], color="#b03a2e")
    ax.set_title(title)
    return _png(fig)


def _line(x: list[str], series: dict[str, list[int]], title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3))
    for name, ys in series.items():
        ax.plot(x, ys, marker="o", label=name)
    ax.set_title(title)
    ax.legend()
    ax.tick_params(axis="x", rotation=45)
    return _png(fig)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f} %" if total else "–"


def build_report(path: str | os.PathLike[str], *, fmt: str | None = None, text_col: Any = None, hs_col: Any = None,
                 title: str | None = None, chunksize: int = 100_000) -> str:
    """The HTML page for the scored table at ``path``."""
    t = _Totals()
    cols: dict[str, Any] | None = None
    for chunk in iter_chunks(path, chunksize, fmt):
        if cols is None:
            cols = _columns(list(chunk.columns), text_col, hs_col)
        _add(t, chunk, cols)
    assert cols is not None
    has_value = cols["value"] is not None
    risk = t.rows - t.lines.get("none", 0)
    title = title or f"dualuse report — {os.path.basename(str(path))}"
    parts = [f"<h1>{html.escape(title)}</h1>", '<section id="totals"><h2>Totals</h2>']
    totals = [["lines", t.rows], ["lines in a risk category", f"{risk:,} ({_pct(risk, t.rows)})"],
              ["declared HS code contradicts the text", f"{t.mismatches:,} ({_pct(t.mismatches, t.rows)})"],
              ["lines with a CHPL code", f"{sum(t.tier_lines.values()):,}"]]
    if has_value:
        risk_value = t.value - t.values.get("none", 0.0)
        totals += [[f"value ({cols['value']})", t.value], ["value in risk categories", risk_value]]
    parts += [_table(["", ""], totals), "</section>"]
    cats = [c for c, _ in t.lines.most_common()]
    parts.append('<section id="categories"><h2>Lines and value per category</h2>')
    parts.append(_table(["category", "lines", "share"] + (["value"] if has_value else []),
                        [[c, t.lines[c], _pct(t.lines[c], t.rows)] + ([t.values.get(c, 0.0)] if has_value else [])
                         for c in cats]))
    risky = [c for c in cats if c != "none"]
    if risky:
        parts.append(_bar(risky, [t.lines[c] for c in risky], "lines per risk category"))
        if has_value:
            parts.append(_bar(risky, [t.values.get(c, 0.0) for c in risky], f"{cols['value']} per risk category"))
    parts.append("</section>")
    tiers = sorted(t.tier_lines)
    parts.append('<section id="chpl"><h2>Lines and value per CHPL tier</h2>')
    if tiers:
        parts.append(_table(["CHPL tier", "lines"] + (["value"] if has_value else []),
                            [[k, t.tier_lines[k]] + ([t.tier_values.get(k, 0.0)] if has_value else []) for k in tiers]))
        parts.append(_bar(tiers, [t.tier_lines[k] for k in tiers], "lines per CHPL tier"))
    else:
        parts.append("<p>No declared code is on the Common High Priority List.</p>")
    parts.append("</section>")
    parts.append(f'<section id="mismatches"><h2>Declared-HS mismatches ({t.mismatches:,})</h2>')
    if t.examples:
        header = list(t.examples[0])
        parts.append(f"<p>The first {len(t.examples)} lines whose declared code contradicts the text:</p>")
        parts.append(_table(header, [[r[h] for h in header] for r in t.examples]))
    else:
        parts.append("<p>No mismatch.</p>")
    parts.append("</section>")
    parts.append('<section id="parties"><h2>Top shippers and consignees</h2>')
    if not t.parties:
        parts.append("<p>No exporter, importer, shipper or consignee column.</p>")
    for col, (lines, risk_lines, vals) in t.parties.items():
        top = [n for n, _ in risk_lines.most_common(_TOP)]
        parts.append(f"<h3>{html.escape(col)}: most lines in risk categories</h3>")
        parts.append(_table([col, "risk lines", "all lines"] + (["risk value"] if has_value else []),
                            [[n, risk_lines[n], lines[n]] + ([vals.get(n, 0.0)] if has_value else []) for n in top]))
    parts.append("</section>")
    parts.append('<section id="monthly"><h2>Monthly series</h2>')
    if t.months:
        months = sorted(t.months)
        parts.append(_line(months, {"all lines": [t.months[m] for m in months],
                                    "risk lines": [t.risk_months.get(m, 0) for m in months]}, "lines per month"))
        parts.append(_table(["month", "lines", "risk lines"], [[m, t.months[m], t.risk_months.get(m, 0)] for m in months]))
    else:
        parts.append("<p>No date column.</p>")
    parts.append("</section>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
             "th{background:#f3f3f3}img{max-width:100%}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def write_report(path: str | os.PathLike[str], out: str | os.PathLike[str], **options: Any) -> str:
    """Build the report of ``path`` and write it to ``out`` (``-`` for stdout); returns the HTML."""
    page = build_report(path, **options)
    if str(out) == "-":
        import sys

        sys.stdout.write(page)
    else:
        tmp = f"{out}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.replace(tmp, out)
    return page
