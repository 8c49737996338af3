# SPDX-License-Identifier: GPL-3.0-or-later
"""The generative head: the vector codec round-trips real presets, a tiny flow
learns a toy conditional distribution (right mode per condition, both modes of
a two-mode one, where a regression would answer the average), and a tiny
checkpoint trained on a tiny generated dataset samples valid, diverse,
renderable candidates that join the predictor's list."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from vital_inverse import checkpoint as ckpt
from vital_inverse.data import dataset as ds
from vital_inverse.data.generate import run
from vital_inverse.data.sampling import sample_preset
from vital_inverse.errors import UserError
from vital_inverse.features import FeatureConfig
from vital_inverse.flow import FLOW_CONFIG, FLOW_WEIGHTS, FlowCodec, FlowConfig, VelocityNet, flow_loss, resolve_device, sample
from vital_inverse.intake import analyze
from vital_inverse.predict import PresetPredictor
from vital_inverse.training.flow_train import FlowTrainConfig, train_flow
from vital_inverse.training.train import TrainConfig, train

SECONDS = 0.5


@pytest.mark.parametrize("one_hot_ordinals", [False, True])
def test_codec_round_trips_sampled_presets(space, one_hot_ordinals):
    codec = FlowCodec(space, one_hot_ordinals)
    if one_hot_ordinals:  # a transpose is a choice among the prior's intervals, not a number a sample can miss
        assert codec.n_continuous < len(space.continuous) and len(codec.sizes) > len(space.categorical)
    presets = [sample_preset(space, 11, i) for i in range(6)]
    cont = np.stack([space.continuous_vector(p.values) for p in presets])
    cat = np.stack([space.categorical_indices(p.values) for p in presets])
    x = codec.encode_arrays(cont, cat)
    assert x.shape == (6, codec.dim) and x.min() >= -1 and x.max() <= 1
    for p, values in zip(presets, codec.decode(x)):
        space.validate(values)
        assert list(space.categorical_indices(values)) == list(space.categorical_indices(space.canonical(p.values)))
        np.testing.assert_allclose(space.continuous_vector(values), space.continuous_vector(p.values), atol=1e-5)


def test_device_auto_is_the_cpu_without_a_gpu():
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(UserError, match="no GPU"):
            resolve_device("cuda")
    with pytest.raises(UserError, match="unknown --device"):
        resolve_device("tpu")


def _toy(n: int, rng: np.random.Generator):
    """Condition c in {0, 1, 2} (one-hot embedding); categorical = c; continuous value: c=0 -> two modes
    (0.15 or 0.85), c=1 -> 0.5, c=2 -> 0.3; noise 0.03."""
    c = rng.integers(0, 3, n)
    mode = np.where(c == 0, np.where(rng.random(n) < 0.5, 0.15, 0.85), np.where(c == 1, 0.5, 0.3))
    cont = np.clip(mode + 0.03 * rng.standard_normal(n), 0, 1)[:, None]
    x1 = np.concatenate([2 * cont - 1, 2 * np.eye(3)[c] - 1], 1).astype(np.float32)
    return torch.from_numpy(x1), torch.from_numpy(np.eye(3, dtype=np.float32)[c]), c


@pytest.fixture
def one_thread():
    """Small matrices: one thread is fastest, and OpenMP's spinning threads crawl when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_tiny_flow_fits_a_toy_conditional_distribution(one_thread):
    torch.manual_seed(0)
    cfg = FlowConfig(n_continuous=1, categorical_sizes=[3], cond_dim=3, hidden=64, blocks=2, dropout=0.0,
                     cond_dropout=0.0, steps=8)
    net = VelocityNet(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(700):
        x1, emb, _ = _toy(256, rng)
        loss = flow_loss(net.train(), x1, emb, torch.full((256,), 60), gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for c in range(3):
        xs = sample(net, torch.eye(3)[c], 60, 64, seed=c).numpy()
        acc = float(np.mean(xs[:, 1:].argmax(1) == c))
        assert acc > 0.9, f"condition {c}: categorical right in {acc:.0%} of samples (chance 33%)"
        v = (xs[:, 0] + 1) / 2
        if c == 0:  # both modes, few samples at their average (where a regression head would land)
            low, high = np.mean(np.abs(v - 0.15) < 0.1), np.mean(np.abs(v - 0.85) < 0.1)
            assert low > 0.25 and high > 0.25 and np.mean(np.abs(v - 0.5) < 0.1) < 0.15, (low, high)
        else:
            assert abs(float(np.median(v)) - (0.5 if c == 1 else 0.3)) < 0.06

    # Anchored samples (SDEdit): started late on the path they keep the anchor, started at t0 = 0 they are
    # the plain samples, and in between the condition pulls them towards its own answer.
    anchor = torch.tensor([[2 * 0.5 - 1, -1.0, 1.0, -1.0]]).expand(64, -1)  # value 0.5, category 1
    cond0 = torch.eye(3)[0]
    late = sample(net, cond0, 60, 64, seed=5, start=anchor, t0=0.97).numpy()
    assert np.mean(late[:, 1:].argmax(1) == 1) > 0.9 and np.median(np.abs((late[:, 0] + 1) / 2 - 0.5)) < 0.05
    assert np.allclose(sample(net, cond0, 60, 64, seed=5, start=anchor, t0=0.0).numpy(),
                       sample(net, cond0, 60, 64, seed=5).numpy(), atol=1e-5)
    mid = sample(net, cond0, 60, 64, seed=5, start=anchor, t0=0.5).numpy()
    assert np.mean(mid[:, 1:].argmax(1) == 0) > np.mean(late[:, 1:].argmax(1) == 0) + 0.5, "the clip's condition wins"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, space):
    root = tmp_path_factory.mktemp("flowdata") / "tiny"
    meta = ds.DatasetMeta(space_hash=space.hash, seed=7, n=40, shard_size=10, notes=(48, 60), note_seconds=0.3,
                          render_seconds=SECONDS, features=FeatureConfig(seconds=SECONDS).to_dict())
    run(root, meta, workers=2, progress=False)
    out = tmp_path_factory.mktemp("flowckpt") / "ckpt"
    train(TrainConfig(data=str(root), out=str(out), epochs=1, batch_size=8, val_audio_items=1, workers=1,
                      warmup_steps=2, channels=(16, 16), embed_dim=32, hidden=32), progress=False)
    best = train_flow(FlowTrainConfig(data=str(root), out=str(out), checkpoint=str(out), epochs=3, batch_size=16,
                                      hidden=32, blocks=1, warmup_steps=2), progress=False)
    return root, out, best


def test_train_flow_saves_a_head_the_predictor_samples(tiny_checkpoint, space, renderer, tmp_path):
    root, out, best = tiny_checkpoint
    assert np.isfinite(best["val_loss"]) and (out / FLOW_WEIGHTS).exists()
    record = json.loads((out / FLOW_CONFIG).read_text())
    assert record["config"]["space_hash"] == space.hash and record["training"]["device"] == "cpu"
    assert list((root / "cache").glob("cond-*.npy")), "conditions are cached for the next run"

    predictor = PresetPredictor.load(out)
    assert predictor.flow is not None
    clip = analyze(renderer.render(sample_preset(space, 7, 3), 60, 0.8, 0.3, SECONDS), 44100, "tiny clip")
    cands = predictor.predict(clip, k=2, retrieval=0, generative=6, resynthesis=False)
    assert [c.source for c in cands] == ["network"] * 2 + ["generative"] * 6
    gen = [c.preset for c in cands if c.source == "generative"]
    assert len({json.dumps(p.values, sort_keys=True) for p in gen}) == 6, "samples differ from one another"
    for p in gen:
        space.validate(p.values)
        audio = renderer.render(p, 60, 0.8, 0.3, SECONDS)
        assert audio.shape == (2, int(SECONDS * 44100)) and np.all(np.isfinite(audio))
    again = predictor.generative(clip, 6)
    assert [c.preset.values for c in again] == [p.values for p in gen], "same clip, same seed: same samples (the app is repeatable)"


def test_a_flow_for_another_encoder_is_refused(tiny_checkpoint, tmp_path):
    _, out, _ = tiny_checkpoint
    other = tmp_path / "other"
    shutil.copytree(out, other)
    record = json.loads((other / FLOW_CONFIG).read_text())
    record["config"]["encoder_fingerprint"] = "0" * 16
    (other / FLOW_CONFIG).write_text(json.dumps(record))
    with pytest.raises(ckpt.CheckpointError, match="another encoder"):
        PresetPredictor.load(other)
