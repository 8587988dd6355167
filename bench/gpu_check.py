"""CPU vs CUDA: do two execution providers agree, and how fast is each?

For the bundled sample detectors and a bigger generated convolutional model, runs the
same preprocessed tensors through `auditor`'s model adapter on two providers and prints,
per model: the largest probability difference, the number of decisions that flip, and
the images per second of each (median of several repeats, measured in this process, with
the ratio). Differences above 1e-3 are flagged (CUDA's TF32 math on Ampere and newer
GPUs can cause them). Exits 1 only if a provider did not actually run (a fallback).

    python bench/gpu_check.py                      # cpu vs cuda
    python bench/gpu_check.py --providers cpu,cpu  # a dry run of the script on a CPU
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from auditor.config import ModelOptions  # noqa: E402
from auditor.model.adapter import Model, load_model  # noqa: E402

PROBABILITY_TOLERANCE = 1e-3  # fp32 kernels differ by ~1e-6; TF32 by ~1e-3


def conv_model(path: Path, size: int = 224, classes: int = 10, seed: int = 0) -> Path:
    """A ResNet-stem-sized network: six strided 3x3 convolutions, pooling and a linear head."""
    rng = np.random.default_rng(seed)
    widths = [3, 32, 64, 64, 128, 128, 256]
    nodes, inits, x = [], [], "image"
    for i, (cin, cout) in enumerate(zip(widths, widths[1:])):
        w = rng.normal(0, np.sqrt(2 / (9 * cin)), (cout, cin, 3, 3)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(cout, np.float32), f"b{i}"),
        ]
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"w{i}", f"b{i}"],
                [f"c{i}"],
                pads=[1] * 4,
                strides=[2, 2] if i % 2 == 0 else [1, 1],
            )
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        x = f"r{i}"
    inits += [
        numpy_helper.from_array(rng.normal(0, 0.2, (widths[-1], classes)).astype(np.float32), "W"),
        numpy_helper.from_array(np.zeros(classes, np.float32), "B"),
    ]
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"]),
        helper.make_node("Gemm", ["features", "W", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_bench",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def sample_images(limit: int) -> list[np.ndarray]:
    paths = sorted((ROOT / "samples" / "deepfake" / "data").rglob("*.png"))[:limit]
    return [cv2.imread(str(p), cv2.IMREAD_COLOR)[:, :, ::-1].copy() for p in paths]


def decisions(model: Model, probs: np.ndarray) -> np.ndarray:
    positive = model.positive_index()
    if positive is not None:
        return probs[:, positive] >= 0.5
    return probs.argmax(axis=1)


def scored(model: Model, tensors: list[np.ndarray], repeats: int) -> tuple[np.ndarray, float]:
    """Probabilities on every batch, and the median images per second over `repeats` runs."""
    probs = np.concatenate([model.infer(t) for t in tensors])  # also warms the provider up
    n = sum(len(t) for t in tensors)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for t in tensors:
            model.infer(t)
        rates.append(n / (time.perf_counter() - start))
    return probs, statistics.median(rates)


def compare(path: Path, images: list[np.ndarray], providers: list[str], args) -> dict:
    models = [load_model(path, ModelOptions(provider=p)) for p in providers]
    ran = [m.provider for m in models]
    tensors = [
        models[0].to_tensor(images[i : i + args.batch_size])
        for i in range(0, len(images), args.batch_size)
    ]
    (pa, ra), (pb, rb) = (scored(m, tensors, args.repeats) for m in models)
    return {
        "model": path.name,
        "n": len(pa),
        "ran": ran,
        "max_diff": float(np.abs(pa - pb).max()),
        "flips": int((decisions(models[0], pa) != decisions(models[1], pb)).sum()),
        "rates": (ra, rb),
        "options": models[1].runtime.provider_options if models[1].runtime else {},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", default="cpu,cuda", help="two providers, A,B")
    parser.add_argument("--images", type=int, default=410, help="sample images per detector")
    parser.add_argument("--big-images", type=int, default=256, help="images for the conv model")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    providers = args.providers.split(",")
    rows = []
    samples = sample_images(args.images)
    for name in ("detector_a.onnx", "detector_b.onnx"):
        rows.append(compare(ROOT / "samples" / "deepfake" / name, samples, providers, args))
    with tempfile.TemporaryDirectory() as tmp:
        big = conv_model(Path(tmp) / "conv224.onnx")
        rng = np.random.default_rng(0)
        images = [samples[i % len(samples)] for i in range(args.big_images)]
        images = [cv2.resize(im, (256, 256)) for im in images]
        images = [
            np.clip(im + rng.normal(0, 8, im.shape), 0, 255).astype(np.uint8) for im in images
        ]
        rows.append(compare(big, images, providers, args))
    return report(rows, providers)


def report(rows: list[dict], providers: list[str]) -> int:
    a, b = providers
    print(
        f"{'model':<18}{'n':>5}  {'ran on':<44}{'max |dp|':>10}{'flips':>7}"
        f"{a + ' img/s':>13}{b + ' img/s':>13}{b + '/' + a:>11}"
    )
    failed = False
    for r in rows:
        ra, rb = r["rates"]
        print(
            f"{r['model']:<18}{r['n']:>5}  {' / '.join(r['ran']):<44}{r['max_diff']:>10.2e}"
            f"{r['flips']:>7}{ra:>13.0f}{rb:>13.0f}{rb / ra:>10.2f}x"
        )
        if r["flips"] or r["max_diff"] > PROBABILITY_TOLERANCE:
            print(f"  note: {r['model']} differs by more than {PROBABILITY_TOLERANCE:g}")
    wanted = [_canonical(p) for p in providers]
    for r in rows:
        if [x for x, w in zip(r["ran"], wanted) if w and x != w]:
            print(f"FALLBACK: asked for {providers}, ran on {r['ran']}", file=sys.stderr)
            failed = True
    options = rows[0]["options"]
    print(f"{b} provider options:", ", ".join(f"{k}={v}" for k, v in sorted(options.items())))
    print("result:", "FAIL (a provider did not run)" if failed else "ok: both providers ran")
    return 1 if failed else 0


def _canonical(provider: str) -> str | None:
    return {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}.get(provider.lower())


if __name__ == "__main__":
    sys.exit(main())
