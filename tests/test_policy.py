"""`--policy`: parsing, the interval decision rule, and the exit codes it leads to."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import main
from auditor.errors import EXIT_CANNOT_RUN, EXIT_GATE_FAILED, EXIT_OK, ConfigError
from auditor.metrics.catalogue import auc_interval
from auditor.results import AuditResults, load_json
from auditor.verdict import policy

GOLD = Path(__file__).parent / "gold" / "results.json"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def results() -> AuditResults:
    quick_only = load_json(GOLD)
    return dataclasses.replace(
        quick_only, verdict=dataclasses.replace(quick_only.verdict, gates=[])
    )


INTERFACE_EXAMPLE = """
[audit]
suite = "deepfake"
tolerance = [0.05, 0.1]
seed = 7

[[gate]]
metric = "ra"            # ra | rr | clean_accuracy | auc | flip_rate
perturbation = "*"       # name or glob
levels = [1, 2, 3]       # which levels the gate applies to
min = 0.85               # or max = ...
tolerance = 0.1          # for rr

[[gate]]
metric = "rr"
min = 0.5
tolerance = 0.05
"""


def test_the_interface_example_parses(tmp_path):
    rules = policy.load_policy(write(tmp_path, INTERFACE_EXAMPLE))
    assert rules.audit == {"suite": "deepfake", "tolerance": [0.05, 0.1], "seed": 7}
    assert [g.metric for g in rules.gates] == ["ra", "rr"]
    assert rules.gates[0].levels == (1, 2, 3) and rules.gates[0].tolerance is None
    assert rules.gates[1].tolerance == 0.05 and rules.tolerances() == (0.05,)
    assert len(rules.sha256) == 64


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[gate]]\nmetric = 'accuracy'\nmin = 0.5\n", "unknown metric 'accuracy'; did you mean"),
        ("[[gate]]\nmin = 0.5\n", "metric must be one of"),
        ("[[gate]]\nmetric = 'ra'\n", "exactly one of min or max"),
        ("[[gate]]\nmetric = 'ra'\nmin = 0.5\nmax = 0.9\n", "exactly one of min or max"),
        ("[[gate]]\nmetric = 'ra'\nmin = 1.5\n", "threshold must be a number in [0, 1]"),
        ("[[gate]]\nmetric = 'ra'\nmin = 0.5\nlevels = [0]\n", "levels must be a list"),
        ("[[gate]]\nmetric = 'rr'\nmin = 0.5\ntolerance = 2\n", "tolerance must be a number"),
        ("[[gate]]\nmetric = 'ra'\nmin = 0.5\nmargin = 2\n", "unknown key(s) margin"),
        ("[audit]\nworkers = 3\n", "[audit] may set only"),
        ("[audit]\ntolerance = [2]\n", "tolerance must be numbers in [0, 1]"),
        ("[gates]\n", "unknown table(s) gates"),
        ("[[gate]\n", "not valid TOML"),
    ],
)
def test_bad_policies_are_refused_with_one_line(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        policy.load_policy(write(tmp_path, text))
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "ci, bound, expected",
    [
        ([0.86, 0.95], {"min": 0.85}, "PASS"),
        ([0.85, 0.95], {"min": 0.85}, "PASS"),  # the bound itself clears the threshold
        ([0.80, 0.90], {"min": 0.85}, "INCONCLUSIVE"),
        ([0.70, 0.84], {"min": 0.85}, "FAIL"),
        ([0.01, 0.04], {"max": 0.05}, "PASS"),
        ([0.03, 0.08], {"max": 0.05}, "INCONCLUSIVE"),
        ([0.06, 0.09], {"max": 0.05}, "FAIL"),
    ],
)
def test_decision_rule_on_the_interval(ci, bound, expected):
    gate = policy.PolicyGate("ra", **bound)
    value = sum(ci) / 2
    assert policy.decide(value, ci, gate) == expected


def test_gate_takes_its_worst_level(results):
    # gaussian_noise RA falls with the level; L1 clears 0.5 but L5 (0.513, interval
    # straddling 0.5) does not
    gate = policy.PolicyGate("ra", perturbation="gaussian_*", min=0.5)
    outcome = policy.evaluate_gate(results, gate)
    assert outcome.where == "gaussian_noise L5" and outcome.checked == 5
    assert outcome.outcome == "INCONCLUSIVE" and outcome.ci == results.results[4].ra_ci
    assert policy.evaluate_gate(results, dataclasses.replace(gate, levels=(1, 2))).outcome == "PASS"
    assert policy.evaluate_gate(results, dataclasses.replace(gate, min=0.9)).outcome == "FAIL"


def test_each_metric_is_read(results):
    level = results.results[0]
    cases = {
        "ra": level.ra,
        "rr": level.rr["0.05"],
        "flip_rate": level.flip_rate,
        "auc": level.auc,
        "clean_accuracy": results.clean["accuracy"],
    }
    for metric, expected in cases.items():
        gate = policy.PolicyGate(
            metric,
            perturbation="gaussian_noise",
            levels=(1,),
            min=0.0,
            tolerance=0.05 if metric == "rr" else None,
        )
        found = policy.evaluate_gate(results, gate)
        assert found.value == expected, metric
        assert found.ci is not None and found.ci[0] <= expected <= found.ci[1], metric


def test_auc_interval_narrows_with_more_samples():
    few = auc_interval(0.9, {"real": {"n": 20}, "fake": {"n": 20}}, "fake")
    many = auc_interval(0.9, {"real": {"n": 2000}, "fake": {"n": 2000}}, "fake")
    assert few and many and few[0] < many[0] < 0.9 < many[1] < few[1]
    assert auc_interval(0.9, {}, "fake") is None


def test_a_gate_matching_nothing_is_inconclusive(results):
    gate = policy.PolicyGate("ra", perturbation="fog", min=0.1)
    assert policy.evaluate_gate(results, gate).outcome == "INCONCLUSIVE"


def test_apply_replaces_the_verdict_and_records_the_policy(results, tmp_path):
    rules = policy.load_policy(write(tmp_path, "[[gate]]\nmetric = 'ra'\nmin = 0.2\n"))
    applied = policy.apply(results, rules)
    assert applied.verdict.result == "PASS" and applied.verdict.passed
    assert applied.verdict.policy["sha256"] == rules.sha256
    assert "INCONCLUSIVE" in applied.verdict.decision_rule
    assert applied.results == results.results  # measurements untouched


def audit(binary_model, data_dir, tmp_path, text: str, *extra: str):
    path = write(tmp_path, text)
    report = tmp_path / "out" / "report.html"
    args = ["check", str(binary_model), "--data", str(data_dir), "-o", str(report)]
    result = CliRunner().invoke(main, [*args, "-p", "contrast", "--policy", str(path), *extra])
    data = json.loads(report.with_suffix(".json").read_text()) if report.exists() else None
    return result, data


def test_passing_policy_exits_0(binary_model, data_dir, tmp_path):
    result, data = audit(binary_model, data_dir, tmp_path, "[[gate]]\nmetric = 'ra'\nmin = 0.05\n")
    assert result.exit_code == EXIT_OK, result.stderr
    assert data["verdict"]["outcome"] == "PASS" and data["verdict"]["gates"][0]["ci"]


def test_failing_policy_exits_1(binary_model, data_dir, tmp_path):
    text = "[[gate]]\nmetric = 'rr'\ntolerance = 0.0\nmin = 0.9\nlevels = [5]\n"
    result, data = audit(binary_model, data_dir, tmp_path, text)
    # contrast L5 moves every output a little, so RR(b=0) is far below 0.9
    assert result.exit_code == EXIT_GATE_FAILED, result.stderr
    assert data["verdict"]["outcome"] == "FAIL" and "verdict FAIL" in result.stderr


def test_inconclusive_policy_exits_1_with_its_own_word(binary_model, data_dir, tmp_path):
    # 24 samples: the clean accuracy's interval is far wider than 0.02 around any value
    result, data = audit(
        binary_model, data_dir, tmp_path, "[[gate]]\nmetric = 'clean_accuracy'\nmin = 0.9\n"
    )
    low, high = data["clean"]["accuracy_ci"]
    assert low < 0.9 <= high, "the fixture's clean accuracy should straddle 0.9"
    assert result.exit_code == EXIT_GATE_FAILED
    assert data["verdict"]["outcome"] == "INCONCLUSIVE" and "INCONCLUSIVE" in result.stderr
    html = (tmp_path / "out" / "report.html").read_text()
    assert "not shown to pass" in html


def test_policy_audit_settings_feed_the_audit(binary_model, data_dir, tmp_path):
    text = "[audit]\ntolerance = [0.05]\nseed = 7\n\n"
    text += "[[gate]]\nmetric = 'rr'\nmin = 0\ntolerance = 0.2\n"
    result, data = audit(binary_model, data_dir, tmp_path, text)
    assert result.exit_code == EXIT_OK, result.stderr
    assert data["config"]["seed"] == 7
    assert data["config"]["tolerance_keys"] == ["0.05", "0.2"]  # the gate's b is measured too
    assert data["config"]["headline_tolerance_key"] == "0.05"


def test_a_flag_that_contradicts_the_policy_is_refused(binary_model, data_dir, tmp_path):
    result, data = audit(binary_model, data_dir, tmp_path, "[audit]\nseed = 7\n", "--seed", "3")
    assert result.exit_code == EXIT_CANNOT_RUN and data is None
    assert "conflicts with seed = 7" in result.stderr and "Traceback" not in result.output


def test_a_bad_policy_exits_2_before_the_audit(binary_model, data_dir, tmp_path):
    result, data = audit(binary_model, data_dir, tmp_path, "[[gate]]\nmetric = 'ra'\n")
    assert result.exit_code == EXIT_CANNOT_RUN and data is None
    assert result.stderr.startswith("auditor: error: policy") and result.stderr.count("\n") == 1


def test_an_interrupted_audit_cannot_pass(results, tmp_path):
    rules = policy.load_policy(write(tmp_path, "[[gate]]\nmetric = 'ra'\nmin = 0.2\n"))
    cut = dataclasses.replace(results, status="incomplete", progress={"done": 5, "total": 20})
    verdict = policy.apply(cut, rules).verdict
    assert verdict.result == "INCONCLUSIVE" and not verdict.passed
    assert verdict.gates[-1].where == "5 of 20 work units run" and verdict.gates[-1].value == 0.25


def test_merge_settings(tmp_path):
    rules = policy.load_policy(
        write(tmp_path, "[audit]\nsuite = 'quick'\ntolerance = [0.05]\nseed = 7\n")
    )
    options = {
        "suite": "all",
        "tolerances": (0.01, 0.1),
        "seed": 0,
        "headline_tolerance": 0.1,
        "perturbations": (),
    }
    merged = policy.merge_settings(options, set(), rules)
    assert merged["suite"] == "quick" and merged["seed"] == 7
    assert merged["tolerances"] == (0.05,) and merged["headline_tolerance"] == 0.05
    explicit = policy.merge_settings(options, {"headline_tolerance"}, rules)
    assert explicit["tolerances"] == (0.05, 0.1) and explicit["headline_tolerance"] == 0.1
    with pytest.raises(ConfigError, match="conflicts with suite"):
        policy.merge_settings(options, {"suite"}, rules)
    unknown = policy.load_policy(write(tmp_path, "[audit]\nsuite = 'nope'\n"))
    with pytest.raises(ConfigError, match="unknown suite 'nope'"):
        policy.merge_settings(options, set(), unknown)


def test_level_checks_give_each_level_and_the_gate_takes_the_worst(results):
    gate = policy.PolicyGate("ra", perturbation="gaussian_*", levels=(1, 4, 5), min=0.6)
    checks = policy.level_checks(results, gate)
    assert [c.where for c in checks] == [f"gaussian_noise L{n}" for n in (1, 4, 5)]
    # L1 0.913 [0.876, 0.940] clears 0.6; L4 0.650 [0.594, 0.702] straddles it; L5 misses it
    assert [c.outcome for c in checks] == ["PASS", "INCONCLUSIVE", "FAIL"]
    assert checks[2].value == results.results[4].ra and checks[2].ci == results.results[4].ra_ci
    worst = policy.evaluate_gate(results, gate)
    assert (worst.outcome, worst.where, worst.checked) == ("FAIL", "gaussian_noise L5", 3)
    clean = policy.level_checks(results, policy.PolicyGate("clean_accuracy", min=0.9))
    assert [(c.level, c.where, c.outcome) for c in clean] == [(None, "clean", "PASS")]


def test_recorded_gates_read_back_from_the_results_json(results):
    from auditor.results import Verdict, from_json, to_json

    gates = (
        policy.PolicyGate("ra", "jpeg_*", (1, 2), min=0.8),
        policy.PolicyGate("rr", max=0.99, tolerance=0.05),
    )
    decided = policy.apply(results, policy.Policy("p.toml", "0" * 64, {}, gates))
    assert policy.recorded_gates(from_json(to_json(decided)).verdict) == gates
    assert policy.recorded_gates(Verdict(True, [])) == ()  # no policy: no gates to read
