"""Reading prototypes from a checkpoint file: sniff it, load it safely, detect its family, read
its heads; raw arrays (``.npy``, ``.npz`` with one array or one picked by key, ``.pt`` tensors);
and, when no layout matches, why (a backbone-only release, the tensors that came closest).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import families
from ..errors import CheckpointError, InputError, NoPrototypesError, option
from ..options import ReadOptions
from ..types import PrototypeSet
from .keys import (
    flatten,
    is_tensor,
    largest_matrices,
    normalise_keys,
    raw_layer,
    read_layers,
    resolve_key,
    strip_all_wrappers,
)
from .loading import Loaded, read_object, unsafe_message
from .model import NETWORKS, Checkpoint, CheckpointInfo, HeadInfo

__all__ = [
    "read_checkpoint", "load_prototypes", "inspect_checkpoint", "network_state", "summaries",
    "is_array_like", "read_array", "no_prototypes", "BACKBONE_MARKERS",
]


log = logging.getLogger(__name__)


def read_checkpoint(path: Path | str, read: ReadOptions | None = None) -> Checkpoint:
    """Read every prototype head of a checkpoint.

    Args:
        path: a checkpoint (``.pth``, ``.pth.tar``, ``.ckpt``, ``.pt``) or a raw ``.npy`` /
            ``.npz`` array file.
        read: format, network, key and trust (:class:`~collapse_probe.options.ReadOptions`;
            default: detect the layout, read the teacher, load no code).

    Returns:
        Checkpoint with one PrototypeSet per distinct head ((K, D) float32 unit rows, (K,)
        effective row norms).

    Raises:
        InputError: bad ``format`` / ``network``, or a degenerate prototype matrix.
        CheckpointError (and its subclasses UnsafeCheckpointError, NoPrototypesError): the file
            cannot be read safely, or holds no recognisable prototypes.
    """
    checkpoint, _ = _read(Path(path), read or ReadOptions())
    return checkpoint


def load_prototypes(path: Path | str, read: ReadOptions | None = None) -> tuple[PrototypeSet, ...]:
    """The heads of :func:`read_checkpoint`, one PrototypeSet per distinct head."""
    return read_checkpoint(path, read).heads


def inspect_checkpoint(path: Path | str, read: ReadOptions | None = None) -> CheckpointInfo:
    """Describe what a checkpoint holds (heads, shapes, forms, norm ranges); computes no dedup."""
    path = Path(path)
    checkpoint, top_keys = _read(path, read or ReadOptions())
    used = {k.split(".")[0] for head in checkpoint.heads for k in head.source_keys}
    heads = tuple(
        HeadInfo(name=h.name, num_prototypes=h.num_prototypes, dim=h.dim,
                 source_keys=h.source_keys, shared_with=h.shared_with,
                 form=checkpoint.forms.get(h.name, "raw"), gain_all_ones=h.gain_all_ones,
                 norm_min=float(h.norms.min()), norm_max=float(h.norms.max()))
        for h in checkpoint.heads)
    return CheckpointInfo(
        path=path, format=checkpoint.format, network=checkpoint.network,
        size_bytes=path.stat().st_size, heads=heads,
        other_keys=tuple(k for k in top_keys if k not in used and k != checkpoint.network),
        extras={name: tuple(array.shape) for name, array in checkpoint.extras.items()},
        notes=checkpoint.notes, replaced=checkpoint.replaced)


def network_state(state: Mapping[str, Any], *, format: str, network: str) -> dict[str, Any]:  # noqa: A002
    """The chosen network's flat state dict (backbone and head), wrapper prefixes stripped.

    Args:
        state: a checkpoint dict from :func:`load_state`.
        format: a family format (``dino``, ``ibot``, ...; not ``key`` / ``array``).
        network: ``teacher`` or ``student``.

    Returns:
        ``{key: Tensor}`` with wrapper parts removed as whole path parts: any leading run of
        ``module.`` / ``_orig_mod.`` / ``_fsdp_wrapped_module.``, and the last two (which no
        model uses as a module name) wherever nested wrapping put them. solo-learn's teacher
        keys lose ``momentum_``; MSN returns the encoder (its prototypes are the top-level
        ``prototypes`` tensor).
    """
    ReadOptions(format=format, network=network)  # validates both
    return families.family(format).network(state, network)


def _read(path: Path, read: ReadOptions) -> tuple[Checkpoint, tuple[str, ...]]:
    loaded = read_object(path, trust=read.trust)
    try:
        checkpoint, top_keys = _read_loaded(path, loaded, read)
    except NoPrototypesError:
        if loaded.replaced:  # the heads may be inside what was not loaded
            raise unsafe_message(path, loaded.replaced, what="its prototypes") from None
        raise
    if isinstance(loaded.obj, Mapping):
        tensors = _head_tensors(loaded.obj, list(checkpoint.heads))
    else:
        tensors = [loaded.obj] if is_tensor(loaded.obj) else []
    loaded.check_records(tensors, what="the prototype tensors")
    if loaded.replaced:
        log.warning("%s: pickled classes not loaded (inert placeholders stand in for them; the "
                    "heads do not use them): %s", path, ", ".join(loaded.replaced))
    return replace(checkpoint, replaced=loaded.replaced), top_keys


def _head_tensors(state: Mapping[str, Any], heads: list) -> list:
    """Tensors stored under the heads' key endings (``last_layer.weight_v``, ``prototypes``):
    the ones read, and at most their twins in the other network."""
    endings = {".".join(k.split(".")[-2:]) for head in heads for k in head.source_keys}
    return [value for key, value in flatten(state).items()
            if is_tensor(value) and any(key == e or key.endswith("." + e) for e in endings)]


def _read_loaded(path: Path, loaded: Loaded, read: ReadOptions) -> tuple[Checkpoint, tuple[str, ...]]:
    obj, format, network, key = loaded.obj, read.format, read.network, read.key  # noqa: A001
    if is_array_like(obj):
        if format not in (None, "array", "key"):
            raise CheckpointError(f"{path} holds a bare array, not a {format} checkpoint: use "
                                  f"{option('format', 'array')} (or leave {option('format')} out).")
        names = tuple(obj.files) if hasattr(obj, "files") else ()
        heads = (read_array(path, obj, key=key),)
        return Checkpoint(path=path, format="array", network="", heads=heads,
                          forms={heads[0].name: "raw"}), names
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict or "
                              "a tensor.")
    # Top-level entries other than bare tensors: a flat state dict's weights are not "other keys".
    top_keys = tuple(str(k) for k, v in obj.items() if not is_tensor(v) or k == "prototypes")
    if format == "array":
        raise CheckpointError(f"{path} holds a checkpoint dict, not a bare array: pass "
                              f"{option('key', '<path>')} to name the prototypes, or leave "
                              f"{option('format')} out.")
    if format == "key" or (format is None and key is not None):
        if key is None:
            raise InputError(f"format 'key' needs {option('key', '<path>')} naming the prototypes.")
        return _read_key(path, obj, key), top_keys
    family = families.family(format) if format is not None else families.detect(obj)
    if family is None:
        raise no_prototypes(path, obj)
    if format is not None and not family.detect(obj):
        raise _no_heads(path, obj, family, network)
    log.info("%s: reading as %s (%s)", path, family.name, network)
    if key is not None:
        selection = families.Selection(state=normalise_keys(family.network(obj, network)),
                              network=network, key_prefix=f"{network}.")
        layers = (resolve_key(selection.state, key, where=f"the {network} of {path}"),)
    else:
        selection = family.select(obj, network)
        layers = family.heads(selection.state)
    if not layers:
        raise _no_heads(path, obj, family, network)
    read = read_layers(selection.state, layers, key_prefix=selection.key_prefix)
    return Checkpoint(path=path, format=family.name, network=selection.network,
                      heads=tuple(h for h, _ in read), extras=family.extras(obj),
                      forms={h.name: form for h, form in read}, notes=selection.notes), top_keys


def _read_key(path: Path, state: Mapping[str, Any], key: str) -> Checkpoint:
    flat = normalise_keys(flatten(state))
    layer = resolve_key(flat, key, where=str(path))
    first = layer.keys[0].split(".")[0]
    network = first if first in NETWORKS else ""
    ((head, form),) = read_layers(flat, (layer,))
    return Checkpoint(path=path, format="key", network=network, heads=(head,),
                      forms={head.name: form})


def _no_heads(path: Path, state: Mapping[str, Any], family: families.Family, network: str) -> NoPrototypesError:
    detected = families.detect(state)
    if detected is not None and detected is not family:
        return NoPrototypesError(
            f"no {family.name} heads in {path}: it looks like a {detected.name} checkpoint "
            f"(pass {option('format', detected.name)} or leave {option('format')} out).")
    return no_prototypes(path, state, expected=f"the {family.name} layout ({family.summary})")


def summaries() -> dict[str, str]:
    """format -> where its prototypes live (for docs and help texts)."""
    return {family.name: family.summary for family in families.FAMILIES}


def is_array_like(obj: Any) -> bool:
    """Whether a loaded object is a bare array (not a checkpoint dict)."""
    return isinstance(obj, (np.ndarray, np.lib.npyio.NpzFile)) or is_tensor(obj)


def _member(path: Path, archive: Any, name: str) -> np.ndarray:
    """One array of an ``.npz``, with its CRC and header checked; never unpickled."""
    import tokenize
    import zipfile
    import zlib

    try:
        return archive[name]
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise CheckpointError(f"{path}: array {name!r} holds Python objects, which are not "
                                  "read without unpickling: save a plain numeric array.") from None
        raise CheckpointError(f"{path}: array {name!r} cannot be read: its header is damaged "
                              f"({exc}).") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError, TypeError,
            SyntaxError, tokenize.TokenError, OverflowError, MemoryError) as exc:
        raise CheckpointError(f"{path}: array {name!r} is damaged ({exc}): save or download "
                              "the file again.") from None


def read_array(path: Path, obj: Any, *, key: str | None) -> PrototypeSet:
    """The (K, D) prototypes held by ``obj``, read as-is (rows normalised, norms kept)."""
    name = "prototypes"
    if isinstance(obj, np.lib.npyio.NpzFile):
        names = list(obj.files)
        if key is not None:
            if key not in names:
                raise CheckpointError(f"{path} has no array {key!r}: it holds {', '.join(names)}.")
            name = key
        elif len(names) == 1:
            name = names[0]
        else:
            raise CheckpointError(f"{path} holds {len(names)} arrays ({', '.join(names[:8])}): "
                                  f"pass {option('key', '<name>')} to pick the prototypes.")
        obj = _member(path, obj, name)
    elif key is not None:
        raise CheckpointError(f"{path} holds a single array: {option('key')} applies to .npz archives "
                              "and checkpoint dicts only.")
    array = obj if is_tensor(obj) else np.asarray(obj)
    if not (is_tensor(array) or np.issubdtype(array.dtype, np.number)):
        raise CheckpointError(f"{path}: array {name!r} has dtype {array.dtype}, not numbers.")
    ((prototypes, _form),) = read_layers({name: array}, (raw_layer(name, name=name),))
    return prototypes


#: Key paths that only a backbone has (ViT/DeiT, XCiT, Swin, ResNet, ConvNeXt).
BACKBONE_MARKERS = re.compile(
    r"(^|\.)(cls_token|pos_embed|patch_embed|blocks\.\d+|layers\.\d+|layer[1-4]\.\d+|conv1|bn1"
    r"|stem|stages\.\d+|downsample_layers)(\.|$)")
_HEAD_MARKERS = re.compile(r"(^|\.)(last_layer2?|prototypes|head|head_dense|dino_head|ibot_head)(\.|$)")


def no_prototypes(path: Path, state: Mapping[str, Any], *, expected: str = "") -> NoPrototypesError:
    """The error for a checkpoint dict in which no layout found prototypes."""
    flat = flatten(state)
    if _backbone_only(flat):
        return NoPrototypesError(
            f"{path} holds backbone weights only ({len(flat)} tensors, no prototype head). "
            "DINO's `*_pretrain.pth` and iBOT's `checkpoint_teacher.pth` releases are "
            "backbone-only: the `*_pretrain_full_checkpoint.pth` (DINO) or `checkpoint.pth` "
            "(iBOT) release holds the head (see `collapse-probe zoo list`).")
    what = expected or "no known layout (DINO, iBOT, EsViT, MSN, DINOv2/v3, lightly, solo-learn, SwAV)"
    top = ", ".join(list(map(str, state))[:8])
    return NoPrototypesError(
        f"no recognisable prototypes in {path}: {what} matched (top-level keys: {top or 'none'}). "
        f"Largest 2-D tensors: {largest_matrices(flat) or 'none'}. Pass {option('key', '<path>')} to "
        "name the prototype tensor or layer.")


def _backbone_only(flat: Mapping[str, Any]) -> bool:
    keys = [strip_all_wrappers(k) for k in flat]
    return (bool(keys) and not any(_HEAD_MARKERS.search(k) for k in keys)
            and any(BACKBONE_MARKERS.search(k) for k in keys))
