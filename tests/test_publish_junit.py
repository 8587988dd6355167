"""`--format junit`: JUnit XML read back by junitparser, as CI test reporters read it."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from auditor.publish import WRITERS
from auditor.publish.junit import NO_GATE, render_junit
from auditor.results import AuditResults, Verdict, load_json
from auditor.verdict import policy

GOLD = Path(__file__).parent / "gold" / "results.json"
# The de-facto JUnit schema (Jenkins' junit-10.xsd, which GitLab and the GitHub
# test-report actions follow): the attributes every element must carry.
REQUIRED = {
    "testsuite": {"name", "tests", "failures", "errors", "skipped", "time"},
    "testcase": {"name", "classname", "time"},
}
OUTCOMES = ("failure", "error", "skipped")


@pytest.fixture(scope="module")
def measured() -> AuditResults:
    """The golden audit without any gate."""
    return dataclasses.replace(load_json(GOLD), verdict=Verdict(True, [], "NO GATES"))


def gated(results: AuditResults, *gates: policy.PolicyGate) -> AuditResults:
    """`results` decided by a policy of `gates`, as `check --policy` would."""
    return policy.apply(results, policy.Policy("p.toml", "0" * 64, {}, gates))


def suite_of(text: str):
    suites = list(JUnitXml.fromstring(text))
    assert len(suites) == 1
    return suites[0]


def by_name(text: str) -> dict:
    return {case.name: case for case in suite_of(text)}


def check_schema(text: str) -> None:
    """Required attributes, consistent counts, and children in the schema's order."""
    root = ET.fromstring(text.encode("utf-8"))
    suites = root.findall("testsuite")
    assert root.tag == "testsuites" and len(suites) == 1
    suite = suites[0]
    assert REQUIRED["testsuite"] <= set(suite.attrib)
    cases = suite.findall("testcase")
    assert int(suite.get("tests", "")) == len(cases)
    for kind, count in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
        assert int(suite.get(count, "")) == sum(1 for c in cases if c.find(kind) is not None)
    assert float(suite.get("time", "")) >= 0
    assert [c.tag for c in suite][0] == "properties" and [c.tag for c in suite][-1] == "system-out"
    for case in cases:
        assert REQUIRED["testcase"] <= set(case.attrib), case.attrib
        float(case.get("time", ""))
        tags = [child.tag for child in case]
        assert sum(tag in OUTCOMES for tag in tags) <= 1
        assert tags[-1] == "system-out" and set(tags) <= {*OUTCOMES, "system-out"}


def test_policy_levels_are_cases_decided_by_the_policy(measured):
    gate = policy.PolicyGate("ra", perturbation="jpeg_compression", min=0.85)
    results = gated(measured, gate, policy.PolicyGate("ra", "gaussian_noise", (5,), min=0.9))
    text = WRITERS["junit"].render(results)
    check_schema(text)
    cases = by_name(text)
    # every jpeg level is a case of its own, named and classed as CI lists it
    jpeg = [c for c in cases.values() if c.classname == "auditor.jpeg_compression"]
    assert [c.name for c in jpeg][2] == "L3 jpeg_compression quality=15: RA >= 0.85"
    assert len(jpeg) == 5
    # the outcomes are the policy's own, level by level
    decided = {c.where: c.outcome for c in policy.level_checks(results, gate)}
    for case in jpeg:
        where = f"jpeg_compression L{case.name[1]}"
        failures = [r for r in case.result if isinstance(r, Failure)]
        assert (failures[0].type if failures else "PASS") == decided[where]
    # L1 0.933 [0.899, 0.956] clears 0.85; L5 0.860 [0.816, 0.895] straddles it
    assert cases["L1 jpeg_compression quality=25: RA >= 0.85"].is_passed
    l5 = cases["L5 jpeg_compression quality=7: RA >= 0.85"].result[0]
    assert l5.type == "INCONCLUSIVE"
    assert "0.860" in l5.message and "[0.816, 0.895]" in l5.message and ">= 0.85" in l5.message
    # gaussian_noise L5: 0.513 [0.457, 0.569] misses 0.9 entirely
    noise = cases["L5 gaussian_noise sigma=0.38: RA >= 0.9"].result[0]
    assert isinstance(noise, Failure) and noise.type == "FAIL"
    assert "0.513" in noise.message and "[0.457, 0.569]" in noise.message


def test_gates_are_cases_with_value_interval_and_threshold():
    text = WRITERS["junit"].render(load_json(GOLD))
    check_schema(text)
    suite = suite_of(text)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (6, 5, 0, 0)
    assert suite.time == 345.0  # started 09:21:07, finished 09:26:52
    gates = [case for case in suite if case.classname == "auditor.gates"]
    assert [case.name for case in gates][1] == "rr(0.1) >= 0.2 at every level"
    assert gates[1].is_passed
    quick = gates[0].result[0]  # a quick gate: its worst level's interval is given too
    assert quick.type == "FAIL" and "0.513" in quick.message
    assert "[0.457, 0.569]" in quick.message and ">= 0.6" in quick.message
    policy_gate = gates[2].result[0]
    assert policy_gate.type == "INCONCLUSIVE" and "[0.876, 0.940]" in policy_gate.message


def test_results_without_gates_skip_every_level_with_its_figures(measured):
    text = WRITERS["junit"].render(measured)
    check_schema(text)
    suite = suite_of(text)
    assert suite.tests == suite.skipped == len(measured.results) and suite.failures == 0
    first = next(iter(suite))
    assert first.name == "L1 gaussian_noise sigma=0.08" and first.is_skipped
    skip = first.result[0]
    assert isinstance(skip, Skipped) and skip.message == NO_GATE
    assert "RA 0.913 [0.876, 0.940]" in first.system_out
    assert "RR(b=0.1) 0.993 [0.976, 0.998]" in first.system_out


def test_an_interrupted_audit_says_so(measured):
    partial = dataclasses.replace(
        measured, status="incomplete", progress={"done": 1200, "total": 3300}
    )
    cases = by_name(render_junit(partial))
    error = cases["the audit ran to completion"].result[0]
    assert isinstance(error, Error) and error.type == "INCOMPLETE"
    assert "1200 of 3300" in error.message
    # under a policy the verdict has its own completion gate: one case, not two
    text = render_junit(gated(partial, policy.PolicyGate("ra", min=0.1)))
    check_schema(text)
    completion = [c for c in suite_of(text) if c.name == "the audit ran to completion"]
    assert len(completion) == 1 and completion[0].result[0].type == "INCONCLUSIVE"
    assert '<property name="status" value="incomplete"' in text


def test_names_are_escaped_and_control_characters_dropped(measured):
    odd = 'fog<&"\x07|x'
    rows = [dataclasses.replace(r, perturbation=odd) for r in measured.results[:1]]
    text = render_junit(dataclasses.replace(measured, results=rows))
    check_schema(text)
    case = next(iter(suite_of(text)))
    assert case.name == 'L1 fog<&"\ufffd|x sigma=0.08'
    assert case.classname == 'auditor.fog<&"\ufffd|x'


def test_written_file_is_the_rendered_text(measured, tmp_path):
    target = tmp_path / "ci" / "audit.junit.xml"
    WRITERS["junit"].write(measured, target)
    assert target.read_text(encoding="utf-8") == render_junit(measured)
    assert [p.name for p in target.parent.iterdir()] == ["audit.junit.xml"]
