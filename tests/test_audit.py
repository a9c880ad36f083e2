import numpy as np
import pytest

from collapse_probe import audit
from collapse_probe.errors import InputError
from collapse_probe.examples.synthetic import planted_head
from collapse_probe.types import PrototypeSet


@pytest.fixture(scope="module")
def planted():
    weights, groups = planted_head(num_prototypes=400, num_groups=25, dim=24, noise=2e-4, seed=1)
    return weights, groups


def test_audit_of_an_array_counts_planted_groups_at_every_threshold(planted):
    weights, _ = planted
    report = audit(weights, eps=[0.025, 0.1])
    (checkpoint,) = report.checkpoints
    (head,) = checkpoint.heads
    assert [r.eps for r in head.results] == [0.025, 0.1]
    assert [r.unique for r in head.results] == [25, 25]
    assert head.result_at(0.1).utilization == pytest.approx(25 / 400)
    assert report.gate is None


def test_gate_threshold_is_added_and_decides(planted):
    weights, _ = planted
    report = audit(weights, eps=0.5, fail_under=0.05, gate_eps=0.025)
    assert [t.eps for t in report.thresholds] == [0.025, 0.5]
    assert report.gate.passed  # 25 / 400 = 6.25 % >= 5 %
    failing = audit(weights, eps=0.5, fail_under=0.1, gate_eps=0.025)
    assert not failing.gate.passed
    (failure,) = failing.gate.failures
    assert failure.utilization == pytest.approx(25 / 400)


def test_several_heads_of_one_checkpoint(planted):
    weights, _ = planted
    heads = [PrototypeSet.from_array(weights, name="head"),
             PrototypeSet.from_array(np.eye(8), name="head_dense")]
    report = audit(heads, eps=0.025)
    assert [h.name for h in report.checkpoints[0].heads] == ["head", "head_dense"]
    assert [h.results[0].unique for h in report.checkpoints[0].heads] == [25, 8]


@pytest.mark.parametrize(("kwargs", "phrase"), [
    ({"method": "average"}, "method: expected 'components' or 'greedy'"),
    ({"fail_under": 5}, "fail_under: expected a utilization fraction"),
    ({"eps": -1.0}, "eps: expected a distance"),
])
def test_bad_options_raise_input_errors(planted, kwargs, phrase):
    with pytest.raises(InputError, match=phrase):
        audit(planted[0], **kwargs)


def test_no_sources_is_an_error():
    with pytest.raises(InputError, match="at least one checkpoint"):
        audit([])


def test_progress_reports_reading_and_search(planted):
    lines = []
    audit(planted[0], eps=0.025, progress=lines.append)
    assert lines[0].startswith("reading ndarray of shape (400, 24)")
    search = [line for line in lines if line.startswith("deduplicating <array> / prototypes (K=400)")]
    assert search[0].endswith("(K=400)")  # announced before the search starts
    assert search[-1].endswith(": 100 %")  # and the engine's own progress reaches the end


def test_verdict_threshold_is_swept_once_and_kept_out_of_the_shown_results(planted, monkeypatch):
    import collapse_probe.dedup as dedup

    def no_second_pass(*args, **kwargs):
        raise AssertionError("the verdict ran its own deduplication")

    monkeypatch.setattr(dedup, "deduplicate", no_second_pass)
    weights, _ = planted
    report = audit(weights, eps=[0.1, 0.5])
    (head,) = report.checkpoints[0].heads
    assert [t.eps for t in report.thresholds] == [0.1, 0.5]
    assert [r.eps for r in head.results] == [0.1, 0.5]
    assert [r.eps for r in head.extra_results] == [0.025]
    assert head.result_at(0.025).unique == 25  # the planted groups, read from the one sweep
    assert head.verdict.evidence["eps"] == 0.025 and head.verdict.evidence["unique"] == 25
    with pytest.raises(KeyError):
        head.result_at(0.05)
