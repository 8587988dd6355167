"""Video samples: which files are videos, frame sampling and decoding, perturbing a
clip consistently, re-encoding a whole clip, and turning frame scores into one score.

A video is one sample of the audit; its frames are an inner detail. Each video is
decoded once, keeping only its sampled frames (one video at a time, at full size:
the model adapter resizes), and is scored as one probability vector, the aggregate
of its frames' vectors. RA, RR and every metric are then computed per video.
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from auditor.errors import ConfigError, DataError, SampleError
from auditor.seeds import derive_rng

Image = NDArray[np.uint8]
Probs = NDArray[np.float64]

# Containers recognised as video by their suffix. Whether a given file decodes depends
# on its codec and on the installed OpenCV build: one that does not is skipped with
# the reason, never silently ignored (see `decodable_suffixes` for what this build reads).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
AGGREGATES = ("mean", "median", "max")
DEFAULT_FRAMES = 16
VIDEO_COMPRESSION = "video_compression"
# H.264 has no encoder in the opencv-python wheels, and OpenCV's FFmpeg writer takes no
# rate setting, so the one writer whose rate follows a parameter is OpenCV's built-in
# Motion-JPEG encoder (quality 1..100). Each frame is then coded on its own (intra only).
CLIP_CODEC = "MJPG (OpenCV built-in Motion-JPEG writer, .avi), quality from the rate factor"
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
        return _evenly(list(range(total)), sampling.frames or DEFAULT_FRAMES)
    if not native_fps > 0:
        raise SampleError("the video does not state its frame rate; sample it with --frames")
    # Tick k is at time k / fps, before the end (total / native_fps); the frame on
    # screen then is floor(k / fps * native_fps). Epsilons absorb float rounding.
    ticks = int(np.ceil(total * sampling.fps / native_fps - 1e-9))
    on_screen = np.floor(np.arange(ticks) * native_fps / sampling.fps + 1e-6).astype(int)
    picked = sorted({min(total - 1, int(i)) for i in on_screen})
    return _evenly(picked, sampling.frames) if sampling.frames is not None else picked


def _evenly(candidates: list[int], count: int) -> list[int]:
    """Take `count` of `candidates`, the middle one of each of `count` equal runs."""
    if len(candidates) <= count:
        return candidates
    # Middles rather than np.linspace's ends: the last frame a container reports is
    # the one most often missing or broken.
    positions = np.floor((np.arange(count) + 0.5) * len(candidates) / count).astype(int)
    return [candidates[p] for p in positions]


def read_clip(path: Path, sampling: FrameSampling) -> Clip:
    """Decode the sampled frames of the video at `path`, once; return them as a `Clip`."""
    digest = file_sha256(path)
    total, native_fps = _stream_info(path)
    if total < 1:  # some containers do not store a frame count: count them
        total = _count_frames(path)
    indices = frame_indices(total, native_fps, sampling)
    frames = _grab_frames(path, indices)
    if len(frames) < len(indices):  # the container over-stated its frame count
        total = _count_frames(path)
        indices = frame_indices(total, native_fps, sampling)
        frames = _grab_frames(path, indices)
    if not frames or len(frames) < len(indices):
        raise SampleError("no decodable frames (corrupt, truncated or unsupported codec)")
    return Clip(frames, tuple(indices), total, native_fps, digest)


def still(path: Path) -> tuple[Image, str]:
    """Return the middle frame of the video at `path` and the file's sha256."""
    clip = read_clip(path, FrameSampling(frames=1))
    return clip.frames[0], clip.sha256


def file_sha256(path: Path) -> str:
    """Return the sha256 of the file at `path`, read in chunks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise SampleError(f"cannot read the file: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _open(path: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise SampleError(
            f"not a decodable video (corrupt, truncated, or a codec this OpenCV "
            f"{cv2.__version__} build cannot read)"
        )
    return capture


def _stream_info(path: Path) -> tuple[int, float]:
    capture = _open(path)
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()
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


def _grab_frames(path: Path, indices: Sequence[int] | None) -> list[Image]:
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


# ---------------------------------------------------------------- perturbation


def perturb_clip(
    name: str,
    frames: Sequence[Image],
    params: Mapping[str, float],
    rng_for: Callable[[], np.random.Generator],
    scale_to_input: bool = True,
) -> list[Image]:
    """Return every frame of a clip perturbed by `name` at `params`, consistently.

    `rng_for()` must return a generator in the same state on every call: every frame
    then gets the same draws, so a draw that sets a global property (a blur angle, an
    occlusion's place, a rotation) is the same across the video. Per-pixel noise is
    therefore a static pattern over the frames. `video_compression` re-encodes the
    whole clip instead (see `encode_clip`).
    """
    from auditor import perturbations  # the registry; imported late to keep this light

    if name == VIDEO_COMPRESSION:
        return encode_clip(frames, rate_factor(params))
    return [
        perturbations.apply(name, frame, dict(params), rng_for(), scale_to_input)
        for frame in frames
    ]


def rate_factor(params: Mapping[str, float]) -> float:
    """The constant rate factor of a `video_compression` level."""
    for key in ("crf", "rate_factor"):
        if key in params:
            return float(params[key])
    if len(params) == 1:
        return float(next(iter(params.values())))
    raise ConfigError(f"{VIDEO_COMPRESSION}: expected a rate factor parameter, got {dict(params)}")


def jpeg_quality(rate_factor: float) -> int:
    """Map an H.264 constant rate factor (0..51) to a Motion-JPEG quality (1..100).

    The mapping of the image-level `video_compression` (`crf_to_quality`), so CRF
    30..40 gives 41..22 on both paths.
    """
    from auditor.perturbations.video import crf_to_quality

    return max(1, crf_to_quality(rate_factor))


def encode_clip(frames: Sequence[Image], rate_factor: float) -> list[Image]:
    """Encode `frames` together as one clip at `rate_factor`, decode it, return the frames."""
    if not frames:
        return []
    h, w = frames[0].shape[:2]
    with tempfile.TemporaryDirectory(prefix="auditor-clip-") as folder:
        path = Path(folder) / "clip.avi"
        writer = cv2.VideoWriter(
            str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (w, h)
        )
        if not writer.isOpened():
            raise SampleError(f"{VIDEO_COMPRESSION}: OpenCV cannot open its MJPG writer")
        try:
            writer.set(cv2.VIDEOWRITER_PROP_QUALITY, jpeg_quality(rate_factor))
            for frame in frames:
                writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
        finally:
            writer.release()
        decoded = _grab_frames(path, None)
    if len(decoded) != len(frames):
        raise SampleError(
            f"{VIDEO_COMPRESSION}: re-encoded {len(frames)} frames, decoded {len(decoded)}"
        )
    return decoded


# ---------------------------------------------------------------- aggregation


def aggregate(frame_probs: Probs, how: str, positive: int | None) -> Probs:
    """Combine frame probabilities (..., F, K) into one vector per video (..., K).

    `mean` and `median` are taken per class; `max` takes the frame with the highest
    probability of the positive class (the most suspicious frame) when there is one,
    else the per-class maximum. The result is renormalized to sum to 1.
    """
    if how == "mean":
        out = frame_probs.mean(axis=-2)
    elif how == "median":
        out = np.median(frame_probs, axis=-2)
    elif how == "max" and positive is not None:
        top = np.argmax(frame_probs[..., positive], axis=-1)
        out = np.take_along_axis(frame_probs, top[..., None, None], axis=-2)[..., 0, :]
    elif how == "max":
        out = frame_probs.max(axis=-2)
    else:
        raise ConfigError(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {how!r}")
    total = out.sum(axis=-1, keepdims=True)
    return np.asarray(out / np.where(total > 0, total, 1.0), np.float64)


# ---------------------------------------------------------------- scoring


class Draw(Protocol):
    """One perturbed copy of a sample (`auditor.pipeline.Draw` has these fields)."""

    @property
    def perturbation(self) -> str: ...
    @property
    def level(self) -> int: ...
    @property
    def params(self) -> dict[str, float]: ...
    @property
    def repeat(self) -> int: ...


@dataclass
class ClipRows:
    """A clip ready for the model: clean frames, then each draw's frames, as tensor rows."""

    tensor: NDArray[Any]  # (1 + D) * F rows
    frames: int  # F
    clip: Clip


def clip_rows(
    path: Path,
    key: str,
    draws: Sequence[Draw],
    to_tensor: Callable[[Sequence[Image]], NDArray[Any]],
    *,
    seed: int,
    scale_to_input: bool,
    sampling: FrameSampling,
) -> ClipRows:
    """Decode the clip at `path` once, perturb it under every draw, preprocess every frame.

    The draws of one (perturbation, level, repeat) come from the generator of (seed,
    `key`, perturbation, level, repeat), as for an image, rebuilt for each frame.
    """
    clip = read_clip(path, sampling)
    count = len(clip.frames)
    first = to_tensor(clip.frames)
    tensor = np.empty(((1 + len(draws)) * count, *first.shape[1:]), first.dtype)
    tensor[:count] = first
    for row, draw in enumerate(draws, start=1):
        rng_for = functools.partial(
            derive_rng, seed, key, draw.perturbation, draw.level, draw.repeat
        )
        frames = perturb_clip(draw.perturbation, clip.frames, draw.params, rng_for, scale_to_input)
        tensor[row * count : (row + 1) * count] = to_tensor(frames)
    # The pixels are dropped here: only the tensor (and the frame numbers) go on.
    return ClipRows(tensor, count, replace(clip, frames=[]))


def split_rows(
    probs: Probs, frames: int, how: str, positive: int | None
) -> tuple[Probs, Probs, Probs]:
    """Turn a clip's row probabilities into (clean K, perturbed D x K, frames (1+D) x F x K).

    The first two are per video (aggregated over the frames); the last keeps the frames.
    """
    per_frame = probs.reshape(-1, frames, probs.shape[-1])
    per_video = aggregate(per_frame, how, positive)
    return per_video[0], per_video[1:], per_frame


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
                if path.is_file() and len(_grab_frames(path, None)) == len(frames):
                    found.append(suffix)
            except SampleError:
                pass
    return tuple(found)
