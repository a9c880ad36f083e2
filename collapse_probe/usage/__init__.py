"""Data-side usage: which prototypes real samples land on, plain and merged over duplicates."""

from .assign import assign
from .center import DEFAULT_CENTER_TEMPERATURE, center_usage
from .data import data_usage
from .report import UsageGroup, UsageReport

__all__ = ["assign", "data_usage", "center_usage", "UsageReport", "UsageGroup",
           "DEFAULT_CENTER_TEMPERATURE"]
