"""The gradient attacks in an audit: the sample detectors, results, report, the trust label."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import main

pytest.importorskip("torch")

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "deepfake"
PAPER = "eps=0.01,0.05,0.1,0.2"


def audit(tmp_path: Path, detector: str, *args: str) -> dict:
    out = tmp_path / f"{detector}.html"
    result = CliRunner().invoke(
        main,
        ["check", str(SAMPLES / f"{detector}.onnx"), "--data", str(SAMPLES / "data"),
         "--limit", "40", "-o", str(out), *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return {"json": json.loads(out.with_suffix(".json").read_text()), "html": out.read_text()}


@pytest.fixture(scope="module", params=["detector_a", "detector_b"])
def detector(request, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp(request.param)
    return audit(tmp, request.param, "-p", f"pgd_linf:{PAPER}", "-p", f"linf_noise:{PAPER}")


def ra(results: dict, name: str) -> list[float]:
    return [r["ra"] for r in results["results"] if r["perturbation"] == name]


def test_pgd_is_at_least_as_strong_as_random_noise(detector):
    pgd, noise = ra(detector["json"], "pgd_linf"), ra(detector["json"], "linf_noise")
    assert len(pgd) == len(noise) == 4
    assert all(a <= b for a, b in zip(pgd, noise)), (pgd, noise)


def test_each_level_records_its_gradient_source_and_fidelity(detector):
    section = detector["json"]["adversarial"]
    levels = section["perturbations"]["pgd_linf"]
    assert [lv["params"]["eps"] for lv in levels] == [0.01, 0.05, 0.1, 0.2]
    for level in levels:
        fidelity = level["twin_fidelity"]
        assert fidelity["trusted"] is True and fidelity["tolerance"] == 1e-3
        assert 0 <= fidelity["clean"] <= 1e-5 and 0 <= fidelity["adversarial"] <= 1e-5
        assert level["gradient_source"].startswith("white-box")
    assert section["attacks"]["pgd_linf"]["steps"] == 10
    config = detector["json"]["config"]
    assert (config["twin_tolerance"], config["attack_steps"], config["restarts"]) == (1e-3, 0, 1)
    assert "queries" not in config  # no square_linf planned
    assert "PyTorch twin" in section["threat_model"]
    assert "stayed within" in section["threat_model"]  # the fidelity, named


def test_the_report_shows_the_gradient_column(detector):
    html = detector["html"]
    assert "Gradient (largest |twin &minus; onnxruntime|)" in html
    assert "<td>white-box (" in html


def test_an_inexact_twin_is_a_transfer_attack(tmp_path):
    """With a tolerance below the twin's float drift, the level is labelled a transfer."""
    run = audit(tmp_path, "detector_a", "-p", "fgsm:eps=8/255", "--twin-tolerance", "1e-12")
    level = run["json"]["adversarial"]["perturbations"]["fgsm"][0]
    assert level["twin_fidelity"]["trusted"] is False
    assert level["gradient_source"].startswith("transfer attack from an inexact surrogate")
    assert "transfer attack (inexact surrogate: gradient untrusted)" in run["html"]
    assert "at L1 the twin differs" in run["json"]["adversarial"]["threat_model"]
