"""Noise: ImageNet-C's gaussian, shot, impulse and speckle noise; the epsilon ladder's linf_noise.

Per-pixel noise is drawn and applied one band of rows at a time, in a fixed order, so
that a very large image never needs several full-size float copies at once and the
result does not depend on how the work is split.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from auditor.perturbations.pixels import from_pixels, from_unit, to_unit
from auditor.perturbations.registry import Image, perturbation

BAND_PIXELS = 1 << 20
"""About this many pixels are perturbed at a time (a fixed constant: results depend on it)."""


def in_bands(image: Image, perturb_band: Callable[[Image], Image]) -> Image:
    """Return `image` with `perturb_band` applied to consecutive bands of rows, top first."""
    height, width = image.shape[:2]
    rows = max(1, BAND_PIXELS // max(1, width))
    if rows >= height:
        return perturb_band(image)
    out = np.empty_like(image)
    for top in range(0, height, rows):
        out[top : top + rows] = perturb_band(image[top : top + rows])
    return out


@perturbation("gaussian_noise", family="noise", levels={"sigma": (0.08, 0.12, 0.18, 0.26, 0.38)})
def gaussian_noise(image: Image, rng: np.random.Generator, *, sigma: float) -> Image:
    """Additive Gaussian noise with standard deviation `sigma` on the [0, 1] scale."""

    def band(part: Image) -> Image:
        noise = rng.standard_normal(part.shape, dtype=np.float32) * np.float32(sigma)
        return from_unit(to_unit(part) + noise)

    return in_bands(image, band)


@perturbation("shot_noise", family="noise", levels={"photons": (60, 25, 12, 5, 3)})
def shot_noise(image: Image, rng: np.random.Generator, *, photons: float) -> Image:
    """Poisson (photon) noise: each value becomes Poisson(`photons` x value) / `photons`."""
    if photons <= 0:
        raise ValueError("shot_noise needs a positive photon count")

    def band(part: Image) -> Image:
        counts = rng.poisson(to_unit(part) * np.float32(photons))
        return from_unit(counts.astype(np.float32) * np.float32(1 / photons))

    return in_bands(image, band)


@perturbation("impulse_noise", family="noise", levels={"amount": (0.03, 0.06, 0.09, 0.17, 0.27)})
def impulse_noise(image: Image, rng: np.random.Generator, *, amount: float) -> Image:
    """Salt-and-pepper noise: a fraction `amount` of values set to 0 or 255, half each."""

    def band(part: Image) -> Image:
        # One uniform draw per value decides both whether it flips and which way.
        u = rng.random(part.shape, dtype=np.float32)
        out = part.copy()
        out[u < amount / 2] = 0
        out[(u >= amount / 2) & (u < amount)] = 255
        return out

    return in_bands(image, band)


@perturbation("speckle_noise", family="noise", levels={"sigma": (0.15, 0.2, 0.35, 0.45, 0.6)})
def speckle_noise(image: Image, rng: np.random.Generator, *, sigma: float) -> Image:
    """Multiplicative noise x + x * N(0, `sigma`), so bright regions get more of it."""

    def band(part: Image) -> Image:
        x = to_unit(part)
        noise = rng.standard_normal(part.shape, dtype=np.float32) * np.float32(sigma)
        return from_unit(x + x * noise)

    return in_bands(image, band)


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
