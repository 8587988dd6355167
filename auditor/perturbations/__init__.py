"""Image perturbations, graded in levels, and the public `apply` function.

Importing this package registers the built-in perturbations and suites.
"""

from __future__ import annotations

from auditor.perturbations import blur, digital, frost, noise, weather  # noqa: F401  (they register)
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
# The ImageNet-C benchmark's 15 common corruptions, in its order, then its 4 extra ones.
SUITES["imagenet-c"] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
SUITES["imagenet-c-all"] = (
    *SUITES["imagenet-c"],
    "speckle_noise",
    "gaussian_blur",
    "spatter",
    "saturate",
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
