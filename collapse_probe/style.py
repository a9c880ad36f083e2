"""The one palette and the axis helpers every figure shares (audit, usage and trend figures).

Okabe-Ito colours (colour-blind safe): series colours in :data:`PALETTE`, everything "other" in
:data:`OTHER`, reference curves and thresholds in :data:`REFERENCE`. matplotlib is imported inside
the functions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PALETTE", "OTHER", "REFERENCE", "log_ticks"]

#: Series colours (Okabe-Ito), in order.
PALETTE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9",
                            "#8C6D31", "#000000")
#: Colour of "everything else" (ungrouped prototypes, small groups).
OTHER = "#B8B8B8"
#: Colour of reference curves (random unit vectors, thresholds).
REFERENCE = "#333333"


def log_ticks(axis, lo: float, hi: float, *, suffix: str = "", steps=(1, 2, 5)) -> None:  # noqa: ANN001
    """Label a log axis at 1-2-5 steps between ``lo`` and ``hi`` with plain numbers.

    matplotlib's default log labels are powers of ten only (``10^1``), and on a short range its
    minor labels read ``2x10^0``: neither lets a reader find 45 % or a group of 3.
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    decades = range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 1)
    ticks = sorted({m * 10.0 ** e for e in decades for m in steps
                    if lo * (1 - 1e-9) <= m * 10.0 ** e <= hi * (1 + 1e-9)})
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}{suffix}"))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())
