"""The gate's outcome as JUnit XML: one testcase per checkpoint x head.

The shape CI parsers (GitHub test reporters, GitLab, Jenkins, pytest's own) accept:
``<testsuites tests= failures= errors= skipped=>`` holding one ``<testsuite>`` with the same
counts; a failed check carries a ``<failure message=... type=...>`` with the numbers, a head
without a floor a ``<skipped>``.
"""

from __future__ import annotations

import datetime as _dt
import socket
import xml.etree.ElementTree as ET

from ..escape import xml as _xml
from .run import GateCheck, GateOutcome

__all__ = ["gate_to_junit", "SUITE_NAME"]

SUITE_NAME = "collapse-probe gate"


def _case(check: GateCheck) -> ET.Element:
    case = ET.Element("testcase", {
        # Names from files may hold characters XML forbids: dropped, or the file would not parse.
        "classname": _xml(f"collapse-probe.{check.checkpoint}"),
        "name": _xml(check.head or "checkpoint"),
        "time": "0",
    })
    if check.status == "failed":
        failure = ET.SubElement(case, "failure", {
            "message": _xml(f"{check.head or 'checkpoint'}: {check.message}"),
            "type": "PrototypeCollapse" if check.utilization is not None else "GateInputError",
        })
        failure.text = _details(check)
    elif check.status == "not-gated":
        ET.SubElement(case, "skipped", {"message": _xml(check.message)})
    else:
        out = ET.SubElement(case, "system-out")
        out.text = _details(check)
    return case


def _details(check: GateCheck) -> str:
    lines = [f"checkpoint: {check.checkpoint}", f"head: {check.head or '-'}", f"eps: {check.eps:g}"]
    if check.utilization is not None:
        lines += [f"unique: {check.unique}", f"num_prototypes: {check.num_prototypes}",
                  f"utilization: {check.utilization:.6f}"]
    if check.floor is not None:
        lines.append(f"floor: {check.floor:.6f}")
    lines.append(check.message)
    return _xml("\n".join(lines) + "\n")


def gate_to_junit(outcome: GateOutcome, *, timestamp: _dt.datetime | None = None,
                  time_s: float = 0.0) -> str:
    """The outcome as a JUnit XML document (UTF-8 text with an XML declaration)."""
    tests = len(outcome.checks)
    failures = sum(c.status == "failed" for c in outcome.checks)
    skipped = sum(c.status == "not-gated" for c in outcome.checks)
    counts = {"tests": str(tests), "failures": str(failures), "errors": "0",
              "skipped": str(skipped), "time": f"{time_s:.3f}"}
    root = ET.Element("testsuites", {"name": "collapse-probe", **counts})
    stamp = (timestamp or _dt.datetime.now(_dt.timezone.utc)).replace(microsecond=0)
    suite = ET.SubElement(root, "testsuite", {"name": SUITE_NAME, **counts,
                                               "timestamp": stamp.isoformat(),
                                               "hostname": socket.gethostname() or "localhost"})
    properties = ET.SubElement(suite, "properties")
    config = outcome.config
    for name, value in (("eps", f"{config.eps:g}"), ("method", config.method),
                        ("network", config.read.network), ("config", config.source)):
        ET.SubElement(properties, "property", {"name": name, "value": _xml(value)})
    for check in outcome.checks:
        suite.append(_case(check))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
