"""Frost: ImageNet-C's frost corruption over a procedurally grown ice texture.

The reference blends photographs of frosted windows into the image. We ship no
photographs: the texture is drawn here, fern-like ice crystals (a stem with side
needles at about 60 degrees, as dendritic frost grows) over a soft haze. What the
degradation's strength depends on is the texture's brightness and contrast: the
photographs the reference picks from average RGB (146, 167, 179) with spreads of 15
to 45; we tint and scale ours to (135, 157, 170) and 32, which matches the
reference's median PSNR ladder best (a median over random picks of bright and dark
photographs sits below the mean photograph's). Crystal sizes are fractions of the image's short
side, so the texture scales with the image whatever `--scale-to-input` says.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from auditor.perturbations.pixels import from_pixels, in_bands
from auditor.perturbations.registry import Image, perturbation

Floats = NDArray[np.float32]

FROST_MEAN = np.array([135.0, 157.0, 170.0], np.float32)
"""Mean RGB of the texture (see the module's docstring)."""
FROST_SPREAD = 32.0
"""Standard deviation of the texture's brightness."""
STEMS_PER_SQUARE = 60  # crystals per (short side)^2 of image
NEEDLES = 7  # side-needle pairs per crystal


def _haze(height: int, width: int, rng: np.random.Generator) -> Floats:
    """Soft cloudy brightness in [0, 1]: random grids of three sizes, enlarged smoothly."""
    short = min(height, width)
    total = np.zeros((height, width), np.float32)
    for cells, weight in ((3, 0.5), (8, 0.3), (24, 0.2)):
        rows = max(2, round(cells * height / short))
        cols = max(2, round(cells * width / short))
        grid = rng.random((rows, cols), dtype=np.float32)
        total += weight * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return total


def _crystal_segments(height: int, width: int, rng: np.random.Generator) -> NDArray[np.int32]:
    """Return line segments (n, 2, 2) of x, y points: crystal stems and their needles."""
    short = min(height, width)
    count = max(1, round(STEMS_PER_SQUARE * height * width / short**2))
    start = rng.random((count, 2)) * (width, height)
    angle = rng.uniform(0, 2 * np.pi, count)
    length = short * rng.uniform(0.05, 0.3, count)
    heading = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    stems = np.stack([start, start + heading * length[:, None]], axis=1)
    # Needles leave the stem at evenly spaced points, shorter towards the tip, on both
    # sides at 60 degrees +- a little.
    t = (np.arange(NEEDLES) + 0.5) / NEEDLES
    roots = start[:, None, :] + heading[:, None, :] * (length[:, None] * t)[:, :, None]
    sides = np.array([-1.0, 1.0])
    spread = np.radians(60 + rng.uniform(-10, 10, (count, NEEDLES, 2)))
    turn = angle[:, None, None] + sides * spread
    reach = 0.4 * length[:, None, None] * (1 - t)[None, :, None]
    reach = reach * rng.uniform(0.5, 1.0, (count, NEEDLES, 2))
    tips = roots[:, :, None, :] + reach[..., None] * np.stack([np.cos(turn), np.sin(turn)], -1)
    roots = np.broadcast_to(roots[:, :, None, :], tips.shape)
    needles = np.stack([roots, tips], axis=3).reshape(-1, 2, 2)
    return np.rint(np.concatenate([stems, needles])).astype(np.int32)


def frost_texture(height: int, width: int, rng: np.random.Generator) -> Floats:
    """Return a frost texture's brightness around 0, float32 `height` x `width`.

    Add FROST_MEAN for its RGB values (a grey texture in a constant tint).
    """
    canvas = np.zeros((height, width), np.uint8)
    segments = _crystal_segments(height, width, rng)
    cv2.polylines(canvas, list(segments), False, 255, thickness=1, lineType=cv2.LINE_AA)
    glow = max(0.5, min(height, width) / 224)
    ice = cv2.GaussianBlur(canvas.astype(np.float32) * np.float32(1 / 255), (0, 0), glow)
    ice = np.float32(0.6) * ice + np.float32(0.4) * canvas * np.float32(1 / 255)
    texture = np.float32(0.5) * _haze(height, width, rng) + ice
    texture -= texture.mean()
    texture *= np.float32(FROST_SPREAD / max(float(texture.std()), 1e-6))
    return texture


@perturbation(
    "frost",
    family="weather",
    levels={
        "image_weight": (1.0, 0.8, 0.7, 0.65, 0.6),
        "frost_weight": (0.4, 0.6, 0.7, 0.7, 0.75),
    },
    ranges={"image_weight": (0, 1), "frost_weight": (0, 1)},
)
def frost(
    image: Image, rng: np.random.Generator, *, image_weight: float, frost_weight: float
) -> Image:
    """Frost on the lens: `image_weight` x image + `frost_weight` x an ice texture."""
    height, width = image.shape[:2]
    texture = frost_texture(height, width, rng)
    tint = np.float32(frost_weight) * FROST_MEAN

    def band(part: Image, texture_part: Floats) -> Image:
        x = part.astype(np.float32)
        x *= np.float32(image_weight)
        x += texture_part[:, :, None] * np.float32(frost_weight)
        x += tint
        return from_pixels(x)

    return in_bands(image, band, texture)
