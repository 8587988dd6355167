"""Video clips through the pipeline: perturbing a clip consistently, re-encoding a whole
clip, preprocessing its frames into tensor rows, and turning frame scores into one score.

Decoding and frame sampling are `auditor.data.video`'s; this module adds what the audit
does with the frames.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from auditor.data.video import Clip, FrameSampling, read_clip
from auditor.engine.facecrop import NO_FACE, ClipFaces, FaceFront, FaceTrack
from auditor.errors import ConfigError, SampleError
from auditor.seeds import derive_rng

Image = NDArray[np.uint8]
Probs = NDArray[np.float64]

AGGREGATES = ("mean", "median", "max")
VIDEO_COMPRESSION = "video_compression"
# The perturbations that re-encode a video's frames together (`auditor.perturbations.video`).
ENCODED = ("video_compression", "h265_compression")
DEFAULT_FPS = 25.0  # `ffmpeg`'s rate for frames that state none

# ---------------------------------------------------------------- perturbation


def perturb_clip(
    name: str,
    frames: Sequence[Image],
    params: Mapping[str, float],
    rng_for: Callable[[], np.random.Generator],
    scale_to_input: bool = True,
    fps: float = DEFAULT_FPS,
    pts: Sequence[int] | None = None,
) -> list[Image]:
    """Return every frame of a clip perturbed by `name` at `params`, consistently.

    `rng_for()` must return a generator in the same state on every call: every frame
    then gets the same draws, so a draw that sets a global property (a blur angle, an
    occlusion's place, a rotation) is the same across the video. Per-pixel noise is
    therefore a static pattern over the frames. `video_compression` and
    `h265_compression` re-encode the whole clip instead (see `encode_clip`), the frames
    at their numbers `pts` in a video of `fps` frames per second.
    """
    from auditor import perturbations  # the registry; imported late to keep this light

    if name in ENCODED:
        return encode_clip(frames, rate_factor(params), fps, pts, name)
    return [
        perturbations.apply(name, frame, dict(params), rng_for(), scale_to_input)
        for frame in frames
    ]


def rate_factor(params: Mapping[str, float]) -> float:
    """The constant rate factor of a `video_compression` (or `h265_compression`) level."""
    for key in ("crf", "rate_factor"):
        if key in params:
            return float(params[key])
    if len(params) == 1:
        return float(next(iter(params.values())))
    raise ConfigError(f"{VIDEO_COMPRESSION}: expected a rate factor parameter, got {dict(params)}")


def encode_clip(
    frames: Sequence[Image],
    rate_factor: float,
    fps: float = DEFAULT_FPS,
    pts: Sequence[int] | None = None,
    name: str = VIDEO_COMPRESSION,
) -> list[Image]:
    """Encode `frames` together as one clip at `rate_factor`, decode it, return the frames.

    The encoder is perturbation `name`'s (libx264 for `video_compression`); `pts` are
    the frames' numbers at `fps` (default 0, 1, 2, ...). Where PyAV cannot encode, each
    frame goes through the perturbation's stand-in on its own (with a warning).
    """
    from auditor.perturbations import video, video_codecs

    encoder = video.ENCODERS[name]
    if video_codecs.unavailable(encoder) is not None:
        return [video.compress(name, frame, rate_factor) for frame in frames]
    return video_codecs.roundtrip(frames, encoder, rate_factor, fps, pts)


def clip_codec() -> str:
    """How `video_compression` encodes a video's frames here, in words, for the results."""
    from auditor.perturbations.video import implementation

    facts = implementation(VIDEO_COMPRESSION)
    if facts.get("encoder"):
        return (
            f"H.264 ({facts['encoder']} {facts['encoder_version']}; {facts['library']}), "
            "the sampled frames as one clip at their times in the video; "
            f"{facts['settings']}"
        )
    return f"{facts['codec']}, each frame on its own ({facts.get('note', '')})"


def clip_rate(clip: Clip) -> float:
    """The frame rate that the numbers of `clip.indices` count in (`DEFAULT_FPS` if unknown)."""
    return clip.native_fps if clip.native_fps > 0 else DEFAULT_FPS


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
    faces: ClipFaces | None = None  # --face-crop: where each frame's crop was cut


def clip_rows(
    path: Path,
    key: str,
    draws: Sequence[Draw],
    to_tensor: Callable[[Sequence[Image]], NDArray[Any]],
    *,
    seed: int,
    scale_to_input: bool,
    sampling: FrameSampling,
    face: FaceFront | None = None,
) -> ClipRows:
    """Decode the clip at `path` once, perturb it under every draw, preprocess every frame.

    The draws of one (perturbation, level, repeat) come from the generator of (seed,
    `key`, perturbation, level, repeat), as for an image, rebuilt for each frame. With
    `face`, every draw perturbs the whole frames and the model gets each frame's face
    crop (see `_face_rows`).
    """
    clip = read_clip(path, sampling)
    if face is not None:
        return _face_rows(clip, key, draws, to_tensor, seed, scale_to_input, face)
    count = len(clip.frames)
    first = to_tensor(clip.frames)
    tensor = np.empty(((1 + len(draws)) * count, *first.shape[1:]), first.dtype)
    tensor[:count] = first
    sse = []
    for row, draw in enumerate(draws, start=1):
        frames = _perturbed_clip(clip, key, draw, seed, scale_to_input)
        sse.append(sum(squared_error(a, b) for a, b in zip(clip.frames, frames)))
        tensor[row * count : (row + 1) * count] = to_tensor(frames)
    side = min(clip.frames[0].shape[:2]) if count else 0
    values = sum(frame.size for frame in clip.frames)
    # The pixels are dropped here: only the tensor (and the frame numbers) go on.
    return ClipRows(tensor, count, replace(clip, frames=[]), side, values, tuple(sse))


def _perturbed_clip(
    clip: Clip, key: str, draw: Draw, seed: int, scale_to_input: bool
) -> list[Image]:
    """Every frame of `clip` under `draw` (`perturb_clip` with the draw's generator)."""
    rng_for = functools.partial(derive_rng, seed, key, draw.perturbation, draw.level, draw.repeat)
    return perturb_clip(
        draw.perturbation,
        clip.frames,
        draw.params,
        rng_for,
        scale_to_input,
        clip_rate(clip),
        clip.indices,
    )


def _face_rows(
    clip: Clip,
    key: str,
    draws: Sequence[Draw],
    to_tensor: Callable[[Sequence[Image]], NDArray[Any]],
    seed: int,
    scale_to_input: bool,
    face: FaceFront,
) -> ClipRows:
    """`clip_rows` behind a face front end: the whole frames perturbed, then each one cropped.

    Only the frames whose clean pixels hold a face are scored (none: `SampleError`, "no
    face"); the perturbation still sees every sampled frame, so a codec's inter-frame
    artefacts are those of the whole clip. A perturbed frame with no face gets its clean
    crop's row: the video's score leaves it out (`ClipFaces`), so its row does not matter.
    """
    cuts = [face.cut(frame) for frame in clip.frames]
    found_clean = [(i, cut) for i, cut in enumerate(cuts) if cut is not None]
    if not found_clean:
        raise SampleError(NO_FACE)
    kept = [i for i, _ in found_clean]
    clean_crops = [pixels for _, (pixels, _) in found_clean]
    clean_boxes = [box for _, (_, box) in found_clean]
    count = len(kept)
    first = to_tensor(clean_crops)
    tensor = np.empty(((1 + len(draws)) * count, *first.shape[1:]), first.dtype)
    tensor[:count] = first
    sse, boxes = [], []
    for row, draw in enumerate(draws, start=1):
        frames = _perturbed_clip(clip, key, draw, seed, scale_to_input)
        sse.append(sum(squared_error(a, b) for a, b in zip(clip.frames, frames)))
        found = [face.cut(frames[i]) for i in kept]
        boxes.append([None if cut is None else cut[1] for cut in found])
        crops = [clean if cut is None else cut[0] for clean, cut in zip(clean_crops, found)]
        tensor[row * count : (row + 1) * count] = to_tensor(crops)
    tracks = tuple(
        FaceTrack(clean_boxes[f], tuple(per_draw[f] for per_draw in boxes)) for f in range(count)
    )
    dropped = tuple(number for number, cut in zip(clip.indices, cuts) if cut is None)
    side = min(clip.frames[0].shape[:2])
    values = sum(frame.size for frame in clip.frames)
    scored = replace(clip, frames=[], indices=tuple(clip.indices[i] for i in kept))
    return ClipRows(tensor, count, scored, side, values, tuple(sse), ClipFaces(tracks, dropped))


def squared_error(clean: Image, perturbed: Image) -> int:
    """The exact sum of squared differences of two uint8 images of one shape."""
    # OpenCV sums in float64, exact below 2**53: any image of fewer than 1e11 pixel values.
    return int(cv2.norm(clean, perturbed, cv2.NORM_L2SQR))


def split_rows(
    probs: Probs,
    frames: int,
    how: str,
    positive: int | None,
    found: NDArray[np.bool_] | None = None,
) -> tuple[Probs, Probs, Probs]:
    """Turn a clip's row probabilities into (clean K, perturbed D x K, frames (1+D) x F x K).

    The first two are per video (aggregated over the frames); the last keeps the frames.
    `found` ((1+D) x F, `--face-crop`): each run aggregates only the frames where a face
    was found; a run with none keeps the aggregate of all its rows (counted as lost).
    """
    per_frame = probs.reshape(-1, frames, probs.shape[-1])
    per_video = aggregate(per_frame, how, positive)
    if found is not None:
        for run, mask in enumerate(found):
            if mask.any() and not mask.all():
                per_video[run] = aggregate(per_frame[run][mask], how, positive)
    return per_video[0], per_video[1:], per_frame
