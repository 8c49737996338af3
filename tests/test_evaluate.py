# SPDX-License-Identifier: GPL-3.0-or-later
"""The evaluation suite on tiny inputs: a generated 8-preset dataset (0.5 s notes)
and two human presets at one note, everything rendered in this process (workers=0)."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from vital_inverse import evaluate as ev
from vital_inverse.evaluate.baselines import MeanBaseline, NearestNeighbour, mean_from_vectors
from vital_inverse.data import dataset as ds
from vital_inverse.data.generate import run
from vital_inverse.data.sampling import PresetSampler, mean_values
from vital_inverse.features import FeatureConfig
from vital_inverse.intake import analyze

# seed 88: items 0 and 1 fall in the test split, 2-7 in train (dataset.split_of)
TINY = {"notes": (48, 72), "note_seconds": 0.3, "render_seconds": 0.5, "features": FeatureConfig(seconds=0.5).to_dict()}
SEED, N = 88, 8
HUMAN = ("PS-20-Oboe", "JX300P")


@pytest.fixture(scope="module")
def dataset(space, tmp_path_factory):
    root = tmp_path_factory.mktemp("evalset") / "data"
    meta = ds.DatasetMeta(space_hash=space.hash, seed=SEED, n=N, shard_size=4, **TINY)
    run(root, meta, workers=1, progress=False, space=space)
    test = ds.load(root, ("test",))
    train = ds.load(root, ("train",))
    assert test.n_presets >= 1 and train.n_presets >= 3, "the tiny dataset lost its test/train items to rejection"
    return root


@pytest.fixture(scope="module")
def synthetic_run(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic-results")
    return ev.evaluate(f"synthetic:{dataset}", "init,nearest", out, limit=1, workers=0, progress=False)


@pytest.fixture(scope="module")
def human_run(human_presets, tmp_path_factory):
    folder = tmp_path_factory.mktemp("human")
    by_stem = {p.stem: p for p in human_presets}
    for name in HUMAN:
        shutil.copy(by_stem[name], folder / f"{name}.vital")
    (folder / "Corrupt.vital").write_text('{"preset_name": "half a file", "settings": {')
    out = tmp_path_factory.mktemp("human-results")
    # one note, a shorter note than the default 1.5 s in 2.0 s to keep the test quick
    return ev.evaluate(f"presets:{folder}", "init", out, notes="60", note_seconds=0.6, render_seconds=1.0,
                       workers=0, progress=False)


def _rows(result, method=None):
    with open(result.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if method is None or r["method"] == method]


def test_synthetic_rows_and_summary_are_written(synthetic_run, dataset):
    rows = _rows(synthetic_run)
    n_test = 1  # limit=1
    for m in ("init", "nearest", "floor", "oracle"):
        got = [r for r in rows if r["method"] == m]
        assert len(got) == n_test * 2, m  # one row per item x note (48, 72)
        assert all(not r["error"] for r in got), [r["error"] for r in got]
        assert all(float(r["mss"]) >= 0 and 0 <= float(r["rms"]) <= 1 for r in got)
    for r in _rows(synthetic_run, "init") + _rows(synthetic_run, "nearest"):
        assert 0 <= float(r["param_mae"]) <= 1 and 0 <= float(r["cat_acc"]) <= 1
        assert int(r["analysed_note"]) in range(128) and float(r["render_seconds"]) > 0
    assert all(r["detail"].startswith("item ") for r in _rows(synthetic_run, "nearest"))
    text = synthetic_run.summary.read_text()
    assert "| init |" in text and "| nearest |" in text and "| floor |" in text and "95% CI" in text
    assert (synthetic_run.out / "run.json").exists()
    # the summary can be rebuilt from the CSV alone
    assert "| nearest |" in ev.summarize(ev.load_rows(synthetic_run.csv))


def test_human_presets_failure_is_recorded_and_the_run_goes_on(human_run):
    rows = _rows(human_run)
    bad = [r for r in rows if r["item"] == "Corrupt"]
    assert len(bad) == 1 and bad[0]["method"] == "init" and "PresetError" in bad[0]["error"]
    good = [r for r in rows if r["item"] in HUMAN]
    assert {(r["item"], r["method"]) for r in good} == {(h, m) for h in HUMAN for m in ("init", "floor", "oracle")}
    assert all(not r["error"] and r["note"] == "60" for r in good)
    assert "Corrupt" in human_run.summary.read_text()


def test_render_twice_floor_is_below_inits_mss(human_run):
    mss = {(r["item"], r["method"]): float(r["mss"]) for r in _rows(human_run) if r["item"] in HUMAN}
    floor, init, oracle = ({h: mss[h, m] for h in HUMAN} for m in ("floor", "init", "oracle"))
    for name in HUMAN:
        assert floor[name] < init[name] and oracle[name] < init[name], (name, floor, oracle, init)


def test_nearest_retrieves_a_training_item_from_its_own_set(dataset, renderer):
    nn = NearestNeighbour(dataset)
    data = ds.load(dataset, ("train",))
    for row in range(len(nn)):  # its own stored log-mel: itself, at distance 0
        for j, note in enumerate(nn.notes):
            hit = nn.query(data.mel[row, j], note)
            assert hit.row == row and hit.distance < 0.1  # dB; float32 rounding of the expanded L2
    meta = nn.meta
    checked = 0
    for row in range(len(nn)):  # a fresh render analysed like a clip: the same item again
        preset = nn.preset_of(row)
        audio = renderer.render(preset, 72, meta.velocity, meta.note_seconds, meta.render_seconds)
        a = analyze(audio, 44100, "train-item")
        if a.note != 72:  # pitch misread: a different stored note would be compared
            continue
        found, hit = nn.lookup(a)
        assert hit.index == int(nn.index[row]) and found.values == preset.values
        checked += 1
    assert checked >= 1


def test_mean_baseline_equals_mean_values_over_regenerated_items(dataset, space):
    data = ds.load(dataset, ("train",))
    sampler = PresetSampler(space, SEED)
    expected = mean_values(space, [sampler.values(int(i)) for i in data.index])
    got = mean_from_vectors(space, data.continuous, data.categorical)
    assert got.keys() == expected.keys()
    for name, v in expected.items():
        assert got[name] == pytest.approx(v, rel=1e-5, abs=1e-5 * (space[name].max - space[name].min)), name
    assert MeanBaseline.from_dataset(dataset).preset.values == got


def test_score_metrics_equals_all_metrics():
    from vital_inverse.metrics import all_metrics

    rng = np.random.default_rng(0)
    t = np.arange(11025) / 44100
    a = np.stack([np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32) * np.exp(-3 * t).astype(np.float32)
    b = (0.5 * a + 0.01 * rng.standard_normal(a.shape)).astype(np.float32)
    got, want = ev.score_metrics(a, b), all_metrics(a, b)
    assert list(got) == list(want)
    assert got == pytest.approx(want, rel=1e-5, nan_ok=True)


def test_cluster_bootstrap_ci():
    rng = np.random.default_rng(1)
    v = rng.normal(10.0, 1.0, 300)
    mean, lo, hi = ev.bootstrap_ci(v, np.repeat(np.arange(100), 3), n_boot=2000)
    assert lo < mean < hi and mean == pytest.approx(v.mean()) and hi - lo < 1.0
    # perfectly correlated notes within an item: the CI must be as wide as for 100 independent values
    per_item = rng.normal(10.0, 1.0, 100)
    _, lo_c, hi_c = ev.bootstrap_ci(np.repeat(per_item, 3), np.repeat(np.arange(100), 3), n_boot=2000)
    _, lo_i, hi_i = ev.bootstrap_ci(np.repeat(per_item, 3), None, n_boot=2000)
    assert (hi_c - lo_c) > 1.5 * (hi_i - lo_i)
    assert np.isnan(ev.bootstrap_ci([1.0, 2.0], ["a", "a"])[1])


def test_bad_arguments_raise_clear_errors(tmp_path, dataset):
    with pytest.raises(ev.EvaluateError, match="synthetic:DIR"):
        ev.evaluate("human:/nowhere", "init", tmp_path / "o", workers=0)
    with pytest.raises(ev.EvaluateError, match="--method"):
        ev.evaluate(f"synthetic:{dataset}", "best", tmp_path / "o", workers=0)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "x.vital").write_text("{}")
    with pytest.raises(ev.EvaluateError, match="--train-data"):
        ev.evaluate(f"presets:{tmp_path / 'p'}", "nearest", tmp_path / "o", workers=0)
    assert ev.parse_methods("refine") == ["predict", "refine"]


def test_both_command_lines_refuse_bad_arguments_in_one_line(tmp_path):
    """``python -m vital_inverse.evaluate`` and ``vital-inverse evaluate`` share one parser: a bad set or note
    is one ``error:`` line and exit code 2, before anything loads or renders."""
    import subprocess
    import sys

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "x.vital").write_text("{}")
    for entry in (["-m", "vital_inverse.evaluate"], ["-m", "vital_inverse.cli", "evaluate"]):
        for args, said in ((["--set", "human:/nowhere"], "synthetic:DIR"),
                           (["--set", f"presets:{tmp_path / 'p'}", "--notes", "200"], "MIDI numbers 0-127")):
            r = subprocess.run([sys.executable, *entry, *args, "--method", "init", "--out", str(tmp_path / "o")],
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 2, (entry, args, r.stderr)
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error:") and said in lines[0], (entry, r.stderr)
            assert not (tmp_path / "o").exists()


def test_score_groups_picks_each_groups_closest_and_can_report_every_candidates_mss(space):
    """A clip of one preset: the group holding that preset keeps it, a group without it keeps its own best,
    and with ``mss_each`` every candidate's MSS is reported, the clip's own preset lowest."""
    from vital_inverse.preset import Preset
    from vital_inverse.synth import thread_renderer

    same = Preset.init(space)
    fifth = Preset(values={**same.values, "osc_1_transpose": 7.0}, space_hash=space.hash)
    octave = Preset(values={**same.values, "osc_1_transpose": 12.0}, space_hash=space.hash)
    clip = thread_renderer().render(same, 60, 0.8, 0.3, 0.5)
    out = ev.score_groups(clip, 60, 0.3, 0.5, [fifth, octave, same], {"all": [0, 1, 2], "off": [0, 1]},
                          mss_each=True)
    assert out["all"].chosen == 2
    assert out["off"].chosen in (0, 1)
    mss = out["all"].mss_each
    assert len(mss) == 3 and mss[2] == min(mss) and mss[2] < 0.5 * min(mss[:2])
    assert out["all"].metrics["mss"] == pytest.approx(mss[2], rel=1e-6)
    assert out["off"].mss_each == mss[:2]
    assert ev.score_groups(clip, 60, 0.3, 0.5, [same], {"one": [0]})["one"].mss_each == []
