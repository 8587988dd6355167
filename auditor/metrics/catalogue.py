"""The metric catalogue: every reported metric named once, with where its value lives.

Policies (`[[gate]] metric = ...`), the report's tables, `compare` and the publish
writers read a metric's label, unit, interval and direction from here, never from a
list of their own. Adding a gateable metric is one `Metric` entry here plus the code
that measures it (`auditor.engine.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Interval = list[float]
Measured = tuple[float | None, Interval | None]

LEVEL, CLEAN = "level", "clean"  # where a metric is measured: per perturbation level, or clean
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Metric:
    """One reported metric: its policy name, label, result fields and reading."""

    key: str  # the name in policies and JSON writers: "ra", "rr", ...
    label: str  # short, for table headers and gate text: "RA"
    name: str  # in words: "robust accuracy"
    scope: str  # LEVEL or CLEAN
    field: str  # the value's key in a level's (or the clean section's) results
    interval: str | None  # the key of its 95% interval, if stored; None: computed or absent
    gateable: bool  # may a policy gate name it
    higher_is_better: bool
    per_tolerance: bool = False  # a mapping keyed by tolerance ("0.1"), like RR
    needs_labels: bool = False
    unit: str = "share of samples"

    def heading(self, tolerance_key: str | None = None) -> str:
        """The label with its tolerance where it has one: `RR(b=0.1)`."""
        return f"{self.label}(b={tolerance_key})" if self.per_tolerance else self.label


CATALOGUE: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric("ra", "RA", "robust accuracy", LEVEL, "ra", "ra_ci", True, True, needs_labels=True),
        Metric("rr", "RR", "robust ratio", LEVEL, "rr", "rr_ci", True, True, per_tolerance=True),
        Metric(
            "clean_accuracy",
            "clean accuracy",
            "clean accuracy",
            CLEAN,
            "accuracy",
            "accuracy_ci",
            True,
            True,
            needs_labels=True,
        ),  # fmt: skip
        Metric(
            "auc",
            "AUC",
            "ROC AUC of the positive class's probability",
            LEVEL,
            "auc",
            None,
            True,
            True,
            needs_labels=True,
            unit="area",
        ),  # fmt: skip
        Metric(
            "flip_rate", "flip rate", "flip rate", LEVEL, "flip_rate", "flip_rate_ci", True, False
        ),
    )
}
GATEABLE = tuple(key for key, m in CATALOGUE.items() if m.gateable)


def get(key: str) -> Metric:
    """The catalogue entry `key`; `KeyError` names the known ones."""
    try:
        return CATALOGUE[key]
    except KeyError:
        raise KeyError(f"unknown metric {key!r}; known: {', '.join(CATALOGUE)}") from None


def measure(
    metric: Metric,
    values: Mapping[str, Any],
    tolerance_key: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> Measured:
    """Return (value, 95% interval) of `metric` from a level's (or clean) result fields.

    `values`: a level result as a mapping (`dataclasses.asdict` or its JSON), or the
    clean section; `tolerance_key` picks RR's tolerance; `context` gives what a computed
    interval needs (the AUC's: `positive_class`).
    """
    value = values.get(metric.field)
    ci = values.get(metric.interval) if metric.interval else None
    if metric.per_tolerance:
        value = (value or {}).get(tolerance_key)
        ci = (ci or {}).get(tolerance_key)
    if metric.key == "auc" and ci is None:
        positive = (context or {}).get("positive_class")
        ci = auc_interval(value, values.get("per_class") or {}, positive)
    return value, (list(ci) if ci else None)


def auc_interval(
    auc: float | None, per_class: Mapping[str, Mapping[str, Any]], positive: str | None
) -> Interval | None:
    """Return the 95% interval of a binary AUC (Hanley and McNeil, 1982), if computable."""
    counts = {name: int(c.get("n") or 0) for name, c in per_class.items()}
    if auc is None or positive not in counts or len(counts) != 2:
        return None
    n_pos = counts[positive]
    n_neg = sum(counts.values()) - n_pos
    if n_pos < 1 or n_neg < 1:
        return None
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (
        n_pos * n_neg
    )
    half = Z95 * math.sqrt(max(var, 0.0))
    return [round(max(0.0, auc - half), 6), round(min(1.0, auc + half), 6)]
