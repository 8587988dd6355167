"""The figures the text writers share: metric values with intervals, gates, level names.

Labels, fields, intervals and directions come from `auditor.metrics.catalogue`; what a
policy gate decided at each level comes from `auditor.verdict.policy.level_checks`.
"""

from __future__ import annotations

from dataclasses import dataclass

from auditor.metrics.catalogue import CATALOGUE, LEVEL, Metric, measure
from auditor.report.html import interval, params, rate
from auditor.results import AuditResults, Gate, Interval, LevelResult, tolerance_key
from auditor.verdict.policy import LevelCheck, PolicyGate, level_checks, recorded_gates

HEADLINE = ("ra", "rr", "flip_rate")  # catalogue keys of the headline table's columns


@dataclass(frozen=True)
class Figure:
    """One metric's value and 95% interval, with the heading it is shown under."""

    metric: Metric
    heading: str  # `RR(b=0.1)`
    value: float | None
    ci: Interval | None

    def text(self) -> str:
        """`0.913 [0.876, 0.940]`, or a dash when there is no value."""
        return f"{rate(self.value)} {interval(self.ci)}".rstrip()


def level_figures(
    results: AuditResults, level: LevelResult, keys: tuple[str, ...] | None = None
) -> list[Figure]:
    """Return the level's figures: the catalogue's level metrics, or those named in `keys`.

    RR is taken at the headline tolerance; metrics that need labels are left out of an
    unlabelled audit, and a metric with no value at all (AUC of a multiclass model) too.
    """
    chosen = keys or tuple(k for k, m in CATALOGUE.items() if m.scope == LEVEL)
    figures = []
    for metric in (CATALOGUE[k] for k in chosen):
        if metric.needs_labels and not results.labelled:
            continue
        figure = _figure(results, metric, vars(level))
        if keys is not None or figure.value is not None:
            figures.append(figure)
    return figures


def clean_figure(results: AuditResults) -> Figure:
    """Return the clean accuracy and its interval."""
    return _figure(results, CATALOGUE["clean_accuracy"], results.clean)


def _figure(results: AuditResults, metric: Metric, values: dict) -> Figure:
    key = results.headline_key
    context = {"positive_class": results.model.get("positive_class")}
    value, ci = measure(metric, values, key, context)
    return Figure(metric, metric.heading(key), value, ci)


def directions(figures: list[Figure]) -> str:
    """Say which way is better for each figure: `Higher is better for RA; lower is ...`."""
    higher = [f.heading for f in figures if f.metric.higher_is_better]
    lower = [f.heading for f in figures if not f.metric.higher_is_better]
    parts = [f"higher is better for {_and(higher)}"] if higher else []
    parts += [f"lower is better for {_and(lower)}"] if lower else []
    text = "; ".join(parts)
    return f"{text[:1].upper()}{text[1:]}." if text else ""


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def level_name(level: LevelResult) -> str:
    """Name a level as CI lists it: `L3 jpeg_compression quality=15`."""
    shown = params(level.params)
    return f"L{level.level} {level.perturbation}" + (f" {shown}" if shown else "")


def threshold(gate: Gate | PolicyGate) -> str:
    """The gate's condition: `>= 0.85` or `<= 0.1`."""
    at_least = gate.bound == "min" if isinstance(gate, Gate) else gate.min is not None
    return f"{'>=' if at_least else '<='} {gate.threshold:g}"


def gate_interval(results: AuditResults, gate: Gate) -> Interval | None:
    """The gate's 95% interval: as decided on, else (quick gates) that of its worst level."""
    if gate.ci is not None or gate.metric not in CATALOGUE:
        return gate.ci
    found = [lv for lv in results.results if f"{lv.perturbation} L{lv.level}" == gate.where]
    if not found:
        return None
    return _figure(results, CATALOGUE[gate.metric], vars(found[0])).ci


def policy_level_checks(results: AuditResults) -> list[tuple[PolicyGate, str, LevelCheck]]:
    """Each policy gate at each perturbation level it applies to: (gate, its heading, check).

    The decisions are the policy's own (`level_checks`); a clean-accuracy gate has no
    perturbation level and is left out.
    """
    out: list[tuple[PolicyGate, str, LevelCheck]] = []
    for gate in recorded_gates(results.verdict):
        metric = CATALOGUE[gate.metric]
        heading = metric.heading(_tolerance(gate, results))
        out.extend((gate, heading, check) for check in level_checks(results, gate) if check.level)
    return out


def _tolerance(gate: PolicyGate, results: AuditResults) -> str:
    return tolerance_key(gate.tolerance) if gate.tolerance is not None else results.headline_key
