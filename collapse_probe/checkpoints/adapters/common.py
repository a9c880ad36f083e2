"""Pieces several adapters share: teacher/student top levels, Lightning state dicts, loss centers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...errors import CheckpointError
from ..keys import clean_state, is_tensor
from ..layers import LastLayer, find_last_layer
from .base import Selection

__all__ = ["teacher_student", "network_dict", "lightning_state", "loss_centers", "heads_at",
           "has_layer"]


def network_dict(state: Mapping[str, Any], network: str) -> dict[str, Any] | None:
    """``state[network]`` as a cleaned flat state dict, or None when absent."""
    value = state.get(network)
    if not isinstance(value, Mapping):
        return None
    return clean_state(value)


def teacher_student(state: Mapping[str, Any], network: str, *, format: str) -> Selection:  # noqa: A002
    """Select top-level ``teacher`` / ``student`` (DINO, iBOT, EsViT, DINOv2)."""
    selected = network_dict(state, network)
    if selected is None:
        present = [n for n in ("teacher", "student") if isinstance(state.get(n), Mapping)]
        if not present:
            raise CheckpointError(f"this file has no top-level 'teacher' or 'student' network, so "
                                  f"it is not a {format} checkpoint.")
        raise CheckpointError(f"this {format} checkpoint has no {network!r} network (it holds "
                              f"only {present[0]}): pass --network {present[0]}.")
    return Selection(state=selected, network=network, key_prefix=f"{network}.")


def has_layer(state: Mapping[str, Any], prefix: str) -> bool:
    return find_last_layer(state, prefix, name=prefix) is not None


def heads_at(state: Mapping[str, Any], named_prefixes: tuple[tuple[str, str], ...]) -> tuple[LastLayer, ...]:
    """The layers found among ``(name, prefix)`` pairs, in that order."""
    found = (find_last_layer(state, prefix, name=name) for name, prefix in named_prefixes)
    return tuple(layer for layer in found if layer is not None)


def lightning_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """A Lightning checkpoint's ``state_dict`` (or a bare state dict), cleaned."""
    inner = state.get("state_dict")
    return clean_state(inner if isinstance(inner, Mapping) else state)


def loss_centers(state: Mapping[str, Any], loss_key: str,
                 names: tuple[str, ...] = ("center", "center2")) -> dict[str, np.ndarray]:
    """Running teacher-output means kept by a loss module (``dino_loss.center`` [1, K]), flattened to (K,)."""
    loss = state.get(loss_key)
    if not isinstance(loss, Mapping):
        return {}
    return {name: loss[name].detach().float().numpy().reshape(-1)
            for name in names if is_tensor(loss.get(name))}
