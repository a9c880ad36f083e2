"""bfloat16 products of bound factors on the CPU, where the hardware runs them fast.

The bound pass of the search (:mod:`.projection`) only needs an *upper bound* on each cosine: a
product of rows rounded to bfloat16 (8-bit significand), accumulated in float32 and rounded
once more to bfloat16, errs by at most ``3u + dim 2^-24`` (u = 2^-8) on rows of norm <= 1,
which :func:`.decide.similarity_margin` for ``bfloat16`` (``4u + 2 dim 2^-24``) covers. On CPUs
with AVX-512 BF16 or AMX, oneDNN runs such products faster than float32 BLAS (1.1-1.7x per
tile on the 2-core benchmark machine, 1.8x for a whole healthy sweep: benchmarks/README.md),
and the bound's threshold sits far from typical cosines on healthy heads,
so the wider margin costs nothing there. Candidates are still decided in float64.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

__all__ = ["LowPrecisionRows", "bf16_is_fast", "MODE"]

#: ``auto``: bfloat16 where the CPU has bf16 instructions and it pays for importing torch;
#: ``on``: always (correct anywhere, only slower without the instructions); ``off``: never.
MODE = "auto"
#: CPU flags (``/proc/cpuinfo``) under which oneDNN has native bfloat16 products.
_FAST_FLAGS = ("avx512_bf16", "amx_bf16")
#: Seconds an import of torch costs when nothing imported it yet (1.0-1.2 s on 2 cores).
TORCH_IMPORT_SECONDS = 1.2
#: bfloat16 over float32 speed of a bound tile product (1024 x 1024 x 97 on one core of the
#: benchmark machine, the product and its row maxima: 1.3 ms against 2.9 ms idle; the engine's
#: healthy sweep ran 1.8x faster in CPU time). Only the choice of path depends on it.
BF16_SPEEDUP = 2.0


@functools.lru_cache(maxsize=1)
def bf16_is_fast() -> bool:
    """Whether this CPU reports native bfloat16 instructions (Linux; False elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return any(flag in flags for flag in _FAST_FLAGS)
    return False


def worth_it(saved_seconds: float) -> bool:
    """Use bfloat16 for a pass expected to save ``saved_seconds`` (against float32)?"""
    if MODE == "off":
        return False
    if MODE == "on":
        return True
    if not bf16_is_fast():
        return False
    try:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            return False
    except (ImportError, ValueError):
        return False
    return "torch" in sys.modules or saved_seconds > TORCH_IMPORT_SECONDS


class LowPrecisionRows:
    """(N, m) rows held as a bfloat16 torch tensor, for row maxima of tile products.

    Args:
        rows: (N, m) float32 rows (rounded to nearest bfloat16 once, here).
    """

    def __init__(self, rows: np.ndarray) -> None:
        import torch

        self.torch = torch
        self.data = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32)).to(torch.bfloat16)

    def rows_above(self, si: int, nrows: int, sj: int, ncols: int, cut: float, *,
                   same: bool = False) -> np.ndarray:
        """(nrows,) bool: whether row i of rows si:si+nrows has a product above ``cut`` with
        some row of sj:sj+ncols.

        ``same``: the two tiles are one, and a row's product with itself is left out.
        """
        left = self.data[si:si + nrows]
        right = self.data[sj:sj + ncols]
        product = left @ right.T
        if same:
            product.fill_diagonal_(-float("inf"))
        if cut <= 0.0:
            return product.amax(dim=1).float().numpy() > cut
        # For positive values the bfloat16 bit patterns, read as int16, order like the values,
        # and every negative value (sign bit set) reads as a negative int16: so the int16 row
        # maximum is the largest value whenever it is positive, and below any positive cut
        # otherwise. numpy's int16 reduction is 5x faster than torch's bfloat16 one here.
        top = product.view(torch_int16(self.torch)).numpy().max(axis=1)
        values = (top.astype(np.int32) << 16).view(np.float32)
        return values > cut

    def row_max(self, si: int, nrows: int, sj: int, ncols: int, *, same: bool = False) -> np.ndarray:
        """(nrows,) float32: max over the columns of rows si:si+nrows times rows sj:sj+ncols."""
        product = self.data[si:si + nrows] @ self.data[sj:sj + ncols].T
        if same:
            product.fill_diagonal_(-float("inf"))
        return product.amax(dim=1).float().numpy()


def torch_int16(torch):  # noqa: ANN001, ANN201 - torch is imported lazily
    return torch.int16
