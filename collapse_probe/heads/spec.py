"""Where each format keeps a head's MLP and last layer, and how the head computes its logits.

Facts from each method's public training code:

* DINO, iBOT, EsViT, DINOv2, DINOv3, solo-learn: ``<head>.mlp`` is one ``nn.Linear`` (1-layer
  head) or an ``nn.Sequential`` of Linear [BatchNorm1d] GELU ... Linear; logits are
  ``<head>.last_layer(normalize(mlp(x)))``. iBOT's patch head ``head.last_layer2`` shares the MLP.
  DINO ResNet-50: ``head.mlp.0`` Linear, ``head.mlp.1`` BatchNorm1d, GELU, ``head.mlp.3`` Linear.
* lightly ``DINOProjectionHead``: ``<attr>.layers`` (Linear [BatchNorm1d] GELU ... Linear, with
  bias-free Linear layers before a BatchNorm) and ``<attr>.last_layer``.
* MSN: the ``fc`` projection of the encoder (``fc.fc1`` [``fc.bn1``] GELU ``fc.fc2`` [``fc.bn2``]
  GELU ``fc.fc3``) and a top-level ``prototypes`` tensor; logits are
  ``normalize(z) @ normalize(prototypes).T / temperature``.
* SwAV: ``projection_head`` (Linear BatchNorm1d ReLU Linear, or one Linear) then L2
  normalisation and the plain ``prototypes`` Linear (``prototypes.prototypes<i>`` for
  several sets of prototypes).

Layer shapes always come from the tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HeadSpec", "head_spec", "default_head", "LOGITS_STYLES"]

#: ``linear``: last_layer(normalize(z)); ``cosine``: normalize(z) @ normalize(P).T / temperature.
LOGITS_STYLES: tuple[str, ...] = ("linear", "cosine")

_DINO_LIKE = ("dino", "ibot", "esvit", "dinov2", "dinov3", "solo-learn")
_DEFAULT_HEAD = {"dino": "head", "ibot": "head", "esvit": "head", "dinov2": "dino_head",
                 "dinov3": "dino_head", "solo-learn": "head", "msn": "prototypes",
                 "swav": "prototypes"}


@dataclass(frozen=True)
class HeadSpec:
    """Where one head lives in a flat network state.

    Attributes:
        format: the checkpoint format.
        name: the head's name (as in the checkpoint reader's reports).
        mlp_prefix: key prefix of the MLP (``head.mlp``); "" when the head has no MLP.
        last_prefix: key prefix of the last layer (``head.last_layer``), or the key of a raw
            prototype tensor (MSN ``prototypes``).
        activation: ``gelu`` or ``relu``, between the MLP's blocks.
        logits: one of :data:`LOGITS_STYLES`.
    """

    format: str
    name: str
    mlp_prefix: str
    last_prefix: str
    activation: str = "gelu"
    logits: str = "linear"


def default_head(format: str, keys: object = ()) -> str:  # noqa: A002 - the public name
    """The head read when none is named: the [CLS]/view-level head of each format.

    For lightly (whose head attribute is the user's own name) the first ``<attr>.last_layer``
    among ``keys``.
    """
    if format == "lightly":
        for key in keys:  # type: ignore[attr-defined]
            if ".last_layer." in key:
                return key.split(".last_layer.")[0]
        return "student_head"
    return _DEFAULT_HEAD.get(format, "head")


def head_spec(format: str, head: str, keys: object = ()) -> HeadSpec:  # noqa: A002
    """The :class:`HeadSpec` of ``head`` in a ``format`` network state with these ``keys``."""
    from ..validation import fail

    if format in _DINO_LIKE:
        if format == "ibot" and head in ("head_patch", "head.last_layer2"):
            return HeadSpec(format, "head_patch", "head.mlp", "head.last_layer2")
        if format == "solo-learn" and head == "momentum_head":
            # the reader's network_state already renames momentum_head.* to head.*
            has_own = any(str(k).startswith("momentum_head.") for k in keys)  # type: ignore[attr-defined]
            prefix = "momentum_head" if has_own else "head"
            return HeadSpec(format, head, f"{prefix}.mlp", f"{prefix}.last_layer")
        return HeadSpec(format, head, f"{head}.mlp", f"{head}.last_layer")
    if format == "lightly":
        return HeadSpec(format, head, f"{head}.layers", f"{head}.last_layer")
    if format == "msn":
        return HeadSpec(format, "prototypes", "fc", "prototypes", logits="cosine")
    if format == "swav":
        # one ``prototypes`` Linear, or MultiPrototypes: ``prototypes.prototypes<i>``
        last = head if head == "prototypes" else f"prototypes.{head}"
        return HeadSpec(format, head, "projection_head", last, activation="relu")
    raise fail("format", expected="a format with a prototype head (" + ", ".join(
        [*_DINO_LIKE, "lightly", "msn", "swav"]) + ")", got=repr(format),
        hint="Raw arrays and key mode have no head MLP to rebuild.")
