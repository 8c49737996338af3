# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading a clip: bytes or a path -> float32 (channels, n) at the file's own rate, or one clear error.

soundfile (libsndfile, which reads MP3 too) decides the format from the content, never the
extension; content that is not audio is named for what it looks like (`_sniff`). Size and
duration are checked before samples are decoded. Damage (NaN/inf, samples far over full
scale, silence, a level too low to match) is refused with an `IntakeError`; a WAV whose size
fields are wrong is read as far as it goes and a notice says so. `prepare` does the same
checks on an array and returns it as stereo, peak-scaled, DC removed.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import SAMPLE_RATE
from ..errors import UserError

log = logging.getLogger(__name__)

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000
#: A clip whose peak is below this is "silent" (-90 dBFS, i.e. ~1 LSB of 16 bit).
SILENCE_FLOOR_DB = -90.0
#: A clip whose peak (DC offset removed) is below this is "too quiet": at -70 dBFS a
#: 16-bit file has ~10 levels left, i.e. background noise, not a note to match.
QUIET_FLOOR_DB = -70.0
#: A decoded file whose samples reach this far above full scale (+60 dBFS) is damaged
#: (garbage floats, or a float header on other data); float renders go a few dB over.
DAMAGED_PEAK_DB = 60.0
#: Shortest clip accepted (before trimming).
MIN_SECONDS = 0.02

_FORMATS_OK = {"WAV", "WAVEX", "RF64", "W64", "AIFF", "CAF", "FLAC", "OGG", "MP3", "AU"}
_UPLOAD_HINT = "Upload a WAV, FLAC, OGG or MP3 of one note."


class IntakeError(UserError):
    """The clip cannot be used; the message says what is wrong and what to do.

    A `UserError` (so a `ValueError`): the CLI prints it, the app shows it."""


@dataclass(frozen=True)
class IntakeLimits:
    """Upload limits (refused with a message naming the limit) and the analysis window."""

    max_bytes: int = 50 * 1024 * 1024
    max_seconds: float = 60.0  # longer uploads are refused with a clear message
    analysis_seconds: float = 4.0  # analysis uses the first note, up to this long


def _human_bytes(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} kB"
    return f"{n} bytes"


def human_seconds(s: float) -> str:
    """'1 min 5 s', '2.5 s', '12.0 ms': a duration as a message shows it."""
    if s >= 60:
        m, sec = divmod(round(s), 60)
        return f"{m} min {sec} s"
    if s >= 1:
        return f"{s:.1f} s"
    return f"{s * 1000:.1f} ms"


#: First bytes of containers soundfile reads (WAV, MP3 and AIFF need more than a prefix: see `_sniff`).
_AUDIO_MAGIC = (
    (b"riff\x2e\x91\xcf\x11", "a Wave64 file"),
    (b"caff", "a CAF file"),
    (b".snd", "an AU file"),
    (b"fLaC", "a FLAC file"),
    (b"OggS", "an OGG file"),
)
#: First bytes of files that are not audio we read: (prefix(es), description, kind).
_OTHER_MAGIC = (
    (b"\x1aE\xdf\xa3", "a WebM/Matroska file", "unsupported"),
    (b"\x89PNG", "a PNG image", "other"),
    (b"\xff\xd8\xff", "a JPEG image", "other"),
    ((b"GIF87a", b"GIF89a"), "a GIF image", "other"),
    (b"%PDF", "a PDF document", "other"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)", "other"),
)


def _sniff(head: bytes) -> tuple[str, str] | None:
    """What a file looks like from its first bytes: (description, kind) with kind
    "audio" (a supported container), "unsupported" (audio we do not read) or "other"."""
    if head.startswith((b"RIFF", b"RF64", b"BW64")) and head[8:12] == b"WAVE":
        return "a WAV file", "audio"
    for magic, desc in _AUDIO_MAGIC:
        if head.startswith(magic):
            return desc, "audio"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "an MP3 file", "audio"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "an AIFF file", "audio"
    if head[4:8] == b"ftyp":
        return "an MP4/M4A/AAC file", "unsupported"
    for magic, desc, kind in _OTHER_MAGIC:
        if head.startswith(magic):
            return desc, kind
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
    audio, sr, _ = load_with_notices(path_or_file, limits)
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


def load_with_notices(path_or_file, limits: IntakeLimits) -> tuple[np.ndarray, int, tuple[str, ...]]:
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
                    f"The clip is {human_seconds(frames / sr)} long; the limit is {human_seconds(limits.max_seconds)}. "
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
            f"The clip is longer than the {human_seconds(limits.max_seconds)} limit. "
            "Trim it to one note (a few seconds) and upload it again."
        )
    if data.shape[0] == 0:
        raise IntakeError(f"'{name}' contains no audio samples (0 s long). {_UPLOAD_HINT}")
    if data.shape[0] < MIN_SECONDS * sr:
        n = data.shape[0]
        raise IntakeError(
            f"'{name}' is only {n} sample{'s' if n != 1 else ''} long ({human_seconds(n / sr)}); "
            f"a note needs at least {human_seconds(MIN_SECONDS)}. Upload a longer clip of one note."
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


def downmix_to_stereo(a: np.ndarray) -> np.ndarray:
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


def _check_sample_rate(sample_rate) -> int:
    """A sample rate argument as an int in 8-192 kHz, or an IntakeError."""
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


def resample(x: np.ndarray, sr: int) -> np.ndarray:
    """(channels, n) at `sr` -> float64 (channels, m) at 44.1 kHz (soxr "HQ"); unchanged at 44.1 kHz."""
    if sr == SAMPLE_RATE:
        return x
    import soxr

    y = soxr.resample(np.ascontiguousarray(x.T), sr, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(np.asarray(y, dtype=np.float64).T)


def prepare(audio, sample_rate, limits: IntakeLimits = IntakeLimits()) -> tuple[np.ndarray, int, float]:
    """Check a clip's samples and lay them out for analysis.

    audio: (channels, n) or (n,) numbers at `sample_rate` (8-192 kHz). Returns (float64 (2, n)
    divided by the clip's peak with each channel's DC offset removed, the rate as an int, the
    peak). Raises IntakeError for a bad rate, NaN/inf, a clip too short or too long, silence,
    or a level too low to match.
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
            f"The clip is only {n} sample{'s' if n != 1 else ''} long ({human_seconds(n / sr)}); "
            f"a note needs at least {human_seconds(MIN_SECONDS)}. Upload a longer clip of one note."
        )
    if n > limits.max_seconds * sr + 0.5:
        raise IntakeError(
            f"The clip is {human_seconds(n / sr)} long; the limit is {human_seconds(limits.max_seconds)}. "
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
    return downmix_to_stereo(a), sr, peak
