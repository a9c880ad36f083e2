"""Escapers for strings that come from files (head names, keys, member names, paths).

A name read from a checkpoint or a folder can hold anything: newlines, ESC sequences, rich
markup, HTML, a spreadsheet formula. Every renderer passes such strings through the escaper of
its medium, so they are shown as data and never act as markup or commands:

* :func:`terminal` - control characters (C0, DEL, C1, bidirectional overrides, line
  separators) shown as visible ``\\xNN`` / ``\\uNNNN`` escapes, so a name can neither move the
  cursor nor start a line of its own;
* :func:`terminal_markup` - the same, and rich markup escaped (for text printed with markup);
* :func:`markdown` - one line, HTML escaped and Markdown punctuation backslash-escaped;
  :func:`markdown_code` - as a code span, where nothing is markup;
* :func:`html` - HTML escaped, quotes too, control characters made visible;
* :func:`csv_cell` - a leading ``= + - @`` (or tab / CR) neutralised with a ``'``, so a
  spreadsheet never runs the cell as a formula;
* :func:`xml` - characters XML 1.0 forbids removed (ElementTree escapes the rest);
* :func:`workflow_data` / :func:`workflow_property` - GitHub Actions' workflow-command encoding;
* :func:`log_lines` - whole lines of a CI log (what the commands print): no line starts with
  ``::`` once leading blanks are skipped, and no ``##[`` anywhere, so that a name that a table
  or a wrapped sentence puts at the start of a line is never read as a workflow command;
* :func:`plot_text` - matplotlib text: ``$`` escaped, so a name is never parsed as mathtext.
"""

from __future__ import annotations

import html as _html
import re

__all__ = ["terminal", "terminal_markup", "markdown", "markdown_code", "html", "csv_cell", "xml",
           "workflow_data", "workflow_property", "log_lines", "plot_text"]

# C0 controls, DEL, C1 controls, the Unicode line/paragraph separators and the bidirectional
# embedding/override/isolate characters (which reorder what a terminal or browser shows).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
# What XML 1.0 allows: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Inline Markdown: what can start emphasis, code, links, HTML, strikethrough or end a table
# cell. An underscore between letters or digits (``head_dense``) is never emphasis in CommonMark.
_MARKDOWN_PUNCT = re.compile(r"([\\`*\[\]|~<>]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(text: object) -> str:
    """``text`` with every control character shown as an escape (``"a\\nb"`` -> ``a\\x0ab``)."""
    return _CONTROL.sub(_visible, str(text))


def terminal_markup(text: object) -> str:
    """:func:`terminal`, then rich markup escaped: for text printed with ``markup=True``."""
    from rich.markup import escape

    return escape(terminal(text))


def markdown(text: object) -> str:
    """``text`` as inline Markdown, never at the start of a line (one line, table-cell safe):
    control characters made visible, HTML escaped, the characters that open emphasis, code,
    links, raw HTML or a cell border backslash-escaped."""
    escaped = _MARKDOWN_PUNCT.sub(r"\\\1", terminal(text))
    # After the backslashes: & < > become entities, which Markdown passes through as text.
    return escaped.replace("&", "&amp;").replace("\\<", "&lt;").replace("\\>", "&gt;")


def markdown_code(text: object) -> str:
    """``text`` as an inline Markdown code span (outside tables: GitHub splits cells at ``|``
    even there). Inside a code span nothing is markup; the fence is one backtick longer than
    any run of backticks in ``text``."""
    value = terminal(text)
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or not value.strip() else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def html(text: object) -> str:
    """``text`` for HTML text or a quoted attribute: ``& < > " '`` escaped, controls visible."""
    return _html.escape(terminal(text), quote=True)


def csv_cell(text: object) -> str:
    """``text`` safe as a spreadsheet cell: a leading formula character gets a ``'`` before it.

    Only for text columns; numbers are written as they are.
    """
    value = str(text)
    return "'" + value if value.startswith(_FORMULA_START) else value


def xml(text: object) -> str:
    """``text`` without the characters XML 1.0 forbids (NUL, most C0 controls, lone surrogates,
    U+FFFE/U+FFFF); ElementTree escapes ``& < > "`` itself."""
    return _NOT_XML.sub("", str(text))


def workflow_data(text: object) -> str:
    """The message of a GitHub workflow command (``::error::<data>``): ``%``, CR and LF encoded,
    so a name can never end the command or start one of its own; other control characters
    (ESC sequences) shown as escapes."""
    shown = _CONTROL.sub(lambda m: m.group() if m.group() in "\r\n" else _visible(m), str(text))
    return shown.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def workflow_property(text: object) -> str:
    """A property value of a workflow command (``title=<value>``): as data, plus ``:`` and ``,``."""
    return workflow_data(text).replace(":", "%3A").replace(",", "%2C")


# GitHub's runner reads a line as a command when it starts with "::" after leading blanks
# (any Unicode white space), and in its legacy form when "##[" appears anywhere in it.
_COMMAND_START = re.compile(r"(?:^|(?<=[\r\n]))([^\S\r\n]*):(?=:)")


def log_lines(text: str, *, at_line_start: bool = True) -> str:
    """``text`` (whole output lines) with every line that would start a CI workflow command
    defused: a leading ``::`` becomes ``\\x3a:``, and ``##[`` becomes ``#\\x23[`` (the
    escapes :func:`terminal` uses). ``at_line_start``: whether ``text`` begins a line."""
    guarded = _COMMAND_START.sub(r"\1\\x3a", text if at_line_start else "x" + text)
    guarded = guarded if at_line_start else guarded[1:]
    return guarded.replace("##[", "#\\x23[")


def plot_text(text: object) -> str:
    """``text`` for a matplotlib title, label or tick: controls made visible and ``$`` escaped
    (an unbalanced ``$\\frac{`` would otherwise stop the figure with a mathtext error)."""
    return terminal(text).replace("$", r"\$")
