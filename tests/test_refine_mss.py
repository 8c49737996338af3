# SPDX-License-Identifier: GPL-3.0-or-later
"""Refinement judged as a listener would: MSS of fresh Vita renders (short notes, small budgets, two workers)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vital_inverse import metrics
from vital_inverse.intake import TARGET_PEAK, Analysis
from vital_inverse.preset import Preset
from vital_inverse.refine import Budget, RefineConfig, refine
from vital_inverse.resynthesis import SWEEP_ROUTE, clip_refine_config
from vital_inverse.scoring import Evaluator, match_to_target, mss_against, mss_reference

NOTE_S, RENDER_S = 0.4, 0.6
#: a plucked, filtered saw: its envelope and filter are what refinement searches
TRUTH = {"filter_1_on": 1.0, "filter_1_cutoff": 70.0, "filter_1_resonance": 0.3, "env_1_decay": 0.35,
         "env_1_sustain": 0.3, "osc_1_wave_frame": 96.0}
#: the same sound a little off: a longer decay, more sustain, a brighter filter (what a start near a clip looks like)
OFF = {**TRUTH, "filter_1_cutoff": 82.0, "env_1_decay": 0.55, "env_1_sustain": 0.5}


def _analysis(audio: np.ndarray) -> Analysis:
    return Analysis(audio, 44100, 60, 0.0, 1.0, True, 261.63, NOTE_S, RENDER_S, 1.0, "test")


@pytest.fixture(scope="module")
def target(renderer) -> Analysis:
    audio = renderer.render(Preset.from_values(TRUTH), 60, 0.8, NOTE_S, RENDER_S)
    return _analysis((audio * (TARGET_PEAK / np.abs(audio).max())).astype(np.float32))


def _fresh_mss(renderer, preset: Preset, target: Analysis, n: int = 3) -> float:
    """What bench_match's judge does: n fresh renders at the target's note, MSS against the clip, mean."""
    return float(np.mean([metrics.mss(renderer.render(preset, 60, 0.8, NOTE_S, RENDER_S), target.audio)
                          for _ in range(n)]))


def test_mss_computed_in_the_workers_is_metrics_mss(target, renderer, render_pool):
    """The search's MSS term (NumPy, in the render workers) is the judge's ``metrics.mss``, and the objective
    a weighted run ranks by is the loss plus that weight times it."""
    audio = match_to_target(renderer.render(Preset.from_values(OFF), 60, 0.8, NOTE_S, RENDER_S), target.audio)
    ref = mss_reference(target.audio)
    assert mss_against(audio, ref) == pytest.approx(metrics.mss(audio, target.audio), abs=1e-4)
    assert mss_against(target.audio, ref) == pytest.approx(0.0, abs=1e-6)

    ev = Evaluator(render_pool, target, 0.0, mss_weight=0.5)
    objective, _, _ = ev.evaluate([Preset.from_values(OFF)] * 2)
    plain = ev.last_losses
    assert np.all(objective > plain)
    # objective - plain = 0.5 x MSS of that render; renders differ only by Vita's tiny run-to-run noise
    assert (objective - plain) / 0.5 == pytest.approx([metrics.mss(audio, target.audio)] * 2, abs=0.3)


def test_from_a_start_slightly_off_refinement_lowers_mss_on_fresh_renders(target, renderer, render_pool):
    """The app's search for a start made of the clip (``clip_refine_config``: its few dimensions, the MSS term,
    the polish restarts) from a start a little off the clip: the best, rendered fresh, is closer by MSS than
    the start rendered fresh; its pitch settings are untouched; the reported best loss and its MSS never rise."""
    start = Preset.from_values(OFF)
    config = clip_refine_config()
    events = list(refine(target, [start], Budget(renders=150, seconds=None), seed=0, renderer=render_pool,
                         popsize=8, config=config))
    best = events[-1].best
    assert best is not start
    before, after = _fresh_mss(renderer, start, target), _fresh_mss(renderer, best, target)
    assert after < before - 0.3, (before, after)
    for name in ("osc_1_transpose", "osc_1_tune", "osc_2_transpose", "osc_2_tune"):
        assert best.values[name] == start.values[name]
    assert all(b.best_loss <= a.best_loss for a, b in itertools.pairwise(events))
    assert all(b.best_mss <= a.best_mss for a, b in itertools.pairwise(events[1:]))


def test_a_plateau_polishes_with_a_smaller_step_before_it_stops(target, render_pool):
    """From the very preset the target was rendered from nothing is closer: with ``restarts`` the plateau
    restarts the search around the best with a smaller step (more generations) before "converged", and the
    truth stays the best."""
    truth = Preset.from_values(TRUTH)
    budget = Budget(renders=300, seconds=None)
    plain = RefineConfig(plateau=3, restarts=0, mss_weight=0.0)
    polished = RefineConfig(plateau=3, restarts=2, mss_weight=0.0)
    once = list(refine(target, [truth], budget, seed=2, renderer=render_pool, popsize=6, config=plain))
    again = list(refine(target, [truth], budget, seed=2, renderer=render_pool, popsize=6, config=polished))
    assert once[-1].reason == again[-1].reason == "converged"
    assert again[-1].generation >= once[-1].generation + 6  # two more plateaus of at least 3 generations
    assert again[-1].renders < 300


def test_a_clip_start_never_searches_its_sweep_timing_or_its_tables_pitch():
    """The sweep plays frame p at p/256 of the clip and the table's cycle is the clip's f0: both are fitted,
    and a step in either moves every frame (measured +0.2..1.7 dB MSS per 1% step), so they stay locked; a
    drum start keeps its pitch searchable (its fall)."""
    table = clip_refine_config(kind="resynthesis")
    assert {"lfo_1_frequency", SWEEP_ROUTE, "osc_1_transpose", "osc_1_tune"} <= table.locked
    assert "env_1_decay" not in table.locked and table.mss_weight > 0 and table.restarts > 0 and table.plateau > 0
    drum = clip_refine_config(kind="drum")
    assert "lfo_1_frequency" in drum.locked and not {"osc_1_transpose", "osc_1_tune"} & drum.locked
    # what a caller sets is kept
    own = clip_refine_config(RefineConfig(plateau=3, restarts=1, mss_weight=0.5))
    assert (own.plateau, own.restarts, own.mss_weight) == (3, 1, 0.5)
