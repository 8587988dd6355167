"""Additive noise: ImageNet-C's gaussian_noise (the epsilon ladder is in `epsilon`)."""

from __future__ import annotations

import numpy as np

from auditor.perturbations.pixels import from_unit, to_unit
from auditor.perturbations.registry import Image, perturbation


@perturbation("gaussian_noise", family="noise", levels={"sigma": (0.08, 0.12, 0.18, 0.26, 0.38)})
def gaussian_noise(image: Image, rng: np.random.Generator, *, sigma: float) -> Image:
    """Additive Gaussian noise with standard deviation `sigma` on the [0, 1] scale."""
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
    return from_unit(to_unit(image) + noise)
