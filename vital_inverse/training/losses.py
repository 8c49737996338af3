# SPDX-License-Identifier: GPL-3.0-or-later
"""Training targets, masks and the loss.

Loss = importance-weighted MSE on continuous parameters + MSE on route
amounts + mean cross-entropy over categoricals, where a parameter of a
switched-off module (or a route into one) contributes nothing: its value
cannot be heard, so it cannot be learned from the audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..params import ParamSpace
from ..predict import split_continuous


@dataclass
class Targets:
    """Per-preset targets and masks, aligned with the model's heads."""

    plain: np.ndarray  # (P, n_plain) float32 in [0, 1]
    routes: np.ndarray  # (P, n_routes) float32 in [0, 1]
    categorical: np.ndarray  # (P, n_cat) int64
    plain_mask: np.ndarray  # (P, n_plain) float32
    route_mask: np.ndarray  # (P, n_routes) float32
    cat_mask: np.ndarray  # (P, n_cat) float32


def values_of(space: ParamSpace, continuous: np.ndarray, categorical: np.ndarray) -> dict[str, float]:
    """Raw values from a stored (normalised continuous, categorical index) pair."""
    values = space.with_continuous({}, continuous)
    for p, c in zip(space.categorical, categorical):
        values[p.name] = p.option_values[int(c)]
    return values


def make_targets(space: ParamSpace, continuous: np.ndarray, categorical: np.ndarray) -> Targets:
    plain, routes = split_continuous(space)
    cont_index = {p.name: i for i, p in enumerate(space.continuous)}
    pi = [cont_index[p.name] for p in plain]
    ri = [cont_index[p.name] for p in routes]
    pm = np.zeros((len(continuous), len(plain)), np.float32)
    rm = np.zeros((len(continuous), len(routes)), np.float32)
    cm = np.zeros((len(continuous), len(space.categorical)), np.float32)
    for n, (c, k) in enumerate(zip(continuous, categorical)):
        values = values_of(space, c, k)
        audible = space.audible(values)
        pm[n] = [p.name in audible for p in plain]
        rm[n] = [p.name in audible for p in routes]
        cm[n] = [p.name in audible for p in space.categorical]
    return Targets(continuous[:, pi].astype(np.float32), continuous[:, ri].astype(np.float32),
                   categorical.astype(np.int64), pm, rm, cm)


def loss_fn(outputs, batch: dict[str, torch.Tensor], weights: torch.Tensor, ce_weight: float = 0.5):
    """(total, parts) for a batch; outputs = (plain, routes, logits list)."""
    plain, routes, logits = outputs
    pm, rm, cm = batch["plain_mask"], batch["route_mask"], batch["cat_mask"]
    se = (plain - batch["plain"]) ** 2 * weights * pm
    mse = se.sum() / (pm * weights).sum().clamp_min(1e-6)
    rse = (routes - batch["routes"]) ** 2 * rm
    route = rse.sum() / rm.sum().clamp_min(1.0)
    ces = torch.stack([F.cross_entropy(l, batch["categorical"][:, i], reduction="none") for i, l in enumerate(logits)], 1)
    ce = (ces * cm).sum() / cm.sum().clamp_min(1.0)
    total = mse + route + ce_weight * ce
    return total, {"mse": mse.item(), "route": route.item(), "ce": ce.item()}


def categorical_accuracy(logits, categorical: torch.Tensor, mask: torch.Tensor) -> float:
    correct = torch.stack([(l.argmax(1) == categorical[:, i]).float() for i, l in enumerate(logits)], 1)
    return float((correct * mask).sum() / mask.sum().clamp_min(1.0))
