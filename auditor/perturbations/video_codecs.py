"""H.264 and H.265 round trips through FFmpeg's libx264 and libx265, by way of PyAV.

Frames are encoded as one stream, in memory (raw packets, no container and no file),
with the settings of `ffmpeg -c:v libx264 -crf N -preset medium -pix_fmt yuv420p`, then
decoded by FFmpeg's own decoder. Colour conversion is FFmpeg's swscale with the flags
the `ffmpeg` command line uses by default (bicubic): RGB to yuv420p and back with the
BT.601 matrix in limited range, as the command line does for input that names no colour
space; the converted planes are byte-identical to the command line's.

yuv420p needs even sides, and libx265 here at least 128 px a side (see `H265`): a
frame that has not is padded by repeating its last row and column (edge replication),
encoded, decoded and cropped back to its size.

The same frames give the same bytes on every run and machine: x264 runs on one thread,
x265 on one frame thread with a worker pool of one (their output then does not depend
on the core count), and x264 is kept off its AVX-512 code, which does not give the same
stream twice (see `encoder_options`).
"""

from __future__ import annotations

import functools
import importlib
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor.errors import SampleError

Image = NDArray[np.uint8]

PRESET = "medium"  # x264's and x265's default, so the command line's
PIXEL_FORMAT = "yuv420p"
DEFAULT_FPS = 25.0  # the rate `ffmpeg` gives a still image or raw frames
CONTAINER = "raw stream in memory"


class CodecWarning(UserWarning):
    """A video codec fell back to a milder stand-in (PyAV or its encoder is missing)."""


@dataclass(frozen=True)
class Encoder:
    """An FFmpeg encoder, its decoder, and how to read its version from its stream."""

    codec: str  # FFmpeg's name of the format: h264, hevc
    encoder: str  # libx264, libx265
    label: str  # H.264, H.265
    version_pattern: bytes  # its group 1: the version the encoder writes into its stream
    min_side: int = 2
    options: tuple[tuple[str, str], ...] = ()  # a tuple: an `Encoder` is a cache key


H264 = Encoder("h264", "libx264", "H.264", rb"x264 - (core \d+(?: r\d+ [0-9a-f]+)?)")
H265 = Encoder(
    "hevc",
    "libx265",
    "H.265",
    rb"x265 \(build \d+\) - ([^:\s]+)",
    # x265 refuses pictures under 16 px a side; the x265 4.2 of PyAV 18.1 corrupts the
    # heap on pictures 33 to 49 px wide, and codes pictures of one coding tree unit
    # (64 px) differently from run to run: pad to two units.
    min_side=128,
    # One frame thread and a pool of one: x265 sizes both by the core count otherwise,
    # and more frame threads code the stream differently (wavefronts stay on, as in
    # the command line's default, whose stream does not depend on the pool's size).
    options=(("x265-params", "log-level=error:pools=1:frame-threads=1"),),
)


def load_av() -> ModuleType | None:
    """Import PyAV, or return None where it is not installed or does not load."""
    try:
        import av
    except ImportError:
        return None
    return av


@functools.cache
def unavailable(encoder: Encoder) -> str | None:
    """Why `encoder` cannot run here, in a phrase; None when it can (probed once)."""
    av = load_av()
    if av is None:
        return "PyAV (the av package) cannot be imported"
    if encoder.encoder not in av.codecs_available:
        return f"the FFmpeg of PyAV {av.__version__} has no {encoder.encoder} encoder"
    try:
        _encode(av, [np.zeros((16, 16, 3), np.uint8)], encoder, 30, DEFAULT_FPS, None)
    except (av.FFmpegError, ValueError) as exc:
        return f"{encoder.encoder} failed a test encode ({exc})"
    return None


def roundtrip(
    frames: Sequence[Image],
    encoder: Encoder,
    crf: float,
    fps: float = DEFAULT_FPS,
    pts: Sequence[int] | None = None,
) -> list[Image]:
    """Encode RGB `frames` as one stream at constant rate factor `crf`, decode, return them.

    `fps` is the stream's frame rate and `pts` each frame's number on that clock
    (default 0, 1, 2, ...): sampled frames keep the time between them in their video,
    which x264's and x265's rate control take into account.
    """
    if not frames:
        return []
    av = load_av()
    if av is None:
        raise SampleError(f"{encoder.encoder}: PyAV (the av package) cannot be imported")
    h, w = frames[0].shape[:2]
    try:
        packets = _encode(av, frames, encoder, crf, fps, pts)
        decoded = _decode(av, packets, encoder)
    except av.FFmpegError as exc:
        raise SampleError(f"{encoder.encoder} round trip failed: {exc}") from None
    if len(decoded) != len(frames):
        raise SampleError(
            f"{encoder.encoder}: encoded {len(frames)} frames, decoded {len(decoded)}"
        )
    return [np.ascontiguousarray(frame[:h, :w]) for frame in decoded]


def _encode(
    av: Any,
    frames: Sequence[Image],
    encoder: Encoder,
    crf: float,
    fps: float,
    pts: Sequence[int] | None,
) -> list[Any]:
    """Encode `frames` (padded to what yuv420p and the encoder accept) into packets."""
    from av.video.reformatter import Interpolation

    padded = [_pad(frame, encoder.min_side) for frame in frames]
    rate = Fraction(fps if fps > 0 else DEFAULT_FPS).limit_denominator(1001)
    context = av.CodecContext.create(encoder.encoder, "w")
    context.width, context.height = padded[0].shape[1], padded[0].shape[0]
    context.pix_fmt = PIXEL_FORMAT
    context.framerate, context.time_base = rate, 1 / rate
    context.thread_count = 1
    context.options = {"crf": f"{crf:g}", "preset": PRESET, **encoder_options(encoder)}
    packets: list[Any] = []
    for number, frame in zip(pts if pts is not None else range(len(padded)), padded):
        picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
        # bicubic: the swscale flags of the ffmpeg command line (PyAV's default is bilinear)
        picture = picture.reformat(format=PIXEL_FORMAT, interpolation=Interpolation.BICUBIC)
        picture.pts = int(number)
        packets.extend(context.encode(picture))
    packets.extend(context.encode(None))
    return packets


def encoder_options(encoder: Encoder) -> dict[str, str]:
    """FFmpeg options of `encoder` beyond the CRF and the preset, for this machine."""
    options = dict(encoder.options)
    if encoder.encoder == "libx264" and _has_avx512():
        # x264's AVX-512 code (x264 core 165 in PyAV 18.1) reads uninitialised memory in
        # its macroblock-tree pass, so the same frames encode differently from one run to
        # the next. Its AVX2 code does not, and gives the same stream on every AVX2 CPU.
        options["x264-params"] = "asm=AVX2"
    return options


@functools.cache
def _has_avx512() -> bool:
    """Whether this CPU has the AVX-512 that x264 would use (numpy's CPU probe)."""
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # 2.x, 1.x
        try:
            features = importlib.import_module(module).__cpu_features__
        except (ImportError, AttributeError):
            continue
        return bool(features.get("AVX512F"))
    return False


def _decode(av: Any, packets: Sequence[Any], encoder: Encoder) -> list[Image]:
    """Decode `packets` with FFmpeg's decoder of `encoder`'s format, to RGB frames."""
    from av.video.reformatter import Interpolation

    context = av.CodecContext.create(encoder.codec, "r")
    context.thread_count = 1
    pictures = [picture for packet in packets for picture in context.decode(packet)]
    pictures.extend(context.decode(None))
    return [
        picture.to_ndarray(format="rgb24", interpolation=Interpolation.BICUBIC)
        for picture in pictures
    ]


def _pad(frame: Image, min_side: int) -> Image:
    """Repeat the last row and column of `frame` up to even sides of at least `min_side`."""
    h, w = frame.shape[:2]
    grow_h = max(h + h % 2, min_side) - h
    grow_w = max(w + w % 2, min_side) - w
    if not grow_h and not grow_w:
        return np.ascontiguousarray(frame)
    return np.pad(frame, ((0, grow_h), (0, grow_w), (0, 0)), mode="edge")


def version_in(encoder: Encoder, stream: bytes) -> str:
    """The version `encoder` wrote into its coded `stream`, or "unknown"."""
    found = re.search(encoder.version_pattern, stream)
    return found.group(1).decode("ascii", "replace") if found else "unknown"


@functools.cache
def facts(encoder: Encoder) -> dict[str, str]:
    """What encodes here: codec, encoder and its version, FFmpeg and PyAV versions."""
    av = load_av()
    assert av is not None and unavailable(encoder) is None, "probe the encoder first"
    stream = b"".join(
        bytes(packet)
        for packet in _encode(av, [np.zeros((16, 16, 3), np.uint8)], encoder, 30, 25, None)
    )
    libavcodec = ".".join(str(part) for part in av.library_versions["libavcodec"])
    return {
        "codec": encoder.codec,
        "encoder": encoder.encoder,
        "encoder_version": version_in(encoder, stream),
        "library": f"FFmpeg {av.ffmpeg_version_info} (libavcodec {libavcodec}) "
        f"via PyAV {av.__version__}",
        "container": CONTAINER,
        "settings": f"crf of the level, preset {PRESET}, pix_fmt {PIXEL_FORMAT}, "
        "swscale bicubic BT.601 limited range, 1 thread"
        + "".join(f", {key}={value}" for key, value in encoder_options(encoder).items()),
    }


@functools.cache
def warn_fallback(name: str, encoder: Encoder, fallback: str) -> None:
    """Warn once per process that `name` runs on `fallback` instead of `encoder`."""
    reason = unavailable(encoder) or "it is unavailable"
    warnings.warn(
        f"{name}: {reason}; using {fallback} instead of {encoder.label} ({encoder.encoder}), "
        f"which is milder at the same rate factor (pip install av)",
        CodecWarning,
        stacklevel=2,
    )
