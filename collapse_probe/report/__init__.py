"""The audit report: its model, its JSON form and its renderers."""
