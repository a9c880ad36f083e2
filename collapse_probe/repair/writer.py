"""Writing a fine-tuned head back into the checkpoint it came from, in the same layout.

Tensors are matched by identity: the network state a head was rebuilt from holds the very
tensor objects of the loaded file (wrapper prefixes are stripped from the keys, not the values),
so each original tensor is found wherever it sits in the nested dicts, under whatever prefix
(``module.``, ``momentum_``, a Lightning ``state_dict``). A tensor stored under two names that
share storage (iBOT's shared head) is replaced under both. Everything else stays the very same
object, so it is saved unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

__all__ = ["replace_tensors", "save_checkpoint"]

log = logging.getLogger(__name__)


def _storage_key(tensor: Any) -> tuple[int, tuple[int, ...], tuple[int, ...], int, Any]:
    return (tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), tensor.storage_offset(),
            tensor.dtype)


def _walk(obj: Any, path: str = "") -> Any:
    """Yield ``(container, key, path)`` for every tensor in nested dicts."""
    if isinstance(obj, MutableMapping):
        for key, value in list(obj.items()):
            where = f"{path}{key}"
            if hasattr(value, "detach") and hasattr(value, "data_ptr"):
                yield obj, key, where
            elif isinstance(value, Mapping):
                yield from _walk(value, f"{where}.")


def replace_tensors(root: MutableMapping[str, Any], replacements: list[tuple[Any, Any]]) -> list[str]:
    """Put each ``new`` tensor where its ``old`` tensor (or a tensor sharing its storage) sits.

    Args:
        root: the loaded checkpoint (modified in place).
        replacements: ``(old tensor object, new tensor)`` pairs; ``new`` has ``old``'s shape and dtype.

    Returns:
        The dotted paths written, in file order.

    Raises:
        CheckpointError: an old tensor is not found in ``root``.
    """
    by_id = {id(old): new for old, new in replacements}
    by_storage = {_storage_key(old): new for old, new in replacements if old.numel() > 0}
    reached: set[Any] = set()
    written: list[str] = []
    for container, key, where in _walk(root):
        value = container[key]
        new = by_id.get(id(value))
        if new is None and value.numel() > 0:
            new = by_storage.get(_storage_key(value))
        if new is None:
            continue
        if tuple(new.shape) != tuple(value.shape) or new.dtype != value.dtype:
            raise CheckpointError(f"cannot write {where}: the new tensor is {tuple(new.shape)} "
                                  f"{new.dtype}, the file holds {tuple(value.shape)} {value.dtype}.")
        reached.add(id(value))
        if value.numel() > 0:
            reached.add(_storage_key(value))
        container[key] = new
        written.append(where)
    lost = [old for old, _ in replacements
            if id(old) not in reached and (old.numel() == 0 or _storage_key(old) not in reached)]
    if lost:
        raise CheckpointError(f"{len(lost)} head tensors were not found in the loaded file, so "
                              "the output would not hold the fine-tuned head.")
    return written


def save_checkpoint(obj: Any, out: Path, *, legacy: bool = False) -> None:
    """``torch.save`` to a temporary file beside ``out``, then rename it over ``out``
    (:func:`collapse_probe.output.save_torch`: mode kept, links followed, nothing partial).

    Args:
        legacy: write the pre-1.6 (non-zip) serialization, for an input that used it.
    """
    from ..output import save_torch

    save_torch(obj, Path(out), _use_new_zipfile_serialization=not legacy)
    log.info("wrote %s", out)
