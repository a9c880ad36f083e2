"""iBOT (bytedance/ibot): DINO's layout plus the patch head ``head.last_layer2`` and ``ibot_loss``.

With a shared head (the default for the teacher and the release recipes) ``last_layer2`` is the
same tensor as ``last_layer``: it is reported once, with ``shared_with``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from .base import Family, HeadSpec
from .common import dino_head_spec, has_layer, heads_at, loss_centers, teacher_student
from .dino import first_network

__all__ = ["FAMILY"]

HEADS = (("head", "head.last_layer"), ("head_patch", "head.last_layer2"))


def _head_spec(head: str, keys: Sequence[str]) -> HeadSpec:
    # The patch head's last layer shares the [CLS] head's MLP.
    if head in ("head_patch", "head.last_layer2"):
        return HeadSpec("ibot", "head_patch", "head.mlp", "head.last_layer2")
    return dino_head_spec(head, keys, family="ibot")


def _detect(state: Mapping[str, Any]) -> bool:
    net = first_network(state)
    if net is None or not has_layer(net, "head.last_layer"):
        return False
    return has_layer(net, "head.last_layer2") or isinstance(state.get("ibot_loss"), Mapping)


FAMILY = Family(
    name="ibot",
    summary="top-level teacher/student, head.last_layer ([CLS]) and head.last_layer2 (patch)",
    detect=_detect,
    select=partial(teacher_student, family="ibot"),
    heads=partial(heads_at, named_prefixes=HEADS),
    head_spec=_head_spec,
    twin_layers=(("head.last_layer", "head.last_layer2"),),
    extras=partial(loss_centers, loss_key="ibot_loss"),
)
