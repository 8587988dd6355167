"""JUnit XML (`--format junit`): the audit's gates as test cases, for CI test reporters.

GitLab, Jenkins and the GitHub test-report actions read this. The audit is one
<testsuite>. Each gate is a <testcase> of class `auditor.gates`, and each perturbation
level a policy gate applies to is one more, of class `auditor.<perturbation>`, as the
policy's own `level_checks` decided it. FAIL and INCONCLUSIVE are both <failure>s, since
both exit 1; an interrupted audit adds an <error>. Results without any gate list each
level as <skipped>, its figures in <system-out>: CI shows them and claims no pass.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from auditor.publish.figures import (
    gate_interval,
    level_figures,
    level_name,
    policy_level_checks,
    threshold,
)
from auditor.publish.writers import Writer, register
from auditor.report.html import interval, rate, summary_line
from auditor.results import AuditResults, Gate, LevelResult
from auditor.verdict.gates import PASS
from auditor.verdict.policy import LevelCheck, PolicyGate

GATES_CLASS = "auditor.gates"
NO_GATE = "measured only: no gate applies"
INCOMPLETE = "INCOMPLETE"
COMPLETION = "the audit ran to completion"
# XML 1.0 cannot carry most control characters, even escaped: a name with one must
# not make the whole file unreadable to the CI tool.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Case:
    """One <testcase>: passed when `kind` is empty, else a failure, error or skip."""

    name: str
    classname: str
    out: str  # <system-out>: the figures behind the outcome
    kind: str = ""  # "" | "failure" | "error" | "skipped"
    type: str = ""  # FAIL | INCONCLUSIVE | INCOMPLETE
    message: str = ""


@register
class JUnitWriter(Writer):
    """JUnit XML for CI test reporters."""

    name = "junit"
    suffix = ".junit.xml"
    what = "the JUnit XML"

    def render(self, results: AuditResults) -> str:
        return render_junit(results)


def render_junit(results: AuditResults) -> str:
    """Return the JUnit XML document of `results`: one <testsuite> in <testsuites>."""
    cases = cases_of(results)
    counts = _counts(cases, results)
    root = ET.Element("testsuites", {"name": "auditor", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": _suite_name(results), **counts})
    if started := _timestamp(results.started_at):
        suite.set("timestamp", started)
    properties = ET.SubElement(suite, "properties")
    for name, value in _properties(results).items():
        ET.SubElement(properties, "property", {"name": name, "value": _xml(value)})
    for case in cases:
        _add_case(suite, case)
    ET.SubElement(suite, "system-out").text = _xml(summary_line(results))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def cases_of(results: AuditResults) -> list[Case]:
    """Return the test cases: each gate, then each level under a policy gate.

    Without any gate, each level is a skipped case instead. An interrupted audit whose
    verdict has no completion gate (no policy) gets an error case saying so.
    """
    gates = results.verdict.gates
    if gates:
        cases = [_gate_case(results, gate) for gate in gates]
        cases += [_level_case(*item) for item in policy_level_checks(results)]
    else:
        cases = [_measured_only(results, level) for level in results.results]
    if results.status != "complete" and not any(g.metric == "completion" for g in gates):
        cases.append(_incomplete_case(results))
    return cases


def _gate_case(results: AuditResults, gate: Gate) -> Case:
    ci = gate_interval(results, gate)
    where = f" at {gate.where}" if gate.where else ""
    text = (
        f"value {rate(gate.value)} (95% interval {interval(ci) or 'not computed'}){where}; "
        f"threshold {threshold(gate)}: {gate.result}"
    )
    return _decided(gate.gate, GATES_CLASS, gate.result, text)


def _level_case(gate: PolicyGate, heading: str, check: LevelCheck) -> Case:
    level = check.level
    assert level is not None  # policy_level_checks leaves the clean section out
    text = (
        f"{heading} {rate(check.value)} (95% interval {interval(check.ci) or 'not computed'}); "
        f"threshold {threshold(gate)}: {check.outcome}"
    )
    name = f"{level_name(level)}: {heading} {threshold(gate)}"
    return _decided(name, f"auditor.{level.perturbation}", check.outcome, text)


def _decided(name: str, classname: str, outcome: str, text: str) -> Case:
    """A passed case, or a failure of type FAIL or INCONCLUSIVE (both exit 1)."""
    if outcome == PASS:
        return Case(name, classname, text)
    return Case(name, classname, text, "failure", outcome, text)


def _measured_only(results: AuditResults, level: LevelResult) -> Case:
    figures = "; ".join(f"{f.heading} {f.text()}" for f in level_figures(results, level))
    name = level_name(level)
    return Case(name, f"auditor.{level.perturbation}", figures, "skipped", message=NO_GATE)


def _incomplete_case(results: AuditResults) -> Case:
    progress = results.progress or {}
    text = (
        f"interrupted after {progress.get('done', '?')} of {progress.get('total', '?')} "
        "work units: the results are incomplete"
    )
    return Case(COMPLETION, GATES_CLASS, text, "error", INCOMPLETE, text)


def _add_case(suite: ET.Element, case: Case) -> None:
    attributes = {"name": _xml(case.name), "classname": _xml(case.classname), "time": "0"}
    element = ET.SubElement(suite, "testcase", attributes)
    if case.kind:
        outcome = ET.SubElement(element, case.kind, {"message": _xml(case.message)})
        if case.type:
            outcome.set("type", case.type)
    ET.SubElement(element, "system-out").text = _xml(case.out)


def _counts(cases: list[Case], results: AuditResults) -> dict[str, str]:
    kinds = [case.kind for case in cases]
    return {
        "tests": str(len(cases)),
        "failures": str(kinds.count("failure")),
        "errors": str(kinds.count("error")),
        "skipped": str(kinds.count("skipped")),
        "time": f"{_seconds(results):.3f}",
    }


def _suite_name(results: AuditResults) -> str:
    model = results.model
    return _xml(f"auditor {model.get('file_name') or Path(str(model.get('path'))).name}")


def _properties(results: AuditResults) -> dict[str, str]:
    progress = results.progress or {}
    found = {
        "verdict": results.verdict.result,
        "status": results.status,
        "progress": f"{progress.get('done')} of {progress.get('total')} work units",
        "model.sha256": results.model.get("sha256"),
        "samples": results.clean.get("n"),
        "report_id": (results.identification or {}).get("report_id"),
        "auditor_version": results.auditor_version,
    }
    return {name: str(value) for name, value in found.items() if value is not None}


def _parse(moment: str) -> datetime | None:
    try:  # Python 3.10's fromisoformat does not read a trailing Z
        parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _seconds(results: AuditResults) -> float:
    start, end = _parse(results.started_at), _parse(results.finished_at)
    return max(0.0, (end - start).total_seconds()) if start and end else 0.0


def _timestamp(moment: str) -> str | None:
    """The JUnit schema's timestamp: ISO 8601 in UTC, without a zone."""
    parsed = _parse(moment)
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") if parsed else None


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
