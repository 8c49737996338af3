# SPDX-License-Identifier: GPL-3.0-or-later
"""Clip intake: an uploaded file -> one clean, analysed note, or one clear error.

    load_audio(path_or_file) -> (float32 (channels, n), sr)   raw decode
    analyze(audio, sr)       -> Analysis                      the first note, analysed
    analyze_file(path)       =  load_audio + analyze
    detect_pitch(mono, sr)   -> (f0_hz | None, confidence)
    detect_chord(mono, sr, f0) -> the notes' Hz when more than one note sounds, else ()
    warm_up()                   call at app start (imports only; there is no JIT)

Every problem with the input is an `IntakeError` (a `UserError`) whose message says
what is wrong and what to do; nothing else escapes (hypothesis fuzz in
tests/test_intake.py; during development also 8000 mutated WAV/FLAC/OGG/MP3/AIFF
files and 1500 random arrays of any rate, shape and scale).

Loading
-------
soundfile (libsndfile 1.2.2, which reads MP3 itself) decides the format from the
content, never from the extension: an MP3 named .wav loads; a PNG named .wav is
refused as "a PNG image". Accepted containers: WAV/WAVEX/RF64/W64, AIFF, CAF, AU,
FLAC, OGG (Vorbis/Opus), MP3; any bit depth; 8-192 kHz; any channel count. The size
(`IntakeLimits.max_bytes`) is checked before decoding and the duration
(`max_seconds`) from the header before reading samples, so a ten-minute file costs
nothing. NaN/inf samples, zero or one sample, silence (peak < -90 dBFS), clips too
quiet to match (peak < -70 dBFS after the DC offset, the message gives the level) and
samples over +60 dBFS (damaged floats) are refused. The decoders' own console chatter
(libmpg123 probing random bytes) is kept off stderr; content that matches no format is
said to be that, whatever its name. A WAV whose size fields are wrong (cut short, never
filled in) is read as far as it goes and `Analysis.notices` says so.

Analysis pipeline (`analyze`)
-----------------------------
1. Validate, scale by the peak (no overflow for any finite input), remove each
   channel's DC offset (median), downmix to stereo (mono duplicated; 3-8 channels by
   WAV order with centre/surrounds at -3 dB, LFE at -6 dB; other counts alternate
   L/R).
2. Onset and trailing silence on 5.8 ms block RMS, relative to the loudest block:
   the onset is the first sample of the first block above -50 dB (10 dB above a
   steady leading noise floor when there is one); the end is the last block above
   -60 dB. The note is cut at `analysis_seconds` after the onset, or earlier at a
   quiet gap (>= 100 ms below -45 dB) that is followed by another sound (the first
   note of several). Only this window is resampled to 44.1 kHz (soxr "HQ").
3. note_seconds (onset -> start of release), see `_release_start`. The envelope is
   the mean in dB of the plain RMS and the RMS of the differenced signal: on the
   plain RMS a 7-voice unison beats by +-3 dB (it rests on the fundamental) and broke
   every plateau test; differencing levels the harmonics so the beats average out,
   but alone it follows filter movement (LFO/envelope on the cutoff); the mean
   halves both. Its structure (100 ms-smoothed) is fitted by four straight lines in
   dB (segmented least squares); the end of the last flat line before lines that
   only fall is the release, placed precisely by a hinge fit on the unsmoothed
   envelope. No plateau (plucks, percussion, notes released in their attack or
   decay): the key is taken as held until the sound has decayed 40 dB below its
   peak - a sustain-0 preset held that long renders the same decay; the tail below
   is release. Held past the analysed audio: note_seconds = render_seconds.
   Measured on Vita renders (3 timbres incl. 7-voice unison and a filtered 2-voice
   unison; holds 0.1-2.5 s, releases 0.01-2 s, attacks 0.5 ms-0.5 s, sustain 1 or
   0.5; 450 renders): of the 285 whose hold is not ambiguous (not released inside
   the attack or before the decay settled), 90 % are within 50 ms (median 10 ms);
   where a sustain plateau is found (207 of them) the error is median 10 ms, 90th
   percentile 29 ms, max 97 ms (unison beats). Filter-envelope and filter-LFO
   sounds (12 renders, holds 0.5-2.5 s): 9 within 70 ms, worst 0.2 s. Known,
   documented failures: a flat top
   shorter than a quarter of the time the fall then takes to lose 20 dB reads as a
   natural decay (that is what a vibraphone looks like), so e.g. 0.1-0.3 s held
   with a 2 s release is reported as ~1.5 s held; notes released before the decay
   reached the sustain level, or during the attack, go by the decay rule (error ~
   the release time).
4. Pitch (`detect_pitch`) on the steady part (from 30 ms after the onset, while
   within 25 dB of the peak, before the release, at most 1.5 s): YIN difference
   function (FFT, vectorised over 24 frames of 40 ms) with two period picks per
   frame, a cluster vote across frames, and an octave/harmonic check on the mean
   spectrum. confidence = summed periodicity of the winning cluster / frames;
   pitched when >= 0.5, else note 60, cents 0, f0 None. Range 20 Hz - 5 kHz (every
   fundamental of MIDI 16-111); above 1.5 kHz the spectrum may raise a period YIN took
   2-4x too long. A chord (`detect_chord`: several notes with one common period whose
   own fundamental is absent) is "more than one note": `Analysis.chord` lists them and
   the note is the lowest. A hit that drops into a pitch it does not hold (kicks, toms)
   is unpitched; one held within 12 dB of its peak for 0.4 s (an 808) keeps its pitch.
   benchmarks/bench_edges.py measures all three.
5. Peak-normalise the note to -1 dBFS (`TARGET_PEAK`); `gain` is the factor from
   the caller's input (original level = audio / gain, DC offset aside).

Why this pitch estimator (measured on this machine, 2 shared cores)
--------------------------------------------------------------------
Dev grid: 29 Vital timbres (saw, unison up to 16 voices at max detune, LP/HP/BP,
resonances, notch, formant filter, sync, formant/squeeze/pulse/bend/quantize
distortion, FM, spectral morphs, vibrato) x MIDI 36-84 step 4 (377 renders, 0.6 s).
On a 1-in-3 subset (126 renders): this estimator 95.2 % within 50 cents,
`librosa.yin` 92.1 %, `librosa.pyin` 91.3 % (fmin 27.5 Hz, frame 4096; median of frames).
All misses of all three are in pitch-ambiguous timbres (Random Amplitudes >= 0.5,
which creates subharmonics; hard sync 0.7, fundamental at -40 dB; a self-oscillating
resonance); on the other timbres this estimator is at 100 %. Speed: `librosa.pyin`
on a 4 s clip costs 14.1 s on its first call in a process (numba JIT) and 5.0 s warm
- far over the 0.5 s budget, and warming it at start-up would still cost 5 s per
request. `librosa.yin` is fast (0.05 s) but has no voicing confidence and makes
octave/twelfth errors on sync and formant sounds. This estimator: pure numpy, no
JIT; a whole `analyze` of a 4 s clip takes ~20 ms warm and ~0.1 s as the first call
in a fresh process (plus ~0.2 s of imports; benchmarks/bench_intake.py).
Octave choice: "first" (shortest lag whose d' dip is within 0.1 of the deepest) is
robust to unison, vibrato and aliasing; "exact" (within 0.02) is the true period of
a periodic signal; when they differ by 2-4x the spectrum decides whether the
in-between partials are audible (>= -23 dB re the higher series: period wins, e.g.
hard sync and formants, whose pitch is the master's) or absent (the higher pitch
wins, e.g. only even harmonics, a lone harmonic left by a spectral high-pass).
Unpitched: white/filtered noise (Vita's sample oscillator), noise bursts, snares,
hats and pitch-sweeping kicks come out below 0.5 confidence (a kick with a long
steady 45 Hz tail is, rightly, a pitched 808).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import struct
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import UserError

log = logging.getLogger(__name__)

__all__ = [
    "SAMPLE_RATE",
    "Analysis",
    "IntakeError",
    "IntakeLimits",
    "analyze",
    "analyze_file",
    "detect_chord",
    "detect_pitch",
    "load_audio",
    "midi_name",
    "warm_up",
]

SAMPLE_RATE = 44100
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000

#: Peak level of `Analysis.audio` after normalisation (-1 dBFS).
TARGET_PEAK = 10.0 ** (-1.0 / 20.0)
#: A clip whose peak is below this is "silent" (-90 dBFS, i.e. ~1 LSB of 16 bit).
SILENCE_FLOOR_DB = -90.0
#: A clip whose peak (DC offset removed) is below this is "too quiet": at -70 dBFS a
#: 16-bit file has ~10 levels left, i.e. background noise, not a note to match.
QUIET_FLOOR_DB = -70.0
#: A decoded file whose samples reach this far above full scale (+60 dBFS) is damaged
#: (garbage floats, or a float header on other data); float renders go a few dB over.
DAMAGED_PEAK_DB = 60.0
#: Leading/trailing silence: blocks this far below the clip's loudest block.
ONSET_REL_DB = -50.0
TAIL_REL_DB = -60.0
#: A later note is split off after a gap this quiet (re peak) and this long.
GAP_REL_DB = -45.0
GAP_SECONDS = 0.10
#: Shortest clip accepted (before trimming).
MIN_SECONDS = 0.02
#: Pitch search range: every fundamental a Vital note of MIDI 16-111 has (20 Hz .. 5 kHz),
#: covering the piano's A0-C8 (MIDI 21-108) with room for detune.
FMIN = 20.0
FMAX = 5000.0
#: Above this a period is under ~30 samples at 44.1 kHz: YIN's dips at whole-sample lags
#: get shallow, so a multiple of the period can win; the spectrum then decides (see
#: `_octave_up_from_spectrum`).
SHORT_PERIOD_HZ = 1500.0
#: Chords (`detect_chord`): spectral peaks count as partials when they stand this far
#: above the spectrum around them, and within CHORD_FLOOR_DB of the loudest; the notes
#: are found among the partials within CHORD_STRONG_DB of the loudest; at most this many.
CHORD_PEAK_DB = 15.0
CHORD_FLOOR_DB = 50.0
CHORD_STRONG_DB = 30.0
CHORD_MAX_NOTES = 6
#: ... and one note (not a chord) when its harmonics from the lowest heard up to 4x it are
#: at least this complete.
CHORD_GAPLESS = 0.9
#: Drums (`_is_drum_hit`): a sound held within 12 dB of its peak this long keeps its
#: pitch; a shorter one is unpitched if it glides into its pitch from this far above.
DRUM_HELD_SECONDS = 0.4
DRUM_GLIDE_SEMITONES = 1.5
#: ... measured only when the onset has a clear period (YIN d' at most this; a gliding
#: kick's onset has ~0.16).
GLIDE_MAX_DIP = 0.35
#: `confidence` at or above this -> pitched.
PITCHED_CONFIDENCE = 0.5
#: YIN "first" period: the shortest lag whose d' dip is within this of the deepest dip.
DIP_TOLERANCE = 0.1
#: YIN "exact" period: the shortest lag whose dip is within this of the deepest dip.
EXACT_TOLERANCE = 0.02
#: Harmonic check: the lower ("exact") pitch, 2-4x below the higher ("first") one, wins
#: when its extra partials hold at least this fraction of the energy of the higher
#: one's partials (-23 dB): audible partials between them put the pitch at the period.
SUBHARMONIC_RATIO = 0.005
MAX_SUBHARMONIC = 4

_FORMATS_OK = {"WAV", "WAVEX", "RF64", "W64", "AIFF", "CAF", "FLAC", "OGG", "MP3", "AU"}
_UPLOAD_HINT = "Upload a WAV, FLAC, OGG or MP3 of one note."
_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


class IntakeError(UserError):
    """The clip cannot be used; the message says what is wrong and what to do.

    A `UserError` (so a `ValueError`): the CLI prints it, the app shows it."""


@dataclass(frozen=True)
class IntakeLimits:
    """Upload limits (refused with a message naming the limit) and the analysis window."""

    max_bytes: int = 50 * 1024 * 1024
    max_seconds: float = 60.0  # longer uploads are refused with a clear message
    analysis_seconds: float = 4.0  # analysis uses the first note, up to this long


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


def midi_name(note: int) -> str:
    """'C4' for MIDI 60."""
    return f"{_NOTE_NAMES[note % 12]}{note // 12 - 1}"


# --------------------------------------------------------------------------- loading


def _human_bytes(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} kB"
    return f"{n} bytes"


def _human_seconds(s: float) -> str:
    if s >= 60:
        m, sec = divmod(round(s), 60)
        return f"{m} min {sec} s"
    if s >= 1:
        return f"{s:.1f} s"
    return f"{s * 1000:.1f} ms"


def _sniff(head: bytes) -> tuple[str, str] | None:
    """What a file looks like from its first bytes: (description, kind) with kind
    "audio" (a supported container), "unsupported" (audio we do not read) or "other"."""
    if head.startswith((b"RIFF", b"RF64", b"BW64")) and head[8:12] == b"WAVE":
        return "a WAV file", "audio"
    if head.startswith(b"riff\x2e\x91\xcf\x11"):
        return "a Wave64 file", "audio"
    if head.startswith(b"caff"):
        return "a CAF file", "audio"
    if head.startswith(b".snd"):
        return "an AU file", "audio"
    if head.startswith(b"fLaC"):
        return "a FLAC file", "audio"
    if head.startswith(b"OggS"):
        return "an OGG file", "audio"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "an MP3 file", "audio"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "an AIFF file", "audio"
    if head[4:8] == b"ftyp":
        return "an MP4/M4A/AAC file", "unsupported"
    if head.startswith(b"\x1aE\xdf\xa3"):
        return "a WebM/Matroska file", "unsupported"
    if head.startswith(b"\x89PNG"):
        return "a PNG image", "other"
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image", "other"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "a GIF image", "other"
    if head.startswith(b"%PDF"):
        return "a PDF document", "other"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive (or an Office document)", "other"
    stripped = head.lstrip()
    if stripped.startswith((b"{", b"[")):
        return "a JSON text file (a .vital preset is not audio)", "other"
    if stripped[:1] == b"<":
        return "an HTML/XML text file", "other"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text and sum(c.isprintable() or c in "\r\n\t" for c in text) > 0.95 * len(text):
        return "a text file", "other"
    return None


def _read_source(path_or_file, limits: IntakeLimits) -> tuple[object, str, bytes]:
    """Resolve the input to something soundfile can open; check existence and size.

    Returns (source for soundfile, display name, first bytes of the file).
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        path = Path(os.fspath(path_or_file))
        name = path.name or str(path)
        if not str(path_or_file):
            raise IntakeError(f"No file was given. {_UPLOAD_HINT}")
        try:
            if not path.exists():
                raise IntakeError(
                    f"File not found: '{name}'. Check the path, or {_UPLOAD_HINT[0].lower()}{_UPLOAD_HINT[1:]}"
                )
            if path.is_dir():
                raise IntakeError(f"'{name}' is a folder, not an audio file. {_UPLOAD_HINT}")
            size = path.stat().st_size
            if size == 0:
                raise IntakeError(f"The file is empty (0 bytes). {_UPLOAD_HINT}")
            if size > limits.max_bytes:
                raise IntakeError(
                    f"The file is {_human_bytes(size)}; the limit is {_human_bytes(limits.max_bytes)}. "
                    "Trim the clip to one note (a few seconds) and upload it again."
                )
            with open(path, "rb") as fh:
                head = fh.read(64)
        except IntakeError:
            raise
        except (OSError, ValueError) as exc:
            raise IntakeError(f"Could not read '{name}' ({exc.__class__.__name__}). {_UPLOAD_HINT}") from None
        return str(path), name, head

    if isinstance(path_or_file, (bytes, bytearray, memoryview)):
        data = bytes(path_or_file)
        name = "clip"
    elif hasattr(path_or_file, "read"):
        name = Path(str(getattr(path_or_file, "name", "clip") or "clip")).name
        try:
            data = path_or_file.read(limits.max_bytes + 1)
        except Exception as exc:  # noqa: BLE001 - any read failure is the user's file
            raise IntakeError(f"Could not read the uploaded file ({exc.__class__.__name__}). {_UPLOAD_HINT}") from None
        if isinstance(data, str):
            raise IntakeError(f"The upload was opened as text, not as binary audio. {_UPLOAD_HINT}")
        data = bytes(data or b"")
    else:
        raise IntakeError(f"Expected a file path or an open file, got {type(path_or_file).__name__}. {_UPLOAD_HINT}")
    if len(data) == 0:
        raise IntakeError(f"The file is empty (0 bytes). {_UPLOAD_HINT}")
    if len(data) > limits.max_bytes:
        raise IntakeError(
            f"The file is larger than the {_human_bytes(limits.max_bytes)} limit. "
            "Trim the clip to one note (a few seconds) and upload it again."
        )
    return io.BytesIO(data), name, data[:64]


def load_audio(path_or_file, limits: IntakeLimits = IntakeLimits()) -> tuple[np.ndarray, int]:
    """Decode a clip as it is: float32 (channels, n) at the file's own sample rate.

    `path_or_file`: a path (str/PathLike), an open binary file, or the file's bytes.
    The format is found from the content (libsndfile), never from the extension.
    Raises IntakeError for anything unusable: missing/empty/oversized file, not audio,
    damaged header, unsupported format or sample rate, no samples, too long, NaN/inf,
    samples absurdly far above full scale. A WAV with wrong size fields is read as far
    as it goes (`analyze_file` reports that in `Analysis.notices`).
    """
    audio, sr, _ = _load(path_or_file, limits)
    return audio, sr


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_decoder():
    """Keep the decoders' own chatter (libmpg123 writes "Note: Illegal Audio-MPEG-Header"
    straight to file descriptor 2) and Python warnings off the console: our message is
    the one the person reads. What was written is logged at debug level. Process-wide
    while it lasts (a decode: milliseconds), so serialised."""
    with _STDERR_LOCK, warnings.catch_warnings(), tempfile.TemporaryFile() as sink:
        warnings.simplefilter("ignore")
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing to silence
            yield
            return
        try:
            sys.stderr.flush()
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            said = sink.read(4096).decode("utf-8", "replace").strip()
            if said:
                log.debug("decoder output: %s", said)


def _wav_sizes(source) -> tuple[str | None, bytes | None]:
    """Check a RIFF WAV's size fields against the bytes that are there.

    Returns (notice, repaired header + data or None). A data chunk longer than the
    file (cut short, or a writer that never filled in the sizes) is read as far as it
    goes: libsndfile does that itself, the notice says so. A data size of 0 with
    samples after it (a recorder that stopped before finishing the header) makes
    libsndfile see no samples, so the sizes are repaired in memory. (None, None) for
    anything that is not a plain RIFF WAV or is consistent."""
    try:
        if isinstance(source, io.BytesIO):
            data = source.getbuffer()
            total = len(data)
            head = bytes(data[: 1 << 16])
        else:
            total = os.path.getsize(source)
            with open(source, "rb") as fh:
                head = fh.read(1 << 16)
    except OSError:
        return None, None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None, None
    riff_size = struct.unpack_from("<I", head, 4)[0]
    pos, block = 12, None
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if cid == b"fmt " and pos + 22 <= len(head):
            channels = struct.unpack_from("<H", head, pos + 10)[0]
            bits = struct.unpack_from("<H", head, pos + 22)[0] if pos + 24 <= len(head) else 0
            block = struct.unpack_from("<H", head, pos + 20)[0] or channels * max(1, bits // 8)
        if cid == b"data":
            start = pos + 8
            there = total - start
            if block is None or block <= 0 or there <= 0:
                return None, None
            if size in (0, 0xFFFFFFFF) or riff_size in (0, 0xFFFFFFFF):
                notice = ("its WAV header gives no length (a recording that was not finished properly?); "
                          f"read the {there // block} sample frames the file holds")
                if size == 0 and isinstance(source, io.BytesIO):
                    data = bytearray(source.getbuffer())
                elif size == 0:
                    with open(source, "rb") as fh:
                        data = bytearray(fh.read())
                else:
                    return notice, None
                n = there - there % block
                struct.pack_into("<I", data, pos + 4, n)
                struct.pack_into("<I", data, 4, start + n - 8)
                return notice, bytes(data[: start + n])
            if size > there:
                return (f"the file is cut short: its WAV header promises {size // block} sample frames, it holds "
                        f"{there // block} ({100 * there / size:.0f}%); analysed what is there"), None
            if riff_size + 8 > total + 1:
                return "its WAV header's size fields disagree with the file's length (damaged?); read it as far as it goes", None
            return None, None
        pos += 8 + size + (size & 1)
    return None, None


def _decoder_detail(exc: BaseException) -> str:
    """libsndfile's reason, unless it misleads (a failed MP3 probe says the file does not exist)."""
    detail = str(exc).split(":")[-1].strip().rstrip(".") or exc.__class__.__name__
    if "does not exist" in detail or "not a regular file" in detail:
        return ""
    return detail


def _load(path_or_file, limits: IntakeLimits) -> tuple[np.ndarray, int, tuple[str, ...]]:
    """`load_audio` plus the notices about what was repaired on the way."""
    import soundfile as sf

    source, name, head = _read_source(path_or_file, limits)
    looks_like = _sniff(head)
    notices: list[str] = []
    notice, repaired = _wav_sizes(source)
    if notice:
        notices.append(f"'{name}': {notice}.")
    if repaired is not None:
        source = io.BytesIO(repaired)
    try:
        with _quiet_decoder(), sf.SoundFile(source) as f:
            fmt, sr, channels, frames = f.format, int(f.samplerate), int(f.channels), int(f.frames)
            if fmt not in _FORMATS_OK:
                raise IntakeError(
                    f"'{name}' is a {f.format_info} file, which is not supported. "
                    "Export the clip as WAV, FLAC, OGG or MP3."
                )
            if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
                raise IntakeError(
                    f"The sample rate of '{name}' is {sr} Hz; supported rates are 8 kHz to 192 kHz. "
                    "Export the clip at 44.1 or 48 kHz."
                )
            if channels < 1:
                raise IntakeError(f"'{name}' has no audio channels. {_UPLOAD_HINT}")
            if frames <= 0:
                raise IntakeError(f"'{name}' contains no audio samples (0 s long). {_UPLOAD_HINT}")
            max_frames = math.floor(limits.max_seconds * sr)
            if frames > max_frames:
                raise IntakeError(
                    f"The clip is {_human_seconds(frames / sr)} long; the limit is {_human_seconds(limits.max_seconds)}. "
                    "Trim it to one note (a few seconds) and upload it again."
                )
            data = f.read(frames=max_frames + 1, dtype="float32", always_2d=True)
    except IntakeError:
        raise
    except MemoryError:
        raise IntakeError(f"'{name}' is too large to decode. Trim it to one note and upload it again.") from None
    except Exception as exc:  # noqa: BLE001 - libsndfile/cffi errors of every kind
        detail = _decoder_detail(exc)
        desc, kind = looks_like if looks_like else (None, None)
        if kind == "audio":
            why = f" ({detail})" if detail else ""
            msg = f"'{name}' looks like {desc}, but it is damaged or truncated{why}. Export the clip again."
        elif kind == "unsupported":
            msg = f"'{name}' is {desc}, which is not supported. Export the clip as WAV, FLAC, OGG or MP3."
        elif kind == "other":
            msg = f"'{name}' is not audio: it looks like {desc}. {_UPLOAD_HINT}"
        else:
            msg = (f"'{name}' is not an audio file that can be read: its content matches none of WAV, FLAC, OGG, MP3 "
                   f"or AIFF, whatever its name says. {_UPLOAD_HINT}")
        raise IntakeError(msg) from None

    if data.shape[0] > max_frames:
        raise IntakeError(
            f"The clip is longer than the {_human_seconds(limits.max_seconds)} limit. "
            "Trim it to one note (a few seconds) and upload it again."
        )
    if data.shape[0] == 0:
        raise IntakeError(f"'{name}' contains no audio samples (0 s long). {_UPLOAD_HINT}")
    if data.shape[0] < MIN_SECONDS * sr:
        n = data.shape[0]
        raise IntakeError(
            f"'{name}' is only {n} sample{'s' if n != 1 else ''} long ({_human_seconds(n / sr)}); "
            f"a note needs at least {_human_seconds(MIN_SECONDS)}. Upload a longer clip of one note."
        )
    audio = np.ascontiguousarray(data.T)
    if not np.isfinite(audio).all():
        raise IntakeError(
            f"'{name}' contains invalid samples (NaN or infinite values), so it is probably damaged. "
            "Export the clip again (as 16- or 24-bit WAV if in doubt)."
        )
    peak = float(np.max(np.abs(audio)))
    if peak > 10.0 ** (DAMAGED_PEAK_DB / 20.0):
        raise IntakeError(
            f"'{name}' holds samples {peak:.3g} times full scale ({20 * math.log10(peak):+.0f} dBFS), so its samples "
            "are damaged or stored in the wrong format. Export the clip again (as 16- or 24-bit WAV if in doubt)."
        )
    return audio, sr, tuple(notices)


# --------------------------------------------------------------------------- validation & layout


def _as_channels_first(audio) -> np.ndarray:
    """Any array-like -> float64 (channels, n). Raises IntakeError when it is not audio."""
    try:
        a = np.asarray(audio)
    except Exception:  # noqa: BLE001
        raise IntakeError("The audio data could not be read as numbers.") from None
    if a.dtype.kind == "c":
        raise IntakeError("The audio data is complex-valued; expected real sample values.")
    if a.dtype.kind not in "biuf":
        raise IntakeError(f"The audio data has type {a.dtype}; expected numeric samples.")
    if a.ndim == 1:
        a = a[None, :]
    elif a.ndim == 2:
        # (n, channels) as soundfile returns it: accept when unambiguous.
        if a.shape[0] > 64 and a.shape[1] <= 64:
            a = a.T
    else:
        raise IntakeError(f"Expected audio shaped (channels, samples); got an array with {a.ndim} dimensions.")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise IntakeError(f"The clip contains no audio samples (0 s long). {_UPLOAD_HINT}")
    if a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        a = a.astype(np.float64) / max(abs(int(info.min)), int(info.max))
    else:
        a = a.astype(np.float64)
    return a


def _downmix_to_stereo(a: np.ndarray) -> np.ndarray:
    """(channels, n) -> (2, n). Mono is duplicated; surround uses WAV channel order
    (L R C LFE BL BR SL SR; 3 = L R C, 4 = quad, 5 = L R C BL BR) with centre and
    surrounds at -3 dB and LFE at -6 dB; other counts alternate left/right.
    Each side is divided by its weight sum so a signal on every channel keeps its level."""
    c = a.shape[0]
    if c == 1:
        return np.repeat(a, 2, axis=0)
    if c == 2:
        return a
    h, q = math.sqrt(0.5), 0.5
    layouts = {
        3: ([1, 0, h], [0, 1, h]),
        4: ([1, 0, h, 0], [0, 1, 0, h]),
        5: ([1, 0, h, h, 0], [0, 1, h, 0, h]),
        6: ([1, 0, h, q, h, 0], [0, 1, h, q, 0, h]),
        7: ([1, 0, h, q, q * h, h, 0], [0, 1, h, q, q * h, 0, h]),
        8: ([1, 0, h, q, h, 0, h, 0], [0, 1, h, q, 0, h, 0, h]),
    }
    if c in layouts:
        w = np.array(layouts[c], dtype=np.float64)
    else:
        w = np.zeros((2, c))
        w[0, 0::2] = 1.0
        w[1, 1::2] = 1.0
    w /= w.sum(axis=1, keepdims=True)
    return w @ a


# --------------------------------------------------------------------------- envelopes


def _block_power(x: np.ndarray, hop: int) -> np.ndarray:
    """Mean power over channels of non-overlapping blocks of `hop` samples (last block partial)."""
    n = x.shape[-1]
    nb = -(-n // hop)
    p = np.zeros(nb * hop)
    p[:n] = np.mean(x * x, axis=0)
    out = p.reshape(nb, hop).sum(axis=1)
    tail = n - (nb - 1) * hop
    out[:-1] /= hop
    out[-1] /= tail
    return out


def _smooth(p: np.ndarray, k: int) -> np.ndarray:
    """Centred moving average of `p` over k blocks (shrinking at the edges)."""
    if k <= 1 or len(p) < 2:
        return p.copy()
    c = np.concatenate([[0.0], np.cumsum(p)])
    i = np.arange(len(p))
    lo = np.clip(i - k // 2, 0, len(p))
    hi = np.clip(i + k // 2 + 1, 0, len(p))
    return (c[hi] - c[lo]) / (hi - lo)


def _db(p: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(p, 1e-20))


def _find_onset_and_end(y: np.ndarray, sr: int) -> tuple[int, int]:
    """Onset sample and end sample (after trailing silence is trimmed) of (2, n) audio.

    Relative to the loudest 5.8 ms block: the onset is the first sample of the first
    block above -50 dB (raised to 10 dB over a steady leading noise floor if there is one);
    the end is the last block above -60 dB.
    """
    hop = max(1, round(sr * 256 / SAMPLE_RATE))
    e = _db(_block_power(y, hop))
    peak = float(e.max())
    thr = peak + ONSET_REL_DB
    n_head = max(1, round(0.02 * sr / hop))
    head = e[:n_head]
    if len(e) > 4 * n_head and head.max() - head.min() < 6.0 and head.mean() < peak - 20.0:
        thr = max(thr, float(np.median(head)) + 10.0)
    above = np.nonzero(e > thr)[0]
    first_block, last_block = int(above[0]), int(above[-1])
    tail_thr = max(peak + TAIL_REL_DB, thr - 10.0)
    above_tail = np.nonzero(e > tail_thr)[0]
    last_block = max(last_block, int(above_tail[-1]))
    # sample-precise onset: first sample above the threshold's RMS level near that block
    lo = max(0, (first_block - 1) * hop)
    hi = min(y.shape[-1], (first_block + 1) * hop)
    amp_thr = 10.0 ** (thr / 20.0)
    seg = np.max(np.abs(y[:, lo:hi]), axis=0)
    idx = np.nonzero(seg > amp_thr)[0]
    onset = lo + int(idx[0]) if len(idx) else first_block * hop
    end = min(y.shape[-1], (last_block + 1) * hop)
    return onset, max(end, onset + 1)


# --------------------------------------------------------------------------- pitch


def _fast_len(n: int) -> int:
    """Smallest 2^a * 3^b >= n (a fast FFT size for numpy's pocketfft)."""
    best = 1 << max(0, int(n - 1).bit_length())
    p3 = 1
    while p3 < best:
        p2 = p3
        while p2 < n:
            p2 *= 2
        best = min(best, p2)
        p3 *= 3
    return best


def _yin_cmndf(frames: np.ndarray, w: int, tau_max: int) -> np.ndarray:
    """YIN cumulative-mean-normalised difference d'(tau), tau = 0..tau_max, per frame.

    frames: (F, w + tau_max) float64. Difference function via FFT correlation:
    d(tau) = E(x[0:w]) + E(x[tau:tau+w]) - 2 sum x[j] x[j+tau].
    """
    n = frames.shape[1]
    nfft = _fast_len(n + w)
    fx = np.fft.rfft(frames, nfft, axis=1)
    fw = np.fft.rfft(frames[:, :w], nfft, axis=1)
    r = np.fft.irfft(fx * np.conj(fw), nfft, axis=1)[:, : tau_max + 1]
    c = np.concatenate([np.zeros((frames.shape[0], 1)), np.cumsum(frames * frames, axis=1)], axis=1)
    taus = np.arange(tau_max + 1)
    e_tau = c[:, taus + w] - c[:, taus]
    d = c[:, w : w + 1] + e_tau - 2.0 * r
    d = np.maximum(d, 0.0)
    d[:, 0] = 0.0
    cum = np.cumsum(d[:, 1:], axis=1)
    out = np.ones_like(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:, 1:] = np.where(cum > 0, d[:, 1:] * taus[1:] / cum, 1.0)
    return out


def _refine(cm: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parabolic interpolation of d' around integer lags k (one per frame)."""
    k = np.clip(k, 1, cm.shape[1] - 2)
    rows = np.arange(cm.shape[0])
    a, b, c = cm[rows, k - 1], cm[rows, k], cm[rows, k + 1]
    den = a - 2.0 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(den > 0, 0.5 * (a - c) / den, 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    val = b - 0.25 * (a - c) * shift
    return k + shift, np.clip(val, 0.0, 1.0)


def _pick_periods(cm: np.ndarray, tau_min: int):
    """Two period choices per frame from d' over lags [tau_min, end):

    - "first": the shortest lag whose dip is within DIP_TOLERANCE of the deepest dip
      (a period and all its multiples dip; so does a pitch an octave or a twelfth
      above the period when it carries nearly all the energy);
    - "exact": the shortest lag within EXACT_TOLERANCE of the deepest dip (the exact
      period of a periodic signal even when most energy sits in a formant, a hard-sync
      peak or another partial periodicity).
    Returns (first_period, first_d, exact_period, exact_d), periods in samples."""
    seg = cm[:, tau_min - 1 :]  # one extra lag on the left for the local-minimum test
    inner = seg[:, 1:-1]
    is_min = (inner <= seg[:, :-2]) & (inner <= seg[:, 2:])
    depth = np.where(is_min, inner, np.inf)
    deepest = depth.min(axis=1, keepdims=True)
    none = ~np.isfinite(deepest[:, 0])
    k_first = np.argmax(depth <= deepest + DIP_TOLERANCE, axis=1)
    k_exact = np.argmax(depth <= deepest + EXACT_TOLERANCE, axis=1)
    if none.any():
        k_first[none] = k_exact[none] = np.argmin(inner[none], axis=1)
    p1, d1 = _refine(cm, k_first + tau_min)
    p2, d2 = _refine(cm, k_exact + tau_min)
    return p1, d1, p2, d2


def _cluster(logf: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """Group frame pitches (in semitones) within a semitone; the group with the largest
    summed weight wins. Returns (its weighted median in semitones, its summed weight)."""
    score = np.array([weight[np.abs(logf - lf) < 1.0].sum() for lf in logf])
    best = int(np.argmax(score))
    members = np.abs(logf - logf[best]) < 1.0
    vals, wts = logf[members], weight[members]
    order = np.argsort(vals)
    cdf = np.cumsum(wts[order])
    if cdf[-1] <= 0:
        return float(np.median(vals)), 0.0
    return float(vals[order][int(np.searchsorted(cdf, 0.5 * cdf[-1]))]), float(score[best])


def _series_energy(power: np.ndarray, bin_hz: float, f: float, half: float) -> float:
    """Power within +-`half` Hz of f, 2f, 3f ... up to 10 kHz."""
    top = min(10000.0, (len(power) - 1) * bin_hz)
    h = np.arange(f, top, f)
    if len(h) == 0:
        return 0.0
    cs = np.concatenate([[0.0], np.cumsum(power)])
    lo = np.clip(np.floor((h - half) / bin_hz).astype(np.int64), 0, len(power))
    hi = np.clip(np.ceil((h + half) / bin_hz).astype(np.int64) + 1, 0, len(power))
    return float((cs[hi] - cs[lo]).sum())


def _lower_pitch_needed(x: np.ndarray, sr: int, f_hi: float, f_lo: float) -> bool:
    """f_hi = m * f_lo (m integer >= 2): do the partials of f_lo that are not partials
    of f_hi hold >= SUBHARMONIC_RATIO of the energy of the partials of f_hi? Both series
    are measured with the same narrow bands (+-max(2 bins, f_lo/8)), so detune smear
    and noise count alike for both."""
    power, bin_hz = _mean_power_spectrum(x, sr)
    half = max(2.0 * bin_hz, f_lo / 8.0)
    e_hi = _series_energy(power, bin_hz, f_hi, half)
    e_all = _series_energy(power, bin_hz, f_lo, half)
    if e_hi <= 0:
        return True
    return (e_all - e_hi) >= SUBHARMONIC_RATIO * e_hi


def _octave_up_from_spectrum(x: np.ndarray, sr: int, f0: float) -> float:
    """A high f0's true pitch when YIN settled on a multiple of the period.

    For pitches above SHORT_PERIOD_HZ the period is a few samples: the dip at the true
    (fractional) lag is shallow and a 2-4x longer lag can win. If m * f0 (m = 4, 3, 2,
    highest first) stays within FMAX and the partials of f0 outside m * f0's series
    are inaudible (the same test as the octave check in `detect_pitch`), the pitch is m * f0."""
    for m in range(MAX_SUBHARMONIC, 1, -1):
        f_hi = m * f0
        if f_hi < SHORT_PERIOD_HZ or f_hi > FMAX * 1.03:
            continue
        if not _lower_pitch_needed(x, sr, f_hi, f0):
            return f_hi
    return f0


def _spectral_peaks(power: np.ndarray, bin_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Partials of a mean power spectrum: (frequencies in Hz, powers), ascending in frequency.

    A partial is a local maximum between FMIN and 10 kHz that stands CHORD_PEAK_DB above
    the median of the spectrum around it (+-1/3 octave, at least +-40 bins) and within CHORD_FLOOR_DB of the
    loudest partial. Maxima closer than a third of a semitone (unison voices, detune
    smear) are merged into the loudest. Frequencies by parabolic interpolation in dB."""
    lo = max(2, int(FMIN / bin_hz))
    hi = min(len(power) - 2, int(10000.0 / bin_hz))
    if hi <= lo:
        return np.zeros(0), np.zeros(0)
    db = 10.0 * np.log10(np.maximum(power, 1e-30))
    k = np.arange(lo, hi)
    is_max = (db[k] > db[k - 1]) & (db[k] >= db[k + 1])
    k = k[is_max & (db[k] >= db[lo:hi].max() - CHORD_FLOOR_DB)]
    if len(k) == 0:
        return np.zeros(0), np.zeros(0)
    keep = []
    for i in k:
        a, b = max(0, min(int(i / 1.26), i - 40)), min(len(db), max(int(i * 1.26), i + 40) + 1)
        if db[i] >= np.median(db[a:b]) + CHORD_PEAK_DB:
            keep.append(i)
    k = np.array(keep, dtype=np.int64)
    if len(k) == 0:
        return np.zeros(0), np.zeros(0)
    a, b, c = db[k - 1], db[k], db[k + 1]
    den = a - 2 * b + c
    shift = np.where(den < 0, 0.5 * (a - c) / np.where(den < 0, den, -1.0), 0.0)
    freqs, pw = (k + np.clip(shift, -0.5, 0.5)) * bin_hz, power[k]
    merged_f, merged_p = [freqs[0]], [pw[0]]
    for f, pv in zip(freqs[1:], pw[1:]):
        if f / merged_f[-1] < 2.0 ** (1.0 / 36.0):
            if pv > merged_p[-1]:
                merged_f[-1], merged_p[-1] = f, pv
        else:
            merged_f.append(f)
            merged_p.append(pv)
    return np.array(merged_f), np.array(merged_p)


def detect_chord(mono: np.ndarray, sample_rate: int, f0: float | None) -> tuple[float, ...]:
    """The notes of a clip that holds more than one, lowest first, in Hz; () for one note.

    Several notes sound together as one period (C-E-G = 4:5:6 repeats at C two octaves
    down), so YIN (`f0`, the common period) reports a low note that is not there. Here
    the partials of the mean spectrum (`_spectral_peaks`) decide:
    - one note when f0 itself is a partial (within 50 dB of the loudest);
    - else the partials within 30 dB of the loudest are explained greedily from the
      bottom: the lowest partial that is not a harmonic (within 3 %) of a note found so
      far starts a new note (one note, or more than CHORD_MAX_NOTES: not a chord);
    - one note when a "note" brings none of its own harmonics while other partials are
      there (a single note's uneven spectrum), or when the notes share no common period
      (`_common_period`; unison detune smears a note into peaks that share none);
    - still one note when the partials are harmonics d, d+1, d+2 ... of one pitch
      without gaps (`CHORD_GAPLESS`; a note whose fundamental is filtered away), where
      a chord leaves gaps: C-E-G holds harmonics 4, 5, 6, 8, 10, 12 of C two octaves
      down, not 7, 9, 11.
    An octave doubling cannot be told from timbre and counts as one note. Never raises."""
    if f0 is not None and not f0 > 0:
        return ()
    try:
        x = np.asarray(mono, dtype=np.float64).reshape(-1)
        sr = int(sample_rate)
        if x.size < 1024 or sr <= 0 or not np.isfinite(x).all() or not np.abs(x).max() > 0:
            return ()
        power, bin_hz = _mean_power_spectrum(x / np.abs(x).max(), sr)
    except (TypeError, ValueError, OverflowError):
        return ()
    freqs, pw = _spectral_peaks(power, bin_hz)
    if len(freqs) < 2 or (f0 is not None and np.any(np.abs(np.log2(freqs / f0)) < 0.04)):
        return ()  # no partials to speak of, or the period's own fundamental is heard: one note
    strong = freqs[pw >= pw.max() * 10.0 ** (-CHORD_STRONG_DB / 10.0)]
    notes: list[float] = []
    for f in strong:
        if any(abs(f / r - round(f / r)) < 0.03 * round(f / r) for r in notes if f / r > 0.97):
            continue
        notes.append(float(f))
        if len(notes) > CHORD_MAX_NOTES:
            return ()
    if len(notes) < (2 if f0 is not None else 3):
        return ()  # without a confident common period only three notes or more make a chord (a short low
        # pluck's smear can look like two)
    if len(strong) > len(notes):
        # Notes of rich tones each bring their own harmonics; "notes" that are lone partials
        # among many are a single note's uneven spectrum (random partial amplitudes, formants).
        for r in notes:
            k = strong / r
            if np.count_nonzero((k > 1.5) & (np.abs(k - np.round(k)) < 0.03 * np.round(k))) == 0:
                return ()
    if not _common_period(np.array(notes), f0):
        return ()  # not one common period: a detuned (unison) note's smear, not notes played together
    for d in range(2, CHORD_MAX_NOTES + 1):  # the lowest partial as harmonic d of one note
        k = strong / (notes[0] / d)
        kr = np.round(k)
        if np.all(np.abs(k - kr) <= 0.02 * k):
            weak = freqs / (notes[0] / d)  # gaps are counted over every partial (a decaying pluck's weak ones too)
            ks = {int(v) for v in np.round(weak[np.abs(weak - np.round(weak)) <= 0.02 * weak])}
            span = range(d, min(4 * d, int(kr.max())) + 1)
            if len(span) >= 3 and len(ks & set(span)) >= CHORD_GAPLESS * len(span):
                return ()  # harmonics d, d+1, d+2 ... all there: one note without its fundamental
    return tuple(notes) if len(notes) >= 2 else ()


def _common_period(notes: np.ndarray, f0: float | None) -> bool:
    """Do the notes sound together as one period, as notes of a chord do?

    With YIN's f0: every note a harmonic of f0 or of f0 / 2 (C-E-G's common period, C two
    octaves below C, can lie below FMIN) within 2 %. Without one (the period too weak or
    too long for YIN, e.g. a low triad of detuned voices): the notes are harmonics d, ...
    of notes[0] / d for some d <= 10 (a minor triad is 10:12:15) within 1 %."""
    if f0 is not None:
        periods, tol = (f0, f0 / 2), 0.02
    else:
        periods, tol = tuple(notes[0] / d for d in range(1, 11)), 0.01
    for p in periods:
        k = notes / p
        if np.all(np.abs(k - np.round(k)) <= tol * k):
            return True
    return False


def _mean_power_spectrum(x: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """Mean Hann-windowed power spectrum over up to 6 frames of ~0.37 s."""
    n = 1 << round(math.log2(max(256, 0.37 * sr)))
    if len(x) < n:
        n = 1 << max(8, math.floor(math.log2(max(len(x), 256))))
        x = np.pad(x, (0, max(0, n - len(x))))
    count = min(6, max(1, (len(x) - n) // (n // 2) + 1))
    starts = np.linspace(0, len(x) - n, count).astype(np.int64)
    frames = x[starts[:, None] + np.arange(n)[None, :]] * np.hanning(n)[None, :]
    power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    return power, sr / n


def detect_pitch(mono: np.ndarray, sample_rate: int, *, n_frames: int = 24) -> tuple[float | None, float]:
    """Pitch of one steady note: (f0_hz, confidence); f0 is None when unpitched.

    YIN (de Cheveigne & Kawahara 2002) on up to `n_frames` frames of 40 ms spread over
    the signal (lags for 27.5 Hz..4.2 kHz); frames 20 dB below the loudest are skipped.
    Per frame, two periods with their periodicity 1 - d': "first" (shortest lag whose
    d' dip is within 0.1 of the deepest) and "exact" (within 0.02). Frame pitches are
    grouped within a semitone; the group with the largest summed periodicity wins
    (weighted median). When "first" is above "exact" (octave/harmonic choice):
    - not an integer multiple of it: a formant or partial periodicity -> "exact";
    - 2-4x above: "exact" if its in-between partials hold >= -23 dB of the energy of
      "first"'s partials in the mean spectrum (hard sync, a formant at the 2nd or 3rd
      harmonic: the pitch stays the period), else "first" (only even harmonics, a lone
      high harmonic: the pitch really is higher);
    - 5x or more above: "first" (the long "period" is an aliasing or beating pattern).
    confidence = winning group's summed periodicity / frames used (0..1): low for
    noise (no deep dip) and for sounds whose period wanders (drums, sweeps).
    Never raises: bad input gives (None, 0.0).
    """
    try:
        x = np.asarray(mono, dtype=np.float64)
    except Exception:  # noqa: BLE001
        return None, 0.0
    if x.ndim > 1:
        x = x.reshape(-1, x.shape[-1]).mean(axis=0)
    if x.size == 0 or not np.isfinite(x).all():
        return None, 0.0
    try:
        sr = int(sample_rate)
    except (TypeError, ValueError, OverflowError):
        return None, 0.0
    if sr <= 0:
        return None, 0.0
    peak = np.max(np.abs(x))
    if peak <= 0:
        return None, 0.0
    x = x / peak
    tau_min = max(2, math.floor(sr / FMAX))
    tau_max = math.ceil(sr / FMIN)
    w = max(round(0.04 * sr), 2 * tau_min + 2, tau_max)  # integration window: >= 40 ms and >= the longest period
    if len(x) < w + tau_max + 1:
        # short signal: shrink the lag range (raises the lowest detectable pitch)
        tau_max = (len(x) - 1) // 2
        w = tau_max
        if tau_max < 2 * tau_min + 2:
            return None, 0.0
    n = w + tau_max + 1
    count = int(min(n_frames, max(1, (len(x) - n) // max(1, w // 4) + 1)))
    starts = np.linspace(0, len(x) - n, count).astype(np.int64)
    frames = x[starts[:, None] + np.arange(n)[None, :]]
    frames = frames - frames.mean(axis=1, keepdims=True)
    rms = np.sqrt(np.mean(frames[:, :w] ** 2, axis=1))
    if not rms.max() > 0:
        return None, 0.0
    frames = frames[rms > 0.1 * rms.max()]
    cm = _yin_cmndf(frames, w, tau_max)
    p_first, d_first, p_exact, d_exact = _pick_periods(cm, tau_min)
    st_first, score_first = _cluster(12.0 * np.log2(sr / p_first), 1.0 - d_first)
    st_exact, score_exact = _cluster(12.0 * np.log2(sr / p_exact), 1.0 - d_exact)
    # Agreeing picks: either vote may be the steadier one (a frame whose "first" pick
    # jumps to an octave of a layered or detuned sound can still have its exact period).
    st, score = st_first, max(score_first, score_exact) if abs(st_first - st_exact) < 0.5 else score_first
    if st_first - st_exact >= 0.5:
        # "first" is above the exact period. Not a harmonic of it (a formant or partial
        # periodicity): take the period. 2-4x above: take the period if the partials in
        # between are audible (hard sync, formants). 5x or more above: keep "first" (the
        # long "period" is then an aliasing or beating pattern, not a pitch).
        ratio = 2.0 ** ((st_first - st_exact) / 12.0)
        m = round(ratio)
        f_hi, f_lo = 2.0 ** (st_first / 12.0), 2.0 ** (st_exact / 12.0)
        harmonic = abs(ratio / m - 1.0) < (0.03 if m <= MAX_SUBHARMONIC else 0.01)
        if not harmonic or (m <= MAX_SUBHARMONIC and _lower_pitch_needed(x, sr, f_hi, f_lo)):
            st, score = st_exact, score_exact
    f0 = float(2.0 ** (st / 12.0))
    f0 = _octave_up_from_spectrum(x, sr, f0)
    confidence = float(np.clip(score / len(frames), 0.0, 1.0))
    if confidence < PITCHED_CONFIDENCE or not FMIN <= f0 <= FMAX * 1.03:
        return None, confidence
    return f0, confidence


# --------------------------------------------------------------------------- note timing


def _find_gap_split(e: np.ndarray, hop_s: float) -> int | None:
    """Block index where a second note begins after a quiet gap, or None.

    A gap is >= GAP_SECONDS below peak + GAP_REL_DB that is followed by sound above
    peak - 30 dB; the first note is cut where the gap first falls below the tail
    threshold (or at the gap's end)."""
    peak = e.max()
    quiet = e < peak + GAP_REL_DB
    need = max(1, round(GAP_SECONDS / hop_s))
    i = int(np.argmax(e >= peak - 30.0))  # inside the first note
    n = len(e)
    while i < n:
        if quiet[i]:
            j = i
            while j < n and quiet[j]:
                j += 1
            if j - i >= need and j < n and (e[j:] > peak - 30.0).any():
                run = e[i:j]
                below = np.nonzero(run < peak + TAIL_REL_DB)[0]
                return i + (int(below[0]) if len(below) else j - i)
            i = j
        else:
            i += 1
    return None


def _segment_lines(y: np.ndarray, n_seg: int, min_len: int) -> tuple[list[int], np.ndarray]:
    """Segmented least squares: y fitted by `n_seg` straight lines (discontinuous), each
    at least `min_len` points, optimal breakpoints by dynamic programming (O(n_seg n^2)).

    Returns (segment start indices, slope of each line per index step)."""
    n = len(y)
    t = np.arange(n, dtype=np.float64)

    def pref(v):
        return np.concatenate([[0.0], np.cumsum(v)])

    s1, st, stt, sy, sty, syy = pref(np.ones(n)), pref(t), pref(t * t), pref(y), pref(t * y), pref(y * y)
    lo = np.arange(n + 1)[:, None]
    hi = np.arange(n + 1)[None, :]
    ok = hi - lo >= min_len
    c = np.where(ok, s1[hi] - s1[lo], 1.0)
    ct, ctt = st[hi] - st[lo], stt[hi] - stt[lo]
    cy, cty, cyy = sy[hi] - sy[lo], sty[hi] - sty[lo], syy[hi] - syy[lo]
    vt = ctt - ct * ct / c
    cov = cty - ct * cy / c
    vy = cyy - cy * cy / c
    slope = np.where(vt > 1e-12, cov / np.maximum(vt, 1e-12), 0.0)
    cost = np.where(ok, np.maximum(vy - slope * cov, 0.0), np.inf)  # cost[i, j]: line on y[i:j]
    best = cost[0].copy()  # best[j]: 1 line on y[:j]
    back = []
    for _ in range(n_seg - 1):
        total = best[:, None] + cost  # split at i: (k lines on y[:i]) + line on y[i:j]
        arg = np.argmin(total, axis=0)
        best = total[arg, np.arange(n + 1)]
        back.append(arg)
    starts = [0] * n_seg
    j = n
    for k in range(n_seg - 1, 0, -1):
        j = int(back[k - 1][j])
        starts[k] = j
    ends = starts[1:] + [n]
    slopes = np.array([slope[a, b] for a, b in zip(starts, ends)])
    return starts, slopes


def _timing_envelope(x: np.ndarray, hop: int) -> np.ndarray:
    """Block envelope in dB for note timing: the mean, in dB, of the plain RMS and the
    RMS of the first difference of the signal.

    The plain RMS rests on the fundamental, so unison detune makes it beat by several
    dB; differencing tilts the spectrum by +6 dB/octave, so each harmonic beats at its
    own rate and the beats average out - but then filter movement (an LFO or envelope
    on the cutoff) moves the level instead. Their mean in dB halves both effects."""
    d = np.diff(x, axis=-1, prepend=x[:, :1])
    plain = _db(_smooth(_block_power(x, hop), 4))
    tilted = _db(_smooth(_block_power(d, hop), 4))
    return 0.5 * (plain + tilted)


def _hinge(e: np.ndarray, lo: int, hi: int, level: float) -> int:
    """Index r in (lo, hi) best splitting e[lo:hi] into 'constant `level`' then 'a
    straight fall starting from `level` at r' (least squares)."""
    y = e[lo:hi] - level
    n = len(y)
    if n < 4:
        return lo
    rs = np.arange(1, n - 1)
    flat = np.concatenate([[0.0], np.cumsum(y * y)])[rs]
    dt = np.arange(n)[None, :] - rs[:, None]
    dtp = np.maximum(dt, 0).astype(np.float64)
    den = (dtp * dtp).sum(axis=1)
    m = (y[None, :] * dtp).sum(axis=1) / np.maximum(den, 1e-12)
    fall = (((y[None, :] - m[:, None] * dtp) ** 2) * (dt >= 0)).sum(axis=1)
    return lo + int(rs[int(np.argmin(flat + fall))])


def _release_start(e: np.ndarray, hop_s: float) -> tuple[float, str]:
    """Seconds from the onset (block 0) to the start of the release, and the rule used.

    e: block envelope in dB (RMS over ~29 ms every 5.8 ms). Unison detune makes this
    envelope beat by several dB, so the structure is found on a 100 ms-smoothed copy:
    from the end of the attack (smoothed level within 1.5 dB of its maximum) to where
    the sound stays 40 dB below its peak, it is fitted by four straight lines in dB
    (segmented least squares): typically decay / sustain / release (x2).
    - "sustain": the last flat line (net change < 4 dB, |slope| < 15 dB/s, >= 30 ms,
      and at least a quarter of the time the fall after it takes to lose 20 dB)
      followed only by lines falling > 10 dB/s: the release start is then placed by a
      hinge fit (constant sustain level, then a straight fall) on the unsmoothed
      envelope around that breakpoint.
    - "held": the sound does not fall lastingly 20 dB below its peak within the
      analysed audio (key held throughout, or release cut off): the whole length.
    - "decay": no sustain plateau (plucks, percussive sounds, notes released while
      still in their attack or decay): the key is taken to be held until the sound has
      decayed 40 dB below its peak. A sustain-0 preset held that long renders the same
      decay; only the quiet tail below -40 dB is treated as release.
    """
    n = len(e)
    total = n * hop_s
    if n < 16:
        return total, "held"
    peak = float(e.max())
    i_peak = int(np.argmax(e))
    suffix_max = np.maximum.accumulate(e[::-1])[::-1]
    if not (suffix_max < peak - 20.0).any():
        return total, "held"
    es = _db(_smooth(10.0 ** (e / 10.0), max(1, round(0.1 / hop_s))))
    i_att = int(np.argmax(es >= es.max() - 1.5))
    gone = np.nonzero(suffix_max[i_att:] < peak - 40.0)[0]
    b = i_att + int(gone[0]) if len(gone) else n
    step = 2  # fit every second block (11.6 ms): enough resolution, a quarter of the work
    y = es[i_att:b:step]
    min_len = max(2, round(0.03 / (hop_s * step)))
    if len(y) >= 3 * min_len:
        n_seg = min(4, len(y) // min_len)
        starts, slopes = _segment_lines(y, n_seg, min_len)
        ends = starts[1:] + [len(y)]
        dur = np.diff(starts + [len(y)]) * hop_s * step
        slopes = slopes / (hop_s * step)  # dB/s
        for k in range(n_seg - 2, -1, -1):
            flat = abs(slopes[k]) < 15.0 and abs(slopes[k]) * dur[k] < 4.0
            falling = (slopes[k + 1 :] < -10.0).all() and (slopes[k + 1 :] * dur[k + 1 :]).sum() < -6.0
            p0 = i_att + starts[k] * step
            r0 = i_att + starts[k + 1] * step
            if flat and falling:
                # A short flat top before a long, slow fall is the start of a natural
                # decay (vibraphone, tines), not a held note: the plateau must last at
                # least a quarter of the time the fall takes to lose 20 dB.
                level = float(np.median(e[p0:r0])) if r0 > p0 else float(e[r0])
                fell = np.nonzero(suffix_max[r0:] < level - 20.0)[0]
                t20 = (int(fell[0]) if len(fell) else n - r0) * hop_s
                if (r0 - p0) * hop_s < 0.25 * t20:
                    continue
                lo = max(p0, r0 - round(0.2 / hop_s))
                hi = min(b, r0 + round(0.3 / hop_s), i_att + ends[k + 1] * step + 1)
                r = _hinge(e, lo, max(hi, lo + 4), level)
                return r * hop_s, "sustain"
    after = np.nonzero(e[i_peak:] < peak - 40.0)[0]
    if len(after) == 0:
        return total, "decay"
    return (i_peak + int(after[0])) * hop_s, "decay"


# --------------------------------------------------------------------------- analysis


def _check_sample_rate(sample_rate) -> int:
    try:
        sr_f = float(sample_rate)
    except (TypeError, ValueError, OverflowError):
        raise IntakeError(f"The sample rate {sample_rate!r} is not a number.") from None
    if not math.isfinite(sr_f) or not MIN_SAMPLE_RATE <= sr_f <= MAX_SAMPLE_RATE:
        raise IntakeError(
            f"The sample rate is {sample_rate} Hz; supported rates are 8 kHz to 192 kHz. "
            "Export the clip at 44.1 or 48 kHz."
        )
    return round(sr_f)


def _resample(x: np.ndarray, sr: int) -> np.ndarray:
    if sr == SAMPLE_RATE:
        return x
    import soxr

    y = soxr.resample(np.ascontiguousarray(x.T), sr, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(np.asarray(y, dtype=np.float64).T)


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
    sr = _check_sample_rate(sample_rate)
    a = _as_channels_first(audio)
    n = a.shape[1]
    if not np.isfinite(a).all():
        raise IntakeError(
            "The audio contains invalid samples (NaN or infinite values), so the file is probably damaged. "
            "Export the clip again (as 16- or 24-bit WAV if in doubt)."
        )
    if n < MIN_SECONDS * sr:
        raise IntakeError(
            f"The clip is only {n} sample{'s' if n != 1 else ''} long ({_human_seconds(n / sr)}); "
            f"a note needs at least {_human_seconds(MIN_SECONDS)}. Upload a longer clip of one note."
        )
    if n > limits.max_seconds * sr + 0.5:
        raise IntakeError(
            f"The clip is {_human_seconds(n / sr)} long; the limit is {_human_seconds(limits.max_seconds)}. "
            "Trim it to one note (a few seconds) and upload it again."
        )
    peak = float(np.max(np.abs(a)))
    if peak <= 10.0 ** (SILENCE_FLOOR_DB / 20.0):
        level = "-inf" if peak == 0 else f"{20 * math.log10(peak):.0f}"
        raise IntakeError(
            f"The clip is silent (peak level {level} dBFS). Check the recording level and upload a clip with a note in it."
        )
    a = a / peak  # scale first: no overflow below, whatever the input range
    # A constant (DC) offset is not sound: remove each channel's median (the offset of
    # a recording interface, or a clip that is only an offset). The median, not the
    # mean, so a note whose waveform carries DC does not leave an offset in the
    # silence around it. Subsampled to at most ~200k values per channel.
    a -= np.median(a[:, :: max(1, n // 200_000)], axis=1, keepdims=True)
    residual = float(np.max(np.abs(a)))
    if residual * peak <= 10.0 ** (SILENCE_FLOOR_DB / 20.0):
        raise IntakeError(
            "The clip is silent (it holds only a constant offset, no sound). "
            "Check the recording and upload a clip with a note in it."
        )
    level = 20.0 * math.log10(residual * peak)
    if level < QUIET_FLOOR_DB:
        rms = 10.0 * math.log10(max(float(np.mean(np.square(a[:, :: max(1, n // 200_000)]))), 1e-30)) + 20 * math.log10(peak)
        raise IntakeError(
            f"The clip is too quiet: its peak is {level:.0f} dBFS (RMS {rms:.0f} dBFS), the level of background noise; "
            f"a note to match needs a peak above {QUIET_FLOOR_DB:.0f} dBFS. Raise its level (normalise it) or record "
            "it louder, and upload it again."
        )
    st = _downmix_to_stereo(a)
    del a

    # Coarse pass at the file's rate: where the first note starts; crop before resampling.
    onset0, end0 = _find_onset_and_end(st, sr)
    margin = round(0.02 * sr)
    lo = max(0, onset0 - margin)
    hi = min(end0 + margin, st.shape[1], onset0 + math.ceil(limits.analysis_seconds * sr) + 2 * margin)
    y = _resample(st[:, lo:hi], sr)
    del st

    # Fine pass at 44.1 kHz.
    hop = 256
    hop_s = hop / SAMPLE_RATE
    onset, end = _find_onset_and_end(y, SAMPLE_RATE)
    stop = min(end, onset + round(limits.analysis_seconds * SAMPLE_RATE))
    e_raw = _db(_block_power(y[:, onset:stop], hop))
    split = _find_gap_split(e_raw, hop_s)
    if split is not None:
        stop = min(stop, onset + split * hop)
        e_raw = e_raw[:split]
        # trailing silence of the first note
        keep = np.nonzero(e_raw > e_raw.max() + TAIL_REL_DB)[0]
        stop = min(stop, onset + (int(keep[-1]) + 1) * hop)
    note = y[:, onset:stop]
    if note.shape[1] < int(0.01 * SAMPLE_RATE):
        raise IntakeError(
            f"The clip contains only a click ({_human_seconds(note.shape[1] / SAMPLE_RATE)} of sound). "
            "Upload a clip of a whole note."
        )
    render_seconds = note.shape[1] / SAMPLE_RATE
    e = _db(_smooth(_block_power(note, hop), 4))
    note_seconds, _rule = _release_start(_timing_envelope(note, hop), hop_s)
    note_seconds = float(min(max(note_seconds, hop_s), render_seconds))

    # Pitch on the steady part: after the first 30 ms, while the level is within 25 dB
    # of the peak, before the release, at most 1.5 s.
    p0 = min(int(0.03 * SAMPLE_RATE), note.shape[1] // 4)
    loud = np.nonzero(e >= e.max() - 25.0)[0]
    p1 = min(note.shape[1], (int(loud[-1]) + 1) * hop, int(max(note_seconds, 0.1) * SAMPLE_RATE) + 2048)
    p1 = min(p1, p0 + int(1.5 * SAMPLE_RATE))
    if p1 - p0 < 4096:
        p0, p1 = 0, min(note.shape[1], max(p1, 4096))
    steady = note[:, p0:p1].mean(axis=0)
    f0, confidence = detect_pitch(steady, SAMPLE_RATE)
    chord = detect_chord(steady, SAMPLE_RATE, f0)
    if chord:  # more than one note: matched at the lowest
        f0, confidence = chord[0], max(confidence, PITCHED_CONFIDENCE)
    elif f0 is not None and _is_drum_hit(note.mean(axis=0), e, hop_s, f0, confidence):
        f0 = None
    if f0 is None:
        midi, cents, pitched = 60, 0.0, False
    else:
        m = 69.0 + 12.0 * math.log2(f0 / 440.0)
        midi = int(np.clip(round(m), 0, 127))
        cents = float(np.clip((m - midi) * 100.0, -50.0, 50.0))
        pitched = True

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
        chord=tuple(_midi_of(f) for f in chord),
    )


def _onset_glide(x: np.ndarray, sr: int, f0: float) -> float:
    """Semitones by which the note's first ~2 periods (from the onset) lie above f0.

    One YIN frame (window one period of f0, lags a quarter to 1.2 periods): the deepest
    dip is the period at the onset. A steady note gives ~0; a kick or tom that drops into
    its pitch gives several semitones."""
    period = sr / f0
    w = max(int(period), int(0.01 * sr))
    tau_lo, tau_hi = max(2, int(period / 4)), int(1.2 * period) + 1
    n = w + tau_hi + 1
    if len(x) < n:
        return 0.0
    cm = _yin_cmndf(x[None, :n] - x[:n].mean(), w, tau_hi)[0]
    k = tau_lo + int(np.argmin(cm[tau_lo : tau_hi + 1]))
    if cm[k] > GLIDE_MAX_DIP:
        return 0.0  # no clear period at the onset (a click, a filter's transient): no evidence of a glide
    return 12.0 * math.log2(period / max(k, 1))


def _is_drum_hit(x: np.ndarray, e: np.ndarray, hop_s: float, f0: float, confidence: float) -> bool:
    """A percussive hit whose pitch is not held: unpitched although YIN found a period.

    Held = the level stays within 12 dB of its peak for DRUM_HELD_SECONDS (an 808 or a
    held synth note). A shorter sound is a drum when it drops into its pitch from more
    than DRUM_GLIDE_SEMITONES above (kicks, toms, a snare's body). Noise-like drums
    (snares, hats, claps) have no steady period and are unpitched by YIN already."""
    held = float(np.count_nonzero(e >= e.max() - 12.0)) * hop_s
    if held >= DRUM_HELD_SECONDS:
        return False
    return _onset_glide(x, SAMPLE_RATE, f0) > DRUM_GLIDE_SEMITONES


def _midi_of(f_hz: float) -> int:
    return int(np.clip(round(69.0 + 12.0 * math.log2(f_hz / 440.0)), 0, 127))


def analyze_file(path, limits: IntakeLimits = IntakeLimits()) -> Analysis:
    """`load_audio` then `analyze`; source_name is the file stem; repairs made while
    decoding are in `notices`."""
    audio, sr, notices = _load(path, limits)
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
