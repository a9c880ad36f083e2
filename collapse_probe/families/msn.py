"""MSN (facebookresearch/msn): a top-level ``prototypes`` tensor [K, D], stored un-normalised,
shared by both networks; ``target_encoder`` (teacher) and, in training files, ``encoder``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import CheckpointError, option
from ..checkpoints.keys import clean_state, is_tensor
from ..checkpoints.keys import LastLayer, raw_layer
from .base import Family, HeadSpec, Selection

__all__ = ["FAMILY", "ENCODERS"]

#: network -> top-level key of its encoder.
ENCODERS = {"teacher": "target_encoder", "student": "encoder"}
_SHARED_NOTE = "MSN keeps one set of prototypes shared by the student and the target encoder."


def _detect(state: Mapping[str, Any]) -> bool:
    prototypes = state.get("prototypes")
    return is_tensor(prototypes) and prototypes.ndim == 2


def _select(state: Mapping[str, Any], network: str) -> Selection:
    prototypes = state.get("prototypes")
    if not is_tensor(prototypes):
        raise CheckpointError("this file has no top-level 'prototypes' tensor, so it is not an "
                              "MSN checkpoint.")
    return Selection(state={"prototypes": prototypes}, network=network, notes=(_SHARED_NOTE,))


def _heads(state: Mapping[str, Any]) -> tuple[LastLayer, ...]:
    return (raw_layer("prototypes", name="prototypes"),) if "prototypes" in state else ()


def _network_state(state: Mapping[str, Any], network: str) -> dict[str, Any]:
    encoder = state.get(ENCODERS[network])
    if not isinstance(encoder, Mapping):
        raise CheckpointError(
            f"this MSN checkpoint has no {ENCODERS[network]!r} ({network}); released files hold "
            f"only 'target_encoder': pass {option('network', 'teacher')}.")
    # The head is the encoder's ``fc`` projection plus the top-level prototypes, shared by both
    # networks: the network's state holds them, so its head can be rebuilt from it alone.
    prototypes = state.get("prototypes")
    return {**clean_state(encoder), **({"prototypes": prototypes} if is_tensor(prototypes) else {})}


def _head_spec(head: str, keys: Sequence[str]) -> HeadSpec:
    # the encoder's ``fc`` projection (fc1 [bn1] GELU fc2 [bn2] GELU fc3) and the top-level
    # prototypes; logits ``normalize(z) @ normalize(prototypes).T / temperature``
    return HeadSpec("msn", "prototypes", "fc", "prototypes", logits="cosine")


FAMILY = Family(
    name="msn",
    summary="top-level prototypes [K, D] (shared), target_encoder / encoder",
    detect=_detect,
    select=_select,
    heads=_heads,
    head_spec=_head_spec,
    objective="msn",
    main_head="prototypes",
    network_state=_network_state,
)
