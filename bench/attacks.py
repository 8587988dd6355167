"""Bench the Square Attack search on the sample detectors.

Prints, for each detector:
1. queries per second of the batched search against the same search run one sample at
   a time (median of --repeats runs, ratio measured in this process), and a check that
   both give the same images;
2. per eps of the ladder: RA under linf_noise and under the search (flip objective,
   with and without the corner start), the success fraction, queries median / p90,
   and the median delta found by the delta objective against linf_noise's.

    PYTHONPATH=. python bench/attacks.py [--limit 100] [--queries 1000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from auditor import perturbations
from auditor.adversarial import square_linf, summarize
from auditor.config import ModelOptions
from auditor.metrics import decide
from auditor.model.adapter import Model, load_model
from auditor.seeds import derive_rng

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "deepfake"
LADDER = (1, 2, 4, 8, 16)  # eps in pixel steps (/255)


def load_samples(limit: int) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """Up to `limit` sample images, evenly spread over each class (fake = 1)."""
    keys, images, labels = [], [], []
    for label, folder in enumerate(("real", "fake")):
        paths = sorted((SAMPLES / "data" / folder).glob("*.png"))
        step = max(1, len(paths) // max(1, limit // 2))
        for path in paths[::step][: limit // 2]:
            keys.append(f"{folder}/{path.name}")
            images.append(np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1]))
            labels.append(label)
    return keys, images, np.array(labels)


def rngs(keys: list[str], name: str, level: int) -> list[np.random.Generator]:
    return [derive_rng(0, key, name, level, 0) for key in keys]


def throughput(model: Model, keys, images, queries: int, repeats: int) -> None:
    """Queries/s, batched against one sample at a time, on the delta objective."""
    clean = model.predict(images)
    eps, level = 8 / 255, 4

    def batched():
        return square_linf(
            model.predict, images, clean, eps, rngs(keys, "square_linf", level),
            objective="delta", queries=queries,
        )  # fmt: skip

    def single():
        out = []
        for i, key in enumerate(keys):
            out += square_linf(
                model.predict, images[i : i + 1], clean[i : i + 1], eps,
                rngs([key], "square_linf", level), objective="delta", queries=queries,
            )  # fmt: skip
        return out

    rates: dict[str, list[float]] = {"batched": [], "single": []}
    results = {}
    for _ in range(repeats):
        for name, run in (("batched", batched), ("single", single)):
            start = time.perf_counter()
            results[name] = run()
            seconds = time.perf_counter() - start
            rates[name].append(sum(o.queries for o in results[name]) / seconds)
    same = all(
        np.array_equal(a.image, b.image) for a, b in zip(results["batched"], results["single"])
    )
    b, s = statistics.median(rates["batched"]), statistics.median(rates["single"])
    print(
        f"  queries/s (median of {repeats}): batched {b:,.0f}, one at a time {s:,.0f}, "
        f"ratio {b / s:.2f}; same images both ways: {same}"
    )


def ladder(model: Model, keys, images, labels, queries: int) -> None:
    """RA and delta per eps: linf_noise against the search."""
    clean = model.predict(images)
    positive = model.positive_index()
    print(f"  clean accuracy {np.mean(decide(clean, 0.5, positive) == labels):.3f}")
    print(
        "  eps    RA_noise RA_search RA_paper success q_med  q_p90 | "
        "delta_noise delta_search (medians)  search>=noise"
    )
    for level, steps in enumerate(LADDER, start=1):
        eps = steps / 255
        noisy = [
            perturbations.apply("linf_noise", im, {"eps": eps}, rng)
            for im, rng in zip(images, rngs(keys, "linf_noise", level))
        ]
        noisy_probs = model.predict(noisy)
        ra_noise = np.mean(decide(noisy_probs, 0.5, positive) == labels)
        flips = {
            corner: square_linf(
                model.predict,
                images,
                labels,
                eps,
                rngs(keys, "square_linf", level),
                queries=queries,
                positive=positive,
                clean_probs=clean,
                corner_start=corner,
            )  # fmt: skip
            for corner in (True, False)
        }
        ra = {c: 1 - summarize(out)["success_fraction"] for c, out in flips.items()}
        summary = summarize(flips[True])
        deltas = square_linf(
            model.predict, images, clean, eps, rngs(keys, "square_linf", level),
            objective="delta", queries=queries,
        )  # fmt: skip
        found = np.array([o.loss for o in deltas])
        noise_delta = np.abs(noisy_probs - clean).max(axis=1)
        print(
            f"  {steps:>2}/255  {ra_noise:.3f}    {ra[True]:.3f}     {ra[False]:.3f}    "
            f"{summary['success_fraction']:.3f}  {summary['queries_median']:>5.0f} "
            f"{summary['queries_p90']:>6.0f} | {np.median(noise_delta):.4f}      "
            f"{np.median(found):.4f}                  {np.mean(found >= noise_delta - 1e-6):.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100, help="samples (half per class)")
    parser.add_argument("--queries", type=int, default=1000, help="budget per sample")
    parser.add_argument("--speed-queries", type=int, default=100, help="budget, speed part")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["detector_a.onnx", "detector_b.onnx"])
    parser.add_argument("--skip-ladder", action="store_true")
    args = parser.parse_args()
    keys, images, labels = load_samples(args.limit)
    for name in args.models:
        model = load_model(SAMPLES / name, ModelOptions())
        print(f"{name}: {len(images)} samples, budget {args.queries} queries")
        throughput(model, keys, images, args.speed_queries, args.repeats)
        if not args.skip_ladder:
            ladder(model, keys, images, labels, args.queries)


if __name__ == "__main__":
    main()
