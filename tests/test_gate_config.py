"""The gate's configuration: [tool.collapse-probe] in pyproject.toml or a standalone TOML file."""

from __future__ import annotations

import pytest

from collapse_probe.errors import ConfigError
from collapse_probe.gate import load_gate_config, parse_gate_config


def test_pyproject_section_is_read_with_defaults(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.collapse-probe]\ncheckpoints = ["runs/*.pth", "dino_vits16"]\n'
        'fail_under = 0.01\n\n[tool.collapse-probe.heads]\nhead_dense = 0.005\n')
    config = load_gate_config(cwd=tmp_path)
    assert config.checkpoints == ("runs/*.pth", "dino_vits16")
    assert (config.eps, config.method, config.read.network) == (0.025, "components", "teacher")
    assert config.floor_for("head_dense") == 0.005 and config.floor_for("head") == 0.01
    assert config.base_dir == tmp_path.resolve()


def test_standalone_toml_holds_the_keys_at_top_level(tmp_path):
    path = tmp_path / "gate.toml"
    path.write_text('checkpoints = "a.pth"\neps = 0.1\nmethod = "greedy"\nnetwork = "student"\n'
                    '[heads]\nhead = 0.2\n')
    config = load_gate_config(path)
    assert config.checkpoints == ("a.pth",)
    assert (config.eps, config.method, config.read.network) == (0.1, "greedy", "student")
    assert config.floor_for("head") == 0.2 and config.floor_for("other") is None


@pytest.mark.parametrize(("section", "phrase"), [
    ({"checkpoints": ["a.pth"], "fail_undr": 0.1}, "unknown key in [tool.collapse-probe]: 'fail_undr' "
                                                   "(did you mean 'fail_under'?)"),
    ({"checkpoints": ["a.pth"], "fail_under": 0.1, "hedas": {}, "zzz": 1},
     "unknown keys in [tool.collapse-probe]: 'hedas' (did you mean 'heads'?), 'zzz'; known keys"),
    ({"checkpoints": [], "fail_under": 0.1}, "`checkpoints` must be a non-empty list"),
    ({"checkpoints": [1], "fail_under": 0.1}, "`checkpoints` must be a non-empty list"),
    ({"fail_under": 0.1}, "`checkpoints` must be a non-empty list"),
    ({"checkpoints": ["a.pth"], "fail_under": 5}, "`fail_under` must be a utilization fraction in [0, 1]"),
    ({"checkpoints": ["a.pth"], "fail_under": "5%"}, "`fail_under` must be a utilization fraction"),
    ({"checkpoints": ["a.pth"], "fail_under": True}, "`fail_under` must be a utilization fraction"),
    ({"checkpoints": ["a.pth"], "heads": {"head": -0.1}}, "`heads.head` must be a utilization fraction"),
    ({"checkpoints": ["a.pth"], "heads": [0.1]}, "`heads` must be a table"),
    ({"checkpoints": ["a.pth"]}, "nothing to gate"),
    ({"checkpoints": ["a.pth"], "fail_under": 0.1, "eps": 0}, "`eps` must be a distance in (0, 2]"),
    ({"checkpoints": ["a.pth"], "fail_under": 0.1, "method": "greedi"},
     "`method` must be one of 'components', 'greedy', got 'greedi' (did you mean 'greedy'?)"),
    ({"checkpoints": ["a.pth"], "fail_under": 0.1, "network": 1}, "`network` must be one of"),
    ({"checkpoints": ["a.pth"], "fail_under": 0.1, "format": ""}, "`format` must be a non-empty string"),
])
def test_invalid_sections_are_config_errors_with_one_line(section, phrase):
    with pytest.raises(ConfigError) as info:
        parse_gate_config(section, source="pyproject.toml")
    message = str(info.value)
    assert phrase in message and "\n" not in message
    assert message.startswith("pyproject.toml: ")


def test_missing_files_and_sections(tmp_path):
    with pytest.raises(ConfigError, match="no pyproject.toml in"):
        load_gate_config(cwd=tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_gate_config(tmp_path / "gate.toml")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"has no \[tool.collapse-probe\] table"):
        load_gate_config(cwd=tmp_path)
    (tmp_path / "bad.toml").write_text("checkpoints = [\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_gate_config(tmp_path / "bad.toml")
