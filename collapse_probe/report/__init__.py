"""Renders and writes an AuditReport (:mod:`collapse_probe.auditing`): JSON, CSV, Markdown, HTML,
the terminal summary and the figures."""
