# SPDX-License-Identifier: GPL-3.0-or-later
"""Checkpoints: a folder with safetensors weights, a JSON config and a model card.

``config.json`` holds the model configuration, the ParamSpace hash, the
feature settings, the training data description and the measured scores.
A checkpoint loads from a local folder or a Hugging Face Hub repo id; when
the Hub cannot be reached the local cache is used. A checkpoint made for a
different ParamSpace is refused with a message that says what to do.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
DEFAULT_DIR = Path(__file__).resolve().parents[1] / "checkpoints" / "default"
#: Optional parts that travel with a checkpoint: the retrieval index and the generative head (flow.py).
EXTRA_FILES = ("retrieval.safetensors", "flow.safetensors", "flow.json")
FILES = [WEIGHTS, CONFIG, CARD, *EXTRA_FILES]


class CheckpointError(UserError):
    """A checkpoint cannot be found, read or used with this code."""


@dataclass
class CheckpointInfo:
    """What ``config.json`` says about a checkpoint."""

    model: dict
    space_hash: str
    features: dict
    data: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    hub_repo: str | None = None

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)

    @classmethod
    def from_json(cls, text: str) -> CheckpointInfo:
        d = json.loads(text)
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def default_source() -> str:
    """The checkpoint the app and CLI use: $VITAL_INVERSE_CHECKPOINT or the shipped one."""
    return os.environ.get("VITAL_INVERSE_CHECKPOINT") or str(DEFAULT_DIR)


def save(folder: str | Path, weights: dict, info: CheckpointInfo, card: str) -> Path:
    """Write weights, config and model card (weights last-renamed so a crash leaves no half file)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (WEIGHTS + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp))
    tmp.replace(folder / WEIGHTS)
    (folder / CONFIG).write_text(info.to_json())
    (folder / CARD).write_text(card)
    return folder


def resolve(source: str | Path | None = None) -> Path:
    """A local folder for ``source``: a path, or a Hub repo id downloaded (or found in the cache)."""
    source = str(source or default_source())
    path = Path(source).expanduser()
    if path.exists():
        if not (path / CONFIG).exists() or not (path / WEIGHTS).exists():
            raise CheckpointError(f"{path} is not a checkpoint folder (needs {CONFIG} and {WEIGHTS})")
        return path
    if source.count("/") != 1 or source.startswith((".", "/")):
        raise CheckpointError(f"no checkpoint at {source}: give a checkpoint folder or a Hub repo id like user/name")
    return _from_hub(source)


def _from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=FILES))
    except Exception as online_error:  # offline, unknown repo, auth: try what is already here
        try:
            return Path(snapshot_download(repo_id, allow_patterns=FILES, local_files_only=True))
        except Exception:
            pass
        shipped = DEFAULT_DIR / CONFIG
        if shipped.exists() and CheckpointInfo.from_json(shipped.read_text()).hub_repo == repo_id:
            return DEFAULT_DIR
        raise CheckpointError(
            f"cannot download {repo_id} from the Hugging Face Hub ({type(online_error).__name__}) and there is "
            "no local copy; check the repo id and your connection, or pass a local checkpoint folder"
        ) from None


def read_info(folder: Path, space_hash: str) -> CheckpointInfo:
    try:
        info = CheckpointInfo.from_json((folder / CONFIG).read_text())
    except (OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"{folder / CONFIG} is unreadable: {e}") from None
    if info.space_hash != space_hash:
        raise CheckpointError(
            f"checkpoint {folder} was trained for ParamSpace {info.space_hash}, but this code's ParamSpace is "
            f"{space_hash}: train a new one with `vital-inverse train` (or use the checkpoint shipped with this version)"
        )
    return info


def load_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    try:
        return load_file(str(folder / WEIGHTS))
    except Exception as e:
        raise CheckpointError(f"{folder / WEIGHTS} is unreadable: {e}") from None


def publish(folder: str | Path, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Push a checkpoint folder to the Hub (token from HF_TOKEN when not given); returns the repo URL."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not (folder / CONFIG).exists() or not (folder / WEIGHTS).exists():
        raise CheckpointError(f"{folder} is not a checkpoint folder (needs {CONFIG} and {WEIGHTS})")
    if repo_id.count("/") != 1:
        raise CheckpointError(f"--repo must look like USER/NAME, got {repo_id!r}")
    info = CheckpointInfo.from_json((folder / CONFIG).read_text())
    if info.hub_repo != repo_id:
        info.hub_repo = repo_id
        (folder / CONFIG).write_text(info.to_json())
    api = HfApi(token=token or os.environ.get("HF_TOKEN"))
    try:
        url = api.create_repo(repo_id, exist_ok=True, private=private, repo_type="model")
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, allow_patterns=FILES,
                          commit_message="Upload Vital Inverse checkpoint")
    except Exception as e:
        raise CheckpointError(f"publishing to {repo_id} failed: {type(e).__name__}: {e}") from None
    return str(url)
