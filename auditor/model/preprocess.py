"""Preprocessing: from raw RGB uint8 images to the model's input tensor.

Each value comes from a flag, else the model's `auditor.preprocess` metadata, else the
model's input shape (size, layout), else a default; `Preprocessing.sources` records which.

A uint8 input gets the resized pixels themselves: its default scale is 1 (not 1/255),
so with no flags or metadata x = pixel. When scale, mean or std are set, x is computed
as for a float input, then rounded and clipped to 0..255.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from auditor.config import PreprocessOptions
from auditor.errors import ConfigError

INTERPOLATIONS = {
    "linear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "cubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
    "nearest": cv2.INTER_NEAREST,
}
# Where a value inferred from the model came from, as `auditor inspect` shows it.
_MODEL_SOURCE = {"scale": "model (uint8 input: raw pixels)"}
RESIZE_MODES = ("stretch", "crop", "letterbox")
PAD_ALIGNS = ("center", "topleft")
CHANNEL_ORDERS = ("rgb", "bgr")
LAYOUTS = ("nchw", "nhwc")

DEFAULTS: dict[str, Any] = {
    "resize": "stretch",
    "crop_ratio": 0.875,
    "pad_value": 0.0,
    "pad_align": "center",
    "interpolation": "linear",
    "channel_order": "rgb",
    "scale": 1 / 255,
    "mean": (0.0, 0.0, 0.0),
    "std": (1.0, 1.0, 1.0),
}


class DynamicSizeError(ConfigError):
    """The input's height and width are dynamic and nothing gives the size."""


@dataclass(frozen=True)
class Preprocessing:
    """Resolved preprocessing: x = (pixel * scale - mean) / std, resized to `size`."""

    size: tuple[int, int]
    layout: str
    resize: str = "stretch"
    crop_ratio: float = 0.875
    pad_value: float = 0.0
    pad_align: str = "center"
    interpolation: str = "linear"
    channel_order: str = "rgb"
    scale: float = 1 / 255
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """Return the values (without sources) as JSON-ready data."""
        values = asdict(self)
        values.pop("sources")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def resolve(
    flags: PreprocessOptions,
    metadata: Mapping[str, Any],
    model_size: tuple[int, int] | None,
    model_layout: str | None,
    integer_input: bool = False,
) -> Preprocessing:
    """Combine flags, model metadata, the input shape and defaults into `Preprocessing`."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    inferred: dict[str, Any] = {"size": model_size, "layout": model_layout}
    if integer_input:  # raw pixels: the model does its own normalization
        inferred["scale"] = 1.0
    for key in ("size", "layout", *DEFAULTS):
        flag = getattr(flags, key)
        if flag is not None:
            values[key], sources[key] = flag, "flag"
        elif key in metadata:
            values[key], sources[key] = metadata[key], "metadata"
        elif inferred.get(key) is not None:
            values[key], sources[key] = inferred[key], _MODEL_SOURCE.get(key, "model")
        elif key in DEFAULTS:
            values[key], sources[key] = DEFAULTS[key], "default"
    if "size" not in values:
        raise DynamicSizeError(
            "the model's input height and width are dynamic and its metadata gives no "
            "size: pass --size HxW"
        )
    if "layout" not in values:
        raise ConfigError("cannot infer the input layout from its shape: pass --layout")
    return _validated(values, sources)


def _validated(values: dict[str, Any], sources: dict[str, str]) -> Preprocessing:
    """Check each value's type and range; the message names where a bad value came from."""

    def fail(key: str, expected: str) -> ConfigError:
        return ConfigError(
            f"preprocessing '{key}' from {sources[key]}: expected {expected}, found {values[key]!r}"
        )

    def choice(key: str, options: Sequence[str]) -> str:
        if str(values[key]).lower() not in options:
            raise fail(key, "one of " + ", ".join(options))
        return str(values[key]).lower()

    def triple(key: str) -> tuple[float, float, float]:
        v = values[key]
        v = [v] * 3 if isinstance(v, (int, float)) else v
        if not isinstance(v, Sequence) or len(v) != 3:
            raise fail(key, "three numbers")
        return (float(v[0]), float(v[1]), float(v[2]))

    size = values["size"]
    if not (isinstance(size, Sequence) and len(size) == 2 and all(int(s) > 0 for s in size)):
        raise fail("size", "[height, width] in pixels")
    std = triple("std")
    if 0.0 in std:
        raise fail("std", "non-zero values")
    crop_ratio = float(values["crop_ratio"])
    if not 0 < crop_ratio <= 1:
        raise fail("crop_ratio", "a number in (0, 1]")
    return Preprocessing(
        size=(int(size[0]), int(size[1])),
        layout=choice("layout", LAYOUTS),
        resize=choice("resize", RESIZE_MODES),
        crop_ratio=crop_ratio,
        pad_value=float(values["pad_value"]),
        pad_align=choice("pad_align", PAD_ALIGNS),
        interpolation=choice("interpolation", tuple(INTERPOLATIONS)),
        channel_order=choice("channel_order", CHANNEL_ORDERS),
        scale=float(values["scale"]),
        mean=triple("mean"),
        std=std,
        sources=sources,
    )


def resize_image(image: NDArray[np.uint8], prep: Preprocessing) -> NDArray[np.uint8]:
    """Bring one RGB image to `prep.size` with the resize mode and interpolation given."""
    height, width = prep.size
    h, w = image.shape[:2]
    method = INTERPOLATIONS[prep.interpolation]
    if prep.resize == "stretch":
        return cv2.resize(image, (width, height), interpolation=method)
    if prep.resize == "crop":
        # Cover (size / crop_ratio) keeping the aspect ratio, then take the centre.
        factor = max(height / prep.crop_ratio / h, width / prep.crop_ratio / w)
        new_w, new_h = max(width, round(w * factor)), max(height, round(h * factor))
        scaled = cv2.resize(image, (new_w, new_h), interpolation=method)
        top, left = (new_h - height) // 2, (new_w - width) // 2
        return scaled[top : top + height, left : left + width]
    factor = min(height / h, width / w)  # letterbox: fit inside, then pad
    new_w = min(width, max(1, round(w * factor)))
    new_h = min(height, max(1, round(h * factor)))
    scaled = cv2.resize(image, (new_w, new_h), interpolation=method)
    canvas = np.full((height, width, 3), np.clip(round(prep.pad_value), 0, 255), np.uint8)
    top, left = (
        (0, 0) if prep.pad_align == "topleft" else ((height - new_h) // 2, (width - new_w) // 2)
    )
    canvas[top : top + new_h, left : left + new_w] = scaled
    return canvas


def to_tensor(
    images: Sequence[NDArray[np.uint8]],
    prep: Preprocessing,
    dtype: type = np.float32,
    out: NDArray[Any] | None = None,
) -> NDArray[Any]:
    """Return the model input for `images`: resized, ordered, normalized, laid out.

    Writes into `out` (N x the input's shape, of `dtype`) when given. Each output value
    depends only on a pixel value and its channel, so it is read from a 256-entry table
    per channel: one pass instead of several float passes, with the same bits as the
    arithmetic written out (`value_tables`).
    """
    shape = (len(images), *input_shape(prep))
    if out is None:
        out = np.empty(shape, dtype)
    elif out.shape != shape or out.dtype != dtype:
        raise ValueError(f"to_tensor: out is {out.dtype} {out.shape}, expected {shape}")
    tables = value_tables(prep, np.dtype(dtype).str)
    direct = out.dtype == np.float32  # cv2.LUT can write float32 rows in place
    for i, image in enumerate(images):
        pixels = resize_image(image, prep)
        if prep.channel_order == "bgr":
            pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        if prep.layout == "nhwc":
            values = cv2.LUT(pixels, tables[1], dst=out[i] if direct else None)
            if not direct:
                out[i] = values
            continue
        for channel, plane in enumerate(cv2.split(pixels)):
            values = cv2.LUT(plane, tables[0][channel], dst=out[i, channel] if direct else None)
            if not direct:
                out[i, channel] = values
    return out


def input_shape(prep: Preprocessing) -> tuple[int, int, int]:
    """The shape of one image's input: C x H x W or H x W x C."""
    height, width = prep.size
    return (3, height, width) if prep.layout == "nchw" else (height, width, 3)


@functools.lru_cache(maxsize=16)
def value_tables(
    prep: Preprocessing, dtype: str
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The input value of each (channel, pixel value): a 3 x 256 table and its 1 x 256 x 3 twin.

    Computed in float32 exactly as `(pixel * scale - mean) / std`; for an integer input
    then rounded and clipped to 0..255 (exact for raw pixels: scale 1, mean 0, std 1).
    """
    pixel = np.arange(256, dtype=np.float32)[None, :]
    mean = np.asarray(prep.mean, np.float32)[:, None]
    std = np.asarray(prep.std, np.float32)[:, None]
    table = (pixel * np.float32(prep.scale) - mean) / std
    if np.issubdtype(np.dtype(dtype), np.integer):
        table = np.clip(np.rint(table), 0, 255)
    table = np.ascontiguousarray(table, np.float32)
    return table, np.ascontiguousarray(table.T[None])
