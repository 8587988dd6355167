"""Plugins: a tiny third-party package, found through its entry points, in real runs.

The package is written into a temporary folder (a module and a `*.dist-info` with
`entry_points.txt`, as pip would install it) and put on PYTHONPATH of a subprocess,
so the test sees what a user who installed it would see.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import build_model, write_class_folders

ROOT = Path(__file__).resolve().parent.parent

PLUGIN = '''
"""A demo plugin: more red (the fixture model calls red images fake)."""
import numpy as np
from auditor.perturbations import perturbation


@perturbation("redden", family="demo-plugin", levels={"amount": (10, 20, 40, 80, 160)})
def redden(image, rng, *, amount):
    """Add `amount` to the red channel."""
    out = image.astype(np.int16)
    out[..., 0] += int(amount)
    return np.clip(out, 0, 255).astype(np.uint8)


def register():
    @perturbation("bluer", family="demo-plugin", levels={"amount": (5, 10, 15, 20, 25)})
    def bluer(image, rng, *, amount):
        """Add `amount` to the blue channel."""
        out = image.astype(np.int16)
        out[..., 2] += int(amount)
        return np.clip(out, 0, 255).astype(np.uint8)
'''

CLASH = '''
from auditor.perturbations import perturbation


@perturbation("gaussian_noise", family="impostor", levels={"x": (1, 2, 3, 4, 5)})
def impostor(image, rng, *, x):
    """Pretends to be a built-in."""
    return image
'''

ENTRY_POINTS = """
[auditor.perturbations]
redden = auditor_demo_plugin
redden_again = auditor_demo_plugin:redden
bluer = auditor_demo_plugin:register
broken = auditor_demo_broken
impostor = auditor_demo_clash
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    (folder / "auditor_demo_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (folder / "auditor_demo_broken.py").write_text("raise RuntimeError('boom at import')\n")
    (folder / "auditor_demo_clash.py").write_text(textwrap.dedent(CLASH))
    info = folder / "auditor_demo_plugin-0.1.dist-info"
    info.mkdir()
    metadata = "Metadata-Version: 2.1\nName: auditor-demo-plugin\nVersion: 0.1\n"
    (info / "METADATA").write_text(metadata)
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return folder


def auditor(plugin_path: Path, *args: str, cwd: Path | None = None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", "auditor", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_plugins_are_listed_and_broken_ones_cost_one_line_each(plugin_path):
    result = auditor(plugin_path, "perturbations", "--tsv")
    assert result.returncode == 0, result.stderr
    rows = {line.split("\t")[0]: line.split("\t") for line in result.stdout.splitlines()}
    assert rows["redden"][1:3] == ["demo-plugin", "amount=10,20,40,80,160"]
    assert rows["redden"][3] == "Add `amount` to the red channel."
    assert rows["bluer"][1] == "demo-plugin"  # registered by a callable entry point
    # the decorated function named directly is already registered: no warning, no clash
    assert rows["gaussian_noise"][1] == "noise"  # the impostor did not replace it
    lines = warnings_of(result.stderr)
    assert len(lines) == 2 and "Traceback" not in result.stderr
    broken = next(line for line in lines if "'broken'" in line)
    assert "auditor_demo_broken" in broken and "RuntimeError: boom at import" in broken
    clash = next(line for line in lines if "'impostor'" in line)
    assert "already registered" in clash
    suite_all = auditor(plugin_path, "perturbations", "--suite", "all", "--tsv").stdout
    assert "\nredden\t" in suite_all and "\nbluer\t" in suite_all


def test_a_real_audit_runs_a_plugin_perturbation(plugin_path, tmp_path):
    model = build_model(tmp_path / "m.onnx", metadata={"classes": ["real", "fake"]})
    data = write_class_folders(tmp_path / "data", per_class=6)
    report = tmp_path / "out" / "report.html"
    result = auditor(
        plugin_path, "check", str(model), "--data", str(data), "-o", str(report), "-p", "redden"
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    results = json.loads(report.with_suffix(".json").read_text())
    rows = [r for r in results["results"] if r["perturbation"] == "redden"]
    assert [r["level"] for r in rows] == [1, 2, 3, 4, 5]
    assert {r["family"] for r in rows} == {"demo-plugin"}
    assert rows[0]["params"] == {"amount": 10}
    # more red pushes reals towards "fake": the strongest level must flip some
    assert rows[-1]["flip_rate"] > 0 and rows[-1]["ra"] < results["clean"]["accuracy"]
    assert "redden" in report.read_text()


def test_without_plugins_nothing_is_said(tmp_path):
    result = auditor(tmp_path, "perturbations")
    assert result.returncode == 0 and result.stderr == ""
    assert "redden" not in result.stdout
