"""`video_compression` (H.264) and `h265_compression` (H.265): a real encode and decode.

DeeperForensics-1.0 and FaceForensics++ re-encode videos with H.264 at a constant rate
factor (CRF). `video_compression` does the same with FFmpeg's libx264, through PyAV, at
the CRF of each level, preset medium, yuv420p: what `ffmpeg -c:v libx264 -crf N` does
(see `video_codecs`). A still image is encoded as a one-frame stream, that is one
intra-coded frame; a video's sampled frames are encoded together as one clip
(`auditor.engine.clips`), so they also get inter-frame artefacts.

`h265_compression` is FFmpeg's libx265 on the CRF ladder 35, 37, 40, 43, 45: the
DeeperForensics ladder (30..40) plus 5, the offset of FFmpeg's H.265 encoding guide
(x265's default CRF 28 "should visually correspond to libx264 video at CRF 23").

Where PyAV cannot be imported or its FFmpeg lacks the encoder, each frame goes instead
through the first stand-in that works in this OpenCV build, with a `CodecWarning` and
the stand-in named in `implementation()`:

1. AV1 intra, through OpenCV's AVIF image codec;
2. Motion JPEG, through OpenCV's own AVI writer and reader.

Their quality is `100 * (1 - crf / 51)` (the CRF's place on H.264's 0..51 quantizer
scale): an approximation, milder than H.264 at the same CRF (on a 320 px photograph
about 2 dB more PSNR at CRF 30 and 4 dB at CRF 40; `bench/codecs.py`).
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

from auditor.perturbations import video_codecs
from auditor.perturbations.registry import Image, perturbation
from auditor.perturbations.video_codecs import H264, H265, Encoder

CRF_MAX = 51


@dataclass(frozen=True)
class Codec:
    """A stand-in codec: encodes and decodes one BGR frame at a quality 0..100."""

    name: str
    label: str
    container: str
    roundtrip: Callable[[Image, int], Image | None]
    note: str


def crf_to_quality(crf: float) -> int:
    """Map a constant rate factor (0..51) to a stand-in's 0..100 quality, best at 100."""
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
        "AV1 intra frames (OpenCV's AVIF codec)",
        "avif",
        _avif,
        "stand-in: one intra frame of AV1 (via OpenCV's AVIF codec); quality = 100 * (1 - crf/51)",
    ),
    Codec(
        "mjpeg",
        "Motion JPEG (OpenCV's AVI writer)",
        "avi",
        _mjpeg,
        "stand-in: Motion JPEG in AVI (OpenCV's own writer); no AV1 in this OpenCV "
        "build; quality = 100 * (1 - crf/51)",
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
def fallback_codec() -> Codec | None:
    """The first stand-in that works in this OpenCV build, probed once per process."""
    return next((codec for codec in CANDIDATES if _works(codec)), None)


# The perturbations that re-encode, by name; `auditor.engine.clips` encodes a video's
# frames as one clip for these.
ENCODERS: dict[str, Encoder] = {"video_compression": H264, "h265_compression": H265}


def compress(name: str, image: Image, crf: float) -> Image:
    """Return RGB `image` through perturbation `name`'s encoder at `crf`, or its stand-in."""
    encoder = ENCODERS[name]
    if video_codecs.unavailable(encoder) is None:
        return video_codecs.roundtrip([image], encoder, crf)[0]
    codec = fallback_codec()
    if codec is None:
        raise RuntimeError(f"{name}: no PyAV, and no stand-in codec works in this OpenCV")
    video_codecs.warn_fallback(name, encoder, codec.label)
    decoded = codec.roundtrip(np.ascontiguousarray(image[:, :, ::-1]), crf_to_quality(crf))
    if decoded is None or decoded.shape != image.shape:
        raise RuntimeError(f"{name}: the {codec.name} round trip failed")
    return np.ascontiguousarray(decoded[:, :, ::-1])


def implementation(name: str) -> dict[str, str]:
    """What perturbation `name` encodes with here, for listings and reports."""
    encoder = ENCODERS[name]
    reason = video_codecs.unavailable(encoder)
    if reason is None:
        return dict(video_codecs.facts(encoder))
    codec = fallback_codec()
    if codec is None:
        return {"codec": "none", "note": f"{reason}; no stand-in works in this OpenCV"}
    video_codecs.warn_fallback(name, encoder, codec.label)
    return {
        "codec": codec.name,
        "container": codec.container,
        "library": f"OpenCV {cv2.__version__}",
        "note": f"{reason}: {codec.note}",
    }


@perturbation(
    "video_compression",
    family="deepfake",
    levels={"crf": (30, 32, 35, 38, 40)},
    integer_params=("crf",),
    implementation=functools.partial(implementation, "video_compression"),
    ranges={"crf": (0, 51)},  # H.264's scale
)
def video_compression(image: Image, rng: np.random.Generator, *, crf: float) -> Image:
    """H.264 re-encode (libx264) at constant rate factor `crf`, preset medium, yuv420p."""
    return compress("video_compression", image, crf)


@perturbation(
    "h265_compression",
    family="deepfake",
    levels={"crf": (35, 37, 40, 43, 45)},
    integer_params=("crf",),
    implementation=functools.partial(implementation, "h265_compression"),
    ranges={"crf": (0, 51)},  # x265's scale
)
def h265_compression(image: Image, rng: np.random.Generator, *, crf: float) -> Image:
    """H.265 re-encode (libx265) at constant rate factor `crf`, preset medium, yuv420p."""
    return compress("h265_compression", image, crf)
