"""The DeeperForensics-1.0 distortion ladder (Jiang et al. 2020), less `video_compression`.

Six of its seven distortions, with its five-level tables; the seventh, a real video
re-encode, lives in `video` because it depends on the codecs of the OpenCV build.
Pixel-wise work goes through bands of rows (`in_bands`), so very large images stay cheap in memory.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from auditor.perturbations.levels import NON_NEGATIVE
from auditor.perturbations.pixels import from_pixels, in_bands
from auditor.perturbations.registry import Image, perturbation

# BT.601 full-range (JPEG) YCbCr, the colour space DeeperForensics distorts in.
LUMA = (0.299, 0.587, 0.114)
GREY = 128


def _luma(x: np.ndarray) -> np.ndarray:
    return x[..., 0:1] * LUMA[0] + x[..., 1:2] * LUMA[1] + x[..., 2:3] * LUMA[2]


@perturbation(
    "color_saturation",
    family="deepfake",
    levels={"factor": (0.4, 0.3, 0.2, 0.1, 0.0)},
    ranges={"factor": NON_NEGATIVE},
)
def color_saturation(image: Image, rng: np.random.Generator, *, factor: float) -> Image:
    """Scale the YCbCr chroma deviation (Cb, Cr from 128) by `factor`; 0 is greyscale."""
    f = np.float32(factor)

    def band(part: Image) -> Image:
        # YCbCr -> RGB is linear and zero chroma means R = G = B = Y, so scaling the
        # chroma deviation is scaling each pixel's distance from its own luma.
        x = part.astype(np.float32)
        y = _luma(x)
        return from_pixels(y + (x - y) * f)

    return in_bands(image, band)


@perturbation(
    "color_contrast",
    family="deepfake",
    levels={"factor": (0.85, 0.725, 0.6, 0.475, 0.35)},
    ranges={"factor": NON_NEGATIVE},
)
def color_contrast(image: Image, rng: np.random.Generator, *, factor: float) -> Image:
    """Multiply every pixel value by `factor` (contrast and brightness fall together)."""
    table = from_pixels(np.arange(256, dtype=np.float64) * factor)
    return table[image]


@perturbation(
    "block_occlusion",
    family="deepfake",
    levels={"count": (16, 32, 48, 64, 80)},
    integer_params=("count",),
    ranges={"count": (0, 10_000)},  # painted one by one
)
def block_occlusion(image: Image, rng: np.random.Generator, *, count: float) -> Image:
    """Paint `count` grey blocks, 8 x 8 px per 256 px of short side, at random places."""
    h, w = image.shape[:2]
    side = max(1, round(8 * min(h, w) / 256))  # the block covers the same share at any size
    n = max(0, int(round(count)))
    tops = rng.integers(0, h - side + 1, size=n)
    lefts = rng.integers(0, w - side + 1, size=n)
    out = image.copy()
    for top, left in zip(tops, lefts):
        out[top : top + side, left : left + side] = GREY
    return out


@perturbation(
    "ycbcr_noise",
    family="deepfake",
    levels={"variance": (0.001, 0.002, 0.005, 0.01, 0.05)},
    ranges={"variance": NON_NEGATIVE},
)
def ycbcr_noise(image: Image, rng: np.random.Generator, *, variance: float) -> Image:
    """Gaussian noise of `variance` (on the [0, 1] scale) added to Y, Cb and Cr."""
    sigma = np.float32(np.sqrt(max(variance, 0.0)) * 255.0)

    def band(part: Image) -> Image:
        n = rng.standard_normal(part.shape, dtype=np.float32) * sigma
        y, cb, cr = n[..., 0], n[..., 1], n[..., 2]
        # Inverse BT.601 written out, not a matrix product: BLAS may sum differently
        # with different thread counts, and the bytes must not change.
        out = part.astype(np.float32)
        out[..., 0] += y + np.float32(1.402) * cr
        out[..., 1] += y - np.float32(0.344136) * cb - np.float32(0.714136) * cr
        out[..., 2] += y + np.float32(1.772) * cb
        return from_pixels(out)

    return in_bands(image, band)


@perturbation(
    "gaussian_blur_kernel",
    family="deepfake",
    levels={"kernel": (7, 9, 13, 17, 21)},
    pixel_params=("kernel",),
    integer_params=("kernel",),
    ranges={"kernel": (1, math.inf)},
)
def gaussian_blur_kernel(image: Image, rng: np.random.Generator, *, kernel: float) -> Image:
    """Gaussian blur with a `kernel` x `kernel` px kernel and sigma = kernel / 6."""
    # Scaled to the image, the size may be fractional: use the nearest odd size.
    size = 2 * int(round((kernel - 1) / 2)) + 1
    if size <= 1:
        return image.copy()
    sigma = kernel / 6
    return cv2.GaussianBlur(image, (size, size), sigma, borderType=cv2.BORDER_REFLECT_101)


@perturbation(
    "resize_roundtrip",
    family="deepfake",
    levels={"factor": (2.0, 3.0, 4.0, 5.0, 6.0)},
    ranges={"factor": (1, math.inf)},  # below 1 it would enlarge the image first
)
def resize_roundtrip(image: Image, rng: np.random.Generator, *, factor: float) -> Image:
    """Downscale by `factor` and back up, both bilinear, as a low-resolution copy would."""
    h, w = image.shape[:2]
    small = (max(1, round(w / factor)), max(1, round(h / factor)))
    reduced = cv2.resize(image, small, interpolation=cv2.INTER_LINEAR)
    return cv2.resize(reduced, (w, h), interpolation=cv2.INTER_LINEAR)
