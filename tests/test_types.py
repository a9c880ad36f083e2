import numpy as np
import pytest

from collapse_probe.errors import InputError
from collapse_probe.types import DedupResult, PrototypeSet


def test_from_array_normalises_rows_and_keeps_norms():
    weights = np.array([[3.0, 4.0], [0.0, -2.0], [1.0, 0.0]])
    head = PrototypeSet.from_array(weights, name="head")
    np.testing.assert_allclose(head.vectors, [[0.6, 0.8], [0.0, -1.0], [1.0, 0.0]], atol=1e-7)
    np.testing.assert_allclose(head.norms, [5.0, 2.0, 1.0])
    assert (head.num_prototypes, head.dim, head.vectors.dtype) == (3, 2, np.float32)


def test_arrays_are_read_only():
    head = PrototypeSet.from_array(np.eye(3))
    with pytest.raises(ValueError):
        head.vectors[0, 0] = 5.0


@pytest.mark.parametrize(("weights", "phrase"), [
    (np.ones(4), "2-D array"),
    (np.ones((1, 4)), "at least 2 prototypes"),
    (np.array([[1.0, np.nan], [1.0, 0.0]]), "NaN or Inf in 1 rows"),
    (np.array([[0.0, 0.0], [1.0, 0.0]]), "all-zero rows"),
    (np.array([["a", "b"], ["c", "d"]]), "real-valued"),
])
def test_from_array_rejects_bad_input_with_one_message_template(weights, phrase):
    with pytest.raises(InputError, match=phrase) as info:
        PrototypeSet.from_array(weights, name="head")
    assert str(info.value).startswith("head: expected ")
    assert "\n" not in str(info.value)


def test_dedup_result_statistics():
    result = DedupResult(eps=0.1, cosine=0.995, method="components",
                         labels=np.array([0, 1, 0, 2, 0, 1]))
    assert result.unique == 3
    assert result.utilization == pytest.approx(0.5)
    np.testing.assert_array_equal(result.group_sizes, [3, 2, 1])
    assert result.largest_group == 3
    groups = result.largest_groups(2)
    assert [(g.size, g.members) for g in groups] == [(3, (0, 2, 4)), (2, (1, 5))]
