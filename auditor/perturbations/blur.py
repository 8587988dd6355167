"""Blurs. Their parameters are in pixels for a 224 px image (see `scale_to_input`)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from auditor.perturbations.registry import Image, perturbation


@perturbation(
    "gaussian_blur",
    family="blur",
    levels={"sigma": (1.0, 2.0, 3.0, 4.0, 6.0)},
    pixel_params=("sigma",),
)
def gaussian_blur(image: Image, rng: np.random.Generator, *, sigma: float) -> Image:
    """Gaussian blur with standard deviation `sigma` in pixels."""
    if sigma <= 0:
        return image.copy()
    # Kernel radius 4 sigma and edge replication, as the ImageNet-C reference does.
    size = 2 * math.ceil(4 * sigma) + 1
    return cv2.GaussianBlur(image, (size, size), sigma, borderType=cv2.BORDER_REPLICATE)
