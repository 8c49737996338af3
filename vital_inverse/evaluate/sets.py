# SPDX-License-Identifier: GPL-3.0-or-later
"""What an evaluation runs on: a set of items (generated presets, ``.vital`` files or audio clips) x notes.

``parse_set("presets:DIR")`` lists the items and says how each target is
rendered (note, velocity, held and total seconds); a synthetic set takes
these from its dataset, a preset set from the defaults below, a clip set
from the clip itself (intake decides the note and lengths).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..constants import RENDER_VELOCITY as VELOCITY
from ..errors import UserError

__all__ = [
    "AUDIO_SUFFIXES",
    "DEFAULT_NOTES",
    "PRESET_NOTE_SECONDS",
    "PRESET_RENDER_SECONDS",
    "SET_KINDS",
    "VELOCITY",
    "EvalSet",
    "EvaluateError",
    "Item",
    "parse_notes",
    "parse_set",
]

SET_KINDS = ("synthetic", "presets", "clips")
DEFAULT_NOTES = (48, 60, 72)
#: A preset set's targets: the key held this long (s) in a render this long (s).
PRESET_NOTE_SECONDS, PRESET_RENDER_SECONDS = 1.5, 2.0
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")


class EvaluateError(UserError):
    """The evaluation cannot start with these arguments; the message says what to change."""


@dataclass(frozen=True)
class Item:
    """One thing to match: a file (``.vital`` or audio) or a synthetic dataset's item index."""

    id: str
    path: str | None = None  # .vital or audio file
    index: int | None = None  # synthetic dataset item index


@dataclass(frozen=True)
class EvalSet:
    """What to evaluate on: items x notes and how the targets are rendered."""

    kind: str
    root: Path
    items: tuple[Item, ...]
    notes: tuple[int | None, ...]  # (None,) for clips: the clip's own note
    velocity: float = VELOCITY
    note_seconds: float = PRESET_NOTE_SECONDS
    render_seconds: float = PRESET_RENDER_SECONDS
    seed: int = 0  # synthetic: the dataset's sampling seed
    description: str = ""

    @property
    def has_truth(self) -> bool:
        return self.kind != "clips"

    def targets(self) -> list[tuple[Item, int | None]]:
        return [(item, note) for item in self.items for note in self.notes]


def _check_notes(notes: Iterable[int]) -> tuple[int, ...]:
    out = tuple(int(n) for n in notes)
    if not out or any(not 0 <= n <= 127 for n in out):
        raise EvaluateError(f"notes must be MIDI numbers 0-127, got {list(out)}")
    return out


def parse_notes(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """'48,60,72' -> (48, 60, 72); None stays None (the set's default)."""
    if text is None:
        return None
    if isinstance(text, str):
        try:
            notes = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise EvaluateError(f"--notes must be comma-separated MIDI numbers, got {text!r}") from None
        return _check_notes(notes)
    return _check_notes(text)


def _check_lengths(note_seconds: float | None, render_seconds: float | None) -> None:
    for name, v in (("--note-seconds", note_seconds), ("--render-seconds", render_seconds)):
        if v is not None and not 0 < v <= 30:
            raise EvaluateError(f"{name} must be in (0, 30] seconds, got {v}")


def _check_note_fits(note_seconds: float, render_seconds: float) -> None:
    if note_seconds > render_seconds:
        raise EvaluateError(f"the note ({note_seconds} s) must not be longer than the render ({render_seconds} s)")


def parse_set(spec: str, notes: Sequence[int] | str | None = None, limit: int | None = None,
              note_seconds: float | None = None, render_seconds: float | None = None) -> EvalSet:
    """``synthetic:DIR`` | ``presets:DIR`` | ``clips:DIR`` -> an EvalSet (items sorted, first ``limit``)."""
    kind, sep, where = str(spec).partition(":")
    if not sep or kind not in SET_KINDS or not where:
        raise EvaluateError(f"--set must be synthetic:DIR, presets:DIR or clips:DIR, got {spec!r}")
    root = Path(where).expanduser()
    if not root.is_dir():
        raise EvaluateError(f"--set {spec}: {root} is not a folder")
    if limit is not None and limit < 1:
        raise EvaluateError(f"--limit must be at least 1, got {limit}")
    parsed = parse_notes(notes)
    _check_lengths(note_seconds, render_seconds)
    if kind == "synthetic":
        return _synthetic_set(root, parsed, limit, note_seconds, render_seconds)
    if kind == "presets":
        return _preset_set(spec, root, parsed, limit, note_seconds, render_seconds)
    return _clip_set(spec, root, limit)


def _synthetic_set(root: Path, notes: tuple[int, ...] | None, limit: int | None,
                   note_seconds: float | None, render_seconds: float | None) -> EvalSet:
    """The test split of a generated dataset, rendered as the dataset was (unless lengths are given)."""
    from ..data import dataset as ds
    from ..params import default_space

    meta = ds.read_meta(root)
    data = ds.load(root, ("test",), space_hash=default_space().hash)
    index = [int(i) for i in data.index][:limit]
    ns, rs = note_seconds or meta.note_seconds, render_seconds or meta.render_seconds
    _check_note_fits(ns, rs)
    return EvalSet("synthetic", root, tuple(Item(str(i), index=i) for i in index), notes or tuple(meta.notes),
                   meta.velocity, ns, rs, meta.seed,
                   f"test split of {root} ({len(data.index)} presets, seed {meta.seed}), {len(index)} used")


def _preset_set(spec: str, root: Path, notes: tuple[int, ...] | None, limit: int | None,
                note_seconds: float | None, render_seconds: float | None) -> EvalSet:
    """Every ``*.vital`` in ``root`` (sorted by name) at ``notes`` (default 48, 60, 72)."""
    paths = sorted(p for p in root.glob("*.vital") if p.is_file())
    if not paths:
        raise EvaluateError(f"--set {spec}: no *.vital files in {root}")
    paths = paths[:limit]
    ns = note_seconds or PRESET_NOTE_SECONDS
    rs = render_seconds or max(PRESET_RENDER_SECONDS, ns)
    _check_note_fits(ns, rs)
    return EvalSet("presets", root, tuple(Item(p.stem, path=str(p)) for p in paths), notes or DEFAULT_NOTES,
                   VELOCITY, ns, rs, 0, f"{len(paths)} .vital presets in {root}")


def _clip_set(spec: str, root: Path, limit: int | None) -> EvalSet:
    """Every audio file in ``root``; each is analysed as a user's clip, so no notes or lengths are set here."""
    paths = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not paths:
        raise EvaluateError(f"--set {spec}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in {root}")
    paths = paths[:limit]
    return EvalSet("clips", root, tuple(Item(p.stem, path=str(p)) for p in paths), (None,),
                   description=f"{len(paths)} audio clips in {root} (note and lengths from intake)")
