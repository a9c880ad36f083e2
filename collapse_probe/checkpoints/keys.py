"""Keys and last layers of a flat state dict.

* Key paths: nested checkpoint dicts are flattened and wrapper prefixes (``module.``,
  ``_orig_mod.``, ``_fsdp_wrapped_module.``) stripped.
* Last layers: found under a key prefix in any of the three storage forms (old and new weight
  norm, plain ``Linear.weight``) and turned into prototype directions and norms.
* Explicit keys, for layouts no family knows: a key names a tensor or a layer, with dots between
  nested dicts and module names alike (``teacher.head.last_layer``, ``prototypes``,
  ``state_dict.model.proj.weight``); a layer prefix resolves to its weight-norm pair or plain
  weight; wrapper parts may be left out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CheckpointError, NoPrototypesError
from ..types import PrototypeSet
from ..validation import as_prototype_matrix

__all__ = [
    "largest_matrices", "WRAPPERS", "strip_wrappers", "strip_all_wrappers", "flatten", "clean_state",
    "is_tensor", "leading_parts", "LastLayer", "find_last_layer", "raw_layer", "read_layers",
    "GAIN_ONE_TOL", "WEIGHT_NORM_LEAVES", "resolve_key", "normalise_keys",
]


log = logging.getLogger(__name__)

#: Path parts added by wrappers: DDP (``module``), ``torch.compile`` (``_orig_mod``), FSDP
#: (``_fsdp_wrapped_module``), activation checkpointing (``_checkpoint_wrapped_module``).
WRAPPERS: tuple[str, ...] = ("module", "_orig_mod", "_fsdp_wrapped_module",
                             "_checkpoint_wrapped_module")
# These names never occur in a model's own module tree, so they can go wherever they appear.
_UNAMBIGUOUS = frozenset(WRAPPERS) - {"module"}


def is_tensor(value: Any) -> bool:
    """Whether ``value`` is a torch tensor (checked without importing torch)."""
    return hasattr(value, "detach") and hasattr(value, "shape")


def strip_wrappers(key: str) -> str:
    """Remove wrapper parts from a dotted key: any number of leading ones (``module._orig_mod.``),
    and the unambiguous ones (``_orig_mod``, ``_fsdp_wrapped_module``) wherever they are.
    Whole path parts only: ``modules.x`` and ``my_module.x`` stay as they are."""
    parts = key.split(".")
    start = 0
    while start < len(parts) - 1 and parts[start] in WRAPPERS:
        start += 1
    return ".".join(p for p in parts[start:] if p not in _UNAMBIGUOUS)


def strip_all_wrappers(key: str) -> str:
    """Remove every wrapper part, also ``module`` inside a path (for matching a user's key)."""
    return ".".join(p for p in key.split(".") if p not in WRAPPERS)


def clean_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """A flat state dict's tensors with wrapper prefixes stripped from their keys.

    When two keys collapse to the same name (a file holding both ``module.x`` and ``x``), the
    first one wins and the clash is logged.
    """
    cleaned: dict[str, Any] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not is_tensor(value):
            continue
        short = strip_wrappers(key)
        if short in cleaned:
            log.warning("keys %r and another both map to %r: keeping the first", key, short)
            continue
        cleaned[short] = value
    return cleaned


def flatten(state: Mapping[str, Any], *, prefix: str = "", max_depth: int = 8) -> dict[str, Any]:
    """Every tensor in nested dicts, keyed by its dotted path (``teacher.head.last_layer.weight_g``).

    Lists, optimizer state and other values are skipped; only string-keyed dicts are walked.
    """
    flat: dict[str, Any] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            continue
        path = f"{prefix}{key}"
        if is_tensor(value):
            flat[path] = value
        elif isinstance(value, Mapping) and max_depth > 0:
            flat.update(flatten(value, prefix=f"{path}.", max_depth=max_depth - 1))
    return flat


def leading_parts(keys: Any, depth: int = 1) -> set[str]:
    """The distinct first ``depth`` path parts of ``keys``."""
    return {".".join(k.split(".")[:depth]) for k in keys}


def largest_matrices(flat: Mapping[str, Any], n: int = 5) -> str:
    """The ``n`` largest 2-D tensors as ``key [K, D]`` (the likeliest prototype candidates)."""
    matrices = [(k, tuple(v.shape)) for k, v in flat.items() if getattr(v, "ndim", 0) == 2]
    matrices.sort(key=lambda kv: (-kv[1][0] * kv[1][1], kv[0]))
    return ", ".join(f"{k} [{a}, {b}]" for k, (a, b) in matrices[:n])


#: |g - 1| below this for every row counts as "g is all ones" (the teacher's g is an EMA of
#: ones, equal up to float rounding).
GAIN_ONE_TOL = 1e-4

_FORM_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("weight-norm-old", ("weight_g", "weight_v")),
    ("weight-norm-new", ("parametrizations.weight.original0", "parametrizations.weight.original1")),
    ("plain", ("weight",)),
)
#: Key endings that belong to a weight-norm pair (so a user's key can name either half).
WEIGHT_NORM_LEAVES: tuple[str, ...] = tuple(leaf for form, leaves in _FORM_KEYS[:2] for leaf in leaves)


@dataclass(frozen=True)
class LastLayer:
    """A last layer located in a flat state dict.

    Attributes:
        name: the head's name in reports.
        form: ``weight-norm-old``, ``weight-norm-new``, ``plain`` or ``raw``.
        keys: the state keys, ``(g, v)`` for weight norm, ``(weight,)`` otherwise.
    """

    name: str
    form: str
    keys: tuple[str, ...]


def find_last_layer(state: Mapping[str, Any], prefix: str, *, name: str) -> LastLayer | None:
    """The last layer stored under ``prefix`` (e.g. ``head.last_layer``), or None.

    Weight-norm forms win over a plain ``weight`` when both exist.
    """
    for form, leaves in _FORM_KEYS:
        keys = tuple(f"{prefix}.{leaf}" for leaf in leaves)
        if all(key in state for key in keys):
            return LastLayer(name=name, form=form, keys=keys)
    return None


def raw_layer(key: str, *, name: str) -> LastLayer:
    """A bare (K, D) tensor used as prototypes as it is (MSN's ``prototypes``, key mode)."""
    form = "plain" if key.endswith(".weight") else "raw"
    return LastLayer(name=name, form=form, keys=(key,))


def read_layers(state: Mapping[str, Any], layers: Sequence[LastLayer], *,
                key_prefix: str = "") -> tuple[tuple[PrototypeSet, str], ...]:
    """Read each layer as a :class:`PrototypeSet` (with its form); a layer whose tensors equal
    an earlier layer's is not read again but named in that layer's ``shared_with``.

    Args:
        state: flat state dict holding the layers' keys.
        layers: the layers, in report order.
        key_prefix: prepended to the keys in ``source_keys`` (e.g. ``teacher.``).
    """
    kept: list[LastLayer] = []
    shared: dict[str, list[str]] = {}
    for layer in layers:
        twin = next((k for k in kept if _same_tensors(state, k, layer)), None)
        if twin is None:
            kept.append(layer)
            shared[layer.name] = []
        else:
            shared[twin.name].append(layer.name)
    return tuple((_read(state, layer, key_prefix=key_prefix, shared_with=tuple(shared[layer.name])),
                  layer.form) for layer in kept)


def _same_tensors(state: Mapping[str, Any], a: LastLayer, b: LastLayer) -> bool:
    import torch

    if a.form != b.form:
        return False
    for key_a, key_b in zip(a.keys, b.keys, strict=True):
        ta, tb = state[key_a], state[key_b]
        if ta.shape != tb.shape or ta.dtype != tb.dtype:
            return False
        if ta.data_ptr() == tb.data_ptr() and ta.stride() == tb.stride():
            continue  # one tensor saved under two names (a shared module)
        if not torch.equal(ta, tb):
            return False
    return True


def _to_numpy(tensor: Any, key: str = "the prototypes") -> np.ndarray:
    """float32 host copy of a tensor or array (fp16 / bf16 runs are upcast; numpy has no bf16).

    Raises:
        CheckpointError: a tensor that is not a dense real matrix of stored values (sparse,
            meta, quantized, complex), or a view that repeats fewer stored values than it shows
            (stride 0): copying it would allocate memory for values the file never held.
    """
    if isinstance(tensor, np.ndarray):
        if np.iscomplexobj(tensor):
            raise CheckpointError(f"{key} is a complex array ({tensor.dtype}): prototypes are real; "
                                  "save the real matrix.")
        _check_strides(key, tensor.shape, [s // max(tensor.itemsize, 1) for s in tensor.strides])
        return np.asarray(tensor, dtype=np.float32)
    _check_tensor(tensor, key)
    return tensor.detach().to(device="cpu").float().numpy()


def _check_tensor(tensor: Any, key: str) -> None:
    import torch

    layout = getattr(tensor, "layout", torch.strided)
    if layout != torch.strided:
        raise CheckpointError(f"{key} is a {str(layout).replace('torch.', '')} tensor: prototypes "
                              "must be a dense tensor (save `tensor.to_dense()`).")
    if tensor.is_quantized:
        raise CheckpointError(f"{key} is a quantized tensor ({tensor.dtype}): save the float "
                              "weights (`tensor.dequantize()`).")
    if tensor.device.type == "meta":
        raise CheckpointError(f"{key} is a meta tensor: it has a shape but no values (the file "
                              "was saved from a model that was never materialised).")
    if tensor.is_complex():
        raise CheckpointError(f"{key} is a complex tensor ({tensor.dtype}): prototypes are real; "
                              "save the real matrix.")
    if not (tensor.dtype.is_floating_point or not tensor.dtype.is_signed or tensor.dtype in (
            torch.int8, torch.int16, torch.int32, torch.int64)):
        raise CheckpointError(f"{key} has dtype {tensor.dtype}, not numbers.")
    _check_strides(key, tuple(tensor.shape), list(tensor.stride()))
    stored = tensor.untyped_storage().nbytes() - tensor.storage_offset() * tensor.element_size()
    if tensor.numel() * tensor.element_size() > max(stored, 0):
        raise CheckpointError(f"{key} of shape {tuple(tensor.shape)} needs "
                              f"{tensor.numel() * tensor.element_size()} bytes but its storage "
                              f"holds {max(stored, 0)}: the file is damaged.")


def _check_strides(key: str, shape: tuple[int, ...], strides: list[int]) -> None:
    if any(size > 1 and stride == 0 for size, stride in zip(shape, strides)):
        raise CheckpointError(
            f"{key} of shape {tuple(shape)} is a stride-0 view: it repeats a few stored values "
            "over its whole shape instead of holding a trained matrix. Save the real weights "
            "(`tensor.contiguous()`).")


def _read(state: Mapping[str, Any], layer: LastLayer, *, key_prefix: str,
          shared_with: tuple[str, ...]) -> PrototypeSet:
    source_keys = tuple(f"{key_prefix}{key}" for key in layer.keys)
    if layer.form in ("plain", "raw"):
        matrix = as_prototype_matrix(_to_numpy(state[layer.keys[0]], source_keys[0]),
                                     name=f"prototypes in {source_keys[0]}")
        gain_all_ones = None
    else:
        matrix, gain_all_ones = _weight_norm(state, layer, source_keys)
    # float64 accumulation without a float64 copy of the whole matrix.
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix, dtype=np.float64))
    if not np.isfinite(norms).all() or norms.max() >= np.finfo(np.float32).max:
        # Entries near the float32 limit (3e38) would give inf norms and zero directions.
        raise CheckpointError(
            f"{source_keys[-1]}: row norms reach {norms.max():.3g}, beyond float32 range: these "
            "are not trained prototype weights (a damaged or uninitialised tensor).")
    scale = norms[:, None].astype(np.float32)
    if matrix.flags.owndata and matrix.flags.writeable:
        # A fresh array (weight norm applied, or upcast): normalise in place, one copy fewer.
        vectors = np.divide(matrix, scale, out=matrix)
    else:
        # A view of the checkpoint's (memory-mapped) storage: never write into it.
        vectors = matrix / scale
    return PrototypeSet(name=layer.name, vectors=vectors, norms=norms.astype(np.float32),
                        source_keys=source_keys, shared_with=shared_with,
                        gain_all_ones=gain_all_ones)


def _weight_norm(state: Mapping[str, Any], layer: LastLayer,
                 source_keys: tuple[str, ...]) -> tuple[np.ndarray, bool]:
    """W = g * v / ||v|| row by row; a negative g flips the direction."""
    g = _to_numpy(state[layer.keys[0]], source_keys[0])
    v = _to_numpy(state[layer.keys[1]], source_keys[1])
    if v.ndim != 2 or g.size != v.shape[0]:
        raise CheckpointError(
            f"{source_keys[0]} {tuple(g.shape)} and {source_keys[1]} {tuple(v.shape)} do not form "
            "a weight-norm pair: expected g of shape (K, 1) and v of shape (K, D).")
    g = g.reshape(-1).astype(np.float64)
    v_norm = np.sqrt(np.einsum("ij,ij->i", v, v, dtype=np.float64))
    # A zero v row has no direction: leave it zero so validation reports it as such.
    scale = np.divide(g, v_norm, out=np.zeros_like(g), where=v_norm > 0)
    with np.errstate(over="ignore", invalid="ignore"):
        matrix = v * scale[:, None].astype(np.float32)
    matrix = as_prototype_matrix(matrix, name=f"prototypes in {source_keys[1]}")
    gain_all_ones = bool(np.all(np.abs(g - 1.0) < GAIN_ONE_TOL))
    return matrix, gain_all_ones


def normalise_keys(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``flat`` with every wrapper part removed from its keys (first key wins on a clash)."""
    normalised: dict[str, Any] = {}
    for key, value in flat.items():
        normalised.setdefault(strip_all_wrappers(key), value)
    return normalised


def resolve_key(flat: Mapping[str, Any], key: str, *, where: str) -> LastLayer:
    """The layer or tensor ``key`` names in the normalised flat state ``flat``.

    Raises:
        NoPrototypesError: nothing at ``key``; the message lists nearby keys and the largest
            2-D tensors.
    """
    wanted = strip_all_wrappers(key.strip().strip("."))
    prefix = wanted
    for leaf in WEIGHT_NORM_LEAVES:  # a key naming one half of a weight-norm pair
        if wanted.endswith(f".{leaf}"):
            prefix = wanted.removesuffix(f".{leaf}")
            break
    layer = find_last_layer(flat, prefix, name=prefix)
    if layer is not None:
        return layer
    if wanted in flat:
        return raw_layer(wanted, name=wanted.removesuffix(".weight"))
    nearby = _nearby(flat, wanted)
    hint = f" Keys nearby: {', '.join(nearby)}." if nearby else ""
    raise NoPrototypesError(
        f"no tensor or last layer at key {key!r} in {where}.{hint} Largest 2-D tensors: "
        f"{largest_matrices(flat) or 'none'}.")


def _nearby(flat: Mapping[str, Any], wanted: str, n: int = 5) -> list[str]:
    """Keys sharing the most leading path parts with ``wanted`` (at least one)."""
    parts = wanted.split(".")

    def common(key: str) -> int:
        count = 0
        for a, b in zip(parts, key.split("."), strict=False):
            if a != b:
                break
            count += 1
        return count

    scores = {key: common(key) for key in flat}
    best = max(scores.values(), default=0)
    return [key for key, score in scores.items() if score == best][:n] if best else []
