"""collapse-probe: find, watch and repair partial prototype collapse in DINO-family models.

The public API is re-exported here lazily, so ``import collapse_probe`` stays instant and pulls
in neither torch nor faiss nor matplotlib until a name that needs them is used.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

from ._version import __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "CollapseProbeError": "errors",
    "InputError": "errors",
    "CheckpointError": "errors",
    "UnsafeCheckpointError": "errors",
    "NoPrototypesError": "errors",
    "CheckpointChangedError": "errors",
    "DownloadError": "errors",
    "ConfigError": "errors",
    "OutputError": "errors",
    "PrototypeSet": "types",
    "DedupResult": "types",
    "Group": "types",
    "Threshold": "thresholds",
    "eps_to_cosine": "thresholds",
    "cosine_to_eps": "thresholds",
    "deduplicate": "dedup",
    "sweep": "dedup",
    "read_checkpoint": "checkpoints",
    "load_prototypes": "checkpoints",
    "inspect_checkpoint": "checkpoints",
    "load_state": "checkpoints",
    "network_state": "checkpoints",
    "Checkpoint": "checkpoints",
    "CheckpointInfo": "checkpoints",
    "HeadInfo": "checkpoints",
    "FORMATS": "families",
    "Family": "families",
    "FAMILIES": "families",
    "ZooEntry": "zoo",
    "ZOO": "zoo",
    "fetch": "zoo",
    "resolve_source": "sources",
    "file_sha256": "hashing",
    "audit": "audit",
    "AuditReport": "audit",
    "CheckpointAudit": "audit",
    "HeadAudit": "audit",
    "GateResult": "audit",
    "write_report": "report.writer",
    "render_markdown": "report.markdown",
    "render_html": "report.html",
    "render_csv": "report.csv",
    "report_figures": "report.figures",
    "ReportFigure": "report.figures",
    "utilization_vs_eps": "report.figures",
    "group_sizes_by_rank": "report.figures",
    "nn_similarity_histogram": "report.figures",
    "pca_map": "report.figures",
    "norm_distribution": "report.figures",
    "Verdict": "audit",
    "VerdictPolicy": "audit",
    "judge_head": "audit",
    "nearest_neighbour_similarity": "audit",
    "trend": "runs",
    "trend_figure": "runs",
    "TrendReport": "runs",
    "Watcher": "runs",
    "read_training_log": "runs",
    "detect_plateau": "runs",
    "GateConfig": "gate",
    "load_gate_config": "gate",
    "run_gate": "gate",
    "GateOutcome": "gate",
    "KoLeoProtoLoss": "koleo",
    "finetune": "repair",
    "FinetuneResult": "repair",
    "rebuild_head": "heads",
    "PrototypeHead": "heads",
    "data_usage": "usage",
    "center_usage": "usage",
    "usage_from_checkpoint": "usage",
    "UsageReport": "usage",
    "usage_figures": "usage",
    "PrototypeMonitor": "monitor",
    "PrototypeCollapseWarning": "monitor",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'collapse_probe' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


class _Package(ModuleType):
    """``collapse_probe`` itself. The function :func:`audit` shares its name with the subpackage
    ``collapse_probe.audit`` that defines it; Python binds a subpackage to its parent's attribute
    when it is first imported (by the renderers, say), which would hide the function. The
    attribute stays the function; the subpackage is ``sys.modules["collapse_probe.audit"]``."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "audit" and isinstance(value, ModuleType):
            value = value.audit
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
