"""Bench the adversarial searches on the sample detectors: one command, the whole reference table.

Prints, for each detector:
1. queries per second of the batched Square search against the same search run one
   sample at a time (median of --repeats runs, ratio measured in this process), and a
   check that both give the same images;
2. Square before/after, per eps of the ladder, on the same images and budget: RA under
   linf_noise and under the flip search with the old fixed p_init 0.05, with ART's
   default p_init 0.8, and with the schedule `square_linf` now uses (p_init growing
   with eps, `initial_fraction`), beside ART's `SquareAttack` (p_init 0.8, the same
   queries: stripes plus queries - 1 iterations) where adversarial-robustness-toolbox
   is installed; the median delta of the delta search under each schedule (and
   linf_noise's); CPU ms per image of the flip search, ours (p_init 0.8) against ART
   (p_init 0.8), and their ratio;
3. with the whitebox extra (torch): the gradient reference checks of
   `bench/whitebox.py` on the same images: our `fgsm` against FGSM written out by hand
   on the converted graph, and our `pgd_linf` against ART's ProjectedGradientDescent
   (and torchattacks' PGD where it can be imported), RA and CPU ms per image.

    PYTHONPATH=. python bench/attacks.py [--limit 100] [--queries 1000] [--no-whitebox]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from auditor import perturbations
from auditor.adversarial import initial_fraction, pixel_steps, square_linf, summarize
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


SCHEDULES = {"old 0.05": 0.05, "p 0.8": 0.8, "new": None}  # p_init; None: by eps


def search(model: Model, keys, images, target, eps: float, level: int, **kw):
    """`square_linf` with the sample-keyed generators an audit gives level `level`."""
    return square_linf(
        model.predict, images, target, eps, rngs(keys, "square_linf", level),
        positive=model.positive_index(), **kw,
    )  # fmt: skip


def art_square(model: Model, images, labels, eps: float, queries: int, p_init: float):
    """ART's SquareAttack from model outputs: (RA, CPU seconds); None where ART is missing."""
    try:
        from art.attacks.evasion import SquareAttack
        from art.estimators.classification import BlackBoxClassifierNeuralNetwork
    except ImportError:
        return None

    def predict(x: np.ndarray) -> np.ndarray:
        return model.predict(list(np.clip(np.rint(x), 0, 255).astype(np.uint8)))

    shape = images[0].shape
    classifier = BlackBoxClassifierNeuralNetwork(
        predict, shape, 2, channels_first=False, clip_values=(0, 255)
    )
    attack = SquareAttack(
        classifier, norm=np.inf, eps=float(pixel_steps(eps)), max_iter=queries - 1,
        p_init=p_init, batch_size=len(images), verbose=False,
    )  # fmt: skip
    np.random.seed(0)  # ART draws from numpy's global generator
    start = time.process_time()
    found = attack.generate(np.stack(images).astype(np.float32), y=labels)
    seconds = time.process_time() - start
    probs = predict(found)
    return float(np.mean(decide(probs, 0.5, model.positive_index()) == labels)), seconds


def schedules(model: Model, keys, images, labels, queries: int) -> None:
    """Square before/after per eps: RA and median delta per schedule, ART, CPU time."""
    clean = model.predict(images)
    positive = model.positive_index()
    n = len(images)
    print(f"  clean accuracy {np.mean(decide(clean, 0.5, positive) == labels):.3f}")
    print(
        "  eps     p_new | RA: noise  old0.05  p0.8   new    ART0.8 | "
        "median delta: noise  old0.05 p0.8   new    | ms/image flip p0.8: ours  ART  ratio"
    )
    for level, steps in enumerate(LADDER, start=1):
        eps = steps / 255
        noisy = [
            perturbations.apply("linf_noise", im, {"eps": eps}, rng)
            for im, rng in zip(images, rngs(keys, "linf_noise", level))
        ]
        noisy_probs = model.predict(noisy)
        ra_noise = np.mean(decide(noisy_probs, 0.5, positive) == labels)
        ra, delta, cpu = {}, {}, {}
        for name, p_init in SCHEDULES.items():
            start = time.process_time()
            flips = search(model, keys, images, labels, eps, level, queries=queries,
                           clean_probs=clean, p_init=p_init)  # fmt: skip
            cpu[name] = time.process_time() - start
            ra[name] = 1 - summarize(flips)["success_fraction"]
            deltas = search(model, keys, images, clean, eps, level, objective="delta",
                            queries=queries, p_init=p_init)  # fmt: skip
            delta[name] = float(np.median([o.loss for o in deltas]))
        art = art_square(model, images, labels, eps, queries, 0.8)
        art_ra = "  -  " if art is None else f"{art[0]:.3f}"
        ours_ms = cpu["p 0.8"] / n * 1000
        speed = "" if art is None else (
            f"{ours_ms:6.1f} {art[1] / n * 1000:6.1f}  {art[1] / n * 1000 / ours_ms:4.1f}x"
        )  # fmt: skip
        noise_delta = float(np.median(np.abs(noisy_probs - clean).max(axis=1)))
        print(
            f"  {steps:>2}/255  {initial_fraction(steps):.3f} |     {ra_noise:.3f}  "
            f"{ra['old 0.05']:.3f}    {ra['p 0.8']:.3f}  {ra['new']:.3f}  {art_ra}  | "
            f"              {noise_delta:.4f} {delta['old 0.05']:.4f}  "
            f"{delta['p 0.8']:.4f} {delta['new']:.4f} | {speed}"
        )


def references(limit: int) -> None:
    """The gradient reference checks of bench/whitebox.py, when torch is installed."""
    try:
        import whitebox
    except ImportError as err:  # no torch: the whitebox extra is not installed
        print(f"(no gradient reference checks: {err})")
        return
    for detector in ("detector_a", "detector_b"):
        whitebox.references(detector, limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100, help="samples (half per class)")
    parser.add_argument("--queries", type=int, default=1000, help="budget per sample")
    parser.add_argument("--speed-queries", type=int, default=100, help="budget, speed part")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["detector_a.onnx", "detector_b.onnx"])
    parser.add_argument("--skip-ladder", action="store_true", help="skip part 2")
    parser.add_argument("--skip-speed", action="store_true", help="skip part 1")
    parser.add_argument("--no-whitebox", action="store_true", help="skip part 3")
    args = parser.parse_args()
    keys, images, labels = load_samples(args.limit)
    for name in args.models:
        model = load_model(SAMPLES / name, ModelOptions())
        print(f"{name}: {len(images)} samples, budget {args.queries} queries")
        if not args.skip_speed:
            throughput(model, keys, images, args.speed_queries, args.repeats)
        if not args.skip_ladder:
            schedules(model, keys, images, labels, args.queries)
    if not args.no_whitebox:
        references(args.limit)


if __name__ == "__main__":
    main()
