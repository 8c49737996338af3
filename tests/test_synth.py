# SPDX-License-Identifier: GPL-3.0-or-later
"""Rendering: shape and rate, reuse of one Synth, the parallel renderer's order."""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
import vita

from vital_inverse.data.sampling import PresetSampler
from vital_inverse.features import log_mel
from vital_inverse.preset import Preset
from vital_inverse.synth import SAMPLE_RATE, Renderer, RenderJob, render


def _dist(a, b):
    return float(np.mean(np.abs(log_mel(a) - log_mel(b))))


def test_render_shape_rate_and_note_length(renderer):
    audio = renderer.render(Preset.init(), 60, 0.8, 0.3, 0.5)
    assert audio.dtype == np.float32 and audio.shape == (2, int(0.5 * SAMPLE_RATE))
    assert np.abs(audio).max() > 0.05
    # the held part is louder than the tail after release
    held = np.abs(audio[:, int(0.1 * SAMPLE_RATE):int(0.25 * SAMPLE_RATE)]).mean()
    tail = np.abs(audio[:, int(0.45 * SAMPLE_RATE):]).mean()
    assert held > 3 * tail


def test_pitch_follows_the_note(renderer):
    """Init saw at MIDI 69 has its fundamental at 440 Hz (physical check)."""
    audio = renderer.render(Preset.init(), 69, 0.8, 0.5, 0.5)[0]
    spec = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    f = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    peak = f[np.argmax(spec[f > 100]) + np.searchsorted(f, 100, side="right")]
    assert abs(peak - 440.0) < 5.0


def test_scalar_changes_skip_the_reload_and_sound_the_same(space):
    """Control-handle updates give what a fresh Synth loading the JSON gives."""
    r = Renderer()
    base = PresetSampler(space, seed=11).preset(1)
    r.render(base, 60, 0.8, 0.3, 0.5)
    changed = base.with_values({"filter_1_on": base.values["filter_1_on"], "osc_1_level": 0.3, "env_1_attack": 0.6})
    a = r.render(changed, 60, 0.8, 0.3, 0.5)
    fresh = vita.Synth()
    assert fresh.load_json(changed.to_vital_json())
    c, c2 = fresh.render(60, 0.8, 0.3, 0.5), fresh.render(60, 0.8, 0.3, 0.5)
    assert _dist(a, c) <= 2 * _dist(c, c2) + 0.05


def test_bad_note_arguments(renderer):
    with pytest.raises(ValueError, match="MIDI note"):
        renderer.render(Preset.init(), 200)
    with pytest.raises(ValueError, match="velocity"):
        renderer.render(Preset.init(), 60, 0.0)
    with pytest.raises(ValueError, match="positive"):
        renderer.render(Preset.init(), 60, 0.8, 0.0, 1.0)


def test_parallel_renderer_returns_results_in_order(space, render_pool):
    sampler = PresetSampler(space, seed=2)
    presets = [sampler.preset(i) for i in range(6)]
    jobs = [RenderJob(p, note, 0.8, 0.2, 0.3) for p in presets for note in (48, 72)]
    serial = [render(j.preset, j.note, j.velocity, j.note_seconds, j.render_seconds) for j in jobs]
    with contextlib.nullcontext(render_pool) as pr:  # the session's pool (starting one costs seconds)
        parallel = pr.render_jobs(jobs)
        assert len(parallel) == len(jobs)
        # each parallel result is nearest to its own serial render (distinct presets and notes)
        d = np.array([[_dist(s, p) for p in parallel] for s in serial])
        # (a noise-like preset sounds alike at two notes, hence the small slack)
        assert np.all(np.diag(d) <= d.min(axis=1) + 0.25), np.round(d, 2)
        assert np.mean(np.diag(d)) < np.mean(d) / 3
        assert np.median(np.diag(d)) < 1.0
        # a failing job comes back in its place when asked, and raises otherwise
        bad = RenderJob(Preset.init(), 500)
        out = pr.render_jobs([jobs[0], bad, jobs[1]], raise_errors=False)
        assert isinstance(out[1], ValueError) and isinstance(out[0], np.ndarray) and isinstance(out[2], np.ndarray)
        with pytest.raises(ValueError, match="MIDI note"):
            pr.render_jobs([bad])


def _rms_in_worker(job: RenderJob) -> tuple[int, bool, float]:
    """Runs inside a render worker: render with the worker's own Synth, send back only its RMS."""
    from vital_inverse.synth import in_render_worker, worker_renderer

    audio = worker_renderer().render_job(job)
    return os.getpid(), in_render_worker(), float(np.sqrt(np.mean(np.square(audio))))


def test_map_and_submit_run_work_next_to_the_workers_synth(render_pool):
    jobs = [RenderJob(Preset.init(), note, 0.8, 0.2, 0.3) for note in (48, 60, 72, 84)]
    with contextlib.nullcontext(render_pool) as pr:
        out = list(pr.map(_rms_in_worker, jobs))
        assert [o[1] for o in out] == [True] * 4  # ran in the workers, not here
        assert {o[0] for o in out} <= pr.worker_pids()
        assert all(o[2] > 0.01 for o in out)
        assert pr.submit(_rms_in_worker, jobs[0]).result()[2] == pytest.approx(out[0][2], rel=0.1)
    from vital_inverse.synth import in_render_worker

    assert not in_render_worker()


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    """A SIGKILLed parent does not leave rendering workers behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import os, sys, time\n"
        "from vital_inverse.synth import ParallelRenderer\n"
        "pr = ParallelRenderer(2); pr.warm()\n"
        "import multiprocessing as mp\n"
        "print(' '.join(str(p) for p in pr.worker_pids()), flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as f:  # a zombie is gone for our purpose
            return f.read().split()[2] != "Z"

    deadline = time.time() + 10
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    assert not any(alive(p) for p in pids)


def _dark_and_bright(space) -> tuple[Preset, Preset]:
    """Init with filter 1 on: cutoff at the bottom (dark) or the top (bright); the same structure, so the
    second render after the first only sets controls, and Vital glides the cutoff between them."""
    cutoff = space["filter_1_cutoff"]
    dark = Preset.from_values({"filter_1_on": "On", "filter_1_cutoff": cutoff.min + 0.25 * (cutoff.max - cutoff.min)},
                              space)
    return dark, dark.with_values({"filter_1_cutoff": cutoff.max})


def test_a_render_after_another_preset_equals_a_fresh_settled_one(space):
    """What a render plays does not depend on what came before: the settle lets Vital's smoothing finish."""
    import itertools

    from vital_inverse.metrics import mss

    dark, bright = _dark_and_bright(space)
    args = (60, 0.8, 0.3, 0.5)
    fresh = [Renderer().render(dark, *args) for _ in range(4)]  # random oscillator phases: compare means
    noise = float(np.mean([mss(a, b) for a, b in itertools.combinations(fresh, 2)]))
    bound = 1.5 * noise + 0.5
    r = Renderer()
    r.render(bright, 72, 0.8, 0.3, 0.5)  # a very different sound and note first
    after = r.render(dark, *args)
    assert np.mean([mss(after, f) for f in fresh]) <= bound, noise
    # the same Vita without the settle plays the glide from the bright cutoff: audibly different
    synth = vita.Synth()
    assert synth.load_json(bright.to_vital_json())
    synth.render(72, 0.8, 0.3, 0.5)
    synth.get_controls()["filter_1_cutoff"].set(float(dark.values["filter_1_cutoff"]))
    gliding = np.asarray(synth.render(*args))
    assert np.mean([mss(gliding, f) for f in fresh]) > 2 * bound, noise
