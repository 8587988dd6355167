"""A user-supplied YuNet face detector (`.onnx`), run by OpenCV's `FaceDetectorYN`.

YuNet is not bundled (its file is not in any package this project installs); the
user gives its path, for example OpenCV Zoo's `face_detection_yunet_2023mar.onnx`.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from auditor.errors import ModelError
from auditor.faces.boxes import Box, Detection
from auditor.faces.opencv import quiet, reason

Image = NDArray[np.uint8]
PROBE_SIZE = (320, 320)  # YuNet's usual input; any size works, it is reset per image


class YuNet:
    """YuNet through `cv2.FaceDetectorYN`: its own decoding and NMS, boxes in pixels.

    The OpenCV object holds its input size and thresholds, so calls are serialised by a
    lock; give each worker thread its own instance to detect in parallel.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            with quiet():  # the new DNN engine warns that it ignores target settings
                self._net = cv2.FaceDetectorYN.create(str(path), "", PROBE_SIZE)
                # An ONNX file that is not YuNet loads, then fails on its first image.
                self._net.detect(np.zeros((*PROBE_SIZE[::-1], 3), np.uint8))
        except cv2.error as exc:
            raise ModelError(
                f"{path}: not a YuNet face detector that OpenCV can run ({reason(exc)})"
            ) from exc

    def find(self, image: Image, score: float, nms_iou: float, min_size: float) -> list[Detection]:
        """Every face of `image` scoring >= `score`, at least `min_size` px, after NMS."""
        height, width = image.shape[:2]
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # YuNet was trained on BGR frames
        with self._lock:
            self._net.setInputSize((width, height))
            self._net.setScoreThreshold(score)
            self._net.setNMSThreshold(nms_iou)
            _, faces = self._net.detect(bgr)
        # Each row: x, y, w, h, five (x, y) landmarks, score.
        rows = [] if faces is None else faces
        found = [
            Detection(Box(*(float(v) for v in row[:4])), float(row[14]))
            for row in rows
            if min(row[2], row[3]) >= min_size
        ]
        return sorted(found, key=lambda d: -d.score)

    def describe(self) -> dict[str, object]:
        """What runs: OpenCV's YuNet wrapper."""
        return {"kind": "yunet", "runtime": "cv2.FaceDetectorYN"}
