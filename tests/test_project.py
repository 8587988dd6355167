"""The project's own promises: README commands, CI script and documented options agree."""

from __future__ import annotations

import re
from pathlib import Path

from auditor.cli import check

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """The shell lines of the README's first code block."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    assert block, "README has no code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_the_readme_test_command():
    test_lines = [line for line in readme_commands() if "pytest" in line]
    assert test_lines, "the README's first code block names no test command"
    ci = (ROOT / ".ci" / "run").read_text()
    for line in test_lines:
        assert line.strip() in ci, f"CI does not run the README's test command: {line}"


def test_readme_quickstart_audits_the_bundled_samples():
    lines = "\n".join(readme_commands())
    assert "auditor check samples/deepfake/detector_a.onnx --data samples/deepfake/data" in lines


def test_every_check_option_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [
        opt
        for param in check.params
        for opt in param.opts
        if opt.startswith("--") and opt not in readme
    ]
    assert not missing, f"options missing from the README: {missing}"


def test_the_readme_shows_the_first_screen_and_names_the_schema():
    import struct

    readme = (ROOT / "README.md").read_text()
    assert "![The first screen of the quickstart report](docs/first-screen.png)" in readme
    shot = ROOT / "docs" / "first-screen.png"
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (1280, 1000)  # the first screen
    assert shot.stat().st_size < 150_000
    assert (ROOT / "samples" / "screenshot.py").is_file()  # what regenerates it
    assert "auditor/schema/results.schema.json" in readme
    assert (ROOT / "auditor" / "schema" / "results.schema.json").is_file()


def test_ci_installs_what_the_browser_tests_need():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "apt-get install -y chromium poppler-utils" in ci
