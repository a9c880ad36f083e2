"""Input validation with one message template: what was expected, what came, what to do."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError, option

__all__ = ["fail", "as_prototype_matrix", "describe"]


def describe(value: Any) -> str:
    """A short description of ``value`` for error messages (type, shape, dtype)."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None:
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(value).__name__} {value!r}"[:120]


def fail(what: str, *, expected: str, got: str, hint: str = "") -> InputError:
    """Build (not raise) the one-line error every validator uses."""
    message = f"{what}: expected {expected}, got {got}."
    if hint:
        message += f" {hint}"
    return InputError(message)


def as_prototype_matrix(value: Any, *, name: str = "prototypes") -> np.ndarray:
    """Check a prototype matrix and return it as a C-contiguous float32 array.

    Args:
        value: array-like of shape (K, D), K >= 2 prototypes of dimension D >= 1. Torch tensors
            (any float dtype, any device) are accepted and copied to host float32.
        name: what to call the array in messages.

    Returns:
        np.ndarray (K, D) float32, C-contiguous. Rows are *not* normalised here.
    """
    if hasattr(value, "detach"):  # torch tensor, without importing torch
        value = value.detach().float().cpu().numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise fail(name, expected="an array of shape (K, D)", got=describe(value)) from exc
    if array.ndim != 2:
        raise fail(name, expected="a 2-D array of shape (K, D)", got=describe(array),
                   hint="Pass one prototype per row.")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise fail(name, expected="a real-valued array", got=describe(array))
    num_prototypes, dim = array.shape
    if num_prototypes < 2:
        raise fail(name, expected="at least 2 prototypes (K >= 2)", got=f"K = {num_prototypes}",
                   hint="Duplicates need at least two rows.")
    if dim < 1:
        raise fail(name, expected="dimension D >= 1", got=f"D = {dim}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise fail(name, expected="finite values", got=f"NaN or Inf in {bad.size} rows "
                   f"(first: {bad[:5].tolist()})", hint="The run probably diverged; audit an earlier checkpoint.")
    zero = ~np.any(array != 0, axis=1)
    if zero.any():
        bad = np.flatnonzero(zero)
        raise fail(name, expected="non-zero rows (a zero row has no direction)",
                   got=f"{bad.size} all-zero rows (first: {bad[:5].tolist()})",
                   hint=f"Check that the right tensor was selected ({option('key')}).")
    return array
