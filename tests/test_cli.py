"""The command line: every exit code with its message, and the files it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import build_model

from auditor.cli import main
from auditor.errors import EXIT_CANNOT_RUN, EXIT_GATE_FAILED, EXIT_OK


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def audit(model, data_dir, tmp_path, *extra: str):
    """`auditor check` of `model` under contrast, writing into tmp_path/out."""
    report = str(tmp_path / "out" / "report.html")
    return run("check", str(model), "--data", str(data_dir), "-o", report, "-p", "contrast", *extra)


@pytest.fixture
def check(binary_model, data_dir, tmp_path):
    return lambda *extra: audit(binary_model, data_dir, tmp_path, *extra)


def test_check_writes_report_and_json_and_exits_0(check, tmp_path):
    result = check()
    assert result.exit_code == EXIT_OK, result.stderr
    html = (tmp_path / "out" / "report.html").read_text()
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert "<html" in html and data["schema"] == "auditor/results@1"
    assert len(data["results"]) == 5
    assert result.stdout == ""  # stdout stays clean for machine output
    assert "clean accuracy" in result.stderr and "wrote" in result.stderr
    assert data["config"]["command_line"][0] == "auditor"


def test_json_path_option(check, tmp_path):
    result = check("--json", str(tmp_path / "elsewhere.json"))
    assert result.exit_code == EXIT_OK
    assert (tmp_path / "elsewhere.json").is_file()


def test_failed_gate_exits_1_and_says_which(check):
    result = check("--fail-under-rr", "1.01")
    assert result.exit_code == EXIT_GATE_FAILED
    assert "FAIL" in result.stderr


def test_engine_tuning_options_reach_the_results(check, tmp_path):
    result = check("--workers", "1", "--streams", "3", "--threads", "1")
    assert result.exit_code == EXIT_OK, result.stderr
    tuning = json.loads((tmp_path / "out" / "report.json").read_text())["config"]["workers"]
    assert tuning["perturbation_workers"] == 1 and tuning["inference_streams"] == 3
    assert tuning["onnxruntime_threads"] == 1


def test_passed_gates_exit_0(check):
    assert check("--fail-under-ra", "0", "--fail-under-rr", "0").exit_code == EXIT_OK


def test_preprocessing_flags_reach_the_results(data_dir, tmp_path):
    model = build_model(tmp_path / "dynamic.onnx", size=("H", "W"))
    result = audit(
        model,
        data_dir,
        tmp_path,
        "--size",
        "8x12",
        "--resize",
        "letterbox",
        "--pad-value",
        "114",
        "--mean",
        "0.1,0.2,0.3",
        "--std",
        "1,1,1",
        "--scale",
        "1/255",
        "--interpolation",
        "area",
        "--tolerance",
        "0.05,0.1,0.3",
        "--repeats",
        "2",
        "--seed",
        "3",
        "--threshold",
        "0.4",
        "--positive-class",
        "fake",
        "--limit",
        "10",
        "--classes",
        "real,fake",
    )
    assert result.exit_code == EXIT_OK, result.stderr
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    prep = data["model"]["preprocess"]
    assert prep["size"] == [8, 12] and prep["resize"] == "letterbox"
    assert prep["pad_value"] == 114 and prep["interpolation"] == "area"
    assert data["model"]["preprocess_sources"]["size"] == "flag"
    assert list(data["results"][0]["rr"]) == ["0.05", "0.1", "0.3"]
    assert data["config"]["repeats"] == 2 and data["config"]["seed"] == 3
    assert data["data"]["n_samples"] == 10


def one_line_error(result, text: str) -> None:
    assert result.exit_code == EXIT_CANNOT_RUN
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert text in lines[0]
    assert "Traceback" not in result.output


def test_missing_model_exits_2(data_dir, tmp_path):
    one_line_error(
        run("check", str(tmp_path / "nope.onnx"), "--data", str(data_dir)), "model file not found"
    )


def test_non_onnx_file_exits_2(data_dir, tmp_path):
    bogus = tmp_path / "bogus.onnx"
    bogus.write_text("this is not a model")
    one_line_error(run("check", str(bogus), "--data", str(data_dir)), "not")


def test_folder_without_images_exits_2(binary_model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(run("check", str(binary_model), "--data", str(empty)), "no images found")


def test_bad_perturbation_spec_exits_2(check):
    one_line_error(check("-p", "jpeg_compression:quality=abc"), "not a number")


@pytest.mark.parametrize(
    "args, text",
    [
        (["--size", "big"], "expected HxW"),
        (["--mean", "1,2"], "expected 3 numbers"),
        (["--suite", "nope"], "nope"),
        (["--streams", "-1"], "--streams must be 0"),
        (["--threads", "-2"], "--threads must be 0"),
    ],
)
def test_bad_option_values_exit_2(check, args, text):
    result = check(*args)
    assert result.exit_code == EXIT_CANNOT_RUN and text in result.stderr


def test_perturbations_command_lists_the_registry():
    result = run("perturbations", "--suite", "quick", "--tsv")
    assert result.exit_code == 0
    names = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert names[:2] == ["name", "gaussian_noise"] and "linf_noise" in names
    assert "quality=25" in result.stdout


def test_python_dash_m_runs_the_same_cli():
    out = subprocess.run(
        [sys.executable, "-m", "auditor", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("auditor, version")


def test_an_output_under_a_file_exits_2_before_the_audit(binary_model, data_dir, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where a folder should be")
    result = run(
        "check",
        str(binary_model),
        "--data",
        str(data_dir),
        "-p",
        "contrast",
        "-o",
        str(blocker / "report.html"),
        "--json",
        str(tmp_path / "r.json"),
    )
    one_line_error(result, "cannot write the report")
    assert "file.txt is a file, not a folder" in result.stderr
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "r.json.journal").exists()


@pytest.mark.parametrize(
    "args, says",
    [
        (["check"], "Missing argument 'MODEL...'. (see 'python -m auditor check --help')"),
        (["check", "m.onnx", "--data", ".", "--bogus"], "No such option '--bogus'"),
        (["nosuch"], "No such command 'nosuch'. (see 'python -m auditor --help')"),
        (["check", "m.onnx", "--data", ".", "--suite", "nope"], "suite 'nope'; known: all, "),
        (["check", "m.onnx", "--data", ".", "--repeats", "x"], "'x' is not a valid integer"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args, says):
    """Click's three-line usage errors are folded into `auditor: error: ...`, exit 2."""
    from pathlib import Path

    run = subprocess.run(
        [sys.executable, "-m", "auditor", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("auditor: error: ")
    assert says in run.stderr


def test_help_and_version_still_exit_0():
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for args in (["--help"], ["--version"], ["check", "--help"]):
        run = subprocess.run([sys.executable, "-m", "auditor", *args], capture_output=True, env=env)
        assert run.returncode == 0 and run.stdout and not run.stderr


def test_format_writes_every_writer_next_to_the_report(check, tmp_path):
    result = check("--format", "html,json,junit,md", "--fail-under-rr", "1.01")
    assert result.exit_code == EXIT_GATE_FAILED, result.stderr
    out = tmp_path / "out"
    names = ["report.json", "report.html", "report.junit.xml", "report.md"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    wrote = [line for line in result.stderr.splitlines() if line.startswith("auditor: wrote")]
    listed = ", ".join(str(out / name) for name in names[:3])
    assert wrote == [f"auditor: wrote {listed} and {out / names[3]}"]
    junit = (out / "report.junit.xml").read_text()
    assert 'type="FAIL"' in junit and "RR(b=0.1) &gt;= 1.01 at every level" in junit
    assert "**Verdict: FAIL**" in (out / "report.md").read_text()


def test_the_json_is_written_even_when_not_listed(check, tmp_path):
    result = check("--format", "md")
    assert result.exit_code == EXIT_OK, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", "report.md"]


def test_unknown_format_exits_2_naming_the_known_ones(check, tmp_path):
    one_line_error(check("--format", "html,pdf"), "unknown format 'pdf'")
    assert "expected some of html, json, junit, md" in check("--format", "pdf").stderr
    assert not (tmp_path / "out").exists()  # refused before the audit


def test_unwritable_junit_exits_2_and_names_the_kept_files(check, tmp_path):
    (tmp_path / "out" / "report.junit.xml").mkdir(parents=True)
    result = check("--format", "html,junit")
    one_line_error(result, "cannot write the JUnit XML to")
    assert f"the results were saved to {tmp_path / 'out' / 'report.json'}" in result.stderr
    assert json.loads((tmp_path / "out" / "report.json").read_text())["results"]


def test_render_takes_the_same_formats_but_json(tmp_path):
    gold = str(Path(__file__).parent / "gold" / "results.json")
    out = tmp_path / "again.html"
    result = run("render", gold, "-o", str(out), "--format", "md,junit")
    assert result.exit_code == EXIT_OK, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.junit.xml", "again.md"]
    assert result.stderr == f"auditor: wrote {tmp_path / 'again.md'} and " + (
        f"{tmp_path / 'again.junit.xml'}\n"
    )
    refused = run("render", gold, "-o", str(out), "--format", "json")
    one_line_error(refused, "unknown format 'json'; expected some of html, junit, md")
