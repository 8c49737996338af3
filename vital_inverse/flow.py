# SPDX-License-Identifier: GPL-3.0-or-later
"""The generative head: conditional flow matching over the ParamSpace vector.

A regression head trained with MSE predicts the *average* of the presets
that could have made a sound, which is often none of them. This head
learns the whole conditional distribution p(preset | clip) instead, and
the predictor samples K presets from it; rendering all K and keeping the
closest turns that spread into a better start (Hayes et al. 2025 sample a
flow-matching model the same way).

Representation (``FlowCodec``), V = n_continuous + sum(option counts):
continuous/ordinal values (routes included) as ParamSpace normalises them,
mapped from [0, 1] to [-1, 1]; each categorical as its one-hot block mapped
to {-1, +1} (the relaxation of Hayes et al.), decoded by arg-max.

Model (``VelocityNet``): a residual MLP v(x_t, t | c) with the condition
c = ``condition``: the frozen predictor's encoder embedding of the clip
(B, D) and its regression heads' outputs for the detected note (a strong
centre the flow spreads around; the heads were trained on more presets than
a session can render for the flow), + the MIDI note; the condition is
replaced by a learned null vector for a fraction of training
examples so sampling can use classifier-free guidance. Trained with the
rectified-flow objective: x_t = (1 - t) x0 + t x1, x0 ~ N(0, I), target
velocity x1 - x0. Sampling integrates dx/dt = v from t = 0 to 1 with Heun
steps.

Weights live beside the predictor's: ``flow.safetensors`` + ``flow.json``
(the ``FlowConfig``, training record, and a fingerprint of the encoder the
embeddings came from: a flow is refused with another encoder).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .params import ParamSpace

FLOW_WEIGHTS = "flow.safetensors"
FLOW_CONFIG = "flow.json"


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` -> cuda when a GPU is present, else cpu; ``cpu``/``cuda`` as given (cuda without a GPU is an error)."""
    name = str(device or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from .errors import UserError

        raise UserError("--device cuda was asked for but torch sees no GPU here; use --device cpu (or auto)")
    if name not in ("cpu",) and not name.startswith("cuda"):
        from .errors import UserError

        raise UserError(f"unknown --device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


@dataclass
class FlowConfig:
    """Everything needed to rebuild the velocity network (saved as JSON beside the weights)."""

    n_continuous: int = 0
    categorical_sizes: list[int] = field(default_factory=list)
    cond_dim: int = 384 + 373  # encoder embedding + heads' outputs (see ``condition``)
    hidden: int = 384
    blocks: int = 4
    time_dim: int = 64
    note_dim: int = 32
    dropout: float = 0.1
    cond_dropout: float = 0.1  # fraction of training examples with the null condition (for guidance)
    steps: int = 12  # Heun steps at sampling (2 network calls each)
    guidance: float = 1.0  # classifier-free guidance weight at sampling (1 = plain conditional)
    temperature: float = 1.0  # scale of the starting noise at sampling (< 1: samples nearer the modes)
    one_hot_ordinals: bool = False  # FlowCodec layout: few-valued ordinals (transposes) as one-hot blocks
    space_hash: str = ""
    encoder_fingerprint: str = ""

    @property
    def dim(self) -> int:
        return self.n_continuous + sum(self.categorical_sizes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FlowConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


# --------------------------------------------------------------------------
# Vector codec
# --------------------------------------------------------------------------


class FlowCodec:
    """ParamSpace values <-> the flow's vector in [-1, 1]^V: continuous values first, then one one-hot block per
    categorical, then (``one_hot_ordinals``) one per ordinal the training prior draws from a few values only
    (transposes, unison voices): as a continuous value, a sample's small error there is a wrong interval
    (0.125 normalised = 12 semitones of transpose), as a block it is a choice among the values that exist."""

    def __init__(self, space: ParamSpace, one_hot_ordinals: bool = False) -> None:
        from .data.sampling import prior_supports

        self.space = space
        supports = prior_supports(space) if one_hot_ordinals else {}
        names = [p.name for p in space.continuous]
        self.ordinals = [(names.index(n), np.array([space[n].normalize(v) for v in sup])) for n, sup in supports.items()]
        skip = {i for i, _ in self.ordinals}
        self.plain = np.array([i for i in range(len(names)) if i not in skip], np.int64)
        self.n_continuous = len(self.plain)
        self.sizes = [p.size for p in space.categorical] + [len(sup) for _, sup in self.ordinals]
        self.offsets = np.cumsum([self.n_continuous, *self.sizes])[:-1]

    @classmethod
    def for_net(cls, net: VelocityNet, space: ParamSpace) -> FlowCodec:
        """The codec a trained flow's vectors are in."""
        return cls(space, net.cfg.one_hot_ordinals)

    @property
    def dim(self) -> int:
        return self.n_continuous + sum(self.sizes)

    def encode_arrays(self, continuous: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """(P, all continuous) normalised [0, 1] + (P, n_categorical) option indices -> (P, V) float32."""
        continuous = np.asarray(continuous, np.float32)
        categorical = np.asarray(categorical, np.int64)
        choice = np.concatenate([categorical] + [np.abs(continuous[:, [i]] - sup[None, :]).argmin(1)[:, None]
                                                 for i, sup in self.ordinals], axis=1)
        out = -np.ones((len(continuous), self.dim), np.float32)
        out[:, : self.n_continuous] = 2.0 * np.clip(continuous[:, self.plain], 0.0, 1.0) - 1.0
        rows = np.arange(len(continuous))
        for j, off in enumerate(self.offsets):
            out[rows, off + choice[:, j]] = 1.0
        return out

    def encode_values(self, values: list[dict[str, float]]) -> np.ndarray:
        """P raw value dicts (presets) -> (P, V) float32 flow vectors."""
        cont = np.stack([self.space.continuous_vector(v) for v in values])
        cat = np.stack([self.space.categorical_indices(v) for v in values])
        return self.encode_arrays(cont, cat)

    def split(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """(P, V) -> (every continuous value in [0, 1] (P, n), one block (P, size) per categorical).

        Ordinal blocks are decoded here by arg-max into their continuous values."""
        x = np.asarray(x, np.float64)
        blocks = [x[:, off:off + n] for off, n in zip(self.offsets, self.sizes)]
        n_cat = len(self.space.categorical)
        cont = np.zeros((len(x), len(self.space.continuous)))
        cont[:, self.plain] = np.clip((x[:, : self.n_continuous] + 1.0) / 2.0, 0.0, 1.0)
        for (i, sup), b in zip(self.ordinals, blocks[n_cat:]):
            cont[:, i] = sup[b.argmax(1)]
        return cont, blocks[:n_cat]

    def decode(self, x: np.ndarray) -> list[dict[str, float]]:
        """(P, V) -> P raw value dicts: continuous clipped, categoricals by arg-max, ordinals snapped
        to the values the training prior draws (as the regression heads' outputs are)."""
        from .predict import snap_to_prior_support

        cont, blocks = self.split(x)
        choice = np.stack([b.argmax(1) for b in blocks], 1) if blocks else np.zeros((len(cont), 0), np.int64)
        out = []
        for c, k in zip(cont, choice):
            values = self.space.with_continuous({}, c)
            for p, i in zip(self.space.categorical, k):
                values[p.name] = p.option_values[int(i)]
            values = snap_to_prior_support(self.space, {n: values[n] for n in self.space.names})
            out.append(self.space.canonical(values))
        return out

    def option_probabilities(self, x: np.ndarray, smoothing: float = 0.5) -> list[np.ndarray]:
        """Per categorical, how often each option wins the arg-max among the samples (P, V), add-``smoothing``
        normalised: the model's belief over options for this clip (used to rank categorical moves)."""
        _, blocks = self.split(x)
        out = []
        for b in blocks:
            counts = np.bincount(b.argmax(1), minlength=b.shape[1]).astype(np.float64) + smoothing
            out.append(counts / counts.sum())
        return out


# --------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1]: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    arg = 1000.0 * t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class ResBlock(nn.Module):
    """Pre-norm residual MLP block with FiLM from the condition: (B, H), (B, H) -> (B, H)."""

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.film = nn.Linear(hidden, 2 * hidden)
        self.ff = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * hidden, hidden))
        nn.init.zeros_(self.ff[-1].weight)
        nn.init.zeros_(self.ff[-1].bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(c).chunk(2, dim=1)
        return h + self.ff(self.norm(h) * (1 + scale) + shift)


class VelocityNet(nn.Module):
    """v(x_t, t | embedding, note): (B, V), (B,), (B, D), (B,) MIDI -> (B, V)."""

    def __init__(self, cfg: FlowConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.null = nn.Parameter(torch.zeros(cfg.cond_dim))
        self.note = nn.Sequential(nn.Linear(1, cfg.note_dim), nn.GELU())
        self.cond = nn.Sequential(nn.Linear(cfg.cond_dim + cfg.note_dim + cfg.time_dim, cfg.hidden), nn.GELU(),
                                  nn.Linear(cfg.hidden, cfg.hidden), nn.GELU())
        self.inp = nn.Linear(cfg.dim, cfg.hidden)
        self.blocks = nn.ModuleList([ResBlock(cfg.hidden, cfg.dropout) for _ in range(cfg.blocks)])
        self.out = nn.Sequential(nn.LayerNorm(cfg.hidden), nn.Linear(cfg.hidden, cfg.dim))

    def condition(self, emb: torch.Tensor | None, note: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The (B, H) condition; ``emb=None`` uses the null embedding (unconditional)."""
        if emb is None:
            emb = self.null.expand(len(note), -1)
        n = self.note(((note.float() - 60.0) / 24.0)[:, None])
        return self.cond(torch.cat([emb, n, time_embedding(t, self.cfg.time_dim)], dim=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, emb: torch.Tensor | None, note: torch.Tensor) -> torch.Tensor:
        c = self.condition(emb, note, t)
        h = self.inp(x)
        for b in self.blocks:
            h = b(h, c)
        return self.out(h)


@torch.no_grad()
def condition(model: nn.Module, x: torch.Tensor, note: torch.Tensor) -> torch.Tensor:
    """The flow's condition from the frozen predictor: encoder embedding (B, D) ++ heads' continuous (B, n_plain),
    route amounts (B, n_routes) and softmax per categorical (B, sum sizes) for MIDI ``note`` (B,)."""
    emb = model.embed(x)
    plain, routes, logits = model.heads(emb, note)
    return torch.cat([emb, plain, routes, *[torch.softmax(l, 1) for l in logits]], dim=1)


def flow_loss(net: VelocityNet, x1: torch.Tensor, emb: torch.Tensor, note: torch.Tensor,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Rectified-flow loss for a batch: mean squared error of the velocity, (B, V) targets in [-1, 1]."""
    b = len(x1)
    x0 = torch.randn(x1.shape, generator=generator, device=x1.device)
    t = torch.rand(b, generator=generator, device=x1.device)
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    if net.training and net.cfg.cond_dropout > 0:
        drop = torch.rand(b, generator=generator, device=x1.device) < net.cfg.cond_dropout
        emb = torch.where(drop[:, None], net.null.expand(b, -1), emb)
    return ((net(xt, t, emb, note) - (x1 - x0)) ** 2).mean()


@torch.no_grad()
def sample(net: VelocityNet, emb: torch.Tensor, note: int | torch.Tensor, k: int, steps: int | None = None,
           guidance: float | None = None, seed: int | None = 0, temperature: float | None = None,
           start: torch.Tensor | None = None, t0: float | torch.Tensor = 0.0) -> torch.Tensor:
    """K samples (K, V) for one clip's condition (C,) or (1, C): Heun integration of dx/dt = v from noise.

    With ``start`` (K, V) (e.g. the flow vectors of retrieved training presets), each sample instead
    begins on the straight path at time ``t0`` (scalar or (K,)): x = (1 - t0) noise + t0 start, and the
    flow carries it to t = 1 under the clip's condition (SDEdit, Meng et al. 2022): ``t0`` near 1 keeps
    the start, near 0 forgets it.
    """
    net.eval()
    threads = torch.get_num_threads()
    if device_of(net).type == "cpu":
        torch.set_num_threads(1)  # a (K, H) MLP gains nothing from threads, and OpenMP spins when cores are shared
    try:
        return _sample(net, emb, note, k, steps, guidance, seed, temperature, start, t0)
    finally:
        torch.set_num_threads(threads)


def device_of(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


def _sample(net, emb, note, k, steps, guidance, seed, temperature, start, t0) -> torch.Tensor:
    device = next(net.parameters()).device
    steps = int(steps or net.cfg.steps)
    w = float(net.cfg.guidance if guidance is None else guidance)
    gen = torch.Generator(device="cpu")
    if seed is not None:
        gen.manual_seed(int(seed))
    tau = float(net.cfg.temperature if temperature is None else temperature)
    x = (tau * torch.randn((k, net.cfg.dim), generator=gen)).to(device)
    t = torch.zeros(k, device=device)
    if start is not None:
        t = torch.as_tensor(t0, dtype=torch.float32).expand(k).clone().clamp(0.0, 1.0).to(device)
        x = (1 - t[:, None]) * x + t[:, None] * start.to(device=device, dtype=torch.float32)
    e = emb.reshape(1, -1).to(device=device, dtype=torch.float32).expand(k, -1)
    n = torch.full((k,), int(note), device=device)

    def v(x: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        out = net(x, tt, e, n)
        if w != 1.0:
            free = net(x, tt, None, n)
            out = free + w * (out - free)
        return out

    dt = (1.0 - t) / steps  # (K,): every sample takes the same number of steps to t = 1
    for i in range(steps):
        d1 = v(x, t)
        if i == steps - 1:
            x = x + dt[:, None] * d1
        else:
            d2 = v(x + dt[:, None] * d1, t + dt)
            x = x + dt[:, None] * 0.5 * (d1 + d2)
        t = t + dt
    return x.cpu()


# --------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------


def encoder_fingerprint(model: nn.Module) -> str:
    """A short hash of the predictor's encoder weights: the embeddings a flow was trained on come from it."""
    h = hashlib.sha256()
    for k, v in sorted(model.encoder.state_dict().items()):
        if k.startswith("ast."):
            continue
        h.update(k.encode())
        h.update(v.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


def save_flow(folder: str | Path, net: VelocityNet, record: dict | None = None) -> Path:
    """Write ``flow.safetensors`` (float16: half the size, same samples to ~1e-3) and ``flow.json`` (config +
    training record) into a checkpoint folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (FLOW_WEIGHTS + ".tmp")
    save_file({k: v.detach().contiguous().cpu().half() for k, v in net.state_dict().items()}, str(tmp))
    tmp.replace(folder / FLOW_WEIGHTS)
    (folder / FLOW_CONFIG).write_text(json.dumps({"config": net.cfg.to_dict(), "training": record or {}}, indent=2))
    return folder / FLOW_WEIGHTS


def load_flow(folder: str | Path, space_hash: str, fingerprint: str, device: str | torch.device = "auto") -> VelocityNet | None:
    """The flow saved in a checkpoint folder (None when it has none); refused, with what to do, when it was
    trained for another ParamSpace or on another encoder's embeddings."""
    from safetensors.torch import load_file

    from .checkpoint import CheckpointError

    folder = Path(folder)
    if not (folder / FLOW_WEIGHTS).exists() or not (folder / FLOW_CONFIG).exists():
        return None
    try:
        cfg = FlowConfig.from_dict(json.loads((folder / FLOW_CONFIG).read_text())["config"])
        weights = {k: v.float() for k, v in load_file(str(folder / FLOW_WEIGHTS)).items()}
    except Exception as e:
        raise CheckpointError(f"{folder / FLOW_WEIGHTS} is unreadable ({e}); retrain it with `vital-inverse train-flow`") from None
    if cfg.space_hash != space_hash or cfg.encoder_fingerprint != fingerprint:
        what = "ParamSpace" if cfg.space_hash != space_hash else "encoder"
        raise CheckpointError(f"the generative head in {folder} was trained for another {what}; retrain it with "
                              f"`vital-inverse train-flow --checkpoint {folder}` or delete {FLOW_WEIGHTS}")
    net = VelocityNet(cfg)
    try:
        net.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{folder / FLOW_WEIGHTS} does not match its config ({str(e).splitlines()[0]}); "
                              "retrain it with `vital-inverse train-flow`") from None
    return net.to(resolve_device(device)).eval()
