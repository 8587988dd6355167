"""Face crop presets: the region around a detected face that a deepfake detector sees.

Each preset reproduces the crop rule of a published front end, from the face box to
the pixels handed to the model's own preprocessing:

- `ffpp` (FaceForensics++, Rossler et al. 2019): a square of side 1.3 x the box's
  longer side, on the box centre; its top-left corner is clipped to the image first and
  its side then shortened to fit, so it stays square.
- `dfdc` (the DFDC winner, Seferbekov 2020): the box padded by a third of its width and
  height on each side, clipped; the model then resizes it isotropically and pads it
  centred (`preprocess` asks for that), rather than stretching it.
- `sbi` (Self-Blended Images, Shiohara & Yamasaki 2022, test phase): margins of w/8
  and h/8 on each side, clipped.
- `box:scale=S`: the `ffpp` square with any scale S (`ffpp` is `box:scale=1.3`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from auditor.errors import ConfigError
from auditor.faces.boxes import Box

Image = NDArray[np.uint8]
Region = Callable[[Box, int, int, float], Box]

FFPP_SCALE = 1.3
MAX_SCALE = 10.0

PRESETS: dict[str, str] = {
    "ffpp": "FaceForensics++: square of 1.3 x the face box's longer side, clipped",
    "dfdc": "DFDC winner: box + 1/3 of its size per side, clipped; isotropic resize, centre pad",
    "sbi": "Self-Blended Images: box + w/8 and h/8 per side, clipped",
    "box:scale=S": "square of S x the face box's longer side, clipped (ffpp is S = 1.3)",
}
# The model preprocessing a preset asks for (field names of the model's preprocessing
# settings); an empty mapping keeps the model's own resize.
LETTERBOX_CENTRE: dict[str, object] = {
    "resize": "letterbox",
    "pad_align": "center",
    "pad_value": 0.0,
}


def _px(value: float) -> int:
    """Round half up: the integer corner a pixel-box detector (dlib, MTCNN) would give."""
    return math.floor(value + 0.5)


def square(face: Box, width: int, height: int, scale: float) -> Box:
    """FaceForensics++'s square: side int(scale x longer side), centred, then clipped."""
    left, top, right, bottom = _px(face.x), _px(face.y), _px(face.right), _px(face.bottom)
    side = int(max(right - left, bottom - top) * scale)
    x0 = max((left + right) // 2 - side // 2, 0)
    y0 = max((top + bottom) // 2 - side // 2, 0)
    side = min(width - x0, height - y0, side)
    return Box(x0, y0, side, side)


def third(face: Box, width: int, height: int, scale: float) -> Box:
    """The DFDC winner's crop: a third of the box's width and height added on each side."""
    left, top, right, bottom = _px(face.x), _px(face.y), _px(face.right), _px(face.bottom)
    pad_w, pad_h = (right - left) // 3, (bottom - top) // 3
    x0, y0 = max(left - pad_w, 0), max(top - pad_h, 0)
    return Box(x0, y0, min(right + pad_w, width) - x0, min(bottom + pad_h, height) - y0)


def eighth(face: Box, width: int, height: int, scale: float) -> Box:
    """SBI's test-phase crop: margins w/8 and h/8 on the (float) box, ends inclusive."""
    mw, mh = face.w / 8, face.h / 8
    x0, y0 = max(0, int(face.x - mw)), max(0, int(face.y - mh))
    # SBI adds 1 to the far ends: its RetinaFace boxes name their last pixel.
    x1, y1 = min(width, int(face.right + mw) + 1), min(height, int(face.bottom + mh) + 1)
    return Box(x0, y0, x1 - x0, y1 - y0)


RULES: dict[str, Region] = {"ffpp": square, "box": square, "dfdc": third, "sbi": eighth}


@dataclass(frozen=True)
class CropPreset:
    """A parsed `--face-crop` value: the rule, its scale (square rules) and what it asks
    of the model's preprocessing."""

    name: str
    scale: float = FFPP_SCALE

    def __post_init__(self) -> None:
        if self.name not in RULES:
            raise ConfigError(
                f"--face-crop {self.name}: unknown preset; expected one of " + ", ".join(PRESETS)
            )
        if self.name == "ffpp" and self.scale != FFPP_SCALE:
            raise ConfigError(f"--face-crop ffpp has scale {FFPP_SCALE}; use box:scale=S")

    @property
    def spec(self) -> str:
        """The preset as the user types it; `parse_preset(p.spec) == p`."""
        return f"box:scale={self.scale:g}" if self.name == "box" else self.name

    @property
    def preprocess(self) -> dict[str, object]:
        """Overrides of the model's preprocessing (`dfdc`: letterbox, centred, black pad)."""
        return dict(LETTERBOX_CENTRE) if self.name == "dfdc" else {}

    def region(self, face: Box, width: int, height: int) -> Box:
        """The integer crop box for `face` in a `width` x `height` image, inside the image."""
        box = RULES[self.name](face, width, height, self.scale)
        if box.w < 1 or box.h < 1:
            raise ValueError(f"face box {face.as_list()} lies outside the {width}x{height} image")
        return box

    def describe(self) -> dict[str, object]:
        """The preset for the results: its spec, rule and preprocessing overrides."""
        rule = PRESETS["box:scale=S" if self.name == "box" else self.name]
        return {"preset": self.spec, "rule": rule, "preprocess": self.preprocess}


def parse_preset(text: str) -> CropPreset:
    """Parse `ffpp`, `dfdc`, `sbi` or `box:scale=S` (0 < S <= 10); one-line errors."""
    value = text.strip().lower()
    if value in RULES and value != "box":
        return CropPreset(value)
    names = ", ".join(PRESETS)
    if not value.startswith("box"):
        raise ConfigError(f"--face-crop {text}: unknown preset; expected one of {names}")
    key, _, number = value.removeprefix("box").lstrip(":").partition("=")
    try:
        scale = float(number) if key.strip() == "scale" else math.nan
    except ValueError:
        scale = math.nan
    if not 0 < scale <= MAX_SCALE:  # also refuses nan
        raise ConfigError(
            f"--face-crop {text}: expected box:scale=S with S a number in (0, {MAX_SCALE:g}], "
            "e.g. box:scale=1.5"
        )
    return CropPreset("box", scale)


def crop(image: Image, box: Box, preset: CropPreset | str) -> tuple[Image, Box]:
    """Cut the `preset` region around face `box` out of `image`: (pixels, crop box).

    The pixels are a contiguous copy; the crop box is in pixels of `image`, integer and
    inside it. A `dfdc` crop must then be resized as `preset.preprocess` says.
    """
    rule = parse_preset(preset) if isinstance(preset, str) else preset
    height, width = image.shape[:2]
    region = rule.region(box, width, height)
    x, y, w, h = (int(v) for v in region.as_list())
    return np.ascontiguousarray(image[y : y + h, x : x + w]), Box(x, y, w, h)
