"""Boxes and detections in pixels of the full image: the face front end's plain data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """An axis-aligned box: top-left corner (`x`, `y`), width `w` and height `h`, in pixels.

    Pixel (col, row) is inside when x <= col < x + w and y <= row < y + h, so the crop
    of a box with integer fields is `image[y : y + h, x : x + w]`.
    """

    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        """The first column past the box."""
        return self.x + self.w

    @property
    def bottom(self) -> float:
        """The first row past the box."""
        return self.y + self.h

    @property
    def area(self) -> float:
        """w x h (0 for an empty box)."""
        return max(self.w, 0.0) * max(self.h, 0.0)

    def iou(self, other: Box) -> float:
        """Intersection over union with `other` (0 when either box is empty)."""
        iw = min(self.right, other.right) - max(self.x, other.x)
        ih = min(self.bottom, other.bottom) - max(self.y, other.y)
        inter = max(iw, 0.0) * max(ih, 0.0)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def as_list(self) -> list[float]:
        """[x, y, w, h], as the results JSON records a box."""
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True)
class Detection:
    """One face found by a detector: its box in the full image and its score in [0, 1]."""

    box: Box
    score: float

    def as_dict(self) -> dict[str, object]:
        """{"box": [x, y, w, h], "score": s}, rounded for the results JSON."""
        return {"box": [round(v, 2) for v in self.box.as_list()], "score": round(self.score, 4)}


def largest(detections: Sequence[Detection]) -> Detection | None:
    """The detection with the largest box area (ties: the higher score); None if none."""
    if not detections:
        return None
    return max(detections, key=lambda d: (d.box.area, d.score))
