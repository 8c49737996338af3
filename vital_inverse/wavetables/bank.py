# SPDX-License-Identifier: GPL-3.0-or-later
"""The project's own bank of 39 wavetables, computed from recipes, and the nearest bank table to a custom one.

Vital's factory wavetables may not be redistributed, so every bank table is
computed here from a few lines of maths (numpy only, seeded noise), giving the
same bytes on every call. Frames are built from harmonics (additively, or by
evaluating a shape on an oversampled cycle and band-limiting it), each with no
DC and a peak of exactly 1. "Init Saw" is bit-identical to Vital's Init table
and comes first, so bank index 0 is Vital's default.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Sequence

import librosa
import numpy as np

from .frames import MAX_HARMONIC, frame_from_shape, frame_from_sines, frame_from_spectrum
from .table import FRAME_SIZE, Wavetable, WavetableError

_PROFILE_HARMONICS = 64  # harmonics compared by nearest_bank_name
_PROFILE_FLOOR_DB = -60.0  # harmonics quieter than this (re the frame's strongest) count as this


# --------------------------------------------------------------------------- building blocks


def _harmonics(n: int = MAX_HARMONIC) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.float64)


def _saw_coeffs(n: int = MAX_HARMONIC) -> np.ndarray:
    """Sine coefficients of Vital's Init saw (falls from 0, jumps up mid-cycle)."""
    k = _harmonics(n)
    return (2 / np.pi) * (-1.0) ** k / k


def _square_coeffs(n: int = MAX_HARMONIC) -> np.ndarray:
    k = _harmonics(n)
    return np.where(k % 2 == 1, -(4 / np.pi) / k, 0.0)


def _triangle_coeffs(n: int = MAX_HARMONIC) -> np.ndarray:
    k = _harmonics(n)
    sign = np.where(((k - 1) // 2) % 2 == 0, 1.0, -1.0)
    return np.where(k % 2 == 1, -(8 / np.pi**2) * sign / k**2, 0.0)


def _saw_spectrum(n: int = MAX_HARMONIC) -> np.ndarray:
    """Complex rfft bins (index = harmonic) of the saw, for spectral filtering."""
    spectrum = np.zeros(n + 1, dtype=np.complex128)
    spectrum[1:] = -0.5j * FRAME_SIZE * _saw_coeffs(n)
    return spectrum


def _saw(phase: np.ndarray) -> np.ndarray:
    """Init-style saw of a phase in cycles (falls from 0 to -1, jumps to 1, falls to 0)."""
    return 2.0 * np.mod(0.5 - phase, 1.0) - 1.0


def _sine(phase: np.ndarray) -> np.ndarray:
    return -np.sin(2 * np.pi * phase)


def _square(phase: np.ndarray) -> np.ndarray:
    return np.where(np.mod(phase, 1.0) < 0.5, -1.0, 1.0)


def _noise_spectrum(seed: int, n: int = MAX_HARMONIC) -> np.ndarray:
    """Seeded complex Gaussian harmonic bins: a deterministic 'noise' cycle."""
    rng = np.random.default_rng(seed)
    spectrum = np.zeros(n + 1, dtype=np.complex128)
    spectrum[1:] = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    return spectrum


def _peak_normalised_spectrum(spectrum: np.ndarray) -> np.ndarray:
    """Scale bins so the frame they make peaks at 1 (for mixing at known levels)."""
    peak = np.max(np.abs(np.fft.irfft(_pad(spectrum), FRAME_SIZE)))
    return spectrum / peak


def _pad(spectrum: np.ndarray) -> np.ndarray:
    full = np.zeros(FRAME_SIZE // 2 + 1, dtype=np.complex128)
    full[: len(spectrum)] = spectrum
    full[0] = 0
    return full


def _resonance(k: np.ndarray, centre: float, bandwidth: float) -> np.ndarray:
    """Magnitude of a resonant peak (Lorentzian) in harmonic units."""
    return 1.0 / np.sqrt(1.0 + ((k - centre) / (0.5 * bandwidth)) ** 2)


# --------------------------------------------------------------------------- recipes
# Each recipe returns the keyframes of one table, (2048,) float32 each, spread evenly over 0..256.

Frames = list[np.ndarray]


def _init_saw() -> Frames:
    """Vital's Init wave, computed the way Vital computes it (a float32 ramp, shifted half a cycle)."""
    i = np.arange(FRAME_SIZE, dtype=np.float32)
    step = np.float32(1.0) / np.float32(FRAME_SIZE - 1)  # Vital's compiled code multiplies by 1/2047
    ramp = np.float32(1.0) - np.float32(2.0) * (i * step)
    return [np.roll(ramp, FRAME_SIZE // 2).astype(np.float32)]


def _sine_only() -> Frames:
    """A plain sine, static on purpose: the most common custom single cycle (sub basses, pads)."""
    return [frame_from_sines(np.array([-1.0]))]


def _basic_shapes() -> Frames:
    return [frame_from_sines(c) for c in (np.array([-1.0]), _triangle_coeffs(), _saw_coeffs(), _square_coeffs())]


def _pulse_width() -> Frames:
    def pulse(w: float) -> Callable[[np.ndarray], np.ndarray]:
        return lambda p: np.where(np.abs(p - 0.5) < w / 2, 1.0, -1.0)

    return [frame_from_shape(pulse(w)) for w in (0.5, 0.38, 0.27, 0.18, 0.1, 0.04)]


def _soft_square() -> Frames:
    """A driven sine (tanh) from rounded to hard square: where single-cycle squares map to."""
    return [frame_from_shape(lambda p, g=g: np.tanh(g * _sine(p))) for g in (4.0, 10.0, 30.0, 100.0, 300.0, 1000.0)]


def _pwm_saw() -> Frames:
    def ramp(duty: float) -> Callable[[np.ndarray], np.ndarray]:
        return lambda p: np.where(p < duty, 1.0 - 2.0 * p / duty, -1.0)

    return [frame_from_shape(ramp(d)) for d in (1.0, 0.75, 0.55, 0.38, 0.24, 0.12)]


def _partial_build(
    mask: Callable[[np.ndarray], np.ndarray], amplitude: Callable[[np.ndarray], np.ndarray], counts: Sequence[int]
) -> Frames:
    """Add partials (chosen by mask, in order) one group at a time: 'count' partials per keyframe."""
    k = _harmonics()
    chosen = k[mask(k)]
    frames = []
    for count in counts:
        coeffs = np.zeros_like(k)
        use = chosen[:count].astype(int) - 1
        coeffs[use] = amplitude(k[use]) * (-1.0) ** k[use]
        frames.append(frame_from_sines(coeffs))
    return frames


def _harmonic_build() -> Frames:
    return _partial_build(lambda k: k > 0, lambda k: 1 / k, (1, 2, 3, 5, 9, 18, 64))


def _odd_build() -> Frames:
    return _partial_build(lambda k: k % 2 == 1, lambda k: 1 / k, (1, 2, 3, 5, 9, 32))


def _even_build() -> Frames:
    return _partial_build(lambda k: (k == 1) | (k % 2 == 0), lambda k: 1 / k, (1, 2, 3, 5, 9, 32))


def _buzz_build() -> Frames:
    return _partial_build(lambda k: k > 0, lambda k: np.ones_like(k), (1, 2, 4, 8, 16, 48))


def _octave_stack() -> Frames:
    return _partial_build(lambda k: np.log2(k) % 1 == 0, lambda k: k**-0.5, (1, 2, 3, 4, 5, 7))


def _organ_drawbars() -> Frames:
    harmonics = np.array([1, 2, 3, 4, 5, 6, 8])  # 8', 4', 2 2/3', 2', 1 3/5', 1 1/3', 1'
    registrations = (
        (8, 0, 0, 0, 0, 0, 0),
        (8, 6, 0, 0, 0, 0, 0),
        (8, 8, 6, 0, 0, 0, 0),
        (8, 8, 8, 6, 0, 0, 0),
        (8, 8, 8, 8, 6, 4, 0),
        (8, 8, 8, 8, 8, 8, 8),
    )
    frames = []
    for levels in registrations:
        coeffs = np.zeros(harmonics.max())
        for h, level in zip(harmonics, levels):
            coeffs[h - 1] = 0.0 if level == 0 else -(10 ** (-3 * (8 - level) / 20))  # 3 dB per step
        frames.append(frame_from_sines(coeffs))
    return frames


def _spectral_tilt() -> Frames:
    k = _harmonics()
    return [frame_from_sines((-1.0) ** k / k**alpha) for alpha in (3.0, 2.2, 1.6, 1.1, 0.7, 0.35)]


def _vowels(formants: Sequence[Sequence[float]], f0_hz: float) -> Frames:
    """Saw source through three formant peaks per vowel, for a voice at f0_hz."""
    k = _harmonics()
    freqs = k * f0_hz
    source = _saw_coeffs() * (freqs < 6000)
    frames = []
    for f1, f2, f3 in formants:
        envelope = 0.01
        for centre, bandwidth, gain in ((f1, 90, 1.0), (f2, 110, 0.6), (f3, 160, 0.3)):
            envelope = envelope + gain * _resonance(freqs, centre, bandwidth)
        frames.append(frame_from_sines(source * envelope * k))  # * k: flat source, formants shape it
    return frames


def _vowels_male() -> Frames:
    return _vowels(((730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410), (300, 870, 2240)), 110)


def _vowels_soprano() -> Frames:
    return _vowels(((850, 1220, 2810), (610, 2330, 2990), (310, 2790, 3310), (590, 920, 2710), (370, 950, 2670)), 220)


def _formant_sweep() -> Frames:
    k = _harmonics()
    frames = []
    for centre in (2.0, 4.0, 7.0, 12.0, 22.0, 40.0):
        shaped = _saw_coeffs() * k**0.5 * (0.03 + _resonance(k, centre, 1.0 + centre / 5))
        frames.append(frame_from_sines(shaped))
    return frames


def _resonant_lowpass() -> Frames:
    k = _harmonics()
    q = 4.0
    frames = []
    for cutoff in (1.5, 3.0, 6.0, 12.0, 24.0, 48.0, 120.0):
        response = 1.0 / np.sqrt((1 - (k / cutoff) ** 2) ** 2 + (k / (cutoff * q)) ** 2)
        frames.append(frame_from_sines(_saw_coeffs() * response))
    return frames


def _comb_saw() -> Frames:
    k = np.arange(MAX_HARMONIC + 1)
    saw = _saw_spectrum()
    return [frame_from_spectrum(saw * (1 + np.exp(-2j * np.pi * k * d))) for d in (0.0, 0.06, 0.14, 0.25, 0.37, 0.5)]


def _fm(carrier: int, modulator: int, indices: Sequence[float]) -> Frames:
    """Phase modulation inside one cycle; integer ratios keep the cycle periodic."""

    def shape(index: float) -> Callable[[np.ndarray], np.ndarray]:
        return lambda p: -np.sin(2 * np.pi * carrier * p + index * np.sin(2 * np.pi * modulator * p))

    return [frame_from_shape(shape(i)) for i in indices]


def _sync(slave: Callable[[np.ndarray], np.ndarray], ratios: Sequence[float]) -> Frames:
    """Hard sync: the slave restarts every cycle, running `ratio` times faster."""
    return [frame_from_shape(lambda p, r=r: slave(r * p)) for r in ratios]


_SYNC_RATIOS = (1.0, 1.5, 2.2, 3.1, 4.3, 5.7, 7.4)  # never integer after 1: whole ratios are plain harmonics


def _crush(shape: Callable[[np.ndarray], np.ndarray], levels: Sequence[int]) -> Frames:
    """Amplitude quantisation to a few levels: the stepped 'bit-reduced' sound."""
    return [frame_from_shape(lambda p, n=n: np.round(shape(p) * n) / n) for n in levels]


def _digital_steps() -> Frames:
    """Sample-and-hold a sine at few steps per cycle (sample-rate reduction)."""
    return [frame_from_shape(lambda p, s=s: _sine((np.floor(p * s) + 0.5) / s)) for s in (48, 24, 12, 8, 5, 3)]


def _noisy_saw() -> Frames:
    saw = _peak_normalised_spectrum(_saw_spectrum())
    frames = []
    for i, amount in enumerate((0.0, 0.12, 0.25, 0.4, 0.6, 0.8)):
        noise = _peak_normalised_spectrum(_noise_spectrum(1000 + i))
        frames.append(frame_from_spectrum((1 - amount) * saw + amount * noise))
    return frames


def _noise_sweep() -> Frames:
    k = np.arange(MAX_HARMONIC + 1, dtype=np.float64)
    noise = _noise_spectrum(2000)
    return [frame_from_spectrum(noise / np.sqrt(1 + (k / c) ** 4)) for c in (3.0, 8.0, 24.0, 80.0, 250.0, 1000.0)]


def _breath_sine() -> Frames:
    k = np.arange(MAX_HARMONIC + 1, dtype=np.float64)
    sine = np.zeros_like(k, dtype=np.complex128)
    sine[1] = 0.5j * FRAME_SIZE
    sine = _peak_normalised_spectrum(sine)
    band = _resonance(k, 40.0, 60.0)
    frames = []
    for i, amount in enumerate((0.0, 0.15, 0.3, 0.45, 0.65, 0.85)):
        noise = _peak_normalised_spectrum(_noise_spectrum(3000 + i) * band)
        frames.append(frame_from_spectrum((1 - amount) * sine + amount * noise))
    return frames


def _supersaw() -> Frames:
    """Seven Init saws with spreading phase offsets: the comb-like snapshot of a detuned stack."""
    k = np.arange(MAX_HARMONIC + 1)
    offsets = np.random.default_rng(4000).uniform(-0.5, 0.5, 7)
    offsets[0] = 0.0
    saw = _saw_spectrum()
    frames = []
    for spread in (0.0, 0.03, 0.08, 0.16, 0.3, 0.5):
        phases = np.exp(-2j * np.pi * np.outer(offsets * spread, k)).sum(axis=0)
        frames.append(frame_from_spectrum(saw * phases))
    return frames


def _sine_fold() -> Frames:
    return [
        frame_from_shape(lambda p, g=g: np.sin(0.5 * np.pi * g * _sine(p))) for g in (1.0, 1.8, 2.8, 4.0, 5.5, 7.5)
    ]


def _triangle_fold(v: np.ndarray) -> np.ndarray:
    """Identity on [-1, 1], reflecting beyond: a classic wavefolder."""
    return 1.0 - 4.0 * np.abs(np.mod((v + 1.0) / 4.0, 1.0) - 0.5)


def _wavefold() -> Frames:
    return [frame_from_shape(lambda p, g=g: _triangle_fold(g * _sine(p))) for g in (1.0, 1.6, 2.4, 3.4, 4.7, 6.5)]


def _phase_distortion() -> Frames:
    """Casio-style phase distortion: a cosine read through a bent phase, sine -> saw."""

    def shape(knee: float) -> Callable[[np.ndarray], np.ndarray]:
        def f(p: np.ndarray) -> np.ndarray:
            bent = np.where(p < knee, 0.5 * p / knee, 0.5 + 0.5 * (p - knee) / (1 - knee))
            return -np.cos(2 * np.pi * bent)

        return f

    return [frame_from_shape(shape(d)) for d in (0.5, 0.33, 0.2, 0.11, 0.05, 0.02)]


def _pd_resonance() -> Frames:
    """Casio-style resonance: a fast cosine under a falling window, restarting each cycle."""
    return [
        frame_from_shape(lambda p, r=r: (1.0 - p) * -np.cos(2 * np.pi * r * p))
        for r in (1.0, 2.0, 3.5, 5.5, 8.0, 12.0, 16.0)
    ]


def _random_spectra() -> Frames:
    k = _harmonics(256)
    frames = []
    for i in range(6):
        u = np.random.default_rng(5000 + i).uniform(0.0, 1.0, len(k))
        frames.append(frame_from_sines(u**2 * (-1.0) ** k / k**0.8))
    return frames


_BANK: tuple[tuple[str, Callable[[], Frames]], ...] = (
    ("Init Saw", _init_saw),
    ("Sine", _sine_only),
    ("Basic Shapes", _basic_shapes),
    ("Pulse Width", _pulse_width),
    ("Soft Square", _soft_square),
    ("PWM Saw", _pwm_saw),
    ("Harmonic Build", _harmonic_build),
    ("Odd Harmonic Build", _odd_build),
    ("Even Harmonic Build", _even_build),
    ("Buzz Build", _buzz_build),
    ("Octave Stack", _octave_stack),
    ("Organ Drawbars", _organ_drawbars),
    ("Spectral Tilt", _spectral_tilt),
    ("Vowels A-E-I-O-U", _vowels_male),
    ("Vowels Soprano", _vowels_soprano),
    ("Formant Sweep", _formant_sweep),
    ("Resonant Lowpass", _resonant_lowpass),
    ("Comb Saw", _comb_saw),
    ("FM 1:1", functools.partial(_fm, 1, 1, (0.0, 0.5, 1.1, 2.0, 3.2, 5.0))),
    ("FM 1:2", functools.partial(_fm, 1, 2, (0.0, 0.5, 1.1, 2.0, 3.2, 5.0))),
    ("FM 1:3", functools.partial(_fm, 1, 3, (0.0, 0.4, 0.9, 1.6, 2.6, 4.0))),
    ("FM 2:1", functools.partial(_fm, 2, 1, (0.0, 0.6, 1.3, 2.2, 3.5, 5.5))),
    ("FM 3:2", functools.partial(_fm, 3, 2, (0.0, 0.5, 1.1, 2.0, 3.2, 5.0))),
    ("FM 1:5 Metallic", functools.partial(_fm, 1, 5, (0.0, 0.4, 0.9, 1.6, 2.6, 4.0))),
    ("Sync Saw", functools.partial(_sync, _saw, _SYNC_RATIOS)),
    ("Sync Sine", functools.partial(_sync, _sine, _SYNC_RATIOS)),
    ("Sync Square", functools.partial(_sync, _square, _SYNC_RATIOS)),
    ("Bit Crush Sine", functools.partial(_crush, _sine, (24, 8, 4, 3, 2, 1))),
    ("Bit Crush Saw", functools.partial(_crush, _saw, (24, 8, 4, 3, 2, 1))),
    ("Digital Steps", _digital_steps),
    ("Noisy Saw", _noisy_saw),
    ("Noise Sweep", _noise_sweep),
    ("Breath Sine", _breath_sine),
    ("Supersaw", _supersaw),
    ("Sine Fold", _sine_fold),
    ("Wavefold", _wavefold),
    ("Phase Distortion", _phase_distortion),
    ("PD Resonance", _pd_resonance),
    ("Random Spectra", _random_spectra),
)
_RECIPES: dict[str, Callable[[], Frames]] = dict(_BANK)


def bank_names() -> list[str]:
    """Names of the bank tables in their fixed order ("Init Saw" first, matching Vital's default)."""
    return [name for name, _ in _BANK]


@functools.cache
def bank_wavetable(name: str) -> Wavetable:
    """The bank table called ``name`` (built once, then cached; frames are read-only)."""
    recipe = _RECIPES.get(name)
    if recipe is None:
        raise WavetableError(_unknown_name_message(name))
    return Wavetable(name=name, frames=np.stack(recipe()))


def _unknown_name_message(name: object) -> str:
    names = bank_names()
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    examples = ", ".join(repr(n) for n in names[:4])
    return (
        f"Unknown bank wavetable {name!r}.{hint} Valid names include {examples} "
        f"({len(names)} in all; see bank_names())."
    )


# --------------------------------------------------------------------------- nearest bank table


def _harmonic_profile(table: Wavetable) -> np.ndarray:
    """Mean over frames of the harmonic magnitudes in dB (relative to each frame's strongest), scaled 0..1."""
    spectra = np.abs(np.fft.rfft(table.frames.astype(np.float64), axis=1))[:, 1 : _PROFILE_HARMONICS + 1]
    peak = np.maximum(spectra.max(axis=1, keepdims=True), 1e-12)
    floor = librosa.db_to_amplitude(_PROFILE_FLOOR_DB)
    db = librosa.amplitude_to_db(spectra / peak, ref=1.0, amin=floor, top_db=None)
    return (db.mean(axis=0) - _PROFILE_FLOOR_DB) / -_PROFILE_FLOOR_DB


def nearest_bank_name(table: Wavetable) -> str:
    """Name of the bank table whose average harmonic spectrum is closest, to map custom tables onto the bank."""
    profile = _harmonic_profile(table)
    names = bank_names()
    distances = [float(np.sum((_harmonic_profile(bank_wavetable(n)) - profile) ** 2)) for n in names]
    return names[int(np.argmin(distances))]

