# SPDX-License-Identifier: GPL-3.0-or-later
"""The matching service behind the web app: shared engine and per-user sessions, no UI.

``Service`` holds what every user shares, loaded once: the predictor, one pool of
render worker processes, and one Synth for reading Vital's display text (the
settings table; a Synth is not thread-safe, so its use is serialised). It warms
every first-call path at start-up and replaces a worker pool that died.

``UserSession`` is what one browser tab owns: its match and a private temporary
folder, deleted when the tab's match is replaced or expires (after a running
refinement has ended). Waiting for a refinement to end is by event, not polling.

The app builds one ``Service`` in ``main()`` and hands it to the UI.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import intake, plots, session
from .errors import UserError
from .intake import Analysis, IntakeLimits
from .tutorial.report import parameter_table

log = logging.getLogger("vital_inverse.service")

#: what an upload may be: 20 MB, 30 s of audio; the first 4 s of the first note are analysed
LIMITS = IntakeLimits(max_bytes=20 * 1024 * 1024, max_seconds=30.0, analysis_seconds=4.0)
#: a note shorter than this (s) is refused: too short to hear its sound or to score a match
MIN_NOTE_SECONDS = 0.1
#: the network's most probable presets rendered per analysis (beside library and clip candidates)
K_CANDIDATES = 4
#: refinement budgets a user may ask for, by kind: (min, max, default, step); clamped server-side
BUDGETS = {"renders": (24, 1200, 150, 1), "seconds": (5, 300, 30, 5)}


# --------------------------------------------------------------------------
# Per-user state and its folder
# --------------------------------------------------------------------------


@dataclass(eq=False)
class UserSession:
    """One browser tab's match and its private folder (copies made by ``replace`` share the events)."""

    match: session.MatchState
    folder: Path
    #: clear while a refinement of this tab runs; set when none does
    idle: threading.Event = field(default_factory=lambda: _set(threading.Event()))
    #: set when a new analysis replaced this one: its refinement must not touch the tab any more
    closed: threading.Event = field(default_factory=threading.Event)

    @property
    def refining(self) -> bool:
        return not self.idle.is_set()

    def file(self, stem: str, suffix: str = ".wav") -> Path:
        """A new file name in this tab's folder (a new name per update: browsers cache by URL)."""
        return self.folder / f"{stem}-{uuid.uuid4().hex[:8]}{suffix}"

    def wait_idle(self, timeout: float) -> bool:
        """Block until no refinement of this tab runs (or ``timeout`` s pass); True when none runs."""
        return self.idle.wait(timeout)


def _set(event: threading.Event) -> threading.Event:
    event.set()
    return event


def open_session(match: session.MatchState) -> UserSession:
    """A new tab state for ``match``, with a fresh temporary folder of its own."""
    return UserSession(match, Path(tempfile.mkdtemp(prefix="vital-inverse-")))


def delete_session(value: object) -> None:
    """Delete a session's folder (gradio calls this when a tab's state expires)."""
    if isinstance(value, UserSession):
        shutil.rmtree(value.folder, ignore_errors=True)


def retire(old: UserSession | None) -> None:
    """A new analysis replaces ``old``: stop its refinement, delete its files now or when that ends."""
    if old is None:
        return
    old.closed.set()
    old.match.stop.set()
    if not old.refining:
        delete_session(old)


@contextlib.contextmanager
def refining(user: UserSession) -> Iterator[None]:
    """Mark ``user`` as refining for the block; a session retired meanwhile is deleted at its end."""
    user.idle.clear()
    try:
        yield
    finally:
        user.idle.set()
        if user.closed.is_set():
            delete_session(user)


# --------------------------------------------------------------------------
# Checks and clamps on what a user asks for
# --------------------------------------------------------------------------


def too_short(a: Analysis) -> str | None:
    """Why ``a``'s note is too short to match, or None."""
    if a.render_seconds < MIN_NOTE_SECONDS:
        return (f"The note in this clip lasts only {a.render_seconds:.2f} s; a note needs at least "
                f"{MIN_NOTE_SECONDS:.1f} s of sound to be matched. Upload a longer clip of one note.")
    return None


def check_clip(clip: str | os.PathLike) -> tuple[Analysis | None, str | None]:
    """Read an uploaded clip now: (its analysis, None), or (None, why it is refused)."""
    try:
        a = intake.analyze_file(clip, LIMITS)
    except UserError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - a decoder's own error: the file is not usable audio
        log.info("upload refused: %s", e)
        return None, (f"'{Path(str(clip)).name}' could not be read as audio. Upload a WAV, FLAC, OGG or MP3 "
                      f"file of one note.")
    problem = too_short(a)
    return (None, problem) if problem else (a, None)


def clamp_budget(kind: str, amount: object):
    """The refinement budget for a kind ("renders" or "seconds") and amount, clamped to ``BUDGETS``.

    Returns (``refine.Budget``, how to say it: "150" renders or "a 30 s budget")."""
    from .refine import Budget

    kind = kind if kind in BUDGETS else "renders"
    lo, hi, default, _ = BUDGETS[kind]
    try:
        value = float(amount)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = default
    value = min(max(value, lo), hi)
    if kind == "renders":
        return Budget(renders=int(value), seconds=None), f"{int(value)}"
    return Budget(renders=None, seconds=value), f"a {value:.0f} s budget"


def locked_names(modules: Sequence[str] | None, settings: Sequence[str] | None) -> frozenset[str]:
    """Parameter names the user ticked to keep (whole modules and single settings)."""
    from .locks import expand_locks
    from .params import default_space

    return expand_locks(default_space(), [*(modules or []), *(settings or [])])


# --------------------------------------------------------------------------
# The shared engine
# --------------------------------------------------------------------------


class Service:
    """The predictor, the render workers and the display Synth, loaded once and shared by every user.

    ``workers``: render processes (default: one per core). ``warm_clip``: a clip
    analysed, predicted, drawn and exported once at start-up so that no user pays
    for a first call (None: skip that part of the warm-up)."""

    def __init__(self, workers: int | None = None, warm_clip: Path | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.warm_clip = warm_clip
        self._lock = threading.Lock()
        self._predictor = None
        self._renderer = None
        self._display = None  # a synth.Renderer for reading Vital's display text
        self._display_lock = threading.Lock()
        self._owns_renderer = True
        self.startup_seconds: dict[str, float] = {}

    @property
    def ready(self) -> bool:
        return self._predictor is not None and self._renderer is not None

    def start(self, predictor=None, renderer=None) -> Service:
        """Load the model, start and warm the render workers and every first-call path. Idempotent.

        ``predictor``/``renderer`` (a ParallelRenderer) may be handed in, already loaded (tests share
        them); a renderer handed in is left open by ``close``."""
        with self._lock:
            if self.ready:
                return self
            t0 = time.perf_counter()
            from .predict import PresetPredictor
            from .synth import ParallelRenderer, Renderer

            self.startup_seconds["import"] = time.perf_counter() - t0
            self._owns_renderer = renderer is None
            renderer = renderer or ParallelRenderer(self.workers)
            # The workers start (each builds its Synth, imports torch and runs the loss once)
            # while this process loads the model and warms its own first-call paths.
            warming = threading.Thread(target=_warm_workers, args=(renderer,), daemon=True)
            warming.start()
            try:
                t = time.perf_counter()
                predictor = predictor or PresetPredictor.load()
                self.startup_seconds["load_model"] = time.perf_counter() - t
                t = time.perf_counter()
                intake.warm_up()
                self._display = Renderer()
                self._warm_here(predictor)
                self.startup_seconds["warm_here"] = time.perf_counter() - t
            finally:
                t = time.perf_counter()
                warming.join()
                self.startup_seconds["wait_workers"] = time.perf_counter() - t
                if self._display is None and self._owns_renderer:  # start-up failed: do not leave the workers behind
                    renderer.close()
            self._predictor, self._renderer = predictor, renderer
            self.startup_seconds["total"] = time.perf_counter() - t0
            log.info("engine ready in %.1f s (%s)", self.startup_seconds["total"],
                     ", ".join(f"{k} {v:.1f} s" for k, v in self.startup_seconds.items()))
            return self

    def _warm_here(self, predictor) -> None:
        """Predict, draw, read a report and export once (torch, matplotlib, Vita's Init document)."""
        if self.warm_clip is None:
            return
        analysis = intake.analyze_file(self.warm_clip, LIMITS)
        preset = predictor.predict(analysis, k=K_CANDIDATES)[0].preset
        plots.spectrogram_figure(analysis.audio, analysis.audio)
        self.parameter_table(preset)
        with tempfile.TemporaryDirectory(prefix="vital-inverse-warm-") as d:
            preset.save(Path(d) / "warm.vital")

    @property
    def predictor(self):
        return self.start()._predictor

    @property
    def renderer(self):
        return self.start()._renderer

    def parameter_table(self, preset, locked: frozenset[str] = frozenset()) -> list[list[str]]:
        """The settings table (the display report's rows), read through the one display Synth."""
        with self._display_lock:
            return parameter_table(preset, renderer=self._display, locked=locked)

    def analyze_clip(self, clip, progress: session.Progress | None = None) -> session.MatchState:
        """Analyse a clip and keep the closest of its candidates (``session.analyze_clip``) on the shared pool."""
        return session.analyze_clip(clip, self.predictor, self.renderer, k=K_CANDIDATES, limits=LIMITS,
                                    progress=progress)

    def recover(self, exc: BaseException) -> bool:
        """After an error: if a render worker died, start a fresh pool. True when it did."""
        if not isinstance(exc, concurrent.futures.process.BrokenProcessPool):
            return False
        self.reset_renderer()
        return True

    def reset_renderer(self) -> None:
        """Replace a broken worker pool (a worker process died) with a fresh one."""
        from .synth import ParallelRenderer

        with self._lock:
            old, self._renderer = self._renderer, ParallelRenderer(self.workers)
            owned, self._owns_renderer = self._owns_renderer, True
        if old is not None and owned:
            try:
                old.close()
            except Exception as e:  # noqa: BLE001 - it is already broken
                log.debug("closing the broken worker pool: %s", e)

    def close(self) -> None:
        """Stop the render workers this service started (a pool handed in stays open)."""
        with self._lock:
            if self._renderer is not None and self._owns_renderer:
                self._renderer.close()
            self._renderer = None


def _warm_workers(renderer) -> None:
    renderer.warm()
    list(renderer.map(session.warm_worker, range(renderer.workers)))
