# SPDX-License-Identifier: GPL-3.0-or-later
"""tuning: the partials' cents check that backs intake's f0 detector, with real Vita renders."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from vital_inverse.intake import TARGET_PEAK, Analysis
from vital_inverse.preset import Preset
from vital_inverse.tuning import _detector_doubtful, partial_offset, retune, shift_cents

NOTE_S, RENDER_S = 0.5, 0.7
#: A bright, steady sound: Init's saw through an open filter.
SAW = {"filter_1_on": 1.0, "filter_1_cutoff": 100.0}


def _yin_cents(audio: np.ndarray, ref_hz: float) -> float:
    x = np.asarray(audio, dtype=np.float64).mean(axis=0)
    f0 = librosa.yin(x[2048:20000], fmin=60, fmax=2000, sr=44100, frame_length=4096)
    return float(1200 * np.log2(np.median(f0) / ref_hz))


@pytest.mark.parametrize("cents", [-23, 17])
def test_partial_offset_finds_how_far_a_render_is_from_the_clip(renderer, cents):
    saw = Preset.from_values(SAW)
    clip = renderer.render(saw, 60, 0.8, NOTE_S, RENDER_S)
    off = renderer.render(shift_cents(saw, cents), 60, 0.8, NOTE_S, RENDER_S)
    assert partial_offset(off, clip) == pytest.approx(-cents, abs=2)
    assert partial_offset(clip, clip) == 0.0


def test_partial_offset_leaves_noise_and_far_alignments_to_the_detector(renderer):
    clip = renderer.render(Preset.from_values(SAW), 60, 0.8, NOTE_S, RENDER_S)
    noise = np.random.default_rng(0).normal(0, 0.1, clip.shape).astype(np.float32)
    assert partial_offset(noise, clip, around=5.0) == 5.0  # no partials to line up: the detector's answer
    # a render a semitone away is beyond the +-50 cent span: not pulled half-way
    far = renderer.render(shift_cents(Preset.from_values(SAW), 100), 60, 0.8, NOTE_S, RENDER_S)
    assert partial_offset(far, clip) == 0.0


def test_retune_follows_the_partials_when_the_detector_is_off_on_clip_and_render_alike(renderer):
    """The clip sounds 20 cents above C4 but the analysis says C4 exactly (an f0 detector biased the
    same way on the clip and on the render would see no offset): the partials put the match on the clip."""
    saw = Preset.from_values(SAW)
    clip = renderer.render(shift_cents(saw, 20), 60, 0.8, NOTE_S, RENDER_S)
    clip = (clip * (TARGET_PEAK / np.abs(clip).max())).astype(np.float32)
    target = Analysis(clip, 44100, 60, 0.0, 1.0, True, 261.63, NOTE_S, RENDER_S, 1.0, "test")
    tuned = retune([saw], target, lambda ps: [renderer.render(p, 60, 0.8, NOTE_S, RENDER_S) for p in ps])[0]
    assert _detector_doubtful(target)  # a second tracker disagrees with the analysis: the partials decide
    honest = Analysis(clip, 44100, 60, 0.0, 1.0, True, 261.63 * 2 ** (20 / 1200), NOTE_S, RENDER_S, 1.0, "test")
    assert not _detector_doubtful(honest)  # trackers agree: the detector's cents stand
    clip_cents = _yin_cents(clip, 261.63)
    assert clip_cents == pytest.approx(20, abs=3)
    assert abs(_yin_cents(renderer.render(saw, 60, 0.8, NOTE_S, RENDER_S), 261.63) - clip_cents) > 15
    assert abs(_yin_cents(renderer.render(tuned, 60, 0.8, NOTE_S, RENDER_S), 261.63) - clip_cents) < 4
