"""Best prototype per sample over prototype tiles: numpy on the CPU, torch on a GPU.

Both return, for a block of unit rows, the index of the most similar prototype with ties to the
lowest index: ``argmax`` inside a tile returns the first maximum (numpy and torch both document
it), and a later tile replaces the running best only when strictly greater. Scores are float32
(TF32 is switched off on the GPU: its 10-bit mantissa would reorder close prototypes).
"""

from __future__ import annotations

import numpy as np

from ..errors import option
from ..validation import fail

__all__ = ["NumpyTiles", "TorchTiles", "DEVICES", "tiles_for"]

#: Where the assignment runs: numpy on the CPU, a CUDA GPU through torch, or the GPU when present.
DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")


class NumpyTiles:
    """CPU scorer. prototypes: (K, D) float32 unit rows (kept as a view, never copied)."""

    def __init__(self, prototypes: np.ndarray) -> None:
        # A transposed view: BLAS reads column slices of a C-ordered (K, D) matrix as a transposed
        # operand, so no (D, K) copy is made.
        self.transposed = prototypes.T
        self.num = int(prototypes.shape[0])

    def best(self, block: np.ndarray, tile: int) -> np.ndarray:
        """(b, D) float32 unit rows -> (b,) int64 index of the best prototype."""
        rows = np.arange(block.shape[0])
        best = np.full(block.shape[0], -np.inf, dtype=np.float32)
        best_idx = np.zeros(block.shape[0], dtype=np.int64)
        for start in range(0, self.num, tile):
            scores = block @ self.transposed[:, start:start + tile]
            idx = scores.argmax(axis=1)
            val = scores[rows, idx]
            del scores
            better = val > best  # strict: an earlier tile keeps ties
            best[better] = val[better]
            best_idx[better] = idx[better] + start
        return best_idx


class TorchTiles:
    """Torch scorer on ``device`` (``cuda``; ``cpu`` works too). Prototypes are copied there once."""

    def __init__(self, prototypes: np.ndarray, *, device: str) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.data = torch.from_numpy(np.array(prototypes, dtype=np.float32)).to(self.device)
        self.num = int(prototypes.shape[0])

    def best(self, block: np.ndarray, tile: int) -> np.ndarray:
        torch = self.torch
        x = torch.from_numpy(np.array(block, dtype=np.float32)).to(self.device)
        best = torch.full((x.shape[0],), -float("inf"), device=self.device)
        best_idx = torch.zeros(x.shape[0], dtype=torch.int64, device=self.device)
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            with torch.no_grad():
                for start in range(0, self.num, tile):
                    val, idx = (x @ self.data[start:start + tile].T).max(dim=1)  # first maximum
                    better = val > best
                    best = torch.where(better, val, best)
                    best_idx = torch.where(better, idx + start, best_idx)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous
        return best_idx.cpu().numpy()


def resolve_device(device: str) -> str:
    """``cpu`` or ``cuda`` for one of :data:`DEVICES`; ``cuda`` without a GPU is an InputError."""
    if device not in DEVICES:
        raise fail("device", expected=" or ".join(repr(d) for d in DEVICES), got=repr(device))
    if device == "cpu":
        return "cpu"
    try:
        import torch

        available = bool(torch.cuda.is_available())
    except ImportError:
        available = False
    if available:
        return "cuda"
    if device == "auto":
        return "cpu"
    raise fail("device", expected="a CUDA GPU visible to torch", got="none",
               hint=f"Use {option('device', 'cpu')} or {option('device', 'auto')}.")


def tiles_for(prototypes: np.ndarray, device: str) -> NumpyTiles | TorchTiles:
    """The scorer for a resolved device (``cpu`` or ``cuda``)."""
    return NumpyTiles(prototypes) if device == "cpu" else TorchTiles(prototypes, device=device)
