"""Video samples: which files are videos, frame sampling and decoding (what the audit
does with the frames is `auditor.engine.clips`).

A video is one sample of the audit; its frames are an inner detail. Each video is
decoded once, keeping only its sampled frames (one video at a time, at full size:
the model adapter resizes), and is scored as one probability vector, the aggregate
of its frames' vectors. RA, RR and every metric are then computed per video.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from auditor import files
from auditor.data.imagesize import DEFAULT_MAX_PIXELS, check_pixels, max_file_bytes
from auditor.errors import ConfigError, DataError, SampleError

Image = NDArray[np.uint8]
Probs = NDArray[np.float64]

# Containers recognised as video by their suffix. Whether a given file decodes depends
# on its codec and on the installed OpenCV build: one that does not is skipped with
# the reason, never silently ignored (see `decodable_suffixes` for what this build reads).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
DEFAULT_FRAMES = 16
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FrameSampling:
    """Which frames of a video to score: `frames` spread evenly, or `fps` per second.

    With both, the frames at `fps` per second are thinned evenly to at most `frames`.
    """

    frames: int | None = DEFAULT_FRAMES
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.frames is not None and self.frames < 1:
            raise ConfigError("--frames must be at least 1")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError("--fps must be a positive number")

    def describe(self) -> str:
        """A short phrase for reports: `16 frames, evenly spread` or `2 per second`."""
        if self.fps is None:
            return f"{self.frames} frames, evenly spread"
        cap = f", at most {self.frames}" if self.frames is not None else ""
        return f"{self.fps:g} frames per second{cap}"


def frame_sampling(frames: int | None, fps: float | None) -> FrameSampling:
    """The sampling of `--frames` and `--fps` as given (None: not given)."""
    return FrameSampling(DEFAULT_FRAMES if frames is None and fps is None else frames, fps)


@dataclass(frozen=True)
class Clip:
    """The sampled frames of one video (RGB uint8, full size) and where they came from."""

    frames: list[Image]
    indices: tuple[int, ...]
    total_frames: int
    native_fps: float
    sha256: str


def is_video(path: Path) -> bool:
    """Whether `path` names a video file (by its suffix)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def media_kind(paths: Iterable[Path | str], where: Path) -> str:
    """Return `"video"` if every path is a video, `"image"` if none is; refuse a mix."""
    videos: list[Path] = []
    others: list[Path] = []
    for path in paths:
        (videos if is_video(Path(path)) else others).append(Path(path))
    if videos and others:
        raise DataError(
            f"{where}: mixes {len(others)} image(s) (e.g. {others[0].name}) and "
            f"{len(videos)} video(s) (e.g. {videos[0].name}); audit images and videos "
            "separately"
        )
    return "video" if videos else "image"


# ---------------------------------------------------------------- decoding


def frame_indices(total: int, native_fps: float, sampling: FrameSampling) -> list[int]:
    """Return the indices of the frames to score among `total` frames."""
    if total < 1:
        return []
    if sampling.fps is None:
        return _evenly(range(total), sampling.frames or DEFAULT_FRAMES)
    if not native_fps > 0:
        raise SampleError("the video does not state its frame rate; sample it with --frames")
    # Tick k is at time k / fps, before the end (total / native_fps); the frame on
    # screen then is floor(k / fps * native_fps). Epsilons absorb float rounding.
    ticks = int(np.ceil(total * sampling.fps / native_fps - 1e-9))
    on_screen = np.floor(np.arange(ticks) * native_fps / sampling.fps + 1e-6).astype(int)
    picked = sorted({min(total - 1, int(i)) for i in on_screen})
    return _evenly(picked, sampling.frames) if sampling.frames is not None else picked


def _evenly(candidates: Sequence[int], count: int) -> list[int]:
    """Take `count` of `candidates`, the middle one of each of `count` equal runs."""
    if len(candidates) <= count:
        return list(candidates)
    # Middles rather than np.linspace's ends: the last frame a container reports is
    # the one most often missing or broken.
    positions = np.floor((np.arange(count) + 0.5) * len(candidates) / count).astype(int)
    return [candidates[p] for p in positions]


def read_clip(path: Path, sampling: FrameSampling, max_pixels: int = DEFAULT_MAX_PIXELS) -> Clip:
    """Decode the sampled frames of the video at `path`, once; return them as a `Clip`.

    As for an image (`auditor.data.decode`): a regular, non-empty file only; the frame
    size from the container's header checked against `max_pixels`, and the file's size
    against what its frames could take, before the file is read whole (to hash it);
    and any failure of the decoder becomes a `SampleError` with a one-line reason.
    """
    try:
        return _read_clip(path, sampling, max_pixels)
    except SampleError:
        raise
    except files.Refused as exc:
        raise SampleError(str(exc)) from None
    except Exception as exc:  # cv2.error and the like: this video, not the audit, fails
        raise SampleError(f"not a decodable video ({files.one_line(exc)})") from None


def _read_clip(path: Path, sampling: FrameSampling, max_pixels: int) -> Clip:
    with files.open_regular(path) as handle:
        size = files.size_of(handle)
        if not handle.read(1):
            raise SampleError("empty file (0 bytes)")
    total, native_fps = _stream_info(path, size, max_pixels)
    digest = file_sha256(path)
    if total < 1:  # some containers do not store a frame count: count them
        total = _count_frames(path)
    indices = frame_indices(total, native_fps, sampling)
    frames = grab_frames(path, indices)
    if len(frames) < len(indices):  # the container over-stated its frame count
        total = _count_frames(path)
        indices = frame_indices(total, native_fps, sampling)
        frames = grab_frames(path, indices)
    if not frames or len(frames) < len(indices):
        raise SampleError("no decodable frames (corrupt, truncated or unsupported codec)")
    return Clip(frames, tuple(indices), total, native_fps, digest)


def still(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Image, str]:
    """Return the middle frame of the video at `path` and the file's sha256."""
    clip = read_clip(path, FrameSampling(frames=1), max_pixels)
    return clip.frames[0], clip.sha256


def file_sha256(path: Path) -> str:
    """Return the sha256 of the regular file at `path`, read in chunks."""
    digest = hashlib.sha256()
    try:
        with files.open_regular(path) as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    except files.Refused as exc:
        raise SampleError(str(exc)) from None
    except OSError as exc:
        raise SampleError(f"cannot read the file: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _capture_name(path: Path) -> Any:
    """`path` as OpenCV's video reader takes it: bytes for a name that is not UTF-8.

    Given a str with surrogate escapes, OpenCV 5's VideoCapture crashes the process.
    """
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name)
    return name


def _open(path: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(_capture_name(path))
    if not capture.isOpened():
        capture.release()
        raise SampleError(
            f"not a decodable video (corrupt, truncated, or a codec this OpenCV "
            f"{cv2.__version__} build cannot read)"
        )
    return capture


def _stream_info(path: Path, size: int, max_pixels: int) -> tuple[int, float]:
    """The frame count and rate from the container's header, its sizes checked first."""
    capture = _open(path)
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        capture.release()
    check_pixels(width, height, max_pixels)
    if total > size:  # every frame takes at least a byte: the header lies
        raise SampleError(f"the header claims {total:,} frames, in a file of {size:,} bytes")
    if total > 0 and width > 0 and height > 0:
        limit = max_file_bytes(total * width * height)
        if size > limit:
            raise SampleError(
                f"{files.too_large(size, limit)} that {total:,} frames of {width}x{height} can take"
            )
    return max(total, 0), fps if np.isfinite(fps) else 0.0


def _count_frames(path: Path) -> int:
    capture = _open(path)
    count = 0
    try:
        while capture.grab():
            count += 1
    finally:
        capture.release()
    return count


def grab_frames(path: Path, indices: Sequence[int] | None) -> list[Image]:
    """Read the stream in order, keeping the frames at `indices` (all when None)."""
    # Sequential grab() is exact; seeking by frame number is not for every codec.
    wanted = None if indices is None else set(indices)
    last = None if indices is None else max(indices, default=-1)
    capture = _open(path)
    frames: list[Image] = []
    try:
        position = 0
        while last is None or position <= last:
            if not capture.grab():
                break
            if wanted is None or position in wanted:
                ok, frame = capture.retrieve()
                if not ok or frame is None:
                    break
                frames.append(_to_rgb(frame))
            position += 1
    finally:
        capture.release()
    return frames


def _to_rgb(frame: NDArray[np.uint8]) -> Image:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return np.ascontiguousarray(frame[:, :, ::-1])


# ---------------------------------------------------------------- what this build reads

_PROBE_CODECS = {".avi": "MJPG", ".webm": "VP80"}  # the rest: MPEG-4 part 2


@cache
def decodable_suffixes() -> tuple[str, ...]:
    """The video suffixes this OpenCV build can write and read back (a short probe)."""
    frames = [np.full((16, 16, 3), 40 * i, np.uint8) for i in range(2)]
    found = []
    with tempfile.TemporaryDirectory(prefix="auditor-probe-") as folder:
        for suffix in VIDEO_SUFFIXES:
            path = Path(folder) / f"probe{suffix}"
            fourcc = cv2.VideoWriter.fourcc(*_PROBE_CODECS.get(suffix, "mp4v"))
            writer = cv2.VideoWriter(str(path), fourcc, 10.0, (16, 16))
            if writer.isOpened():
                for frame in frames:
                    writer.write(frame)
            writer.release()
            try:
                if path.is_file() and len(grab_frames(path, None)) == len(frames):
                    found.append(suffix)
            except SampleError:
                pass
    return tuple(found)
