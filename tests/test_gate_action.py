"""action.yml: a composite action that installs collapse-probe and runs the gate safely."""

from __future__ import annotations

import re
from pathlib import Path

ACTION = Path(__file__).resolve().parent.parent / "action.yml"


def _top_level_block(text: str, key: str) -> str:
    match = re.search(rf"^{key}:\n((?:[ \t].*\n|\n)*)", text, re.M)
    assert match, f"no top-level {key!r}"
    return match.group(1)


def test_action_is_composite_with_the_documented_inputs():
    text = ACTION.read_text()
    inputs = _top_level_block(text, "inputs")
    names = re.findall(r"^  ([a-z][a-z0-9-]*):$", inputs, re.M)
    assert names == ["config", "python-version", "version", "pip-args", "junit-xml", "working-directory"]
    runs = _top_level_block(text, "runs")
    assert re.search(r"^  using: composite$", runs, re.M)
    assert "uses: actions/setup-python@v5" in runs
    assert '"collapse-probe${CP_VERSION}"' in runs
    assert 'collapse-probe gate "${args[@]}"' in runs


def test_inputs_reach_shell_steps_only_through_environment_variables():
    # ${{ inputs.* }} pasted into a `run:` script is a script-injection hole; pass them as env.
    runs = _top_level_block(ACTION.read_text(), "runs")
    scripts = re.findall(r"run: \|\n((?:        .*\n)+)", runs)
    assert len(scripts) == 2
    for script in scripts:
        assert "${{" not in script
    assert all(shell == "bash" for shell in re.findall(r"shell: (\S+)", runs))
