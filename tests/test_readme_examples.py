"""The README's Python examples run as written, against the bundled samples."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_readme_has_python_examples() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 4
    assert any("run_audit" in block for block in blocks)


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_example_runs(index: int, tmp_path: Path) -> None:
    """Each block runs in a fresh interpreter, where the samples and a face.png exist."""
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    face = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "face.png"), face)
    run = subprocess.run(
        [sys.executable, "-c", python_blocks()[index]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
