"""Noise: ImageNet-C's gaussian, shot, impulse and speckle noise.

The epsilon ladder (linf_noise, linf_sign) is in `epsilon`.

Per-pixel noise is drawn and applied one band of rows at a time (`in_bands`).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.typing import NDArray

from auditor.perturbations import offsets
from auditor.perturbations.levels import NON_NEGATIVE, Range
from auditor.perturbations.pixels import from_unit, in_bands, to_unit
from auditor.perturbations.registry import Image, perturbation


@perturbation(
    "gaussian_noise",
    family="noise",
    levels={"sigma": (0.08, 0.12, 0.18, 0.26, 0.38)},
    ranges={"sigma": NON_NEGATIVE},
)
def gaussian_noise(image: Image, rng: np.random.Generator, *, sigma: float) -> Image:
    """Additive Gaussian noise with standard deviation `sigma` on the [0, 1] scale."""
    table = offsets.gaussian(255.0 * sigma)  # drawn as whole-pixel offsets: see `offsets`

    def band(part: Image) -> Image:
        return offsets.add(part, offsets.draw(rng, part.shape, table))

    return in_bands(image, band)


@perturbation(
    "shot_noise",
    family="noise",
    levels={"photons": (60, 25, 12, 5, 3)},
    # Its tables hold 256 x (photons + 12 sqrt(photons)) floats: 23 MB at the bound.
    ranges={"photons": Range(0, 10_000, low_open=True)},
)
def shot_noise(image: Image, rng: np.random.Generator, *, photons: float) -> Image:
    """Poisson (photon) noise: each value becomes Poisson(`photons` x value) / `photons`."""
    if photons <= 0:
        raise ValueError("shot_noise needs a positive photon count")
    cdf, inverse = _poisson_tables(float(photons))

    def band(part: Image) -> Image:
        counts = _poisson_counts(part, rng.random(part.shape), cdf, inverse)
        return from_unit(counts.astype(np.float32) * np.float32(1 / photons))

    return in_bands(image, band)


POISSON_GRID = 1024
"""Resolution of the cached inverse CDF that `shot_noise` samples through."""


@functools.lru_cache(maxsize=8)
def _poisson_tables(photons: float) -> tuple[NDArray[np.float64], NDArray[np.integer]]:
    """CDF of Poisson(`photons` x v / 255) for v = 0..255, and its inverse on a grid of u."""
    rates = np.arange(256) * (photons / 255)
    top = int(math.ceil(photons + 12 * math.sqrt(photons) + 20))  # beyond: mass < 1e-16
    k = np.arange(top)
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, top)))])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = k * np.log(rates[:, None]) - rates[:, None] - log_factorial
    log_pmf[0] = -np.inf
    log_pmf[0, 0] = 0.0  # rate 0: always 0 photons
    cdf = np.cumsum(np.exp(log_pmf), axis=1)
    grid = np.arange(POISSON_GRID + 1) / POISSON_GRID
    inverse = np.stack([np.searchsorted(row, grid, side="right") for row in cdf])
    # The smallest integer type keeps the table in cache: gathers from it dominate.
    dtype = np.uint8 if top <= 256 else np.uint16 if top <= 65536 else np.int32
    return cdf, np.minimum(inverse, top - 1).astype(dtype)


def _poisson_counts(
    values: Image, u: NDArray[np.float64], cdf: NDArray[np.float64], inverse: NDArray[np.integer]
) -> NDArray[np.integer]:
    """Return Poisson counts by inverse transform: the least k with CDF(k) > `u`.

    Exact, and much faster than `Generator.poisson`: the cached inverse at the grid
    points around `u` brackets k, and only the few values whose bracket is wider
    than one count compare `u` with the CDF.
    """
    flat = inverse.ravel()
    where = values.astype(np.int32) * np.int32(POISSON_GRID + 1)
    where += (u * POISSON_GRID).astype(np.int32)
    counts = flat[where].astype(np.int32)
    open_ = np.nonzero(flat[where + 1] > counts)
    if open_[0].size:
        # Binary search between the bracket's ends, all open values at once.
        v, x = values[open_].astype(np.intp), u[open_]
        lo, hi = counts[open_], flat[where[open_] + 1]
        while np.any(lo < hi):
            mid = (lo + hi) // 2
            right = cdf[v, mid] <= x
            lo = np.where(right, mid + 1, lo)
            hi = np.where(right, hi, mid)
        counts[open_] = lo
    return counts


@perturbation(
    "impulse_noise",
    family="noise",
    levels={"amount": (0.03, 0.06, 0.09, 0.17, 0.27)},
    ranges={"amount": (0, 1)},
)
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


@perturbation(
    "speckle_noise",
    family="noise",
    levels={"sigma": (0.15, 0.2, 0.35, 0.45, 0.6)},
    ranges={"sigma": NON_NEGATIVE},
)
def speckle_noise(image: Image, rng: np.random.Generator, *, sigma: float) -> Image:
    """Multiplicative noise x + x * N(0, `sigma`), so bright regions get more of it."""

    def band(part: Image) -> Image:
        x = to_unit(part)
        noise = rng.standard_normal(part.shape, dtype=np.float32) * np.float32(sigma)
        return from_unit(x + x * noise)

    return in_bands(image, band)
