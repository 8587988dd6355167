"""The results JSON Schema shipped in the package: it accepts what auditor writes, and only that."""

from __future__ import annotations

import copy
import importlib.resources
import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from conftest import SCHEMA, schema_errors

from auditor.cli import main
from auditor.errors import EXIT_OK

GOLD = Path(__file__).parent / "gold" / "results.json"


@pytest.fixture(scope="module")
def gold() -> dict:
    return json.loads(GOLD.read_text())


def test_the_schema_ships_inside_the_package_and_is_a_valid_schema() -> None:
    packaged = importlib.resources.files("auditor") / "schema" / "results.schema.json"
    assert packaged.is_file()
    schema = json.loads(packaged.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == json.loads(SCHEMA.read_text())
    assert schema["properties"]["schema"] == {"const": "auditor/results@1"}


def test_the_golden_results_fit(gold: dict) -> None:
    assert schema_errors(gold) == []


def test_a_fresh_audit_fits(binary_model, data_dir, tmp_path) -> None:
    out = tmp_path / "r.html"
    args = ["check", str(binary_model), "--data", str(data_dir), "-o", str(out)]
    result = CliRunner().invoke(main, [*args, "-p", "contrast", "-p", "jpeg_compression"])
    assert result.exit_code == EXIT_OK, result.stderr
    data = json.loads(out.with_suffix(".json").read_text())
    assert "findings" in data and data["identification"]["report_id"]
    assert schema_errors(data) == []


def test_the_keys_being_added_are_allowed(gold: dict) -> None:
    """Per level, top level, adversarial and data keys other changes add (all optional)."""
    data = copy.deepcopy(gold)
    level = data["results"][0]
    level.update(
        applied={"sigma": {"min": 0.2, "median": 0.21, "max": 0.25}},
        changed_share=0.0,
        psnr_median=None,
        no_effect=True,
        outcomes={"correct": "/w==", "robust": {"0.1": "/w=="}, "flipped": "AA=="},
        face_found_rate=0.97,
    )
    data["findings"] = [
        {
            "rule": "no_effect",
            "severity": "medium",
            "text": "level(s) had no effect",
            "perturbation": "gaussian_noise",
            "level": 1,
            "metric": None,
            "value": None,
            "ci": None,
        }
    ]
    data["adversarial"] = {
        "queries": 10,
        "perturbations": {
            "pgd_linf": [
                {"level": 1, "params": {"eps": 0.01}, "gradient_source": "twin",
                 "twin_fidelity": {"clean": 1e-6, "adversarial": 2e-6}},
            ]
        },
    }  # fmt: skip
    data["data"]["face_crop"] = {"preset": "ffpp", "detector": "yunet", "score": 0.6}
    assert schema_errors(data) == []


@pytest.mark.parametrize(
    "break_it, where",
    [
        (lambda d: d["results"][0].update(ra="0.9"), "['results', 0, 'ra']"),
        (lambda d: d.pop("results"), "[]: 'results' is a required property"),
        (lambda d: d["results"][0]["ra_ci"].append(1.0), "['results', 0, 'ra_ci']"),
        (lambda d: d.update(schema="auditor/results@2"), "['schema']"),
        (
            lambda d: d.update(findings=[{"rule": "x", "severity": "urgent"}]),
            "['findings', 0]",
        ),
    ],
)
def test_results_that_are_not_auditor_results_do_not_fit(gold: dict, break_it, where) -> None:
    data = copy.deepcopy(gold)
    break_it(data)
    errors = schema_errors(data)
    assert errors and any(e.startswith(where) for e in errors), errors
