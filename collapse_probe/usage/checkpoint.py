"""``usage_from_checkpoint``: usage of a checkpoint's head by a features file, or its center proxy.

Two feature spaces:

* ``bottleneck``: (N, D) outputs of the head MLP (before the last layer), used as they are;
* ``backbone``: (N, d) backbone features, mapped block by block through the checkpoint's own
  head MLP (:func:`collapse_probe.rebuild_head`, ``embed``) on the CPU under ``no_grad``.

Without features, DINO and iBOT checkpoints still carry ``center``; the result is then the
labelled proxy of :func:`collapse_probe.usage.center_usage`.
"""

from __future__ import annotations

import logging
from pathlib import Path
import numpy as np

from ..errors import InputError, option
from ..options import ReadOptions
from ..thresholds import GATE_EPS
from ..types import PrototypeSet
from ..validation import describe, fail
from .assign import DEFAULT_BLOCK_SIZE, DEFAULT_PROTOTYPE_BLOCK_SIZE, Embed, Progress
from .center import DEFAULT_CENTER_TEMPERATURE, center_usage
from .data import data_usage
from .report import UsageReport
from .stats import TOP_GROUPS
from .shards import shard_from_env
from .tiles import resolve_device

__all__ = ["usage_from_checkpoint", "load_features", "SPACES"]

log = logging.getLogger(__name__)

#: Where feature rows live: after the head MLP (``bottleneck``) or before it (``backbone``).
SPACES: tuple[str, ...] = ("backbone", "bottleneck")


def load_features(features: str | Path | np.ndarray) -> np.ndarray:
    """A (N, d) real array; a ``.npy`` path is memory-mapped (read block by block later)."""
    if isinstance(features, (str, Path)):
        path = Path(features)
        if not path.is_file():
            raise InputError(f"features file {path} does not exist or is not a file.")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"features file {path} is not a .npy array ({exc}); save features "
                             "with numpy.save as an (N, d) float array.") from None
        if not isinstance(array, np.ndarray):
            raise InputError(f"features file {path} is an archive, not one .npy array; save one "
                             "(N, d) array with numpy.save.")
    else:
        array = features.detach().float().cpu().numpy() if hasattr(features, "detach") else np.asarray(features)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise fail("features", expected="an (N, d) array with N >= 1", got=describe(array))
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise fail("features", expected="a real-valued array", got=describe(array))
    return array


def _pick_head(heads: tuple[PrototypeSet, ...], head: str | None, path: Path) -> PrototypeSet:
    if head is None:
        return heads[0]
    for candidate in heads:
        if candidate.name == head or head in candidate.shared_with:
            return candidate
    raise fail("head", expected="one of " + ", ".join(repr(h.name) for h in heads),
               got=repr(head), hint=f"These are the heads found in {path.name}.")


def _head_embed(path: Path, *, fmt: str, network: str, head: str, trust: bool,
                device: str) -> tuple[Embed, int]:
    """The checkpoint's head MLP as a block function, and the feature dimension it expects."""
    import torch

    from ..checkpoints import load_state, network_state
    from ..heads import rebuild_head

    full = load_state(path, trust=trust)
    state = network_state(full, format=fmt, network=network)
    module = rebuild_head(state, format=fmt, head=head).eval().to(device)
    linears = [m for m in module.mlp.modules() if isinstance(m, torch.nn.Linear)]
    in_dim = int(linears[0].in_features) if linears else 0  # 0: no MLP, features are the bottleneck

    def embed(block: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(np.array(block, dtype=np.float32)).to(device)
            return module.embed(x).cpu().numpy()

    return embed, in_dim


def usage_from_checkpoint(
    path: str | Path,
    features: str | Path | np.ndarray | None = None,
    *,
    space: str = "backbone",
    head: str | None = None,
    eps: float = GATE_EPS,
    method: str = "components",
    read: ReadOptions | None = None,
    temperature: float = DEFAULT_CENTER_TEMPERATURE,
    block_size: int = DEFAULT_BLOCK_SIZE,
    prototype_block_size: int = DEFAULT_PROTOTYPE_BLOCK_SIZE,
    progress: Progress | None = None,
    top: int = TOP_GROUPS,
    device: str = "cpu",
) -> UsageReport:
    """Usage of one head of a checkpoint by real data, or its center proxy without data.

    Args:
        path: the checkpoint.
        features: (N, d) features: a ``.npy`` path (memory-mapped) or an array; None for the
            center proxy (DINO/iBOT checkpoints with ``dino_loss``/``ibot_loss``).
        space: ``backbone`` (through the head MLP) or ``bottleneck`` (used as they are).
        head: the head's name; the checkpoint's first head by default.
        eps, method: duplicate groups for the merged statistics.
        read: how to read the checkpoint (format, network, key, trust).
        temperature: the center proxy's softmax temperature.
        block_size, prototype_block_size, progress, top, device: see :func:`data_usage`; on a
            GPU the head MLP runs there too.

    Returns:
        UsageReport (``source`` ``data`` or ``center-proxy``).
    """
    from ..checkpoints import read_checkpoint

    if space not in SPACES:
        raise fail("space", expected=" or ".join(repr(s) for s in SPACES), got=repr(space))
    path = Path(path)
    read = read or ReadOptions()
    ckpt = read_checkpoint(path, read)
    protos = _pick_head(ckpt.heads, head, path)
    if features is None:
        # iBOT keeps the patch head's running mean apart, as center2.
        center = ckpt.extras.get("center2" if protos.name == "head_patch" else "center")
        if center is None:
            raise InputError(f"{path.name} has no center buffer (only DINO/iBOT training checkpoints "
                             f"keep dino_loss/ibot_loss); pass {option('features', '<file>')} to measure usage.")
        return center_usage(center, protos, temperature=temperature, eps=eps, method=method, top=top)
    array = load_features(features)
    dim = int(array.shape[1])
    embed: Embed | None = None
    if space == "bottleneck":
        if dim != protos.dim:
            raise InputError(f"features have dimension {dim} but the bottleneck of head {protos.name!r} "
                             f"has dimension {protos.dim}; for backbone features use {option('space', 'backbone')}.")
    else:
        if ckpt.format in ("array", "key"):
            raise InputError(f"a {ckpt.format!r} checkpoint has no head MLP to map backbone features; "
                             f"pass bottleneck features with {option('space', 'bottleneck')}.")
        # Under torchrun, join the group first: with CUDA it pins this process's GPU.
        shard_from_env(resolve_device(device))
        embed, in_dim = _head_embed(path, fmt=ckpt.format, network=read.network, head=protos.name, trust=read.trust,
                                    device=resolve_device(device))
        in_dim = in_dim or protos.dim
        if dim != in_dim:
            if dim == protos.dim:
                raise InputError(f"features have dimension {dim}, the bottleneck dimension of head "
                                 f"{protos.name!r}, but backbone space expects dimension {in_dim}: use "
                                 f"{option('space', 'bottleneck')} for head-MLP outputs.")
            raise InputError(f"features have dimension {dim} but the head MLP of {protos.name!r} expects "
                             f"backbone features of dimension {in_dim} (bottleneck: {protos.dim}); "
                             "extract them from the same backbone as the checkpoint.")
    log.info("usage: %s head %s, %d features in %s space", path.name, protos.name, array.shape[0], space)
    return data_usage(protos, array, eps=eps, method=method, block_size=block_size,
                      prototype_block_size=prototype_block_size, embed=embed, progress=progress,
                      top=top, space=space, device=device)
