"""Video clips through the pipeline: perturbing a clip consistently, re-encoding a whole
clip, preprocessing its frames into tensor rows, and turning frame scores into one score.

Decoding and frame sampling are `auditor.data.video`'s; this module adds what the audit
does with the frames.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from auditor.data.video import Clip, FrameSampling, grab_frames, read_clip
from auditor.errors import ConfigError, SampleError
from auditor.seeds import derive_rng

Image = NDArray[np.uint8]
Probs = NDArray[np.float64]

AGGREGATES = ("mean", "median", "max")
VIDEO_COMPRESSION = "video_compression"
# H.264 has no encoder in the opencv-python wheels, and OpenCV's FFmpeg writer takes no
# rate setting, so the one writer whose rate follows a parameter is OpenCV's built-in
# Motion-JPEG encoder (quality 1..100). Each frame is then coded on its own (intra only).
CLIP_CODEC = "MJPG (OpenCV built-in Motion-JPEG writer, .avi), quality from the rate factor"

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
        decoded = grab_frames(path, None)
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
    """One perturbed copy of a sample (`auditor.engine.pipeline.Draw` has these fields)."""

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
    side: int = 0  # the frames' short side in pixels
    values: int = 0  # pixel values of all F frames
    sse: tuple[int, ...] = ()  # per draw: squared differences from the clean frames, summed


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
    sse = []
    for row, draw in enumerate(draws, start=1):
        rng_for = functools.partial(
            derive_rng, seed, key, draw.perturbation, draw.level, draw.repeat
        )
        frames = perturb_clip(draw.perturbation, clip.frames, draw.params, rng_for, scale_to_input)
        sse.append(sum(squared_error(a, b) for a, b in zip(clip.frames, frames)))
        tensor[row * count : (row + 1) * count] = to_tensor(frames)
    side = min(clip.frames[0].shape[:2]) if count else 0
    values = sum(frame.size for frame in clip.frames)
    # The pixels are dropped here: only the tensor (and the frame numbers) go on.
    return ClipRows(tensor, count, replace(clip, frames=[]), side, values, tuple(sse))


def squared_error(clean: Image, perturbed: Image) -> int:
    """The exact sum of squared differences of two uint8 images of one shape."""
    # OpenCV sums in float64, exact below 2**53: any image of fewer than 1e11 pixel values.
    return int(cv2.norm(clean, perturbed, cv2.NORM_L2SQR))


def split_rows(
    probs: Probs, frames: int, how: str, positive: int | None
) -> tuple[Probs, Probs, Probs]:
    """Turn a clip's row probabilities into (clean K, perturbed D x K, frames (1+D) x F x K).

    The first two are per video (aggregated over the frames); the last keeps the frames.
    """
    per_frame = probs.reshape(-1, frames, probs.shape[-1])
    per_video = aggregate(per_frame, how, positive)
    return per_video[0], per_video[1:], per_frame
