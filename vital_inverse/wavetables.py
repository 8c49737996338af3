# SPDX-License-Identifier: GPL-3.0-or-later
"""The project's own wavetable bank, Vital's wavetable JSON format, and wavetables taken from audio.

Vital's factory wavetables may not be redistributed, so every bank table is
computed here from a few lines of maths (numpy only, seeded noise), giving the
same bytes on every call.  Frames are built from harmonics (additively, or by
evaluating a shape on an 8x oversampled cycle and dropping everything above
harmonic 1023), so they carry no baked-in aliasing; each frame has no DC and a
peak of exactly 1.

A table stores only a handful of keyframes; Vital interpolates between them
(in the frequency domain, as its Init table is set up), which keeps preset JSON
small: one keyframe costs about 11 kB of base64.
"""

from __future__ import annotations

import base64
import difflib
import functools
import hashlib
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import UserError

FRAME_SIZE = 2048  # samples per Vital wave frame (Vital's WaveFrame::kWaveformSize)
MAX_POSITION = 256  # last wave-frame position; a Vital wavetable has at most 257 frames
MAX_FRAMES = MAX_POSITION + 1

_MAX_HARMONIC = FRAME_SIZE // 2 - 1  # highest harmonic kept; the Nyquist bin is dropped
_OVERSAMPLE = 8  # shapes with corners are evaluated on an 8x grid, then band-limited
_WAVE_SOURCE = "Wave Source"
_FREQUENCY_INTERPOLATION = 1  # Vital WaveSource::kFrequency (the Init table uses it)
_LINEAR_STYLE = 1  # Vital WavetableComponent::kLinear
_PROFILE_HARMONICS = 64  # harmonics compared by nearest_bank_name
_PROFILE_FLOOR_DB = -60.0

_MIN_F0_HZ = 8.0  # about MIDI note 0; lower "pitches" are not pitches
_MIN_CYCLES = 4  # a clip must hold at least this many periods
_MAX_ANALYSIS_CYCLES = 4  # periods per analysis window: enough to separate harmonics
_SILENCE_PEAK = 1e-4  # -80 dBFS
_SUSTAIN_THRESHOLD = 10 ** (-10 / 20)  # blocks within 10 dB of the loudest are "sustained"
_FUNDAMENTAL_PHASE = np.pi / 2  # align cycles so the fundamental is -sin, like Vital's Init saw


class WavetableError(UserError):
    """A wavetable (or the audio a table is taken from) cannot be used; the message says why."""


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True, eq=False)
class Wavetable:
    """Keyframes of one Vital wavetable: ``frames[i]`` sits at wave-frame ``keyframe_positions()[i]``."""

    name: str
    frames: np.ndarray
    positions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise WavetableError(f"Wavetable name must be a string, got {type(self.name).__name__}")
        frames = _checked_frames(self.name, self.frames)
        object.__setattr__(self, "frames", frames)
        if self.positions is not None:
            object.__setattr__(self, "positions", _checked_positions(self.name, self.positions, len(frames)))

    def keyframe_positions(self) -> tuple[int, ...]:
        """Wave-frame position (0..256) of each keyframe; evenly spread when not given."""
        if self.positions is not None:
            return self.positions
        return _even_positions(len(self.frames))

    def to_vital(self) -> dict:
        """The dict Vital keeps in ``preset["settings"]["wavetables"][i]`` for this table."""
        keyframes = [
            {"position": int(p), "wave_data": _encode_frame(f)} for p, f in zip(self.keyframe_positions(), self.frames)
        ]
        component = {
            "interpolation": _FREQUENCY_INTERPOLATION,
            "interpolation_style": _LINEAR_STYLE,
            "keyframes": keyframes,
            "type": _WAVE_SOURCE,
        }
        return {
            "author": "",
            "full_normalize": True,
            "groups": [{"components": [component]}],
            "name": self.name,
            "remove_all_dc": True,
            "version": _vital_version(),
        }

    @classmethod
    def from_vital(cls, data: dict) -> Wavetable:
        """Decode a Vital wavetable dict built from "Wave Source" keyframes.

        Vital renders only the last component of a group (later sources
        overwrite earlier ones) and averages groups; several groups are merged
        at the union of their keyframe positions.  Tables louder than 1 are
        scaled down (Vital normalises the whole table anyway).  The stored
        interpolation settings are not kept: to_vital writes Vital's default
        (linear, frequency domain), which frame_at models.
        """
        if not isinstance(data, dict):
            raise WavetableError(f"A Vital wavetable must be a JSON object, got {type(data).__name__}")
        name = data.get("name")
        name = name if isinstance(name, str) else "Custom"
        sources = [_group_source(name, i, g) for i, g in enumerate(_groups(name, data))]
        if len(sources) == 1:
            positions, frames = sources[0]
        else:
            positions, frames = _merge_sources(sources)
        frames = np.asarray(frames, dtype=np.float32)
        peak = float(np.max(np.abs(frames)))
        if peak > 1.0:
            frames = (frames / np.float32(peak)).astype(np.float32)
        return cls(name=name, frames=frames, positions=tuple(int(p) for p in positions))

    def frame_at(self, wave_frame: float) -> np.ndarray:
        """The wave at a (fractional) wave-frame position, interpolated between keyframes as Vital does.

        Vital's linear frequency interpolation: square-root magnitudes and phases
        move linearly.  Not re-normalised (Vital normalises the whole table, not
        each frame); the synth itself plays the frame at ``floor(wave_frame)``.
        """
        position = float(wave_frame)
        if not np.isfinite(position):
            raise WavetableError(f"Wave frame must be a finite number, got {wave_frame!r}")
        positions = self.keyframe_positions()
        index = int(np.searchsorted(positions, position, side="right")) - 1
        if index < 0:
            return self.frames[0].copy()
        if index >= len(positions) - 1:
            return self.frames[-1].copy()
        t = (position - positions[index]) / (positions[index + 1] - positions[index])
        return _frequency_interpolate(self.frames[index], self.frames[index + 1], t)

    def fingerprint(self) -> str:
        """Short stable hash of name, keyframe positions and frame bytes (for caches and equality)."""
        h = hashlib.blake2b(digest_size=8)
        h.update(self.name.encode("utf-8"))
        h.update(np.asarray(self.keyframe_positions(), dtype="<i4").tobytes())
        h.update(np.ascontiguousarray(self.frames, dtype="<f4").tobytes())
        return h.hexdigest()


def _checked_frames(name: object, frames: object) -> np.ndarray:
    """Frames as a read-only float32 copy, or a WavetableError saying what is wrong."""
    try:
        arr = np.array(frames, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise WavetableError(f"Wavetable {name!r}: frames are not a numeric array ({exc})") from None
    if arr.ndim != 2 or arr.shape[1] != FRAME_SIZE:
        raise WavetableError(f"Wavetable {name!r}: frames must have shape (n_frames, {FRAME_SIZE}), got {arr.shape}")
    if not 1 <= arr.shape[0] <= MAX_FRAMES:
        raise WavetableError(f"Wavetable {name!r}: needs 1 to {MAX_FRAMES} frames, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise WavetableError(f"Wavetable {name!r}: frames contain NaN or infinite samples")
    peak = float(np.max(np.abs(arr)))
    if peak > 1.0:
        raise WavetableError(f"Wavetable {name!r}: samples must lie within [-1, 1], peak is {peak:.4g}")
    arr.flags.writeable = False
    return arr


def _checked_positions(name: str, positions: Sequence[int], n_frames: int) -> tuple[int, ...]:
    """Keyframe positions as ints, strictly increasing within 0..256, one per frame."""
    try:
        values = tuple(int(p) for p in positions)
        exact = all(float(p) == v for p, v in zip(positions, values))
    except (TypeError, ValueError):
        raise WavetableError(f"Wavetable {name!r}: keyframe positions must be integers") from None
    if not exact:
        raise WavetableError(f"Wavetable {name!r}: keyframe positions must be whole numbers, got {positions}")
    if len(values) != n_frames:
        raise WavetableError(f"Wavetable {name!r}: {len(values)} keyframe positions given for {n_frames} frames")
    if values[0] < 0 or values[-1] > MAX_POSITION:
        raise WavetableError(f"Wavetable {name!r}: keyframe positions must lie within 0..{MAX_POSITION}")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise WavetableError(f"Wavetable {name!r}: keyframe positions must strictly increase, got {values}")
    return values


def _even_positions(n_frames: int) -> tuple[int, ...]:
    """n positions spread over 0..256 with integer rounding (exact, so always the same)."""
    if n_frames == 1:
        return (0,)
    d = n_frames - 1
    return tuple((i * MAX_POSITION + d // 2) // d for i in range(n_frames))


@functools.lru_cache(maxsize=1)
def _vital_version() -> str:
    """The wavetable version string the installed Vita writes (read once, never hard-coded)."""
    import vita

    init = json.loads(vita.Synth().to_json())
    return str(init["settings"]["wavetables"][0]["version"])


# --------------------------------------------------------------------------- JSON decoding


def _encode_frame(frame: np.ndarray) -> str:
    """Base64 of 2048 little-endian float32 samples, as Vital's WaveSourceKeyframe stores them."""
    return base64.b64encode(np.ascontiguousarray(frame, dtype="<f4").tobytes()).decode("ascii")


def _decode_frame(name: str, text: object) -> np.ndarray:
    """Inverse of _encode_frame, with a readable error for truncated or garbled data."""
    if not isinstance(text, str):
        raise WavetableError(f"Wavetable {name!r}: keyframe wave_data must be a base64 string")
    try:
        raw = base64.b64decode(text, validate=False)
    except ValueError as exc:
        raise WavetableError(f"Wavetable {name!r}: keyframe wave_data is not valid base64 ({exc})") from None
    if len(raw) != 4 * FRAME_SIZE:
        raise WavetableError(
            f"Wavetable {name!r}: keyframe wave_data holds {len(raw)} bytes, expected {4 * FRAME_SIZE}"
        )
    frame = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(frame)):
        raise WavetableError(f"Wavetable {name!r}: keyframe wave_data contains NaN or infinite samples")
    return frame


def _groups(name: str, data: dict) -> list:
    groups = data.get("groups")
    if not isinstance(groups, list) or not groups:
        raise WavetableError(f"Wavetable {name!r} has no groups to decode")
    return groups


def _group_source(name: str, index: int, group: object) -> tuple[list[int], list[np.ndarray]]:
    """Keyframes of the Wave Source a group renders (its last component)."""
    components = group.get("components") if isinstance(group, dict) else None
    if not isinstance(components, list) or not components:
        raise WavetableError(f"Wavetable {name!r}: group {index + 1} has no components")
    for component in components:
        kind = component.get("type") if isinstance(component, dict) else None
        if kind != _WAVE_SOURCE:
            raise WavetableError(
                f"Wavetable {name!r}: group {index + 1} holds a {kind!r} component; only "
                f"{_WAVE_SOURCE!r} keyframes can be decoded (re-save the table in Vital as plain wave frames)"
            )
    keyframes = components[-1].get("keyframes")
    if not isinstance(keyframes, list) or not keyframes:
        raise WavetableError(f"Wavetable {name!r}: group {index + 1} has no keyframes")
    try:
        ordered = sorted(keyframes, key=lambda k: int(k["position"]))
        positions = [int(k["position"]) for k in ordered]
    except (KeyError, TypeError, ValueError):
        raise WavetableError(f"Wavetable {name!r}: a keyframe lacks an integer 'position'") from None
    frames = [_decode_frame(name, k.get("wave_data")) for k in ordered]
    return positions, frames


def _merge_sources(sources: list[tuple[list[int], list[np.ndarray]]]) -> tuple[list[int], list[np.ndarray]]:
    """Average several groups at the union of their keyframe positions, as Vital averages groups."""
    peak = max(float(np.max(np.abs(frames))) for _, frames in sources)
    scale = 1.0 / peak if peak > 1.0 else 1.0  # keep the groups' relative levels
    tables = [Wavetable("group", np.asarray(frames) * scale, tuple(keys)) for keys, frames in sources]
    positions = sorted({pos for keys, _ in sources for pos in keys})
    frames = [np.mean([t.frame_at(p) for t in tables], axis=0) for p in positions]
    return positions, frames


def _frequency_interpolate(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Vital's WaveSourceKeyframe::linearFrequencyInterpolate, in numpy."""
    fa = np.fft.rfft(a.astype(np.float64))
    fb = np.fft.rfft(b.astype(np.float64))
    amp_a = np.sqrt(np.abs(fa))
    amplitude = ((1.0 - t) * amp_a + t * np.sqrt(np.abs(fb))) ** 2
    phase = np.angle(fa) + t * np.angle(np.conj(fa) * fb)
    phase = np.where(amp_a == 0, np.angle(fb), phase)
    out = amplitude * np.exp(1j * phase)
    out[0] = (1.0 - t) * fa[0].real + t * fb[0].real
    out[-1] = (1.0 - t) * fa[-1].real + t * fb[-1].real
    return np.fft.irfft(out, FRAME_SIZE).astype(np.float32)


# --------------------------------------------------------------------------- frame building


def _normalise(frame: np.ndarray) -> np.ndarray:
    """Remove DC and scale to peak 1 (float32), because Vital tables are compared at equal level."""
    x = np.asarray(frame, dtype=np.float64)
    x = x - x.mean()
    peak = float(np.max(np.abs(x)))
    if not peak > 1e-12:
        raise WavetableError("A wave frame is silent (all samples equal), so it cannot be normalised")
    return (x / peak).astype(np.float32)


def _frame_from_spectrum(spectrum: np.ndarray) -> np.ndarray:
    """Frame from harmonic bins (rfft convention for FRAME_SIZE); DC and bins above 1023 dropped."""
    full = np.zeros(FRAME_SIZE // 2 + 1, dtype=np.complex128)
    n = min(len(spectrum), _MAX_HARMONIC + 1)
    full[1:n] = spectrum[1:n]
    return _normalise(np.fft.irfft(full, FRAME_SIZE))


def _frame_from_sines(coeffs: np.ndarray) -> np.ndarray:
    """Frame sum_k coeffs[k-1] * sin(2 pi k t): the additive way, exactly band-limited."""
    spectrum = np.zeros(len(coeffs) + 1, dtype=np.complex128)
    spectrum[1:] = -0.5j * FRAME_SIZE * np.asarray(coeffs, dtype=np.float64)
    return _frame_from_spectrum(spectrum)


def _frame_from_shape(shape: Callable[[np.ndarray], np.ndarray], max_harmonic: int = _MAX_HARMONIC) -> np.ndarray:
    """Evaluate shape(phase) on an oversampled cycle and keep harmonics up to max_harmonic."""
    n = FRAME_SIZE * _OVERSAMPLE
    cycle = shape(np.arange(n) / n)
    spectrum = np.fft.rfft(cycle) * (FRAME_SIZE / n)
    return _frame_from_spectrum(spectrum[: max_harmonic + 1])


def _harmonics(n: int = _MAX_HARMONIC) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.float64)


def _saw_coeffs(n: int = _MAX_HARMONIC) -> np.ndarray:
    """Sine coefficients of Vital's Init saw (falls from 0, jumps up mid-cycle)."""
    k = _harmonics(n)
    return (2 / np.pi) * (-1.0) ** k / k


def _square_coeffs(n: int = _MAX_HARMONIC) -> np.ndarray:
    k = _harmonics(n)
    return np.where(k % 2 == 1, -(4 / np.pi) / k, 0.0)


def _triangle_coeffs(n: int = _MAX_HARMONIC) -> np.ndarray:
    k = _harmonics(n)
    sign = np.where(((k - 1) // 2) % 2 == 0, 1.0, -1.0)
    return np.where(k % 2 == 1, -(8 / np.pi**2) * sign / k**2, 0.0)


def _saw_spectrum(n: int = _MAX_HARMONIC) -> np.ndarray:
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


def _noise_spectrum(seed: int, n: int = _MAX_HARMONIC) -> np.ndarray:
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


# --------------------------------------------------------------------------- bank recipes
# Each recipe returns the list of keyframes of one table, spread evenly over 0..256.

Frames = list[np.ndarray]


def _init_saw() -> Frames:
    """Vital's Init wave, computed the way Vital computes it (a float32 ramp, shifted half a cycle)."""
    i = np.arange(FRAME_SIZE, dtype=np.float32)
    step = np.float32(1.0) / np.float32(FRAME_SIZE - 1)  # Vital's compiled code multiplies by 1/2047
    ramp = np.float32(1.0) - np.float32(2.0) * (i * step)
    return [np.roll(ramp, FRAME_SIZE // 2).astype(np.float32)]


def _sine_only() -> Frames:
    """A plain sine, static on purpose: the most common custom single cycle (sub basses, pads)."""
    return [_frame_from_sines(np.array([-1.0]))]


def _basic_shapes() -> Frames:
    return [_frame_from_sines(c) for c in (np.array([-1.0]), _triangle_coeffs(), _saw_coeffs(), _square_coeffs())]


def _pulse_width() -> Frames:
    def pulse(w: float) -> Callable[[np.ndarray], np.ndarray]:
        return lambda p: np.where(np.abs(p - 0.5) < w / 2, 1.0, -1.0)

    return [_frame_from_shape(pulse(w)) for w in (0.5, 0.38, 0.27, 0.18, 0.1, 0.04)]


def _soft_square() -> Frames:
    """A driven sine (tanh) from rounded to hard square: where single-cycle squares map to."""
    return [_frame_from_shape(lambda p, g=g: np.tanh(g * _sine(p))) for g in (4.0, 10.0, 30.0, 100.0, 300.0, 1000.0)]


def _pwm_saw() -> Frames:
    def ramp(duty: float) -> Callable[[np.ndarray], np.ndarray]:
        return lambda p: np.where(p < duty, 1.0 - 2.0 * p / duty, -1.0)

    return [_frame_from_shape(ramp(d)) for d in (1.0, 0.75, 0.55, 0.38, 0.24, 0.12)]


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
        frames.append(_frame_from_sines(coeffs))
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
        frames.append(_frame_from_sines(coeffs))
    return frames


def _spectral_tilt() -> Frames:
    k = _harmonics()
    return [_frame_from_sines((-1.0) ** k / k**alpha) for alpha in (3.0, 2.2, 1.6, 1.1, 0.7, 0.35)]


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
        frames.append(_frame_from_sines(source * envelope * k))  # * k: flat source, formants shape it
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
        frames.append(_frame_from_sines(shaped))
    return frames


def _resonant_lowpass() -> Frames:
    k = _harmonics()
    q = 4.0
    frames = []
    for cutoff in (1.5, 3.0, 6.0, 12.0, 24.0, 48.0, 120.0):
        response = 1.0 / np.sqrt((1 - (k / cutoff) ** 2) ** 2 + (k / (cutoff * q)) ** 2)
        frames.append(_frame_from_sines(_saw_coeffs() * response))
    return frames


def _comb_saw() -> Frames:
    k = np.arange(_MAX_HARMONIC + 1)
    saw = _saw_spectrum()
    return [_frame_from_spectrum(saw * (1 + np.exp(-2j * np.pi * k * d))) for d in (0.0, 0.06, 0.14, 0.25, 0.37, 0.5)]


def _fm(carrier: int, modulator: int, indices: Sequence[float]) -> Frames:
    """Phase modulation inside one cycle; integer ratios keep the cycle periodic."""

    def shape(index: float) -> Callable[[np.ndarray], np.ndarray]:
        return lambda p: -np.sin(2 * np.pi * carrier * p + index * np.sin(2 * np.pi * modulator * p))

    return [_frame_from_shape(shape(i)) for i in indices]


def _sync(slave: Callable[[np.ndarray], np.ndarray], ratios: Sequence[float]) -> Frames:
    """Hard sync: the slave restarts every cycle, running `ratio` times faster."""
    return [_frame_from_shape(lambda p, r=r: slave(r * p)) for r in ratios]


_SYNC_RATIOS = (1.0, 1.5, 2.2, 3.1, 4.3, 5.7, 7.4)  # never integer after 1: whole ratios are plain harmonics


def _crush(shape: Callable[[np.ndarray], np.ndarray], levels: Sequence[int]) -> Frames:
    """Amplitude quantisation to a few levels: the stepped 'bit-reduced' sound."""
    return [_frame_from_shape(lambda p, n=n: np.round(shape(p) * n) / n) for n in levels]


def _digital_steps() -> Frames:
    """Sample-and-hold a sine at few steps per cycle (sample-rate reduction)."""
    return [_frame_from_shape(lambda p, s=s: _sine((np.floor(p * s) + 0.5) / s)) for s in (48, 24, 12, 8, 5, 3)]


def _noisy_saw() -> Frames:
    saw = _peak_normalised_spectrum(_saw_spectrum())
    frames = []
    for i, amount in enumerate((0.0, 0.12, 0.25, 0.4, 0.6, 0.8)):
        noise = _peak_normalised_spectrum(_noise_spectrum(1000 + i))
        frames.append(_frame_from_spectrum((1 - amount) * saw + amount * noise))
    return frames


def _noise_sweep() -> Frames:
    k = np.arange(_MAX_HARMONIC + 1, dtype=np.float64)
    noise = _noise_spectrum(2000)
    return [_frame_from_spectrum(noise / np.sqrt(1 + (k / c) ** 4)) for c in (3.0, 8.0, 24.0, 80.0, 250.0, 1000.0)]


def _breath_sine() -> Frames:
    k = np.arange(_MAX_HARMONIC + 1, dtype=np.float64)
    sine = np.zeros_like(k, dtype=np.complex128)
    sine[1] = 0.5j * FRAME_SIZE
    sine = _peak_normalised_spectrum(sine)
    band = _resonance(k, 40.0, 60.0)
    frames = []
    for i, amount in enumerate((0.0, 0.15, 0.3, 0.45, 0.65, 0.85)):
        noise = _peak_normalised_spectrum(_noise_spectrum(3000 + i) * band)
        frames.append(_frame_from_spectrum((1 - amount) * sine + amount * noise))
    return frames


def _supersaw() -> Frames:
    """Seven Init saws with spreading phase offsets: the comb-like snapshot of a detuned stack."""
    k = np.arange(_MAX_HARMONIC + 1)
    offsets = np.random.default_rng(4000).uniform(-0.5, 0.5, 7)
    offsets[0] = 0.0
    saw = _saw_spectrum()
    frames = []
    for spread in (0.0, 0.03, 0.08, 0.16, 0.3, 0.5):
        phases = np.exp(-2j * np.pi * np.outer(offsets * spread, k)).sum(axis=0)
        frames.append(_frame_from_spectrum(saw * phases))
    return frames


def _sine_fold() -> Frames:
    return [
        _frame_from_shape(lambda p, g=g: np.sin(0.5 * np.pi * g * _sine(p))) for g in (1.0, 1.8, 2.8, 4.0, 5.5, 7.5)
    ]


def _triangle_fold(v: np.ndarray) -> np.ndarray:
    """Identity on [-1, 1], reflecting beyond: a classic wavefolder."""
    return 1.0 - 4.0 * np.abs(np.mod((v + 1.0) / 4.0, 1.0) - 0.5)


def _wavefold() -> Frames:
    return [_frame_from_shape(lambda p, g=g: _triangle_fold(g * _sine(p))) for g in (1.0, 1.6, 2.4, 3.4, 4.7, 6.5)]


def _phase_distortion() -> Frames:
    """Casio-style phase distortion: a cosine read through a bent phase, sine -> saw."""

    def shape(knee: float) -> Callable[[np.ndarray], np.ndarray]:
        def f(p: np.ndarray) -> np.ndarray:
            bent = np.where(p < knee, 0.5 * p / knee, 0.5 + 0.5 * (p - knee) / (1 - knee))
            return -np.cos(2 * np.pi * bent)

        return f

    return [_frame_from_shape(shape(d)) for d in (0.5, 0.33, 0.2, 0.11, 0.05, 0.02)]


def _pd_resonance() -> Frames:
    """Casio-style resonance: a fast cosine under a falling window, restarting each cycle."""
    return [
        _frame_from_shape(lambda p, r=r: (1.0 - p) * -np.cos(2 * np.pi * r * p))
        for r in (1.0, 2.0, 3.5, 5.5, 8.0, 12.0, 16.0)
    ]


def _random_spectra() -> Frames:
    k = _harmonics(256)
    frames = []
    for i in range(6):
        u = np.random.default_rng(5000 + i).uniform(0.0, 1.0, len(k))
        frames.append(_frame_from_sines(u**2 * (-1.0) ** k / k**0.8))
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
    return f"Unknown bank wavetable {name!r}.{hint} Valid names include {examples} ({len(names)} in all; see bank_names())."


# --------------------------------------------------------------------------- nearest bank table


def _harmonic_profile(table: Wavetable) -> np.ndarray:
    """Mean over frames of the harmonic magnitudes in dB (relative to each frame's strongest), scaled 0..1."""
    spectra = np.abs(np.fft.rfft(table.frames.astype(np.float64), axis=1))[:, 1 : _PROFILE_HARMONICS + 1]
    peak = np.maximum(spectra.max(axis=1, keepdims=True), 1e-12)
    db = 20 * np.log10(np.maximum(spectra / peak, 10 ** (_PROFILE_FLOOR_DB / 20)))
    return (db.mean(axis=0) - _PROFILE_FLOOR_DB) / -_PROFILE_FLOOR_DB


def nearest_bank_name(table: Wavetable) -> str:
    """Name of the bank table whose average harmonic spectrum is closest, to map custom tables onto the bank."""
    profile = _harmonic_profile(table)
    names = bank_names()
    distances = [float(np.sum((_harmonic_profile(bank_wavetable(n)) - profile) ** 2)) for n in names]
    return names[int(np.argmin(distances))]


# --------------------------------------------------------------------------- extraction from audio


def extract_wavetable(
    audio: np.ndarray, sample_rate: int, f0_hz: float, n_frames: int = 8, name: str = "Extracted"
) -> Wavetable:
    """Take ``n_frames`` single cycles at ``f0_hz`` spread over the sustained part of a clip.

    Each cycle is measured by a Hann-windowed DFT at the exact harmonics of f0
    over a few periods (so the period need not be a whole number of samples),
    shifted so the fundamental starts like Vital's Init saw (later frames follow
    the earlier ones when the fundamental is weak), then rebuilt at 2048 samples
    without DC and at peak 1.  Audio is mono (n,) or multichannel with the
    shorter axis as channels; channels are averaged.
    """
    mono = _mono(audio)
    sr = _check_rate(sample_rate)
    count = _check_count(n_frames)
    if not isinstance(name, str):
        raise WavetableError(f"Wavetable name must be a string, got {type(name).__name__}")
    period = _check_f0(f0_hz, sr)
    if mono.size < _MIN_CYCLES * period:
        raise WavetableError(
            f"Audio is too short: {mono.size} samples hold {mono.size / period:.1f} cycles of "
            f"{f0_hz:g} Hz, need at least {_MIN_CYCLES}"
        )
    if float(np.max(np.abs(mono))) < _SILENCE_PEAK:
        raise WavetableError("Audio is silent (peak below -80 dBFS); there is no wave to extract")
    start, stop = _sustained_region(mono, period)
    cycles = int(min(_MAX_ANALYSIS_CYCLES, max(2, (stop - start) // period)))
    length = round(cycles * period)
    start, stop = _fit_region(start, stop, length, mono.size)
    n_harmonics = min(_MAX_HARMONIC, int(np.ceil(0.5 * sr / float(f0_hz))) - 1)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)
    if count == 1:
        firsts = np.array([(start + stop - length) // 2])
    else:
        firsts = np.linspace(start, stop - length, count).round().astype(int)
    frames: list[np.ndarray] = []
    previous: np.ndarray | None = None
    for first in firsts:
        spectrum = _harmonic_spectrum(mono[first : first + length] * window, float(f0_hz) / sr, n_harmonics)
        spectrum = _align_phase(spectrum, previous)
        previous = spectrum
        frames.append(_extracted_frame(spectrum))
    return Wavetable(name=name, frames=np.stack(frames))


def _mono(audio: object) -> np.ndarray:
    """Finite float64 mono signal; channels (the shorter axis of a 2-D array) averaged."""
    try:
        x = np.asarray(audio, dtype=np.float64)
    except (TypeError, ValueError):
        raise WavetableError("Audio must be a numeric array") from None
    if x.ndim == 2:
        x = x.mean(axis=0) if x.shape[0] <= x.shape[1] else x.mean(axis=1)
    if x.ndim != 1:
        raise WavetableError(f"Audio must be 1-D (mono) or 2-D (channels x samples), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise WavetableError("Audio contains NaN or infinite samples")
    return x


def _check_rate(sample_rate: object) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise WavetableError(f"Sample rate must be a positive integer, got {sample_rate!r}")
    return int(sample_rate)


def _check_count(n_frames: object) -> int:
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or not 1 <= n_frames <= MAX_FRAMES:
        raise WavetableError(f"n_frames must be an integer from 1 to {MAX_FRAMES}, got {n_frames!r}")
    return int(n_frames)


def _check_f0(f0_hz: object, sr: int) -> float:
    """The period in samples, after checking f0 is a pitch this sample rate can hold with harmonics."""
    try:
        f0 = float(f0_hz)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise WavetableError(f"f0 must be a number in Hz, got {f0_hz!r}") from None
    if not np.isfinite(f0) or f0 <= 0:
        raise WavetableError(f"f0 must be a positive frequency in Hz, got {f0_hz!r}")
    if f0 < _MIN_F0_HZ:
        raise WavetableError(f"f0 of {f0:g} Hz is too low; the lowest usable pitch is {_MIN_F0_HZ:g} Hz")
    if f0 >= sr / 4:
        raise WavetableError(
            f"f0 of {f0:g} Hz is too high for {sr} Hz audio: below {sr / 4:g} Hz is needed to keep two harmonics"
        )
    return sr / f0


def _sustained_region(x: np.ndarray, period: float) -> tuple[int, int]:
    """Sample range from the first to the last block within 10 dB of the loudest: skips attack and tail."""
    block = max(1, round(period))
    n_blocks = x.size // block
    rms = np.sqrt(np.mean(x[: n_blocks * block].reshape(n_blocks, block) ** 2, axis=1))
    loud = np.flatnonzero(rms >= _SUSTAIN_THRESHOLD * rms.max())
    return int(loud[0] * block), int((loud[-1] + 1) * block)


def _fit_region(start: int, stop: int, length: int, size: int) -> tuple[int, int]:
    """Widen [start, stop) around its centre until one analysis window fits, staying inside the clip."""
    if stop - start >= length:
        return start, stop
    centre = (start + stop) // 2
    start = min(max(0, centre - length // 2), size - length)
    return start, start + length


def _harmonic_spectrum(segment: np.ndarray, cycles_per_sample: float, n_harmonics: int) -> np.ndarray:
    """DFT of the windowed segment at harmonics 0..n of f0, in rfft bin convention.

    Bluestein's chirp-z algorithm (numpy FFTs), because harmonics of an
    arbitrary f0 do not fall on FFT bins and a direct DFT is slow for low f0.
    """
    length, count = len(segment), n_harmonics + 1
    n = np.arange(max(length, count), dtype=np.float64)
    chirp = np.exp(-1j * np.pi * np.mod(cycles_per_sample * n * n, 2.0))  # W**(n**2 / 2)
    size = 1 << (length + count - 2).bit_length()
    kernel = np.zeros(size, dtype=np.complex128)
    kernel[:count] = np.conj(chirp[:count])
    kernel[size - length + 1 :] = np.conj(chirp[1:length][::-1])
    product = np.fft.fft(segment * chirp[:length], size) * np.fft.fft(kernel)
    return np.fft.ifft(product)[:count] * chirp[:count]


def _align_phase(spectrum: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """Shift the cycle so the fundamental has the Init saw's phase; when it is weak, lock a strong
    low harmonic instead and pick, of its candidate shifts, the one closest to the previous frame."""
    k = np.arange(len(spectrum))
    mags = np.abs(spectrum[1:])
    if mags.max() <= 0:
        return spectrum
    low = mags[: min(16, len(mags))]
    ref = 1 if mags[0] >= 0.1 * mags.max() else int(np.argmax(low)) + 1
    base = (_FUNDAMENTAL_PHASE - np.angle(spectrum[ref])) / ref
    candidates = [spectrum * np.exp(1j * k * (base + 2 * np.pi * j / ref)) for j in range(ref)]
    if previous is None or ref == 1:
        return candidates[0]
    n = min(len(previous), len(spectrum))
    scores = [float(np.real(np.vdot(previous[1:n], c[1:n]))) for c in candidates]
    return candidates[int(np.argmax(scores))]


def _extracted_frame(spectrum: np.ndarray) -> np.ndarray:
    if not np.any(np.abs(spectrum[1:]) > 0):
        raise WavetableError("A part of the audio has no energy at the harmonics of f0; check f0")
    return _frame_from_spectrum(spectrum)


# --------------------------------------------------------------------------- harmonic tracks (resynthesis)


def harmonic_track(
    audio: np.ndarray, sample_rate: int, f0_hz: float, centres: np.ndarray, cycles: float = _MAX_ANALYSIS_CYCLES
) -> np.ndarray:
    """Complex harmonic spectra of a clip at the harmonics of ``f0_hz``, one per analysis centre.

    ``centres``: sample indices (n_times,); each spectrum is the Hann-windowed
    DFT (rfft bin convention, bin k = harmonic k, DC at 0) of ``cycles``
    periods around its centre, the window slid inside the clip at the edges.
    Returns complex128 (n_times, n_harmonics + 1), scaled so a sine of
    amplitude a at harmonic k gives |X[k]| = a (independent of window length).
    Harmonics stop below Nyquist and at 1023 (what a 2048-sample frame holds).
    """
    mono = _mono(audio)
    sr = _check_rate(sample_rate)
    period = _check_f0(f0_hz, sr)
    length = int(min(mono.size, max(8, round(cycles * period))))
    n_harmonics = min(_MAX_HARMONIC, int(np.ceil(0.5 * sr / float(f0_hz))) - 1)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)
    scale = 2.0 / window.sum()
    firsts = np.clip(np.asarray(centres, dtype=np.int64) - length // 2, 0, mono.size - length)
    out = np.empty((len(firsts), n_harmonics + 1), dtype=np.complex128)
    for i, first in enumerate(firsts):
        out[i] = scale * _harmonic_spectrum(mono[first : first + length] * window, float(f0_hz) / sr, n_harmonics)
    return out


def align_cycle_phase(spectrum: np.ndarray) -> np.ndarray:
    """The spectrum shifted in time so its cycle starts like Vital's Init saw (see extract_wavetable)."""
    return _align_phase(np.asarray(spectrum, dtype=np.complex128), None)


def frames_from_spectra(spectra: np.ndarray) -> np.ndarray:
    """Wave frames (n, 2048) float64 from harmonic spectra (rfft convention, |X[k]| = amplitude of harmonic k).

    Unlike the bank's frames these keep their relative levels (no per-frame
    normalisation), so a table can carry a level contour; DC and harmonics
    above 1023 are dropped.
    """
    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.complex128))
    full = np.zeros((len(spectra), FRAME_SIZE // 2 + 1), dtype=np.complex128)
    n = min(spectra.shape[1], _MAX_HARMONIC + 1)
    full[:, 1:n] = spectra[:, 1:n] * (FRAME_SIZE / 2)
    return np.fft.irfft(full, FRAME_SIZE, axis=1)
