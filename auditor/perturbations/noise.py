"""Additive noise: ImageNet-C's gaussian_noise and the epsilon ladder's linf_noise."""

from __future__ import annotations

import numpy as np

from auditor.perturbations.pixels import from_pixels, from_unit, to_unit
from auditor.perturbations.registry import Image, perturbation


@perturbation("gaussian_noise", family="noise", levels={"sigma": (0.08, 0.12, 0.18, 0.26, 0.38)})
def gaussian_noise(image: Image, rng: np.random.Generator, *, sigma: float) -> Image:
    """Additive Gaussian noise with standard deviation `sigma` on the [0, 1] scale."""
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
    return from_unit(to_unit(image) + noise)


@perturbation(
    "linf_noise",
    family="epsilon",
    levels={"eps": (1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)},
)
def linf_noise(image: Image, rng: np.random.Generator, *, eps: float) -> Image:
    """Uniform noise in [-eps, eps] per pixel: a random point of the L-inf ball."""
    # Working in pixel units keeps eps = k/255 exact: +-k pixel values at most.
    noise = rng.uniform(-eps * 255.0, eps * 255.0, size=image.shape).astype(np.float32)
    return from_pixels(image.astype(np.float32) + noise)
