"""End-to-end audits through the engine on tiny real models and image folders."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from conftest import build_model, write_class_folders

from auditor import AuditConfig, run_audit
from auditor.config import ModelOptions
from auditor.errors import ConfigError, DataError
from auditor.results import AuditResults, to_json

TIMES = ("created_at", "started_at", "finished_at")


def comparable(results: AuditResults) -> dict:
    """The results less timestamps and the batch size option itself."""
    data = json.loads(to_json(results))
    for key in TIMES:
        data.pop(key)
    data["config"].pop("batch_size")
    return data


@pytest.fixture
def config(binary_model, data_dir):
    return AuditConfig(
        model_path=binary_model,
        data_path=data_dir,
        perturbations=("gaussian_noise", "jpeg_compression:quality=50,10"),
    )


def test_one_result_per_perturbation_level_with_every_tolerance(config):
    results = run_audit(config)
    assert [(r.perturbation, r.level) for r in results.results] == [
        ("gaussian_noise", lv) for lv in range(1, 6)
    ] + [("jpeg_compression", 1), ("jpeg_compression", 2)]
    for r in results.results:
        assert set(r.rr) == {"0.01", "0.05", "0.1", "0.2"} == set(r.rr_ci)
        assert r.n == 24 and 0 <= r.ra <= 1
    assert results.results[5].params == {"quality": 50}
    assert results.clean["n"] == 24 and results.clean["accuracy"] is not None
    assert results.data["class_counts"] == {"fake": 12, "real": 12}
    assert results.model["task"] == "binary" and results.model["classes"] == ["real", "fake"]
    assert len(results.data["manifest"]) == 24 and len(results.data["manifest_sha256"]) == 64


def test_results_do_not_depend_on_batch_size(config):
    one = comparable(run_audit(replace(config, batch_size=1)))
    seven = comparable(run_audit(replace(config, batch_size=7)))
    assert one == seven


def test_seed_changes_random_perturbations_only(config):
    a = run_audit(config)
    b = run_audit(replace(config, seed=1))
    noise = [r.delta_quantiles for r in a.results if r.perturbation == "gaussian_noise"]
    other = [r.delta_quantiles for r in b.results if r.perturbation == "gaussian_noise"]
    assert noise != other
    assert [r.rr for r in a.results if r.perturbation == "jpeg_compression"] == [
        r.rr for r in b.results if r.perturbation == "jpeg_compression"
    ]


def test_repeats_are_worst_of_r(config):
    one = run_audit(replace(config, perturbations=("gaussian_noise",)))
    three = run_audit(replace(config, perturbations=("gaussian_noise",), repeats=3))
    for a, b in zip(one.results, three.results):
        assert b.rr["0.01"] <= a.rr["0.01"] and b.ra <= a.ra
        assert b.delta_quantiles["max"] >= a.delta_quantiles["max"]
    assert three.config["repeats"] == 3


def test_unlabelled_audit_has_rr_and_flip_rate_only(binary_model, tmp_path):
    data = write_class_folders(tmp_path / "d", per_class=3)
    flat = tmp_path / "flat"
    flat.mkdir()
    for image in data.rglob("*.png"):
        (flat / f"{image.parent.name}_{image.name}").write_bytes(image.read_bytes())
    results = run_audit(
        AuditConfig(model_path=binary_model, data_path=flat, perturbations=("contrast",))
    )
    assert results.clean["accuracy"] is None and results.data["kind"] == "unlabelled"
    assert all(r.ra is None and r.rr["0.1"] is not None for r in results.results)
    assert results.summary[0].mean_ra is None


def test_corrupt_images_are_skipped_and_the_audit_goes_on(config, data_dir):
    (data_dir / "real" / "broken.png").write_bytes(b"not an image")
    results = run_audit(config)
    assert results.data["n_skipped"] == 1 and results.data["n_samples"] == 24
    assert results.data["skipped"][0]["path"] == "real/broken.png"
    assert "not a decodable image" in results.data["skipped"][0]["reason"]


def test_all_images_unusable_is_a_data_error(binary_model, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.png").write_bytes(b"junk")
    with pytest.raises(DataError, match="no usable images"):
        run_audit(AuditConfig(model_path=binary_model, data_path=tmp_path))


def test_labels_must_be_model_classes(tmp_path):
    model = build_model(tmp_path / "m.onnx", metadata={"classes": ["cat", "dog"]})
    data = write_class_folders(tmp_path / "d", per_class=2)
    with pytest.raises(DataError, match="label 'fake' is not one of the model's classes"):
        run_audit(AuditConfig(model_path=model, data_path=data))


def test_classes_default_to_sorted_folder_names(tmp_path):
    model = build_model(tmp_path / "m.onnx")
    data = write_class_folders(tmp_path / "d", per_class=2)
    results = run_audit(AuditConfig(model_path=model, data_path=data, perturbations=("contrast",)))
    assert results.model["classes"] == ["fake", "real"]


def test_limit_is_stratified(config):
    results = run_audit(replace(config, limit=6))
    assert results.data["class_counts"] == {"fake": 3, "real": 3}


def test_gates_pass_and_fail(config):
    passing = run_audit(replace(config, fail_under_rr=0.0, fail_under_ra=0.0))
    assert passing.verdict.passed and len(passing.verdict.gates) == 2
    failing = run_audit(replace(config, fail_under_rr=1.01))
    gate = failing.verdict.gates[0]
    assert not failing.verdict.passed and not gate.passed and gate.metric == "rr"
    assert gate.where.startswith(("gaussian_noise", "jpeg_compression"))


def test_ra_gate_needs_labels(binary_model, tmp_path):
    rng_dir = write_class_folders(tmp_path / "d", per_class=1)
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "x.png").write_bytes(next(rng_dir.rglob("*.png")).read_bytes())
    with pytest.raises(ConfigError, match="needs labelled data"):
        run_audit(AuditConfig(model_path=binary_model, data_path=flat, fail_under_ra=0.5))


def test_json_round_trip(config):
    results = run_audit(config)
    again = AuditResults.from_dict(json.loads(to_json(results)))
    assert to_json(again) == to_json(results)
    assert json.loads(to_json(results))["schema"] == "auditor/results@1"


def test_thumbnails_one_per_level(config):
    thumbs = run_audit(config).thumbnails
    assert thumbs["clean"].startswith("data:image/png;base64,")
    assert len(thumbs["levels"]["gaussian_noise"]) == 5
    assert len(thumbs["levels"]["jpeg_compression"]) == 2


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(tolerances=(0.05,)), "headline tolerance"),
        (dict(repeats=0), "--repeats"),
        (dict(threshold=1.5), "--threshold"),
        (dict(tolerances=(0.1, 2.0)), "tolerances must be"),
    ],
)
def test_bad_options_are_config_errors(config, change, message):
    with pytest.raises(ConfigError, match=message):
        run_audit(replace(config, **change))


def test_three_class_model(tmp_path):
    model = build_model(
        tmp_path / "m.onnx", classes=3, head="none", metadata={"classes": ["fake", "real", "other"]}
    )
    data = write_class_folders(tmp_path / "d", per_class=3)
    results = run_audit(
        AuditConfig(
            model_path=model,
            data_path=data,
            perturbations=("brightness",),
            model=ModelOptions(output_kind="logits"),
        )
    )
    assert results.model["task"] == "multiclass" and results.model["positive_class"] is None
    assert results.results[0].auc is None and results.results[0].ra is not None


def test_a_file_changed_between_passes_is_dropped_from_the_probe_and_stops_a_search(tmp_path):
    """The probe leaves out a sample that no longer decodes; a search stops with one line."""
    from auditor import data
    from auditor.engine.probe import _rescored
    from auditor.engine.shard import _decode_again
    from auditor.errors import DataError, SampleError

    def gone(*args):
        raise SampleError("file not found")

    assert _rescored(gone, None, None, ()) is None
    assert _rescored(lambda *args: "rows", None, None, ()) == "rows"
    missing = data.Sample(key="real/x.png", path=tmp_path / "x.png", label="real")
    with pytest.raises(DataError, match=r"real/x.png changed on disk during the audit .*--resume"):
        _decode_again(missing, 1000)
