"""The CI gate: a configuration in ``pyproject.toml``, an audit, JUnit and GitHub outputs."""

from __future__ import annotations

from .config import GateConfig, load_gate_config, parse_gate_config
from .github import github_annotations, github_summary, in_github_actions
from .junit import gate_to_junit
from .run import GateCheck, GateOutcome, run_gate

__all__ = ["GateConfig", "load_gate_config", "parse_gate_config", "GateCheck", "GateOutcome",
           "run_gate", "gate_to_junit", "github_annotations", "github_summary", "in_github_actions"]
