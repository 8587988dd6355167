"""Frames per second of a video audit next to images per second of an image audit.

Run from the repository root:  python bench/video.py [--repeats 3]

Both audits use the sample detector `detector_a.onnx` (48 x 48 input) and the same
perturbations: the image audit on 192 of the sample images (48 x 48 PNGs), the video
audit on the 12 sample clips (16 frames of 48 x 48 each: 192 frames). A unit is one
image or one frame through the model, clean or perturbed, so the two rates compare
the cost of a frame with the cost of an image. The audits alternate, each `--repeats`
times, and the script prints the median of each and their ratio measured in the same
process: the ratio is the figure to quote, not the absolute rates.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # so a plain checkout works without installing `auditor`
from auditor.config import AuditConfig, VideoOptions  # noqa: E402
from auditor.engine.run import run_audit  # noqa: E402

MODEL = REPO / "samples" / "deepfake" / "detector_a.onnx"
IMAGES = REPO / "samples" / "deepfake" / "data"
VIDEOS = REPO / "samples" / "video" / "data"
PERTURBATIONS = ("gaussian_noise", "gaussian_blur", "jpeg_compression", "brightness")


def timed(config: AuditConfig) -> tuple[float, int]:
    """Run one audit; return (seconds, units: images or frames through the model)."""
    start = time.perf_counter()
    results = run_audit(config)
    seconds = time.perf_counter() - start
    per_sample = 1 + len(results.results) * config.repeats
    scored = results.data.get("n_frames") or results.data["n_samples"]
    return seconds, scored * per_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--aggregate", default="mean")
    args = parser.parse_args()
    common = {"model_path": MODEL, "perturbations": PERTURBATIONS}
    image = AuditConfig(data_path=IMAGES, limit=192, **common)  # type: ignore[arg-type]
    clip = AuditConfig(data_path=VIDEOS, video=VideoOptions(aggregate=args.aggregate), **common)  # type: ignore[arg-type]
    rates: dict[str, list[float]] = {"image": [], "video": []}
    units = {}
    for _ in range(args.repeats):
        for name, config in (("image", image), ("video", clip)):
            seconds, units[name] = timed(config)
            rates[name].append(units[name] / seconds)
    img, vid = (statistics.median(rates[k]) for k in ("image", "video"))
    print(f"image audit: {units['image']} images through the model, median {img:,.0f} images/s")
    print(f"video audit: {units['video']} frames through the model, median {vid:,.0f} frames/s")
    print(f"frames/s over images/s: {vid / img:.2f} (median of {args.repeats} alternating runs)")


if __name__ == "__main__":
    main()
