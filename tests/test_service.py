# SPDX-License-Identifier: GPL-3.0-or-later
"""The app's service without the UI: budget clamps, clip checks, and a tab's folder lifetime.

The engine itself (model, render pool, warm-up, display Synth) is exercised by
test_app through the served app; these check the per-user rules directly.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vital_inverse import service

ROOT = Path(__file__).resolve().parents[1]


def _session(tmp_path: Path) -> service.UserSession:
    folder = tmp_path / "tab"
    folder.mkdir()
    (folder / "original.wav").write_bytes(b"RIFF")
    return service.UserSession(SimpleNamespace(stop=threading.Event()), folder)


@pytest.mark.parametrize("kind, amount, renders, seconds", [
    ("renders", 10, 24, None),        # below the minimum
    ("renders", 10**6, 1200, None),   # above the maximum
    ("renders", "lots", 150, None),   # not a number: the default
    ("seconds", 1, None, 5.0),
    ("seconds", 1000, None, 300.0),
    ("bogus", 50, 50, None),          # an unknown kind counts renders
])
def test_budgets_are_clamped(kind, amount, renders, seconds):
    budget, text = service.clamp_budget(kind, amount)
    assert (budget.renders, budget.seconds) == (renders, seconds)
    assert text == (str(renders) if renders else f"a {seconds:.0f} s budget")


def test_a_retired_tab_keeps_its_files_until_its_refinement_ends(tmp_path):
    user = _session(tmp_path)
    assert not user.refining and user.wait_idle(0)
    with service.refining(user):
        assert user.refining and not user.wait_idle(0.01)
        service.retire(user)  # a new analysis took over this tab while it refines
        assert user.closed.is_set() and user.match.stop.is_set()
        assert user.folder.exists(), "the running refinement still writes there"
    assert not user.folder.exists() and user.wait_idle(0)


def test_an_idle_tab_is_deleted_at_once(tmp_path):
    user = _session(tmp_path)
    service.retire(user)
    assert not user.folder.exists()


def test_waiting_for_a_refinement_wakes_when_it_ends(tmp_path):
    user = _session(tmp_path)
    started = threading.Event()

    def refine():
        with service.refining(user):
            started.set()
            time.sleep(0.3)

    th = threading.Thread(target=refine)
    th.start()
    started.wait(5)
    t = time.monotonic()
    assert user.wait_idle(10)
    waited = time.monotonic() - t
    th.join()
    assert 0.1 < waited < 5, waited  # woken by the end of the refinement, not by the timeout


def test_clips_are_checked_before_analysis(tmp_path):
    import soundfile as sf

    a, problem = service.check_clip(ROOT / "examples" / "bass-nier.wav")
    assert problem is None and a.note == 36
    blip = tmp_path / "blip.wav"
    sf.write(blip, (0.5 * np.sin(2 * np.pi * 220 * np.arange(2205) / 44100)).astype(np.float32), 44100)
    a, problem = service.check_clip(blip)
    assert a is None and "lasts only 0.05 s" in problem
    text = tmp_path / "notes.wav"
    text.write_text("not a recording")
    a, problem = service.check_clip(text)
    assert a is None and problem


def test_a_dead_render_worker_is_replaced(shipped_predictor):
    """A render worker that dies (killed, out of memory) breaks the pool; the service starts a fresh one."""
    import concurrent.futures
    import os
    import signal

    from vital_inverse import session

    s = service.Service(workers=1).start(predictor=shipped_predictor)
    try:
        broken = s.renderer
        pid = broken.submit(session.warm_worker, 0).result(timeout=60)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(concurrent.futures.process.BrokenProcessPool) as info:
            broken.submit(session.warm_worker, 0).result(timeout=60)
        assert not s.recover(ValueError("not a pool error"))
        assert s.recover(info.value)
        assert s.renderer is not broken
        assert s.renderer.submit(session.warm_worker, 0).result(timeout=60) != pid  # a new worker answers
    finally:
        s.close()
