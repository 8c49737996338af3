# SPDX-License-Identifier: GPL-3.0-or-later
"""Wavetables and harmonic spectra taken from audio at a known f0.

The harmonics of an arbitrary f0 do not fall on FFT bins, so each spectrum is
a Hann-windowed DFT evaluated at exactly k * f0 (a chirp z-transform) over a
few periods; the period need not be a whole number of samples. Spectra use the
rfft bin convention of a 2048-sample frame (bin k = harmonic k, DC at 0) and
stop below Nyquist and at harmonic 1023, so they turn straight into frames.
"""

from __future__ import annotations

import librosa
import numpy as np
import scipy.signal

from .frames import MAX_HARMONIC, frame_from_spectrum
from .table import MAX_FRAMES, Wavetable, WavetableError

_MIN_F0_HZ = 8.0  # about MIDI note 0; lower "pitches" are not pitches
_MIN_CYCLES = 4  # a clip must hold at least this many periods
_MAX_ANALYSIS_CYCLES = 4  # periods per analysis window: enough to separate harmonics
_SILENCE_PEAK = librosa.db_to_amplitude(-80.0)  # peak below this: nothing to extract
_SUSTAIN_THRESHOLD = librosa.db_to_amplitude(-10.0)  # blocks within 10 dB of the loudest are "sustained"
_FUNDAMENTAL_PHASE = np.pi / 2  # align cycles so the fundamental is -sin, like Vital's Init saw


def extract_wavetable(
    audio: np.ndarray, sample_rate: int, f0_hz: float, n_frames: int = 8, name: str = "Extracted"
) -> Wavetable:
    """Take ``n_frames`` single cycles at ``f0_hz`` spread over the sustained part of a clip.

    Audio is mono (n,) or multichannel with the shorter axis as channels
    (averaged), at ``sample_rate`` Hz. Each cycle is measured over 2-4 periods
    (see ``harmonic_track``), shifted so the fundamental starts like Vital's
    Init saw (later frames follow the earlier ones when the fundamental is
    weak), then rebuilt at 2048 samples without DC and at peak 1.
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
    if count == 1:
        firsts = np.array([(start + stop - length) // 2])
    else:
        firsts = np.linspace(start, stop - length, count).round().astype(int)
    spectra = _harmonic_spectra(mono, sr, float(f0_hz), firsts + length // 2, cycles)
    frames: list[np.ndarray] = []
    previous: np.ndarray | None = None
    for spectrum in spectra:
        spectrum = _align_phase(spectrum, previous)
        previous = spectrum
        frames.append(_extracted_frame(spectrum))
    return Wavetable(name=name, frames=np.stack(frames))


def harmonic_track(
    audio: np.ndarray, sample_rate: int, f0_hz: float, centres: np.ndarray, cycles: float = _MAX_ANALYSIS_CYCLES
) -> np.ndarray:
    """Complex harmonic spectra of a clip at the harmonics of ``f0_hz``, one per analysis centre.

    ``centres``: sample indices (n_times,); each spectrum is the Hann-windowed
    DFT of ``cycles`` periods around its centre, the window slid inside the
    clip at the edges. Returns complex128 (n_times, n_harmonics + 1), scaled so
    a sine of amplitude a at harmonic k gives |X[k]| = a (whatever the window
    length).
    """
    mono = _mono(audio)
    sr = _check_rate(sample_rate)
    _check_f0(f0_hz, sr)
    return _harmonic_spectra(mono, sr, float(f0_hz), np.asarray(centres, dtype=np.int64), cycles)


def align_cycle_phase(spectrum: np.ndarray) -> np.ndarray:
    """The spectrum shifted in time so its cycle starts like Vital's Init saw (see extract_wavetable)."""
    return _align_phase(np.asarray(spectrum, dtype=np.complex128), None)


def _harmonic_spectra(mono: np.ndarray, sr: int, f0: float, centres: np.ndarray, cycles: float) -> np.ndarray:
    """Amplitude-scaled spectra (n_times, n_harmonics + 1) of Hann windows of ``cycles`` periods at ``centres``."""
    length = int(min(mono.size, max(8, round(cycles * (sr / f0)))))
    n_harmonics = min(MAX_HARMONIC, int(np.ceil(0.5 * sr / f0)) - 1)
    window = scipy.signal.get_window("hann", length)
    scale = 2.0 / window.sum()
    # DFT at k * f0 for k = 0..n_harmonics: chirp z-transform along the unit circle in steps of f0
    czt = scipy.signal.CZT(length, n_harmonics + 1, w=np.exp(-2j * np.pi * f0 / sr))
    firsts = np.clip(centres - length // 2, 0, mono.size - length)
    out = np.empty((len(firsts), n_harmonics + 1), dtype=np.complex128)
    for i, first in enumerate(firsts):
        out[i] = scale * czt(mono[first : first + length] * window)
    return out


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
    """Sample range from the first to the last period-long block within 10 dB of the loudest: skips attack and tail."""
    block = max(1, round(period))
    rms = librosa.feature.rms(y=x, frame_length=block, hop_length=block, center=False, dtype=np.float64)[0]
    loud = np.flatnonzero(rms >= _SUSTAIN_THRESHOLD * rms.max())
    return int(loud[0] * block), int((loud[-1] + 1) * block)


def _fit_region(start: int, stop: int, length: int, size: int) -> tuple[int, int]:
    """Widen [start, stop) around its centre until one analysis window fits, staying inside the clip."""
    if stop - start >= length:
        return start, stop
    centre = (start + stop) // 2
    start = min(max(0, centre - length // 2), size - length)
    return start, start + length


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
    return frame_from_spectrum(spectrum)
