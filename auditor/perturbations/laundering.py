"""The social-media and capture chain: what a photo meets between camera and detector.

Five levels each, mildest first: re-encoding (WebP, JPEG twice), resampling (downscale
and back, centre crop and back), small rotations with a reflected border, and a gamma
change. None is random: the same image and parameters give the same bytes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from auditor.perturbations.levels import POSITIVE, Range
from auditor.perturbations.pixels import from_pixels
from auditor.perturbations.registry import Image, perturbation


def encode_roundtrip(image: Image, extension: str, params: list[int]) -> Image:
    """Encode `image` with OpenCV's codec for `extension` and decode it again."""
    # OpenCV's codecs work in BGR; convert there and back so colours survive.
    ok, data = cv2.imencode(extension, np.ascontiguousarray(image[:, :, ::-1]), params)
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
    if decoded is None or decoded.shape != image.shape:
        raise RuntimeError(f"OpenCV could not encode and decode a {extension} image")
    return np.ascontiguousarray(decoded[:, :, ::-1])


def _quality(value: float) -> int:
    return int(np.clip(round(value), 0, 100))


@perturbation(
    "webp_compression",
    family="laundering",
    levels={"quality": (80, 60, 40, 25, 10)},
    integer_params=("quality",),
    ranges={"quality": (1, 100)},
)
def webp_compression(image: Image, rng: np.random.Generator, *, quality: float) -> Image:
    """WebP encode and decode at `quality` (1..100; 100 is lossless)."""
    return encode_roundtrip(image, ".webp", [cv2.IMWRITE_WEBP_QUALITY, max(1, _quality(quality))])


@perturbation(
    "jpeg_double",
    family="laundering",
    levels={"first": (95, 90, 85, 80, 75), "second": (75, 60, 50, 40, 30)},
    integer_params=("first", "second"),
    ranges={"first": (0, 100), "second": (0, 100)},
)
def jpeg_double(image: Image, rng: np.random.Generator, *, first: float, second: float) -> Image:
    """JPEG at quality `first` (the camera), then again at `second` (the platform)."""
    once = encode_roundtrip(image, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, _quality(first)])
    return encode_roundtrip(once, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, _quality(second)])


@perturbation(
    "downscale",
    family="laundering",
    levels={"factor": (1.5, 2.0, 2.5, 3.0, 4.0)},
    ranges={"factor": (1, math.inf)},  # below 1 it would enlarge the image first
)
def downscale(image: Image, rng: np.random.Generator, *, factor: float) -> Image:
    """Shrink to 1/`factor` with area averaging (a platform's resize), then back (cubic)."""
    h, w = image.shape[:2]
    small = (max(1, round(w / factor)), max(1, round(h / factor)))
    reduced = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
    return cv2.resize(reduced, (w, h), interpolation=cv2.INTER_CUBIC)


@perturbation(
    "rotation",
    family="laundering",
    levels={"degrees": (2.0, 4.0, 6.0, 8.0, 10.0)},
    ranges={"degrees": (-360, 360)},
)
def rotation(image: Image, rng: np.random.Generator, *, degrees: float) -> Image:
    """Rotate by `degrees` counter-clockwise about the centre; the border is reflected."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    return cv2.warpAffine(
        image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )


@perturbation(
    "crop_rescale",
    family="laundering",
    levels={"keep": (0.95, 0.9, 0.85, 0.8, 0.7)},
    ranges={"keep": Range(0, 1, low_open=True)},
)
def crop_rescale(image: Image, rng: np.random.Generator, *, keep: float) -> Image:
    """Keep the centre `keep` of each side, then resize back up (bilinear)."""
    h, w = image.shape[:2]
    ch = min(h, max(1, round(h * keep)))
    cw = min(w, max(1, round(w * keep)))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = image[top : top + ch, left : left + cw]
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)


@perturbation(
    "gamma",
    family="laundering",
    levels={"gamma": (1.2, 1.4, 1.7, 2.0, 2.5)},
    ranges={"gamma": POSITIVE},
)
def gamma(image: Image, rng: np.random.Generator, *, gamma: float) -> Image:
    """Apply out = in ** `gamma` on the [0, 1] scale (above 1 darkens the mid-tones)."""
    levels = np.arange(256, dtype=np.float64) / 255
    table = from_pixels(np.power(levels, max(gamma, 1e-6)) * 255)
    return table[image]
