"""Digital corruptions: JPEG, brightness, contrast and pixelation."""

from __future__ import annotations

import cv2
import numpy as np

from auditor.perturbations.levels import NON_NEGATIVE, Range
from auditor.perturbations.pixels import from_pixels, from_unit, in_bands, to_unit
from auditor.perturbations.registry import Image, perturbation


@perturbation(
    "jpeg_compression",
    family="digital",
    levels={"quality": (25, 18, 15, 10, 7)},
    integer_params=("quality",),
    ranges={"quality": (0, 100)},
)
def jpeg_compression(image: Image, rng: np.random.Generator, *, quality: float) -> Image:
    """JPEG encode and decode at `quality` (0..100)."""
    q = int(np.clip(round(quality), 0, 100))
    # OpenCV's codecs work in BGR; convert there and back so colours survive.
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode the image")
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if decoded is None:
        raise RuntimeError("OpenCV could not decode its own JPEG")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


@perturbation(
    "brightness",
    family="digital",
    levels={"delta": (0.1, 0.2, 0.3, 0.4, 0.5)},
    ranges={"delta": (-1, 1)},
)
def brightness(image: Image, rng: np.random.Generator, *, delta: float) -> Image:
    """Add `delta` to the HSV value channel (on the [0, 1] scale)."""

    def band(part: Image) -> Image:
        hsv = cv2.cvtColor(to_unit(part), cv2.COLOR_RGB2HSV)
        hsv[:, :, 2] = np.clip(hsv[:, :, 2] + np.float32(delta), 0.0, 1.0)
        return from_unit(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))

    return in_bands(image, band)


@perturbation(
    "contrast",
    family="digital",
    levels={"factor": (0.4, 0.3, 0.2, 0.1, 0.05)},
    ranges={"factor": NON_NEGATIVE},
)
def contrast(image: Image, rng: np.random.Generator, *, factor: float) -> Image:
    """Scale each pixel's deviation from its channel's mean by `factor`."""
    means = np.array(cv2.mean(image)[:3], np.float64)
    # One affine map per pixel, rounded and saturated by OpenCV: out = f x + (1 - f) mean.
    matrix = np.hstack([np.eye(3) * factor, (means * (1 - factor))[:, None]])
    return cv2.transform(image, matrix)


@perturbation(
    "pixelate",
    family="digital",
    levels={"factor": (0.6, 0.5, 0.4, 0.3, 0.25)},
    ranges={"factor": Range(0, 1, low_open=True)},
)
def pixelate(image: Image, rng: np.random.Generator, *, factor: float) -> Image:
    """Downscale by `factor` with area averaging, then upscale back with nearest."""
    h, w = image.shape[:2]
    small = (max(1, round(w * factor)), max(1, round(h * factor)))
    if w % small[0] == 0 and h % small[1] == 0:
        reduced = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
    else:  # OpenCV's general area resampling is twice as fast on floats as on bytes
        area = cv2.resize(image.astype(np.float32), small, interpolation=cv2.INTER_AREA)
        reduced = from_pixels(area)
    # Nearest with pixel centres aligned (as PIL does); plain INTER_NEAREST shifts by
    # up to half a block towards the top left.
    return cv2.resize(reduced, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)


@perturbation(
    "saturate",
    family="digital",
    levels={"scale": (0.3, 0.1, 2.0, 5.0, 20.0), "offset": (0.0, 0.0, 0.0, 0.1, 0.2)},
    ranges={"scale": NON_NEGATIVE, "offset": (-1, 1)},
)
def saturate(image: Image, rng: np.random.Generator, *, scale: float, offset: float) -> Image:
    """Change saturation: HSV S becomes S x `scale` + `offset`, clipped to [0, 1]."""

    def band(part: Image) -> Image:
        hsv = cv2.cvtColor(to_unit(part), cv2.COLOR_RGB2HSV)
        hsv[:, :, 1] = np.clip(hsv[:, :, 1] * np.float32(scale) + np.float32(offset), 0.0, 1.0)
        return from_unit(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))

    return in_bands(image, band)


@perturbation(
    "elastic_transform",
    family="digital",
    levels={"alpha": (12.5, 16.25, 21.25, 25.0, 30.0)},
    pixel_params=("alpha",),
    ranges={"alpha": NON_NEGATIVE},
)
def elastic_transform(image: Image, rng: np.random.Generator, *, alpha: float) -> Image:
    """Elastic warp: a smooth random displacement field (sigma 1% of the size) times `alpha`."""
    height, width = image.shape[:2]
    # As in the reference: uniform noise up to 0.5% of the height, smoothed by a
    # Gaussian of 1% of each side (3 sigma radius), times alpha. The displacement in
    # pixels then stays the same whatever the image size, unless alpha is scaled.
    reach = 0.005 * height
    sigma_y, sigma_x = 0.01 * height, 0.01 * width
    size = (2 * int(3 * sigma_x + 0.5) + 1, 2 * int(3 * sigma_y + 0.5) + 1)
    shifts = []
    for _ in range(2):
        noise = rng.random((height, width), dtype=np.float32) * np.float32(2 * reach) - reach
        smooth = cv2.GaussianBlur(
            noise, size, sigma_x, sigmaY=sigma_y, borderType=cv2.BORDER_REFLECT
        )
        shifts.append(smooth * np.float32(alpha))
    dx, dy = shifts
    dx += np.arange(width, dtype=np.float32)[None, :]
    dy += np.arange(height, dtype=np.float32)[:, None]
    return cv2.remap(image, dx, dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
