"""Build the sample face videos: the astronaut's face moving, scaling and re-lit over backgrounds.

Run from the repository root:  python samples/faces_build.py

1. Composites the face of scikit-image's `astronaut.png` (a head-and-shoulders patch
   with a feathered elliptical edge) onto backgrounds cut from other bundled
   photographs, over FRAMES frames of WIDTH x HEIGHT: the face drifts across the frame,
   grows or shrinks, and its light changes (gain, colour cast, a side light).
2. Fakes are the same kind of clip with the face region re-generated as a face-swap
   generator would: the region around the face is rendered at the generator's
   resolution (48 px) through the simulated GAN upsampler of `samples/build.py`
   (`simulate_gan_upsampling`, imported, one kernel tap per clip), scaled back and
   blended in through a feathered ellipse.
3. Writes the clips with the first codec this OpenCV build writes and reads back
   (MPEG-4 part 2 in .mp4, else Motion-JPEG in .avi) to `samples/faces/{real,fake}/`,
   and the true face box of every frame to `samples/faces/boxes.json`.
4. Decodes every clip as an audit does and runs the default face detector on every
   frame; fails unless it finds the face, overlapping the true box, in all of them.

Seeded (`--seed`, default 0): two runs write byte-identical files.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import onnxruntime as ort
import skimage
from numpy.typing import NDArray

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))  # so a plain checkout works without installing `auditor`
from auditor.data.video import FrameSampling, read_clip  # noqa: E402
from auditor.faces import Box, DetectorSettings, crop, load_detector  # noqa: E402

OUT = HERE / "faces"
PHOTOS = Path(skimage.__file__).parent / "data"
WIDTH, HEIGHT = 320, 240
FRAMES = 16  # the audit's default frame sampling scores all of them
FPS = 12.0
CLIPS_PER_CLASS = 6
# The astronaut's face in astronaut.png (forehead to chin, cheek to cheek), by hand.
SOURCE_FACE = Box(177, 75, 100, 100)
PATCH_SCALE = 2.4  # the composited patch: head, hair, a little of the suit
FACE_SIDES = (56.0, 120.0)  # face box side in the frame, pixels
# Backgrounds: (photo, area downscale) from the bundled photographs, none with a face.
BACKGROUNDS = (
    ("coffee.png", 1),
    ("rocket.jpg", 1),
    ("hubble_deep_field.jpg", 1),
    ("ihc.png", 1),
    ("retina.jpg", 2),
    ("gravel.png", 1),
)
GENERATOR_SIZE = 48  # the simulated generator's output side, as the sample fakes' tiles
# Tried in this order. MPEG-4 part 2 first: its inter-frame coding keeps the set near
# 0.8 MB, where Motion-JPEG at FFmpeg's default quality took 2.3 MB for 12 frames.
CODECS = ((".mp4", "mp4v"), (".avi", "MJPG"))
MIN_IOU = 0.5  # a detection must overlap the true face box this much to count

Image = NDArray[np.uint8]


@dataclass(frozen=True)
class Clip:
    """One clip's frames and the true face box of each frame."""

    key: str
    frames: list[Image]
    boxes: list[Box]


def load_sample_builder() -> ModuleType:
    """Import `samples/build.py` (photos and the GAN upsampler) without a name clash."""
    spec = importlib.util.spec_from_file_location("samples_build", HERE / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- frames


def portrait(builder: ModuleType) -> tuple[Image, NDArray[np.float32], Box]:
    """The astronaut patch (RGB), its feathered alpha and the face box inside it."""
    photo = builder.load_photo("astronaut.png", 1)
    side = int(SOURCE_FACE.w * PATCH_SCALE)
    cx, cy = SOURCE_FACE.x + SOURCE_FACE.w / 2, SOURCE_FACE.y + SOURCE_FACE.h * 0.6
    x0, y0 = int(cx - side / 2), int(cy - side / 2)
    patch = photo[y0 : y0 + side, x0 : x0 + side].copy()
    alpha = np.zeros((side, side), np.float32)
    centre = (side // 2, side // 2)
    cv2.ellipse(alpha, centre, (int(side * 0.36), int(side * 0.46)), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), side * 0.05)
    face = Box(SOURCE_FACE.x - x0, SOURCE_FACE.y - y0, SOURCE_FACE.w, SOURCE_FACE.h)
    return patch, alpha, face


def background(builder: ModuleType, name: str, factor: int, rng: np.random.Generator) -> Image:
    """A WIDTH x HEIGHT view of a bundled photograph (a random region, area-resized)."""
    photo = builder.load_photo(name, factor)
    h, w = photo.shape[:2]
    scale = rng.uniform(1.0, 1.4) * max(WIDTH / w, HEIGHT / h)
    view_w, view_h = int(WIDTH / scale), int(HEIGHT / scale)
    x0, y0 = rng.integers(0, w - view_w + 1), rng.integers(0, h - view_h + 1)
    view = photo[y0 : y0 + view_h, x0 : x0 + view_w]
    return cv2.resize(view, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


def relight(patch: Image, t: float, light: NDArray[np.float64]) -> Image:
    """The patch under changing light: gain, colour cast and a side light, at time t."""
    gain = light[0] + (light[1] - light[0]) * t
    cast = 1 + light[2:5] * (2 * t - 1)  # per-channel, drifting over the clip
    side = patch.shape[1]
    ramp = 1 + light[5] * np.linspace(-1, 1, side) * np.cos(np.pi * t)
    out = patch.astype(np.float64) * gain * cast[None, None, :] * ramp[None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def face_path(rng: np.random.Generator) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Start and end (face side, centre x, centre y), the face box inside the frame."""
    ends = []
    for _ in range(2):
        side = rng.uniform(*FACE_SIDES)
        cx = rng.uniform(side / 2 + 4, WIDTH - side / 2 - 4)
        cy = rng.uniform(side / 2 + 4, HEIGHT - side / 2 - 4)
        ends.append(np.array([side, cx, cy]))
    return ends[0], ends[1]


def composite(
    canvas: Image, patch: Image, alpha: NDArray[np.float32], face: Box, where: NDArray[np.float64]
) -> tuple[Image, Box]:
    """Paste `patch` so that its face box has side where[0] and centre where[1:]."""
    scale = where[0] / face.w
    fx, fy = face.x + face.w / 2, face.y + face.h / 2
    # One affine map (scale about the face centre, then move it to where[1:]), so the
    # patch is sampled at sub-pixel positions: a smooth camera, not 1 px jumps.
    matrix = np.array([[scale, 0, where[1] - fx * scale], [0, scale, where[2] - fy * scale]])
    size = (WIDTH, HEIGHT)
    warped = cv2.warpAffine(patch, matrix, size, flags=cv2.INTER_LINEAR)
    weight = cv2.warpAffine(alpha, matrix, size, flags=cv2.INTER_LINEAR)[:, :, None]
    out = weight * warped.astype(np.float32) + (1 - weight) * canvas.astype(np.float32)
    box = Box(where[1] - where[0] / 2, where[2] - where[0] / 2, where[0], where[0])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), box


def swap_face(builder: ModuleType, frame: Image, box: Box, tap: float) -> Image:
    """Re-generate the face region at GENERATOR_SIZE and blend it back (a face swap)."""
    region, where = crop(frame, box, "ffpp")  # the region a face-swap tool re-renders
    x, y, w, h = (int(v) for v in where.as_list())
    small = cv2.resize(region, (GENERATOR_SIZE, GENERATOR_SIZE), interpolation=cv2.INTER_AREA)
    generated = builder.simulate_gan_upsampling(small, tap)
    back = cv2.resize(generated, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    mask = np.zeros((h, w), np.float32)
    cx, cy = box.x + box.w / 2 - x, box.y + box.h / 2 - y
    axes = (int(box.w * 0.55), int(box.h * 0.65))
    cv2.ellipse(mask, (int(cx), int(cy)), axes, 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(box.w, 8) * 0.06)[:, :, None]
    out = frame.copy()
    blended = mask * back + (1 - mask) * region.astype(np.float32)
    out[y : y + h, x : x + w] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def make_clip(builder: ModuleType, index: int, label: str, rng: np.random.Generator) -> Clip:
    """One clip: a background, the face's path and light, and (fakes) the swap."""
    patch, alpha, face = portrait(builder)
    name, factor = BACKGROUNDS[index % len(BACKGROUNDS)]
    canvas = background(builder, name, factor, rng)
    start, end = face_path(rng)
    light = np.concatenate([rng.uniform(0.65, 1.0, 1), rng.uniform(1.0, 1.3, 1),
                            rng.uniform(-0.08, 0.08, 3), rng.uniform(0.0, 0.25, 1)])  # fmt: skip
    tap = rng.uniform(*builder.TAP_RANGE)  # one generator per clip
    frames, boxes = [], []
    for step in range(FRAMES):
        t = step / (FRAMES - 1)
        frame, box = composite(
            canvas, relight(patch, t, light), alpha, face, start + (end - start) * t
        )
        if label == "fake":
            frame = swap_face(builder, frame, box, tap)
        frames.append(frame)
        boxes.append(box)
    return Clip(f"{label}/{Path(name).stem}_{index}", frames, boxes)


# ---------------------------------------------------------------- files


def pick_codec() -> tuple[str, str]:
    """The first (suffix, fourcc) this OpenCV build writes and reads back."""
    probe = [np.full((HEIGHT, WIDTH, 3), v, np.uint8) for v in (60, 120)]
    for suffix, fourcc in CODECS:
        path = OUT / f".probe{suffix}"
        try:
            write_clip(path, probe, fourcc)
            if path.is_file() and len(read_clip(path, FrameSampling(frames=2)).frames) == 2:
                return suffix, fourcc
        except Exception:  # noqa: BLE001  (any failure: try the next codec)
            pass
        finally:
            path.unlink(missing_ok=True)
    raise SystemExit("this OpenCV build writes no video codec it can read back")


def write_clip(path: Path, frames: list[Image], fourcc: str) -> None:
    """Write RGB frames as a video at FPS."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), FPS, (WIDTH, HEIGHT))
    if fourcc == "MJPG":
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 75)
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()


def write_all(clips: list[Clip], suffix: str, fourcc: str) -> dict[str, Path]:
    """Replace the sample clips and boxes.json; return {key: path}."""
    for label in ("real", "fake"):
        folder = OUT / label
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
    paths = {}
    for clip in clips:
        paths[clip.key] = OUT / f"{clip.key}{suffix}"
        write_clip(paths[clip.key], clip.frames, fourcc)
    # One clip per line: readable, and a diff shows which clip moved.
    lines = [
        f'  "{c.key}{suffix}": ' + json.dumps([[round(v, 2) for v in b.as_list()] for b in c.boxes])
        for c in clips
    ]
    header = '{\n "box": "x, y, w, h in pixels, one per frame",\n "clips": {\n'
    (OUT / "boxes.json").write_text(header + ",\n".join(lines) + "\n }\n}\n", encoding="utf-8")
    return paths


# ---------------------------------------------------------------- checks


def verify(clips: list[Clip], paths: dict[str, Path]) -> None:
    """Decode each clip as an audit does; the default detector must find every face."""
    detector = load_detector()
    short = load_detector(DetectorSettings(detector="blazeface-short"))
    short_found = 0
    model = ort.InferenceSession(
        str(HERE / "deepfake" / "detector_a.onnx"), providers=["CPUExecutionProvider"]
    )
    found = total = 0
    for clip in clips:
        decoded = read_clip(paths[clip.key], FrameSampling(frames=FRAMES)).frames
        hits, ious, crops = 0, [], []
        for frame, truth in zip(decoded, clip.boxes):
            face = detector.detect(frame)
            iou = face.box.iou(truth) if face else 0.0
            other = short.detect(frame)
            short_found += bool(other and other.box.iou(truth) >= MIN_IOU)
            hits += iou >= MIN_IOU
            ious.append(iou)
            # What an ffpp front end would feed the sample detector (true box, 48 px).
            pixels, _ = crop(frame, truth, "ffpp")
            crops.append(cv2.resize(pixels, (48, 48), interpolation=cv2.INTER_LINEAR))
        batch = np.stack(crops).astype(np.float32).transpose(0, 3, 1, 2) / 255
        p_fake = float(model.run(None, {"input": batch})[0][:, 1].mean())
        found, total = found + hits, total + len(decoded)
        size = paths[clip.key].stat().st_size
        print(f"{clip.key:22s} {len(decoded)} frames {size:7d} bytes  face found {hits}/"
              f"{len(decoded)} (IoU >= {MIN_IOU}, mean {np.mean(ious):.2f})  "
              f"detector_a on ffpp crops: p_fake {p_fake:.2f}")  # fmt: skip
    print(f"{detector.settings.detector}: face found in {found}/{total} clean frames "
          f"(blazeface-short: {short_found}/{total})")  # fmt: skip
    if found < total:
        raise SystemExit("FAILED: the default detector missed the face in a clean frame")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    builder = load_sample_builder()
    rng = np.random.default_rng(args.seed)
    OUT.mkdir(exist_ok=True)
    suffix, fourcc = pick_codec()
    clips = [
        make_clip(builder, index, label, rng)
        for index in range(CLIPS_PER_CLASS)
        for label in ("real", "fake")
    ]
    paths = write_all(clips, suffix, fourcc)
    total = sum(p.stat().st_size for p in paths.values())
    print(f"codec {fourcc} in {suffix}, {FRAMES} frames of {WIDTH}x{HEIGHT} at {FPS:g} fps, "
          f"{len(paths)} clips, {total} bytes")  # fmt: skip
    verify(clips, paths)


if __name__ == "__main__":
    main()
