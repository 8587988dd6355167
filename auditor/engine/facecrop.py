"""`--face-crop` in the audit: the face is found on the perturbed pixels, then cropped.

Every perturbation is applied to the whole image; the face detector then runs on the
perturbed pixels, the preset cuts its crop, and only that crop goes through the model's
own preprocessing. The largest face is used. A clean image without a face is skipped
("no face"); a perturbed image without one is a failure of the deployed pipeline, scored
by `lost_probs` and counted by `auditor.engine.stats` as wrong and not robust.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor.config import FaceOptions
from auditor.faces import CropPreset, DetectorSettings, FaceDetector, crop, parse_preset
from auditor.faces.detector import DEFAULT_NMS_IOU, load_detector

Image = NDArray[np.uint8]
BoxList = tuple[int, int, int, int]  # x, y, w, h of a crop, in pixels of the full image

NO_FACE = "no face"
SELECTION = "largest face by box area"
LOST_RULE = (
    "a perturbed image in which no face is found is scored as all probability on the class, "
    "other than the true one (unlabelled: the clean decision), that the clean scores rate "
    "lowest; it counts as wrong for RA, as a flip, and as outside every RR tolerance"
)


@dataclass(frozen=True)
class FaceTrack:
    """Where one sample's crop was cut: clean, and under each draw (None: no face found)."""

    clean: BoxList
    draws: tuple[BoxList | None, ...]

    @property
    def lost(self) -> list[bool]:
        """Per draw: no face was found in the perturbed image."""
        return [box is None for box in self.draws]

    def shifts(self) -> list[float | None]:
        """Per draw: how far the crop's centre moved from the clean crop's, in pixels."""
        cx, cy = self.clean[0] + self.clean[2] / 2, self.clean[1] + self.clean[3] / 2
        return [
            None if b is None else float(np.hypot(b[0] + b[2] / 2 - cx, b[1] + b[3] / 2 - cy))
            for b in self.draws
        ]

    def as_list(self) -> list[Any]:
        """[clean box, [box or None per draw]]: the journal's form."""
        return [list(self.clean), [None if b is None else list(b) for b in self.draws]]

    @classmethod
    def from_list(cls, value: Any) -> FaceTrack:
        """The inverse of `as_list`."""
        clean, draws = value
        return cls(_box(clean), tuple(None if b is None else _box(b) for b in draws))


def _box(values: Any) -> BoxList:
    x, y, w, h = (int(v) for v in values)
    return x, y, w, h


class FaceFront:
    """The preset and detector of an audit; each thread gets its own detector instance.

    One detector serialises its calls, so sharing it would serialise the workers.
    """

    def __init__(self, options: FaceOptions) -> None:
        if options.crop is None:
            raise ValueError("FaceFront needs a --face-crop preset")
        self.preset: CropPreset = parse_preset(options.crop)
        self.settings = DetectorSettings(
            options.detector, options.score, DEFAULT_NMS_IOU, options.min_size
        )
        self._local = threading.local()
        self._first = load_detector(self.settings)  # a bad name or file fails here, early
        self._local.detector = self._first

    def detector(self) -> FaceDetector:
        """This thread's detector, loaded on first use."""
        found = getattr(self._local, "detector", None)
        if found is None:
            found = self._local.detector = load_detector(self.settings)
        return found

    def cut(self, image: Image) -> tuple[Image, BoxList] | None:
        """The preset's crop around the largest face of `image`, and its box; None: no face."""
        face = self.detector().detect(image)
        if face is None:
            return None
        pixels, box = crop(image, face.box, self.preset)
        return pixels, _box(box.as_list())

    def adjust(self, prep: Any) -> Any:
        """The model's preprocessing as the preset asks for it (`dfdc`: letterbox, centred)."""
        overrides = self.preset.preprocess
        if not overrides:
            return prep
        sources = {**prep.sources, **{k: f"--face-crop {self.preset.spec}" for k in overrides}}
        return replace(prep, **overrides, sources=sources)

    def describe(self) -> dict[str, Any]:
        """The results' `data.face_crop`: preset, detector, thresholds, selection, rules."""
        return {
            **self.preset.describe(),
            "detector": self._first.describe(),
            "selection": SELECTION,
            "no_face_clean": f"skipped with the reason '{NO_FACE}'",
            "no_face_perturbed": LOST_RULE,
        }


def lost_probs(clean: NDArray[np.float64], target: int) -> NDArray[np.float64]:
    """The probabilities a draw with no face found is scored as (see `LOST_RULE`).

    All mass on the class other than `target` that `clean` rates lowest: a decision
    that differs from `target` and lies far from the clean scores. The statistics also
    count such a draw as wrong and not robust outright, whatever the threshold.
    """
    order = [int(k) for k in np.argsort(clean, kind="stable") if k != target]
    out = np.zeros_like(clean)
    out[order[0] if order else target] = 1.0
    return out
