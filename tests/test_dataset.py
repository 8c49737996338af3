# SPDX-License-Identifier: GPL-3.0-or-later
"""Dataset generation on tiny runs: determinism, resume after a kill, split by
preset, rejection, clear errors, and the Ray backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vital_inverse.data import dataset as ds
from vital_inverse.data.generate import check_render, run
from vital_inverse.data.sampling import PresetSampler, sample_preset
from vital_inverse.features import FeatureConfig

TINY = dict(notes=(48, 72), note_seconds=0.3, render_seconds=0.5, features=FeatureConfig(seconds=0.5).to_dict())


def tiny_meta(space, n=12, shard_size=4, seed=7, **kw) -> ds.DatasetMeta:
    return ds.DatasetMeta(space_hash=space.hash, seed=seed, n=n, shard_size=shard_size, **{**TINY, **kw})


def _arrays(root: Path) -> dict[str, np.ndarray]:
    meta = ds.read_meta(root)
    out: dict[str, list] = {}
    for s in range(meta.n_shards):
        with np.load(ds.shard_path(root, s)) as z:
            for k in ("index", "continuous", "categorical", "rejected_index"):
                out.setdefault(k, []).append(z[k])
    return {k: np.concatenate(v) for k, v in out.items()}


def test_items_depend_only_on_seed_and_index(space):
    a = PresetSampler(space, 3)
    forward = [a.values(i) for i in range(70)]
    b = PresetSampler(space, 3)
    assert b.values(69) == forward[69] and b.values(5) == forward[5]
    assert sample_preset(space, 3, 42).values == forward[42]
    assert PresetSampler(space, 4).values(5) != forward[5]


def test_latin_hypercube_covers_each_stratum(space):
    """Within a block, each parameter's uniforms fall one per stratum."""
    s = PresetSampler(space, 9)
    strata = s.block_strata(0)
    assert all(sorted(row) == list(range(strata.shape[1])) for row in strata)


def test_priors_look_like_presets_people_make(space):
    s = PresetSampler(space, 1)
    vals = [s.values(i) for i in range(300)]
    on = lambda v, n: space[n].index_of(v[n]) != 0
    assert np.mean([on(v, "reverb_on") for v in vals]) < 0.5
    assert np.mean([on(v, "flanger_on") for v in vals]) < 0.25
    assert np.mean([on(v, "filter_1_on") for v in vals]) > 0.5
    assert np.mean([v["osc_1_unison_voices"] == 1 for v in vals]) > 0.4
    assert np.mean([v["mod_lfo1_pitch"] == 0 for v in vals]) > 0.6
    assert all(any(on(v, n) for n in ("osc_1_on", "osc_2_on", "osc_3_on", "sample_on")) for v in vals)


def test_check_render_reasons():
    n = 1000
    assert check_render(np.zeros((2, n), np.float32)) == "silent"
    assert check_render(np.full((2, n), np.nan, np.float32)) == "non-finite"
    assert check_render(np.ones((2, n), np.float32) * 1.5) == "clipping"
    assert check_render(0.5 * np.sin(np.linspace(0, 100, 2 * n, dtype=np.float32)).reshape(2, n)) is None


def test_generation_is_deterministic_self_describing_and_split_by_preset(space, tmp_path):
    s1 = run(tmp_path / "a", tiny_meta(space), workers=2, progress=False)
    s2 = run(tmp_path / "b", tiny_meta(space), workers=1, progress=False)
    a, b = _arrays(tmp_path / "a"), _arrays(tmp_path / "b")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert s1["attempted"] == s2["attempted"] == 12
    assert s1["accepted"] + sum(s1["rejected"].values()) == 12
    meta = json.loads((tmp_path / "a" / "dataset.json").read_text())
    assert meta["space_hash"] == space.hash and meta["notes"] == [48, 72] and meta["features"]["seconds"] == 0.5
    # every accepted item regenerates alone, and its stored vector is its own
    for i, vec in zip(a["index"], a["continuous"]):
        np.testing.assert_allclose(space.continuous_vector(sample_preset(space, 7, int(i)).values), vec, atol=1e-6)
    # all notes of a preset are stored together; splits never share a preset
    data = ds.load(tmp_path / "a", ("train", "val", "test"))
    assert data.mel.shape[1:] == (2, 64, FeatureConfig(seconds=0.5).n_frames)
    splits = {sp: set(ds.load(tmp_path / "a", (sp,)).index) if any(ds.split_of(7, int(i)) == sp for i in a["index"]) else set()
              for sp in ds.SPLITS}
    assert not (splits["train"] & splits["val"]) and not (splits["train"] & splits["test"])
    assert sum(len(v) for v in splits.values()) == len(a["index"])


def test_split_fractions_by_preset():
    counts = {s: 0 for s in ds.SPLITS}
    for i in range(20000):
        counts[ds.split_of(1, i)] += 1
    assert abs(counts["train"] / 20000 - 0.9) < 0.01 and abs(counts["test"] / 20000 - 0.05) < 0.01


def test_resume_after_kill(space, tmp_path):
    """Kill a CLI run after its first shard; no partial shard is left, and a rerun completes it identically."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vital_inverse.cli", "generate", "--out", str(out), "--n", "24", "--shard-size", "4",
           "--notes", "48,72", "--note-seconds", "0.3", "--render-seconds", "0.5", "--seed", "7", "--workers", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "shards").glob("shard-*.npz")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = sorted((out / "shards").glob("shard-*.npz"))
    assert 1 <= len(first) < 6, "the run should have been killed part-way"
    meta = ds.read_meta(out)
    assert ds.done_shards(out, meta) == {int(p.stem.split("-")[1]) for p in first}
    summary = run(out, tiny_meta(space, n=24), workers=2, progress=False)
    assert summary["attempted"] == 24 and summary["shards_generated"] == 6 - len(first)
    assert not list((out / "shards").glob("*.tmp*"))
    clean = tmp_path / "clean"
    run(clean, tiny_meta(space, n=24), workers=2, progress=False)
    a, b = _arrays(out), _arrays(clean)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_growing_a_dataset_keeps_its_items_and_completes_the_short_last_shard(space, tmp_path):
    out = tmp_path / "grow"
    run(out, tiny_meta(space, n=6), workers=1, progress=False)  # shards [0-3], [4-5]
    with np.load(ds.shard_path(out, 0)) as z:
        first = {k: z[k].copy() for k in ("index", "continuous")}
    summary = run(out, tiny_meta(space, n=10), workers=1, progress=False)  # [0-3] kept, [4-7] redone, [8-9] new
    assert summary["shards_generated"] == 2
    a = _arrays(out)
    assert sorted(np.concatenate([a["index"], a["rejected_index"]]).tolist()) == list(range(10))
    with np.load(ds.shard_path(out, 0)) as z:
        np.testing.assert_array_equal(z["index"], first["index"])
        np.testing.assert_array_equal(z["continuous"], first["continuous"])


def test_bad_inputs_give_clear_errors(space, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ds.DatasetError, match="is a file"):
        run(a_file, tiny_meta(space), progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "dataset.json").write_text(tiny_meta(space).to_json().replace(space.hash, "0123456789abcdef"))
    with pytest.raises(ds.DatasetError, match="ParamSpace 0123456789abcdef"):
        run(other, tiny_meta(space), progress=False)
    r = subprocess.run([sys.executable, "-m", "vital_inverse.cli", "generate", "--out", str(tmp_path / "z"), "--n", "0"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--n must be a positive number" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(ds.DatasetError, match="not a dataset"):
        ds.read_meta(tmp_path)


def test_full_disk_is_a_clear_error_and_resumable(space, tmp_path):
    """A real full disk: a 200 kB tmpfs. The error names the problem; nothing half-written stays."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)], capture_output=True, text=True)
    assert r.returncode == 0, f"cannot mount a small tmpfs to fill (needs root): {r.stderr}"
    try:
        with pytest.raises(ds.DatasetError, match="disk is full"):
            run(mnt / "d", tiny_meta(space, n=48, shard_size=4), workers=1, progress=False)
        assert not list((mnt / "d" / "shards").glob("*.tmp*"))
        for p in (mnt / "d" / "shards").glob("*.npz"):
            with np.load(p) as z:
                assert "index" in z.files  # every shard left behind is whole
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_ray_backend_on_a_local_instance(space, tmp_path):
    import ray

    summary = run(tmp_path / "r", tiny_meta(space, n=8), workers=2, backend="ray", progress=False)
    assert summary["attempted"] == 8 and not ray.is_initialized()
    local = tmp_path / "l"
    run(local, tiny_meta(space, n=8), workers=1, progress=False)
    a, b = _arrays(tmp_path / "r"), _arrays(local)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
