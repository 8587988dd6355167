"""Time every perturbation and level; compare the ImageNet-C ones with `imagecorruptions`.

    PYTHONPATH=. /work/venv/bin/python bench/perturbations.py [--repeats 5] [--images 4]
    PYTHONPATH=. /work/venv/bin/python bench/perturbations.py --large 3000 4000

Ours are timed in this process on the 224 px photographs of
bench/imagecorruptions_reference.py (scaling off, as for the fidelity figures). The
reference runs in the same run, as a subprocess under its pinned environment (see
that script), when one is found: `--reference-python`, else $AUDITOR_REFERENCE_PYTHON,
else /work/refenv/bin/python. Figures are medians over repeats of the seconds per
image, summed over the five levels (a repeat loops until it has run 20 ms, so that
sub-millisecond calls are not swamped by timer and scheduling noise); the ratio is
reference / ours (higher: we are faster). `--large H W` instead times each
perturbation at level 5 on one H x W image with scaling on, and reports the peak
memory that numpy and OpenCV's Python side allocate (tracemalloc) as a multiple of
the image's own bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from imagecorruptions_reference import median_seconds, photos  # noqa: E402

from auditor.perturbations import REGISTRY, SUITES, apply  # noqa: E402
from auditor.seeds import derive_rng  # noqa: E402

DEFAULT_REFERENCE = Path("/work/refenv/bin/python")


def per_image_names() -> list[str]:
    """Every registered perturbation (each works on an image alone; searches are not here)."""
    return sorted(REGISTRY)


def time_ours(name: str, images: list[np.ndarray], repeats: int) -> list[float]:
    """Median seconds per image at each level of `name`."""
    seconds = []
    for level in range(1, len(REGISTRY[name].levels) + 1):
        rngs = [derive_rng(0, str(i), name, level, 0) for i in range(len(images))]

        def run(rngs: list[np.random.Generator] = rngs, level: int = level) -> None:
            for im, rng in zip(images, rngs):
                apply(name, im, level, rng, scale_to_input=False)

        seconds.append(median_seconds(run, repeats) / len(images))
    return seconds


def time_reference(python: Path, repeats: int, count: int) -> dict[str, list[float]] | None:
    """Run the reference's timing under `python`; None when that environment is absent."""
    if not python.exists():
        return None
    script = ROOT / "bench" / "imagecorruptions_reference.py"
    command = [str(python), str(script), "--time", str(repeats), "--images", str(count)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["seconds_per_image"]


def compare(args: argparse.Namespace) -> None:
    images = photos()[: args.images]
    python = Path(
        args.reference_python or os.environ.get("AUDITOR_REFERENCE_PYTHON") or DEFAULT_REFERENCE
    )
    print(
        f"{len(images)} photographs of 224 px, {args.repeats} repeats; OpenCV threads "
        f"{cv2.getNumThreads()}",
        file=sys.stderr,
    )
    ours = {name: time_ours(name, images, args.repeats) for name in per_image_names()}
    reference = time_reference(python, args.repeats, len(images))
    if reference is None:
        print(f"(no reference environment at {python}: ours only)", file=sys.stderr)
    print(f"{'perturbation':20} {'ours ms':>9} {'ref ms':>9} {'ratio':>7}  worst level, ms")
    common = SUITES["imagenet-c-all"]
    for name in [*common, *sorted(set(ours) - set(common))]:
        mine = sum(ours[name]) * 1e3
        if reference and name in reference:
            theirs = sum(reference[name]) * 1e3
            worst = max(range(5), key=lambda k: ours[name][k] / reference[name][k])
            detail = (
                f"L{worst + 1} {ours[name][worst] * 1e3:.2f}/{reference[name][worst] * 1e3:.2f}"
            )
            print(f"{name:20} {mine:9.2f} {theirs:9.2f} {theirs / mine:6.1f}x  {detail}")
        else:
            print(f"{name:20} {mine:9.2f} {'-':>9} {'-':>7}")
    if reference:
        mine = sum(sum(ours[n]) for n in common) * 1e3
        theirs = sum(sum(reference[n]) for n in common) * 1e3
        print(f"{'all 19 x 5':20} {mine:9.2f} {theirs:9.2f} {theirs / mine:6.1f}x")


def large(height: int, width: int) -> None:
    base = photos()[0]
    image = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)
    print(f"{'perturbation':20} {'seconds':>8} {'peak / image bytes':>19}")
    for name in per_image_names():
        tracemalloc.start()
        start = time.perf_counter()
        apply(name, image, 5, derive_rng(0, "large", name, 5, 0), scale_to_input=True)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"{name:20} {elapsed:8.2f} {peak / image.nbytes:19.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=4, help="how many of the photographs")
    parser.add_argument("--reference-python", help="python of the pinned reference env")
    parser.add_argument("--large", type=int, nargs=2, metavar=("H", "W"))
    args = parser.parse_args()
    if args.large:
        large(*args.large)
    else:
        compare(args)


if __name__ == "__main__":
    main()
