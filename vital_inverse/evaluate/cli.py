# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``evaluate`` command's options, shared by ``vital-inverse evaluate`` and ``python -m vital_inverse.evaluate``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError
from .run import evaluate
from .summary import method_stats

__all__ = ["add_arguments", "main", "main_args"]


def add_arguments(parser) -> None:
    """Add the ``evaluate`` options to an argparse (sub)parser."""
    parser.add_argument("--set", dest="set_spec", required=True, metavar="KIND:DIR",
                        help="synthetic:DIR (test split of a generated dataset), presets:DIR (*.vital) or clips:DIR (audio)")
    parser.add_argument("--method", required=True,
                        help="init, mean, nearest, predict or refine; several comma-separated (refine implies predict)")
    parser.add_argument("--out", type=Path, required=True, help="results folder (results.csv, summary.md, run.json)")
    parser.add_argument("--budget", type=int, default=600, help="refinement renders per target (default 600)")
    parser.add_argument("--notes", default=None, help="MIDI notes, comma-separated (presets default 48,60,72; "
                                                      "synthetic: the dataset's)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder or Hub id (default: the shipped one)")
    parser.add_argument("--train-data", type=Path, default=None,
                        help="dataset for nearest/mean (default: a synthetic set's own dataset)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many items (first in sorted order)")
    parser.add_argument("--workers", type=int, default=None, help="render worker processes (default: every core; "
                                                                  "0: all in this process)")
    parser.add_argument("--k", type=int, default=4, help="predicted candidates rendered per target (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note-seconds", type=float, default=None, help="key held (presets default 1.5 s)")
    parser.add_argument("--render-seconds", type=float, default=None, help="render length (presets default 2.0 s)")
    parser.add_argument("--prior-samples", type=int, default=1024,
                        help="presets drawn from the prior for the mean baseline when no dataset is given")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor and oracle rows")
    parser.add_argument("--no-progress", action="store_true")


def main_args(args) -> int:
    """Run from parsed ``add_arguments`` options; prints where the results are and the median MSS per method."""
    res = evaluate(args.set_spec, args.method, args.out, budget=args.budget, notes=args.notes,
                   checkpoint=args.checkpoint, train_data=args.train_data, limit=args.limit, workers=args.workers,
                   k=args.k, seed=args.seed, floor=not args.no_floor, note_seconds=args.note_seconds,
                   render_seconds=args.render_seconds, prior_samples=args.prior_samples,
                   progress=not args.no_progress)
    mss = method_stats(res.rows, "mss")
    failed = sum(1 for r in res.rows if r.get("error"))
    print(f"wrote {res.csv} ({len(res.rows)} rows, {failed} failed) and {res.summary} in {res.seconds:.0f} s")
    print("median MSS (dB): " + ", ".join(f"{m} {s['median']:.2f}" for m, s in mss.items()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vital_inverse.evaluate ...`` (same options as ``vital-inverse evaluate``)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="vital-inverse evaluate", description="Evaluate a matching method.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return main_args(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
