"""Row strips: pixel-wise float work on very large images with bounded memory.

A 3000 x 4000 photo is 36 MB as uint8 but 144 MB per float32 copy, and a pixel-wise
perturbation makes a few copies. Working through horizontal strips keeps the float
temporaries to a few MB whatever the image size. Strips are fixed in size and taken
in order, so random draws made strip by strip are the same on every run.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]

STRIP_PIXELS = 1 << 20
"""About this many pixels per strip (1 Mpx: 12 MB per float32 RGB temporary)."""


def map_strips(image: Image, function: Callable[[Image], Image]) -> Image:
    """Return `function` applied to consecutive row strips of `image`, stitched together.

    `function` gets a strip (uint8 h x W x 3) and returns a uint8 strip of the same
    shape; it must treat pixels independently of their row, except through draws from
    a generator it consumes in order.
    """
    height, width = image.shape[:2]
    rows = max(1, STRIP_PIXELS // max(1, width))
    if rows >= height:
        return function(image)
    out = np.empty_like(image)
    for top in range(0, height, rows):
        out[top : top + rows] = function(image[top : top + rows])
    return out
