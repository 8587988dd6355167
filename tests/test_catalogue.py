"""The metric catalogue: every gateable metric can be gated and measured on real results,
and every `LevelResult` field is either a catalogue metric or deliberately left out."""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path

import pytest

from auditor.errors import ConfigError
from auditor.metrics import catalogue
from auditor.metrics.catalogue import CATALOGUE, CLEAN, GATEABLE, LEFT_OUT, LEVEL, measure
from auditor.report.html import render_html
from auditor.results import AuditResults, LevelResult, load_json
from auditor.verdict import policy

GOLD = Path(__file__).parent / "gold" / "results.json"
B = "0.05"  # a tolerance the gold results measured besides the headline 0.1


@pytest.fixture(scope="module")
def results() -> AuditResults:
    gold = load_json(GOLD)
    return dataclasses.replace(gold, verdict=dataclasses.replace(gold.verdict, gates=[]))


@pytest.fixture(scope="module")
def raw() -> dict:
    return json.loads(GOLD.read_text(encoding="utf-8"))


def gate_table(key: str) -> str:
    tolerance = f"tolerance = {B}\n" if catalogue.get(key).per_tolerance else ""
    return f"[[gate]]\nmetric = '{key}'\nmin = 0.0\n{tolerance}"


def expected(raw: dict, key: str, where: str) -> float | None:
    """The gated value read straight from the results JSON, not through the catalogue."""
    metric = catalogue.get(key)
    if metric.scope == CLEAN:
        return raw["clean"][metric.field]
    name, level = where.rsplit(" L", 1)
    row = next(r for r in raw["results"] if r["perturbation"] == name and r["level"] == int(level))
    value = row[metric.field]
    return value[B] if metric.per_tolerance else value


@pytest.mark.parametrize("key", GATEABLE)
def test_every_gateable_metric_can_be_gated_on_real_results(key, results, raw, tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(gate_table(key))
    rules = policy.load_policy(path)
    (gate,) = policy.apply(results, rules).verdict.gates
    metric = catalogue.get(key)
    assert gate.metric == key and gate.value is not None
    assert gate.value == expected(raw, key, gate.where)
    # min = 0 and an interval inside [0, 1]: every measured gate passes on its interval
    assert gate.ci is not None and gate.ci[0] <= gate.value <= gate.ci[1]
    assert gate.outcome == "PASS"
    assert gate.gate.split(" at ")[0] == f"{metric.heading(B)} >= 0"
    assert gate.checked == (1 if metric.scope == CLEAN else len(results.results))


def test_the_report_shows_every_gateable_metric_in_its_gate_table(results, tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("\n".join(gate_table(key) for key in GATEABLE))
    gated = policy.apply(results, policy.load_policy(path))
    page = render_html(gated)
    table = page[page.index('<table id="gates">') :]
    table = table[: table.index("</table>")]
    assert [g.metric for g in gated.verdict.gates] == list(GATEABLE)
    for gate in gated.verdict.gates:
        assert f'<th scope="row">{html.escape(gate.gate, quote=False)}</th>' in table


def test_a_policy_names_only_gateable_metrics(tmp_path):
    shown = [key for key, m in CATALOGUE.items() if not m.gateable]
    assert shown, "the catalogue also holds metrics the report shows but no gate may name"
    path = tmp_path / "policy.toml"
    path.write_text(gate_table(shown[0]))
    with pytest.raises(ConfigError, match=f"metric must be one of {', '.join(GATEABLE)},"):
        policy.load_policy(path)


def test_every_level_field_is_a_metric_or_left_out_on_purpose():
    fields = {f.name for f in dataclasses.fields(LevelResult)}
    level = [m for m in CATALOGUE.values() if m.scope == LEVEL]
    catalogued = {m.field for m in level} | {m.interval for m in level if m.interval}
    assert catalogued <= fields, "a catalogue metric reads a field LevelResult lacks"
    assert set(LEFT_OUT) <= fields, "LEFT_OUT names a field LevelResult lacks"
    assert not catalogued & set(LEFT_OUT), "a field is both catalogued and left out"
    assert fields == catalogued | set(LEFT_OUT), "a LevelResult field is neither"


def test_clean_metrics_read_fields_of_the_clean_section(raw):
    for metric in CATALOGUE.values():
        if metric.scope == CLEAN:
            assert metric.field in raw["clean"] and metric.interval in raw["clean"]


def test_a_level_reads_the_same_as_its_json(results, raw):
    context = results.model
    for level, row in zip(results.results, raw["results"]):
        for metric in CATALOGUE.values():
            if metric.scope == LEVEL:
                assert measure(metric, level, B, context) == measure(metric, row, B, context)
    first = raw["results"][0]
    assert measure(catalogue.get("delta_max"), first) == (first["delta_quantiles"]["max"], None)
    assert measure(catalogue.get("rr"), first, B)[1] == first["rr_ci"][B]


def test_auc_interval_needs_the_positive_class(results):
    auc = catalogue.get("auc")
    level = results.results[0]
    value, ci = measure(auc, level, context=results.model)
    assert value == level.auc and ci is not None and ci[0] < value < ci[1]
    assert measure(auc, level) == (level.auc, None)  # no context: no interval


def test_labels_and_headings():
    assert catalogue.get("rr").heading("0.1") == "RR(b=0.1)"
    assert catalogue.get("ra").heading("0.1") == "RA"
    assert catalogue.get("flip_rate").title == "Flip rate" and catalogue.get("ra").title == "RA"
    with pytest.raises(KeyError, match="unknown metric 'accuracy'; known: ra, rr"):
        catalogue.get("accuracy")
