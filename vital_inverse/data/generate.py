# SPDX-License-Identifier: GPL-3.0-or-later
"""Dataset generation: shards are independent jobs (sample -> render ->
check -> featurise -> write), run on a local process pool or as Ray tasks.

A worker owns one Renderer (one Synth) for its life and writes whole
shards itself, so only small progress ticks cross process boundaries and
the renders keep every core busy.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import SILENT_RENDER_PEAK
from ..features import log_mel
from ..params import ParamSpace, default_space
from ..progress import progress_bar
from . import dataset as ds
from .sampling import PresetSampler

SILENCE_PEAK = SILENT_RENDER_PEAK  # below this peak a render counts as silent (-80 dBFS)
CLIP_LEVEL = 1.0  # samples at or above full scale ...
CLIP_FRACTION = 1e-3  # ... in more than this fraction of the render mean it clips


def check_render(audio: np.ndarray) -> str | None:
    """Why a render is unusable ('non-finite', 'silent', 'clipping'), or None if fine."""
    if not np.all(np.isfinite(audio)):
        return "non-finite"
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak < SILENCE_PEAK:
        return "silent"
    if np.mean(np.abs(audio) >= CLIP_LEVEL) > CLIP_FRACTION:
        return "clipping"
    return None


@dataclass
class ShardResult:
    shard: int
    accepted: int
    rejected: dict[str, int]
    seconds: float
    renders: int


def generate_shard(root: str | Path, meta: ds.DatasetMeta, shard: int, space: ParamSpace | None = None,
                   renderer=None, tick: Callable[[int], None] | None = None) -> ShardResult:
    """Generate and write one shard; safe to re-run (it overwrites atomically)."""
    from ..synth import Renderer

    t0 = time.perf_counter()
    root = Path(root)
    space = space or default_space()
    renderer = renderer or Renderer()
    sampler = PresetSampler(space, meta.seed)
    fcfg = meta.feature_config
    keep: dict[str, list] = {"index": [], "continuous": [], "categorical": [], "mel": [], "audio": []}
    rejected_index, rejected_reason = [], []
    renders = 0
    render_time = 0.0
    for i in meta.shard_range(shard):
        preset = sampler.preset(i)
        audios, reason = [], None
        for note in meta.notes:
            t = time.perf_counter()
            a = renderer.render(preset, note, meta.velocity, meta.note_seconds, meta.render_seconds)
            render_time += time.perf_counter() - t
            renders += 1
            reason = check_render(a)
            if reason:
                break
            audios.append(a)
        if reason:
            rejected_index.append(i)
            rejected_reason.append(reason)
        else:
            keep["index"].append(i)
            keep["continuous"].append(space.continuous_vector(preset.values).astype(np.float32))
            keep["categorical"].append(space.categorical_indices(preset.values).astype(np.int16))
            keep["mel"].append(np.stack([log_mel(a, fcfg) for a in audios]).astype(np.float16))
            if meta.store_audio:
                keep["audio"].append(np.stack([_audio16k(a, meta.sample_rate) for a in audios]))
        if tick:
            tick(1)
    n_mels, n_frames = fcfg.n_mels, fcfg.n_frames
    arrays = {
        "index": np.asarray(keep["index"], dtype=np.int64),
        "continuous": np.asarray(keep["continuous"], dtype=np.float32).reshape(-1, len(space.continuous)),
        "categorical": np.asarray(keep["categorical"], dtype=np.int16).reshape(-1, len(space.categorical)),
        "mel": np.asarray(keep["mel"], dtype=np.float16).reshape(-1, len(meta.notes), n_mels, n_frames),
        "rejected_index": np.asarray(rejected_index, dtype=np.int64),
        "rejected_reason": np.asarray(rejected_reason, dtype="<U16"),
        "render_time": np.float64(render_time),
        "renders": np.int64(renders),
    }
    if meta.store_audio:
        arrays["audio"] = np.asarray(keep["audio"], dtype=np.int16).reshape(len(keep["index"]), len(meta.notes), -1)
    ds.write_shard(root, shard, arrays)
    counts: dict[str, int] = {}
    for r in rejected_reason:
        counts[r] = counts.get(r, 0) + 1
    return ShardResult(shard, len(keep["index"]), counts, time.perf_counter() - t0, renders)


def _audio16k(audio: np.ndarray, sr: int) -> np.ndarray:
    import soxr

    mono = audio.mean(axis=0)
    y = soxr.resample(mono, sr, ds.AUDIO_RATE)
    return np.clip(np.round(y * 32767), -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------------
# Local process pool
# --------------------------------------------------------------------------

_w: dict = {}


def _init_local(root: str, meta_json: str, queue, parent_pid: int) -> None:
    from ..synth import Renderer, exit_with_parent, single_threaded_math

    exit_with_parent(parent_pid)
    single_threaded_math()
    _w.update(root=root, meta=ds.DatasetMeta.from_json(meta_json), space=default_space(), renderer=Renderer(), queue=queue)


def _run_local(shard: int) -> ShardResult:
    q = _w["queue"]
    return generate_shard(_w["root"], _w["meta"], shard, _w["space"], _w["renderer"], tick=q.put)


def run(root: str | Path, meta: ds.DatasetMeta, workers: int | None = None, backend: str = "local",
        progress: bool = True, space: ParamSpace | None = None) -> dict:
    """Generate every missing shard and return a summary (counts, rates, rejection per reason)."""
    root = Path(root)
    space = space or default_space()
    meta = ds.prepare(root, meta)
    todo = sorted(set(range(meta.n_shards)) - ds.done_shards(root, meta))
    workers = max(1, workers or os.cpu_count() or 1)
    items_todo = sum(len(meta.shard_range(s)) for s in todo)
    t0 = time.perf_counter()
    results: list[ShardResult] = []
    bar = progress_bar(items_todo, f"generate ({backend}, {workers} workers)", unit="preset", enabled=progress,
                       smoothing=0.05)
    try:
        if backend == "local":
            results = _local(root, meta, todo, workers, bar)
        elif backend == "ray":
            results = _ray(root, meta, todo, workers, bar)
        else:
            raise ds.DatasetError(f"unknown backend {backend!r}; use 'local' or 'ray'")
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    summary = ds.shard_stats(root)
    new_presets = sum(r.accepted for r in results)
    new_renders = sum(r.renders for r in results)
    summary.update(
        wall_seconds=wall,
        shards_generated=len(results),
        accepted_per_second=new_presets / wall if wall > 0 and results else 0.0,
        renders_per_second=new_renders / wall if wall > 0 and results else 0.0,
        rejection_rate=(summary["attempted"] - summary["accepted"]) / max(1, summary["attempted"]),
    )
    return summary


def _local(root: Path, meta: ds.DatasetMeta, todo: list[int], workers: int, bar) -> list[ShardResult]:
    if not todo:
        return []
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("forkserver") if "forkserver" in mp.get_all_start_methods() else mp.get_context("spawn")
    queue = ctx.Manager().Queue()
    results = []
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_local,
                             initargs=(str(root), meta.to_json(), queue, os.getpid())) as ex:
        pending = {ex.submit(_run_local, s) for s in todo}
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            _drain(queue, bar)
            for f in done:
                results.append(f.result())
        _drain(queue, bar)
    return results


def _drain(queue, bar) -> None:
    n = 0
    while True:
        try:
            n += queue.get_nowait()
        except Exception:
            break
    if n:
        bar.update(n)


# --------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------


def _ray(root: Path, meta: ds.DatasetMeta, todo: list[int], workers: int, bar) -> list[ShardResult]:
    """Run shards as Ray tasks: on a cluster when RAY_ADDRESS is set, else a local Ray instance."""
    try:
        import ray
    except ImportError:
        raise ds.DatasetError("--backend ray needs Ray: pip install 'ray[default]'") from None
    if not todo:
        return []
    started = False
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), num_cpus=None if os.environ.get("RAY_ADDRESS") else workers,
                 include_dashboard=False, log_to_driver=False)
        started = True
    try:
        task = ray.remote(num_cpus=1)(_ray_shard)
        refs = [task.remote(str(root), meta.to_json(), s) for s in todo]
        results = []
        while refs:
            ready, refs = ray.wait(refs, num_returns=1)
            r = ray.get(ready[0])
            results.append(r)
            bar.update(len(meta.shard_range(r.shard)))
        return results
    finally:
        if started:
            ray.shutdown()


def _ray_shard(root: str, meta_json: str, shard: int) -> ShardResult:
    from ..synth import single_threaded_math

    single_threaded_math()
    return generate_shard(root, ds.DatasetMeta.from_json(meta_json), shard)
