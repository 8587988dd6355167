"""Hostile cases on the engine's side: what may break during an audit, and what it must do.

One sample's failure (a perturbation's bug) skips that sample with its reason; whatever
stops the run (a model that fails, memory beyond --max-memory, a forged journal, an
unexpected error) is one line and exit 2, never a traceback or exit 1, with the finished
samples kept in the journal. Perturbation parameters outside their declared ranges and
outputs that cannot be written are refused before the audit. The results do not depend
on the batch size, and --resume re-scores a file whose content changed.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from conftest import BIAS_2, WEIGHTS_2, build_model, colour_image, without_run_specifics
from onnx import TensorProto, helper, numpy_helper
from test_resume import start, wait_for_records

import auditor.perturbations as perturbations
from auditor.cli import main
from auditor.engine import journal, memory
from auditor.errors import EXIT_CANNOT_RUN, EXIT_OK, SampleError
from auditor.perturbations.registry import REGISTRY, apply, perturbation

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "deepfake"


def check(*args: str) -> tuple[int, str]:
    """`auditor check ...` in this process: (exit code, stderr)."""
    result = CliRunner().invoke(main, ["check", *map(str, args)])
    return result.exit_code, result.stderr


def assert_one_line(err: str) -> str:
    """The error is one `auditor: error:` line, with no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("auditor: error: "), err
    return lines[0]


def dark_folders(root: Path, bright: str | None = None, per_class: int = 6) -> Path:
    """Class folders of black 20 x 24 images; `bright` (a key) is white instead."""
    for label in ("fake", "real"):
        for i in range(per_class):
            path = root / label / f"{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            value = 255 if f"{label}/{path.name}" == bright else 0
            cv2.imwrite(str(path), np.full((20, 24, 3), value, np.uint8))
    return root


def brightness_model(path: Path, failure: str) -> Path:
    """The colour classifier, plus a branch that fails on a bright image (max pixel 1).

    `failure`: "allocate" makes ConstantOfShape ask for 8 GB on a white image (none on a
    black one); "reshape" makes a Reshape impossible on it.
    """
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"]),
        helper.make_node("Gemm", ["features", "W", "B"], ["logits"]),
        helper.make_node("ReduceMax", ["image"], ["brightest"], keepdims=1),
        helper.make_node("Mul", ["brightest", "per_unit"], ["wanted"]),
        helper.make_node("Cast", ["wanted"], ["count"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["count", "one"], ["shape"]),
    ]
    per_unit = 2e9  # floats: 8 GB
    if failure == "allocate":
        one = helper.make_tensor("one_float", TensorProto.FLOAT, [1], [1.0])
        nodes += [
            helper.make_node("ConstantOfShape", ["shape"], ["big"], value=one),
            helper.make_node("ReduceSum", ["big"], ["total"], keepdims=1),
        ]
    else:  # one element reshaped to (count + 1) elements: fine only when count is 0
        per_unit = 5.0
        nodes += [
            helper.make_node("Add", ["shape", "one"], ["target"]),
            helper.make_node("Reshape", ["one_element", "target"], ["total"]),
        ]
    nodes += [
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Add", ["logits", "nothing"], ["sum"]),
        helper.make_node("Softmax", ["sum"], ["scores"], axis=1),
    ]
    initializers = [
        numpy_helper.from_array(WEIGHTS_2, "W"),
        numpy_helper.from_array(BIAS_2, "B"),
        numpy_helper.from_array(np.array([per_unit], np.float32), "per_unit"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
        numpy_helper.from_array(np.array([0.0], np.float32), "zero"),
        numpy_helper.from_array(np.array([1.0], np.float32), "one_element"),
    ]
    graph = helper.make_graph(
        nodes,
        "brightness_sensitive",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def journal_records(path: Path) -> list[dict]:
    return journal.read(path)[0][1:]


# -- one sample's failure skips that sample; a failure of the run is one line ---------------


@pytest.fixture
def exploding():
    """A perturbation plugin that raises on 31 x 29 images (or on every image: `always`)."""

    @perturbation("explode", family="test", levels={"always": (0, 0, 0, 0, 0)})
    def explode(image, rng, *, always):
        """Raises on some images (a plugin's bug)."""
        if always or image.shape[:2] == (31, 29):
            raise ValueError("boom\nsecond line")
        return image.copy()

    yield
    REGISTRY.pop("explode")


def test_a_perturbation_that_raises_on_one_image_skips_that_image(
    exploding, binary_model, data_dir, tmp_path
):
    odd = "fake/f03.png"
    cv2.imwrite(str(data_dir / odd), colour_image(np.random.default_rng(1), 0.8, (31, 29)))
    out = tmp_path / "out"
    code, err = check(binary_model, "--data", data_dir, "-o", out / "r.html", "-p", "explode")
    assert code == EXIT_OK, err
    results = json.loads((out / "r.json").read_text())
    assert results["clean"]["n"] == 23
    skipped = {s["path"]: s["reason"] for s in results["data"]["skipped"]}
    assert skipped == {odd: "explode level 1: ValueError: boom"}


def test_a_perturbation_that_always_raises_ends_in_one_line(
    exploding, binary_model, data_dir, tmp_path
):
    spec = "explode:always=1,1,1,1,1"
    code, err = check(binary_model, "--data", data_dir, "-o", tmp_path / "r.html", "-p", spec)
    assert code == EXIT_CANNOT_RUN
    line = assert_one_line(err)
    assert "no usable images" in line and "ValueError: boom" in line


def test_an_unexpected_error_outside_the_samples_is_one_line(binary_model, data_dir, tmp_path):
    def broken_probe():
        raise RuntimeError("the probe broke\nat line 2")

    perturbation("probing", family="test", levels={"x": (1,)}, implementation=broken_probe)(
        lambda image, rng, *, x: image.copy()
    )
    try:
        code, err = check(
            binary_model, "--data", data_dir, "-o", tmp_path / "r.html", "-p", "probing"
        )
    finally:
        REGISTRY.pop("probing")
    assert code == EXIT_CANNOT_RUN
    assert assert_one_line(err).endswith("unexpected error: RuntimeError: the probe broke")


def test_a_model_that_fails_mid_run_ends_in_one_line_and_keeps_the_journal(tmp_path):
    model = brightness_model(tmp_path / "m.onnx", "reshape")
    data = dark_folders(tmp_path / "data", bright="real/05.png")
    out = tmp_path / "out"
    code, err = check(
        model, "--data", data, "-o", out / "r.html", "-p", "contrast", "--workers", "1"
    )
    assert code == EXIT_CANNOT_RUN
    line = assert_one_line(err)
    assert "inference failed" in line and "--resume" in line
    kept = journal_records(out / "r.json.journal")
    assert kept and all("skip" not in r for r in kept)
    assert "real/05.png" not in {r["k"] for r in kept}


# -- memory: bounded, stated, and the partial work kept ---------------------------------------


def audit_in_child(args: list, cwd: Path) -> tuple[int, str, int]:
    """Run `auditor check ARGS` in a child process: (exit code, stderr, its peak RSS in bytes)."""
    err = cwd / "stderr.txt"
    with open(err, "w") as handle:
        child = subprocess.Popen(
            [sys.executable, "-m", "auditor", "check", *map(str, args)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=handle,
            cwd=cwd,
        )
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, err.read_text(), usage.ru_maxrss * 1024


def test_a_model_that_allocates_beyond_max_memory_stops_cleanly(tmp_path):
    model = brightness_model(tmp_path / "m.onnx", "allocate")
    data = dark_folders(tmp_path / "data", bright="real/05.png")
    args = [model, "--data", data, "-o", tmp_path / "out" / "r.html", "-p", "contrast"]
    code, err, peak = audit_in_child([*args, "--max-memory", "2G"], tmp_path)
    assert code == EXIT_CANNOT_RUN
    line = assert_one_line(err)
    assert "needs more memory than --max-memory 2G allows (while running the model)" in line
    assert peak < 2 * 10**9  # the 8 GB were never taken
    kept = journal_records(tmp_path / "out" / "r.json.journal")
    assert kept and all("skip" not in r for r in kept)  # not recorded as a skipped sample


def test_a_parameter_that_needs_more_than_max_memory_stops_cleanly(tmp_path, data_dir):
    model = build_model(tmp_path / "m.onnx", size=(224, 224))  # 0.6 MB a row
    args = [model, "--data", data_dir, "-o", tmp_path / "out" / "r.html"]
    args += ["-p", "pixelate:factor=0.5", "--repeats", "5000", "--max-memory", "2G"]
    code, err, peak = audit_in_child(args, tmp_path)  # 3 GB of rows for each image
    assert code == EXIT_CANNOT_RUN
    line = assert_one_line(err)
    assert "than --max-memory 2G allows (while decoding, perturbing and preprocessing" in line
    assert peak < 2 * 10**9


def test_max_memory_below_what_the_process_uses_is_refused(binary_model, data_dir, tmp_path):
    code, err = check(
        binary_model, "--data", data_dir, "-o", tmp_path / "r.html", "--max-memory", "1M"
    )
    assert code == EXIT_CANNOT_RUN
    assert "--max-memory 1M is below the" in assert_one_line(err)
    assert not (tmp_path / "r.json.journal").exists()


def test_the_watchdog_reports_a_resident_size_over_its_limit():
    """Where the address space cannot be limited (a GPU provider), a watchdog does it."""
    seen: list[int] = []
    watchdog = memory.Watchdog(10**6, seen.append)  # 1 MB: this process holds far more
    watchdog.start()
    watchdog.join(timeout=10)
    assert seen and seen[0] > 10**6 and not watchdog.is_alive()


def test_memory_sizes_are_described_as_given():
    assert memory.describe_size(8 * 10**9) == "8G"
    assert memory.describe_size(512 * 10**6) == "512M"
    assert memory.describe_size(2 * 1024**3) == "2GiB"
    assert 0 < memory.default_max_memory() < memory.machine_memory()


# -- the journal is keyed on content; forged records are refused -----------------------------


def bmp_folders(root: Path, per_class: int = 30) -> Path:
    """Class folders of uncompressed BMPs: same dimensions, same byte size."""
    rng = np.random.default_rng(3)
    for i in range(per_class):
        for label, red in (("real", 0.2), ("fake", 0.8)):
            path = root / label / f"{i:02d}.bmp"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), colour_image(rng, red)[:, :, ::-1])
    return root


def resume_command(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "auditor", "check", str(model), "--data", str(data),
        "-o", str(out / "r.html"), "-p", "gaussian_noise", "-p", "pixelate", *extra,
    ]  # fmt: skip


def test_resume_rescores_a_file_whose_content_changed(binary_model, tmp_path):
    data = bmp_folders(tmp_path / "data")
    killed = tmp_path / "killed"
    slow = ["--workers", "1", "--batch-size", "1"]
    process = start(resume_command(binary_model, data, killed, *slow))
    wait_for_records(killed / "r.json.journal", 10, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    scored = [r["k"] for r in journal_records(killed / "r.json.journal") if "sha" in r]
    changed = data / scored[0]
    before = changed.stat().st_size
    cv2.imwrite(str(changed), colour_image(np.random.default_rng(9), 0.5)[:, :, ::-1])
    assert changed.stat().st_size == before  # same size, other pixels
    resumed = start(resume_command(binary_model, data, killed, "--resume"))
    _, err = resumed.communicate()
    assert resumed.returncode == EXIT_OK, err
    fresh = start(resume_command(binary_model, data, tmp_path / "fresh"))
    assert fresh.wait() == EXIT_OK
    a, b = (
        without_run_specifics(json.loads((out / "r.json").read_text()), ("command_line",))
        for out in (killed, tmp_path / "fresh")
    )
    a["config"].pop("workers"), b["config"].pop("workers")
    assert a == b


@pytest.fixture
def interrupted(binary_model, data_dir, tmp_path, monkeypatch):
    """An audit stopped after a few samples by an interrupt: its arguments and journal."""
    import auditor.cli.progress as progress

    class StopSoon:
        unit = "images x levels"

        def __init__(self, *args):
            self.calls = 0

        def __call__(self, done, total):
            self.calls += 1
            if self.calls == 6:
                raise KeyboardInterrupt

    monkeypatch.setattr(progress, "audit_bar", StopSoon)
    args = [binary_model, "--data", data_dir, "-o", tmp_path / "r.html", "-p", "gaussian_noise"]
    args += ["--workers", "1", "--batch-size", "1"]
    code, _ = check(*args)
    monkeypatch.undo()
    path = tmp_path / "r.json.journal"
    assert code == EXIT_CANNOT_RUN and len(journal_records(path)) >= 5
    return args, path


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (lambda r: {**r, "i": 10**6}, "journal record 1000000 is out of range"),
        (lambda r: {**r, "i": "3"}, 'has the index "3", not a whole number'),
        (lambda r: {**r, "c": r["c"][:1]}, "probability vectors of 1 classes; the model gives 2"),
        (lambda r: {**r, "p": r["p"][:-1]}, "has 4 draws; the plan has 5"),
        (lambda r: {**r, "p": [["x", 1]] * len(r["p"])}, "its probabilities are not a table"),
    ],
    ids=["index-out-of-range", "string-index", "short-vector", "draw-count", "not-numbers"],
)
def test_a_forged_journal_record_is_refused_with_its_reason(interrupted, forge, reason):
    args, path = interrupted
    records = journal_records(path)
    good = next(r for r in records if "sha" in r)
    with open(path, "ab") as handle:  # a valid checksum: only the content is wrong
        handle.write(journal.encode(forge(good)))
    code, err = check(*args, "--resume")
    assert code == EXIT_CANNOT_RUN
    line = assert_one_line(err)
    assert f"cannot resume: line {len(records) + 2}: " in line and reason in line, line


def test_a_resume_after_an_interrupt_completes(interrupted):
    args, path = interrupted
    code, err = check(*args, "--resume")
    assert code == EXIT_OK, err
    assert not path.exists()


# -- parameters within their declared ranges --------------------------------------------------


def builtin_perturbations():
    return [p for p in REGISTRY.values() if p.function.__module__.startswith("auditor.")]


def test_every_parameter_of_every_perturbation_has_a_range_holding_its_levels():
    assert len(builtin_perturbations()) == len(perturbations.SUITES["all"])
    for p in builtin_perturbations():
        assert set(p.ranges) == set(p.param_names), p.name
        for level in p.levels:
            for key, value in level.items():
                assert value in p.ranges[key], (p.name, key, value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("jpeg_compression:quality=500", "quality must be 0..100, got 500"),
        ("jpeg_compression:quality=-5", "quality must be 0..100, got -5"),
        ("pixelate:factor=0", "factor must be (0, 1], got 0"),
        ("gaussian_blur:sigma=-1", "sigma must be >= 0, got -1"),
        ("shot_noise:photons=0", "photons must be (0, 10000], got 0"),
        ("gaussian_blur:sigma=1e9", "more than the diagonal of the 224 px reference image"),
        ("video_compression:crf=52", "crf must be 0..51"),
        ("linf_noise:eps=1.5", "eps must be 0..1"),
        ("square_linf:eps=-0.1", "eps must be 0..1"),
    ],
)
def test_a_parameter_outside_its_range_is_refused_before_the_audit(
    binary_model, data_dir, tmp_path, spec, message
):
    out = tmp_path / "out"
    code, err = check(binary_model, "--data", data_dir, "-o", out / "r.html", "-p", spec)
    assert code == EXIT_CANNOT_RUN
    assert message in assert_one_line(err)
    assert not out.exists()  # refused before any work


def test_a_pixel_parameter_beyond_an_image_s_diagonal_is_refused_on_that_image():
    image = np.zeros((30, 40, 3), np.uint8)  # diagonal 50 px
    rng = np.random.default_rng(0)
    assert apply("gaussian_blur", image, {"sigma": 50.0}, rng, scale_to_input=False).shape
    with pytest.raises(SampleError, match=r"sigma 51 px is more than this image's diagonal \(50"):
        apply("gaussian_blur", image, {"sigma": 51.0}, rng, scale_to_input=False)
    assert math.isclose(50.0, math.hypot(30, 40))


# -- outputs that cannot be written are refused before the audit ------------------------------


def test_json_and_report_on_one_path_are_refused(binary_model, data_dir, tmp_path):
    same = tmp_path / "out" / "x.json"
    code, err = check(binary_model, "--data", data_dir, "-o", same, "--json", same)
    assert code == EXIT_CANNOT_RUN
    assert "would both be written to" in assert_one_line(err)
    assert not same.parent.exists()  # refused before the audit


@pytest.mark.parametrize("flag", ["-o", "--json"])
def test_an_output_under_a_regular_file_is_refused(binary_model, data_dir, tmp_path, flag):
    (tmp_path / "file").write_text("not a folder")
    target = tmp_path / "file" / "sub" / "r.json"
    code, err = check(binary_model, "--data", data_dir, flag, target)
    assert code == EXIT_CANNOT_RUN
    assert "file is a file, not a folder" in assert_one_line(err)


# -- determinism: the batch size does not change the results ---------------------------------


def test_results_are_byte_identical_whatever_the_batch_size(tmp_path):
    """The sample detector's probabilities moved in their last bits with the batch shape
    (numpy's exp over its logits) until every model call took one fixed shape."""
    model = SAMPLES / "detector_a.onnx"
    texts = []
    for name, tuning in (("one", ["--batch-size", "1"]), ("many", ["--batch-size", "16"])):
        out = tmp_path / name
        extra = ["--workers", "1", "--streams", "1", "--threads", "1"] if name == "one" else []
        args = [model, "--data", SAMPLES / "data", "--limit", "60", "-o", out / "r.html"]
        code, err = check(*args, *tuning, *extra)
        assert code == EXIT_OK, err
        keys = ("workers", "batch_size", "command_line")
        results = without_run_specifics(json.loads((out / "r.json").read_text()), keys)
        texts.append(json.dumps(results, sort_keys=True))
    assert texts[0] == texts[1]
