# SPDX-License-Identifier: GPL-3.0-or-later
"""The clip's starts for drums and wide sounds, and the envelope fit's release, on real Vita renders."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vital_inverse import resynthesis as rs
from vital_inverse.intake import analyze
from vital_inverse.metrics import mss
from vital_inverse.params import default_space
from vital_inverse.preset import Preset, init_doc, with_custom_wavetable
from vital_inverse.session import match_audio
from test_resynthesis import known_table

vita = pytest.importorskip("vita")

SR = 44100
VELOCITY = 0.8


def _render(renderer, preset: Preset, a) -> np.ndarray:
    return renderer.render(preset, a.note, VELOCITY, a.note_seconds, a.render_seconds)


def _mss(renderer, preset: Preset, a) -> float:
    return float(mss(match_audio(_render(renderer, preset, a), a.audio), a.audio))


def _kick(fall: float = 24.0, decay_s: float = 0.15) -> Preset:
    """A sine whose pitch falls ``fall`` semitones over ``decay_s`` (envelope 3 -> oscillator 1 transpose), plucked."""
    base = init_doc(default_space())
    st = base["settings"]
    st["modulations"][0] = {"source": "env_3", "destination": "osc_1_transpose"}
    st["modulation_1_amount"] = fall / 96.0
    for key in ("bipolar", "bypass", "power", "stereo"):
        st[f"modulation_1_{key}"] = 0.0
    kick = Preset.from_values({"osc_1_wavetable": "Sine", "env_1_attack": 0.0, "env_1_decay": 0.35**0.25,
                               "env_1_sustain": 0.0, "env_1_decay_power": 3.0, "env_3_attack": 0.0,
                               "env_3_decay": decay_s**0.25, "env_3_sustain": 0.0, "env_3_decay_power": 2.0})
    return replace(kick, base=base, base_values=None)


def test_drum_start_falls_in_pitch_like_the_kick(renderer, tmp_path):
    """A pitched kick (C2, falling two octaves into it): intake calls it unpitched; the drum start's render
    starts high and lands on C2 as the kick does, and is far closer to it than Init, the noise start and
    the table starts the harmonic sieve makes of it."""
    a = analyze(renderer.render(_kick(), 36, VELOCITY, 0.5, 0.8), SR, "kick")
    assert not a.pitched
    kinds = dict(rs.starts(a))
    assert "drum" in kinds
    drum = kinds["drum"]
    t, midi = rs.pitch_track(replace(a, audio=_render(renderer, drum, a)))
    early, late = np.median(midi[t < 0.03]), np.median(midi[(t > 0.2) & (t < 0.3)])
    assert early > late + 12.0, (early, late)  # the fall is there ...
    assert abs(late - 36.0) < 1.0, late  # ... and lands on the kick's pitch
    level = rs._rms_db(_render(renderer, drum, a), 441)  # 10 ms RMS in dB re its own peak
    want = rs._rms_db(a.audio, 441)
    n = min(len(level), len(want))
    loud = want[:n] > -30.0
    assert np.max(np.abs(level[:n][loud] - want[:n][loud])) < 4.0  # the kick's decay, within 4 dB
    got = _mss(renderer, drum, a)
    assert got < 3.0 and got < _mss(renderer, rs.noise_start(a), a) and got < _mss(renderer, Preset.init(), a)
    others = [_mss(renderer, p, a) for kind, p in kinds.items() if kind != "drum"]  # the sieve's table starts
    assert all(got < o for o in others), (got, others)
    from vital_inverse.tutorial import offline_tutorial

    assert "Envelope 3" in offline_tutorial(drum)  # the pitch envelope is in the file, and the tutorial says so
    saved = drum.save(tmp_path / "kick.vital")  # the exported file plays the same fall
    t2, midi2 = rs.pitch_track(replace(a, audio=renderer.render(saved.read_text(), a.note, VELOCITY,
                                                                a.note_seconds, a.render_seconds)))
    assert np.median(midi2[t2 < 0.03]) > np.median(midi2[(t2 > 0.2) & (t2 < 0.3)]) + 12.0


def test_steady_or_noisy_clip_has_no_pitch_fall(renderer):
    tone = analyze(renderer.render(Preset.from_values({"osc_1_wavetable": "Sine"}), 45, VELOCITY, 0.5, 0.8), SR,
                   "steady")
    assert rs.fit_pitch_fall(tone) is None and rs.drum_start(tone) is None
    rng = np.random.default_rng(5)
    n = int(0.6 * SR)
    burst = (rng.normal(0, 0.3, (2, n)) * np.exp(-np.arange(n) / (0.12 * SR))).astype(np.float32)
    assert rs.drum_start(analyze(burst, SR, "burst")) is None


def test_width_start_is_as_wide_as_the_clip(renderer):
    """A wide, detuned 2-voice unison of a custom table: the one-voice resynthesis start is mono; the width
    start is wide like the clip (side/mid power within a factor of 2) and closer to it than the mono start
    and Init; a mono clip gets no width start."""
    truth = with_custom_wavetable(
        Preset.from_values({"osc_1_unison_voices": 2.0, "osc_1_unison_detune": 4.0, "env_1_sustain": 0.9}), 1,
        known_table(2))
    a = analyze(renderer.render(truth, 57, VELOCITY, 0.7, 1.0), SR, "wide")
    want = rs.side_mid_ratio(a.audio)
    assert want > rs.WIDE_RATIO
    start = rs.resynthesis_start(a)
    wide = rs.width_start(a, start, renderer=renderer)
    assert wide is not None and wide.values["osc_1_unison_voices"] == 2.0
    assert rs.side_mid_ratio(_render(renderer, start, a)) < 0.01
    got = rs.side_mid_ratio(_render(renderer, wide, a))
    assert want / 2 < got < want * 2, (got, want)
    closer = _mss(renderer, wide, a)
    assert closer < _mss(renderer, start, a) and closer < _mss(renderer, Preset.init(), a)
    mono = analyze(renderer.render(Preset.from_values({"env_1_sustain": 0.9}), 57, VELOCITY, 0.7, 1.0), SR, "mono")
    assert rs.width_start(mono, rs.resynthesis_start(mono), renderer=renderer) is None


def test_release_keeps_vitals_default_when_the_clip_does_not_show_it(renderer):
    """Held to the clip's end, the release is not seen: the fit keeps Init's release and curve (it used to land
    anywhere); a clip that shows a 0.4 s release gets about that."""
    space = default_space()
    truth = Preset.from_values({"env_1_sustain": 0.8, "env_1_release": 0.4**0.25})
    held = analyze(renderer.render(truth, 57, VELOCITY, 1.0, 1.0), SR, "held")
    assert not rs.release_observed(held)
    env = rs.fit_envelope(held)
    assert env["env_1_release"] == pytest.approx(space["env_1_release"].default)
    assert env["env_1_release_power"] == pytest.approx(space["env_1_release_power"].default)
    released = analyze(renderer.render(truth, 57, VELOCITY, 0.5, 1.2), SR, "released")
    assert rs.release_observed(released)
    seconds = rs.fit_envelope(released)["env_1_release"] ** 4
    assert 0.2 < seconds < 0.8, seconds


def _partial_db(audio: np.ndarray, hz: float) -> float:
    """Power (dB) of the mono mix within 1% of ``hz`` (Hann-windowed spectrum of the whole clip)."""
    mono = np.asarray(audio, dtype=np.float64).mean(axis=0)
    power = np.abs(np.fft.rfft(mono * np.hanning(len(mono)))) ** 2
    freqs = np.fft.rfftfreq(len(mono), 1 / SR)
    return float(10 * np.log10(power[np.abs(freqs - hz) < 0.01 * hz].sum() + 1e-30))


def test_a_chord_gets_a_table_at_its_common_f0(renderer):
    """C3-E3-G3 (a custom table played three times by Vita, summed): the harmonic sieve finds a common f0
    at C1 (C3 / 4; the equal-tempered third and fifth are 5.04 and 5.99 times it), and the clip's table
    taken there plays the whole chord: E3 and G3 sound at about the clip's level against C3 (within 6 dB),
    where the table taken at the lowest note (C3) leaves them out; and it is closer to the clip than Init."""
    import librosa

    voice = with_custom_wavetable(Preset.from_values({"env_1_sustain": 0.9}), 1, known_table(2))
    chord = sum(renderer.render(voice, n, VELOCITY, 0.7, 1.0) for n in (48, 52, 55))
    a = analyze(chord.astype(np.float32), SR, "chord")
    f0 = rs.sieve_f0(replace(a, f0_hz=None, pitched=False))
    assert f0 is not None and abs(librosa.hz_to_midi(f0) - 24.0) < 0.1, f0
    start = rs.resynthesis_start(replace(a, f0_hz=f0))
    at_c3 = rs.resynthesis_start(replace(a, f0_hz=float(librosa.midi_to_hz(48))))
    c3, e3, g3 = (float(librosa.midi_to_hz(n)) for n in (48, 52, 55))

    def chord_tones(audio: np.ndarray) -> np.ndarray:  # E3 and G3 re C3, dB
        return np.array([_partial_db(audio, e3), _partial_db(audio, g3)]) - _partial_db(audio, c3)

    want = chord_tones(a.audio)
    assert np.all(np.abs(chord_tones(_render(renderer, start, a)) - want) < 6.0)
    assert np.all(chord_tones(_render(renderer, at_c3, a)) < want - 15.0)
    assert _mss(renderer, start, a) < _mss(renderer, Preset.init(), a)


def test_refining_a_clip_start_searches_what_the_clip_leaves_open(renderer, render_pool):
    """Refinement from a resynthesis start with ``clip_refine_config`` moves only ``CLIP_SEARCHED``
    (envelope 1 among them), and its honest best is no worse than the start."""
    from vital_inverse.refine import Budget, refine

    truth = with_custom_wavetable(Preset.from_values({"env_1_sustain": 0.6, "env_1_decay": 0.5**0.25}), 1,
                                  known_table(2))
    a = analyze(renderer.render(truth, 57, VELOCITY, 0.6, 0.9), SR, "refine")
    events = list(refine(a, [rs.resynthesis_start(a)], Budget(renders=40), renderer=render_pool,
                         config=rs.clip_refine_config()))
    searched = set(events[-1].searched)
    assert searched and searched <= rs.CLIP_SEARCHED and "env_1_decay" in searched
    assert events[-1].best_loss <= events[0].best_loss
