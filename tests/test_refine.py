# SPDX-License-Identifier: GPL-3.0-or-later
"""CMA-ES refinement with real Vita renders: short notes, tiny budgets, two workers."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time

import numpy as np
import pytest

from vital_inverse import metrics
from vital_inverse.errors import UserError
from vital_inverse.intake import TARGET_PEAK, Analysis
from vital_inverse.preset import Preset
from vital_inverse.refine import Budget, RefineConfig, RefineError, RefineEvent, loss, refine

NOTE_S, RENDER_S = 0.3, 0.5


def _analysis(audio: np.ndarray, note: int = 60, note_s: float = NOTE_S, render_s: float = RENDER_S) -> Analysis:
    return Analysis(audio, 44100, note, 0.0, 1.0, True, 261.63, note_s, render_s, 1.0, "test")


@pytest.fixture(scope="module")
def target(renderer) -> Analysis:
    """Init with its filter on, the cutoff lowered and another wave frame: a sound Init can reach."""
    truth = Preset.from_values({"filter_1_on": 1.0, "filter_1_cutoff": 45.0, "osc_1_wave_frame": 160.0})
    audio = renderer.render(truth, 60, 0.8, NOTE_S, RENDER_S)
    return _analysis((audio * (TARGET_PEAK / np.abs(audio).max())).astype(np.float32))


@pytest.fixture(scope="module")
def pool(target, render_pool):
    list(refine(target, [Preset.init()], 2, renderer=render_pool))  # workers import the scorer, see the target
    return render_pool


def test_loss_is_mrstft_after_matching_the_targets_rms(target, renderer):
    audio = renderer.render(Preset.init(), 60, 0.8, NOTE_S, RENDER_S)
    scaled = audio * np.sqrt(np.mean(target.audio.astype(np.float64) ** 2) / np.mean(audio.astype(np.float64) ** 2))
    assert loss(target.audio, audio) == pytest.approx(metrics.mrstft(scaled, target.audio), rel=1e-4)
    # the render's level does not matter, its length is matched to the target's
    assert loss(target.audio, 0.1 * audio) == pytest.approx(loss(target.audio, audio), rel=1e-4)
    assert loss(target.audio, audio[:, :-500]) > 0
    assert loss(target.audio, target.audio) == pytest.approx(0.0, abs=1e-6)


def test_refinement_lowers_the_loss_and_events_are_well_formed(target, pool):
    events = list(refine(target, [Preset.init()], Budget(renders=4 + 3 * 8 + 6), seed=3, renderer=pool, popsize=8))
    assert all(isinstance(e, RefineEvent) for e in events)
    assert [e.generation for e in events] == list(range(len(events)))
    assert len(events) >= 4  # the start and ~3 generations
    renders = [e.renders for e in events]
    assert renders[0] == 4  # one to tune the start onto the target's pitch, one start + two re-scoring renders
    assert all(b > a for a, b in itertools.pairwise(renders)) and renders[-1] <= 34
    best = [e.best_loss for e in events]
    assert all(b <= a for a, b in itertools.pairwise(best))  # the incumbent only changes for a lower re-scored loss
    assert best[-1] < 0.93 * best[0], best  # ~13% in 3 generations with the default small step
    assert [e.done for e in events] == [False] * (len(events) - 1) + [True]
    assert events[-1].reason == "budget" and all(e.reason == "" for e in events[:-1])
    assert np.all(np.diff([e.elapsed for e in events]) >= 0)
    last = events[-1]
    assert last.best_audio.dtype == np.float32 and last.best_audio.shape == target.audio.shape
    # Init's filter is off: refinement switches it on fully open so its cutoff and envelope 2 can be searched
    assert {"osc_1_wave_frame", "filter_1_cutoff", "env_2_decay", "mod_env2_filter1_cutoff"} <= set(last.searched)
    assert "filter_2_cutoff" not in last.searched and "osc_2_level" not in last.searched  # inaudible: not searched
    assert last.population.shape[1] == len(last.searched)
    assert last.best.values["filter_1_on"] == 1.0 and last.best.values["osc_2_on"] == 0.0
    assert last.best.to_vital_dict()["settings"]["osc_1_wave_frame"] == last.best.values["osc_1_wave_frame"]
    # the reported loss is honest: a fresh render of the best scores about the same
    fresh = loss(target.audio, pool.render_many([last.best], 60, 0.8, NOTE_S, RENDER_S)[0])
    assert fresh == pytest.approx(last.best_loss, rel=0.1, abs=0.05)


def test_categoricals_stay_those_of_the_start_without_open_filter(target, pool):
    gen = refine(target, [Preset.init()], 20, renderer=pool, popsize=4, config=RefineConfig(open_filter=False))
    events = [next(gen), next(gen)]
    gen.close()
    assert "filter_1_cutoff" not in events[-1].searched and "osc_1_level" in events[-1].searched
    assert all(e.best.values["filter_1_on"] == 0.0 for e in events)


def test_best_start_is_picked_and_counted(target, pool):
    near = Preset.from_values({"filter_1_on": 1.0, "filter_1_cutoff": 50.0, "osc_1_wave_frame": 150.0})
    gen = refine(target, [Preset.init(), near], Budget(renders=20), renderer=pool, popsize=4)
    first = next(gen)
    gen.close()
    assert first.generation == 0 and first.renders == 2 + 2 + 2  # tuning, scoring, re-scoring
    assert first.best.values["filter_1_on"] == 1.0 and "filter_1_cutoff" in first.searched


def test_a_race_searches_the_runner_up_too_then_keeps_the_leader(target, pool):
    """race=2: the two best starts are searched in turns for the first part of the budget."""
    near = Preset.from_values({"filter_1_on": 1.0, "filter_1_cutoff": 50.0, "osc_1_wave_frame": 150.0})
    far = Preset.from_values({"osc_1_on": 0.0, "osc_2_on": 1.0})  # a different categorical: oscillator 2
    cfg = RefineConfig(race=2, race_share=0.5, open_filter=False, confirm=False)  # render counts exact
    budget = 3 + 3 + 2 * 2 + 8 * 4
    events = list(refine(target, [far, near, Preset.init()], Budget(renders=budget), seed=1,
                         renderer=pool, popsize=4, config=cfg))
    # the start event already counts the tuning and scoring of the starts and both entrants' re-scoring
    assert events[0].renders == 3 + 3 + 2 * 2
    searched = [frozenset(e.searched) for e in events[1:]]
    during_race = [s for e, s in zip(events[1:], searched) if e.renders <= 0.5 * budget]
    assert len(set(during_race)) == 2, "both entrants are searched while the race lasts"
    assert len(set(searched[-2:])) == 1, "after the race only the leader is searched"
    assert [e.best_loss for e in events] == sorted((e.best_loss for e in events), reverse=True)
    assert events[-1].best.values["filter_1_on"] == 1.0  # the near start (filter on) leads the far one


def _children() -> set[int]:
    return {p.pid for p in multiprocessing.active_children()}


def test_closing_after_the_first_event_stops_promptly_and_frees_the_workers(target, pool):
    before = _children()
    gen = refine(target, [Preset.init()], Budget(renders=10_000), seed=1)  # creates its own renderer
    assert _children() == before  # nothing starts before the first next()
    first = next(gen)
    assert not first.done and _children() - before  # its workers are running
    t = time.monotonic()
    gen.close()
    assert time.monotonic() - t < 10.0
    deadline = time.monotonic() + 5.0
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (_children() - before), "refine left worker processes behind"
    # a renderer passed in by the caller stays open
    gen = refine(target, [Preset.init()], 100, renderer=pool, popsize=4)
    next(gen)
    gen.close()
    assert pool.render_many([Preset.init()], 60, 0.8, 0.1, 0.1)[0].shape == (2, 4410)


def test_time_budget_is_honoured(target, pool):
    t = time.monotonic()
    events = list(refine(target, [Preset.init()], Budget(renders=None, seconds=3.0), renderer=pool, popsize=6))
    wall = time.monotonic() - t
    assert events[-1].done and events[-1].reason == "time"
    steps = np.diff([0.0] + [e.elapsed for e in events])  # the start, then each generation
    gen = max(float(steps.max()), 0.2)
    assert wall <= 3.0 + gen + 1.0, (wall, steps)  # it stops within one generation of the limit
    assert events[-1].elapsed >= 3.0 - gen, (wall, steps)  # and uses the time it has


def test_stop_event_ends_with_a_final_stopped_event(target, pool):
    stop = threading.Event()
    events = []
    for e in refine(target, [Preset.init()], 1000, renderer=pool, popsize=4, stop=stop):
        events.append(e)
        stop.set()
    # the final event repeats the state at the stop: no generation was started after it
    assert len(events) == 2 and events[1].done and events[1].reason == "stopped" and not events[0].done
    assert events[1].renders == events[0].renders and events[1].best is events[0].best


def _first_generation(target, pool, seed):
    gen = refine(target, [Preset.init()], 100, seed=seed, renderer=pool, popsize=4)
    try:
        next(gen)
        return next(gen).population
    finally:
        gen.close()


def test_same_seed_asks_the_same_first_generation(target, pool):
    a = _first_generation(target, pool, seed=7)
    b = _first_generation(target, pool, seed=7)
    c = _first_generation(target, pool, seed=8)
    assert a.shape == (4, b.shape[1]) and np.array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(_first_generation(target, pool, seed=0), c)  # seed 0 is a seed, not "from the clock"


def test_bad_inputs_raise_clear_refine_errors(target):
    init = [Preset.init()]
    assert issubclass(RefineError, UserError)
    with pytest.raises(RefineError, match="silent"):
        refine(_analysis(np.zeros((2, 22050), np.float32)), init)
    with pytest.raises(RefineError, match=r"1000 samples .* at least"):
        refine(_analysis(target.audio[:, :1000], render_s=1000 / 44100, note_s=0.01), init)
    for budget in (Budget(renders=0), 0, Budget(renders=None, seconds=None), Budget(renders=-5, seconds=0.0)):
        with pytest.raises(RefineError, match="budget is empty"):
            refine(target, init, budget)
    with pytest.raises(RefineError, match="no start preset"):
        refine(target, [])
    with pytest.raises(RefineError, match="ParamSpace other"):
        refine(target, [Preset(values=init[0].values, space_hash="other")])
    with pytest.raises(RefineError, match="popsize"):
        refine(target, init, popsize=1)
    with pytest.raises(RefineError, match="sigma0"):
        refine(target, init, sigma0=0.0)


def test_locked_settings_stay_exactly_as_they_were(target, pool, space):
    """Locking filter 1 (a module) and osc 1's level (one setting): refinement leaves them exactly as the
    start has them and moves what is not locked (the wave frame; the target's is 160)."""
    from vital_inverse.locks import expand_locks

    start = Preset.from_values({"filter_1_on": 1.0, "filter_1_cutoff": 90.0, "filter_1_resonance": 0.3,
                                "osc_1_wave_frame": 40.0, "osc_1_level": 0.6})
    locked = expand_locks(space, "filter_1, osc_1_level")
    assert {"filter_1_cutoff", "filter_1_resonance", "filter_1_on", "osc_1_level"} <= locked
    events = list(refine(target, [start], Budget(renders=3 + 3 * 6), seed=1, renderer=pool, popsize=6,
                         config=RefineConfig(locked=locked)))
    last = events[-1]
    assert not locked & set(last.searched) and "osc_1_wave_frame" in last.searched
    for e in events:
        assert all(e.best.values[n] == start.values[n] for n in locked)
    unlocked = [n for n in last.searched if last.best.values[n] != start.values[n]]
    assert "osc_1_wave_frame" in unlocked and len(unlocked) > 3
    assert last.best_loss < events[0].best_loss  # the rest still moves towards the target
    saved = last.best.to_vital_dict()["settings"]
    assert saved["filter_1_cutoff"] == 90.0 and saved["osc_1_level"] == 0.6


def test_unknown_or_total_locks_are_clear_errors(target, pool, space):
    from vital_inverse.locks import LockError, expand_locks, module_label

    with pytest.raises(LockError, match="filter_1"):
        expand_locks(space, "filtr_1")
    assert module_label(space, "filter_1") == "Filter 1" and module_label(space, "osc_2") == "Oscillator 2"
    everything = frozenset(space.names)
    with pytest.raises(RefineError, match="locked"):
        list(refine(target, [Preset.init()], 10, renderer=pool, popsize=4, config=RefineConfig(locked=everything)))


def test_pitch_moving_parameters_are_not_searched_for_a_pitched_target(target, pool):
    """A pitched clip: transposes, tunes and routes into a tune stay; an unpitched one: they are searched."""
    from dataclasses import replace

    pitch = {"osc_1_transpose", "osc_1_tune", "mod_lfo1_pitch"}
    cfg = RefineConfig(open_filter=False)
    first = next(refine(target, [Preset.init()], 20, renderer=pool, popsize=4, config=cfg))
    assert not pitch & set(first.searched) and "osc_1_level" in first.searched
    unpitched = replace(target, pitched=False, f0_hz=None)
    first = next(refine(unpitched, [Preset.init()], 20, renderer=pool, popsize=4, config=cfg))
    assert {"osc_1_transpose", "osc_1_tune"} <= set(first.searched)
    assert first.renders == 3  # no tuning render for an unpitched clip


def test_retune_puts_an_octave_and_cents_off_preset_on_the_clips_pitch(target, pool):
    """Checked with an independent tracker (librosa.yin), not the detector retune uses."""
    import librosa

    from vital_inverse.synth import RenderJob
    from vital_inverse.tuning import retune

    off = Preset.from_values({"filter_1_on": 1.0, "filter_1_cutoff": 45.0, "osc_1_transpose": 12.0, "osc_1_tune": 0.4})

    def render(presets):
        return pool.render_jobs([RenderJob(p, 60, 0.8, NOTE_S, RENDER_S) for p in presets], raise_errors=False)

    def f0(preset):
        x = render([preset])[0].mean(axis=0)
        return float(np.median(librosa.yin(x[2048:12000], fmin=60, fmax=2000, sr=44100, frame_length=4096)))

    tuned = retune([off], target, render)[0]
    assert abs(1200 * np.log2(f0(off) / 261.63)) > 1000  # an octave and 40 cents sharp
    assert abs(1200 * np.log2(f0(tuned) / 261.63)) < 15
    assert tuned.values["osc_1_transpose"] == 0.0


def test_an_inaudible_render_is_a_failed_candidate_in_the_workers_too(target, pool):
    from vital_inverse.scoring import FAILED_LOSS, Evaluator

    quiet = Preset.from_values({"osc_1_level": 0.01})  # about -75 dBFS: nobody hears it
    losses, best, _ = Evaluator(pool, target, 0.0).evaluate([quiet, Preset.init()])
    assert losses[0] == FAILED_LOSS and losses[1] < FAILED_LOSS and best == 1


def test_a_new_best_must_be_closer_by_mss_too_not_only_by_the_loss(target, pool):
    """Start from the very preset the target was rendered from, but claim a poor loss for it: every challenger
    then beats it by the loss, none by MSS (nothing is closer than the truth). With the gate the start stays;
    without it the first lucky challenger replaces it."""
    truth = Preset.from_values({"filter_1_on": 1.0, "filter_1_cutoff": 45.0, "osc_1_wave_frame": 160.0})
    audio = pool.render_many([truth], 60, 0.8, NOTE_S, RENDER_S)[0]
    budget = Budget(renders=2 + 3 * (6 + 2))

    def run(gate: bool) -> list[RefineEvent]:
        return list(refine(target, [truth], budget, seed=1, renderer=pool, popsize=6, incumbent=(5.0, audio),
                           config=RefineConfig(mss_gate=gate)))

    gated = run(True)
    assert len(gated) >= 3 and all(e.best is truth for e in gated) and gated[-1].best_loss == 5.0
    free = run(False)
    assert free[-1].best is not truth and free[-1].best_loss < 5.0


def test_a_plateau_stops_refinement_before_the_budget(target, pool):
    """From the very preset the target was rendered from, nothing gets closer: with ``plateau`` the run ends as
    "converged" after that many generations without a fall of the loss, leaving most of the budget unspent;
    without it the whole budget is used."""
    truth = Preset.from_values({"filter_1_on": 1.0, "filter_1_cutoff": 45.0, "osc_1_wave_frame": 160.0})
    budget = Budget(renders=200, seconds=None)
    stopped = list(refine(target, [truth], budget, seed=2, renderer=pool, popsize=6, config=RefineConfig(plateau=3)))
    assert stopped[-1].reason == "converged" and stopped[-1].generation <= 8 and stopped[-1].renders < 80
    full = list(refine(target, [truth], Budget(renders=60, seconds=None), seed=2, renderer=pool, popsize=6))
    assert full[-1].reason == "budget" and full[-1].renders >= 55
