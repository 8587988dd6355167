"""What the untrusted-file checks cost: `load_model` against a bare onnxruntime session.

`load_model` reads the file with the size limit, checks external-data references, runs the
full onnx checker (with shape inference), hashes the file and opens the session. This
times it against `onnxruntime.InferenceSession` alone on the same file, in this process,
and prints the median of several repeats of each and their ratio.

    python bench/load_overhead.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gpu_check import conv_model  # noqa: E402

from auditor.config import ModelOptions  # noqa: E402
from auditor.model.adapter import load_model  # noqa: E402


def median_seconds(action, repeats: int) -> float:
    action()  # warm caches and imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = [
            ROOT / "samples" / "deepfake" / "detector_b.onnx",
            conv_model(Path(tmp) / "conv.onnx"),
        ]
        print(f"{'model':<18}{'bytes':>10}{'bare ms':>10}{'load_model ms':>15}{'ratio':>8}")
        for path in models:
            bare = median_seconds(
                lambda p=path: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]),
                args.repeats,
            )
            ours = median_seconds(
                lambda p=path: load_model(p, ModelOptions(provider="cpu")), args.repeats
            )
            print(
                f"{path.name:<18}{path.stat().st_size:>10}{bare * 1e3:>10.1f}"
                f"{ours * 1e3:>15.1f}{ours / bare:>8.2f}"
            )


if __name__ == "__main__":
    main()
