"""BlazeFace (MediaPipe's SSD face detector) run with OpenCV's TFLite reader.

The model maps a square RGB tensor in [-1, 1] to, for each SSD anchor, 16 regressors
(box centre offset, box size, six key points) and one logit. The anchors are not in
the file: they follow from the input size and the stride of each SSD layer, and are
generated here. Boxes are decoded against them, thresholded, mapped back from the
letterboxed tensor to the full image and thinned by non-maximum suppression.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from auditor.errors import ModelError
from auditor.faces.boxes import Box, Detection
from auditor.faces.opencv import quiet, reason

Image = NDArray[np.uint8]
FloatArray = NDArray[np.float32]

LOGIT_CLIP = 100.0  # MediaPipe clips logits to +-100 before the sigmoid


@dataclass(frozen=True)
class AnchorLayout:
    """The SSD anchor grid of one BlazeFace variant.

    Each entry of `strides` is one SSD layer; consecutive layers of the same stride
    share one feature map, so a cell of that map holds `per_layer` anchors for each of
    them. Every anchor is centred on its cell and has size 1 (MediaPipe's
    `fixed_anchor_size`), so the regressors' sizes are absolute.
    """

    name: str
    input_size: int
    strides: tuple[int, ...]
    per_layer: int

    @cached_property
    def centres(self) -> FloatArray:
        """The anchors' (x, y) centres in [0, 1], in the model's output order."""
        groups: list[tuple[int, int]] = []  # (stride, layers sharing it)
        for stride in self.strides:
            if groups and groups[-1][0] == stride:
                groups[-1] = (stride, groups[-1][1] + 1)
            else:
                groups.append((stride, 1))
        parts = []
        for stride, layers in groups:
            cells = -(-self.input_size // stride)  # ceil: a partial cell still gets anchors
            ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
            grid = (np.stack([xs, ys], axis=-1).reshape(-1, 2) + 0.5) / cells
            # row-major cells, and each cell's anchors next to each other
            parts.append(np.repeat(grid, layers * self.per_layer, axis=0))
        return np.concatenate(parts).astype(np.float32)

    @property
    def count(self) -> int:
        """How many anchors (rows of the model's outputs) the layout has."""
        return len(self.centres)


# The released BlazeFace models: short range ("front", 128 px, 16x16x2 + 8x8x6 = 896
# anchors), full range (192 px, one anchor per cell of a 48x48 map = 2304), and the
# older back-camera model (256 px, 896 anchors). The input size is probed in this order.
LAYOUTS = (
    AnchorLayout("short-range", 128, (8, 16, 16, 16), 2),
    AnchorLayout("full-range", 192, (4,), 1),
    AnchorLayout("back-camera", 256, (16, 32, 32, 32), 2),
)


@dataclass(frozen=True)
class Letterbox:
    """Where the image lies in the square tensor: its resized size and the padding."""

    size: int
    new_w: int
    new_h: int
    pad_x: int
    pad_y: int
    width: int
    height: int

    def to_image(self, xyxy: FloatArray) -> FloatArray:
        """Map [N, 4] boxes (x0, y0, x1, y1 in [0, 1] of the tensor) to image pixels."""
        out = xyxy * np.float32(self.size)
        out[:, 0::2] = (out[:, 0::2] - self.pad_x) * (self.width / self.new_w)
        out[:, 1::2] = (out[:, 1::2] - self.pad_y) * (self.height / self.new_h)
        return out


def letterbox(image: Image, size: int) -> tuple[FloatArray, Letterbox]:
    """The NCHW tensor in [-1, 1]: `image` scaled to fit `size` x `size`, centred on black.

    MediaPipe keeps the aspect ratio the same way (the face must not be squashed).
    """
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    # Area averaging when shrinking, so a 1080p frame does not alias on the way to 128 px.
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas = np.zeros((size, size, 3), np.uint8)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = cv2.resize(
        image, (new_w, new_h), interpolation=method
    )
    blob = cv2.dnn.blobFromImage(canvas, 1 / 127.5, mean=(127.5, 127.5, 127.5))
    return blob, Letterbox(size, new_w, new_h, pad_x, pad_y, width, height)


def decode(
    regressors: FloatArray, logits: FloatArray, layout: AnchorLayout, score: float
) -> tuple[FloatArray, FloatArray]:
    """Boxes (x0, y0, x1, y1 in [0, 1] of the tensor) and scores of anchors >= `score`."""
    raw = regressors.reshape(-1, regressors.shape[-1])[:, :4] / np.float32(layout.input_size)
    # float64: exp(100) overflows float32
    clipped = np.clip(logits.reshape(-1).astype(np.float64), -LOGIT_CLIP, LOGIT_CLIP)
    scores = (1 / (1 + np.exp(-clipped))).astype(np.float32)
    keep = scores >= score
    centres = layout.centres[keep] + raw[keep, :2]
    half = raw[keep, 2:4] / 2
    return np.concatenate([centres - half, centres + half], axis=1), scores[keep]


class BlazeFace:
    """A BlazeFace-layout `.tflite` model run by `cv2.dnn`; one net per instance.

    `cv2.dnn.Net` keeps state between `setInput` and `forward`, so calls on one instance
    are serialised by a lock; give each worker thread its own instance to detect in
    parallel.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._net = _read(path)
        self.layout = self._probe()

    def find(self, image: Image, score: float, nms_iou: float, min_size: float) -> list[Detection]:
        """Every face of `image` scoring >= `score`, at least `min_size` px, after NMS."""
        blob, placed = letterbox(image, self.layout.input_size)
        regressors, logits = self._forward(blob)
        xyxy, scores = decode(regressors, logits, self.layout, score)
        boxes = placed.to_image(xyxy)
        sizes = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        boxes, scores = boxes[sizes >= min_size], scores[sizes >= min_size]
        xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes]
        # Plain NMS, where MediaPipe averages the overlapping boxes ("weighted"): the box
        # kept is one the model gave, which is what a crop is cut from.
        kept = cv2.dnn.NMSBoxes(xywh, scores.tolist(), score, nms_iou) if xywh else []
        found = [Detection(Box(*xywh[i]), float(scores[i])) for i in np.ravel(kept)]
        return sorted(found, key=lambda d: -d.score)

    def describe(self) -> dict[str, object]:
        """What runs: the model's layout and input size."""
        layout = self.layout
        return {"kind": "blazeface", "layout": layout.name, "input_size": layout.input_size}

    def _forward(self, blob: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(regressors [1, N, 16], logits [1, N, 1]) for one input tensor."""
        outputs = self._run(blob)
        # Told apart by shape: the full-range model names its outputs differently.
        by_width = {o.shape[-1]: o for o in outputs if o.ndim == 3}
        return by_width[16], by_width[1]

    def _probe(self) -> AnchorLayout:
        """The layout whose input size yields outputs of its anchor count."""
        for layout in LAYOUTS:
            try:
                with quiet():  # a wrong input size makes OpenCV log before it fails
                    outputs = self._run(_blob(layout.input_size))
            except cv2.error:
                continue
            if sorted(o.shape for o in outputs) == [(1, layout.count, 1), (1, layout.count, 16)]:
                return layout
        sizes = ", ".join(str(layout.input_size) for layout in LAYOUTS)
        raise ModelError(
            f"{self.path}: not a BlazeFace-layout model: expected outputs [1, N, 16] and "
            f"[1, N, 1] with N the anchor count of a {sizes} px input"
        )

    def _run(self, blob: FloatArray) -> list[FloatArray]:
        """The net's outputs for one input tensor."""
        with self._lock:
            self._net.setInput(blob)
            return list(self._net.forward(self._net.getUnconnectedOutLayersNames()))


def _blob(size: int) -> FloatArray:
    """A blank size x size input tensor."""
    return np.zeros((1, 3, size, size), np.float32)


def _read(path: Path) -> cv2.dnn.Net:
    """Read a `.tflite` file with OpenCV, or fail with one line naming the path."""
    if not hasattr(cv2.dnn, "readNetFromTFLite"):
        raise ModelError(f"{path}: OpenCV {cv2.__version__} cannot read TFLite models")
    try:
        with quiet():
            return cv2.dnn.readNetFromTFLite(str(path))
    except cv2.error as exc:
        message = f"{path}: OpenCV cannot read it as a TFLite model ({reason(exc)})"
        raise ModelError(message) from exc
