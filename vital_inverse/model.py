# SPDX-License-Identifier: GPL-3.0-or-later
"""The predictor network: an encoder (compact log-mel CNN trained here, or a
frozen pretrained AST) and heads over the ParamSpace.

Shapes: B batch, M mels, T frames, D embedding.

- ``CompactEncoder``: log-mel (B, M, T) -> (B, D). Residual 1-D
  convolutions over time with the mels as channels; the time axis is
  pooled to a few segments (not averaged away), so the envelope's time
  course survives.
- ``ASTEncoder``: audio (B, n) at 16 kHz -> (B, 768), a frozen
  ``MIT/ast-finetuned-audioset-10-10-0.4593`` with learned softmax weights
  over its 13 hidden states, pooled over time.
  Its per-layer pooled states can be cached once per dataset
  (``layer_states``) and the layer mix trained on the cache.
- ``ParamHeads``: (B, D) + MIDI note -> continuous parameters in [0, 1]
  (sigmoid), modulation route amounts (sigmoid over the normalised range),
  and one softmax per categorical.

Configuration is a dataclass saved beside the weights (``ModelConfig``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

AST_DEFAULT = "MIT/ast-finetuned-audioset-10-10-0.4593"
AST_SAMPLE_RATE = 16000


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network (saved as JSON beside the weights)."""

    encoder: str = "compact"  # "compact" | "ast"
    n_continuous: int = 0  # continuous/ordinal parameters that are not routes
    n_routes: int = 0
    categorical_sizes: list[int] = field(default_factory=list)
    n_mels: int = 64
    channels: list[int] = field(default_factory=lambda: [96, 128, 192])
    time_segments: int = 8
    embed_dim: int = 384
    hidden: int = 512
    dropout: float = 0.1
    note_dim: int = 16
    ast_name: str = AST_DEFAULT
    ast_layers: int = 13
    ast_dim: int = 768

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class ConvBlock(nn.Module):
    """Residual 1-D conv block over time (mels/features as channels), optional stride-2 downsampling."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.BatchNorm1d(cout)
        self.conv2 = nn.Conv1d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm1d(cout)
        self.skip = nn.Identity() if cin == cout and stride == 1 else nn.Conv1d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.norm1(self.conv1(x)))
        return F.gelu(self.norm2(self.conv2(h)) + self.skip(x))


class CompactEncoder(nn.Module):
    """Log-mel temporal CNN: (B, M, T) dB -> (B, embed_dim).

    Mels are channels and convolutions run over time (as in TC-ResNet),
    with a stride-2 stem: about 10 M multiply-adds per 1.5 s clip, against
    165 M for a 2-D CNN (too slow to train on a CPU). Absolute frequency
    matters here (a cutoff, a formant), so giving up translation
    invariance along frequency costs little. The time axis is pooled to
    ``time_segments`` averages plus global mean/max: the envelope's course
    survives.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c0 = cfg.channels[0]
        self.stem = nn.Sequential(nn.Conv1d(cfg.n_mels, c0, 5, stride=2, padding=2, bias=False), nn.BatchNorm1d(c0), nn.GELU())
        chans = list(cfg.channels)
        self.blocks = nn.Sequential(*[ConvBlock(a, b, 2) for a, b in zip(chans[:-1], chans[1:])])
        self.segments = cfg.time_segments
        self.proj = nn.Sequential(
            nn.Linear(chans[-1] * (cfg.time_segments + 2), cfg.embed_dim),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = (mel + 40.0) / 40.0  # dB in [-80, 0] -> about [-1, 1]
        x = self.blocks(self.stem(x))  # (B, C, T')
        course = F.adaptive_avg_pool1d(x, self.segments).flatten(1)  # the time course
        stats = torch.cat([x.mean(-1), x.amax(-1)], dim=1)
        return self.proj(torch.cat([course, stats], dim=1))


class LayerMix(nn.Module):
    """Learned softmax weights over transformer layers, then time pooling: (L, B, T, D) -> (B, D)."""

    def __init__(self, n_layers: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(n_layers))

    def forward(self, pooled_layers: torch.Tensor) -> torch.Tensor:
        """``pooled_layers``: (B, L, D) per-layer states already pooled over time."""
        w = torch.softmax(self.weights, dim=0)
        return torch.einsum("l,bld->bd", w, pooled_layers)


class ASTEncoder(nn.Module):
    """Frozen pretrained AST + learned layer weights: audio (B, n) at 16 kHz -> (B, 768)."""

    def __init__(self, cfg: ModelConfig, ast_source: str | None = None) -> None:
        super().__init__()
        from transformers import ASTFeatureExtractor, ASTModel

        source = ast_source or cfg.ast_name
        self.extractor = ASTFeatureExtractor.from_pretrained(source)
        self.ast = ASTModel.from_pretrained(source)
        self.ast.eval()
        for p in self.ast.parameters():
            p.requires_grad_(False)
        n_layers = self.ast.config.num_hidden_layers + 1
        cfg.ast_layers, cfg.ast_dim = n_layers, self.ast.config.hidden_size
        self.mix = LayerMix(n_layers)

    def train(self, mode: bool = True) -> ASTEncoder:
        super().train(mode)
        self.ast.eval()  # frozen: dropout stays off
        return self

    @torch.no_grad()
    def layer_states(self, audio: Sequence) -> torch.Tensor:
        """Per-layer hidden states pooled over time: (B, L, D). Cacheable per dataset."""
        feats = self.extractor([a for a in audio], sampling_rate=AST_SAMPLE_RATE, return_tensors="pt")
        out = self.ast(input_values=feats["input_values"], output_hidden_states=True)
        hidden = torch.stack(out.hidden_states, dim=1)  # (B, L, T, D)
        return hidden.mean(dim=2)

    def forward(self, audio: Sequence) -> torch.Tensor:
        return self.mix(self.layer_states(audio))


class ParamHeads(nn.Module):
    """Embedding + note -> (continuous in [0,1], route amounts in [0,1], categorical logits)."""

    def __init__(self, cfg: ModelConfig, in_dim: int) -> None:
        super().__init__()
        self.note = nn.Embedding(128, cfg.note_dim)
        self.trunk = nn.Sequential(
            nn.Linear(in_dim + cfg.note_dim, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(),
        )
        self.continuous = nn.Linear(cfg.hidden, cfg.n_continuous)
        self.routes = nn.Sequential(nn.Linear(cfg.hidden, 128), nn.GELU(), nn.Linear(128, cfg.n_routes))
        self.categorical = nn.Linear(cfg.hidden, sum(cfg.categorical_sizes))
        self.sizes = list(cfg.categorical_sizes)

    def forward(self, emb: torch.Tensor, note: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        h = self.trunk(torch.cat([emb, self.note(note.clamp(0, 127))], dim=1))
        logits = list(torch.split(self.categorical(h), self.sizes, dim=1))
        return torch.sigmoid(self.continuous(h)), torch.sigmoid(self.routes(h)), logits


class Predictor(nn.Module):
    """Encoder + heads. ``forward(x, note)`` where x is a log-mel batch (compact), raw 16 kHz
    audio (ast), or cached AST layer states (B, L, D) with ``cached=True``."""

    def __init__(self, cfg: ModelConfig, ast_source: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.encoder == "compact":
            self.encoder: nn.Module = CompactEncoder(cfg)
            dim = cfg.embed_dim
        elif cfg.encoder == "ast":
            self.encoder = ASTEncoder(cfg, ast_source)
            dim = cfg.ast_dim
        else:
            raise ValueError(f"unknown encoder {cfg.encoder!r}; use 'compact' or 'ast'")
        self.heads = ParamHeads(cfg, dim)

    def embed(self, x, cached: bool = False) -> torch.Tensor:
        if cached:
            return self.encoder.mix(x)
        return self.encoder(x)

    def forward(self, x, note: torch.Tensor, cached: bool = False):
        return self.heads(self.embed(x, cached), note)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights to save: everything but a frozen pretrained backbone (loaded from its own source)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.ast.")}
