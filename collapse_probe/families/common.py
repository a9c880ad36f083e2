"""Pieces several families share: teacher/student top levels, Lightning state dicts, loss
centers, and the head layout of DINO-style heads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..checkpoints.keys import clean_state, is_tensor
from ..checkpoints.keys import LastLayer, find_last_layer
from ..errors import CheckpointError, option
from .base import HeadSpec, Selection

__all__ = ["teacher_student", "extracted_network", "network_dict", "lightning_state",
           "lightning_prefix", "loss_centers", "heads_at", "has_layer", "dino_head_spec"]


def network_dict(state: Mapping[str, Any], network: str) -> dict[str, Any] | None:
    """``state[network]`` as a cleaned flat state dict, or None when absent."""
    value = state.get(network)
    if not isinstance(value, Mapping):
        return None
    return clean_state(value)


_EXTRACTED_NOTE = ("an extracted checkpoint (one network under 'state_dict'): which network it "
                   "was taken from is not recorded")


def extracted_network(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The one network of an extracted file (iBOT's ``extract_backbone_weights.py
    --with_head``: ``{"state_dict": {<backbone keys>, head.*}}``), when it holds a head."""
    # The script writes exactly one top-level key; Lightning checkpoints (solo-learn, lightly)
    # hold more next to their ``state_dict``.
    inner = state.get("state_dict")
    if list(state) != ["state_dict"] or not isinstance(inner, Mapping):
        return None
    flat = clean_state(inner)
    if any(key.startswith("momentum_") for key in flat):
        return None
    return flat if has_layer(flat, "head.last_layer") else None


def teacher_student(state: Mapping[str, Any], network: str, *, family: str) -> Selection:
    """Select top-level ``teacher`` / ``student`` (DINO, iBOT, EsViT, DINOv2), or the one
    network of an extracted ``{"state_dict": ...}`` file."""
    selected = network_dict(state, network)
    if selected is None and (extracted := extracted_network(state)) is not None:
        return Selection(state=extracted, network="", key_prefix="state_dict.",
                         notes=(_EXTRACTED_NOTE,))
    if selected is None:
        present = [n for n in ("teacher", "student") if isinstance(state.get(n), Mapping)]
        if not present:
            raise CheckpointError(f"this file has no top-level 'teacher' or 'student' network, so "
                                  f"it is not a {family} checkpoint.")
        raise CheckpointError(f"this {family} checkpoint has no {network!r} network (it holds "
                              f"only {present[0]}): pass {option('network', present[0])}.")
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


def lightning_prefix(state: Mapping[str, Any]) -> str:
    """``"state_dict."`` when :func:`lightning_state` reads a nested ``state_dict``, else ``""``."""
    return "state_dict." if isinstance(state.get("state_dict"), Mapping) else ""


def loss_centers(state: Mapping[str, Any], loss_key: str,
                 names: tuple[str, ...] = ("center", "center2")) -> dict[str, np.ndarray]:
    """Running teacher-output means kept by a loss module (``dino_loss.center`` [1, K]), flattened to (K,)."""
    loss = state.get(loss_key)
    if not isinstance(loss, Mapping):
        return {}
    return {name: loss[name].detach().float().numpy().reshape(-1)
            for name in names if is_tensor(loss.get(name))}


def dino_head_spec(head: str, keys: Sequence[str], *, family: str) -> HeadSpec:
    """A DINO-style head: ``<head>.mlp`` (one Linear, or Linear [BatchNorm1d] GELU ... Linear)
    and ``<head>.last_layer``; logits ``last_layer(normalize(mlp(x)))`` (DINO, iBOT, EsViT,
    DINOv2, DINOv3, solo-learn; DINO ResNet-50's ``head.mlp.1`` is a BatchNorm1d)."""
    return HeadSpec(family, head, f"{head}.mlp", f"{head}.last_layer")
