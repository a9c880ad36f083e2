import math

import pytest

from collapse_probe.errors import InputError
from collapse_probe.thresholds import (DEFAULT_EPS, Threshold, cosine_to_eps, eps_to_cosine,
                                       resolve_thresholds)


@pytest.mark.parametrize(("eps", "cosine"), [(0.025, 0.9996875), (0.1, 0.995), (0.25, 0.96875),
                                             (0.5, 0.875), (2.0, -1.0)])
def test_published_conversions(eps, cosine):
    assert eps_to_cosine(eps) == pytest.approx(cosine, abs=1e-15)
    assert cosine_to_eps(cosine) == pytest.approx(eps, abs=1e-12)


def test_conversion_matches_unit_vector_geometry():
    # Two unit vectors at angle theta: distance 2 sin(theta/2), cosine cos(theta).
    theta = 0.3
    assert eps_to_cosine(2 * math.sin(theta / 2)) == pytest.approx(math.cos(theta), abs=1e-15)


def test_default_sweep_when_nothing_given():
    assert tuple(t.eps for t in resolve_thresholds()) == DEFAULT_EPS


def test_merges_both_spellings_sorted_without_repeats():
    thresholds = resolve_thresholds(eps=[0.5, 0.1, 0.1], cosine=0.9996875)
    assert [t.eps for t in thresholds] == pytest.approx([0.025, 0.1, 0.5])
    assert all(t.cosine == pytest.approx(eps_to_cosine(t.eps)) for t in thresholds)


@pytest.mark.parametrize("bad", [0.0, -0.1, 2.5, float("nan"), float("inf")])
def test_rejects_bad_eps(bad):
    with pytest.raises(InputError, match="eps: expected a distance in"):
        Threshold.from_eps(bad)


@pytest.mark.parametrize("bad", [1.0, 1.5, -1.5, float("nan")])
def test_rejects_bad_cosine(bad):
    with pytest.raises(InputError, match="cosine: expected a similarity in"):
        Threshold.from_cosine(bad)
