"""Weather: ImageNet-C's snow, fog and spatter (frost has its own module).

Snow's pixel-sized parameters (flake zoom, streak radius and sigma) are tuned for 224
px images and scale with `--scale-to-input`. Fog's plasma fractal and spatter's
liquid are drawn relative to the image size, so they need no scaling.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from auditor.perturbations.blur import line_blur
from auditor.perturbations.levels import NON_NEGATIVE, POSITIVE
from auditor.perturbations.pixels import from_unit, in_bands, to_unit
from auditor.perturbations.registry import REFERENCE_SIZE, Image, perturbation

Floats = NDArray[np.float32]


def _blur_field(field: Floats, sigma: float) -> Floats:
    """Gaussian blur of a float field, 4 sigma radius, edges replicated."""
    if sigma <= 0:
        return field
    size = 2 * math.ceil(4 * sigma) + 1
    return cv2.GaussianBlur(field, (size, size), sigma, borderType=cv2.BORDER_REPLICATE)


@perturbation(
    "snow",
    family="weather",
    levels={
        "mean": (0.1, 0.2, 0.55, 0.55, 0.55),
        "std": (0.3, 0.3, 0.3, 0.3, 0.3),
        "zoom": (3, 2, 4, 4.5, 2.5),
        "threshold": (0.5, 0.5, 0.9, 0.85, 0.85),
        "radius": (10, 12, 12, 12, 12),
        "sigma": (4, 4, 8, 8, 12),
        "blend": (0.8, 0.7, 0.7, 0.65, 0.55),
    },
    pixel_params=("zoom", "radius", "sigma"),
    ranges={
        "mean": (0, 1),
        "std": NON_NEGATIVE,
        "zoom": NON_NEGATIVE,
        "threshold": (0, 1),
        "radius": NON_NEGATIVE,
        "sigma": NON_NEGATIVE,
        "blend": (0, 1),
    },
)
def snow(
    image: Image,
    rng: np.random.Generator,
    *,
    mean: float,
    std: float,
    zoom: float,
    threshold: float,
    radius: float,
    sigma: float,
    blend: float,
) -> Image:
    """Falling snow: flakes `zoom` px wide, streaked `radius` px, over a whitened image."""
    height, width = image.shape[:2]
    z = max(zoom, 1.0)
    # Noise on a coarse grid, enlarged: each cell becomes a flake about `zoom` px wide.
    cells = (max(1, math.ceil(height / z)), max(1, math.ceil(width / z)))
    coarse = rng.normal(mean, std, size=cells).astype(np.float32)
    flakes = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    flakes[flakes < threshold] = 0
    np.clip(flakes, 0, 1, out=flakes)
    flakes = line_blur(flakes, radius, sigma, float(rng.uniform(-135, -45)))
    flakes = np.rint(flakes * 255) * np.float32(1 / 255)  # as the reference: 8-bit flakes
    flakes += flakes[::-1, ::-1]  # and the same flakes turned half a circle

    def band(part: Image, snow_part: Floats) -> Image:
        x = to_unit(part)
        whitened = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) * np.float32(1.5) + np.float32(0.5)
        mixed = np.maximum(x, whitened[:, :, None])
        mixed *= np.float32(1 - blend)
        x *= np.float32(blend)
        x += mixed
        x += snow_part[:, :, None]
        return from_unit(x)

    return in_bands(image, band, flakes)


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> Floats:
    """Return a `size` x `size` diamond-square height map in [0, 1] (`size` a power of 2)."""
    field = np.zeros((size, size), np.float32)
    step, wibble = size, 100.0

    def wobble(total: Floats) -> Floats:
        noise = rng.random(total.shape, dtype=np.float32) * np.float32(2 * wibble) - wibble
        return total / 4 + np.float32(wibble) * noise

    while step >= 2:
        half = step // 2
        corners = field[0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=0)
        square += np.roll(square, -1, axis=1)
        field[half:size:step, half:size:step] = wobble(square)
        centres = field[half:size:step, half:size:step]
        corners = field[0:size:step, 0:size:step]
        left = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        field[0:size:step, half:size:step] = wobble(left)
        top = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        field[half:size:step, 0:size:step] = wobble(top)
        step //= 2
        wibble /= decay
    field -= field.min()
    peak = float(field.max())
    return field / np.float32(peak) if peak > 0 else field


@perturbation(
    "fog",
    family="weather",
    levels={"strength": (1.5, 2.0, 2.5, 2.5, 3.0), "decay": (2.0, 2.0, 1.7, 1.5, 1.4)},
    ranges={"strength": NON_NEGATIVE, "decay": POSITIVE},
)
def fog(image: Image, rng: np.random.Generator, *, strength: float, decay: float) -> Image:
    """Fog: add a plasma fractal times `strength`; `decay` < 2 gives finer-grained fog."""
    height, width = image.shape[:2]
    size = 1 << max(0, (max(height, width) - 1).bit_length())
    haze = plasma_fractal(size, max(decay, 1e-3), rng)[:height, :width]
    peak = float(image.max()) / 255
    # Adding the fog brightens; the reference rescales so the brightest pixel stays put.
    gain = np.float32(peak / (peak + strength)) if peak + strength > 0 else np.float32(1)

    def band(part: Image, haze_part: Floats) -> Image:
        x = to_unit(part)
        x += np.float32(strength) * haze_part[:, :, None]
        x *= gain
        return from_unit(x)

    return in_bands(image, band, haze)


WATER = np.array([175, 238, 238], np.float32) / 255  # pale turquoise, RGB
MUD = np.array([63, 42, 20], np.float32) / 255  # brown, RGB
EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)


@perturbation(
    "spatter",
    family="weather",
    levels={
        "mean": (0.65, 0.65, 0.65, 0.65, 0.67),
        "std": (0.3, 0.3, 0.3, 0.3, 0.4),
        "sigma": (4, 3, 2, 1, 1),
        "threshold": (0.69, 0.68, 0.68, 0.65, 0.65),
        "water": (0.6, 0.6, 0.5, 0.0, 0.0),
        "mud_sigma": (0.0, 0.0, 0.0, 1.5, 1.5),
    },
    ranges={
        "mean": (0, 1),
        "std": NON_NEGATIVE,
        "sigma": NON_NEGATIVE,
        "threshold": (0, 1),
        "water": (0, 1),
        "mud_sigma": NON_NEGATIVE,
    },
)
def spatter(
    image: Image,
    rng: np.random.Generator,
    *,
    mean: float,
    std: float,
    sigma: float,
    threshold: float,
    water: float,
    mud_sigma: float,
) -> Image:
    """Spatter: water drops of strength `water`, or mud blots when `mud_sigma` > 0."""
    height, width = image.shape[:2]
    # The liquid is drawn on a grid whose short side is REFERENCE_SIZE px, then resized
    # to the image: its noise is white per pixel of a 224 px image and the thresholds
    # and 20 px shading assume that, so drops keep their size relative to the image.
    factor = REFERENCE_SIZE / min(height, width)
    grid = (max(1, round(height * factor)), max(1, round(width * factor)))
    liquid = _blur_field(rng.normal(mean, std, size=grid).astype(np.float32), sigma)
    liquid[liquid < threshold] = 0
    if mud_sigma > 0:
        blots = _blur_field((liquid > threshold).astype(np.float32), mud_sigma)
        blots[blots < 0.8] = 0
        return in_bands(image, _cover_with_mud, _resized(blots, height, width))
    drops = _resized(_water_drops(liquid), height, width)
    tint = np.float32(water) * WATER

    def band(part: Image, drops_part: Floats) -> Image:
        x = to_unit(part)
        x += drops_part[:, :, None] * tint
        return from_unit(x)

    return in_bands(image, band, drops)


def _resized(field: Floats, height: int, width: int) -> Floats:
    """Return `field` resized to `height` x `width` (area when shrinking, else linear)."""
    if field.shape == (height, width):
        return field
    shrink = height < field.shape[0]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(field, (width, height), interpolation=interpolation)


def _cover_with_mud(part: Image, blots: Floats) -> Image:
    """Replace the image by mud in proportion to `blots` (0..1)."""
    x = to_unit(part)
    x *= (1 - blots)[:, :, None]
    x += blots[:, :, None] * MUD
    return from_unit(x)


def _water_drops(liquid: Floats) -> Floats:
    """Return the drops' brightness in [0, 1]: liquid shaded by an embossed edge distance."""
    level = np.clip(liquid * 255, 0, 255).astype(np.uint8)
    dist = cv2.distanceTransform(255 - cv2.Canny(level, 50, 150), cv2.DIST_L2, 5)
    np.minimum(dist, 20, out=dist)  # drops are shaded up to 20 px inside their rims
    shade = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
    shade = cv2.blur(cv2.filter2D(shade, cv2.CV_8U, EMBOSS), (3, 3)).astype(np.float32)
    drops = level.astype(np.float32) * shade
    peak = float(drops.max())
    return drops / np.float32(peak) if peak > 0 else drops
