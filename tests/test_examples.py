import numpy as np
import pytest

from collapse_probe.dedup import deduplicate
from collapse_probe.errors import InputError
from collapse_probe.examples import EXAMPLE_NAMES, example_path
from collapse_probe.examples.synthetic import planted_head
from collapse_probe.types import PrototypeSet


def test_planted_head_groups_are_exactly_recovered():
    weights, groups = planted_head(num_prototypes=600, num_groups=37, dim=32, noise=2e-4, seed=3)
    assert weights.shape == (600, 32)
    assert np.bincount(groups).min() >= 1 and groups.max() == 36
    result = deduplicate(PrototypeSet.from_array(weights), eps=0.025)
    np.testing.assert_array_equal(result.labels, groups)


def test_unknown_example_names_the_choices():
    with pytest.raises(InputError, match="synthetic-dino"):
        example_path("no-such-example")


def test_every_example_resolves_to_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLAPSE_PROBE_CACHE", str(tmp_path))
    for name in EXAMPLE_NAMES:
        if name == "synthetic-dino":
            continue  # generated at full size below, through the audit CLI test
        assert example_path(name).is_file()
