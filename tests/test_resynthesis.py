# SPDX-License-Identifier: GPL-3.0-or-later
"""Starts made of the clip, checked on real Vita renders of short notes."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from vital_inverse import resynthesis as rs
from vital_inverse.intake import analyze
from vital_inverse.metrics import mss
from vital_inverse.preset import Preset, load_vital, with_custom_wavetable
from vital_inverse.session import match_audio
from vital_inverse.wavetables import Wavetable, frames_from_spectra

vita = pytest.importorskip("vita")

SR = 44100
NOTE = 57  # A3, 220 Hz
VELOCITY = 0.8
NOTE_S, RENDER_S = 0.7, 1.0


def _rms_db(x: np.ndarray, hop: int = 441) -> np.ndarray:
    p = np.asarray(x, dtype=np.float64).mean(axis=0) ** 2
    n = len(p) // hop
    return 10 * np.log10(p[: n * hop].reshape(n, hop).mean(axis=1) + 1e-20)


def _centroid_hz(x: np.ndarray, n_fft: int = 2048, hop: int = 2205) -> np.ndarray:
    """Spectral centroid per frame of the mono mix (brightness over time)."""
    mono = np.asarray(x, dtype=np.float64).mean(axis=0)
    starts = range(0, len(mono) - n_fft, hop)
    mags = np.array([np.abs(np.fft.rfft(mono[s : s + n_fft] * np.hanning(n_fft))) for s in starts])
    freqs = np.fft.rfftfreq(n_fft, 1 / SR)
    return (mags * freqs).sum(axis=1) / np.maximum(mags.sum(axis=1), 1e-12)


def _render(renderer, preset: Preset, a=None) -> np.ndarray:
    if a is None:
        return renderer.render(preset, NOTE, VELOCITY, NOTE_S, RENDER_S)
    return renderer.render(preset, a.note, VELOCITY, a.note_seconds, a.render_seconds)


def known_table(keyframes: int = 3) -> Wavetable:
    """``keyframes`` keyframes (evenly spaced) of fixed, unlike harmonic spectra (no bank table is close to them)."""
    rng = np.random.default_rng(7)
    k = np.arange(65)
    spectra = []
    for i in range(keyframes):
        mags = rng.uniform(0.0, 1.0, 65) ** 2 / np.maximum(k, 1) ** (0.5 + 0.4 * i)
        mags[0] = 0.0
        spectra.append(mags * np.exp(1j * rng.uniform(0, 2 * np.pi, 65)))
    frames = frames_from_spectra(np.array(spectra))
    keys = tuple(int(round(x)) for x in np.linspace(0, 256, keyframes))
    return Wavetable("known", (frames / np.abs(frames).max()).astype(np.float32), keys)


def test_envelope_model_matches_vita(renderer):
    """numpy's envelope() squared is the amplitude Vita plays (a pure sine, so RMS is the envelope)."""
    env = {"env_1_attack": 0.12**0.25, "env_1_decay": 0.3**0.25, "env_1_sustain": 0.5, "env_1_release": 0.2**0.25,
           "env_1_attack_power": 0.0, "env_1_decay_power": 3.0, "env_1_release_power": -2.0}
    p = Preset.from_values({"osc_1_wavetable": "Sine", **env})
    got = _rms_db(_render(renderer, p))
    t = (np.arange(len(got)) + 0.5) * 441 / SR
    e = rs.envelope(t, NOTE_S, 0.12, 0.3, 0.5, 0.2, 0.0, 3.0, -2.0)
    want = 40 * np.log10(np.maximum(e, 1e-9))
    sustained = np.flatnonzero((t > 0.5) & (t < NOTE_S - 0.02))
    offset = np.median(got[sustained] - want[sustained])  # the synth's own level
    audible = (want > -30) & (t > 0.03)  # past the first hops (Vita's note-on transient)
    assert np.max(np.abs(got[audible] - offset - want[audible])) < 1.5


def test_fitted_envelope_follows_the_clip(renderer):
    """A plucked Init saw: the fitted envelope's render has the clip's level contour (within a few dB)."""
    truth = Preset.from_values({"env_1_attack": 0.002**0.25, "env_1_decay": 0.35**0.25, "env_1_sustain": 0.1,
                                "env_1_release": 0.15**0.25, "env_1_decay_power": 2.0})
    a = analyze(_render(renderer, truth), SR, "pluck")
    env = rs.fit_envelope(a)
    fitted = Preset.from_values(env)
    got = _rms_db(match_audio(_render(renderer, fitted, a), a.audio))
    want = _rms_db(a.audio)
    loud = want > want.max() - 40
    assert np.median(np.abs(got[loud] - want[loud])) < 2.0
    assert env["env_1_sustain"] < 0.4 and env["env_1_decay"] ** 4 < 1.5  # it decays, as the pluck does


def test_resynthesis_matches_a_custom_table_preset(renderer):
    """A preset playing a table no bank table resembles: the resynthesis start lands within a small MSS,
    far closer than Init and than the same patch with the nearest bank table."""
    from vital_inverse.wavetables import nearest_bank_name

    table = known_table()
    values = {"osc_1_wave_frame": 0.0, "mod_env3_osc1_frame": 1.0, "env_3_attack": 0.0, "env_3_decay": 0.6**0.25,
              "env_3_sustain": 0.0, "env_1_decay": 0.5**0.25, "env_1_sustain": 0.4, "env_1_release": 0.1**0.25}
    truth = with_custom_wavetable(Preset.from_values(values), 1, table)
    a = analyze(_render(renderer, truth), SR, "custom")
    start = rs.resynthesis_start(a)
    score = mss(match_audio(_render(renderer, start, a), a.audio), a.audio)
    bank = Preset.from_values({**values, "osc_1_wavetable": nearest_bank_name(table)})
    bank_score = mss(match_audio(_render(renderer, bank, a), a.audio), a.audio)
    init_score = mss(match_audio(_render(renderer, Preset.init(), a), a.audio), a.audio)
    assert score < 2.5, score
    assert score < 0.6 * bank_score and score < 0.4 * init_score, (score, bank_score, init_score)


def test_swept_table_follows_a_filter_sweep(renderer):
    """A saw under a closing low-pass: the start's brightness falls as the clip's does, frame by frame;
    the same table held at one frame (no sweep) does not."""
    truth = Preset.from_values({"filter_1_on": "On", "filter_1_cutoff": 70.0, "mod_env2_filter1_cutoff": 0.6,
                                "env_2_attack": 0.0, "env_2_decay": 0.6**0.25, "env_2_sustain": 0.0,
                                "env_1_sustain": 1.0})
    a = analyze(_render(renderer, truth), SR, "sweep")
    start = rs.resynthesis_start(a)
    assert len(start.custom_wavetables[1]["groups"][0]["components"][0]["keyframes"]) > 3
    want = _centroid_hz(a.audio)
    got = _centroid_hz(_render(renderer, start, a))
    held = _centroid_hz(_render(renderer, start.with_values({rs.SWEEP_ROUTE: 0.0, "osc_1_wave_frame": 40.0}), a))
    n = int(a.note_seconds * SR / 2205) - 1  # frames while the note is held
    assert want[1] > 2 * want[n - 1]  # the target really sweeps
    assert np.corrcoef(want[1:n], got[1:n])[0, 1] > 0.95
    assert np.median(np.abs(np.log2(got[1:n] / want[1:n]))) < 0.2  # within ~15% of the clip's brightness
    assert np.median(np.abs(np.log2(held[1:n] / want[1:n]))) > 2 * np.median(np.abs(np.log2(got[1:n] / want[1:n])))


def test_exported_table_round_trips_through_vita(renderer, tmp_path):
    """The .vital carries the clip's table by name; Vita loads the file and plays what the player played."""
    truth = with_custom_wavetable(Preset.from_values({"env_1_sustain": 0.8}), 1, known_table())
    a = analyze(_render(renderer, truth), SR, "round-trip")
    start = rs.resynthesis_start(a)
    path = start.save(tmp_path / "round-trip.vital")
    doc = json.loads(path.read_text())
    table = doc["settings"]["wavetables"][0]
    assert table["name"] == "round-trip (clip)"
    ours = Wavetable.from_vital(start.custom_wavetables[1])
    assert np.allclose(Wavetable.from_vital(table).frames, ours.frames, atol=1e-7)

    synth = vita.Synth()
    assert synth.load_json(path.read_text())
    again = json.loads(synth.to_json())["settings"]
    assert again["wavetables"][0]["name"] == "round-trip (clip)"
    assert np.allclose(Wavetable.from_vital(again["wavetables"][0]).frames, ours.frames, atol=1e-6)
    synth.render(60, VELOCITY, 0.01, 0.03)  # settle, as the Renderer does
    from_file = np.asarray(synth.render(a.note, VELOCITY, a.note_seconds, a.render_seconds))
    player = _render(renderer, load_vital(path), a)
    assert mss(match_audio(from_file, a.audio), match_audio(player, a.audio)) < 2.0
    assert mss(match_audio(from_file, a.audio), a.audio) < 5.0


def test_unpitched_clip_gets_a_noise_start(renderer):
    rng = np.random.default_rng(3)
    n = int(0.6 * SR)
    burst = rng.normal(0, 0.3, (2, n)) * np.exp(-np.arange(n) / (0.12 * SR))
    a = analyze(burst.astype(np.float32), SR, "burst")
    assert not a.pitched
    assert rs.spectral_flatness(a) > 0.3
    kind, start = rs.starts(a)[0]
    assert kind == "noise" and start.values["sample_on"] == 1.0
    out = _render(renderer, start, a)
    init = _render(renderer, Preset.init(), a)
    assert mss(match_audio(out, a.audio), a.audio) < mss(match_audio(init, a.audio), a.audio)


def test_mixed_start_keeps_the_other_presets_modules(renderer):
    other = Preset.from_values({"filter_1_on": "On", "filter_1_cutoff": 80.0, "reverb_on": "On", "osc_2_on": "On"})
    truth = with_custom_wavetable(Preset.from_values({"env_1_sustain": 0.8}), 1, known_table())
    a = analyze(_render(renderer, truth), SR, "mixed")
    assert rs.spectral_flatness(a) < 0.05  # tonal: an unpitched verdict would not get a noise start
    kinds = rs.starts(a, [other])
    assert kinds[0][0] == "resynthesis" and kinds[-1][0] == "mixed"
    mixed = kinds[-1][1]
    for name in ("filter_1_on", "filter_1_cutoff", "reverb_on", "osc_2_on"):
        assert mixed.values[name] == other.values[name]
    assert mixed.custom_wavetables[1]["name"] == "mixed (clip)" and mixed.values[rs.SWEEP_ROUTE] == 1.0


def test_tutorial_says_the_file_carries_the_swept_table(renderer):
    from vital_inverse.tutorial import build_report, offline_tutorial

    truth = with_custom_wavetable(Preset.from_values({"env_1_sustain": 0.8}), 1, known_table())
    a = analyze(_render(renderer, truth), SR, "tutorial")
    start = rs.resynthesis_start(a)
    report = build_report(start, renderer=renderer)
    item = report.item("osc_1_wavetable")
    assert item.text_value == "tutorial (clip)"
    assert "carries the table" in item.how_to and "wavetable editor" in item.how_to and "LFO 1" in item.how_to
    assert report.item("lfo_1_sync_type").text_value == "Envelope"
    text = offline_tutorial(start)
    assert "`tutorial (clip)`" in text and "Envelope" in text


def test_noise_layer_adds_what_lies_between_the_harmonics(renderer):
    """A tone with noise (a fifth of each channel's power; channels independent, so 11% of the mono mix's):
    the measured share is about that, and the start with the noise layer has more between its harmonics
    than the start without."""
    rng = np.random.default_rng(11)
    t = np.arange(int(0.9 * SR)) / SR
    tone = sum(np.sin(2 * np.pi * 220.0 * h * t) / h for h in range(1, 12))
    tone *= np.sqrt(0.8 / np.mean(tone**2))
    noise = rng.normal(0.0, np.sqrt(0.2), (2, len(t)))
    fade = np.minimum(1.0, (t[-1] - t) / 0.05)
    a = analyze(((tone + noise) * fade * 0.2).astype(np.float32), SR, "breathy")
    share = rs.residual_fraction(a)
    assert 0.08 < share < 0.15, share
    start = rs.resynthesis_start(a)
    noisy = rs.noise_layer(a, start, renderer=renderer)
    assert noisy is not None and noisy.values["sample_on"] == 1.0
    kinds = [k for k, _ in rs.starts(a)]
    assert kinds[:2] == ["resynthesis", "resynthesis+noise"]  # (+ the width start: the noise is wide)

    def rendered_share(p: Preset) -> float:  # measured at the clip's f0 (noise can sway a render's own estimate)
        return rs.residual_fraction(replace(analyze(_render(renderer, p, a), SR, "render"), f0_hz=a.f0_hz))

    assert rendered_share(noisy) > rendered_share(start) + 0.005
    clean = analyze((tone * fade * 0.2).astype(np.float32)[None].repeat(2, 0), SR, "clean")
    assert rs.residual_fraction(clean) < 0.05 and rs.noise_layer(clean, rs.resynthesis_start(clean)) is None
