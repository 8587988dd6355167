"""Which face detector runs, with which thresholds, and the one face it returns.

Two MediaPipe BlazeFace models are bundled in `auditor/faces/models/` (Apache-2.0) and
read from there, never downloaded: `blazeface-full` (full range, 192 px input), the
default, and `blazeface-short` (short range, 128 px). The full-range model is the
default because deployed detectors get whole frames: it finds a face a tenth of the
frame's longer side wide (and often one a sixteenth wide), where the short-range one,
made for selfie framing, needs about a sixth to an eighth; and on photographs with no
face, blurred or JPEG-compressed, the short-range one reported "faces" above 0.5 where
the full-range one stayed under 0.4 (see `tests/test_faces_detector.py`).

A user may name a file instead: a YuNet `.onnx` (through `cv2.FaceDetectorYN`) or
another BlazeFace-layout `.tflite`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from auditor.errors import ConfigError
from auditor.faces.blazeface import BlazeFace
from auditor.faces.boxes import Detection, largest
from auditor.faces.yunet import YuNet

Image = NDArray[np.uint8]

MODELS = Path(__file__).resolve().parent / "models"
DEFAULT_DETECTOR = "blazeface-full"
# Detectors known by name, each a file that ships inside the package.
DETECTORS: dict[str, Path] = {
    "blazeface-full": MODELS / "face_detection_full_range.tflite",
    "blazeface-short": MODELS / "face_detection_short_range.tflite",
}
FILE_KINDS = {".tflite": "BlazeFace layout", ".onnx": "YuNet"}

# MediaPipe's threshold for the short-range model (its full-range graph uses 0.6): one
# threshold for every detector, so that changing the detector changes one thing.
DEFAULT_SCORE = 0.5
DEFAULT_NMS_IOU = 0.3  # MediaPipe's suppression overlap for BlazeFace
DEFAULT_MIN_SIZE = 20.0  # px; MTCNN's default minimum face, as the DFDC pipelines used


@dataclass(frozen=True)
class DetectorSettings:
    """A face detector and its thresholds: plain data, cheap to copy to a worker.

    - `detector`: a name of `DETECTORS` (default `blazeface-full`) or the path of a `.onnx`
      (YuNet) or `.tflite` (BlazeFace layout) file.
    - `score`: the lowest detection score kept, in (0, 1) (default 0.5).
    - `nms_iou`: boxes overlapping a better one by more than this IoU are dropped, in
      (0, 1] (default 0.3).
    - `min_size`: the shorter side, in pixels of the full image, below which a face is
      ignored (default 20).
    """

    detector: str = DEFAULT_DETECTOR
    score: float = DEFAULT_SCORE
    nms_iou: float = DEFAULT_NMS_IOU
    min_size: float = DEFAULT_MIN_SIZE

    def __post_init__(self) -> None:
        if not 0 < self.score < 1:
            raise ConfigError(f"face detection score threshold must be in (0, 1), got {self.score}")
        if not 0 < self.nms_iou <= 1:
            raise ConfigError(f"face NMS IoU threshold must be in (0, 1], got {self.nms_iou}")
        if not (math.isfinite(self.min_size) and self.min_size >= 0):
            raise ConfigError(f"minimum face size must be >= 0 pixels, got {self.min_size}")

    def load(self) -> FaceDetector:
        """The detector these settings name, ready to run (see `load_detector`)."""
        return load_detector(self)


class Backend(Protocol):
    """What a detector model offers: every face above the thresholds, best first."""

    def find(
        self, image: Image, score: float, nms_iou: float, min_size: float
    ) -> list[Detection]: ...

    def describe(self) -> dict[str, object]: ...


class FaceDetector:
    """A loaded detector with its settings; `detect` gives the one face a crop is cut from."""

    def __init__(self, settings: DetectorSettings, backend: Backend, path: Path) -> None:
        self.settings = settings
        self.path = path
        self._backend = backend
        self._sha256 = hashlib.sha256(path.read_bytes()).hexdigest()

    def detect_all(self, image: Image) -> list[Detection]:
        """Every face in `image` (RGB uint8, H x W x 3) that passes the thresholds, best first.

        Each box's centre lies in the image, so every crop preset can cut around it.
        """
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 H x W x 3 image, got {image.dtype} {image.shape}")
        s = self.settings
        found = self._backend.find(image, s.score, s.nms_iou, s.min_size)
        # A box centred off the image (in the letterbox's padding) is not a face of it,
        # and no crop could be cut around it.
        height, width = image.shape[:2]
        return [d for d in found if 0 <= d.box.x + d.box.w / 2 < width
                and 0 <= d.box.y + d.box.h / 2 < height]  # fmt: skip

    def detect(self, image: Image) -> Detection | None:
        """The largest face in `image` (by box area; ties: higher score), or None.

        The largest face is used because the face-swap datasets (FaceForensics++, DFDC)
        keep the most prominent face; the box is in pixels of `image` and may reach past
        its border (the crop clips it).
        """
        return largest(self.detect_all(image))

    def describe(self) -> dict[str, object]:
        """What ran, for the results: the detector, its file's SHA-256 and the thresholds."""
        bundled = self.settings.detector in DETECTORS
        return {
            "detector": self.settings.detector if bundled else str(self.path),
            "file": self.path.name,
            "sha256": self._sha256,
            "source": "bundled (MediaPipe BlazeFace, Apache-2.0)" if bundled else "user file",
            **self._backend.describe(),
            **{k: v for k, v in asdict(self.settings).items() if k != "detector"},
            "selection": "largest face by box area",
            "opencv": cv2.__version__,
        }


def load_detector(settings: DetectorSettings | None = None) -> FaceDetector:
    """Load the detector of `settings` (default: bundled full-range BlazeFace).

    Raises `ConfigError` for an unknown name, a missing file or an unknown file type, and
    `ModelError` for a file OpenCV cannot run as that kind of detector.
    """
    settings = settings or DetectorSettings()
    path = resolve(settings.detector)
    backend: Backend = YuNet(path) if path.suffix.lower() == ".onnx" else BlazeFace(path)
    return FaceDetector(settings, backend, path)


def resolve(detector: str) -> Path:
    """The model file of a detector name or path, checked to exist and be of a known kind."""
    if detector in DETECTORS:
        return DETECTORS[detector]
    path = Path(detector).expanduser()
    names = ", ".join(DETECTORS)
    kinds = " or ".join(f"a {kind} {suffix} file" for suffix, kind in FILE_KINDS.items())
    if not path.is_file():
        raise ConfigError(
            f"--face-detector {detector}: neither a detector name ({names}) nor an existing file"
        )
    if path.suffix.lower() not in FILE_KINDS:
        raise ConfigError(f"--face-detector {detector}: expected {names}, or {kinds}")
    return path
