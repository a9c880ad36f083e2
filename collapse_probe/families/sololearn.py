"""solo-learn DINO: a Lightning ``state_dict`` with ``head.last_layer`` (student) and
``momentum_head.last_layer`` (teacher), backbones ``backbone.*`` / ``momentum_backbone.*``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from ..errors import CheckpointError
from .base import Family, HeadSpec, Selection
from .common import dino_head_spec, has_layer, heads_at, lightning_prefix, lightning_state

__all__ = ["FAMILY"]

_MOMENTUM = "momentum_"
HEADS = (("head", "head.last_layer"),)


def _detect(state: Mapping[str, Any]) -> bool:
    return has_layer(lightning_state(state), "momentum_head.last_layer")


def _part(state: Mapping[str, Any], network: str) -> dict[str, Any]:
    flat = lightning_state(state)
    teacher = network == "teacher"
    part = {k: v for k, v in flat.items() if k.startswith(_MOMENTUM) == teacher}
    if not part:
        raise CheckpointError(f"this solo-learn checkpoint holds no {network} weights.")
    return part


def _network_state(state: Mapping[str, Any], network: str) -> dict[str, Any]:
    # The teacher's keys lose their ``momentum_`` so both networks read ``backbone.*`` / ``head.*``.
    return {k.removeprefix(_MOMENTUM): v for k, v in _part(state, network).items()}


def _select(state: Mapping[str, Any], network: str) -> Selection:
    # Reports name the real keys: ``momentum_`` + ``head.last_layer...`` for the teacher.
    momentum = _MOMENTUM if network == "teacher" else ""
    return Selection(state=_network_state(state, network), network=network,
                     key_prefix=f"{lightning_prefix(state)}{momentum}")


def _head_spec(head: str, keys: Sequence[str]) -> HeadSpec:
    if head == "momentum_head":
        # network states from ``network_state`` already read momentum_head.* as head.*
        prefix = "momentum_head" if any(str(k).startswith("momentum_head.") for k in keys) else "head"
        return HeadSpec("solo-learn", head, f"{prefix}.mlp", f"{prefix}.last_layer")
    return dino_head_spec(head, keys, family="solo-learn")


FAMILY = Family(
    name="solo-learn",
    summary="Lightning state_dict: momentum_head.last_layer (teacher), head.last_layer (student)",
    detect=_detect,
    select=_select,
    heads=partial(heads_at, named_prefixes=HEADS),
    head_spec=_head_spec,
    network_state=_network_state,
)
