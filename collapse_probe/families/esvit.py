"""EsViT (microsoft/esvit): heads are attributes of the backbone, so Swin/ViT/CvT keys have no
``backbone.`` prefix: ``head.last_layer`` (view level) and ``head_dense.last_layer`` (region level).
Its ResNet-50 variant keeps ``backbone.`` / ``head.`` / ``head_dense.``."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from .base import Family
from .common import dino_head_spec, extracted_network, has_layer, heads_at, loss_centers, teacher_student
from .dino import first_network

__all__ = ["FAMILY"]

HEADS = (("head", "head.last_layer"), ("head_dense", "head_dense.last_layer"))


def _detect(state: Mapping[str, Any]) -> bool:
    net = first_network(state)
    if net is None:
        return False
    if has_layer(net, "head_dense.last_layer"):
        return True
    if extracted_network(state) is not None:
        return False  # extraction strips ``backbone.``: the missing prefix proves nothing
    # A DINO MultiCropWrapper always nests the backbone under ``backbone.``.
    return has_layer(net, "head.last_layer") and not any(
        k.startswith("backbone.") for k in net) and any(not k.startswith("head.") for k in net)


FAMILY = Family(
    name="esvit",
    summary="top-level teacher/student, head.last_layer and head_dense.last_layer (no backbone. prefix)",
    detect=_detect,
    select=partial(teacher_student, family="esvit"),
    heads=partial(heads_at, named_prefixes=HEADS),
    head_spec=partial(dino_head_spec, family="esvit"),
    extras=partial(loss_centers, loss_key="dino_loss", names=("center", "center_grid")),
)
