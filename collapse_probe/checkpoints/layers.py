"""Last layers: find one under a key prefix (any of the three storage forms) and turn it into
prototype directions and norms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CheckpointError
from ..types import PrototypeSet
from ..validation import as_prototype_matrix

__all__ = ["LastLayer", "find_last_layer", "raw_layer", "read_layers", "GAIN_ONE_TOL",
           "WEIGHT_NORM_LEAVES"]

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
