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

VIDEO_RULE = (
    "a perturbed frame in which no face is found gives no decision: the video is scored on "
    "the frames where a face was found, and the frame counts as lost in the per-frame "
    "figures; a draw that finds no face in any frame is lost: " + LOST_RULE
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

    def frame_lost(self) -> NDArray[np.bool_]:
        """Draws x 1: no face found (an image is a clip of one frame here)."""
        return np.array(self.lost, bool).reshape(-1, 1)

    def draw_shifts(self, draw: int) -> list[float | None]:
        """The crop shift under `draw`, as a list of one (a video's has one per frame)."""
        return [self.shifts()[draw]]


@dataclass(frozen=True)
class ClipFaces:
    """A video's crops: one `FaceTrack` per frame scored.

    A sampled frame whose clean pixels hold no face is not scored at all (`dropped`, by
    frame number). Under a draw, a frame with no face gives no decision, as in a deployed
    front end that skips it: the video's score aggregates the frames where a face was
    found, and a draw that finds no face in any frame is lost (`facecrop.LOST_RULE`).
    """

    frames: tuple[FaceTrack, ...]
    dropped: tuple[int, ...] = ()

    @property
    def clean(self) -> BoxList:
        """The clean crop of the first frame scored (what a moved sample shows)."""
        return self.frames[0].clean

    @property
    def draws(self) -> tuple[BoxList | None, ...]:
        """Per draw: the crop of the first frame scored (None: no face there)."""
        return self.frames[0].draws

    def frame_lost(self) -> NDArray[np.bool_]:
        """Draws x frames: no face found in that frame under that draw."""
        return np.array([track.lost for track in self.frames], bool).T

    @property
    def lost(self) -> list[bool]:
        """Per draw: no face in any frame, so the video got no decision."""
        return [bool(row.all()) for row in self.frame_lost()]

    def found(self) -> NDArray[np.bool_]:
        """(1 + draws) x frames: the frames each run of the clip is aggregated over."""
        return np.vstack([np.ones((1, len(self.frames)), bool), ~self.frame_lost()])

    def shifts(self) -> list[float | None]:
        """Per draw: the median crop shift over the frames with a face (None: none had one)."""
        per_frame = [track.shifts() for track in self.frames]
        medians: list[float | None] = []
        for draw in range(len(self.frames[0].draws)):
            moved = [v for v in (row[draw] for row in per_frame) if v is not None]
            medians.append(float(np.median(moved)) if moved else None)
        return medians

    def draw_shifts(self, draw: int) -> list[float | None]:
        """The crop shift of each frame scored under `draw` (None: no face there)."""
        return [track.shifts()[draw] for track in self.frames]

    def as_list(self) -> dict[str, Any]:
        """{"frames": [each frame's `FaceTrack.as_list`], "dropped": [...]}: the journal's form."""
        return {"frames": [t.as_list() for t in self.frames], "dropped": list(self.dropped)}

    @classmethod
    def from_list(cls, value: Any) -> ClipFaces:
        """The inverse of `as_list`."""
        frames = tuple(FaceTrack.from_list(t) for t in value["frames"])
        return cls(frames, tuple(int(v) for v in value["dropped"]))


Faces = FaceTrack | ClipFaces


def faces_from_record(value: Any) -> Faces:
    """A journal's `fc` entry: an image's `FaceTrack` (a list) or a video's `ClipFaces`."""
    return ClipFaces.from_list(value) if isinstance(value, dict) else FaceTrack.from_list(value)


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

    def describe(self, video: bool = False) -> dict[str, Any]:
        """The results' `data.face_crop`: preset, detector, thresholds, selection, rules."""
        if video:
            return {
                **self.preset.describe(),
                "detector": self._first.describe(),
                "selection": SELECTION,
                "no_face_clean": f"a frame is not scored; a video with none: '{NO_FACE}'",
                "no_face_perturbed": VIDEO_RULE,
                "face_found_rate": "per frame scored",
            }
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
