"""Build the sample videos: short pan/zoom clips over the bundled photographs.

Run from the repository root:  python samples/video/build.py

Each clip is FRAMES frames of SIZE x SIZE pixels, a camera slowly panning and zooming
over a region of one of the photographs that `samples/build.py` uses. Real clips are
those frames as they are; fake clips pass every frame through the same simulated GAN
upsampler as the sample fake images (`simulate_gan_upsampling` in `samples/build.py`,
AutoGAN-style, after Zhang, Karaman & Chang 2019), so the bundled detectors apply.
The clips are written with the first codec this OpenCV build both writes and reads
(MPEG-4 part 2 in .mp4, else Motion-JPEG in .avi), then decoded the way an audit
decodes them and scored with `detector_a.onnx`; the script fails if the detector no
longer tells most real clips from fake ones. Seeded: two runs write the same clips.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))  # so a plain checkout works without installing `auditor`
from auditor.data.video import FrameSampling, read_clip  # noqa: E402
from auditor.engine.clips import aggregate  # noqa: E402

SIZE = 48  # the sample detectors' input size: frames need no resize
FRAMES = 16
FPS = 12.0
CLIPS_PER_CLASS = 6
# (photo, area downscale factor): the same photographs as the sample images.
PHOTOS = (
    ("astronaut.png", 2),
    ("chelsea.png", 2),
    ("coffee.png", 2),
    ("ihc.png", 2),
    ("rocket.jpg", 4),
    ("retina.jpg", 4),
)
CODECS = ((".mp4", "mp4v"), (".avi", "MJPG"))  # tried in this order
MIN_CORRECT = 5  # of CLIPS_PER_CLASS, per class, for detector_a

Image = NDArray[np.uint8]


def load_sample_builder() -> ModuleType:
    """Import `samples/build.py` (photos and the GAN upsampler) without a name clash."""
    spec = importlib.util.spec_from_file_location("samples_build", REPO / "samples" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def camera_path(photo: Image, rng: np.random.Generator) -> list[Image]:
    """FRAMES views of `photo`: a window that pans a few pixels and zooms in a little."""
    h, w = photo.shape[:2]
    start_side, end_side = SIZE * rng.uniform(1.15, 1.35), SIZE * rng.uniform(1.0, 1.1)
    margin = int(np.ceil(start_side)) + 8
    y0, x0 = rng.integers(0, h - margin), rng.integers(0, w - margin)
    dy, dx = rng.uniform(-0.6, 0.6, size=2)  # pixels per frame
    frames = []
    for t in range(FRAMES):
        side = start_side + (end_side - start_side) * t / (FRAMES - 1)
        top, left = y0 + 4 + dy * t, x0 + 4 + dx * t
        # An affine warp samples the window at sub-pixel positions: a smooth camera.
        scale = SIZE / side
        matrix = np.array([[scale, 0, -left * scale], [0, scale, -top * scale]], np.float64)
        frames.append(
            cv2.warpAffine(photo, matrix, (SIZE, SIZE), flags=cv2.INTER_AREA | cv2.INTER_LINEAR)
        )
    return frames


def textured(frames: list[Image]) -> bool:
    grey = np.mean(frames[0], axis=2)
    return bool(grey.std() >= 12 and 25 <= grey.mean() <= 230)


def make_clips(builder: ModuleType, rng: np.random.Generator) -> dict[str, list[Image]]:
    """Return {"real/NAME": frames, "fake/NAME": frames}, one photo per real/fake pair."""
    clips: dict[str, list[Image]] = {}
    for index in range(CLIPS_PER_CLASS):
        name, factor = PHOTOS[index % len(PHOTOS)]
        photo = builder.load_photo(name, factor)
        stem = Path(name).stem
        for label in ("real", "fake"):
            frames = camera_path(photo, rng)
            while not textured(frames):
                frames = camera_path(photo, rng)
            if label == "fake":
                tap = rng.uniform(*builder.TAP_RANGE)  # one generator per clip
                frames = [builder.simulate_gan_upsampling(f, tap) for f in frames]
            clips[f"{label}/{stem}_{index}"] = frames
    return clips


def pick_codec() -> tuple[str, str]:
    """The first (suffix, fourcc) this OpenCV build writes and reads back."""
    probe = [np.full((SIZE, SIZE, 3), v, np.uint8) for v in (60, 120)]
    for suffix, fourcc in CODECS:
        path = HERE / f".probe{suffix}"
        try:
            write_clip(path, probe, fourcc)
            capture = cv2.VideoCapture(str(path))
            count = 0
            while capture.grab():
                count += 1
            capture.release()
            if count == len(probe):
                return suffix, fourcc
        finally:
            path.unlink(missing_ok=True)
    raise SystemExit("this OpenCV build writes no video codec it can read back")


def write_clip(path: Path, frames: list[Image], fourcc: str) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), FPS, (SIZE, SIZE))
    if not writer.isOpened():
        writer.release()
        return
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()


def verify(paths: dict[str, Path]) -> None:
    """Decode every clip as an audit does and check that detector_a separates the classes."""
    session = ort.InferenceSession(
        str(REPO / "samples" / "deepfake" / "detector_a.onnx"), providers=["CPUExecutionProvider"]
    )
    correct = {"real": 0, "fake": 0}
    for key, path in sorted(paths.items()):
        clip = read_clip(path, FrameSampling(frames=FRAMES))
        batch = np.stack(clip.frames).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        probs = session.run(None, {"input": batch})[0].astype(np.float64)
        p_fake = float(aggregate(probs, "mean", positive=1)[1])
        label = key.split("/")[0]
        correct[label] += int((p_fake >= 0.5) == (label == "fake"))
        size = path.stat().st_size
        print(f"{key:24s} {len(clip.frames):2d} frames {size:6d} bytes  p_fake {p_fake:.3f}")
    print(
        f"detector_a, mean of frames: {correct['real']}/{CLIPS_PER_CLASS} real and "
        f"{correct['fake']}/{CLIPS_PER_CLASS} fake clips right"
    )
    if min(correct.values()) < MIN_CORRECT:
        raise SystemExit(f"FAILED: fewer than {MIN_CORRECT} clips of a class right")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    builder = load_sample_builder()
    suffix, fourcc = pick_codec()
    clips = make_clips(builder, np.random.default_rng(args.seed))
    paths = {}
    for label in ("real", "fake"):
        folder = HERE / "data" / label
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
    for key, frames in clips.items():
        paths[key] = HERE / "data" / f"{key}{suffix}"
        write_clip(paths[key], frames, fourcc)
    print(f"codec {fourcc} in {suffix}, {FRAMES} frames of {SIZE}x{SIZE} at {FPS:g} fps")
    verify(paths)


if __name__ == "__main__":
    main()
