# SPDX-License-Identifier: GPL-3.0-or-later
"""Morphing between presets with real Vita renders (short notes): the path's values, its tables, and how
it sounds (the midpoint lies between the ends; the steps move away from A and towards B)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import vita

from vital_inverse import metrics
from vital_inverse.morph import MorphError, interpolate, morph, render_morph, write_morph
from vital_inverse.preset import Preset, load_vital

NOTE, NOTE_S, RENDER_S = 48, 0.5, 0.8


@pytest.fixture(scope="module")
def dark_bright(space):
    """Init's saw through filter 1: closed and fairly resonant (A) against open (B), oscillator 2 only in B."""
    a = Preset.from_values({"filter_1_on": 1.0, "filter_1_cutoff": 40.0, "filter_1_resonance": 0.2,
                            "osc_1_wavetable": "Init Saw"}, name="Dark")
    b = Preset.from_values({"filter_1_on": 1.0, "filter_1_cutoff": 110.0, "filter_1_resonance": 0.5,
                            "osc_1_wavetable": "Basic Shapes", "osc_1_wave_frame": 200.0,
                            "osc_2_on": 1.0, "osc_2_level": 0.5, "filter_1_model": "Ladder"}, name="Bright")
    return a, b


def test_values_move_on_vitals_scale_and_the_ends_are_the_presets(dark_bright, space):
    a, b = dark_bright
    path = morph(a, b, 5)
    assert path[0] is a and path[-1] is b
    cut = [p.values["filter_1_cutoff"] for p in path]
    assert cut == pytest.approx([40.0, 57.5, 75.0, 92.5, 110.0])  # linear on Vital's raw scale (semitones)
    # a choice switches at the midpoint
    assert [p.option("filter_1_model") for p in path] == ["Analog", "Analog", "Ladder", "Ladder", "Ladder"]
    # oscillator 2 plays only in B: it is on all along and fades in (its level), so it does not pop
    assert [p.values["osc_2_on"] for p in path[1:]] == [1.0] * 4
    assert path[0].values["osc_2_on"] == 0.0
    assert [p.values["osc_2_level"] for p in path[1:]] == pytest.approx([0.125, 0.25, 0.375, 0.5])
    # different tables: the inner steps play a blend of A's and B's frames, which Vita loads
    inner = path[2]
    assert 1 in inner.custom_wavetables and "Init Saw > Basic Shapes 50%" in inner.wavetable_name(1)
    synth = vita.Synth()
    assert synth.load_json(inner.to_vital_json())
    with pytest.raises(MorphError):
        interpolate(a, b, 1.5)
    with pytest.raises(MorphError, match="2 to"):
        morph(a, b, 1)


def _mrstft_between(result, i, j) -> float:
    return metrics.mrstft(result.audio[i], result.audio[j])


def test_the_midpoint_sounds_between_the_ends_and_steps_move_steadily(dark_bright, renderer):
    a, b = dark_bright
    result = render_morph(morph(a, b, 5), note=NOTE, note_seconds=NOTE_S, render_seconds=RENDER_S, renderer=renderer)
    s = result.smooth
    # the midpoint is closer to each end than the ends are to each other, in features and in MRSTFT
    assert 0.0 < s["from_a"][2] < 1.0 and 0.0 < s["to_b"][2] < 1.0
    ends = _mrstft_between(result, 0, 4)
    assert _mrstft_between(result, 2, 0) < ends and _mrstft_between(result, 2, 4) < ends
    # monotone-ish: each step is farther from A and nearer to B than the one before (small slack)
    assert all(y >= x - 0.1 for x, y in zip(s["from_a"], s["from_a"][1:])), s["from_a"]
    assert all(y <= x + 0.1 for x, y in zip(s["to_b"], s["to_b"][1:])), s["to_b"]
    assert 1.0 <= s["path_ratio"] < 2.0 and s["max_step_ratio"] < 3.0
    # the brightness follows the cutoff: spectral centroid (feature 0, log Hz) rises along the path
    centroid = result.features[:, 0]
    assert centroid[-1] > centroid[0] and np.all(np.diff(centroid) > -0.05), centroid


def test_human_presets_morph_writes_files_that_load(human_preset_dir, renderer, tmp_path):
    a = load_vital(human_preset_dir / "PS-20-Oboe.vital")
    b = load_vital(human_preset_dir / "PS-20-Strings.vital")
    result = render_morph(morph(a, b, 3), note=60, note_seconds=NOTE_S, render_seconds=RENDER_S, renderer=renderer)
    files = write_morph(result, tmp_path / "morph")
    assert [f.name for f in files] == ["step_00.vital", "step_01.vital", "step_02.vital"]
    synth = vita.Synth()
    for f in files:
        assert synth.load_preset(str(f))
        audio = synth.render(60, 0.8, NOTE_S, RENDER_S)
        assert 20 * np.log10(np.sqrt(np.mean(np.square(audio))) + 1e-12) > -60  # every step sounds
    info = json.loads((tmp_path / "morph" / "morph.json").read_text())
    assert info["steps"] == 3 and len(info["smoothness"]["steps"]) == 2 and "even step" in info["summary"]
    assert 0 < info["smoothness"]["from_a"][1] < 1


def test_cli_morph(human_preset_dir, tmp_path, capsys):
    from vital_inverse.cli import main

    out = tmp_path / "m"
    code = main(["morph", str(human_preset_dir / "SalmoBass.vital"), str(human_preset_dir / "PS-20-Oboe.vital"),
                 "--steps", "3", "--out", str(out), "--seconds", "0.6", "--note", "45"])
    assert code == 0 and sorted(p.name for p in out.glob("*.wav")) == ["step_00.wav", "step_01.wav", "step_02.wav"]
    assert "even step" in capsys.readouterr().out
    assert main(["morph", str(tmp_path / "missing.vital"), str(human_preset_dir / "SalmoBass.vital"),
                 "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
