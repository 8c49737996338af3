# SPDX-License-Identifier: GPL-3.0-or-later
"""Result rows: one per target x method, written to ``results.csv`` as they come.

A row holds the method's metrics against the target (``summary.METRICS``),
for synthetic sets the parameter errors against the true preset, what the
analysis found (note, cents, lengths), timings, and an ``error`` column
instead of metrics when that method failed on that target. Rows are flushed
one by one, so a cut run still leaves its finished rows.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from .methods import param_errors
from .score import Scored, error_text
from .summary import METRICS, REFERENCE_ROWS
from .targets import Target

__all__ = ["COLUMNS", "ResultRows"]

COLUMNS = (
    "set", "item", "note", "method",
    *METRICS, "param_mae", "cat_acc",
    "analysed_note", "cents", "note_seconds", "render_seconds",
    "analysis_s", "method_s", "select_s", "renders", "chosen",
    "refine_start_loss", "refine_loss", "refine_t90_s", "refine_r90",
    "detail", "error",
)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return str(v)


class ResultRows:
    """Builds the rows of one set (``kind``: synthetic, presets or clips) and appends them to ``path`` (CSV)."""

    def __init__(self, path: Path, kind: str, space) -> None:
        self.path, self.kind, self.space = path, kind, space
        self.rows: list[dict[str, Any]] = []
        self._f = open(path, "w", newline="")  # noqa: SIM115 - rows are flushed as they come; closed by close()
        self._w = csv.DictWriter(self._f, fieldnames=list(COLUMNS))
        self._w.writeheader()
        self._f.flush()

    def write(self, row: dict[str, Any]) -> None:
        full = {c: row.get(c) for c in COLUMNS}
        self.rows.append(full)
        self._w.writerow({c: _fmt(v) for c, v in full.items()})
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def base(self, t: Target, method: str) -> dict[str, Any]:
        """The columns every row of this target has: which target, what the analysis found, how long it took."""
        a = t.analysis
        return {"set": self.kind, "item": t.item.id, "note": t.note, "method": method,
                "analysed_note": getattr(a, "note", None), "cents": getattr(a, "cents", None),
                "note_seconds": getattr(a, "note_seconds", None), "render_seconds": getattr(a, "render_seconds", None),
                "analysis_s": t.analysis_s}

    def metric(self, t: Target, method: str, metrics: dict | None, preset=None, **extra) -> None:
        """Write a row with these metrics (None: none, e.g. with ``error=...``) and, for a synthetic set's method
        rows, the preset's parameter errors against the truth."""
        row = self.base(t, method)
        row.update(extra)
        if metrics:
            row.update({k: float(metrics[k]) for k in METRICS if k in metrics})
        if (preset is not None and t.truth is not None and self.kind == "synthetic" and not row.get("error")
                and method not in REFERENCE_ROWS):
            row["param_mae"], row["cat_acc"] = param_errors(self.space, t.truth.values, preset.values)
        self.write(row)

    def error(self, t: Target, method: str, error: str) -> None:
        """Write a failed row: no metrics, the reason in ``error``."""
        self.metric(t, method, None, error=error)

    def scored(self, t: Target, method: str, preset, res: Scored | BaseException, **extra) -> None:
        """Write the row of a ``score_presets`` result (or of the exception that stopped it)."""
        if isinstance(res, BaseException):
            return self.metric(t, method, None, error=error_text(res), **extra)
        if res.error:
            return self.metric(t, method, None, error=res.error, **extra)
        if res.note:
            extra["detail"] = "; ".join(x for x in (extra.get("detail", ""), res.note) if x)
        return self.metric(t, method, res.metrics, preset, **extra)
