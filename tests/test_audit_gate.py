"""The one gate rule that ``audit --fail-under`` and ``gate`` share."""

import pytest

from collapse_probe.auditing import gate_passes, head_status


@pytest.mark.parametrize(("utilization", "floor", "status"), [
    (0.05, 0.1, "failed"),
    (0.1, 0.1, "passed"),  # reaching the floor passes
    (0.5, 0.1, "passed"),
    (0.0, 0.0, "passed"),
    (0.01, None, "not-gated"),
])
def test_head_status(utilization, floor, status):
    assert head_status(utilization, floor) == status


@pytest.mark.parametrize(("statuses", "passed"), [
    (["passed", "passed"], True),
    (["passed", "not-gated"], True),
    (["passed", "failed"], False),
    (["not-gated"], False),  # nothing gated: fails closed
    ([], False),
])
def test_gate_passes(statuses, passed):
    assert gate_passes(iter(statuses)) is passed
