"""Image perturbations, graded in levels, and the public `apply` function.

Importing this package registers the built-in perturbations and suites.
"""

from __future__ import annotations

from auditor.perturbations import blur, digital, noise  # noqa: F401  (they register)
from auditor.perturbations.registry import (
    REGISTRY,
    SUITES,
    Perturbation,
    PlannedPerturbation,
    apply,
    get,
    parse_spec,
    plan,
)

SUITES["quick"] = (
    "gaussian_noise",
    "gaussian_blur",
    "jpeg_compression",
    "brightness",
    "contrast",
    "pixelate",
    "linf_noise",
)

__all__ = [
    "REGISTRY",
    "SUITES",
    "Perturbation",
    "PlannedPerturbation",
    "apply",
    "get",
    "parse_spec",
    "plan",
]
