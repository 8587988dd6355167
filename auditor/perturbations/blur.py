"""Blurs. Their parameters are in pixels for a 224 px image (see `scale_to_input`)."""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from auditor.perturbations.levels import NON_NEGATIVE
from auditor.perturbations.pixels import from_pixels
from auditor.perturbations.registry import Image, perturbation

Kernel = NDArray[np.float32]
SHIFTED_SUM_TAPS = 64  # longer line kernels are applied with cv2.filter2D instead


@perturbation(
    "gaussian_blur",
    family="blur",
    levels={"sigma": (1.0, 2.0, 3.0, 4.0, 6.0)},
    pixel_params=("sigma",),
    ranges={"sigma": NON_NEGATIVE},  # 0 leaves the image as it is
)
def gaussian_blur(image: Image, rng: np.random.Generator, *, sigma: float) -> Image:
    """Gaussian blur with standard deviation `sigma` in pixels."""
    return _gaussian(image, sigma)


def _gaussian(image: Image, sigma: float) -> Image:
    if sigma <= 0:
        return image.copy()
    # Kernel radius 4 sigma and edge replication, as the ImageNet-C reference does.
    size = 2 * math.ceil(4 * sigma) + 1
    if size <= 9:
        return cv2.GaussianBlur(image, (size, size), sigma, borderType=cv2.BORDER_REPLICATE)
    # OpenCV's byte path is exact fixed point but three times slower for long kernels.
    blurred = cv2.GaussianBlur(
        image.astype(np.float32), (size, size), sigma, borderType=cv2.BORDER_REPLICATE
    )
    return from_pixels(blurred)


def disk_kernel(radius: float, alias_sigma: float) -> Kernel:
    """Return a normalized disk of `radius` px, softened by a Gaussian of `alias_sigma`."""
    # The reference draws small disks on a 17 x 17 grid and softens them with a 3 x 3
    # Gaussian, larger ones on a tight grid with 5 x 5; kept so 224 px results match.
    half = max(8, math.ceil(radius))
    offsets = np.arange(-half, half + 1, dtype=np.float32)
    disk = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.float32)
    disk /= max(float(disk.sum()), 1.0)
    size = max(3 if radius <= 8 else 5, 2 * math.ceil(2 * alias_sigma) + 1)
    if alias_sigma > 0:
        disk = cv2.GaussianBlur(disk, (size, size), alias_sigma)
    # Drop the all-zero border of the small disks' 17 x 17 grid: same result, fewer taps.
    used = np.nonzero(disk.any(axis=0))[0]
    trim = int(min(used[0], len(disk) - 1 - used[-1])) if used.size else 0
    return disk[trim : len(disk) - trim, trim : len(disk) - trim]


@perturbation(
    "defocus_blur",
    family="blur",
    levels={"radius": (3, 4, 6, 8, 10), "alias_sigma": (0.1, 0.5, 0.5, 0.5, 0.5)},
    pixel_params=("radius", "alias_sigma"),
    ranges={"radius": NON_NEGATIVE, "alias_sigma": NON_NEGATIVE},
)
def defocus_blur(
    image: Image, rng: np.random.Generator, *, radius: float, alias_sigma: float
) -> Image:
    """Defocus: convolution with a disk of `radius` px, edges softened by `alias_sigma`."""
    if radius <= 0:
        return image.copy()
    kernel = disk_kernel(radius, alias_sigma)
    # On floats OpenCV convolves through the DFT, three times faster than on bytes here.
    blurred = cv2.filter2D(image.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    return from_pixels(blurred)


@perturbation(
    "glass_blur",
    family="blur",
    levels={
        "sigma": (0.7, 0.9, 1.0, 1.1, 1.5),
        "distance": (1, 2, 2, 3, 4),
        "passes": (2, 1, 3, 2, 2),
    },
    pixel_params=("sigma", "distance"),
    integer_params=("passes",),
    # Each pass is two random walks over the whole image: a bound keeps the time bounded.
    ranges={"sigma": NON_NEGATIVE, "distance": NON_NEGATIVE, "passes": (0, 10)},
)
def glass_blur(
    image: Image, rng: np.random.Generator, *, sigma: float, distance: float, passes: float
) -> Image:
    """Frosted glass: blur by `sigma`, shuffle pixels by up to `distance` px `passes` times."""
    d = int(round(distance))
    out = _gaussian(image, sigma)
    steps = 2 * int(round(passes))
    if d > 0 and steps > 0:
        out = _shuffle(out, d, steps, rng)
    return _gaussian(out, sigma)


def _shuffle(image: Image, distance: int, steps: int, rng: np.random.Generator) -> Image:
    """Move every pixel by a random walk of `steps` steps, each up to `distance` px."""
    # The reference swaps each pixel with a random neighbour, one pixel at a time; a
    # pixel swapped ahead of the sweep is swapped again, so each pass moves pixels
    # about two steps (measured: displacement variance 1.6 to 2.4 single steps per
    # pass). One gather from the summed offsets does the same in a single remap.
    height, width = image.shape[:2]
    dy = np.zeros((height, width), np.float32)
    dx = np.zeros((height, width), np.float32)
    for _ in range(steps):
        dy += rng.integers(-distance, distance + 1, size=(height, width), dtype=np.int16)
        dx += rng.integers(-distance, distance + 1, size=(height, width), dtype=np.int16)
    dy += np.arange(height, dtype=np.float32)[:, None]
    dx += np.arange(width, dtype=np.float32)[None, :]
    return cv2.remap(image, dx, dy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)


def motion_kernel(radius: float, sigma: float, angle: float) -> tuple[Kernel, tuple[int, int]]:
    """Return a one-sided line kernel along `angle` degrees and its anchor (x, y).

    The weights fall off as a Gaussian of `sigma` px over 2 `radius` + 1 taps; the
    kernel spans only the taps' bounding box, so `cv2.filter2D` needs the anchor.
    """
    width = 2 * int(round(radius)) + 1
    steps = np.arange(width, dtype=np.float64)
    weights = np.exp(-(steps**2) / (2 * max(sigma, 1e-6) ** 2))
    weights /= weights.sum()
    # The reference shifts copies by these rounded offsets and sums them: a sparse
    # kernel does the same in one filter. Tap i reads the source at (-dy, -dx).
    dy = -np.ceil(steps * math.sin(math.radians(angle)) - 0.5).astype(np.int64)
    dx = -np.ceil(steps * math.cos(math.radians(angle)) - 0.5).astype(np.int64)
    anchor_y, anchor_x = int(dy.max()), int(dx.max())
    kernel = np.zeros((anchor_y - int(dy.min()) + 1, anchor_x - int(dx.min()) + 1), np.float64)
    np.add.at(kernel, (anchor_y - dy, anchor_x - dx), weights)
    return kernel.astype(np.float32), (anchor_x, anchor_y)


def line_blur(
    image: NDArray[np.float32], radius: float, sigma: float, angle: float
) -> NDArray[np.float32]:
    """Blur float `image` along `angle` degrees (see `motion_kernel`), edges replicated."""
    kernel, (ax, ay) = motion_kernel(radius, sigma, angle)
    taps = np.nonzero(kernel)
    if len(taps[0]) > SHIFTED_SUM_TAPS:
        return cv2.filter2D(image, -1, kernel, anchor=(ax, ay), borderType=cv2.BORDER_REPLICATE)
    # A few dozen shifted copies summed in place beat OpenCV's DFT on such a sparse kernel.
    height, width = image.shape[:2]
    rows, cols = kernel.shape
    padded = cv2.copyMakeBorder(image, ay, rows - 1 - ay, ax, cols - 1 - ax, cv2.BORDER_REPLICATE)
    total = np.zeros_like(image)
    for v, u in zip(*taps):
        cv2.scaleAdd(padded[v : v + height, u : u + width], float(kernel[v, u]), total, dst=total)
    return total


@perturbation(
    "motion_blur",
    family="blur",
    levels={"radius": (10, 15, 15, 15, 20), "sigma": (3, 5, 8, 12, 15)},
    pixel_params=("radius", "sigma"),
    ranges={"radius": NON_NEGATIVE, "sigma": NON_NEGATIVE},
)
def motion_blur(image: Image, rng: np.random.Generator, *, radius: float, sigma: float) -> Image:
    """Motion blur along a random angle in [-45, 45] deg, trail `radius` px, weights `sigma`."""
    angle = float(rng.uniform(-45, 45))
    if radius <= 0:
        return image.copy()
    # Filtering floats is faster than bytes here (OpenCV switches to the DFT).
    return from_pixels(line_blur(image.astype(np.float32), radius, sigma, angle))


def zoom_factors(max_zoom: float, step: float) -> list[float]:
    """Return 1, 1 + step, ... up to `max_zoom` (inclusive, within rounding)."""
    if step <= 0 or max_zoom <= 1:
        return [1.0]
    count = int(math.floor((max_zoom - 1) / step + 1e-6)) + 1
    return [1 + step * k for k in range(count)]


@perturbation(
    "zoom_blur",
    family="blur",
    levels={"max_zoom": (1.11, 1.15, 1.20, 1.24, 1.30), "step": (0.01, 0.01, 0.02, 0.02, 0.03)},
    # One warp of the whole image per step: at most (2 - 1) / 0.005 = 200 of them.
    ranges={"max_zoom": (1, 2), "step": (0.005, 1)},
)
def zoom_blur(image: Image, rng: np.random.Generator, *, max_zoom: float, step: float) -> Image:
    """Zoom blur: mean of the image and copies zoomed about the centre from 1 to `max_zoom`."""
    height, width = image.shape[:2]
    cx, cy = (width - 1) / 2, (height - 1) / 2
    total = image.astype(np.float32)
    factors = zoom_factors(max_zoom, step)
    for z in factors:
        # Zooming in by z about the centre: dst = z * (src - c) + c.
        matrix = np.array([[z, 0, (1 - z) * cx], [0, z, (1 - z) * cy]], np.float64)
        zoomed = cv2.warpAffine(
            image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        np.add(total, zoomed, out=total)
    # The unzoomed image counts twice (z = 1 is among the factors), as in the reference.
    total *= np.float32(1 / (len(factors) + 1))
    return from_pixels(total)
