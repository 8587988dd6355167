"""`auditor inspect` and the model cases through the CLI: exit codes and messages."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
from click.testing import CliRunner
from zoo import build, labels_prop, retarget_external

from auditor.cli import main
from auditor.config import ModelOptions
from auditor.errors import EXIT_CANNOT_RUN, EXIT_OK
from auditor.model.inspection import inspect_model


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def inspect_json(path, *flags):
    result = run("inspect", path, "--json", *flags)
    assert result.exit_code == EXIT_OK, result.stderr
    return json.loads(result.stdout)


def test_inspect_prints_the_facts_and_the_flags(tmp_path):
    zoo = build(tmp_path / "m.onnx", layout="nhwc", dtype="uint8", classes=3, head="none")
    result = run("inspect", zoo.path)
    assert result.exit_code == EXIT_OK, result.stderr
    out = result.stdout
    for words in (
        "sha256",
        "opset      17",
        "producer   auditor-zoo",
        "* image  tensor(uint8)  ['N', 8, 8, 3]",
        "uint8, layout nhwc (from model)",
        "scale         1  (model (uint8 input: raw pixels))",
        "std           1,1,1  (default)",
        "probe      ran one probe batch of plain grey, black and white images",
        "provider   CPUExecutionProvider",
        "--layout nhwc",
    ):
        assert words in out, words
    assert result.stderr == ""


def test_inspect_json_flags_reproduce_the_reading(tmp_path):
    meta = {"size": [6, 10], "resize": "letterbox", "pad_value": 114, "mean": [0.5] * 3}
    props = {
        "auditor.preprocess": json.dumps(meta),
        **labels_prop("labels", ["a", "b"], "comma"),
    }
    zoo = build(tmp_path / "m.onnx", size=("H", "W"), head="none", props=props)
    report = inspect_json(zoo.path)
    assert report["preprocess_sources"]["size"] == "metadata"
    assert report["preprocess_sources"]["pad_value"] == "metadata"
    assert report["classes"] == ["a", "b"] and report["classes_source"] == "metadata (labels)"
    assert report["output_kind"] == "logits" and report["probe"]["ran"] is True
    flags = report["check_flags"]
    assert flags[flags.index("--pad-value") + 1] == "114"
    # the same reading from the flags alone, on a copy of the model without metadata
    bare = build(tmp_path / "bare.onnx", size=("H", "W"), head="none")
    from_flags = inspect_json(bare.path, *flags)
    for key in ("preprocess", "output_kind", "classes", "layout"):
        assert from_flags[key] == report[key], key
    assert set(from_flags["preprocess_sources"].values()) <= {"flag", "default"}


def test_inspect_without_probe_when_the_graph_says(tmp_path):
    report = inspect_json(build(tmp_path / "m.onnx", head="softmax").path)
    assert report["probe"]["ran"] is False and report["num_outputs"] == 2
    assert "Softmax node" in report["output_kind_evidence"]


def test_inspect_of_a_dynamic_size_says_check_needs_size(tmp_path):
    report = inspect_json(build(tmp_path / "m.onnx", size=("H", "W")).path)
    assert "check` needs --size HxW" in report["preprocess_sources"]["size"]
    assert report["preprocess"]["size"] is None
    assert "HxW" in report["check_flags"]


def test_inspect_lists_external_data_with_hashes(tmp_path):
    report = inspect_json(build(tmp_path / "m.onnx", external=True).path)
    [entry] = report["external_data"]
    assert entry["path"] == "weights.bin" and len(entry["sha256"]) == 64


def test_inspect_model_matches_the_probe_output(tmp_path):
    zoo = build(tmp_path / "m.onnx", head="none", classes=4)
    report = inspect_model(zoo.path, ModelOptions())
    assert report["num_outputs"] == 4 and report["task"] == "multiclass"
    shlex.join(report["check_flags"])  # flags are strings


# --- every refused case exits 2 with one line on stderr, for both commands ---------------


def one_error_line(result, *fragments):
    assert result.exit_code == EXIT_CANNOT_RUN, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("auditor: error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def make_case(tmp_path, case):
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "m.onnx"
    if case == "truncated":
        data = build(path).path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "text":
        path.write_text("hello\n" * 40)
    elif case == "escaping":
        build(path, external=True)
        (folder / "weights.bin").rename(tmp_path / "weights.bin")
        retarget_external(path, "../weights.bin")
    elif case == "symlink_out":
        build(path, external=True)
        (folder / "weights.bin").rename(tmp_path / "elsewhere.bin")
        (folder / "weights.bin").symlink_to(tmp_path / "elsewhere.bin")
    else:
        build(path, **case_options[case])
    return path


case_options = {
    "custom_op": {"custom_op": True},
    "two_inputs": {"optional_input": True},
    "dynamic": {"size": ("H", "W")},
    "nan": {"nan": True, "head": "none"},
    "plain": {},
}
REFUSED = [
    ("truncated", [], ["m.onnx: not"]),
    ("text", [], ["m.onnx: not"]),
    ("escaping", [], ["refusing external data '../weights.bin'", "leaves the model's folder"]),
    ("symlink_out", [], ["refusing external data 'weights.bin'", "outside the model's folder"]),
    ("custom_op", [], ["operator 'Calibrate' of domain 'vendor.ops'"]),
    ("two_inputs", [], ["several inputs (image", "gain", "--input NAME"]),
    ("plain", ["--max-model-size", "100"], ["over the limit of 100 bytes"]),
    ("plain", ["--provider", "warp"], ["unknown execution provider 'warp'"]),
]


@pytest.mark.parametrize("case, flags, fragments", REFUSED)
def test_inspect_refuses_with_one_line(tmp_path, case, flags, fragments):
    one_error_line(run("inspect", make_case(tmp_path, case), *flags), *fragments)


@pytest.mark.parametrize(
    "case, flags, fragments",
    [
        *REFUSED,
        ("dynamic", [], ["dynamic", "pass --size HxW"]),
        ("nan", [], ["output 'logits' holds", "NaN or infinite"]),
    ],
)
def test_check_refuses_with_one_line(tmp_path, data_dir, case, flags, fragments):
    path = make_case(tmp_path, case)
    result = run("check", path, "--data", data_dir, "-o", tmp_path / "r.html", *flags)
    one_error_line(result, *fragments)


@pytest.mark.parametrize(
    "options, flags",
    [
        ({"dtype": "uint8", "layout": "nhwc"}, []),
        ({"dtype": "float16", "batch": 1}, []),
        ({"size": ("H", "W")}, ["--size", "12x12"]),
        ({"optional_input": True}, ["--input", "image"]),
        ({"outputs": "logits_and_probs"}, ["--output-name", "scores"]),
        ({"head": "sigmoid", "classes": 1}, []),
        ({"external": True}, ["--provider", "cpu", "--max-model-size", "1MB"]),
    ],
)
def test_check_runs_the_zoo(tmp_path, data_dir, options, flags):
    zoo = build(tmp_path / "m.onnx", **options)
    out = tmp_path / "r.html"
    result = run(
        "check", zoo.path, "--data", data_dir, "-o", out, "-p", "contrast", "--limit", "4", *flags
    )
    assert result.exit_code == EXIT_OK, result.stderr
    model = json.loads(out.with_suffix(".json").read_text())["model"]
    assert model["runtime"]["provider"] == "CPUExecutionProvider"
    assert model["preprocess_sources"]["layout"] == "model"
    assert np.isfinite(model["size_bytes"])
    if options.get("external"):
        assert model["external_data"][0]["path"] == "weights.bin"


def test_a_bad_max_model_size_is_a_usage_error(tmp_path):
    result = run("inspect", build(tmp_path / "m.onnx").path, "--max-model-size", "big")
    assert result.exit_code == EXIT_CANNOT_RUN
    assert "expected a size such as 4GB" in result.stderr and "Traceback" not in result.output
