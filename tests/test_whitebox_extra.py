"""The gradient attacks without the whitebox extra: listed everywhere, refused with one line."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner
from conftest import build_model, write_class_folders

from auditor.cli import main

ATTACKS = ("fgsm", "pgd_linf", "apgd_linf", "cw_l2")


def test_the_attacks_are_listed_with_their_settings():
    result = CliRunner().invoke(main, ["perturbations"])
    assert result.exit_code == 0
    rows = {}  # each entry's lines joined: descriptions wrap to the terminal's width
    for line in result.output.splitlines():
        if line.strip() and not line.startswith(" "):
            rows[line.split()[0]] = line
        elif line.strip() and rows:
            last = list(rows)[-1]
            rows[last] += " " + line.strip()
    for name in ATTACKS:
        assert "whitebox extra" in rows[name]
    assert "--attack-steps (10)" in rows["pgd_linf"] and "--restarts" in rows["pgd_linf"]
    assert "eps=1/255,2/255,4/255,8/255,16/255" in rows["pgd_linf"]
    assert "l2=" in rows["cw_l2"]


@pytest.mark.parametrize("name", ATTACKS)
def test_without_torch_an_attack_exits_2_naming_the_extra(tmp_path, monkeypatch, name):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails as if not installed
    model = build_model(tmp_path / "m.onnx")
    data = write_class_folders(tmp_path / "data", per_class=2)
    result = CliRunner().invoke(
        main, ["check", str(model), "--data", str(data), "-p", name, "-o", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert name in lines[0] and 'pip install "auditor[cpu,whitebox]"' in lines[0]
    assert not (tmp_path / "r.html").exists()
