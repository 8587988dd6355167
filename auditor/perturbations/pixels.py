"""Conversions between uint8 images and [0, 1] floats, shared by the perturbations."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def to_unit(image: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Return `image` as float32 in [0, 1]."""
    return image.astype(np.float32) * np.float32(1 / 255)


def from_unit(x: NDArray[np.floating]) -> NDArray[np.uint8]:
    """Return [0, 1] floats as uint8, rounded and clipped (never truncated)."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def from_pixels(x: NDArray[np.floating]) -> NDArray[np.uint8]:
    """Return 0..255 floats as uint8, rounded and clipped (never truncated)."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)
