"""Data-side usage: which prototypes real samples land on, plain and merged over duplicates."""

from .assign import assign
from .center import DEFAULT_CENTER_TEMPERATURE, center_usage
from .checkpoint import SPACES, load_features, usage_from_checkpoint
from .data import data_usage
from .figures import usage_figures
from .report import UsageGroup, UsageReport

__all__ = ["assign", "data_usage", "center_usage", "usage_from_checkpoint", "load_features",
           "UsageReport", "UsageGroup", "DEFAULT_CENTER_TEMPERATURE", "SPACES",
           "usage_figures"]
