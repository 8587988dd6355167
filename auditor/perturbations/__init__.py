"""Image perturbations, graded in levels, and the public `apply` function.

Importing this package registers the built-in perturbations and suites, then the
plugins of the entry-point group `auditor.perturbations` (see `plugins`), which
register with the same `perturbation` decorator.
"""

from __future__ import annotations

from auditor.perturbations import (  # noqa: F401  (they register)
    blur,
    deepfake,
    digital,
    epsilon,
    frost,
    laundering,
    noise,
    video,
    weather,
)
from auditor.perturbations.levels import Range
from auditor.perturbations.plugins import load_plugins
from auditor.perturbations.registry import (
    REGISTRY,
    SUITES,
    Perturbation,
    PlannedPerturbation,
    apply,
    get,
    parse_spec,
    perturbation,
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
SUITES["deepfake"] = (
    "color_saturation",
    "color_contrast",
    "block_occlusion",
    "ycbcr_noise",
    "gaussian_blur_kernel",
    "resize_roundtrip",
    "video_compression",
    "webp_compression",
    "jpeg_double",
)

load_plugins()
# After the plugins, so that `all` is everything registered, theirs included. (The
# searches that query the model are not perturbations: `auditor.adversarial` registers
# them, and they run only when named with -p.)
SUITES["all"] = tuple(sorted(REGISTRY))

__all__ = [
    "REGISTRY",
    "SUITES",
    "Perturbation",
    "PlannedPerturbation",
    "Range",
    "apply",
    "get",
    "parse_spec",
    "perturbation",
    "plan",
]
