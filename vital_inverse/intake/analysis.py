# SPDX-License-Identifier: GPL-3.0-or-later
"""The analysed note (`Analysis`) and the pipeline that makes it (`analyze`).

validate and scale (`audio.prepare`) -> onset and trailing silence (`timing`) -> the first
note, at most `IntakeLimits.analysis_seconds`, resampled to 44.1 kHz -> note length
(`timing.key_held_seconds`) -> pitch, chord, drum check on the steady part (`pitch`) ->
peak-normalised to -1 dBFS.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..constants import SAMPLE_RATE
from .audio import IntakeError, IntakeLimits, human_seconds, load_audio, load_with_notices, prepare, resample
from .pitch import midi_name, nearest_note, note_pitch
from .timing import find_onset_and_end, first_note, key_held_seconds, level_envelope

#: Peak level of `Analysis.audio` after normalisation (-1 dBFS).
TARGET_PEAK = 10.0 ** (-1.0 / 20.0)


@dataclass(frozen=True)
class Analysis:
    """One analysed note.

    audio          float32 (2, n) at 44.1 kHz: the note from its onset, trailing
                   silence trimmed, at most `analysis_seconds`, DC removed,
                   peak-normalised to -1 dBFS (`TARGET_PEAK`).
    sample_rate    44100.
    note           MIDI note nearest to f0 (60 when unpitched).
    cents          f0 - note in cents, -50..50 (0 when unpitched).
    confidence     0..1 periodicity/consistency of the pitch (see detect_pitch).
    pitched        confidence >= PITCHED_CONFIDENCE; False for noise and most drums.
    chord          MIDI notes, lowest first, when the clip holds more than one note
                   (then `note`/`cents`/`f0_hz` are the lowest's); () for one note.
    f0_hz          pitch of the steady part (None when unpitched).
    note_seconds   onset -> start of the release: the render's note length.
    render_seconds len(audio) / 44100: the render's total length.
    gain           factor applied to the caller's samples (original = audio / gain).
    source_name    file stem, for naming downloads.
    notices        what was repaired or guessed on the way in (a damaged WAV header, a
                   clip cut short), one sentence each, for the person to read.
    """

    audio: np.ndarray
    sample_rate: int
    note: int
    cents: float
    confidence: float
    pitched: bool
    f0_hz: float | None
    note_seconds: float
    render_seconds: float
    gain: float
    source_name: str
    notices: tuple[str, ...] = ()
    chord: tuple[int, ...] = ()

    @property
    def more_than_one_note(self) -> bool:
        """The clip holds a chord (`chord` lists its MIDI notes; `note` is the lowest)."""
        return len(self.chord) > 1

    def note_name(self) -> str:
        """'A3 +12 cents' (MIDI 60 = C4); 'C4 (unpitched)' for unpitched sounds;
        'C4 +2 cents (more than one note: C4 E4 G4)' for a chord."""
        name = midi_name(self.note)
        if not self.pitched:
            return f"{name} (unpitched)"
        cents = round(self.cents)
        if self.more_than_one_note:
            return f"{name} {cents:+d} cents (more than one note: {' '.join(midi_name(m) for m in self.chord)})"
        return f"{name} {cents:+d} cents"


def analyze(
    audio: np.ndarray, sample_rate: int, source_name: str = "clip", limits: IntakeLimits = IntakeLimits()
) -> Analysis:
    """Analyse the first note of a clip.

    audio: (channels, n) or (n,) samples at `sample_rate` (8-192 kHz), any channel count.
    Steps: validate -> downmix to stereo -> trim leading silence (onset) -> keep up to
    `limits.analysis_seconds` of the first note (split at a quiet gap before a second
    note, trailing silence trimmed) -> resample to 44.1 kHz (soxr HQ) -> release start
    (note_seconds) -> pitch (YIN on the steady part) -> peak-normalise to -1 dBFS.
    Raises IntakeError (only) when the audio is unusable.
    """
    st, sr, peak = prepare(audio, sample_rate, limits)

    # Coarse pass at the file's rate: where the first note starts; crop before resampling.
    onset0, end0 = find_onset_and_end(st, sr)
    margin = round(0.02 * sr)
    lo = max(0, onset0 - margin)
    hi = min(end0 + margin, st.shape[1], onset0 + math.ceil(limits.analysis_seconds * sr) + 2 * margin)
    y = resample(st[:, lo:hi], sr)
    del st

    # Fine pass at 44.1 kHz.
    hop = 256
    onset, stop = first_note(y, limits.analysis_seconds, hop)
    note = y[:, onset:stop]
    if note.shape[1] < int(0.01 * SAMPLE_RATE):
        raise IntakeError(
            f"The clip contains only a click ({human_seconds(note.shape[1] / SAMPLE_RATE)} of sound). "
            "Upload a clip of a whole note."
        )
    render_seconds = note.shape[1] / SAMPLE_RATE
    note_seconds = key_held_seconds(note, hop)
    e = level_envelope(note, hop)

    f0, confidence, chord = note_pitch(note, e, note_seconds, hop)
    midi, cents = (60, 0.0) if f0 is None else nearest_note(f0)
    pitched = f0 is not None

    npeak = float(np.max(np.abs(note)))
    g = TARGET_PEAK / npeak if npeak > 0 else 1.0
    out = np.ascontiguousarray((note * g).astype(np.float32))
    return Analysis(
        audio=out,
        sample_rate=SAMPLE_RATE,
        note=midi,
        cents=round(cents, 2),
        confidence=round(float(confidence), 4),
        pitched=pitched,
        f0_hz=None if f0 is None else float(f0),
        note_seconds=min(round(note_seconds, 4), render_seconds),
        render_seconds=render_seconds,
        gain=float(g / peak),
        source_name=str(source_name) if source_name else "clip",
        chord=tuple(nearest_note(f)[0] for f in chord),
    )


def analyze_file(path, limits: IntakeLimits = IntakeLimits()) -> Analysis:
    """`load_audio` then `analyze`; source_name is the file stem; repairs made while
    decoding are in `notices`."""
    audio, sr, notices = load_with_notices(path, limits)
    if isinstance(path, (str, os.PathLike)):
        stem = Path(os.fspath(path)).stem
    else:
        stem = Path(str(getattr(path, "name", "clip") or "clip")).stem
    result = analyze(audio, sr, source_name=stem or "clip", limits=limits)
    return replace(result, notices=notices + result.notices) if notices else result


def warm_up() -> None:
    """Import the decoders/resampler and run one tiny analysis so the first request is fast.

    There is no JIT to pay (no numba, no scipy.signal on the request path): this only
    imports soundfile and soxr and runs their code once (a few hundred ms at most)."""
    sr = 48000
    t = np.arange(int(0.3 * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 220.0 * t) * np.minimum(1.0, (0.3 - t) * 20)
    buf = io.BytesIO()
    import soundfile as sf

    sf.write(buf, x.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    buf.seek(0)
    analyze(*load_audio(buf), source_name="warm-up")
