"""SwAV (facebookresearch/swav): plain ``prototypes.weight`` (``module.`` in released files), or
``prototypes.prototypes<i>.weight`` for multiple prototype sets; bare or under ``state_dict``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..checkpoints.keys import LastLayer, find_last_layer
from .base import Family, HeadSpec, Selection
from .common import lightning_prefix, lightning_state

__all__ = ["FAMILY"]

_MULTI = re.compile(r"^prototypes\.(prototypes\d+)\.weight$")


def _heads(state: Mapping[str, Any]) -> tuple[LastLayer, ...]:
    single = find_last_layer(state, "prototypes", name="prototypes")
    if single is not None:
        return (single,)
    names = sorted((m.group(1) for k in state if (m := _MULTI.match(k))),
                   key=lambda n: int(n.removeprefix("prototypes")))
    return tuple(LastLayer(name=n, form="plain", keys=(f"prototypes.{n}.weight",)) for n in names)


def _detect(state: Mapping[str, Any]) -> bool:
    return bool(_heads(lightning_state(state)))


def _select(state: Mapping[str, Any], network: str) -> Selection:
    return Selection(state=lightning_state(state), network="", key_prefix=lightning_prefix(state))


def _head_spec(head: str, keys: Sequence[str]) -> HeadSpec:
    # ``projection_head`` (Linear BatchNorm1d ReLU Linear, or one Linear), L2 normalisation, then
    # the plain ``prototypes`` Linear, or MultiPrototypes' ``prototypes.prototypes<i>``
    last = head if head == "prototypes" else f"prototypes.{head}"
    return HeadSpec("swav", head, "projection_head", last, activation="relu")


FAMILY = Family(
    name="swav",
    summary="prototypes.weight (plain linear, module. prefix), optionally under state_dict",
    detect=_detect,
    select=_select,
    heads=_heads,
    head_spec=_head_spec,
    objective="swav",
    main_head="prototypes",
)
