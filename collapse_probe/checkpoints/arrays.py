"""Raw prototype arrays: ``.npy``, ``.npz`` (one array, or one picked by key) and ``.pt`` tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, option
from ..types import PrototypeSet
from .keys import is_tensor
from .layers import raw_layer, read_layers

__all__ = ["is_array_like", "read_array"]


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
