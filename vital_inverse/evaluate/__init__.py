# SPDX-License-Identifier: GPL-3.0-or-later
"""Evaluation suite: score matching methods on a set of target notes.

    vital-inverse evaluate --set synthetic:DIR|presets:DIR|clips:DIR \\
        --method init|mean|nearest|predict|refine[,...] [--budget N] [--notes 48,60,72] --out RESULTS_DIR

One target = one item (a generated preset, a .vital file or an audio clip) at one note, analysed
by intake exactly as a user's clip; each method's preset is rendered at the analysed note and
lengths, matched to the clip (`scoring.match_to_target`) and scored with `metrics.all_metrics`.
`floor` (the true preset rendered twice) and `oracle` (the true preset through the analysis)
rows bound what is possible. Writes `results.csv` (one row per item x note x method),
`summary.md` (means with item-level bootstrap CIs) and `run.json`. The full protocol:
docs/evaluation.md.

Modules, in the order a run uses them: `sets` (what to run on), `targets` (render and analyse
one target), `methods` (the matching methods; `baselines` holds init, mean and nearest),
`score` (render a method's presets, keep the closest, its metrics), `rows` (results.csv),
`run` (the schedule), `summary` (statistics and summary.md), `cli` (the command's options).
"""

from __future__ import annotations

from .cli import add_arguments, main, main_args
from .methods import METHODS, Refined, param_errors, parse_methods, predict_best, refine_preset
from .rows import COLUMNS
from .run import EvalResult, evaluate
from .score import OneThread, Scored, score_groups, score_metrics, score_presets
from .sets import VELOCITY, EvalSet, EvaluateError, Item, parse_notes, parse_set
from .summary import METRICS, bootstrap_ci, load_rows, method_stats, summarize
from .targets import Target, prepare_target

__all__ = [
    "COLUMNS",
    "METHODS",
    "METRICS",
    "VELOCITY",
    "EvalResult",
    "EvalSet",
    "EvaluateError",
    "Item",
    "OneThread",
    "Refined",
    "Scored",
    "Target",
    "add_arguments",
    "bootstrap_ci",
    "evaluate",
    "load_rows",
    "main",
    "main_args",
    "method_stats",
    "param_errors",
    "parse_methods",
    "parse_notes",
    "parse_set",
    "predict_best",
    "prepare_target",
    "refine_preset",
    "score_groups",
    "score_metrics",
    "score_presets",
    "summarize",
]
