"""Markdown and CSV against golden files; HTML structurally; JSON against the schema.

The golden files in tests/golden/ are regenerated only on purpose:
``COLLAPSE_PROBE_UPDATE_GOLDEN=1 python -m pytest tests/test_report_render.py``, then review the diff.
"""

import csv
import io
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
from report_heads import small_report

import collapse_probe
from collapse_probe.report.csv import CSV_COLUMNS, render_csv
from collapse_probe.report.figures import report_figures
from collapse_probe.report.html import render_html
from collapse_probe.report.json import report_to_dict
from collapse_probe.report.markdown import render_markdown

GOLDEN = Path(__file__).parent / "golden"
SCHEMA = json.loads((Path(collapse_probe.__file__).parent / "report" / "schema.json").read_text())


@pytest.fixture(scope="module")
def report():
    return small_report()


@pytest.fixture(scope="module")
def figures(report):
    return report_figures(report, heads=["head_dense"])  # five figures keep the test quick


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("COLLAPSE_PROBE_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_markdown_golden(report):
    check_golden("report_small.md", render_markdown(report))


def test_csv_golden(report):
    check_golden("heads_small.csv", render_csv(report))


def test_csv_has_one_row_per_checkpoint_head_threshold(report):
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 2 * 2 * 2  # checkpoints x heads x thresholds
    assert {r["verdict"] for r in rows} == {"partial-collapse", "collapsed", "healthy", "untrained"}
    dense = [r for r in rows if r["head"] == "head_dense"]
    assert [(float(r["eps"]), int(r["unique"])) for r in dense] == [(0.025, 3), (0.5, 3)]


def test_markdown_links_figures_and_states_the_hint(report, figures):
    text = render_markdown(report, figures)
    for figure in figures:
        assert f"]({figure.name}.png)" in text
    assert "Verdicts are hints" in text and "**Gate failed**" in text


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.refs, self.images, self.ids = [], [], [], [], []

    VOID = {"meta", "img", "br", "link", "input", "hr"}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.refs += [attrs[a] for a in ("src", "href") if a in attrs]
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()


def test_html_is_self_contained_and_well_formed(report, figures):
    page = render_html(report, figures)
    parser = Collector()
    parser.feed(page)
    assert page.startswith("<!DOCTYPE html>")
    assert parser.errors == [] and parser.stack == []
    assert not any(re.match(r"(https?:)?//", ref) for ref in parser.refs)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert len(parser.images) == len(figures) == 5
    assert all(src.startswith("data:image/png;base64,iVBORw0KGgo") for src in parser.images)
    assert {f"fig-{f.name}" for f in figures} == set(parser.ids)
    for label in ("partial-collapse", "collapsed", "healthy", "untrained"):
        assert f">{label}</span>" in page
    assert "Verdicts are hints" in page and "Gate failed" in page


def test_html_escapes_names(report):
    import dataclasses

    checkpoint = dataclasses.replace(report.checkpoints[0], source="<b>&evil</b>")
    page = render_html(dataclasses.replace(report, checkpoints=(checkpoint,)))
    assert "<b>&evil" not in page and "&lt;b&gt;&amp;evil" in page


def test_json_with_verdicts_validates_against_the_schema(report):
    data = report_to_dict(report)
    jsonschema.validate(data, SCHEMA)
    verdicts = [h["verdict"] for c in data["checkpoints"] for h in c["heads"]]
    assert [v["label"] for v in verdicts] == ["partial-collapse", "collapsed", "healthy", "untrained"]
    assert verdicts[1]["evidence"]["unique"] == 3 and "3 of 200" in verdicts[1]["reason"]
    json.dumps(data, allow_nan=False)  # evidence is plain JSON


def test_schema_rejects_an_unknown_verdict(report):
    data = report_to_dict(report)
    data["checkpoints"][0]["heads"][0]["verdict"]["label"] = "fine"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, SCHEMA)


def test_plain_figure_mapping_is_accepted(report):
    from collapse_probe.report.figures import utilization_vs_eps

    mapping = {"sweep": utilization_vs_eps(report)}
    assert "![Unique prototypes vs duplicate threshold (components)](sweep.png)" in render_markdown(
        report, mapping)
    page = render_html(report, mapping)
    assert page.count("data:image/png;base64,") == 1 and 'id="fig-sweep"' in page


def test_terminal_table_shows_verdicts_and_the_hint(report):
    from rich.console import Console

    from collapse_probe.cli.render import render_audit

    console = Console(width=100, record=True, color_system=None)
    for renderable in render_audit(report):
        console.print(renderable)
    text = console.export_text()
    assert "verdict" in text
    for label in ("partial-collapse", "collapsed", "healthy", "untrained"):
        assert f"│ {label}" in text  # in the table's verdict column, untruncated
    assert "head_dense: collapsed - Only 3 of 200 prototypes unique (1.50 %)" in text
    assert "Verdicts are hints" in text


def test_terminal_table_at_80_columns_keeps_every_number_whole(report):
    from rich.console import Console

    from collapse_probe.cli.render import render_audit

    console = Console(width=80, record=True, color_system=None)
    for renderable in render_audit(report):
        console.print(renderable)
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert "│ 0.9996875 │" in text and "utilization" in text  # cosine and header untruncated
    # the verdict column gives way; the verdicts stay, in the sentences under each table
    assert "│ partial-collapse" not in text
    for label in ("partial-collapse", "collapsed", "healthy", "untrained"):
        assert f": {label} - " in text
