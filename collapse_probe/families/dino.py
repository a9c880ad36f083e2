"""DINO (facebookresearch/dino): ``{student, teacher, dino_loss, args, ...}``, head ``head.last_layer``."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from .base import Family
from .common import (
    dino_head_spec,
    extracted_network,
    has_layer,
    heads_at,
    loss_centers,
    network_dict,
    teacher_student,
)

__all__ = ["FAMILY", "first_network"]

HEADS = (("head", "head.last_layer"),)


def first_network(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The teacher's (else the student's, else an extracted file's) cleaned state, for detection."""
    return (network_dict(state, "teacher") or network_dict(state, "student")
            or extracted_network(state))


def _detect(state: Mapping[str, Any]) -> bool:
    net = first_network(state)
    return net is not None and has_layer(net, "head.last_layer")


FAMILY = Family(
    name="dino",
    summary="top-level teacher/student, backbone.* + head.last_layer (weight norm or plain)",
    detect=_detect,
    select=partial(teacher_student, family="dino"),
    heads=partial(heads_at, named_prefixes=HEADS),
    head_spec=partial(dino_head_spec, family="dino"),
    extras=partial(loss_centers, loss_key="dino_loss", names=("center",)),
)
