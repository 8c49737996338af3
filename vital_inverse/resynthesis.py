# SPDX-License-Identifier: GPL-3.0-or-later
"""Start presets made of the clip itself: its own wavetable, swept in time, under a fitted envelope.

The predictor only picks among the bank's tables and refinement keeps a
start's categoricals, so a sound built on a custom table is out of their
reach. These starts close that gap; all are ordinary ``Preset``s (ParamSpace
values, the custom table in ``custom_wavetables``, a base document carrying
LFO 1's one-shot mode), rendered, refined and exported like any other.

- ``clip_wavetable``: wave-frame position p (0..256) holds the clip's harmonic
  spectrum at time p/256 of its length, at the tracked f0. One phase set (the
  loudest moment's, aligned like the Init saw) serves every frame, so Vital's
  frequency-domain interpolation between keyframes never cancels partials;
  keyframes are added greedily where interpolation misses by more than
  ``ResynthesisConfig.tolerance``.
- The sweep: LFO 1, one-shot "Saw Up" with the clip's length as its period,
  drives oscillator 1's wave frame 0 -> 256 through ``SWEEP_ROUTE``, so at
  time t Vital plays the frame taken at t.
- ``fit_envelope``: envelope 1 (times, sustain, curve powers) fitted to the
  clip's RMS envelope with Vital's envelope maths (``envelope``); what it
  misses (within +-``max_level_db``) stays in the frames' levels.
- ``noise_layer``: the sample oscillator's white noise through filter 2, at a
  share of the clip's power between its harmonics (breath, bow).
- ``noise_start``: for noise-like unpitched clips, white noise through a
  low-pass at the clip's roll-off under the fitted envelope.
- ``mixed_start``: the clip's swept table in oscillator 1 of a predicted preset.

- ``width_start``: a wide clip's start in 2-voice unison, detune fitted to its side/mid power.
- ``drum_start``: a pitched drum: a sine whose pitch falls with envelope 3 (a modulation written into
  the base document: the ParamSpace has no envelope -> pitch route), fitted to the tracked pitch fall.
- ``sieve_f0``: a common f0 for tonal clips with no single pitch (chords), so they get a table too.
- ``search_locks``: what refinement leaves alone from a start made of the clip (it searches the
  envelope, the sweep, the noise, the filter and the unison detune).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import librosa
import numpy as np

from .constants import RENDER_VELOCITY
from .intake import Analysis
from .params import ParamSpace, default_space
from .preset import Preset, init_doc, with_custom_wavetable
from .wavetables import (
    MAX_POSITION,
    Wavetable,
    WavetableError,
    align_cycle_phase,
    frames_from_spectra,
    harmonic_track,
)

__all__ = [
    "ResynthesisConfig",
    "clip_wavetable",
    "envelope",
    "fit_envelope",
    "mixed_start",
    "noise_layer",
    "noise_start",
    "release_observed",
    "residual_fraction",
    "spectral_flatness",
    "resynthesis_start",
    "search_locks",
    "clip_refine_config",
    "SWEEP_TIMING",
    "TABLE_PITCH",
    "CLIP_START_KINDS",
    "sieve_f0",
    "side_mid_ratio",
    "starts",
    "width_start",
    "drum_start",
    "fit_pitch_fall",
]

SWEEP_ROUTE = "mod_lfo1_osc1_frame"
_SWEEP_SHAPE = "Saw Up"  # LFO 1 rises 0 -> 1 once over its period
_LFO_ONE_SHOT = "Envelope"  # Vital's LFO sync type that runs once per note and holds its end
_ENV_HOP_S = 0.01  # RMS envelope hop for the fit
_FLOOR_DB = -60.0  # envelope fit and level contour ignore what lies below this (re the clip's peak)
_QUIET_DB = -50.0  # positions quieter than this borrow the spectral shape of a louder neighbour
_TRUSTED_ENV_DB = -30.0  # the level contour is measured only where the fitted envelope is above this
#: Unpitched clips at least this flat (spectral flatness, 0 tonal .. 1 white noise) get the noise start;
#: tonal "unpitched" clips (chords, detuned stacks) are better served by the predictor's candidates.
NOISY_FLATNESS = 0.1
#: The noise layer gets this share of the inharmonic power (chosen on BENCHMARKS.md's resynthesis runs).
NOISE_SHARE_GAIN = 0.06


@dataclass(frozen=True)
class ResynthesisConfig:
    """How a clip becomes a table and a start.

    max_keyframes   most keyframes stored (each ~11 kB of preset JSON; Vital interpolates the rest).
    tolerance       keyframes are added until interpolation misses every position's square-root
                    magnitude spectrum by less than this (relative L2).
    cycles          periods of f0 per analysis window (time vs harmonic resolution).
    max_level_db    the level contour left in the frames after the envelope fit is clipped to +-this.
    """

    max_keyframes: int = 96
    tolerance: float = 0.03
    cycles: float = 4.0
    max_level_db: float = 12.0


# --------------------------------------------------------------------------- Vital's envelope


def _power_scale(x: np.ndarray, power: float) -> np.ndarray:
    """Vital's futils::powerScale: (e^(p x) - 1) / (e^p - 1), linear for p near 0."""
    if abs(power) < 1e-3:
        return x
    return np.expm1(power * x) / math.expm1(power)


def envelope(t: np.ndarray, note_seconds: float, attack: float, decay: float, sustain: float, release: float,
             attack_power: float = 0.0, decay_power: float = 0.0, release_power: float = 0.0) -> np.ndarray:
    """Vital's envelope value (0..1) at times ``t`` (seconds from note-on); times in seconds, not raw.

    Attack rises by powerScale(x, -attack_power), decay falls to the sustain
    by powerScale(x, decay_power), the release falls from the value at
    note-off by powerScale(x, release_power) (Vital's Envelope::process).
    """
    t = np.asarray(t, dtype=np.float64)

    def held(u: np.ndarray) -> np.ndarray:
        a = max(attack, 1e-9)
        rising = _power_scale(np.clip(u / a, 0.0, 1.0), -attack_power)
        falling = 1.0 - (1.0 - sustain) * _power_scale(np.clip((u - attack) / max(decay, 1e-9), 0.0, 1.0),
                                                        decay_power)
        return np.where(u < attack, rising, falling)

    start = float(held(np.array([note_seconds]))[0])
    after = np.clip((t - note_seconds) / max(release, 1e-9), 0.0, 1.0)
    released = start * (1.0 - _power_scale(after, release_power))
    return np.where(t < note_seconds, held(t), released)


def _rms_db(audio: np.ndarray, hop: int) -> np.ndarray:
    """Frame RMS (channels pooled) in dB re its maximum, floored at _FLOOR_DB: (n_frames,), ``hop`` samples each."""
    x = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    rms = librosa.feature.rms(y=x, frame_length=hop, hop_length=hop, center=False, dtype=np.float64)[:, 0]
    rms = np.sqrt(np.mean(rms**2, axis=0))
    return np.maximum(librosa.amplitude_to_db(rms, ref=np.max, amin=1e-12, top_db=None), _FLOOR_DB)


def _envelope_to_db(e: np.ndarray) -> np.ndarray:
    """Vital's envelope value (0..1) as a level in dB: its amplitude is the value squared."""
    return librosa.amplitude_to_db(np.square(e), amin=1e-18, top_db=None)


_ENV_PARAMS = ("attack", "decay", "sustain", "release", "attack_power", "decay_power", "release_power")


def fit_envelope(analysis: Analysis, space: ParamSpace | None = None, env: int = 1) -> dict[str, float]:
    """Envelope ``env``'s raw ParamSpace values fitted to the clip's RMS envelope (10 ms hops).

    Least squares in dB (floored at -60 dB re the peak) between the clip and
    ``level + 20 log10(envelope^2)`` with the note-off at intake's
    ``note_seconds``; several starts (pluck, organ, pad), the best kept.
    Times are searched as Vital's raw quartic values, so bounds come from the
    ParamSpace. When the clip does not show the release (``release_observed``
    is False: the key is held to the clip's end, or the sound has died away
    before the key is let go) any release fits equally well, so the release
    and its curve are not fitted: they keep Init's values (Vital's default).
    """
    from scipy.optimize import least_squares

    space = space or default_space()
    sr = int(analysis.sample_rate)
    hop = max(1, round(_ENV_HOP_S * sr))
    target = _rms_db(analysis.audio, hop)
    t = (np.arange(len(target)) + 0.5) * hop / sr
    names = [f"env_{env}_{n}" for n in _ENV_PARAMS]
    lo_all = np.array([space[n].min for n in names] + [-40.0])
    hi_all = np.array([space[n].max for n in names] + [40.0])
    note = float(analysis.note_seconds)
    fixed: dict[int, float] = {}
    if not release_observed(analysis):
        fixed = {3: float(space[names[3]].default), 6: float(space[names[6]].default)}
    free = np.array([i for i in range(len(lo_all)) if i not in fixed])
    lo, hi = lo_all[free], hi_all[free]

    def full(xf: np.ndarray) -> np.ndarray:
        x = np.empty(len(lo_all))
        x[free] = xf
        for i, v in fixed.items():
            x[i] = v
        return x

    def model_db(x: np.ndarray) -> np.ndarray:
        a, d, s, r = (x[0] ** 4, x[1] ** 4, x[2], x[3] ** 4)
        e = envelope(t, note, a, d, s, r, x[4], x[5], x[6])
        return np.maximum(_envelope_to_db(e) + x[7], _FLOOR_DB)

    def residual(xf: np.ndarray) -> np.ndarray:
        return model_db(full(xf)) - target

    q = lambda s: s**0.25  # noqa: E731 - seconds -> Vital's raw quartic time
    tail = max(0.05, float(analysis.render_seconds) - note)
    guesses = [
        [q(0.003), q(max(0.05, note)), 0.0, q(tail), 0.0, 4.0, 4.0, 0.0],  # pluck / bell: decays while held
        [q(0.005), q(0.3), 0.9, q(tail / 2), 0.0, 2.0, 2.0, 0.0],  # organ / lead: sustains
        [q(max(0.05, 0.4 * note)), q(0.5), 0.7, q(tail / 2), 0.0, 2.0, 2.0, 0.0],  # pad: slow attack
    ]
    best = None
    for g in guesses:
        x0 = np.clip(np.array(g, dtype=np.float64)[free], lo + 1e-9, hi - 1e-9)
        try:
            fit = least_squares(residual, x0, bounds=(lo, hi), x_scale=np.maximum(hi - lo, 1e-3) / 10,
                                max_nfev=300)
        except ValueError:
            continue
        if best is None or fit.cost < best.cost:
            best = fit
    x = full(best.x) if best is not None else full(np.array(guesses[1])[free])
    return {n: float(np.clip(v, space[n].min, space[n].max)) for n, v in zip(names, x[:7])}


#: The release is seen when at least this much of the clip follows the note-off ...
_MIN_TAIL_S = 0.05
#: ... and the clip at the note-off is louder than this (dB re its peak): a sound that has died away
#: before the key is let go says nothing about the release.
_AUDIBLE_AT_NOTE_OFF_DB = -40.0


def release_observed(analysis: Analysis) -> bool:
    """Whether the clip shows the release: the note-off comes ``_MIN_TAIL_S`` before its end and is audible."""
    sr = int(analysis.sample_rate)
    hop = max(1, round(_ENV_HOP_S * sr))
    level = _rms_db(analysis.audio, hop)
    off = int(float(analysis.note_seconds) * sr / hop)
    if float(analysis.render_seconds) - float(analysis.note_seconds) < _MIN_TAIL_S or off >= len(level):
        return False
    return bool(np.max(level[max(0, off - 3) : off + 1]) > _AUDIBLE_AT_NOTE_OFF_DB)


def _envelope_db(analysis: Analysis, values: dict[str, float], t: np.ndarray, env: int = 1) -> np.ndarray:
    """The fitted envelope's amplitude in dB at times ``t`` (its own peak 0 dB)."""
    v = [values[f"env_{env}_{n}"] for n in _ENV_PARAMS]
    e = envelope(t, float(analysis.note_seconds), v[0] ** 4, v[1] ** 4, v[2], v[3] ** 4, v[4], v[5], v[6])
    db = _envelope_to_db(e)
    return db - db.max()


# --------------------------------------------------------------------------- the clip's table


def _greedy_keyframes(roots: np.ndarray, tolerance: float, max_keyframes: int) -> list[int]:
    """Positions to keep so that linear interpolation of ``roots`` (n_pos, n_harm) between them stays
    within ``tolerance`` (relative L2 per position); always the first and last."""
    n = len(roots)
    keys = [0, n - 1] if n > 1 else [0]
    norms = np.linalg.norm(roots, axis=1) + 1e-12
    while len(keys) < min(max_keyframes, n):
        ks = np.array(sorted(keys))
        idx = np.searchsorted(ks, np.arange(n), side="right") - 1
        idx = np.clip(idx, 0, len(ks) - 2)
        a, b = ks[idx], ks[idx + 1]
        w = ((np.arange(n) - a) / np.maximum(b - a, 1))[:, None]
        err = np.linalg.norm((1 - w) * roots[a] + w * roots[b] - roots, axis=1) / norms
        err[ks] = 0.0
        worst = int(np.argmax(err))
        if err[worst] <= tolerance:
            break
        keys.append(worst)
    return sorted(keys)


def _table_name(analysis: Analysis) -> str:
    return f"{analysis.source_name} (clip)" if analysis.source_name else "Clip"


def clip_wavetable(analysis: Analysis, env_values: dict[str, float] | None = None,
                   config: ResynthesisConfig = ResynthesisConfig(), per_channel: bool = False) -> Wavetable:
    """The clip as a table: position p holds the clip's harmonics at time p/256 of its length.

    With ``env_values`` (a fitted envelope 1) each frame's level is what that
    envelope misses at its moment (clipped to +-max_level_db); without, all
    frames have equal RMS. Named after the clip. Needs ``analysis.f0_hz``.
    ``per_channel``: harmonic magnitudes are the RMS over the two channels
    instead of those of the mono mix, so the slow beating of voices spread
    across the stereo field stays out of the table (the width start's
    detuned unison makes it again).
    """
    if analysis.f0_hz is None:
        raise ValueError("an unpitched clip has no harmonics to make a table from; use noise_start")
    sr = int(analysis.sample_rate)
    n = analysis.audio.shape[-1]
    positions = np.arange(MAX_POSITION + 1)
    centres = np.round(positions / MAX_POSITION * (n - 1)).astype(np.int64)
    spectra = harmonic_track(analysis.audio, sr, float(analysis.f0_hz), centres, config.cycles)
    mags = np.abs(spectra)
    audio = np.atleast_2d(np.asarray(analysis.audio))
    if per_channel and audio.shape[0] == 2:
        per = [np.abs(harmonic_track(ch, sr, float(analysis.f0_hz), centres, config.cycles)) for ch in audio]
        mags = np.sqrt((per[0] ** 2 + per[1] ** 2) / 2)
    mags[:, 0] = 0.0
    level = np.linalg.norm(mags, axis=1)
    level_db = librosa.amplitude_to_db(level, ref=np.max, amin=1e-12, top_db=None)
    shape = mags / np.maximum(level, 1e-12)[:, None]
    loud = level_db > _QUIET_DB
    if not loud.any():
        raise ValueError("the clip has no energy at the harmonics of its f0")
    nearest = np.flatnonzero(loud)[np.argmin(np.abs(np.flatnonzero(loud)[None, :] - positions[:, None]), axis=1)]
    shape = np.where(loud[:, None], shape, shape[nearest])
    if env_values is not None:
        t = centres / sr
        model_db = _envelope_db(analysis, env_values, t)
        trusted = loud & (model_db > _TRUSTED_ENV_DB)  # where the envelope is near 0, a ratio means nothing
        contour = level_db - model_db
        if trusted.any():
            contour = np.where(trusted, contour - np.median(contour[trusted]), 0.0)
        else:
            contour = np.zeros(len(positions))
        gain = librosa.db_to_amplitude(np.clip(contour, -config.max_level_db, config.max_level_db))
    else:
        gain = np.ones(len(positions))
    phases = np.angle(align_cycle_phase(spectra[int(np.argmax(level))]))
    spectra_out = shape * gain[:, None] * np.exp(1j * phases)[None, :]
    keys = _greedy_keyframes(np.sqrt(shape * gain[:, None]), config.tolerance, config.max_keyframes)
    frames = frames_from_spectra(spectra_out[keys])
    frames -= frames.mean(axis=1, keepdims=True)
    frames /= max(float(np.abs(frames).max()), 1e-12)
    return Wavetable(_table_name(analysis), frames.astype(np.float32), tuple(int(k) for k in keys))


# --------------------------------------------------------------------------- starts


def _one_shot_base(space: ParamSpace) -> dict:
    """Init's document with LFO 1 in one-shot ("Envelope") mode: the sweep runs once per note, then holds."""
    import vita  # noqa: F401 - options are read from Vita, never typed in

    from .synth import thread_renderer

    doc = init_doc(space)
    details = thread_renderer().synth.get_control_details("lfo_1_sync_type")
    doc["settings"]["lfo_1_sync_type"] = float(details.min) + list(details.options).index(_LFO_ONE_SHOT)
    return doc


def _with_base(preset: Preset, base: dict) -> Preset:
    """``preset`` exported over ``base`` (every ParamSpace value written, nothing treated as imported)."""
    from dataclasses import replace

    return replace(preset, base=copy.deepcopy(base), base_values=None)


def _sweep_values(analysis: Analysis, space: ParamSpace) -> dict[str, float]:
    """Oscillator 1 and LFO 1 settings that play the clip's table in time with the clip."""
    period = max(float(analysis.audio.shape[-1]) / analysis.sample_rate, 0.05)
    freq = space["lfo_1_frequency"]
    tune, transpose = space["osc_1_tune"], space["osc_1_transpose"]
    # the table's cycle is one period of f0: shift the played note onto f0 (cents for a pitched clip,
    # whole semitones too for an "unpitched" clip played at MIDI 60 whose f0 could still be measured)
    semitones = float(librosa.hz_to_midi(float(analysis.f0_hz))) - analysis.note
    whole = float(np.clip(round(semitones), transpose.min, transpose.max))
    return {
        "osc_1_on": space["osc_1_on"].option_values[1],
        "osc_1_wave_frame": 0.0,
        "osc_1_transpose": whole,
        "osc_1_tune": float(np.clip(semitones - whole, tune.min, tune.max)),
        "osc_1_unison_voices": 1.0,
        "osc_1_spectral_morph_type": space["osc_1_spectral_morph_type"].option_values[0],
        "osc_1_distortion_type": space["osc_1_distortion_type"].option_values[0],
        "lfo_1_frequency": float(np.clip(-math.log2(period), freq.min, freq.max)),
        "lfo_1_shape": space["lfo_1_shape"].option_values[space["lfo_1_shape"].options.index(_SWEEP_SHAPE)],
        SWEEP_ROUTE: 1.0,
        "mod_lfo1_pitch": 0.0,
        "mod_env3_osc1_frame": 0.0,
    }


def resynthesis_start(analysis: Analysis, config: ResynthesisConfig = ResynthesisConfig(),
                      space: ParamSpace | None = None, table: Wavetable | None = None,
                      env: dict[str, float] | None = None) -> Preset:
    """Init + the clip's swept table in oscillator 1 + envelope 1 fitted to the clip (pitched clips)."""
    space = space or default_space()
    env = env or fit_envelope(analysis, space)
    table = table or clip_wavetable(analysis, env, config)
    values = {**_sweep_values(analysis, space), **env}
    preset = Preset.from_values(values, space, name=f"{analysis.source_name} (Vital Inverse)",
                                comments="Resynthesised from the clip by Vital Inverse")
    return _with_base(with_custom_wavetable(preset, 1, table), _one_shot_base(space))


def mixed_start(analysis: Analysis, other: Preset, table: Wavetable, space: ParamSpace | None = None) -> Preset:
    """``other`` (a predicted preset) with oscillator 1 playing the clip's swept table instead of its own."""
    space = space or default_space()
    preset = other.with_values(_sweep_values(analysis, space)).with_meta(
        comments="Predicted by Vital Inverse, oscillator 1 playing the clip's own table")
    return _with_base(with_custom_wavetable(preset, 1, table), _one_shot_base(space))


def _rolloff_note(analysis: Analysis, fraction: float = 0.85) -> float:
    """MIDI note (Vital's cutoff unit) below which ``fraction`` of the clip's power lies."""
    mono = np.asarray(analysis.audio, dtype=np.float64).mean(axis=0)
    power = np.abs(np.fft.rfft(mono)) ** 2
    freqs = np.fft.rfftfreq(len(mono), 1.0 / analysis.sample_rate)
    cum = np.cumsum(power)
    hz = float(freqs[int(np.searchsorted(cum, fraction * cum[-1]))])
    return float(librosa.hz_to_midi(max(hz, 20.0)))


def noise_start(analysis: Analysis, space: ParamSpace | None = None) -> Preset:
    """Unpitched clips: the sample oscillator's white noise through an analog low-pass at the clip's
    roll-off, under envelope 1 fitted to the clip; the oscillators off."""
    space = space or default_space()
    cutoff = space["filter_1_cutoff"]
    dest = space["sample_destination"]
    values = {
        **{f"osc_{k}_on": space[f"osc_{k}_on"].option_values[0] for k in (1, 2, 3)},
        "sample_on": space["sample_on"].option_values[1],
        "sample_destination": dest.option_values[dest.options.index("FILTER 1")],
        "filter_1_on": space["filter_1_on"].option_values[1],
        "filter_1_cutoff": float(np.clip(_rolloff_note(analysis), cutoff.min, cutoff.max)),
        **fit_envelope(analysis, space),
    }
    return Preset.from_values(values, space, name=f"{analysis.source_name} (Vital Inverse)",
                              comments="Noise start fitted to the clip by Vital Inverse")


_RESIDUAL_CYCLES = 12  # periods per window when measuring the inharmonic share (narrow harmonic lobes)


def residual_fraction(analysis: Analysis) -> float:
    """Share (0..1) of the clip's power that is not at the harmonics of its f0 (breath, bow, hammer noise).

    Harmonic power from Hann windows of 12 periods, each centred on a
    sample of the clip (so the window's power matches the clip's); a
    window's main lobes catch 1.5 / 12 of white noise's power as
    "harmonic", which is added back.
    """
    mono = np.asarray(analysis.audio, dtype=np.float64).mean(axis=0)
    centres = np.linspace(0, len(mono) - 1, 64).round().astype(np.int64)
    spectra = harmonic_track(mono, int(analysis.sample_rate), float(analysis.f0_hz), centres, _RESIDUAL_CYCLES)
    harmonic = np.sum(np.abs(spectra[:, 1:]) ** 2 / 2, axis=1)
    length = int(min(len(mono), round(_RESIDUAL_CYCLES * analysis.sample_rate / float(analysis.f0_hz))))
    firsts = np.clip(centres - length // 2, 0, len(mono) - length)
    window = np.hanning(length) ** 2
    total = np.array([np.sum(mono[f : f + length] ** 2 * window) / window.sum() for f in firsts])
    loud = total > 1e-4 * total.max()
    share = 1.0 - float(harmonic[loud].sum()) / max(float(total[loud].sum()), 1e-20)
    return float(np.clip(share / (1.0 - 1.5 / _RESIDUAL_CYCLES), 0.0, 1.0))


def _residual_rolloff_note(analysis: Analysis, fraction: float = 0.85) -> float:
    """Like _rolloff_note, over the bins between the harmonics only (what the noise layer must cover)."""
    mono = np.asarray(analysis.audio, dtype=np.float64).mean(axis=0)
    n_fft = 4096
    mono = np.pad(mono, (0, max(0, n_fft - len(mono))))
    power = np.mean(np.abs(librosa.stft(mono, n_fft=n_fft, hop_length=n_fft // 2, center=False)) ** 2, axis=1)
    freqs = librosa.fft_frequencies(sr=analysis.sample_rate, n_fft=n_fft)
    f0 = float(analysis.f0_hz)
    between = np.abs(freqs / f0 - np.round(freqs / f0)) > 0.25
    cum = np.cumsum(np.where(between, power, 0.0))
    hz = float(freqs[int(np.searchsorted(cum, fraction * cum[-1]))]) if cum[-1] > 0 else 1000.0
    return float(librosa.hz_to_midi(max(hz, 20.0)))


def noise_layer(analysis: Analysis, start: Preset, renderer=None, space: ParamSpace | None = None,
                min_fraction: float = 0.05) -> Preset | None:
    """``start`` plus the sample oscillator's white noise through filter 2 (a low-pass at the roll-off of
    what lies between the harmonics), at the level of the clip's inharmonic share; None when that share is
    below ``min_fraction``.

    The level is set from two renders (``renderer``, default this thread's):
    the start alone and the noise alone at a reference level; Vital's sample
    level is quadratic (amplitude ~ level^2), so power ~ level^4.
    """
    from .synth import thread_renderer

    space = space or default_space()
    share = residual_fraction(analysis)
    if share < min_fraction:
        return None
    renderer = renderer or thread_renderer()
    dest, cutoff, level = space["sample_destination"], space["filter_2_cutoff"], space["sample_level"]
    noisy = start.with_values({
        "sample_on": space["sample_on"].option_values[1],
        "sample_destination": dest.option_values[dest.options.index("FILTER 2")],
        "filter_2_on": space["filter_2_on"].option_values[1],
        "filter_2_cutoff": float(np.clip(_residual_rolloff_note(analysis, 0.5), cutoff.min, cutoff.max)),
        "sample_level": 0.5,
    })
    args = (analysis.note, RENDER_VELOCITY, float(analysis.note_seconds), float(analysis.render_seconds))
    power = lambda p: float(np.mean(np.square(renderer.render(p, *args), dtype=np.float64)))  # noqa: E731
    tonal = power(start)
    alone = power(noisy.with_values({"osc_1_on": space["osc_1_on"].option_values[0]}))
    if not (tonal > 0 and alone > 0):
        return None
    want = NOISE_SHARE_GAIN * share / max(1.0 - share, 1e-3) * tonal
    value = float(np.clip(0.5 * (want / alone) ** 0.25, level.min, level.max))
    return noisy.with_values({"sample_level": value}).with_meta(
        comments="Resynthesised from the clip by Vital Inverse (with its noise)")


# --------------------------------------------------------------------------- width


def side_mid_ratio(audio: np.ndarray) -> float:
    """Power of the side signal (L-R)/2 over that of the mid (L+R)/2: 0 for mono, 1 for unrelated channels."""
    x = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    if x.shape[0] < 2:
        return 0.0
    mid, side = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2
    return float(np.sum(side**2) / max(float(np.sum(mid**2)), 1e-20))


#: Clips wider than this (side/mid power) get a start with unison width.
WIDE_RATIO = 0.05
_WIDTH_VOICES = 2.0  # unison voices of the width start (2 stay closest: more voices smear the table's partials)
_WIDTH_DETUNES = (0.3, 0.8, 2.0, 5.0)  # unison detune (Vital's raw 0..10) tried; the closest width is kept


def width_start(analysis: Analysis, start: Preset, renderer=None, space: ParamSpace | None = None,
                config: ResynthesisConfig = ResynthesisConfig()) -> Preset | None:
    """``start`` (a resynthesis start) with oscillator 1 in 2-voice unison playing the clip's per-channel
    table (``clip_wavetable(per_channel=True)``), its detune fitted to the clip's stereo width (side/mid
    power, compared in dB on four renders; Vital's stereo spread at Init's); None for a clip narrower than
    ``WIDE_RATIO``. The detune brings back the slow beating of a detuned stack."""
    from .synth import thread_renderer

    space = space or default_space()
    want = side_mid_ratio(analysis.audio)
    if want < WIDE_RATIO:
        return None
    renderer = renderer or thread_renderer()
    env = {f"env_1_{n}": float(start.values[f"env_1_{n}"]) for n in _ENV_PARAMS}
    start = with_custom_wavetable(start, 1, clip_wavetable(analysis, env, config, per_channel=True))
    args = (analysis.note, RENDER_VELOCITY, float(analysis.note_seconds), float(analysis.render_seconds))
    detune = space["osc_1_unison_detune"]
    best, best_err = None, math.inf
    for d in _WIDTH_DETUNES:
        p = start.with_values({"osc_1_unison_voices": _WIDTH_VOICES,
                               "osc_1_unison_detune": float(np.clip(d, detune.min, detune.max))})
        got = side_mid_ratio(renderer.render(p, *args))
        err = abs(math.log10(max(got, 1e-6) / want))
        if err < best_err:
            best, best_err = p, err
    return best.with_meta(comments="Resynthesised from the clip by Vital Inverse (unison width fitted)")


# --------------------------------------------------------------------------- drums

#: Envelope 3 drives oscillator 1's transpose for the drum start (a modulation outside the ParamSpace's
#: fixed routes, written into the start's base document; its amount is a share of transpose's range).
PITCH_ENV_SOURCE, PITCH_ENV_DESTINATION = "env_3", "osc_1_transpose"
_DRUM_TRACK_S = 0.5  # the pitch fall is tracked over the clip's first half second
_MIN_FALL_SEMITONES = 1.0  # a smaller fall is no pitch envelope
_MAX_RISE_SEMITONES = 0.3  # a step up by more than this between tracked frames is a rise ...
_MAX_RISING_SHARE = 0.1  # ... and a track with more rises than this share of its steps is no falling drum
_MAX_FIT_SEMITONES = 1.0  # RMS misfit of the envelope model above which the track is not a drum's fall


def pitch_track(analysis: Analysis, seconds: float = _DRUM_TRACK_S) -> tuple[np.ndarray, np.ndarray]:
    """(times s, MIDI pitch) of the voiced frames of the clip's first ``seconds`` (librosa pYIN, 5.8 ms hop)."""
    sr = int(analysis.sample_rate)
    mono = np.asarray(analysis.audio, dtype=np.float64).mean(axis=0)[: int(seconds * sr)]
    hop, frame = 256, 2048
    f0, voiced, _ = librosa.pyin(mono, fmin=2.0 * sr / frame + 1.0, fmax=2000.0, sr=sr, frame_length=frame,
                                 hop_length=hop, center=True)  # fmin: two periods per frame (44 Hz)
    t = librosa.times_like(f0, sr=sr, hop_length=hop)
    ok = voiced & np.isfinite(f0)
    return t[ok], librosa.hz_to_midi(f0[ok])


def fit_pitch_fall(analysis: Analysis) -> dict[str, float] | None:
    """The tracked pitch as end + fall * (Vital's envelope with no attack and no sustain): {"end": MIDI,
    "fall": semitones, "decay": s, "decay_power": Vital's curve}; None without a fall of at least
    ``_MIN_FALL_SEMITONES`` (a steady or unpitched drum)."""
    from scipy.optimize import least_squares

    t, midi = pitch_track(analysis)
    if len(t) < 6:
        return None
    fall0 = float(np.median(midi[:3]) - np.median(midi[-3:]))
    if fall0 < _MIN_FALL_SEMITONES:
        return None

    def model(x: np.ndarray) -> np.ndarray:
        return x[0] + x[1] * (1.0 - _power_scale(np.clip(t / x[2], 0.0, 1.0), x[3]))  # Vital's decay to 0

    steps = np.diff(midi)
    if np.mean(steps > _MAX_RISE_SEMITONES) > _MAX_RISING_SHARE:
        return None  # the pitch goes up as well as down: a melody or a sequence, not a drum's fall
    x0 = np.array([float(np.median(midi[-3:])), fall0, 0.1, 2.0])
    fit = least_squares(lambda x: model(x) - midi, x0, bounds=([0.0, 0.0, 0.005, -10.0], [127.0, 96.0, 2.0, 10.0]))
    end, fall, decay, power = (float(v) for v in fit.x)
    if fall < _MIN_FALL_SEMITONES or float(np.sqrt(np.mean(fit.fun**2))) > _MAX_FIT_SEMITONES:
        return None
    return {"end": end, "fall": fall, "decay": decay, "decay_power": power}


def _sine_table() -> Wavetable:
    """One frame of a sine: a drum's body."""
    spectrum = np.zeros((1, 2), dtype=np.complex128)
    spectrum[0, 1] = -1j
    return Wavetable("Sine (drum body)", frames_from_spectra(spectrum).astype(np.float32), (0,))


def drum_start(analysis: Analysis, space: ParamSpace | None = None) -> Preset | None:
    """A pitched drum: oscillator 1 a sine at the tracked pitch's end, envelope 3 -> oscillator 1
    transpose fitted to the tracked pitch fall (``fit_pitch_fall``), envelope 1 fitted to the clip's
    level; None when the clip has no pitch fall."""
    space = space or default_space()
    fall = fit_pitch_fall(analysis)
    if fall is None:
        return None
    tr, tune = space["osc_1_transpose"], space["osc_1_tune"]
    semitones = fall["end"] - analysis.note
    whole = float(np.clip(round(semitones), tr.min, tr.max))
    values = {
        "osc_1_on": space["osc_1_on"].option_values[1],
        "osc_1_transpose": whole,
        "osc_1_tune": float(np.clip(semitones - whole, tune.min, tune.max)),
        "osc_1_unison_voices": 1.0,
        "osc_1_spectral_morph_type": space["osc_1_spectral_morph_type"].option_values[0],
        "osc_1_distortion_type": space["osc_1_distortion_type"].option_values[0],
        "env_3_attack": 0.0,
        "env_3_decay": float(np.clip(fall["decay"] ** 0.25, space["env_3_decay"].min, space["env_3_decay"].max)),
        "env_3_sustain": 0.0,
        "env_3_decay_power": float(np.clip(fall["decay_power"], space["env_3_decay_power"].min,
                                           space["env_3_decay_power"].max)),
        **fit_envelope(analysis, space),
    }
    base = init_doc(space)
    st = base["settings"]
    slot = next(i for i, m in enumerate(st["modulations"]) if not m.get("source") and not m.get("destination"))
    st["modulations"][slot] = {"source": PITCH_ENV_SOURCE, "destination": PITCH_ENV_DESTINATION}
    st[f"modulation_{slot + 1}_amount"] = float(np.clip(fall["fall"] / (tr.max - tr.min), 0.0, 1.0))
    for key in ("bipolar", "bypass", "power", "stereo"):
        st[f"modulation_{slot + 1}_{key}"] = 0.0
    preset = Preset.from_values(values, space, name=f"{analysis.source_name} (Vital Inverse)",
                                comments="Drum start fitted to the clip by Vital Inverse: a sine whose pitch "
                                         "falls with envelope 3")
    return _with_base(with_custom_wavetable(preset, 1, _sine_table()), base)


# --------------------------------------------------------------------------- refinement

#: What refinement searches from a start made of the clip: envelope 1 (the fitted level), the sweep's
#: speed and depth, the sample oscillator's noise and its filter, filter 1 and envelope 2 on it (a start's
#: filter is opened by refinement), the unison detune, and the drum start's pitch envelope and pitch.
#: Everything else a start makes reachable (envelope 3's unused routes, LFO 2, pan, the wave frame
#: offset...) only spends renders: the clip's table and envelope already carry what it would change.
CLIP_SEARCHED = frozenset(
    [f"env_1_{n}" for n in _ENV_PARAMS]
    + [f"env_2_{n}" for n in ("attack", "decay", "sustain", "decay_power")]
    + ["env_3_decay", "env_3_decay_power", "osc_1_transpose", "osc_1_tune"]
    + ["lfo_1_frequency", SWEEP_ROUTE, "osc_1_unison_detune", "sample_level", "filter_2_cutoff",
       "filter_1_cutoff", "filter_1_resonance", "mod_env2_filter1_cutoff"]
)


def search_locks(space: ParamSpace | None = None) -> frozenset[str]:
    """Every continuous ParamSpace parameter outside ``CLIP_SEARCHED``: ``RefineConfig(locked=...)`` for
    refining a start made of the clip (fewer dimensions: CMA-ES settles in fewer renders)."""
    space = space or default_space()
    return frozenset(p.name for p in space.continuous if p.name not in CLIP_SEARCHED)


#: Candidate sources (``predict.Candidate.source``) that are starts made of the clip.
CLIP_START_KINDS = ("resynthesis", "resynthesis+noise", "resynthesis+width", "noise", "drum")


#: Generations without a 0.5% fall of the loss after which refining a clip start stops (BENCHMARKS section 11).
CLIP_PLATEAU = 8
#: The sweep's timing: LFO 1's period is the clip's length and the route plays frame 256 at its end, so
#: frame p sounds at time p/256 of the clip. Fitted exactly, never searched: a 1% step of either puts
#: every frame at the wrong time (+0.2..1.7 dB MSS), so CMA-ES steps that touch it only ever lose.
SWEEP_TIMING = frozenset({"lfo_1_frequency", SWEEP_ROUTE})
#: A table start's pitch: its cycle is one period of the clip's f0 (pitched or not), so moving it detunes
#: every frame; only the drum start searches it (its pitch fall). Pitched targets lock it anyway (tuning).
TABLE_PITCH = frozenset({"osc_1_transpose", "osc_1_tune"})
#: A clip start's search: the loss plus this x MSS (dB) ranks the candidates, and a plateau restarts the
#: search around the best with a third of the step, twice, before it stops (BENCHMARKS section 7, session 5).
CLIP_MSS_WEIGHT = 0.2
CLIP_RESTARTS = 2


def clip_refine_config(config=None, kind: str = ""):
    """``config`` (a ``refine.RefineConfig``, default the default one) with ``search_locks()``, the
    sweep's timing and (but for ``kind`` "drum", a ``CLIP_START_KINDS`` name) the table's pitch added to
    what it keeps locked; a stop once the loss has not fallen for ``CLIP_PLATEAU`` generations after
    ``CLIP_RESTARTS`` polishing restarts, and the MSS term in the search's ranking (each unless ``config``
    sets its own): how the app and the CLI refine a start made of the clip, which starts close to the
    clip and in few dimensions."""
    from dataclasses import replace

    from .refine import RefineConfig

    config = config if config is not None else RefineConfig()
    pitch = frozenset() if kind == "drum" else TABLE_PITCH
    return replace(config, locked=frozenset(config.locked) | search_locks() | SWEEP_TIMING | pitch,
                   plateau=config.plateau or CLIP_PLATEAU, restarts=config.restarts or CLIP_RESTARTS,
                   mss_weight=config.mss_weight or CLIP_MSS_WEIGHT)


def spectral_flatness(analysis: Analysis) -> float:
    """Spectral flatness of the clip (0 tonal .. 1 white noise): librosa's per frame, geometric mean
    weighted by frame power, so quiet tails do not count."""
    import librosa

    mono = np.asarray(analysis.audio, dtype=np.float32).mean(axis=0)
    flat = librosa.feature.spectral_flatness(y=mono, n_fft=2048, hop_length=512)[0]
    weight = librosa.feature.rms(y=mono, frame_length=2048, hop_length=512)[0] ** 2
    n = min(len(flat), len(weight))
    return float(np.exp(np.sum(weight[:n] * np.log(flat[:n] + 1e-12)) / max(float(weight[:n].sum()), 1e-20)))


def _weakly_pitched(analysis: Analysis, sieve: bool = True) -> Analysis | None:
    """An unpitched clip with the f0 intake's detector still finds (a detuned stack, a chord, a wobbling
    lead), or else (``sieve``) the harmonic sieve's common f0, as an Analysis carrying it; None for noise.
    Its note stays intake's (MIDI 60)."""
    from dataclasses import replace

    from .intake import detect_pitch

    f0, _ = detect_pitch(np.asarray(analysis.audio).mean(axis=0), int(analysis.sample_rate))
    if (f0 is None or not np.isfinite(f0) or f0 <= 0) and sieve:
        f0 = sieve_f0(analysis)
    if f0 is None or not np.isfinite(f0) or f0 <= 0:
        return None
    return replace(analysis, f0_hz=float(f0))


def _at_common_period(analysis: Analysis) -> Analysis:
    """A pitched clip holding more than one note (a chord, a fifth layer) as an Analysis whose f0 is the
    period its notes share (intake's detector on the whole clip, else the harmonic sieve), so that the
    table taken at it holds every note; a table at the lowest note drops the others. Unchanged when no
    period below the lowest note is found."""
    weak = _weakly_pitched(analysis)
    if weak is None or not analysis.f0_hz or weak.f0_hz >= float(analysis.f0_hz) / 1.4:
        return analysis
    return weak


_SIEVE_PEAKS = 3  # strongest spectral peaks whose subharmonics are tried as the common f0
_SIEVE_DIVISORS = 6  # a peak may be harmonic 1..6 of the common f0
_SIEVE_MIN_HZ = 30.0
_SIEVE_MAX_HZ = 2000.0  # a chord's common f0 lies below its lowest note
_SIEVE_SLACK = 0.03  # the highest f0 whose harmonic share is within this of the best one wins
#: Below this share of the clip's power at its harmonics no f0 is claimed. Low on purpose: a tonal clip
#: with no pitch (a chord through chorus and reverb, a sequence) played back from a table at its sieve f0
#: was closer than the predictor's candidates even at a 3% share (BENCHMARKS.md section 11).
_SIEVE_MIN_SHARE = 0.02


def sieve_f0(analysis: Analysis) -> float | None:
    """A common f0 for a tonal clip that has no single pitch (a chord, a stack of voices): the highest
    subharmonic of one of its strongest spectral peaks at whose harmonics most of the clip's power lies
    (``residual_fraction``); None for noise.

    A chord's notes are (nearly) harmonics of a low common f0 (C-E-G: 4:5:6
    of C two octaves down), so the clip's table taken at that f0 holds the
    whole chord; Vital plays it back at that f0.
    """
    from dataclasses import replace

    mono = np.asarray(analysis.audio, dtype=np.float64).mean(axis=0)
    power = np.abs(np.fft.rfft(mono * np.hanning(len(mono)))) ** 2
    freqs = np.fft.rfftfreq(len(mono), 1.0 / analysis.sample_rate)
    power[freqs < _SIEVE_MIN_HZ] = 0.0
    log_power = np.log(power + 1e-30)
    peaks = []
    for _ in range(_SIEVE_PEAKS):
        i = int(np.argmax(power))
        if power[i] <= 0 or not 0 < i < len(power) - 1:
            break
        # quadratic interpolation of the log power around the peak bin: a fraction of a bin, so the
        # common f0 (a peak / k) and the table's high harmonics stay in tune
        a, b, c = log_power[i - 1 : i + 2]
        shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) < 0 else 0.0
        peaks.append(float(freqs[i] + np.clip(shift, -0.5, 0.5) * (freqs[1] - freqs[0])))
        power[np.abs(freqs - freqs[i]) < 0.03 * freqs[i] + 5.0] = 0.0  # the peak's neighbours are the same partial
    trials = sorted({round(f / k, 3) for f in peaks for k in range(1, _SIEVE_DIVISORS + 1)
                     if _SIEVE_MIN_HZ <= f / k <= _SIEVE_MAX_HZ}, reverse=True)
    shares = {}
    for f in trials:
        try:
            shares[f] = 1.0 - residual_fraction(replace(analysis, f0_hz=f))
        except WavetableError:  # an f0 the harmonic analysis cannot use
            continue
    trials = [f for f in trials if f in shares]
    if not shares or max(shares.values()) < _SIEVE_MIN_SHARE:
        return None
    best = max(shares.values())
    return next(f for f in trials if shares[f] >= best - _SIEVE_SLACK)


def starts(analysis: Analysis, others: list[Preset] | tuple = (), config: ResynthesisConfig = ResynthesisConfig(),
           space: ParamSpace | None = None, noise: bool = True, width: bool = True) -> list[tuple[str, Preset]]:
    """Every start made of the clip: (kind, preset) with kind "resynthesis", "resynthesis+noise",
    "resynthesis+width", "mixed", "noise" or "drum".

    Pitched clips: the resynthesis start, the same with a noise layer (when
    ``noise`` and the clip has a noticeable inharmonic share: two renders to
    set its level), the same in 2-voice unison with its detune fitted to the
    clip's width (when ``width`` and the clip is wide: four renders), then
    one mixed start per preset in ``others`` (the predictor's candidates to
    borrow modules from). Unpitched clips: the drum start when the clip's
    pitch falls, the resynthesis starts at the f0 intake's detector or the
    harmonic sieve (``sieve_f0``, tonal clips only) finds (a chord, a sequence), and
    the noise start when the clip is noise-like (``NOISY_FLATNESS``) or
    nothing else fits, so every clip gets at least one start of its own.
    """
    space = space or default_space()
    out: list[tuple[str, Preset]] = []
    if analysis.f0_hz is None or not analysis.pitched:
        drum = drum_start(analysis, space)
        if drum is not None:
            out.append(("drum", drum))
        noisy = spectral_flatness(analysis) >= NOISY_FLATNESS
        weak = _weakly_pitched(analysis, sieve=not noisy)
        if weak is None or noisy:
            out.insert(0, ("noise", noise_start(analysis, space)))
        if weak is None:
            return out
        analysis = weak
    elif analysis.more_than_one_note:
        analysis = _at_common_period(analysis)
    try:
        env = fit_envelope(analysis, space)
        table = clip_wavetable(analysis, env, config)
    except (ValueError, WavetableError):
        if not any(kind == "noise" for kind, _ in out):
            out.insert(0, ("noise", noise_start(analysis, space)))
        return out
    start = resynthesis_start(analysis, config, space, table=table, env=env)
    out.append(("resynthesis", start))
    if noise:
        noisy = noise_layer(analysis, start, space=space)
        if noisy is not None:
            out.append(("resynthesis+noise", noisy))
    if width:
        wide = width_start(analysis, start, space=space, config=config)
        if wide is not None:
            out.append(("resynthesis+width", wide))
    out += [("mixed", mixed_start(analysis, p, table, space)) for p in others]
    return out
