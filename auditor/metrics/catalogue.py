"""The metric catalogue: every reported metric named once, with where its value lives.

Policies (`[[gate]] metric = ...`), quick gates, the report's tables, charts and
summary line, `compare` and the publish writers read a metric's label, unit, interval
and direction from here, never from a list of their own. Adding a gateable metric the
results already hold is one `Metric` entry here (with a `read` function when its value
is not a plain field); a new figure also needs the code that measures it
(`auditor.engine.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Interval = list[float]
Measured = tuple[float | None, Interval | None]
# A metric's own reading: (metric, values, tolerance_key, context) -> (value, interval).
Reader = Callable[["Metric", Any, "str | None", "Mapping[str, Any]"], Measured]

Z95 = 1.959963984540054  # two-sided 95% normal quantile
LEVEL, CLEAN = "level", "clean"  # where a metric is measured: per perturbation level, or clean
SHARE = "share of samples"


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
    unit: str = SHARE
    part: str | None = None  # the key inside `field`'s mapping: "p90" of `delta_quantiles`
    read: Reader | None = None  # reads value and interval where the fields alone do not

    def heading(self, tolerance_key: str | None = None) -> str:
        """The label with its tolerance where it has one: `RR(b=0.1)`."""
        return f"{self.label}(b={tolerance_key})" if self.per_tolerance else self.label

    @property
    def title(self) -> str:
        """The label as a column header: first letter upper case (`Flip rate`, `RA`)."""
        return capital(self.label)


def capital(text: str) -> str:
    """Return `text` with its first letter upper case and the rest kept (`RA` stays `RA`)."""
    return text[:1].upper() + text[1:]


def _field(values: Any, key: str) -> Any:
    """A result field from a mapping (JSON, the clean section) or a result object."""
    if isinstance(values, Mapping):
        return values.get(key)
    return getattr(values, key, None)


def _auc(
    metric: Metric, values: Any, tolerance_key: str | None, context: Mapping[str, Any]
) -> Measured:
    """AUC and its Hanley-McNeil interval, which needs the positive class (from `context`)."""
    auc = _field(values, metric.field)
    per_class = _field(values, "per_class") or {}
    return auc, auc_interval(auc, per_class, context.get("positive_class"))


def _delta(part: str, label: str, name: str) -> Metric:
    """One quantile of the output change Δ over the samples of a level."""
    field, unit = "delta_quantiles", "output distance"
    return Metric(
        f"delta_{part}", label, name, LEVEL, field, None, False, False, unit=unit, part=part
    )


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
            read=_auc,
        ),  # fmt: skip
        Metric(
            "flip_rate", "flip rate", "flip rate", LEVEL, "flip_rate", "flip_rate_ci", True, False
        ),
        Metric(
            "ra_drop",
            "RA \u2212 clean",
            "change of RA from the clean accuracy",
            LEVEL,
            "ra_drop",
            None,
            False,
            True,
            needs_labels=True,
            unit="difference of shares",
        ),
        _delta("p50", "\u0394 p50", "median change of the output"),
        _delta("p90", "\u0394 p90", "90th percentile of the change of the output"),
        _delta("max", "\u0394 max", "largest change of the output"),
    )
}
GATEABLE = tuple(key for key, m in CATALOGUE.items() if m.gateable)

# `LevelResult` fields that are deliberately not catalogue metrics, and why.
LEFT_OUT = {
    "perturbation": "names the level",
    "family": "names the level",
    "level": "names the level",
    "params": "the level's perturbation parameters, not a measurement",
    "n": "the sample count behind every rate, shown beside them",
    "per_class": "per-class RA and mean shift of p(positive), shown by the binary-detector "
    "table; a per-class figure becomes a metric with a `read` function",
    "rr_curve": "RR on a fine grid of tolerances, drawn as a chart; RR at the audit's "
    "tolerances is `rr`",
    "applied": "the parameters as applied to the images, not a measurement of the model",
    "changed_share": "how much the perturbation changed the pixels: a fact of the "
    "perturbation on this data, not of the model; shown beside the level's parameters",
    "psnr_median": "the perturbation's strength on this data, not a measurement of the model",
    "no_effect": "marks a level that changed no pixel (its figures measure nothing)",
    "outcomes": "per-sample outcome bitsets for paired tests (`auditor compare`)",
    "face_found_rate": "--face-crop: the share of samples whose face the detector found at the "
    "level, a fact of the front end; shown beside n, and a `face_lost` finding when low",
    "crop_shift_median": "--face-crop: how far the crop moved from the clean one (px), a fact "
    "of the front end on this data, shown beside the face-found rate",
}


def get(key: str) -> Metric:
    """The catalogue entry `key`; `KeyError` names the known ones."""
    try:
        return CATALOGUE[key]
    except KeyError:
        raise KeyError(f"unknown metric {key!r}; known: {', '.join(CATALOGUE)}") from None


def measure(
    metric: Metric,
    values: Mapping[str, Any] | Any,
    tolerance_key: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> Measured:
    """Return (value, 95% interval) of `metric` from a level's (or clean) result fields.

    `values`: a level result (a `LevelResult`, `dataclasses.asdict` of one, or its JSON),
    or the clean section; `tolerance_key` picks RR's tolerance; `context` gives what a
    computed interval needs (the AUC's: `positive_class`, as in the results' `model`).
    """
    if metric.read is not None:
        value, ci = metric.read(metric, values, tolerance_key, context or {})
    else:
        value = _field(values, metric.field)
        ci = _field(values, metric.interval) if metric.interval else None
        part = tolerance_key if metric.per_tolerance else metric.part
        if part is not None:
            value = (value or {}).get(part)
            ci = (ci or {}).get(part)
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
