# SPDX-License-Identifier: GPL-3.0-or-later
"""The summary of an evaluation: statistics over result rows and the Markdown report.

``evaluate`` writes one row per (target, method) to ``results.csv``; this
module turns rows (fresh, or read back from the CSV) into per-method
statistics with item-level bootstrap confidence intervals and into
``summary.md``. Kept apart from the run so a finished CSV can be summarised
again without loading torch, Vita or the predictor.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BOOTSTRAP",
    "METRICS",
    "as_float",
    "bootstrap_ci",
    "fmt_number",
    "load_rows",
    "method_stats",
    "ordered_methods",
    "summarize",
]

#: Metric columns of a result row, in ``metrics.all_metrics``' order.
METRICS = ("mss", "wmfcc", "sot", "rms", "mrstft", "f0_cents")
METRIC_LABELS = {"mss": "MSS (dB)", "wmfcc": "wMFCC", "sot": "SOT", "rms": "RMS env. cosine (higher better)",
                 "mrstft": "MRSTFT", "f0_cents": "f0 error (cents)", "param_mae": "param MAE (normalised)",
                 "cat_acc": "categorical accuracy (higher better)"}
#: Reference rows (not methods): the render-twice floor and the true preset through the same protocol.
REFERENCE_ROWS = ("floor", "oracle")
ROW_ORDER = ("init", "mean", "nearest", "predict_top1", "predict", "refine", "oracle", "floor")
BOOTSTRAP = 10_000



def bootstrap_ci(values: Sequence[float], groups: Sequence[Any] | None = None, n_boot: int = BOOTSTRAP,
                 seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap CI of the mean, resampling whole groups (items) with replacement.

    The mean of a resample is the mean over all the rows of the drawn groups
    (so it is the plain row mean on the original data). NaNs are dropped.
    Fewer than two groups: (mean, nan, nan).
    """
    v = np.asarray(values, dtype=np.float64)
    g = np.arange(len(v)) if groups is None else np.asarray(list(groups), dtype=object)
    keep = np.isfinite(v)
    v, g = v[keep], g[keep]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    _, inv = np.unique(g.astype(str), return_inverse=True)
    n_groups = int(inv.max()) + 1
    if n_groups < 2:
        return mean, float("nan"), float("nan")
    sums = np.bincount(inv, weights=v, minlength=n_groups)
    counts = np.bincount(inv, minlength=n_groups).astype(np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, 2_000_000 // n_groups)
    for a in range(0, n_boot, step):
        idx = rng.integers(0, n_groups, size=(min(step, n_boot - a), n_groups))
        means[a : a + len(idx)] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    lo, hi = np.percentile(means, [50 * (1 - level), 100 - 50 * (1 - level)])
    return mean, float(lo), float(hi)


def as_float(v: Any) -> float:
    if v is None or v == "":
        return float("nan")
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a results.csv (strings, as written)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def ordered_methods(rows: list[dict]) -> list[str]:
    present = list(dict.fromkeys(str(r["method"]) for r in rows))
    return [m for m in ROW_ORDER if m in present] + [m for m in present if m not in ROW_ORDER]


def method_stats(rows: list[dict], column: str) -> dict[str, dict[str, float]]:
    """Per method: n, mean, ci_low, ci_high, median of one column (rows without error)."""
    out = {}
    for m in ordered_methods(rows):
        sel = [r for r in rows if r["method"] == m and not r.get("error")]
        vals = np.array([as_float(r.get(column)) for r in sel])
        groups = [str(r["item"]) for r in sel]
        finite = np.isfinite(vals)
        if not finite.any():
            continue
        mean, lo, hi = bootstrap_ci(vals, groups)
        out[m] = {"n": int(finite.sum()), "mean": mean, "ci_low": lo, "ci_high": hi,
                  "median": float(np.median(vals[finite]))}
    return out


def fmt_number(x: float, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"


def summarize(rows: list[dict], settings: dict | None = None) -> str:
    """The Markdown summary of result rows (as written to or read from results.csv)."""
    settings = settings or {}
    lines = ["# Evaluation summary", ""]
    if settings:
        lines += [f"- set: `{settings.get('set')}` — {settings.get('set_description', '')}",
                  f"- targets: {settings.get('targets')} ({settings.get('items')} items x notes "
                  f"{settings.get('notes') or 'from each clip'}; velocity {settings.get('velocity')}, "
                  f"key held {settings.get('note_seconds')} s of {settings.get('render_seconds')} s)"
                  if settings.get("notes") else
                  f"- targets: {settings.get('targets')} clips (note and lengths from intake)"]
        for m, d in (settings.get("method_descriptions") or {}).items():
            lines.append(f"- `{m}`: {d}")
        lines.append(f"- run: {settings.get('started', '')}, {settings.get('seconds', '?')} s wall, "
                     f"workers {settings.get('workers') if settings.get('workers') is not None else 'all cores'}")
    lines += [
        ("- alignment: each method's render (analysed note, velocity 0.8, analysed key/render seconds) is padded or "
         "cropped to the analysed clip and scaled to its RMS, then compared with `analysis.audio` (the clip trimmed "
         "at its onset by intake), i.e. the pair the app and the refinement loss compare."),
        ("- `floor`: true preset rendered twice with the target's settings (Vita noise); `oracle`: true preset "
         "rendered like a method's output (the floor of this protocol, including analysis errors)."),
        ("- mean: 95% CI from an item-level (cluster) percentile bootstrap, 10,000 resamples; n = rows with a "
         "finite value."),
        "",
    ]
    methods = ordered_methods(rows)
    # failures
    fails = {m: sum(1 for r in rows if r["method"] == m and r.get("error")) for m in methods}
    total = {m: sum(1 for r in rows if r["method"] == m) for m in methods}
    lines += ["## Overview (medians; lower is better except RMS and accuracy)", ""]
    cols = [c for c in (*METRICS, "param_mae", "cat_acc") if any(np.isfinite(as_float(r.get(c))) for r in rows)]
    stats = {c: method_stats(rows, c) for c in cols}
    lines.append("| method | rows ok/total | " + " | ".join(METRIC_LABELS[c] for c in cols) + " |")
    lines.append("|---|---|" + "---|" * len(cols))
    for m in methods:
        cells = [fmt_number(stats[c][m]["median"]) if m in stats[c] else "–" for c in cols]
        lines.append(f"| {m} | {total[m] - fails[m]}/{total[m]} | " + " | ".join(cells) + " |")
    lines.append("")
    for c in cols:
        lines += [f"## {METRIC_LABELS[c]}", "", "| method | n | mean | 95% CI | median |", "|---|---|---|---|---|"]
        for m, s in stats[c].items():
            ci = f"[{fmt_number(s['ci_low'])}, {fmt_number(s['ci_high'])}]" if math.isfinite(s["ci_low"]) else "–"
            lines.append(f"| {m} | {s['n']} | {fmt_number(s['mean'])} | {ci} | {fmt_number(s['median'])} |")
        lines.append("")
    timing = [("analysis_s", "analysis (s)"), ("method_s", "method: prediction / retrieval / refinement (s)"),
              ("select_s", "render + pick best of K (s)"), ("refine_t90_s", "refinement: time to 90% of its gain (s)"),
              ("refine_r90", "refinement: renders to 90% of its gain")]
    trows = []
    for col, label in timing:
        for m in methods:
            vals = np.array([as_float(r.get(col)) for r in rows if r["method"] == m and not r.get("error")])
            vals = vals[np.isfinite(vals)]
            if len(vals) and (col != "method_s" or m not in REFERENCE_ROWS) and (col != "analysis_s" or m == methods[0]):
                trows.append(f"| {label} | {m if col != 'analysis_s' else 'all'} | {len(vals)} | {fmt_number(float(vals.mean()))} | "
                             f"{fmt_number(float(np.median(vals)))} |")
    if trows:
        lines += ["## Timings (wall clock on this machine, other work running alongside)", "",
                  "| what | method | n | mean | median |", "|---|---|---|---|---|", *trows, ""]
    errs = [r for r in rows if r.get("error")]
    if errs:
        lines += ["## Failures", ""]
        seen = set()
        for r in errs:
            key = (r["item"], r["error"])
            if key in seen:
                continue
            seen.add(key)
            n = sum(1 for x in errs if (x["item"], x["error"]) == key)
            lines.append(f"- `{r['item']}` ({n} rows): {r['error']}")
        lines.append("")
    return "\n".join(lines)
