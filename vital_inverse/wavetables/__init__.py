# SPDX-License-Identifier: GPL-3.0-or-later
"""Vital wavetables: the table and its preset JSON (``table``), band-limited frames from harmonic
spectra (``frames``), the project's generated bank (``bank``) and tables taken from audio (``extract``)."""

from .bank import bank_names, bank_wavetable, nearest_bank_name
from .extract import align_cycle_phase, extract_wavetable, harmonic_track
from .frames import frames_from_spectra
from .table import FRAME_SIZE, MAX_FRAMES, MAX_POSITION, Wavetable, WavetableError, frequency_interpolate

__all__ = [
    "FRAME_SIZE",
    "MAX_FRAMES",
    "MAX_POSITION",
    "Wavetable",
    "WavetableError",
    "align_cycle_phase",
    "bank_names",
    "bank_wavetable",
    "extract_wavetable",
    "frames_from_spectra",
    "frequency_interpolate",
    "harmonic_track",
    "nearest_bank_name",
]
