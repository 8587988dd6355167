"""Quick gates (`--fail-under-ra/rr`) and how gates combine into a verdict."""

from __future__ import annotations

from pathlib import Path

from auditor.results import Gate, load_json
from auditor.verdict import gates

GOLD = Path(__file__).parent / "gold" / "results.json"


def test_quick_gates_decide_on_the_worst_level():
    levels = load_json(GOLD).results
    verdict = gates.evaluate(levels, "0.1", fail_under_ra=0.5, fail_under_rr=None)
    (gate,) = verdict.gates
    assert gate.where == "gaussian_noise L5" and gate.value == min(lv.ra for lv in levels)
    assert gate.outcome == "PASS" and verdict.result == "PASS" and verdict.passed
    assert gate.checked == len(levels) and gate.ci is None  # decided on the value
    failing = gates.evaluate(levels, "0.1", fail_under_ra=None, fail_under_rr=0.99)
    assert failing.result == "FAIL" and not failing.passed
    assert "worst level" in failing.decision_rule


def test_no_gates():
    verdict = gates.evaluate([], "0.1", None, None)
    assert verdict.result == "NO GATES" and verdict.passed and verdict.decision_rule == ""


def gate(outcome: str) -> Gate:
    return Gate("g", "ra", 0.5, 0.5, outcome == "PASS", outcome=outcome)


def test_combine_fail_beats_inconclusive_beats_pass():
    assert gates.combine([gate("PASS"), gate("PASS")], "r").result == "PASS"
    inconclusive = gates.combine([gate("PASS"), gate("INCONCLUSIVE")], "r")
    assert inconclusive.result == "INCONCLUSIVE" and not inconclusive.passed
    assert gates.combine([gate("INCONCLUSIVE"), gate("FAIL")], "r").result == "FAIL"


def test_gates_from_older_json_read_their_outcome_from_passed():
    assert Gate("g", "ra", 0.5, 0.6, True).result == "PASS"
    assert Gate("g", "ra", 0.5, 0.4, False).result == "FAIL"
