"""Quality and speed of `video_compression` and `h265_compression` against the ffmpeg CLI.

    PYTHONPATH=. python bench/codecs.py [--size 320] [--repeats 7]

On scikit-image's astronaut photograph (resized to --size, even), per CRF: the PSNR of
the ffmpeg command line's round trip (`-c:v libx264 -crf N -preset medium -pix_fmt
yuv420p`, decoded by ffmpeg), of ours (PyAV), their difference, and of the old stand-in
(the first of AV1 intra / Motion JPEG that this OpenCV offers, at quality 100*(1-crf/51));
then the median milliseconds per image of ours and of the stand-in. The same for libx265
on the `h265_compression` ladder. Each table names the encoder version of ours and of the
command line's (Debian's ffmpeg links x265 3.5, PyAV's FFmpeg x265 4.2: their PSNR
differs by up to 0.12 dB, where x264 gives the same bytes). Columns of the CLI read
"-" without `ffmpeg` on PATH.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable

import cv2
import numpy as np
from skimage import data

from auditor.perturbations import video, video_codecs
from auditor.perturbations.video_codecs import H264, H265, Encoder

LADDERS = {H264: (30, 32, 35, 38, 40), H265: (35, 37, 40, 43, 45)}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def cli(image: np.ndarray, encoder: Encoder, crf: int) -> np.ndarray | None:
    """`image` through the ffmpeg command line and back, or None without ffmpeg."""
    if shutil.which("ffmpeg") is None:
        return None
    h, w = image.shape[:2]
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24"]
    encode = ["ffmpeg", "-v", "error", *raw, "-s", f"{w}x{h}", "-i", "-"]
    encode += ["-c:v", encoder.encoder, "-crf", str(crf), "-preset", "medium"]
    encode += ["-pix_fmt", "yuv420p", "-f", encoder.codec, "-"]
    stream = subprocess.run(encode, input=image.tobytes(), capture_output=True, check=True)
    decode = ["ffmpeg", "-v", "error", "-f", encoder.codec, "-i", "-", *raw, "-"]
    frames = subprocess.run(decode, input=stream.stdout, capture_output=True, check=True)
    return np.frombuffer(frames.stdout, np.uint8).reshape(h, w, 3)


def cli_encoder_version(encoder: Encoder) -> str:
    """The version of `encoder` that the ffmpeg command line links ("-" without ffmpeg)."""
    if shutil.which("ffmpeg") is None:
        return "-"
    encode = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=size=128x128", "-frames:v", "1"]
    encode += ["-c:v", encoder.encoder, "-f", encoder.codec, "-"]
    stream = subprocess.run(encode, capture_output=True, check=True).stdout
    return video_codecs.version_in(encoder, stream)


def stand_in(image: np.ndarray, crf: int) -> np.ndarray:
    """The old `video_compression`: the first stand-in codec of this OpenCV."""
    codec = video.fallback_codec()
    assert codec is not None, "no stand-in codec in this OpenCV"
    out = codec.roundtrip(np.ascontiguousarray(image[:, :, ::-1]), video.crf_to_quality(crf))
    assert out is not None
    return np.ascontiguousarray(out[:, :, ::-1])


def ms(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def table(image: np.ndarray, encoder: Encoder, repeats: int) -> None:
    codec = video.fallback_codec()
    print(f"\n{encoder.label} ({encoder.encoder}); stand-in: {codec.label if codec else '-'}")
    # A gap in PSNR between the two columns can be the encoders' versions, not the settings.
    version = video_codecs.facts(encoder)["encoder_version"]
    print(f"{encoder.encoder} version: ours {version}, ffmpeg CLI {cli_encoder_version(encoder)}")
    print(f"{'crf':>4} {'ffmpeg CLI':>10} {'ours':>7} {'diff':>6} {'stand-in':>9}  (PSNR dB)")
    for crf in LADDERS[encoder]:
        ours = psnr(video_codecs.roundtrip([image], encoder, crf)[0], image)
        theirs_image = cli(image, encoder, crf)
        theirs = psnr(theirs_image, image) if theirs_image is not None else None
        old = psnr(stand_in(image, crf), image)
        shown = (
            f"{theirs:10.3f} {ours:7.3f} {ours - theirs:+6.3f}"
            if theirs
            else (f"{'-':>10} {ours:7.3f} {'-':>6}")
        )
        print(f"{crf:>4} {shown} {old:9.2f}")
    crf = LADDERS[encoder][2]
    new_ms = ms(lambda: video_codecs.roundtrip([image], encoder, crf), repeats)
    old_ms = ms(lambda: stand_in(image, crf), repeats)
    print(f"ms per image at CRF {crf}: ours {new_ms:.1f}, stand-in {old_ms:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=320, help="side of the photograph, px")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    side = args.size + args.size % 2
    image = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    print(f"astronaut {side} x {side}; {video_codecs.facts(H264)['library']}")
    for encoder in (H264, H265):
        table(image, encoder, args.repeats)


if __name__ == "__main__":
    main()
