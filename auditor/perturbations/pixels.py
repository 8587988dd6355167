"""Conversions between uint8 images and [0, 1] floats, shared by the perturbations.

Also `in_bands`: pixel-wise perturbations work one band of rows at a time, in a fixed
order. A 3000 x 4000 photo is 36 MB as uint8 but 144 MB per float32 copy, and a
pixel-wise perturbation makes a few copies; bands keep the float temporaries to a few
MB whatever the image size. Bands are fixed in size and taken top first, so random
draws made band by band are the same on every run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray


def to_unit(image: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Return `image` as float32 in [0, 1]."""
    return image.astype(np.float32) * np.float32(1 / 255)


def from_unit(x: NDArray[np.floating]) -> NDArray[np.uint8]:
    """Return [0, 1] floats as uint8, rounded and clipped (never truncated)."""
    scaled = x * 255.0
    return _round_and_clip(scaled)


def from_pixels(x: NDArray[np.floating]) -> NDArray[np.uint8]:
    """Return 0..255 floats as uint8, rounded and clipped (never truncated)."""
    return _round_and_clip(np.rint(x))


def _round_and_clip(x: NDArray[np.floating]) -> NDArray[np.uint8]:
    """Round and clip a float array that the caller owns, in place, and return bytes."""
    np.rint(x, out=x)
    np.clip(x, 0, 255, out=x)
    return x.astype(np.uint8)


BAND_PIXELS = 1 << 20
"""About this many pixels are perturbed at a time (a fixed constant: results depend on it)."""


def in_bands(
    image: NDArray[np.uint8],
    perturb_band: Callable[..., NDArray[np.uint8]],
    *aligned: NDArray[Any],
) -> NDArray[np.uint8]:
    """Return `image` with `perturb_band` applied to consecutive bands of rows, top first.

    `perturb_band(part, *aligned_parts)` also gets the same rows of each `aligned` array.
    """
    height, width = image.shape[:2]
    rows = max(1, BAND_PIXELS // max(1, width))
    if rows >= height:
        return perturb_band(image, *aligned)
    out = np.empty_like(image)
    for top in range(0, height, rows):
        band = slice(top, top + rows)
        out[band] = perturb_band(image[band], *(a[band] for a in aligned))
    return out
