"""Video audits at speed: 1080p clips behind a face crop against a plain loop, and the
frame rate of a video audit next to the image rate of an image audit.

Run from the repository root:  python bench/video.py [--part hd|small|both] [--repeats 3]

**hd** (1080p, the deployed case): the bench writes `--clips` clips of 1920 x 1080 (the
astronaut face of scikit-image moving over a photograph, MPEG-4 part 2) and audits them
with `detector_a.onnx` behind `--face-crop ffpp` under four perturbations (noise, JPEG,
blur and H.264 `video_compression`, five levels each) at `--frames` frames per clip.
The baseline is the plain loop a user would write with the same parts: decode each
clip's sampled frames once, then for the clean frames and under every draw perturb,
detect the face, crop and call the model once per frame. Both compute the same frames;
the bench checks that they found the same faces per level. It prints the median frames
per second of each (alternating runs, the ratio measured in this process); the audit's
fixed costs (the determinism probe, which re-scores every level once on one clip, and
the thumbnails) and its rate without them; the plain loop's profile: where the time
goes (decode, perturb, detect, crop, model), and its perturbing per perturbation; and both
CPU times, with the most any scheduling of the loop's work could gain on this machine's
cores.

**small** (the sample clips): a video audit's frames per second against an image
audit's images per second on the 48 px samples, both with `detector_a.onnx` and the
same perturbations; a unit is one image or one frame through the model, clean or
perturbed. The ratio is the figure to quote, not the absolute rates.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # so a plain checkout works without installing `auditor`
from auditor.config import AuditConfig, FaceOptions, ModelOptions, VideoOptions  # noqa: E402
from auditor.data.video import FrameSampling, read_clip  # noqa: E402
from auditor.engine.clips import clip_rate, perturb_clip  # noqa: E402
from auditor.engine.facecrop import FaceFront  # noqa: E402
from auditor.engine.plan import build_plan  # noqa: E402
from auditor.engine.run import run_audit  # noqa: E402
from auditor.faces import crop  # noqa: E402
from auditor.model.adapter import load_model  # noqa: E402
from auditor.seeds import derive_rng  # noqa: E402

MODEL = REPO / "samples" / "deepfake" / "detector_a.onnx"
IMAGES = REPO / "samples" / "deepfake" / "data"
VIDEOS = REPO / "samples" / "video" / "data"
PERTURBATIONS = ("gaussian_noise", "gaussian_blur", "jpeg_compression", "brightness")
HD_PERTURBATIONS = ("gaussian_noise", "jpeg_compression", "gaussian_blur", "video_compression")
HD = (1920, 1080)
STAGES = ("decode", "perturb", "detect", "crop", "model")
FIXED = ("run_probe", "_show_thumbnails", "render_moved")  # in auditor.engine.run


def timed(config: AuditConfig) -> tuple[float, int]:
    """Run one audit; return (seconds, units: images or frames through the model)."""
    start = time.perf_counter()
    results = run_audit(config)
    seconds = time.perf_counter() - start
    per_sample = 1 + len(results.results) * config.repeats
    scored = results.data.get("n_frames") or results.data["n_samples"]
    return seconds, scored * per_sample


def write_hd_clips(root: Path, count: int, frames: int, seed: int = 0) -> list[Path]:
    """`count` 1080p clips of `frames` frames: the astronaut's face moving over a photograph."""
    import cv2
    import numpy as np
    from skimage import data as skimage_data

    rng = np.random.default_rng(seed)
    # A square 2.4 times her face box (177, 75, 100, 100), at 600 px: a face of 250 px,
    # about what a 1080p interview shot holds.
    side = 600
    photo = np.ascontiguousarray(skimage_data.astronaut()[5:245, 107:347, ::-1])
    face = cv2.resize(photo, (side, side), interpolation=cv2.INTER_CUBIC)
    backgrounds = [skimage_data.coffee(), skimage_data.rocket(), skimage_data.chelsea()]
    paths = []
    for n in range(count):
        label = "real" if n % 2 == 0 else "fake"
        path = root / label / f"hd_{n}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        back = cv2.resize(np.ascontiguousarray(backgrounds[n % 3][:, :, ::-1]), HD)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, HD)
        start, end = rng.integers(0, [HD[0] - side, HD[1] - side], size=(2, 2))
        for f in range(frames):
            x, y = (start + (end - start) * f / max(frames - 1, 1)).astype(int)
            frame = back.copy()
            frame[y : y + side, x : x + side] = face
            writer.write(frame)
        writer.release()
        paths.append(path)
    return paths


def hd_config(root: Path, frames: int) -> AuditConfig:
    return AuditConfig(
        model_path=MODEL,
        data_path=root,
        perturbations=HD_PERTURBATIONS,
        face=FaceOptions(crop="ffpp"),
        video=VideoOptions(frames=frames),
    )


def plain_loop(config: AuditConfig, clips: list[Path]) -> tuple[float, int, dict, list[int]]:
    """The baseline: (seconds, frames through the model, seconds per stage, faces per draw)."""
    model = load_model(MODEL, ModelOptions())
    front = FaceFront(config.face)
    draws = build_plan(config).draws
    sampling = FrameSampling(config.video.frames, None)
    profile = dict.fromkeys(STAGES, 0.0)
    found = [0] * len(draws)
    units = 0

    def score(frame):  # detect, crop, one model call; None: no face
        nonlocal units
        t0 = time.perf_counter()
        face = front.detector().detect(frame)
        t1 = time.perf_counter()
        profile["detect"] += t1 - t0
        if face is None:
            return None
        pixels, _ = crop(frame, face.box, front.preset)
        t2 = time.perf_counter()
        profile["crop"] += t2 - t1
        probs = model.infer(model.to_tensor([pixels]))
        profile["model"] += time.perf_counter() - t2
        units += 1
        return probs

    start = time.perf_counter()
    for path in clips:
        t0 = time.perf_counter()
        clip = read_clip(path, sampling)
        profile["decode"] += time.perf_counter() - t0
        kept = [i for i, frame in enumerate(clip.frames) if score(frame) is not None]
        key = path.relative_to(config.data_path).as_posix()
        for d, draw in enumerate(draws):
            t0 = time.perf_counter()
            rng_for = functools.partial(
                derive_rng, config.seed, key, draw.perturbation, draw.level, draw.repeat
            )
            frames = perturb_clip(
                draw.perturbation, clip.frames, draw.params, rng_for, True, clip_rate(clip),
                clip.indices,
            )  # fmt: skip
            spent = time.perf_counter() - t0
            profile["perturb"] += spent
            profile[draw.perturbation] = profile.get(draw.perturbation, 0.0) + spent
            found[d] += sum(score(frames[i]) is not None for i in kept)
    return time.perf_counter() - start, units, profile, found


@contextlib.contextmanager
def fixed_costs() -> Iterator[dict[str, float]]:
    """Seconds the audit spends on what does not grow with the clips: the determinism
    probe (every level re-scored once, on one clip each) and the report's thumbnails."""
    from auditor.engine import run

    spent = dict.fromkeys(FIXED, 0.0)
    originals = {name: getattr(run, name) for name in FIXED}

    def clocked(name: str, function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start

        return call

    for name, function in originals.items():
        setattr(run, name, clocked(name, function))
    try:
        yield spent
    finally:
        for name, function in originals.items():
            setattr(run, name, function)


def cpu_seconds() -> float:
    """This process's CPU time so far, every thread, user and system."""
    times = os.times()
    return times.user + times.system


def hd(repeats: int, count: int, frames: int) -> None:
    """The 1080p face-crop audit against the plain loop (see the module's docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clips = write_hd_clips(root, count, frames)
        config = hd_config(root, frames)
        rates: dict[str, list[float]] = {"audit": [], "loop": [], "pipeline": []}
        cpu: dict[str, list[float]] = {"audit": [], "loop": []}
        profiles, fixed = [], []
        for _ in range(repeats):
            start, cpu_start = time.perf_counter(), cpu_seconds()
            with fixed_costs() as spent:
                results = run_audit(config)
            audit_seconds = time.perf_counter() - start
            cpu["audit"].append(cpu_seconds() - cpu_start)
            scored = results.data["n_frames"]
            audit_units = scored * (1 + len(results.results) * config.repeats)
            rates["audit"].append(audit_units / audit_seconds)
            rates["pipeline"].append(audit_units / (audit_seconds - sum(spent.values())))
            fixed.append(spent)
            cpu_start = cpu_seconds()
            seconds, units, profile, found = plain_loop(config, clips)
            cpu["loop"].append(cpu_seconds() - cpu_start)
            rates["loop"].append(units / seconds)
            profiles.append(profile)
        # The same work: the loop's faces found per level equal the audit's face-found rate.
        per_level = [f / scored for f in found]
        audit_rates = [lv.face_found_rate for lv in results.results]
        assert all(abs(a - b) < 1e-6 for a, b in zip(per_level, audit_rates)), (
            per_level,
            audit_rates,
        )
    audit, loop, pipeline = (statistics.median(rates[k]) for k in ("audit", "loop", "pipeline"))
    print(f"1080p, {count} clips x {frames} frames, {len(results.results)} levels + clean:")
    print(f"  audit (--face-crop ffpp): {audit_units} frame crops, median {audit:.1f} frames/s")
    print(f"  plain loop:               {units} frame crops, median {loop:.1f} frames/s")
    print(f"  audit over loop: {audit / loop:.2f}x (median of {repeats} alternating runs)")
    costs = ", ".join(f"{k} {statistics.median(f[k] for f in fixed):.1f} s" for k in FIXED)
    print(
        f"  the audit's fixed costs (median): {costs}; without them {pipeline:.1f} frames/s, "
        f"{pipeline / loop:.2f}x the loop"
    )
    total = {k: statistics.median(p[k] for p in profiles) for k in STAGES}
    whole = sum(total.values())
    shares = ", ".join(f"{k} {total[k]:.1f} s ({total[k] / whole:.0%})" for k in STAGES)
    print(f"  the plain loop's time by stage (median): {shares}")
    perturbing = {k: statistics.median(p[k] for p in profiles) for k in HD_PERTURBATIONS}
    split = ", ".join(f"{k} {v / total['perturb']:.0%}" for k, v in perturbing.items())
    print(f"  its perturbing by perturbation: {split}")
    import cv2

    cores = os.cpu_count() or 1
    loop_cpu, audit_cpu = statistics.median(cpu["loop"]), statistics.median(cpu["audit"])
    busy = loop_cpu / (units / loop)
    print(
        f"  CPU time (median): audit {audit_cpu:.1f} s, loop {loop_cpu:.1f} s; the loop keeps "
        f"{busy:.2f} of {cores} cores busy (its OpenCV calls run on {cv2.getNumThreads()} "
        f"threads), so no scheduling of the same work can beat it by more than "
        f"{cores / busy:.2f}x here"
    )


def small(repeats: int, aggregate: str) -> None:
    """The sample clips' frame rate against the sample images' image rate."""
    common = {"model_path": MODEL, "perturbations": PERTURBATIONS}
    image = AuditConfig(data_path=IMAGES, limit=192, **common)  # type: ignore[arg-type]
    clip = AuditConfig(data_path=VIDEOS, video=VideoOptions(aggregate=aggregate), **common)  # type: ignore[arg-type]
    rates: dict[str, list[float]] = {"image": [], "video": []}
    units = {}
    for _ in range(repeats):
        for name, config in (("image", image), ("video", clip)):
            seconds, units[name] = timed(config)
            rates[name].append(units[name] / seconds)
    img, vid = (statistics.median(rates[k]) for k in ("image", "video"))
    print(f"image audit: {units['image']} images through the model, median {img:,.0f} images/s")
    print(f"video audit: {units['video']} frames through the model, median {vid:,.0f} frames/s")
    print(f"frames/s over images/s: {vid / img:.2f} (median of {repeats} alternating runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("hd", "small", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--aggregate", default="mean")
    parser.add_argument("--clips", type=int, default=4, help="hd: 1080p clips to write")
    parser.add_argument("--frames", type=int, default=8, help="hd: frames sampled per clip")
    args = parser.parse_args()
    if args.part in ("hd", "both"):
        hd(args.repeats, args.clips, args.frames)
    if args.part in ("small", "both"):
        small(args.repeats, args.aggregate)


if __name__ == "__main__":
    main()
