"""The random nearest-neighbour law against scipy.stats' beta distribution (the reference)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta

from collapse_probe.auditing.neighbours import random_nn_cdf, random_nn_pdf


@pytest.mark.parametrize("dim", [2, 3, 16, 64, 256, 1024])
def test_cdf_and_pdf_equal_scipy_stats(dim: int) -> None:
    x = np.linspace(-1.0, 1.0, 2001)
    half = (dim - 1) / 2.0
    num = 4096
    sf = beta.sf((x + 1.0) / 2.0, half, half)
    with np.errstate(divide="ignore"):
        want_cdf = np.exp((num - 1) * np.log1p(-sf))
    np.testing.assert_allclose(random_nn_cdf(x, num_prototypes=num, dim=dim), want_cdf,
                               rtol=1e-10, atol=1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pdf = (np.log(num - 1.0) + (num - 2) * np.log(1.0 - sf)
                   + beta.logpdf((x + 1.0) / 2.0, half, half) - np.log(2.0))
    want_pdf = np.nan_to_num(np.exp(log_pdf), nan=0.0)
    np.testing.assert_allclose(random_nn_pdf(x, num_prototypes=num, dim=dim), want_pdf,
                               rtol=1e-9, atol=1e-300)
