"""The gate run: floors per head, fail-closed inputs, JUnit XML and GitHub outputs."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from layouts import planted_prototypes, write_dino, write_esvit

from collapse_probe.gate import (gate_to_junit, github_annotations, github_summary,
                                 in_github_actions, parse_gate_config, run_gate)
from collapse_probe.gate.github import escape_data, escape_property


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """esvit.pth: head 10 of 120 unique (8.33 %), head_dense 60 of 120 (50 %);
    runs/a.pth and runs/b.pth: DINO heads with 30 of 120 (25 %) and 6 of 120 (5 %)."""
    root = tmp_path_factory.mktemp("models")
    view, _ = planted_prototypes(10, 12, 16, seed=0)
    dense, _ = planted_prototypes(60, 2, 16, seed=1)
    write_esvit(root / "esvit.pth", prototypes=view, dense_prototypes=dense)
    (root / "runs").mkdir()
    write_dino(root / "runs" / "a.pth", prototypes=planted_prototypes(30, 4, 16, seed=2)[0])
    write_dino(root / "runs" / "b.pth", prototypes=planted_prototypes(6, 20, 16, seed=3)[0])
    return root


def gate(models, **section):
    return run_gate(parse_gate_config(section, base_dir=models, source="pyproject.toml"))


def statuses(outcome):
    return [(c.checkpoint.rsplit("/", 1)[-1], c.head, c.status) for c in outcome.checks]


def test_every_head_above_its_floor_passes(models):
    outcome = gate(models, checkpoints=["esvit.pth"], heads={"head": 0.08, "head_dense": 0.5})
    assert outcome.passed and outcome.exit_code == 0
    assert statuses(outcome) == [("esvit.pth", "head", "passed"), ("esvit.pth", "head_dense", "passed")]
    head = outcome.checks[0]
    assert (head.unique, head.num_prototypes, head.floor) == (10, 120, 0.08)
    assert head.utilization == pytest.approx(10 / 120)


def test_a_head_below_its_floor_fails_and_per_head_floors_override_fail_under(models):
    outcome = gate(models, checkpoints=["esvit.pth"], fail_under=0.1, heads={"head_dense": 0.6})
    assert not outcome.passed and outcome.exit_code == 1
    assert statuses(outcome) == [("esvit.pth", "head", "failed"), ("esvit.pth", "head_dense", "failed")]
    assert outcome.checks[0].message == "10/120 unique = 8.33 % at eps 0.025 < floor 10.00 %"
    assert outcome.checks[1].floor == 0.6


def test_heads_without_a_floor_are_reported_but_not_gated(models):
    outcome = gate(models, checkpoints=["esvit.pth"], heads={"head_dense": 0.1})
    assert outcome.passed
    assert statuses(outcome) == [("esvit.pth", "head", "not-gated"), ("esvit.pth", "head_dense", "passed")]


def test_globs_expand_relative_to_the_config_folder(models):
    outcome = gate(models, checkpoints=["runs/*.pth"], fail_under=0.1)
    assert statuses(outcome) == [("a.pth", "head", "passed"), ("b.pth", "head", "failed")]


@pytest.mark.parametrize(("entry", "phrase"), [
    ("runs/missing.pth", "checkpoint 'runs/missing.pth' does not exist"),
    ("missing.pth", "checkpoint 'missing.pth' does not exist"),
    ("nowhere/*.pth", "glob 'nowhere/*.pth' matched no file"),
    ("runs/*.npz", "glob 'runs/*.npz' matched no file"),
    ("no_such_model_name", "cannot audit: "),
])
def test_missing_inputs_fail_closed(models, entry, phrase):
    outcome = gate(models, checkpoints=["runs/a.pth", entry], fail_under=0.01)
    assert not outcome.passed and outcome.exit_code == 1
    assert statuses(outcome)[0] == ("a.pth", "head", "passed")
    (failure,) = outcome.failures
    assert failure.head == "" and phrase in failure.message


def test_an_unreadable_file_fails_closed(models, tmp_path):
    (tmp_path / "broken.pth").write_bytes(b"<html>404 Not Found</html>")
    outcome = gate(tmp_path, checkpoints=["broken.pth"], fail_under=0.0)
    assert not outcome.passed
    assert outcome.failures[0].message.startswith("cannot audit: ")


def test_a_configured_head_no_checkpoint_has_fails(models):
    outcome = gate(models, checkpoints=["runs/a.pth"], heads={"head": 0.01, "head_dense": 0.01})
    assert not outcome.passed
    (failure,) = outcome.failures
    assert (failure.head, failure.checkpoint) == ("head_dense", "pyproject.toml")
    assert "no checkpoint has a head named 'head_dense' (heads found: head)" in failure.message


def test_junit_xml_has_one_testcase_per_checkpoint_and_head_and_correct_counts(models):
    outcome = gate(models, checkpoints=["esvit.pth", "runs/*.pth", "gone.pth"],
                   heads={"head": 0.06, "head_neck": 0.1})
    root = ET.fromstring(gate_to_junit(outcome, time_s=1.5))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    # esvit head, esvit head_dense (not gated), a head, b head, gone.pth, unknown head_neck
    assert len(cases) == 6
    for element in (root, suite):
        assert element.get("tests") == "6"
        assert element.get("failures") == "3"  # b.pth 5 % < 6 %, gone.pth, head_neck
        assert element.get("errors") == "0"
        assert element.get("skipped") == "1"
    failures = {(c.get("classname"), c.get("name")): c.find("failure") for c in cases
                if c.find("failure") is not None}
    b_failure = failures[(f"collapse-probe.{models / 'runs' / 'b.pth'}", "head")]
    assert b_failure.get("type") == "PrototypeCollapse"
    assert "6/120 unique = 5.00 % at eps 0.025 < floor 6.00 %" in b_failure.get("message")
    assert "utilization: 0.050000" in b_failure.text and "floor: 0.060000" in b_failure.text
    assert failures[("collapse-probe.gone.pth", "checkpoint")].get("type") == "GateInputError"
    assert ("collapse-probe.pyproject.toml", "head_neck") in failures
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert [c.get("name") for c in skipped] == ["head_dense"]
    assert {p.get("name"): p.get("value") for p in suite.find("properties")}["eps"] == "0.025"


def test_github_annotations_and_summary(models):
    outcome = gate(models, checkpoints=["runs/b.pth", "gone.pth"], fail_under=0.06)
    lines = github_annotations(outcome)
    assert len(lines) == 2
    assert lines[0].startswith("::error title=collapse-probe gate%3A ")
    assert lines[0].endswith("b.pth / head::6/120 unique = 5.00 %25 at eps 0.025 < floor 6.00 %25")
    assert lines[1] == ("::error title=collapse-probe gate%3A gone.pth::checkpoint 'gone.pth' does "
                        f"not exist (looked for {models / 'gone.pth'}).")
    summary = github_summary(outcome)
    assert summary.startswith("### :x: collapse-probe gate FAILED\n")
    assert "| checkpoint | head | unique | K | utilization | floor | result |" in summary
    assert f"| {models / 'runs' / 'b.pth'} | head | 6 | 120 | 5.00 % | 6.00 % | **FAIL** |" in summary
    assert "| gone.pth | - |  |  |  |  | **FAIL**: checkpoint 'gone.pth' does not exist" in summary


def test_github_escaping_and_detection():
    assert escape_data("50 %\nnext\r") == "50 %25%0Anext%0D"
    assert escape_property("a: b, c") == "a%3A b%2C c"
    assert in_github_actions({"GITHUB_ACTIONS": "true"})
    assert not in_github_actions({})


def test_gate_failure_for_an_unsafe_file_names_the_audit_option_once(tmp_path):
    from collapse_probe.checkpoints.loading import unsafe_message
    from collapse_probe.errors import option_style
    from collapse_probe.gate.run import _for_gate, _gate_option

    with option_style(_gate_option):  # as run_gate raises it
        text = _for_gate(unsafe_message(tmp_path / "c.pth", ["posix.system"], what="its prototypes"))
    assert text.count("collapse-probe audit") == 1, text
    assert "refusing to run them. Pass `collapse-probe audit --trust-checkpoint`" in text, text
    assert "(the gate itself never unpickles fully)" in text and "trust=True" not in text, text
