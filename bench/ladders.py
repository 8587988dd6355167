"""Time and memory of the DeeperForensics, laundering and epsilon perturbations.

    PYTHONPATH=. python bench/ladders.py [--repeats 7] [--big]

Per perturbation, the median time of all five levels on a 224 px photo, as a ratio to
`jpeg_compression` (five levels, same image) timed in the same process; with `--big`,
also one level-5 run on a 3000 x 4000 photo with its traced peak memory as a multiple
of the image's own bytes (numpy allocations, as tracemalloc sees them).
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import cv2
import numpy as np

from auditor.perturbations import REGISTRY, apply

MODULES = {"deepfake", "laundering", "epsilon", "video"}
BASELINE = "jpeg_compression"


def photo(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    layers = [
        cv2.resize(rng.uniform(0, 255, (c, c, 3)).astype(np.float32), (w, h), cv2.INTER_CUBIC)
        for c in (3, 8, 24)
    ]
    grain = rng.normal(0, 4, (h, w, 3))
    return np.clip(np.rint(sum(layers) / len(layers) + grain), 0, 255).astype(np.uint8)


def _module(function: object) -> str:
    return str(getattr(function, "__module__", "")).split(".")[-1]


def five_levels(name: str, image: np.ndarray, repeats: int) -> float:
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        for level in range(1, 6):
            apply(name, image, level, np.random.default_rng(r))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--big", action="store_true")
    args = parser.parse_args()
    names = sorted(n for n, p in REGISTRY.items() if _module(p.function) in MODULES)
    small = photo(224, 224)
    base = five_levels(BASELINE, small, args.repeats)
    print(f"codec of video_compression: {REGISTRY['video_compression'].implementation()}")
    print(f"baseline {BASELINE}: {base * 1000:.2f} ms for 5 levels on 224 px (median)")
    big_header = "  12Mpx s  peak/image" if args.big else ""
    print(f"{'perturbation':22s} {'x baseline':>10s}{big_header}")
    big = photo(3000, 4000) if args.big else None
    for name in names:
        line = f"{name:22s} {five_levels(name, small, args.repeats) / base:10.2f}"
        if big is not None:
            tracemalloc.start()
            start = time.perf_counter()
            apply(name, big, 5, np.random.default_rng(0))
            seconds = time.perf_counter() - start
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            line += f"  {seconds:7.2f}  {peak / big.nbytes:10.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
