"""Two models in one run against two separate runs: what sharing the perturbation saves.

In one process, on the same images and suite, interleaved: (a) `run_audit` of model A
then of model B; (b) `run_audits` of both, each sample decoded and perturbed once. It
prints the median wall seconds of --repeats rounds of each and the ratio (b)/(a); the
goal is at most 0.7. It also checks that (b) gives each model the figures of (a).

    python bench/multimodel.py                              # the sample detectors, on photos
    python bench/multimodel.py --data samples --images 410  # ... on the bundled 48 px samples
    python bench/multimodel.py --models light --images 40   # bench/engine.py's light model twice
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import build_model, write_images  # noqa: E402

from auditor.config import AuditConfig  # noqa: E402
from auditor.engine.multi import run_audits  # noqa: E402
from auditor.engine.run import run_audit  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "deepfake"


def light_pair(root: Path) -> tuple[Path, Path]:
    """bench/engine.py's light model, and a copy with other head weights."""
    a = build_model(root / "light_a.onnx", "light")
    proto = onnx.load(str(a))
    for init in proto.graph.initializer:
        if init.name == "wh":
            weights = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(-weights), "wh"))
    b = root / "light_b.onnx"
    onnx.save(proto, str(b))
    return a, b


def timed(function: Callable[[], list]) -> tuple[float, list]:
    """Wall seconds of `function()`, and what it returned."""
    start = time.perf_counter()
    out = function()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", choices=("samples", "light"), default="samples")
    parser.add_argument(
        "--data",
        choices=("photos", "samples"),
        default="photos",
        help="photos: made 256 x 320 images (bench/engine.py); samples: the bundled 48 px ones",
    )
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--images", type=int, default=100, help="samples: --limit; light: made")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.models == "samples":
            models = (SAMPLES / "detector_a.onnx", SAMPLES / "detector_b.onnx")
        else:
            models = light_pair(root)
        if args.data == "samples":
            data, limit = SAMPLES / "data", args.images
        else:
            data, limit = write_images(root / "data", args.images), None
        base = AuditConfig(model_path=models[0], data_path=data, suite=args.suite, limit=limit)
        configs = [replace(base, model_path=m) for m in models]
        separate, together = [], []
        for _ in range(args.repeats):  # interleaved: drifts of a shared machine hit both
            seconds, alone = timed(lambda: [run_audit(c) for c in configs])
            separate.append(seconds)
            seconds, both = timed(lambda: run_audits(configs))
            together.append(seconds)
            for a, b in zip(alone, both):
                assert [r.ra for r in a.results] == [r.ra for r in b.results]
                assert [r.rr for r in a.results] == [r.rr for r in b.results]
        s, t = statistics.median(separate), statistics.median(together)
        print(f"models: {', '.join(m.name for m in models)}; suite {args.suite}")
        print(f"two separate runs: median {s:.2f} s of {[round(x, 2) for x in separate]}")
        print(f"one run, two models: median {t:.2f} s of {[round(x, 2) for x in together]}")
        print(f"ratio (one run / two runs): {t / s:.2f} (goal <= 0.70)")


if __name__ == "__main__":
    main()
