"""lightly ``DINOProjectionHead``: ``<attr>.last_layer`` where ``<attr>`` is the user's own
attribute name (``student_head``, ``teacher_head``, ``projection_head``, ...): every such head is
found. When the names say ``teacher`` / ``student``, the network picks among them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import CheckpointError, option
from ..checkpoints.keys import LastLayer, find_last_layer
from .base import Family, HeadSpec, Selection
from .common import lightning_prefix, lightning_state

__all__ = ["FAMILY", "head_attrs"]

_LAST_LAYER = re.compile(
    r"^(.+)\.last_layer\.(weight_g|weight_v|parametrizations\.weight\.original[01]|weight)$")
_ROLES = ("teacher", "student")


def head_attrs(state: Mapping[str, Any]) -> list[str]:
    """Distinct ``<attr>`` paths with a ``<attr>.last_layer`` in any storage form, in key order."""
    attrs: dict[str, None] = {}
    for key in state:
        match = _LAST_LAYER.match(key)
        if match and find_last_layer(state, f"{match.group(1)}.last_layer", name="") is not None:
            attrs.setdefault(match.group(1))
    return list(attrs)


def _role(attr: str) -> str:
    return next((role for role in _ROLES if role in attr.lower()), "")


def _detect(state: Mapping[str, Any]) -> bool:
    return bool(head_attrs(lightning_state(state)))


def _select(state: Mapping[str, Any], network: str) -> Selection:
    flat = lightning_state(state)
    attrs = head_attrs(flat)
    prefix = lightning_prefix(state)
    if not any(_role(a) for a in attrs):
        return Selection(state=flat, network="", key_prefix=prefix)
    chosen = [a for a in attrs if _role(a) == network]
    if not chosen:
        raise CheckpointError(f"no {network} head among {', '.join(attrs)}: pass "
                              f"{option('network', _role(attrs[0]) or 'teacher')} or "
                              f"{option('key', '<attr>.last_layer')}.")
    # Keep every key of that role (``teacher_backbone.*`` too), so the network state is whole.
    return Selection(state={k: v for k, v in flat.items() if _role(k) == network}, network=network,
                     key_prefix=prefix)


def _heads(state: Mapping[str, Any]) -> tuple[LastLayer, ...]:
    found = (find_last_layer(state, f"{attr}.last_layer", name=attr) for attr in head_attrs(state))
    return tuple(layer for layer in found if layer is not None)


def _head_spec(head: str, keys: Sequence[str]) -> HeadSpec:
    # ``DINOProjectionHead``: ``<attr>.layers`` (Linear [BatchNorm1d] GELU ... Linear, bias-free
    # Linear layers before a BatchNorm) and ``<attr>.last_layer``.
    return HeadSpec("lightly", head, f"{head}.layers", f"{head}.last_layer")


def _find_main_head(keys: Sequence[str]) -> str | None:
    # the attribute name is the user's own: the first ``<attr>.last_layer`` among the keys
    return next((key.split(".last_layer.")[0] for key in keys if ".last_layer." in key), None)


FAMILY = Family(
    name="lightly",
    summary="<attr>.last_layer.weight_g/_v for any attribute name, optionally under state_dict",
    detect=_detect,
    select=_select,
    heads=_heads,
    head_spec=_head_spec,
    main_head="student_head",
    find_main_head=_find_main_head,
)
