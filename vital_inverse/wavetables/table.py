# SPDX-License-Identifier: GPL-3.0-or-later
"""One Vital wavetable (keyframes at wave-frame positions) and its preset JSON codec.

A table holds ``frames`` (n_keyframes, 2048) float32 in [-1, 1] at integer
positions 0..256; Vital interpolates the frames between them in the frequency
domain (``frame_at``), so a preset stores only a few keyframes (one costs about
11 kB of base64). ``to_vital``/``from_vital`` convert to and from the dict a
preset keeps in ``settings.wavetables[i]``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import UserError

FRAME_SIZE = 2048  # samples per Vital wave frame (Vital's WaveFrame::kWaveformSize)
MAX_POSITION = 256  # last wave-frame position; a Vital wavetable has at most 257 frames
MAX_FRAMES = MAX_POSITION + 1

_WAVE_SOURCE = "Wave Source"
_FREQUENCY_INTERPOLATION = 1  # Vital WaveSource::kFrequency (the Init table uses it)
_LINEAR_STYLE = 1  # Vital WavetableComponent::kLinear


class WavetableError(UserError):
    """A wavetable (or the audio a table is taken from) cannot be used; the message says why."""


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True, eq=False)
class Wavetable:
    """Keyframes of one Vital wavetable: ``frames[i]`` sits at wave-frame ``keyframe_positions()[i]``.

    ``frames``: (n_keyframes, 2048), 1..257 of them, stored as a read-only
    float32 copy with samples in [-1, 1]; ``positions``: strictly increasing
    integers in 0..256, or None for evenly spread keyframes.
    """

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
        return frequency_interpolate(self.frames[index], self.frames[index + 1], t)

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


# --------------------------------------------------------------------------- JSON codec


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


def frequency_interpolate(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Frame (2048,) float32 a fraction ``t`` (0..1) of the way from frame ``a`` to ``b``.

    Vital's WaveSourceKeyframe::linearFrequencyInterpolate: square-root
    magnitudes and phases move linearly, DC and Nyquist linearly.
    """
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


