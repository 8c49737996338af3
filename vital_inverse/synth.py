# SPDX-License-Identifier: GPL-3.0-or-later
"""Rendering presets with Vita: one reused Synth, or a pool of worker
processes that each own and reuse one.

Building a ``vita.Synth`` is slow and a Synth must not be shared between
threads, so a ``Renderer`` owns exactly one and ``ParallelRenderer`` keeps
one per worker process for its whole life.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from .preset import Preset, PresetError

T = TypeVar("T")
R = TypeVar("R")

from .constants import RENDER_VELOCITY as DEFAULT_VELOCITY, SAMPLE_RATE  # noqa: F401 - re-exported
#: What a render accepts (checked by ``_check_note``; the CLI checks its arguments against these):
#: a MIDI note, a velocity in (0, 1] (Vita's range), positive finite lengths in seconds.
MIDI_NOTES = range(0, 128)
VELOCITY_MAX = 1.0
#: Length of the throwaway render that settles Vital before every real render (see ``Renderer.settle``).
SETTLE_SECONDS = 0.25
#: The throwaway's note is a blip this long: it advances Vital's clock without leaving a voice sounding.
SETTLE_NOTE_SECONDS = 0.001


@dataclass(frozen=True)
class RenderJob:
    """One note of one preset."""

    preset: Preset
    note: int = 60
    velocity: float = DEFAULT_VELOCITY
    note_seconds: float = 1.5
    render_seconds: float = 2.0


class Renderer:
    """Renders presets with one Vita Synth, reused across calls.

    Loading preset JSON makes Vital rebuild every wavetable (35-50 ms per
    multi-frame table), so when only scalar controls changed since the last
    load (the case in refinement, and for several notes of one preset) the
    new values are set through Vita's live control handles instead.
    Every render is preceded by a settling render (see ``settle``), so what
    it plays is what Vital plays once a musician has loaded the preset.
    """

    def __init__(self) -> None:
        import vita

        self._synth = vita.Synth()
        self._synth.set_sample_rate(SAMPLE_RATE)
        self._structure: bytes | None = None
        self._scalars: dict[str, float] = {}
        self._controls = self._synth.get_controls()

    @property
    def synth(self):
        """The underlying ``vita.Synth`` (for display text and tests)."""
        return self._synth

    def load_json(self, text: str, what: str = "preset") -> None:
        """Load .vital JSON, turning Vita's silent ``False`` into PresetError."""
        self._structure = None
        try:
            loaded = self._synth.load_json(text)
        except MemoryError:  # Vita's std::bad_alloc on absurd sizes in the JSON
            loaded = False
        if not loaded:
            raise PresetError(
                f"Vita could not load {what}: the JSON is malformed or made by a newer Vital version"
            )
        self._controls = self._synth.get_controls()

    def load(self, preset: Preset) -> None:
        """Make the Synth play ``preset``, reloading JSON only when its structure changed."""
        doc = preset.to_vital_dict()
        settings = doc["settings"]
        scalars = {k: float(v) for k, v in settings.items() if isinstance(v, (int, float))}
        structure = {k: v for k, v in settings.items() if not isinstance(v, (int, float))}
        key = hashlib.blake2b(json.dumps(structure).encode(), digest_size=16).digest()
        if key == self._structure:
            for name, value in scalars.items():
                if self._scalars.get(name) != value:
                    self._controls[name].set(value)
        else:
            self.load_json(json.dumps(doc), what=repr(preset.name))
            self._structure = key
        self._scalars = scalars

    def settle(self, note: int = 60, velocity: float = DEFAULT_VELOCITY) -> None:
        """Bring Vital to the state a musician hears after loading the preset: smoothing done, no voice left.

        Vital glides every smoothed control (one-pole, 5 Hz cutoff: time
        constant 32 ms) from its old value after a load or a change, and a
        voice of the previous render may still be releasing. A throwaway
        render of ``SETTLE_SECONDS`` whose note is a 1 ms blip lets the glide
        finish (a 100% change decays to 4e-4 of itself) and the old voices
        fade, without a held note whose release would leak into the real
        render (a 1 s held throwaway does: pads start audibly at t=0). At
        the real render's note, so portamento has nowhere to glide from.
        LFOs in Sync mode, chorus/flanger/phaser and random sources keep
        running free: their phase at note-on depends on what came before,
        as in Vital. Measurements: ``benchmarks/bench_settle.py``.
        """
        self._synth.render(int(note), float(velocity), SETTLE_NOTE_SECONDS, SETTLE_SECONDS)

    def render(
        self,
        preset: Preset | str,
        note: int = 60,
        velocity: float = DEFAULT_VELOCITY,
        note_seconds: float = 1.5,
        render_seconds: float = 2.0,
    ) -> np.ndarray:
        """float32 (2, n) audio at 44.1 kHz of one held note, played from the settled preset.

        ``preset`` is a Preset or .vital JSON text. Every render in the
        project (the CLI, the app's players, refinement and evaluation
        workers) comes here, so all of them hear the same settled Vital.
        """
        _check_note(note, velocity, note_seconds, render_seconds)
        for attempt in (0, 1):
            if isinstance(preset, str):
                self.load_json(preset)
            else:
                self.load(preset)
            self.settle(note, velocity)
            audio = np.asarray(
                self._synth.render(int(note), float(velocity), float(note_seconds), float(render_seconds)),
                dtype=np.float32,
            )
            if attempt == 0 and not _plausible(audio):
                # A render that is exactly silent or non-finite can come from a Synth left in a bad
                # state (e.g. a filter that blew up); rebuild it from the JSON once and render again.
                self._structure = None
                self._scalars = {}
                continue
            return audio
        return audio

    def render_job(self, job: RenderJob) -> np.ndarray:
        return self.render(job.preset, job.note, job.velocity, job.note_seconds, job.render_seconds)


def _plausible(audio: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(audio))) and bool(np.any(audio != 0.0))


def _check_note(note: int, velocity: float, note_seconds: float, render_seconds: float) -> None:
    if int(note) not in MIDI_NOTES:
        raise ValueError(f"MIDI note must be {MIDI_NOTES[0]}-{MIDI_NOTES[-1]}, got {note}")
    if not 0.0 < velocity <= VELOCITY_MAX:
        raise ValueError(f"velocity must be in (0, {VELOCITY_MAX:g}], got {velocity}")
    if not (0 < note_seconds < math.inf and 0 < render_seconds < math.inf):
        raise ValueError(f"note and render lengths must be positive, got {note_seconds} s and {render_seconds} s")


_local = threading.local()


def thread_renderer() -> Renderer:
    """This thread's Renderer, created on first use (a Synth per thread, never shared)."""
    r = getattr(_local, "renderer", None)
    if r is None:
        r = _local.renderer = Renderer()
    return r


def render(
    preset: Preset,
    note: int = 60,
    velocity: float = DEFAULT_VELOCITY,
    note_seconds: float = 1.5,
    render_seconds: float = 2.0,
) -> np.ndarray:
    """Render one note with this thread's reused Synth; float32 (2, n) at 44.1 kHz."""
    return thread_renderer().render(preset, note, velocity, note_seconds, render_seconds)


# --------------------------------------------------------------------------
# Parallel rendering
# --------------------------------------------------------------------------

_worker_renderer: Renderer | None = None


def single_threaded_math() -> None:
    """Keep BLAS/OpenMP to one thread in a worker process.

    Workers already fill every core; a multi-threaded BLAS on top of that
    spins for its share of a busy CPU and made a 64x1025 mel product 12x
    slower (measured: 9.7 ms vs 116 ms per log-mel).
    """
    from threadpoolctl import threadpool_limits

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    threadpool_limits(1)
    torch = sys.modules.get("torch")  # only if already loaded: importing it costs seconds
    if torch is not None:
        torch.set_num_threads(1)


def exit_with_parent(parent_pid: int) -> None:
    """End this worker when the process that started the pool dies.

    A killed parent (SIGKILL, a closed terminal) does not take
    ProcessPoolExecutor workers with it; left alone they would keep
    rendering and eat the cores of whatever runs next.
    """

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def in_render_worker() -> bool:
    """True inside a ParallelRenderer worker process (which is single-threaded by design)."""
    return _worker_renderer is not None


def worker_renderer() -> Renderer:
    """The Renderer of this render worker (inside ``ParallelRenderer.map``/``submit``), else this thread's own."""
    return _worker_renderer if _worker_renderer is not None else thread_renderer()


def _init_worker(parent_pid: int) -> None:
    global _worker_renderer
    exit_with_parent(parent_pid)
    single_threaded_math()
    _worker_renderer = Renderer()


def _render_chunk(jobs: Sequence[RenderJob]) -> list[np.ndarray | Exception]:
    """Render jobs in a worker; failures come back as exceptions, in place."""
    assert _worker_renderer is not None
    out: list[np.ndarray | Exception] = []
    for job in jobs:
        try:
            out.append(_worker_renderer.render_job(job))
        except Exception as e:  # returned, re-raised or recorded by the caller
            out.append(PresetError(str(e)) if not isinstance(e, (PresetError, ValueError)) else e)
    return out


class ParallelRenderer:
    """Renders batches on every core: worker processes, each owning one Synth.

    Results come back in the order of the jobs. Use as a context manager, or
    call ``close()``; closing frees the workers.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool: Executor | None = None

    def _executor(self) -> Executor:
        if self._pool is None:
            ctx = mp.get_context("forkserver") if "forkserver" in mp.get_all_start_methods() else mp.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                             initargs=(os.getpid(),))
        return self._pool

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``fn(item)`` for each item in the worker processes, results in order.

        For work that belongs next to the render (render and score, render and
        analyse) so only small results travel back. ``fn`` must be a module-level
        function; inside it, ``worker_renderer()`` is the worker's Synth.
        """
        return self._executor().map(fn, items)

    def pending(self) -> int:
        """Jobs submitted and not yet finished (queued or running in the workers)."""
        return 0 if self._pool is None else len(self._pool._pending_work_items)

    def worker_pids(self) -> set[int]:
        """Process ids of the live workers (empty before the first job)."""
        return set() if self._pool is None else {p.pid for p in (self._pool._processes or {}).values()}

    def submit(self, fn: Callable[..., R], *args) -> Future[R]:
        """Run ``fn(*args)`` in a worker; returns its Future (for pipelines that keep several in flight)."""
        return self._executor().submit(fn, *args)

    def warm(self) -> None:
        """Start the workers and build their Synths now rather than on the first batch."""
        list(self.map(_render_chunk, [[] for _ in range(self.workers)]))

    def render_jobs(self, jobs: Sequence[RenderJob], raise_errors: bool = True) -> list[np.ndarray | Exception]:
        """Render jobs in parallel, in order. With ``raise_errors=False`` a failed job yields its exception."""
        jobs = list(jobs)
        if not jobs:
            return []
        chunks = _chunks(jobs, self.workers)
        results: list[np.ndarray | Exception] = []
        for part in self._executor().map(_render_chunk, chunks):
            results.extend(part)
        if raise_errors:
            for r in results:
                if isinstance(r, Exception):
                    raise r
        return results

    def render_many(
        self,
        presets: Iterable[Preset],
        note: int = 60,
        velocity: float = DEFAULT_VELOCITY,
        note_seconds: float = 1.5,
        render_seconds: float = 2.0,
    ) -> list[np.ndarray]:
        """The same note for many presets, in order."""
        jobs = [RenderJob(p, note, velocity, note_seconds, render_seconds) for p in presets]
        return self.render_jobs(jobs)  # type: ignore[return-value]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ParallelRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _chunks(jobs: list[RenderJob], workers: int) -> list[list[RenderJob]]:
    """Split into contiguous chunks, a few per worker so a slow patch does not idle a core."""
    n = max(1, min(len(jobs), workers * 4))
    size = -(-len(jobs) // n)
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]
