"""What `auditor` measures: the arithmetic of the metrics (`arithmetic`) and the
catalogue that names each reported metric once (`catalogue`).

The arithmetic needs numpy and is loaded on first use of one of its names, so the
report layer can read the catalogue without importing numpy.
"""

from __future__ import annotations

import importlib
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
        decide,
        delta_quantiles,
        deltas,
        exact_mean,
        exact_total,
        quantile_from_counts,
        quantize,
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
    "decide",
    "delta_quantiles",
    "deltas",
    "exact_mean",
    "exact_total",
    "quantile_from_counts",
    "quantize",
    "rounded",
    "value_counts",
    "wilson",
]


def __getattr__(name: str) -> Any:
    """Return a name of `arithmetic`, importing it (and numpy) on first use."""
    if name in __all__:
        return getattr(importlib.import_module("auditor.metrics.arithmetic"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
