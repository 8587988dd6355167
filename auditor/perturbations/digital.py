"""Digital corruptions: JPEG, brightness, contrast and pixelation."""

from __future__ import annotations

import cv2
import numpy as np

from auditor.perturbations.pixels import from_unit, to_unit
from auditor.perturbations.registry import Image, perturbation


@perturbation(
    "jpeg_compression",
    family="digital",
    levels={"quality": (25, 18, 15, 10, 7)},
    integer_params=("quality",),
)
def jpeg_compression(image: Image, rng: np.random.Generator, *, quality: float) -> Image:
    """JPEG encode and decode at `quality` (0..100)."""
    q = int(np.clip(round(quality), 0, 100))
    # OpenCV's codecs work in BGR; convert there and back so colours survive.
    ok, data = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode the image")
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if decoded is None:
        raise RuntimeError("OpenCV could not decode its own JPEG")
    return np.ascontiguousarray(decoded[:, :, ::-1])


@perturbation("brightness", family="digital", levels={"delta": (0.1, 0.2, 0.3, 0.4, 0.5)})
def brightness(image: Image, rng: np.random.Generator, *, delta: float) -> Image:
    """Add `delta` to the HSV value channel (on the [0, 1] scale)."""
    hsv = cv2.cvtColor(to_unit(image), cv2.COLOR_RGB2HSV)
    hsv[:, :, 2] = np.clip(hsv[:, :, 2] + np.float32(delta), 0.0, 1.0)
    return from_unit(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))


@perturbation("contrast", family="digital", levels={"factor": (0.4, 0.3, 0.2, 0.1, 0.05)})
def contrast(image: Image, rng: np.random.Generator, *, factor: float) -> Image:
    """Scale each pixel's deviation from its channel's mean by `factor`."""
    x = to_unit(image)
    means = x.mean(axis=(0, 1), keepdims=True)
    return from_unit((x - means) * np.float32(factor) + means)


@perturbation("pixelate", family="digital", levels={"factor": (0.6, 0.5, 0.4, 0.3, 0.25)})
def pixelate(image: Image, rng: np.random.Generator, *, factor: float) -> Image:
    """Downscale by `factor` with area averaging, then upscale back with nearest."""
    h, w = image.shape[:2]
    small = (max(1, round(w * factor)), max(1, round(h * factor)))
    reduced = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
    return cv2.resize(reduced, (w, h), interpolation=cv2.INTER_NEAREST)
