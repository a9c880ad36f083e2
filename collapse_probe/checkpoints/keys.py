"""Key paths: flattening nested checkpoint dicts and stripping wrapper prefixes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

__all__ = ["WRAPPERS", "strip_wrappers", "strip_all_wrappers", "flatten", "clean_state",
           "is_tensor", "leading_parts"]

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
