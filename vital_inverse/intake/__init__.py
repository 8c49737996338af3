# SPDX-License-Identifier: GPL-3.0-or-later
"""Clip intake: an uploaded file -> one clean, analysed note (`Analysis`), or one clear error.

    load_audio(path_or_file)   -> (float32 (channels, n), sr)   audio.py: decode, sniff, damage checks
    analyze(audio, sr)         -> Analysis                      analysis.py: the first note, analysed
    analyze_file(path)         =  load_audio + analyze (+ notices about repaired headers)
    detect_pitch(mono, sr)     -> (f0_hz | None, confidence)   pitch.py: YIN, chords, drums
    detect_chord(mono, sr, f0) -> the notes' Hz when more than one sounds, else ()
    warm_up()                     call at app start (imports and one tiny analysis)

Note timing (onset, first-note window, key-held length) is in timing.py. Every problem with
the input is an `IntakeError` (a `UserError`) whose message says what is wrong and what to do.
"""

from ..constants import SAMPLE_RATE
from .analysis import TARGET_PEAK, Analysis, analyze, analyze_file, warm_up
from .audio import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    QUIET_FLOOR_DB,
    SILENCE_FLOOR_DB,
    IntakeError,
    IntakeLimits,
    downmix_to_stereo,
    load_audio,
)
from .pitch import PITCHED_CONFIDENCE, detect_chord, detect_pitch, midi_name, nearest_note, yin_cmndf

__all__ = [
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "PITCHED_CONFIDENCE",
    "QUIET_FLOOR_DB",
    "SAMPLE_RATE",
    "SILENCE_FLOOR_DB",
    "TARGET_PEAK",
    "Analysis",
    "IntakeError",
    "IntakeLimits",
    "analyze",
    "analyze_file",
    "detect_chord",
    "detect_pitch",
    "downmix_to_stereo",
    "load_audio",
    "midi_name",
    "nearest_note",
    "warm_up",
    "yin_cmndf",
]
