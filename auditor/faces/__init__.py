"""The face front end of a deepfake detector: find the face, cut the crop it is fed.

At the data layer: numpy and OpenCV only. The engine calls, per image or frame (after
perturbing the full frame, so that the detector sees the degraded pixels):

    detector = load_detector(DetectorSettings(...))   # once per worker
    found = detector.detect(frame)                    # Detection | None: the largest face
    pixels, crop_box = crop(frame, found.box, preset) # preset = parse_preset("ffpp")

then runs the model's preprocessing on `pixels`, updated with `preset.preprocess`.
`detector.describe()` and `preset.describe()` are what the results record.
"""

from auditor.faces.boxes import Box, Detection, largest
from auditor.faces.crops import PRESETS, CropPreset, crop, parse_preset
from auditor.faces.detector import (
    DEFAULT_DETECTOR,
    DETECTORS,
    DetectorSettings,
    FaceDetector,
    load_detector,
)

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "PRESETS",
    "Box",
    "CropPreset",
    "Detection",
    "DetectorSettings",
    "FaceDetector",
    "crop",
    "largest",
    "load_detector",
    "parse_preset",
]
