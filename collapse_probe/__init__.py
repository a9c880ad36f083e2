"""collapse-probe: find, watch and repair partial prototype collapse in DINO-family models.

The public API is re-exported here lazily, so ``import collapse_probe`` stays instant and pulls
in neither torch nor faiss nor matplotlib until a name that needs them is used.
"""

from __future__ import annotations

import importlib
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
    "ReadOptions": "options",
    "file_sha256": "hashing",
    "audit": "auditing",
    "AuditReport": "auditing",
    "CheckpointAudit": "auditing",
    "HeadAudit": "auditing",
    "GateResult": "auditing",
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
    "Verdict": "auditing",
    "VerdictPolicy": "auditing",
    "judge_head": "auditing",
    "nearest_neighbour_similarity": "auditing",
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
    "TrainSettings": "repair",
    "KoLeoSettings": "repair",
    "TeacherSettings": "repair",
    "DinoSettings": "repair",
    "MsnSettings": "repair",
    "SwavSettings": "repair",
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

