"""Candidate search with torch: low-precision products on a GPU, with a safe margin.

TF32 or bfloat16 cannot decide ``cos > 0.9996875`` by themselves: they only propose the pairs
whose low-precision cosine reaches the threshold minus :func:`.decide.similarity_margin` for
that precision, which bounds the rounding of the inputs and of the float32 accumulation. The
engine then decides every proposed pair in float64 on the host, so labels equal the CPU path's.
The same code runs on CPU torch (the tests use it there).
"""

from __future__ import annotations

import numpy as np

from .decide import similarity_margin
from .search import SimilarityTiles

__all__ = ["TorchTiles", "cuda_available"]


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class TorchTiles(SimilarityTiles):
    """Tiles of similarities computed by torch on ``device`` in ``precision``.

    Args:
        vectors: (K, D) float32 unit rows (copied to the device once).
        device: a torch device string (``cuda``, ``cuda:1``, ``cpu``).
        precision: ``bfloat16``, ``tf32`` (CUDA only; plain float32 elsewhere) or ``float32``.
    """

    def __init__(self, vectors: np.ndarray, *, device: str = "cuda", precision: str = "bfloat16") -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.precision = precision
        if precision == "tf32" and self.device.type != "cuda":
            precision = "float32"
        self.margin = similarity_margin(vectors.shape[1], precision)
        dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        self.allow_tf32 = precision == "tf32"
        self.data = torch.from_numpy(np.array(vectors, dtype=np.float32, order="C")).to(self.device).to(dtype)

    def pairs(self, rows: np.ndarray, cols: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        left = self.data[torch.from_numpy(rows).to(self.device)]
        right = self.data[torch.from_numpy(cols).to(self.device)]
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = self.allow_tf32
        try:
            sims = left @ right.T
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous
        # A bfloat16 product is itself rounded to bfloat16 (error u |s| <= u): the margin's
        # doubling of 2u + dim 2^-24 covers it. Compare in float32: a bfloat16 threshold would
        # itself be rounded. Most tiles hold no
        # candidate: one max pass settles them.
        cut = threshold - self.margin
        hit = torch.nonzero(sims.max(dim=1).values.float() > cut).flatten()
        if hit.numel() == 0:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        i, j = torch.nonzero(sims[hit].float() > cut, as_tuple=True)
        return hit[i].cpu().numpy(), j.cpu().numpy()
