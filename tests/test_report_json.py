import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import collapse_probe
from collapse_probe import audit
from collapse_probe.report.json import SCHEMA_VERSION, report_to_dict, report_to_json

SCHEMA = json.loads((Path(collapse_probe.__file__).parent / "report" / "schema.json").read_text())


@pytest.fixture(scope="module")
def report():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, 16))
    weights = np.repeat(base, [60, 1, 1, 1, 1], axis=0)  # one group of 60 exact copies
    return audit(weights, eps=[0.025, 0.5], fail_under=0.5)


def test_json_validates_against_the_published_schema(report):
    jsonschema.validate(json.loads(report_to_json(report)), SCHEMA)


def test_json_content(report):
    data = report_to_dict(report)
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert data["tool"] == {"name": "collapse-probe", "version": collapse_probe.__version__}
    (head,) = data["checkpoints"][0]["heads"]
    assert (head["num_prototypes"], head["dim"]) == (64, 16)
    first = head["results"][0]
    assert (first["eps"], first["cosine"], first["unique"], first["largest_group"]) == (
        0.025, 0.9996875, 5, 60)
    assert first["utilization"] == pytest.approx(5 / 64)
    group = first["largest_groups"][0]
    assert group["size"] == 60 and group["members"] == list(range(50)) and group["members_truncated"]
    assert data["gate"] == {"fail_under": 0.5, "eps": 0.025, "passed": False,
                            "failures": [{"checkpoint": "<array>", "head": "prototypes",
                                          "utilization": pytest.approx(5 / 64)}]}
