# SPDX-License-Identifier: GPL-3.0-or-later
"""Predictor end to end on tiny runs: train a few steps, save, load, predict
renderable candidates; the AST path through the same from_pretrained calls
with a tiny random ASTConfig; checkpoints refused when they do not fit."""

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
from vital_inverse.features import FeatureConfig
from vital_inverse.intake import analyze
from vital_inverse.model import ModelConfig, Predictor
from vital_inverse.predict import PresetPredictor, model_config_for
from vital_inverse.training.train import TrainConfig, train

SECONDS = 0.5


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, space):
    root = tmp_path_factory.mktemp("data") / "tiny"
    meta = ds.DatasetMeta(space_hash=space.hash, seed=5, n=40, shard_size=10, notes=(48, 60), note_seconds=0.3,
                          render_seconds=SECONDS, features=FeatureConfig(seconds=SECONDS).to_dict(), store_audio=True)
    run(root, meta, workers=2, progress=False)
    return root


def _clip(space, renderer, note=60):
    preset = sample_preset(space, 5, 3)
    audio = renderer.render(preset, note, 0.8, 0.3, SECONDS)
    return analyze(audio, 44100, "tiny clip")


def test_compact_encoder_shapes(space):
    cfg = model_config_for(space)
    model = Predictor(cfg).eval()
    mel = torch.randn(3, cfg.n_mels, FeatureConfig().n_frames) * 20 - 40
    with torch.no_grad():
        plain, routes, logits = model(mel, torch.tensor([36, 60, 84]))
    assert plain.shape == (3, cfg.n_continuous) and routes.shape == (3, cfg.n_routes)
    assert [l.shape[1] for l in logits] == [p.size for p in space.categorical]
    assert float(plain.min()) >= 0 and float(plain.max()) <= 1
    n = sum(p.numel() for p in model.parameters())
    assert n * 4 < 20e6, f"{n} parameters is over the 20 MB checkpoint budget"


def test_train_save_load_predict(tiny_data, tmp_path, space, renderer):
    out = tmp_path / "ckpt"
    best = train(TrainConfig(data=str(tiny_data), out=str(out), epochs=2, batch_size=8, val_audio_items=2, workers=1,
                             warmup_steps=2), progress=False)
    assert np.isfinite(best["val_mss"])
    info = json.loads((out / "config.json").read_text())
    assert info["space_hash"] == space.hash and info["features"]["seconds"] == SECONDS
    assert info["data"]["train_examples"] > 0 and "val_mss" in info["metrics"]
    assert "Vital Inverse predictor" in (out / "README.md").read_text()
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,")

    predictor = PresetPredictor.load(out)
    cands = predictor.predict(_clip(space, renderer), k=4, resynthesis=False)  # the network alone
    assert len(cands) == 4
    assert [c.probability for c in cands] == sorted((c.probability for c in cands), reverse=True)
    assert not cands[0].changes and all(c.changes for c in cands[1:])
    for c in cands:
        space.validate(c.preset.values)
        audio = renderer.render(c.preset, 60, 0.8, 0.3, SECONDS)
        assert audio.shape == (2, int(SECONDS * 44100)) and np.all(np.isfinite(audio))
        c.preset.save(tmp_path / "cand.vital")

    # resume: a second call continues from train_state.pt to the new epoch count
    best2 = train(TrainConfig(data=str(tiny_data), out=str(out), epochs=3, batch_size=8, val_audio_items=2, workers=1,
                              warmup_steps=2), progress=False)
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 4
    assert best2["val_mss"] <= best["val_mss"]


def test_checkpoint_for_another_space_is_refused(tiny_data, tmp_path, space):
    model = Predictor(model_config_for(space))
    info = ckpt.CheckpointInfo(model=model.cfg.to_dict(), space_hash="0000000000000000",
                               features=FeatureConfig().to_dict())
    ckpt.save(tmp_path / "old", model.trainable_state_dict(), info, "card")
    with pytest.raises(ckpt.CheckpointError, match="train a new one"):
        PresetPredictor.load(tmp_path / "old")
    with pytest.raises(ckpt.CheckpointError, match="not a checkpoint folder"):
        PresetPredictor.load(tmp_path)
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint at"):
        PresetPredictor.load(tmp_path / "missing")


def test_hub_id_offline_without_a_local_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ckpt.CheckpointError, match="no local copy"):
        ckpt.resolve("someone/vital-inverse-test")


def test_hub_id_uses_the_local_cache_when_offline(monkeypatch, tmp_path, space):
    """A snapshot already in the Hub cache loads by repo id with no network."""
    from huggingface_hub import constants

    model = Predictor(model_config_for(space))
    src = ckpt.save(tmp_path / "src", model.trainable_state_dict(),
                    ckpt.CheckpointInfo(model=model.cfg.to_dict(), space_hash=space.hash,
                                        features=FeatureConfig().to_dict()), "card")
    hub = tmp_path / "hub"
    repo = hub / "models--someone--cached-model"
    commit = "0" * 40
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in (ckpt.WEIGHTS, ckpt.CONFIG, ckpt.CARD):
        shutil.copy(src / f, snap / f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert ckpt.resolve("someone/cached-model") == snap
    PresetPredictor.load("someone/cached-model")


def test_publish_checks_its_input(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="not a checkpoint folder"):
        ckpt.publish(tmp_path, "user/name")


@pytest.fixture(scope="module")
def tiny_ast(tmp_path_factory):
    """A random, tiny AST saved with save_pretrained: the real loading code reads it."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    folder = tmp_path_factory.mktemp("ast") / "tiny-ast"
    cfg = ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    max_length=64, num_mel_bins=32)
    torch.manual_seed(0)
    ASTModel(cfg).save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=32, max_length=64).save_pretrained(folder)
    return folder


def test_ast_encoder_train_save_load_predict(tiny_data, tiny_ast, tmp_path, space, renderer):
    out = tmp_path / "ast-ckpt"
    best = train(TrainConfig(data=str(tiny_data), out=str(out), encoder="ast", epochs=1, batch_size=8,
                             val_audio_items=2, workers=1, warmup_steps=2, ast_source=str(tiny_ast)), progress=False)
    assert np.isfinite(best["val_mss"])
    info = json.loads((out / "config.json").read_text())
    assert info["model"]["encoder"] == "ast" and info["model"]["ast_layers"] == 3
    # the frozen backbone is not in the checkpoint; the learned layer weights and heads are
    from safetensors.torch import load_file

    keys = load_file(str(out / "model.safetensors")).keys()
    assert "encoder.mix.weights" in keys and not any(k.startswith("encoder.ast.") for k in keys)
    assert list((tiny_data / "cache").glob("ast-*.npy")), "AST layer states are cached per dataset"
    predictor = PresetPredictor.load(out, ast_source=str(tiny_ast))
    cands = predictor.predict(_clip(space, renderer), k=2, resynthesis=False)  # the network alone
    assert len(cands) == 2
    renderer.render(cands[0].preset, 60, 0.8, 0.3, SECONDS)


def test_layer_mix_is_a_softmax_over_layers():
    from vital_inverse.model import LayerMix

    mix = LayerMix(3)
    states = torch.stack([torch.full((2, 4), float(i)) for i in range(3)], dim=1)  # (B, L, D)
    assert torch.allclose(mix(states), torch.full((2, 4), 1.0))  # equal weights: mean of 0, 1, 2
    with torch.no_grad():
        mix.weights.copy_(torch.tensor([0.0, 0.0, 50.0]))
    assert torch.allclose(mix(states), torch.full((2, 4), 2.0), atol=1e-4)


def test_model_config_round_trip(space):
    cfg = model_config_for(space, encoder="compact")
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_retrieval_index_finds_a_training_item_from_its_own_render(tiny_data, tmp_path, space, renderer):
    from vital_inverse.retrieval import RetrievalIndex, build_for_checkpoint

    path = build_for_checkpoint(tiny_data, tmp_path, space.hash, n_components=8)
    index = RetrievalIndex.load(tmp_path)
    assert path.exists() and index is not None
    data = ds.load(tiny_data, ("train",))
    item = int(data.index[0])
    (found, dist), *_ = index.query(data.mel[0, 1].astype(np.float32), note=60, r=1)
    assert found == item and dist < 1e-1 * np.linalg.norm(index.codes[:, 1].astype(np.float32).std(0))
    # a fresh render of that preset retrieves it too (Vita's run-to-run noise is small next to other presets)
    audio = renderer.render(sample_preset(space, 5, item), 60, 0.8, 0.3, SECONDS)
    from vital_inverse.features import log_mel

    assert index.query(log_mel(audio, FeatureConfig(seconds=SECONDS)), 60, r=3)[0][0] == item
