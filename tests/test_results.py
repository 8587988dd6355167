"""The results JSON contract: keys, tolerance keys and atomic writes."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from auditor.results import load_json, tolerance_key, write_atomic


@pytest.mark.parametrize(
    "b, key", [(0.1, "0.1"), (0.01, "0.01"), (0.05, "0.05"), (0.2, "0.2"), (1.0, "1"), (0, "0")]
)
def test_tolerance_keys_are_the_decimal_string(b, key):
    assert tolerance_key(b) == key


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "r.json"
    write_atomic(target, "one")
    write_atomic(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("old")

    with pytest.raises(TypeError):
        write_atomic(target, 42)  # type: ignore[arg-type]  # write() refuses an int
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_required_keys_of_the_interface_spec(binary_model, data_dir, tmp_path):
    from auditor import AuditConfig, run_audit
    from auditor.publish import WRITERS

    results = run_audit(
        AuditConfig(model_path=binary_model, data_path=data_dir, perturbations=("contrast",))
    )
    WRITERS["json"].write(results, tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    for key in (
        "schema",
        "auditor_version",
        "created_at",
        "model",
        "data",
        "config",
        "environment",
        "clean",
        "results",
        "verdict",
    ):
        assert key in data
    assert {"path", "sha256", "inputs", "outputs", "output_kind", "classes", "task"} <= set(
        data["model"]
    )
    assert {"path", "n_samples", "n_skipped", "manifest_sha256", "class_counts", "skipped"} <= set(
        data["data"]
    )
    assert {
        "suite",
        "perturbations",
        "tolerances",
        "seed",
        "repeats",
        "threshold",
        "preprocess",
    } <= set(data["config"])
    assert {"python", "onnxruntime", "onnx", "opencv", "numpy", "provider", "platform"} <= set(
        data["environment"]
    )
    assert {"accuracy", "accuracy_ci", "n"} <= set(data["clean"])
    assert {
        "perturbation",
        "family",
        "level",
        "params",
        "n",
        "ra",
        "ra_ci",
        "rr",
        "rr_ci",
        "flip_rate",
        "delta_quantiles",
        "per_class",
        "auc",
    } <= set(data["results"][0])
    assert {"p50", "p90", "max"} == set(data["results"][0]["delta_quantiles"])
    assert {"passed", "gates"} <= set(data["verdict"])
    assert load_json(tmp_path / "r.json").results[0].perturbation == "contrast"


def test_load_json_refuses_another_schema(tmp_path):
    (tmp_path / "x.json").write_text('{"schema": "other@1"}')
    with pytest.raises(ValueError, match="expected schema auditor/results@1"):
        load_json(tmp_path / "x.json")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_older_json_without_the_newer_keys_loads(tmp_path):
    """Results written before identification, moved samples and interval gates."""
    from pathlib import Path

    from auditor.results import from_json

    data = json.loads((Path(__file__).parent / "gold" / "results.json").read_text())
    for key in ("identification", "moved", "determinism", "status", "progress"):
        del data[key]
    data["verdict"] = {"passed": True, "gates": []}
    results = from_json(json.dumps(data))
    assert results.status == "complete" and results.moved == {} and results.determinism is None
    assert results.verdict.result == "NO GATES" and results.identification == {}


def test_to_json_is_safe_inside_html_and_round_trips():
    from pathlib import Path

    from auditor.results import from_json, to_json

    results = load_json(Path(__file__).parent / "gold" / "results.json")
    odd = dataclasses.replace(results, data={**results.data, "path": "a</script>&<!--b"})
    text = to_json(odd)
    assert "<" not in text and ">" not in text and "&" not in text and text.isascii()
    assert from_json(text).data["path"] == "a</script>&<!--b"
    assert to_json(from_json(text)) == text


@pytest.mark.parametrize(
    "text, message",
    [("{", "not JSON"), ("[]", "expected schema"), ('{"schema": "other"}', "expected schema")],
)
def test_from_json_refuses_what_is_not_results(text, message):
    from auditor.results import from_json

    with pytest.raises(ValueError, match=message):
        from_json(text, "x.json")
