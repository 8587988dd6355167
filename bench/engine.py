"""Engine benchmark: auditor's audit against pure inference and against a plain loop.

In one process and one run, on the same images and perturbations:

  (a) pure onnxruntime inference of as many pre-made input tensors as the audit
      evaluates, at the best batch size (the floor: no perturbation, no decoding);
  (b) `auditor`'s full audit (`run_audit`);
  (c) the plain loop a user would write: per image and level, perturb (the
      `imagecorruptions` package when importable, else `auditor.perturbations.apply`)
      and call the model on that one image.

It prints the medians of --repeats runs and the ratios (b)/(a) and (c)/(b), then the
peak resident memory of audits of 200 and 2,000 samples (each in a fresh subprocess)
and (`--profile`) the CPU per evaluation of each stage of the audit.

    python bench/engine.py --model heavy --suite quick --images 40
    python bench/engine.py --model light --suite quick --images 40
    python bench/engine.py --model heavy --suite imagenet-c --images 10 --no-memory

With `--engine ray` it measures instead the overhead of `auditor check --engine ray`
on this one machine against the local engine (same audit, interleaved runs):

    python bench/engine.py --engine ray --model heavy --suite quick --images 40

With `--batch-ab 1,8,32` it times the audit at each batch size, both with every model
call of the engine's fixed shape (`run.CPU_CALL_ROWS` rows, the last padded: what makes
the results the same for every batch size) and with one call per batch (the shape
varying with the batch size, as before), interleaved, and says whether each run's
figures equal the first's:

    python bench/engine.py --batch-ab 1,8,32 --model large --suite quick --images 40
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auditor import perturbations  # noqa: E402
from auditor.config import AuditConfig  # noqa: E402
from auditor.engine.run import run_audit  # noqa: E402
from auditor.perturbations import SUITES  # noqa: E402
from auditor.seeds import derive_rng  # noqa: E402

SIZE = 224
# (output channels, stride) of each 3x3 convolution, sized to the models on a
# 2-core machine: "light" about 2 ms per image, "heavy" at least 5 ms, "large" about
# 17 ms (its orientation model). The bench prints the time per input it measured.
MODELS = {
    "large": [(32, 2), (64, 1), (96, 1), (128, 2), (128, 1)],
    "heavy": [(24, 2), (48, 1), (64, 2), (128, 1), (128, 2)],
    "light": [(16, 2), (24, 1), (48, 2), (64, 2), (96, 1)],
}


def build_model(path: Path, kind: str) -> Path:
    """A random-weight convolutional classifier: 224 px RGB in, 2-class softmax out."""
    rng = np.random.default_rng(0)
    nodes, inits, source, channels = [], [], "image", 3
    for i, (out, stride) in enumerate(MODELS[kind]):
        w = rng.normal(0, (2 / (9 * channels)) ** 0.5, (out, channels, 3, 3)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(out, np.float32), f"b{i}"),
        ]
        conv = helper.make_node(
            "Conv", [source, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1] * 4, strides=[stride] * 2
        )
        nodes += [conv, helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        source, channels = f"r{i}", out
    head = rng.normal(0, 0.5, (channels, 2)).astype(np.float32)
    zeros = np.zeros(2, np.float32)
    inits += [numpy_helper.from_array(head, "wh"), numpy_helper.from_array(zeros, "bh")]
    nodes += [
        helper.make_node("GlobalAveragePool", [source], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"]),
        helper.make_node("Gemm", ["features", "wh", "bh"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        f"bench_{kind}",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 2])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {"classes": ["real", "fake"], "size": [SIZE, SIZE]}
    helper.set_model_props(model, {"auditor.preprocess": json.dumps(meta)})
    onnx.save(model, str(path))
    return path


def write_images(root: Path, count: int) -> Path:
    """`count` 256 x 320 photos-like images (smooth colour fields plus noise) in class folders."""
    rng = np.random.default_rng(1)
    for i in range(count):
        label = "fake" if i % 2 else "real"
        small = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
        image = cv2.resize(small, (320, 256), interpolation=cv2.INTER_CUBIC)
        image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:05d}.png"), image)
    return root


def timed(function: Callable[[], object], cpu: list[float] | None = None) -> float:
    """Wall seconds of `function()`; its process CPU seconds are appended to `cpu`."""
    before = _cpu_seconds()
    start = time.perf_counter()
    function()
    wall = time.perf_counter() - start
    if cpu is not None:
        cpu.append(_cpu_seconds() - before)
    return wall


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def session(model: Path, threads: int = 0) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def pure_inference(model: Path, count: int) -> tuple[Callable[[], object], int]:
    """(a): `count` pre-made tensors at the best of a few batch sizes."""
    sess = session(model)
    rng = np.random.default_rng(2)
    best, best_time = 1, float("inf")
    for batch in (1, 4, 8, 16, 32):
        block = rng.standard_normal((batch, 3, SIZE, SIZE), dtype=np.float32)
        sess.run(None, {"image": block})
        per_image = timed(lambda b=block: [sess.run(None, {"image": b}) for _ in range(3)])
        per_image /= 3 * batch
        if per_image < best_time:
            best, best_time = batch, per_image
    block = rng.standard_normal((best, 3, SIZE, SIZE), dtype=np.float32)

    def run() -> None:
        left = count
        while left > 0:
            take = min(best, left)
            sess.run(None, {"image": block[:take]})
            left -= take

    return run, best


def plain_loop(model: Path, data: Path, names: list[str]) -> Callable[[], object]:
    """(c): per image and level, perturb then one model call on that image."""
    sess = session(model)
    try:
        import imagecorruptions  # type: ignore[import-not-found]
    except ImportError:
        imagecorruptions = None
    corrupt = imagecorruptions.corrupt if imagecorruptions else None
    # Corruptions the package lacks (linf_noise) use ours in the plain loop too.
    known = set(imagecorruptions.get_corruption_names("all")) if imagecorruptions else set()
    paths = sorted(data.rglob("*.png"))

    def predict(rgb: np.ndarray) -> np.ndarray:
        x = cv2.resize(rgb, (SIZE, SIZE)).astype(np.float32) / 255
        return sess.run(None, {"image": x.transpose(2, 0, 1)[None]})[0]

    def run() -> None:
        for path in paths:
            image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            predict(image)
            for name in names:
                for level in range(1, len(perturbations.get(name).levels) + 1):
                    if corrupt is not None and name in known:
                        out = corrupt(image, corruption_name=name, severity=level)
                    else:
                        rng = derive_rng(0, path.name, name, level, 0)
                        out = perturbations.apply(name, image, level, rng)
                    predict(out)

    return run


def peak_rss(model: Path, data: Path, count: int) -> float:
    """Peak RSS (MiB) of a fresh process auditing the first `count` samples."""
    code = (
        "import resource, sys; sys.path.insert(0, sys.argv[4]);"
        "from pathlib import Path; from auditor import AuditConfig, run_audit;"
        "run_audit(AuditConfig(model_path=Path(sys.argv[1]), data_path=Path(sys.argv[2]),"
        " limit=int(sys.argv[3]), perturbations=('gaussian_noise:sigma=0.1',)));"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run(
        [sys.executable, "-c", code, str(model), str(data), str(count), root],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="heavy")
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=0, help="0: the audit's automatic choice")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="ray: the Ray overhead"
    )
    parser.add_argument("--batch-ab", metavar="B1,B2,...", help="batch sizes to time against")
    args = parser.parse_args()
    if args.engine == "ray":
        ray_overhead(args)
        return
    if args.batch_ab:
        batch_ab(args, [int(b) for b in args.batch_ab.split(",")])
        return
    names = list(SUITES[args.suite])
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / f"{args.model}.onnx", args.model)
        data = write_images(Path(tmp) / "data", args.images)
        levels = sum(len(perturbations.get(n).levels) for n in names)
        count = args.images * (1 + levels)
        config = AuditConfig(
            model_path=model,
            data_path=data,
            suite=args.suite,
            workers=args.workers,
            batch_size=args.batch_size,
        )
        pure, batch = pure_inference(model, count)
        audit = lambda: run_audit(config)  # noqa: E731
        loop = plain_loop(model, data, names)
        times: dict[str, list[float]] = {"a": [], "b": [], "c": []}
        cpu: dict[str, list[float]] = {"a": [], "b": [], "c": []}
        for _ in range(args.repeats):  # interleaved, so load changes hit all three alike
            for key, function in (("a", pure), ("b", audit), ("c", loop)):
                times[key].append(timed(function, cpu[key]))
        a, b, c = (statistics.median(times[k]) for k in "abc")
        ca, cb, cc = (statistics.median(cpu[k]) for k in "abc")
        print(f"model {args.model}, suite {args.suite}: {args.images} images x {1 + levels} "
              f"evaluations = {count} model inputs; median of {args.repeats}")  # fmt: skip
        print(f"(a) pure inference, batch {batch}: {a:.2f} s ({1000 * a / count:.2f} ms/input)")
        print(f"(b) auditor audit:              {b:.2f} s")
        print(f"(c) plain loop:                 {c:.2f} s")
        print(f"(b)/(a) = {b / a:.3f}    (c)/(b) = {c / b:.3f}   (wall-clock)")
        print(f"CPU seconds: (a) {ca:.1f}  (b) {cb:.1f}  (c) {cc:.1f}; "
              f"(b)/(a) = {cb / ca:.3f}  (c)/(b) = {cc / cb:.3f}")  # fmt: skip
        print("all runs:", {k: [round(t, 2) for t in v] for k, v in times.items()})
        if args.profile:
            profile(audit, count)
        if not args.no_memory:
            many = write_images(Path(tmp) / "many", 2000)
            small, large = peak_rss(model, many, 200), peak_rss(model, many, 2000)
            print(f"peak RSS: 200 samples {small:.0f} MiB, 2000 samples {large:.0f} MiB")


def ray_overhead(args: argparse.Namespace) -> None:
    """`--engine ray` on one machine against the local engine, as ratios of medians.

    Two Ray figures: with a private Ray started and stopped for each audit (what
    `--engine ray` without `--ray-address` costs), and on a Ray that is already running
    (the distributed path alone: scheduling, actor start, model load, shipping partials).
    """
    import ray

    from auditor.engine.distributed import run_audit_ray, start_or_join

    with tempfile.TemporaryDirectory() as tmp:
        config = AuditConfig(
            model_path=build_model(Path(tmp) / f"{args.model}.onnx", args.model),
            data_path=write_images(Path(tmp) / "data", args.images),
            suite=args.suite,
            workers=args.workers,
            batch_size=args.batch_size,
        )
        times: dict[str, list[float]] = {"local": [], "private": [], "running": []}
        for _ in range(args.repeats):  # interleaved, so load changes hit all alike
            times["local"].append(timed(lambda: run_audit(config)))
            times["private"].append(timed(lambda: run_audit_ray(config)))
            start_or_join(ray, None)
            try:
                times["running"].append(timed(lambda: run_audit_ray(config)))
            finally:
                ray.shutdown()
    local, private, running = (statistics.median(times[k]) for k in times)
    print(f"model {args.model}, suite {args.suite}, {args.images} images; "
          f"median of {args.repeats}")  # fmt: skip
    print(f"local engine:                      {local:.2f} s")
    print(f"--engine ray, private Ray started: {private:.2f} s  ratio {private / local:.2f}")
    print(f"--engine ray, Ray already running: {running:.2f} s  ratio {running / local:.2f}")


def batch_ab(args: argparse.Namespace, sizes: list[int]) -> None:
    """Each batch size with the fixed call shape and with one call per batch; see --batch-ab."""
    from auditor.engine import run
    from auditor.publish.results_json import JsonWriter

    fixed = run.CPU_CALL_ROWS
    variants = [(b, rows) for b in sizes for rows in (fixed, None)]
    times: dict[tuple[int, int | None], list[float]] = {v: [] for v in variants}
    figures: dict[tuple[int, int | None], str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / f"{args.model}.onnx", args.model)
        data = write_images(Path(tmp) / "data", args.images)
        try:
            for _ in range(args.repeats):  # interleaved, so load changes hit all alike
                for batch, rows in variants:
                    run.CPU_CALL_ROWS = rows
                    config = AuditConfig(
                        model_path=model, data_path=data, suite=args.suite, batch_size=batch
                    )
                    start = time.perf_counter()
                    results = run_audit(config)
                    times[(batch, rows)].append(time.perf_counter() - start)
                    figures[(batch, rows)] = _figures(JsonWriter().render(results))
        finally:
            run.CPU_CALL_ROWS = fixed
    first = figures[variants[0]]
    print(f"model {args.model}, suite {args.suite}, {args.images} images; median of {args.repeats}")
    for batch, rows in variants:
        shape = f"calls of {rows} rows" if rows else "one call per batch"
        same = "same figures" if figures[(batch, rows)] == first else "OTHER FIGURES"
        seconds = statistics.median(times[(batch, rows)])
        print(f"--batch-size {batch:>3}, {shape:<18}: {seconds:6.2f} s  {same}")


def _figures(text: str) -> str:
    """The results JSON without what differs from run to run (times, tuning, identity)."""
    results = json.loads(text)
    for key in (
        "created_at",
        "started_at",
        "finished_at",
        "duration_s",
        "environment",
        "report_id",
    ):
        results.pop(key, None)
    for key in ("workers", "batch_size", "command_line"):
        results["config"].pop(key, None)
    return json.dumps(results, sort_keys=True)


def profile(audit: Callable[[], object], evaluations: int) -> None:
    """Where the audit's time goes: CPU per evaluation of each stage, and the idle share.

    Each stage's CPU is the thread CPU time of the calls that do it: preparing a sample
    (decode, perturb, preprocess) in the workers, each model call in its stream (one
    onnxruntime thread per call by default, so the calling thread's CPU is the call's),
    and the statistics on the main thread.
    """
    from auditor.engine import pipeline, shard
    from auditor.model import adapter as model

    spent = {"prepare": 0.0, "model": 0.0, "statistics": 0.0}
    lock = threading.Lock()

    def timing(owner: type, name: str, stage: str) -> Callable[..., object]:
        original = getattr(owner, name)

        def wrapper(*args: object) -> object:
            before = time.thread_time()
            try:
                return original(*args)
            finally:
                with lock:
                    spent[stage] += time.thread_time() - before

        setattr(owner, name, wrapper)
        return original

    patched = [
        (pipeline.Pipeline, "_prepare", timing(pipeline.Pipeline, "_prepare", "prepare")),
        (model.Model, "infer", timing(model.Model, "infer", "model")),
        (shard.ShardRun, "_count", timing(shard.ShardRun, "_count", "statistics")),
    ]
    cpu: list[float] = []
    try:
        wall = timed(audit, cpu)
    finally:
        for owner, name, original in patched:
            setattr(owner, name, original)
    per, cores = 1000 / evaluations, pipeline.auto_workers()
    busy = 100 * cpu[0] / (wall * cores)
    print(f"profile of one audit: {wall * per:.2f} ms wall and {cpu[0] * per:.2f} ms CPU "
          f"per evaluation on {cores} cores ({busy:.0f}% busy)")  # fmt: skip
    for stage, seconds in spent.items():
        print(f"  {stage:<11} {seconds * per:6.2f} ms CPU per evaluation")
    rest = cpu[0] - sum(spent.values())
    print(f"  {'other':<11} {rest * per:6.2f} ms CPU per evaluation "
          "(onnxruntime threads beyond the calling one, thread switches, setup)")  # fmt: skip


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
