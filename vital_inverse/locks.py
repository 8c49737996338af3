# SPDX-License-Identifier: GPL-3.0-or-later
"""Locked settings: what the musician keeps exactly as it is while refinement searches the rest.

A lock token is a module as ``ParamSpace.groups`` names it (``filter_1``,
``osc_2``, ``env_1``, ``reverb``, ``modulation``) or one parameter
(``osc_2_wavetable``, ``filter_1_cutoff``). ``expand_locks`` turns tokens
into the parameter names refinement must not touch
(``refine.RefineConfig.locked``); the CLI's ``--lock`` and the app's
check boxes both go through it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .errors import UserError
from .params import ParamSpace

__all__ = ["LockError", "expand_locks", "module_choices", "module_label", "setting_choices"]


class LockError(UserError):
    """A lock names no module or setting; the message lists what it could have meant."""


def _tokens(locks: Iterable[str] | str | None) -> list[str]:
    if locks is None:
        return []
    if isinstance(locks, str):
        locks = locks.split(",")
    return [t.strip() for t in locks if t and t.strip()]


def expand_locks(space: ParamSpace, locks: Iterable[str] | str | None) -> frozenset[str]:
    """Parameter names locked by ``locks`` (module or parameter names; a string is split at commas).

    Raises LockError naming an unknown token, with the closest names."""
    groups = space.groups()
    out: set[str] = set()
    for token in _tokens(locks):
        key = token.lower()
        if key in groups:
            out.update(p.name for p in groups[key])
        elif key in space:
            out.add(key)
        else:
            near = difflib.get_close_matches(key, list(groups) + space.names, n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(near)}?" if near else ""
            raise LockError(f"cannot lock {token!r}: it is neither a module ({', '.join(groups)}) nor a setting "
                            f"(`vital-inverse params` lists them).{hint}")
    return frozenset(out)


def module_label(space: ParamSpace, group: str) -> str:
    """A module's name as Vital shows it ("Filter 1", "Oscillator 2"): the words its settings share."""
    words = [p.display_name.split() for p in space.groups().get(group, [])]
    common: list[str] = []
    for column in zip(*words):
        if len(set(column)) != 1:
            break
        common.append(column[0])
    if len(words) > 1 and common and len(common) < min(len(w) for w in words):
        return " ".join(common)
    return group.replace("_", " ").capitalize()


def module_choices(space: ParamSpace) -> list[tuple[str, str]]:
    """(label, token) for every module, in table order: the app's "keep these modules" boxes."""
    return [(module_label(space, g), g) for g in space.groups()]


def setting_choices(space: ParamSpace) -> list[tuple[str, str]]:
    """(label, token) for every single setting, as Vital names it."""
    return [(p.display_name, p.name) for p in space.params]
