"""`video_compression`: a real encode and decode with the best codec this OpenCV offers.

DeeperForensics re-encodes videos with H.264 at a constant rate factor (CRF) of 30 to
40. A still image becomes a one-frame video, that is one intra-coded frame. OpenCV's
`VideoWriter` exposes no rate control for FFmpeg's codecs (and the pip wheels carry no
software H.264 encoder), so the codec is chosen once per process, by probing:

1. AV1 intra, through OpenCV's AVIF image codec: a video codec's key frame, with the
   same tools as H.264's (intra prediction, block transforms, in-loop filtering).
2. Motion JPEG, through OpenCV's own AVI writer and reader, whose quality can be set.

A CRF is mapped to the chosen codec's quality scale by its relative position on
H.264's quantizer scale (0..51): quality = 100 * (1 - crf / 51), so CRF 30..40 gives
quality 41..22. This is a documented approximation, not a calibration to H.264.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np

from auditor.perturbations.registry import Image, perturbation

CRF_MAX = 51


@dataclass(frozen=True)
class Codec:
    """A way to encode and decode one BGR frame at a quality 0..100."""

    name: str
    container: str
    roundtrip: Callable[[Image, int], Image | None]
    note: str


def crf_to_quality(crf: float) -> int:
    """Map an H.264 constant rate factor (0..51) to a 0..100 quality, best at 100."""
    return int(np.clip(round(100 * (1 - crf / CRF_MAX)), 0, 100))


def _avif(bgr: Image, quality: int) -> Image | None:
    ok, data = cv2.imencode(".avif", bgr, [cv2.IMWRITE_AVIF_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None


def _mjpeg(bgr: Image, quality: int) -> Image | None:
    h, w = bgr.shape[:2]
    with tempfile.TemporaryDirectory(prefix="auditor-video-") as folder:
        path = os.path.join(folder, "frame.avi")
        writer = cv2.VideoWriter(
            path, cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (w, h)
        )
        if not writer.isOpened():
            return None
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
        writer.write(bgr)
        writer.release()
        capture = cv2.VideoCapture(path, cv2.CAP_OPENCV_MJPEG)
        ok, frame = capture.read()
        capture.release()
    return frame if ok else None


CANDIDATES = (
    Codec(
        "av1",
        "avif",
        _avif,
        "one intra frame of AV1 (via OpenCV's AVIF codec); OpenCV's VideoWriter has no "
        "rate control for H.264; quality = 100 * (1 - crf/51)",
    ),
    Codec(
        "mjpeg",
        "avi",
        _mjpeg,
        "Motion JPEG in AVI (OpenCV's own writer); no AV1 or H.264 with rate control in "
        "this OpenCV build; quality = 100 * (1 - crf/51)",
    ),
)


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's log while probing: a missing codec is expected, not an error."""
    logging = cv2.utils.logging
    before = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(before)


def _works(codec: Codec) -> bool:
    """True if `codec` round-trips a test frame and its quality setting matters."""
    ramp = np.linspace(0, 255, 48 * 40 * 3) % 97 * 2.6
    frame = ramp.reshape(48, 40, 3).astype(np.uint8)
    try:
        with _quiet_opencv():
            good, bad = codec.roundtrip(frame, 90), codec.roundtrip(frame, 10)
    except cv2.error:
        return False
    return (
        good is not None
        and bad is not None
        and good.shape == bad.shape == frame.shape
        and not np.array_equal(good, bad)
    )


@functools.cache
def chosen_codec() -> Codec | None:
    """The first candidate that works in this OpenCV build, probed once per process."""
    return next((codec for codec in CANDIDATES if _works(codec)), None)


def implementation() -> dict[str, str]:
    """What `video_compression` uses here, for listings and reports."""
    codec = chosen_codec()
    if codec is None:
        return {"codec": "none", "note": "no usable codec in this OpenCV build"}
    return {"codec": codec.name, "container": codec.container, "note": codec.note}


@perturbation(
    "video_compression",
    family="deepfake",
    levels={"crf": (30, 32, 35, 38, 40)},
    integer_params=("crf",),
    implementation=implementation,
    ranges={"crf": (0, 51)},  # H.264's scale
)
def video_compression(image: Image, rng: np.random.Generator, *, crf: float) -> Image:
    """Real video re-encode at H.264 constant rate factor `crf`, mapped to the codec used."""
    codec = chosen_codec()
    if codec is None:
        raise RuntimeError("video_compression: no video or image codec works in this OpenCV")
    decoded = codec.roundtrip(np.ascontiguousarray(image[:, :, ::-1]), crf_to_quality(crf))
    if decoded is None or decoded.shape != image.shape:
        raise RuntimeError(f"video_compression: the {codec.name} round trip failed")
    return np.ascontiguousarray(decoded[:, :, ::-1])
