# SPDX-License-Identifier: GPL-3.0-or-later
"""The synthetic dataset on disk: self-describing, sharded, written atomically.

Layout of a dataset folder::

    dataset.json            what it is: ParamSpace hash, seed, notes, render
                            and feature settings, shard size, item count
    shards/shard-00012.npz  items [12*S, 13*S): accepted ones with their
                            parameters and log-mels (+ optional audio),
                            rejected ones with the reason

A shard is written to a temporary name and renamed, so a killed run leaves
either a whole shard or none; a run resumes by generating the shards that
are missing. Splits are by preset (a hash of the item index), never by
render, so the notes of one preset never straddle train and test.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..constants import RENDER_VELOCITY, SAMPLE_RATE
from ..errors import UserError
from ..features import FeatureConfig

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.9, 0.05, 0.05)
AUDIO_RATE = 16000  # optional stored audio: mono 16 kHz int16 (what AST consumes)


class DatasetError(UserError):
    """A dataset folder cannot be created, resumed or read; the message says what to do."""


@dataclass(frozen=True)
class DatasetMeta:
    """Everything needed to interpret (and extend) a dataset."""

    space_hash: str
    seed: int
    n: int  # presets attempted
    shard_size: int
    notes: tuple[int, ...] = (48, 60, 72)
    velocity: float = RENDER_VELOCITY
    note_seconds: float = 1.5
    render_seconds: float = 2.0
    sample_rate: int = SAMPLE_RATE
    features: dict = field(default_factory=lambda: FeatureConfig().to_dict())
    store_audio: bool = False
    format_version: int = FORMAT_VERSION

    @property
    def n_shards(self) -> int:
        return -(-self.n // self.shard_size)

    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig.from_dict(self.features)

    def shard_range(self, shard: int) -> range:
        return range(shard * self.shard_size, min(self.n, (shard + 1) * self.shard_size))

    def to_json(self) -> str:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str) -> DatasetMeta:
        d = json.loads(text)
        d["notes"] = tuple(d["notes"])
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def split_of(seed: int, index: int) -> str:
    """Deterministic split of a preset, from a hash of (seed, index)."""
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest(), "little")
    u = h / 2**64
    edges = np.cumsum(SPLIT_FRACTIONS)
    return SPLITS[int(np.searchsorted(edges, u, side="right"))]


def shard_path(root: Path, shard: int) -> Path:
    return root / "shards" / f"shard-{shard:05d}.npz"


def read_meta(root: str | Path) -> DatasetMeta:
    root = Path(root)
    path = root / "dataset.json"
    if not path.exists():
        raise DatasetError(f"{root} is not a dataset (no dataset.json); create one with `vital-inverse generate --out {root}`")
    try:
        return DatasetMeta.from_json(path.read_text())
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{path} is unreadable ({e}); remove the folder and generate again") from None


def prepare(root: Path, meta: DatasetMeta) -> DatasetMeta:
    """Create the folder or check that an existing one is the same run (then generation resumes)."""
    if root.exists() and not root.is_dir():
        raise DatasetError(f"--out {root} is a file; give a folder path")
    if root.exists() and (root / "dataset.json").exists():
        old = read_meta(root)
        if old.space_hash != meta.space_hash:
            raise DatasetError(
                f"{root} holds a dataset for ParamSpace {old.space_hash}, but this code's ParamSpace is "
                f"{meta.space_hash}; use a new --out folder (or delete this one)"
            )
        diffs = [k for k in ("seed", "shard_size", "notes", "velocity", "note_seconds", "render_seconds", "features", "store_audio")
                 if getattr(old, k) != getattr(meta, k)]
        if diffs:
            raise DatasetError(f"{root} was generated with other settings ({', '.join(diffs)}); use a new --out folder to change them")
        if meta.n > old.n:  # growing a dataset keeps every existing item
            write_meta(root, meta)
            return meta
        return old
    if root.exists() and any(p.name != "shards" for p in root.iterdir()):
        raise DatasetError(f"--out {root} exists and is not empty; give a new folder")
    try:
        (root / "shards").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"cannot create {root}: {e.strerror or e}") from None
    write_meta(root, meta)
    return meta


def write_meta(root: Path, meta: DatasetMeta) -> None:
    atomic_write_bytes(root / "dataset.json", meta.to_json().encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _disk_error(path, e) from None


def _disk_error(path: Path, e: OSError) -> DatasetError:
    if e.errno == 28:  # ENOSPC
        free = shutil.disk_usage(path.parent).free if path.parent.exists() else 0
        return DatasetError(
            f"the disk is full while writing {path.name} ({free / 1e6:.1f} MB free); free some space and run the "
            "same command again: generation resumes at the missing shards"
        )
    return DatasetError(f"cannot write {path}: {e.strerror or e}")


def write_shard(root: Path, shard: int, arrays: dict[str, np.ndarray]) -> None:
    """Write one shard atomically (temp file, fsync, rename)."""
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(shard_path(root, shard), buf.getvalue())


def done_shards(root: Path, meta: DatasetMeta) -> set[int]:
    """Shards already complete (readable, every item of their range); others are removed to be generated again.

    A dataset grown with a larger ``--n`` makes its old last shard short of
    its new range: it is generated again, whole.
    """
    done = set()
    for s in range(meta.n_shards):
        p = shard_path(root, s)
        if not p.exists():
            continue
        try:
            with np.load(p) as z:
                if "index" in z.files and "rejected_index" in z.files:
                    covered = {int(i) for i in z["index"]} | {int(i) for i in z["rejected_index"]}
                    if covered == set(meta.shard_range(s)):
                        done.add(s)
                        continue
        except Exception:
            pass
        p.unlink(missing_ok=True)
    return done


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


@dataclass
class LoadedData:
    """All accepted items of some splits, in memory (float16 log-mels)."""

    meta: DatasetMeta
    index: np.ndarray  # (P,) preset item index
    continuous: np.ndarray  # (P, n_continuous) float32 normalised
    categorical: np.ndarray  # (P, n_categorical) int64 option index
    mel: np.ndarray  # (P, n_notes, n_mels, T) float16
    audio: np.ndarray | None = None  # (P, n_notes, samples) int16 at AUDIO_RATE

    @property
    def n_presets(self) -> int:
        return len(self.index)

    @property
    def notes(self) -> tuple[int, ...]:
        return self.meta.notes


def load(root: str | Path, splits: tuple[str, ...] = ("train",), space_hash: str | None = None, limit: int | None = None) -> LoadedData:
    """Load the accepted presets of the given splits into memory."""
    root = Path(root)
    meta = read_meta(root)
    if space_hash is not None and meta.space_hash != space_hash:
        raise DatasetError(
            f"{root} was generated for ParamSpace {meta.space_hash}, this code uses {space_hash}; generate a new dataset"
        )
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("index", "continuous", "categorical", "mel", "audio")}
    n = 0
    for s in sorted(done_shards(root, meta)):
        with np.load(shard_path(root, s)) as z:
            keep = np.array([split_of(meta.seed, int(i)) in splits for i in z["index"]], dtype=bool)
            for k in parts:
                if k in z.files:
                    parts[k].append(z[k][keep])
            n += int(keep.sum())
        if limit is not None and n >= limit:
            break
    if not parts["index"] or n == 0:
        raise DatasetError(f"{root} has no accepted items in split(s) {', '.join(splits)} yet")
    cat = lambda k: np.concatenate(parts[k])[:limit] if parts[k] else None
    return LoadedData(meta, cat("index"), cat("continuous").astype(np.float32), cat("categorical").astype(np.int64),
                      cat("mel"), cat("audio"))


def shard_stats(root: str | Path) -> dict:
    """Accepted/rejected counts per reason and render time over complete shards."""
    root = Path(root)
    meta = read_meta(root)
    stats = {"attempted": 0, "accepted": 0, "rejected": {}, "render_seconds": 0.0, "shards": 0, "splits": dict.fromkeys(SPLITS, 0)}
    for s in sorted(done_shards(root, meta)):
        with np.load(shard_path(root, s)) as z:
            stats["shards"] += 1
            stats["accepted"] += len(z["index"])
            stats["attempted"] += len(z["index"]) + len(z["rejected_index"])
            for r in z["rejected_reason"]:
                stats["rejected"][str(r)] = stats["rejected"].get(str(r), 0) + 1
            stats["render_seconds"] += float(z["render_time"])
            for i in z["index"]:
                stats["splits"][split_of(meta.seed, int(i))] += 1
    return stats
