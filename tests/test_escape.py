"""Names from files are data: every escaper, and hostile names through every renderer."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from report_heads import collapsed_head, healthy_head

from collapse_probe import audit, escape
from collapse_probe.gate.config import parse_gate_config
from collapse_probe.gate.github import github_annotations, github_summary
from collapse_probe.gate.junit import gate_to_junit
from collapse_probe.gate.run import GateCheck, GateOutcome
from collapse_probe.report.csv import render_csv
from collapse_probe.report.html import render_html
from collapse_probe.report.markdown import render_markdown
from collapse_probe.cli.render import render_audit
from collapse_probe.types import PrototypeSet

#: A name that is markup, a command, a control sequence, HTML, a formula and a cell border.
HOSTILE = "x[/bold]y\n::error::pwn\x1b[31m<img src=x onerror=alert(1)>|=1+2\x00\u202e"
FORMULA = '=HYPERLINK("http://evil","click")'
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]")


def test_terminal_shows_control_characters_as_escapes():
    assert escape.terminal("a\nb\x1b[31mc\x00\x7f\u202e") == "a\\x0ab\\x1b[31mc\\x00\\x7f\\u202e"
    assert escape.terminal("plain head_name 1.5") == "plain head_name 1.5"


def test_terminal_markup_escapes_rich_markup():
    from rich.console import Console
    from rich.text import Text

    for name in ("x[/bold]y", "[link=http://evil]click[/link]", "a[red]b", HOSTILE):
        console = Console(file=io.StringIO(), width=200, color_system=None)
        console.print(escape.terminal_markup(name))  # [/bold] alone would raise MarkupError
        shown = console.file.getvalue()
        assert shown.rstrip("\n") == Text.from_markup(escape.terminal_markup(name)).plain
        assert escape.terminal(name) in shown and "\n" not in shown.rstrip("\n")


def test_markdown_is_literal_text_on_one_line():
    out = escape.markdown(HOSTILE)
    assert "\n" not in out and "<img" not in out and "&lt;img" in out
    assert "\\|" in out and "\\[" in out
    assert escape.markdown("head_dense") == "head_dense"  # intraword underscores stay readable
    assert escape.markdown("_x_ *y* `z` ~w~") == "\\_x\\_ \\*y\\* \\`z\\` \\~w\\~"
    assert escape.markdown_code("a`b") == "``a`b``" and escape.markdown_code("ok") == "`ok`"


def test_html_escapes_markup_and_quotes():
    out = escape.html('<script>"x"</script>&\n')
    assert out == "&lt;script&gt;&quot;x&quot;&lt;/script&gt;&amp;\\x0a"


@pytest.mark.parametrize("text", ["=1+2", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", FORMULA])
def test_csv_cells_never_start_a_formula(text):
    assert escape.csv_cell(text) == "'" + text


def test_csv_leaves_ordinary_text_alone():
    assert escape.csv_cell("dino_head") == "dino_head" and escape.csv_cell("a=b") == "a=b"


def test_xml_drops_forbidden_characters():
    assert escape.xml("a\x00b\x1bc\x0bd\tok\n\ufffe") == "abcd\tok\n"


def test_workflow_command_encoding():
    assert escape.workflow_data("50 %\r\n::x") == "50 %25%0D%0A::x"
    assert escape.workflow_property("a:b,c\n") == "a%3Ab%2Cc%0A"
    assert escape.workflow_data("a\x1b[2Jb") == "a\\x1b[2Jb"


@pytest.fixture(scope="module")
def hostile_report():
    heads = (PrototypeSet.from_array(collapsed_head(), name=HOSTILE),
             PrototypeSet.from_array(healthy_head(), name=FORMULA))
    return audit([heads], eps=[0.025, 0.5], fail_under=0.5)


def test_terminal_renderer(hostile_report):
    from rich.console import Console

    console = Console(file=io.StringIO(), width=400, color_system="truecolor")
    for renderable in render_audit(hostile_report):
        console.print(renderable)
    shown = re.sub(r"\x1b\[[0-9;]*m", "", console.file.getvalue())  # rich's own colours
    assert "\x1b" not in shown and "\x00" not in shown and "\u202e" not in shown
    assert "x[/bold]y\\x0a::error::pwn\\x1b[31m" in shown
    assert not any(line.startswith("::") for line in shown.splitlines())


def test_markdown_renderer(hostile_report):
    text = render_markdown(hostile_report)
    assert not CONTROL.search(text)
    # Raw HTML only inside a code span, where Markdown shows it as text.
    assert all(line.startswith("### Head `") and line.endswith("`")
               for line in text.splitlines() if "<img" in line)
    assert not any(line.startswith("::") for line in text.splitlines())
    for line in text.splitlines():
        if line.startswith("| ") and "pwn" in line:
            assert line.count(" | ") == 7  # no extra cell from the name's |


def test_html_renderer(hostile_report):
    text = render_html(hostile_report, ())
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert not CONTROL.search(text)


def test_csv_renderer(hostile_report):
    rows = list(csv.DictReader(io.StringIO(render_csv(hostile_report))))
    assert {row["head"] for row in rows} == {"'" + FORMULA, HOSTILE}
    for row in rows:
        for column in ("checkpoint", "path", "format", "network", "head"):
            assert not row[column].startswith(("=", "+", "-", "@", "\t", "\r"))


def _outcome() -> GateOutcome:
    config = parse_gate_config({"checkpoints": ["runs/a.pth"], "fail_under": 0.5},
                               base_dir=Path("."), source="pyproject.toml")
    checks = (GateCheck(checkpoint="runs/a\n::warning::x.pth", head=HOSTILE, status="failed",
                        message=f"{HOSTILE}: 1/10 unique = 10.00 % < floor 50.00 %", eps=0.025,
                        floor=0.5, utilization=0.1, unique=1, num_prototypes=10),
              GateCheck(checkpoint="runs/b.pth", head=FORMULA, status="not-gated", eps=0.025,
                        message="no floor\x1b[2J"))
    return GateOutcome(config=config, checks=checks)


def test_log_lines_never_start_a_workflow_command():
    text = "::warning::a\n  \u00a0::error::b\rok ::c::d ##[error]e\n"
    guarded = escape.log_lines(text)
    assert guarded == "\\x3a:warning::a\n  \u00a0\\x3a:error::b\rok ::c::d #\\x23[error]e\n"
    assert escape.log_lines("::x", at_line_start=False) == "::x"
    assert escape.log_lines("plain | table ::\n") == "plain | table ::\n"


def test_github_annotations_are_one_line_each():
    lines = github_annotations(_outcome())
    assert len(lines) == 1 and "\n" not in lines[0] and "\r" not in lines[0]
    title, _, message = lines[0].partition("::")[2].partition("::")
    assert "%0A" in title and "%3A%3Awarning%3A%3A" in title and message.startswith("x[/bold]y%0A::error::pwn")


def test_github_summary_is_literal_markdown():
    text = github_summary(_outcome())
    assert "<img" not in text and not CONTROL.search(text)
    assert not any(line.startswith("::") for line in text.splitlines())
    assert "**FAIL**" in text  # our own emphasis survives; the names' does not


def test_junit_parses_with_hostile_names():
    root = ET.fromstring(gate_to_junit(_outcome()).encode("utf-8"))
    names = [case.get("name") for case in root.iter("testcase")]
    assert names[0].startswith("x[/bold]y\n::error::pwn[31m<img") and "\x00" not in names[0]
