"""H.264 and H.265 through PyAV: the same quality as the `ffmpeg` command line at every
CRF, edge padding of sizes yuv420p cannot take, the same bytes on every run, a clip coded
as one stream, and the stand-in (with its warning line) where PyAV cannot be imported."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from auditor.data.video import FrameSampling, read_clip
from auditor.engine import clips
from auditor.perturbations import apply, video_codecs
from auditor.perturbations.video_codecs import H264, H265, roundtrip

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CLIP = ROOT / "samples" / "video" / "data" / "fake" / "chelsea_1.mp4"
DEEPERFORENSICS_CRFS = (30, 32, 35, 38, 40)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float(10 * np.log10(255**2 / mse))


def astronaut(size: int = 320) -> np.ndarray:
    data = pytest.importorskip("skimage.data", reason="the photograph is scikit-image's")
    return cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)


def ffmpeg_roundtrip(image: np.ndarray, crf: int) -> np.ndarray:
    """`image` through the ffmpeg command line's libx264 at `crf`, decoded by ffmpeg."""
    h, w = image.shape[:2]
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24"]
    encode = ["ffmpeg", "-v", "error", *raw, "-s", f"{w}x{h}", "-i", "-", "-c:v", "libx264"]
    encode += ["-crf", str(crf), "-preset", "medium", "-pix_fmt", "yuv420p", "-f", "h264", "-"]
    stream = subprocess.run(encode, input=image.tobytes(), capture_output=True, check=True)
    decode = ["ffmpeg", "-v", "error", "-f", "h264", "-i", "-", *raw, "-"]
    frames = subprocess.run(decode, input=stream.stdout, capture_output=True, check=True)
    return np.frombuffer(frames.stdout, np.uint8).reshape(h, w, 3)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg command line is missing")
@pytest.mark.parametrize("crf", DEEPERFORENSICS_CRFS)
def test_video_compression_matches_the_ffmpeg_command_line(crf):
    image = astronaut()
    theirs = psnr(ffmpeg_roundtrip(image, crf), image)
    ours = psnr(apply("video_compression", image, {"crf": crf}, np.random.default_rng(0)), image)
    assert abs(ours - theirs) < 0.1, (crf, ours, theirs)


def test_the_rungs_are_as_strong_as_h264_at_their_crf():
    """Each rung loses more than the last, and CRF 30 is no milder than libx264's CRF 30."""
    image = astronaut()
    levels = [apply("video_compression", image, lv, np.random.default_rng(0)) for lv in range(1, 6)]
    quality = [psnr(out, image) for out in levels]
    assert all(b < a for a, b in zip(quality, quality[1:])), quality
    assert quality[0] < 28.0  # libx264 gives 27.5 dB here; the old AV1 stand-in gave 29.7


@pytest.mark.parametrize("encoder", [H264, H265], ids=["h264", "h265"])
@pytest.mark.parametrize("size", [(9, 8), (37, 51), (64, 47)])
def test_odd_and_small_sizes_are_edge_padded_then_cropped_back(encoder, size):
    image = astronaut()[: size[0], : size[1]].copy()
    out = roundtrip([image], encoder, 30)[0]
    assert out.shape == image.shape and out.dtype == np.uint8
    # the padded copy, encoded and cropped, is what came back
    padded = video_codecs._pad(image, encoder.min_side)
    assert padded.shape[0] % 2 == padded.shape[1] % 2 == 0
    assert min(padded.shape[:2]) >= encoder.min_side
    assert np.array_equal(padded[: size[0], : size[1]], image)
    assert np.array_equal(roundtrip([padded], encoder, 30)[0][: size[0], : size[1]], out)


@pytest.mark.parametrize("encoder", [H264, H265], ids=["h264", "h265"])
def test_the_same_clip_gives_the_same_bytes_every_time(encoder):
    """x264's AVX-512 code and x265 on one-CTU pictures did not; 48 px clips showed it."""
    clip = read_clip(SAMPLE_CLIP, FrameSampling(frames=4))
    runs = {
        np.stack(roundtrip(clip.frames, encoder, crf, clip.native_fps, clip.indices)).tobytes()
        for crf in (30, 40)
        for _ in range(12)
    }
    assert len(runs) == 2


def test_a_clip_is_one_stream_with_inter_frame_coding():
    base = astronaut(96)
    frames = [np.roll(base, 2 * i, axis=1) for i in range(6)]
    together = clips.encode_clip(frames, 35, 25.0)
    alone = [roundtrip([frame], H264, 35)[0] for frame in frames]
    assert not any(np.array_equal(a, b) for a, b in zip(together[1:], alone[1:]))
    # of about the same quality, frame by frame
    assert all(abs(psnr(a, f) - psnr(b, f)) < 3 for a, b, f in zip(together, alone, frames))


def test_the_time_between_sampled_frames_reaches_the_encoder():
    clip = read_clip(SAMPLE_CLIP, FrameSampling(frames=4))
    assert clip.indices == (2, 6, 10, 14) and clip.native_fps == 12
    at_their_times = roundtrip(clip.frames, H264, 38, clip.native_fps, clip.indices)
    back_to_back = roundtrip(clip.frames, H264, 38, clip.native_fps)
    assert not all(np.array_equal(a, b) for a, b in zip(at_their_times, back_to_back))


def test_without_pyav_the_cli_warns_once_and_names_the_stand_in():
    """A subprocess where `import av` fails: the listing names the stand-in codec."""
    script = (
        "import sys; sys.modules['av'] = None\n"  # None in sys.modules: ImportError
        "from auditor.cli import main\n"
        "main(['perturbations', '--suite', 'deepfake'])\n"
    )
    env = {**os.environ, "COLUMNS": "80"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line]
    assert warnings == [
        "auditor: warning: video_compression: PyAV (the av package) cannot be imported; "
        f"using {stand_in_label()} instead of H.264 (libx264), which is milder at the same "
        "rate factor (pip install av)"
    ]
    block = result.stdout.split("video_compression", 1)[1]
    listing = " ".join(block.split())  # the description wraps to the terminal's width
    assert listing.split("h265_compression")[0].count("[codec: ") == 1
    assert "[codec: av1, avif]" in listing or "[codec: mjpeg, avi]" in listing


def stand_in_label() -> str:
    from auditor.perturbations import video

    codec = video.fallback_codec()
    assert codec is not None
    return codec.label
