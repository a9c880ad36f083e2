"""Verdicts on constructed heads, policy overrides, and the nearest-neighbour numbers behind them."""

import numpy as np
import pytest
from report_heads import collapsed_head, healthy_head, partial_head, random_head, unit

from collapse_probe import InputError, PrototypeSet, sweep
from collapse_probe.auditing.neighbours import nearest_neighbour_similarity, random_nn_cdf
from collapse_probe.auditing.verdicts import VERDICT_LABELS, Verdict, VerdictPolicy, judge_head


def verdict(weights, **policy):
    head = PrototypeSet.from_array(weights)
    return judge_head(head, sweep(head, eps=[0.025, 0.1]), policy=VerdictPolicy(**policy))


@pytest.mark.parametrize(("weights", "label"), [
    (random_head(), "untrained"),
    (random_head(num=2000, dim=8, seed=4), "untrained"),
    (collapsed_head(directions=1), "collapsed"),
    (collapsed_head(directions=3), "collapsed"),
    (partial_head(), "partial-collapse"),
    (healthy_head(), "healthy"),
])
def test_constructed_heads_get_their_verdict(weights, label):
    result = verdict(weights)
    assert result.label == label, result.reason
    assert result.label in VERDICT_LABELS


def test_reason_and_evidence_carry_the_numbers():
    result = verdict(partial_head())
    assert result.evidence["unique"] == 60 and result.evidence["num_prototypes"] == 200
    assert result.evidence["utilization"] == pytest.approx(0.3)
    assert "60 of 200" in result.reason and "30.00 %" in result.reason and "50 %" in result.reason
    untrained = verdict(random_head())
    assert untrained.evidence["nn_ks"] <= untrained.evidence["nn_ks_allowed"]
    assert f"{untrained.evidence['nn_ks']:.3f}" in untrained.reason
    # The random-case median is the CDF's 1/2 point.
    median = untrained.evidence["random_nn_median"]
    assert float(random_nn_cdf(median, num_prototypes=300, dim=32)) == pytest.approx(0.5, abs=1e-4)


def test_policy_overrides_change_the_verdict():
    assert verdict(partial_head(), healthy_floor=0.25).label == "healthy"
    assert verdict(healthy_head(), healthy_floor=1.0).label == "healthy"  # 100 % reaches 100 %
    assert verdict(collapsed_head(directions=3), collapsed_max_unique=2).label == "partial-collapse"
    # Three groups of a third each: a low floor alone still leaves the dominant-group rule.
    assert verdict(collapsed_head(directions=3), healthy_floor=0.01).label == "partial-collapse"
    assert verdict(collapsed_head(directions=3), healthy_floor=0.01,
                   max_group_fraction=1.0).label == "healthy"
    # A wider eps merges the near-copies spread 0.05 apart: counted at 0.1 they collapse.
    rng = np.random.default_rng(7)
    centre = unit(rng.standard_normal((1, 32)))
    near = unit(centre + 0.006 * rng.standard_normal((50, 32)))
    assert verdict(near).label != "collapsed"
    assert verdict(near, eps=0.1).label == "collapsed"


def near_copies(centres: int, copies: int, *, spread: float = 0.008, dim: int = 32,
                seed: int = 11) -> np.ndarray:
    """``copies`` rows around each of ``centres`` directions, about 8 * spread = 0.06 apart:
    distinct at eps 0.025, one group per centre at eps 0.1."""
    rng = np.random.default_rng(seed)
    base = unit(rng.standard_normal((centres, dim)))
    return unit(base[np.arange(centres * copies) % centres]
                + spread * rng.standard_normal((centres * copies, dim)))


def test_a_quarter_in_one_group_at_eps_0_1_is_not_healthy():
    head = np.concatenate([healthy_head(), near_copies(1, 100)])  # K = 340
    swept = sweep(PrototypeSet.from_array(head), eps=[0.025, 0.1])
    assert swept[0].unique == 340 and swept[1].largest_group == 100  # the planted group
    result = verdict(head)
    assert result.label == "partial-collapse", result.reason
    assert "340 of 340" in result.reason and "eps 0.1" in result.reason
    assert "100 of 340" in result.reason and "29.4 %" in result.reason
    assert result.evidence["duplication_eps"] == 0.1
    assert result.evidence["duplication_largest_group"] == 100
    assert result.evidence["unique"] == 340  # read at the gate's eps, unchanged


def test_a_large_drop_in_unique_fraction_is_not_healthy():
    head = near_copies(60, 5)  # K = 300, 60 groups of 5 at eps 0.1, none larger
    swept = sweep(PrototypeSet.from_array(head), eps=[0.025, 0.1])
    assert swept[0].unique == 300 and swept[1].unique == 60 and swept[1].largest_group == 5
    result = verdict(head)
    assert result.label == "partial-collapse", result.reason
    assert "only 60 of 300" in result.reason and "eps 0.1" in result.reason
    assert result.evidence["duplication_unique"] == 60


def test_the_sweep_rule_reads_only_what_was_swept_up_to_loose_eps():
    head = PrototypeSet.from_array(np.concatenate([healthy_head(), near_copies(1, 100)]))
    assert judge_head(head, sweep(head, eps=[0.025])).label == "healthy"
    assert judge_head(head, sweep(head, eps=[0.025, 0.1]),
                      policy=VerdictPolicy(loose_eps=0.05)).label == "healthy"
    assert judge_head(head, sweep(head, eps=[0.025, 0.1]),
                      policy=VerdictPolicy(max_group_fraction=0.5)).label == "healthy"
    # A clean head stays healthy however wide the sweep.
    clean = PrototypeSet.from_array(healthy_head())
    assert judge_head(clean, sweep(clean, eps=[0.025, 0.1, 0.25, 0.5])).label == "healthy"


def test_policy_eps_missing_from_results_is_computed():
    head = PrototypeSet.from_array(partial_head())
    result = judge_head(head, sweep(head, eps=[0.5]), policy=VerdictPolicy(eps=0.025))
    assert result.evidence["eps"] == 0.025 and result.evidence["unique"] == 60


@pytest.mark.parametrize(("field", "value"), [("healthy_floor", 1.5), ("collapsed_max_unique", 0),
                                              ("untrained_max_ks", -0.1), ("eps", 3.0),
                                              ("loose_eps", -1.0), ("max_group_fraction", 0.0)])
def test_bad_policy_is_an_input_error(field, value):
    with pytest.raises(InputError, match=field):
        VerdictPolicy(**{field: value})


def test_verdict_label_is_checked():
    with pytest.raises(InputError):
        Verdict("fine", "reason")


def brute_force_nn(vectors):
    sims = vectors.astype(np.float64) @ vectors.T.astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    return sims.max(axis=1)


def test_nearest_neighbours_match_brute_force_with_exact_duplicates():
    rows = unit(random_head(num=150, dim=12, seed=9))
    rows = np.concatenate([rows, rows[:20]]).astype(np.float32)  # 20 exact copies
    got = nearest_neighbour_similarity(rows, block_size=64)
    assert got.exact and got.num_anchors == 170
    np.testing.assert_allclose(got.similarities, np.clip(brute_force_nn(rows), -1, 1), atol=1e-5)
    assert np.all(got.similarities[:20] > 0.99999)


def test_sampled_anchors_are_searched_against_all_prototypes():
    rows = unit(random_head(num=400, dim=6, seed=10)).astype(np.float32)
    got = nearest_neighbour_similarity(rows, max_exact=100, num_anchors=50, seed=3)
    assert not got.exact and got.num_anchors == 50 and len(set(got.anchors.tolist())) == 50
    np.testing.assert_allclose(got.similarities, brute_force_nn(rows)[got.anchors], atol=1e-5)
    again = nearest_neighbour_similarity(rows, max_exact=100, num_anchors=50, seed=3)
    np.testing.assert_array_equal(got.anchors, again.anchors)


def test_random_nn_law_matches_simulation():
    # Monte Carlo oracle: the largest cosine between one random unit vector and K - 1 others.
    num, dim, trials = 20, 5, 4000
    rng = np.random.default_rng(11)
    draws = unit(rng.standard_normal((trials, num, dim)).reshape(-1, dim)).reshape(trials, num, dim)
    nn = np.einsum("td,tkd->tk", draws[:, 0], draws[:, 1:]).max(axis=1)
    for x in (0.3, 0.5, 0.7, 0.9):
        assert float(random_nn_cdf(x, num_prototypes=num, dim=dim)) == pytest.approx(
            np.mean(nn <= x), abs=0.025)
