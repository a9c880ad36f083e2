"""Usage over more samples than one machine scores: shards under ``torchrun``.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), each process scores one
contiguous shard of the samples (rank r of W: samples ``r N / W`` to ``(r + 1) N / W``, so a
memory-mapped file is read once in total), the per-prototype counts are summed over processes
(an all-reduce of K int64 numbers), and every rank ends with the same counts as one process
scoring all samples. Only rank 0 should write (the CLI does so).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

__all__ = ["Shard", "shard_from_env", "all_reduce_counts", "leave_process_group"]


@dataclass(frozen=True)
class Shard:
    """This process's share of the samples (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def bounds(self, num_samples: int) -> tuple[int, int]:
        """[start, stop) of this rank's samples; shards differ in size by at most one."""
        return (self.rank * num_samples // self.world_size,
                (self.rank + 1) * num_samples // self.world_size)


def shard_from_env(device: str = "cpu") -> Shard:
    """Join the process group when launched by ``torchrun``; a single shard otherwise.

    ``device`` (``cpu`` or ``cuda``) picks the backend: gloo, or NCCL with one GPU per process
    (``LOCAL_RANK``).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Shard()
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return Shard(rank=dist.get_rank(), world_size=dist.get_world_size())


def all_reduce_counts(counts: np.ndarray, shard: Shard) -> np.ndarray:
    """(K,) int64 counts summed over all processes (``counts`` itself when not distributed)."""
    if not shard.active:
        return counts
    import torch
    import torch.distributed as dist

    tensor = torch.from_numpy(np.ascontiguousarray(counts, dtype=np.int64))
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy().astype(np.int64)


def leave_process_group() -> None:
    """Wait for every rank, then tear the process group down, if one was joined.

    A rank that exits while another still holds the gloo connections can be aborted by the
    launcher; the command that joined the group calls this once it has written its output.
    """
    import sys

    if "torch.distributed" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
