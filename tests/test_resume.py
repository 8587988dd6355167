"""Crash safety end to end: SIGKILL part-way then --resume, and Ctrl-C's partial report."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import schema_errors, without_run_specifics, write_class_folders

from auditor.errors import EXIT_CANNOT_RUN, EXIT_OK

ROOT = Path(__file__).resolve().parent.parent
PERTURBATIONS = ["-p", "gaussian_noise", "-p", "jpeg_compression", "-p", "pixelate"]


def command(model, data, out, *extra):
    return [
        sys.executable, "-m", "auditor", "check", str(model), "--data", str(data),
        "-o", str(out / "report.html"), *PERTURBATIONS, "--repeats", "2", *extra,
    ]  # fmt: skip


def start(args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )


def wait_for_records(journal: Path, count: int, process) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if journal.is_file() and journal.read_bytes().count(b"\n") > count:
            return
        if process.poll() is not None:
            pytest.fail("the audit finished before it could be interrupted")
        time.sleep(0.01)
    pytest.fail("no journal records appeared")


def results_without_times(path: Path) -> dict:
    return without_run_specifics(json.loads(path.read_text()), ("command_line",))


@pytest.fixture
def big_data(tmp_path):
    return write_class_folders(tmp_path / "data", per_class=60)


def test_sigkill_then_resume_gives_the_uninterrupted_results(binary_model, big_data, tmp_path):
    whole = tmp_path / "whole"
    assert start(command(binary_model, big_data, whole)).wait() == EXIT_OK
    killed = tmp_path / "killed"
    process = start(command(binary_model, big_data, killed, "--workers", "1", "--batch-size", "1"))
    journal = killed / "report.json.journal"
    wait_for_records(journal, 10, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "report.json").exists() and journal.is_file()
    resumed = start(command(binary_model, big_data, killed, "--resume"))
    _, err = resumed.communicate()
    assert resumed.returncode == EXIT_OK, err
    assert not journal.exists()  # removed after a complete run
    a, b = (
        results_without_times(whole / "report.json"),
        results_without_times(killed / "report.json"),
    )
    a["config"].pop("workers"), b["config"].pop("workers")
    assert a == b


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_writes_an_incomplete_report_and_says_how_to_resume(
    binary_model, big_data, tmp_path, signum
):
    out = tmp_path / "out"
    process = start(command(binary_model, big_data, out, "--workers", "1", "--batch-size", "1"))
    wait_for_records(out / "report.json.journal", 5, process)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == EXIT_CANNOT_RUN
    assert "interrupted after" in err and "--resume" in err and "Traceback" not in err
    assert re.search(r"interrupted after \d+ of \d+ images x levels x repeats;", err)
    partial = json.loads((out / "report.json").read_text())
    assert partial["status"] == "incomplete"
    assert 0 < partial["progress"]["done"] < partial["progress"]["total"]
    assert partial["clean"]["n"] < 120
    # issued like a complete audit: with findings, fitting the results schema
    assert isinstance(partial["findings"], list) and schema_errors(partial) == []
    html = (out / "report.html").read_text()
    assert "<title>Robustness audit of binary.onnx: INCOMPLETE</title>" in html
    resumed = start(command(binary_model, big_data, out, "--resume"))
    _, err = resumed.communicate()
    assert resumed.returncode == EXIT_OK, err
    final = json.loads((out / "report.json").read_text())
    assert final["status"] == "complete" and final["clean"]["n"] == 120


def test_resume_with_other_options_is_refused(binary_model, big_data, tmp_path):
    out = tmp_path / "out"
    process = start(command(binary_model, big_data, out, "--workers", "1", "--batch-size", "1"))
    wait_for_records(out / "report.json.journal", 5, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    other = start(command(binary_model, big_data, out, "--resume", "--seed", "3"))
    _, err = other.communicate()
    assert other.returncode == EXIT_CANNOT_RUN
    assert "cannot resume" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "reading",
    [
        ["--output-kind", "logits"],
        ["--output-name", "scores"],
        ["--input", "image"],
        ["--positive-class", "real"],
    ],
    ids=["output-kind", "output-name", "input", "positive-class"],
)
def test_resume_with_another_reading_of_the_model_is_refused(
    binary_model, big_data, tmp_path, reading
):
    """Journaled scores came from one reading of the model; another must start over."""
    out = tmp_path / "out"
    process = start(command(binary_model, big_data, out, "--workers", "1", "--batch-size", "1"))
    journal = out / "report.json.journal"
    wait_for_records(journal, 5, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = journal.read_bytes()
    other = start(command(binary_model, big_data, out, "--resume", *reading))
    _, err = other.communicate()
    assert other.returncode == EXIT_CANNOT_RUN
    assert "cannot resume" in err and "Traceback" not in err
    assert journal.read_bytes() == kept and not (out / "report.json").exists()


def test_ctrl_c_publishes_every_format_marked_incomplete(binary_model, big_data, tmp_path):
    out = tmp_path / "out"
    args = command(binary_model, big_data, out, "--workers", "1", "--batch-size", "1")
    process = start([*args, "--format", "html,junit,md"])
    wait_for_records(out / "report.json.journal", 5, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == EXIT_CANNOT_RUN, err
    files = [out / name for name in ("report.json", "report.html", "report.junit.xml")]
    assert f"INCOMPLETE to {', '.join(map(str, files))} and {out / 'report.md'}" in err
    junit = (out / "report.junit.xml").read_text()
    assert 'name="the audit ran to completion"' in junit and 'type="INCOMPLETE"' in junit
    assert "> **Incomplete**: the audit was interrupted" in (out / "report.md").read_text()
