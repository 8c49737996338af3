# SPDX-License-Identifier: GPL-3.0-or-later
"""Band-limited wave frames from harmonic spectra, shared by the bank and by extraction.

Spectra use the rfft bin convention of a 2048-sample frame: bin k is harmonic
k of the cycle, bin 0 is DC. Frames keep harmonics 1..1023 only (no DC, no
Nyquist bin), so they carry no baked-in aliasing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .table import FRAME_SIZE, WavetableError

MAX_HARMONIC = FRAME_SIZE // 2 - 1  # highest harmonic kept; the Nyquist bin is dropped
_OVERSAMPLE = 8  # shapes with corners are evaluated on an 8x grid, then band-limited


def normalise(frame: np.ndarray) -> np.ndarray:
    """Remove DC and scale to peak 1 (float32), because Vital tables are compared at equal level."""
    x = np.asarray(frame, dtype=np.float64)
    x = x - x.mean()
    peak = float(np.max(np.abs(x)))
    if not peak > 1e-12:
        raise WavetableError("A wave frame is silent (all samples equal), so it cannot be normalised")
    return (x / peak).astype(np.float32)


def frame_from_spectrum(spectrum: np.ndarray) -> np.ndarray:
    """Frame (2048,) float32 at peak 1 from harmonic bins (any length; DC and bins above 1023 dropped)."""
    full = np.zeros(FRAME_SIZE // 2 + 1, dtype=np.complex128)
    n = min(len(spectrum), MAX_HARMONIC + 1)
    full[1:n] = spectrum[1:n]
    return normalise(np.fft.irfft(full, FRAME_SIZE))


def frame_from_sines(coeffs: np.ndarray) -> np.ndarray:
    """Frame sum_k coeffs[k-1] * sin(2 pi k t), t in cycles: the additive way, exactly band-limited."""
    spectrum = np.zeros(len(coeffs) + 1, dtype=np.complex128)
    spectrum[1:] = -0.5j * FRAME_SIZE * np.asarray(coeffs, dtype=np.float64)
    return frame_from_spectrum(spectrum)


def frame_from_shape(shape: Callable[[np.ndarray], np.ndarray], max_harmonic: int = MAX_HARMONIC) -> np.ndarray:
    """Evaluate shape(phase in cycles) on an 8x oversampled cycle and keep harmonics up to max_harmonic."""
    n = FRAME_SIZE * _OVERSAMPLE
    cycle = shape(np.arange(n) / n)
    spectrum = np.fft.rfft(cycle) * (FRAME_SIZE / n)
    return frame_from_spectrum(spectrum[: max_harmonic + 1])


def frames_from_spectra(spectra: np.ndarray) -> np.ndarray:
    """Wave frames (n, 2048) float64 from harmonic spectra (n, n_bins), |X[k]| = amplitude of harmonic k.

    Unlike ``frame_from_spectrum`` these keep their relative levels (no
    per-frame normalisation), so a table can carry a level contour.
    """
    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.complex128))
    full = np.zeros((len(spectra), FRAME_SIZE // 2 + 1), dtype=np.complex128)
    n = min(spectra.shape[1], MAX_HARMONIC + 1)
    full[:, 1:n] = spectra[:, 1:n] * (FRAME_SIZE / 2)
    return np.fft.irfft(full, FRAME_SIZE, axis=1)
