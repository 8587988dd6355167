"""What `auditor` measures: the arithmetic of the metrics (`arithmetic`) and the
catalogue that names each reported metric once (`catalogue`).

The arithmetic's names are re-exported lazily (`from auditor import metrics;
metrics.wilson(...)`), so that `auditor.metrics.catalogue` loads without numpy: the
report layer reads the catalogue and must stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from auditor.metrics.arithmetic import (
        CURVE_TOLERANCES,
        DIGITS,
        EXACT_SCALE,
        FLOAT_SLACK,
        RESOLUTION,
        area_under,
        auc_from_counts,
        clean_metrics,
        decide,
        delta_quantiles,
        deltas,
        exact_mean,
        exact_total,
        level_metrics,
        quantile_from_counts,
        quantize,
        roc_auc,
        rounded,
        value_counts,
        wilson,
    )

__all__ = [
    "CURVE_TOLERANCES",
    "DIGITS",
    "EXACT_SCALE",
    "FLOAT_SLACK",
    "RESOLUTION",
    "area_under",
    "auc_from_counts",
    "clean_metrics",
    "decide",
    "delta_quantiles",
    "deltas",
    "exact_mean",
    "exact_total",
    "level_metrics",
    "quantile_from_counts",
    "quantize",
    "roc_auc",
    "rounded",
    "value_counts",
    "wilson",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from auditor.metrics import arithmetic

        return getattr(arithmetic, name)
    raise AttributeError(f"module 'auditor.metrics' has no attribute {name!r}")
