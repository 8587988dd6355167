"""The streaming engine: shards merge to one run, tuning never changes results, bad
samples are skipped with their reason, and the moved samples and determinism probe."""

from __future__ import annotations

import json
import pickle
import struct
import zlib
from dataclasses import replace

import cv2
import numpy as np
import pytest
from conftest import build_model, colour_image, without_run_specifics, write_image

from auditor import AuditConfig, run_audit
from auditor.engine.pipeline import plan_tuning
from auditor.engine.run import merge, run_shard
from auditor.results import to_json

ECHOED = ("batch_size", "workers")


def comparable(results) -> str:
    """The results JSON less timestamps, environment and the echoed tuning options."""
    data = without_run_specifics(json.loads(to_json(results)), ECHOED)
    data["model"]["runtime"].pop("session_options")  # echoes the onnxruntime threads
    return json.dumps(data, sort_keys=True)


@pytest.fixture
def config(binary_model, data_dir):
    return AuditConfig(
        model_path=binary_model,
        data_path=data_dir,
        perturbations=("gaussian_noise:sigma=0.1,0.3", "jpeg_compression:quality=50,10"),
        repeats=2,
    )


def test_json_is_identical_for_any_workers_batch_size_streams_and_threads(config):
    reference = comparable(run_audit(replace(config, workers=1, batch_size=1, streams=1)))
    for workers, batch, streams, threads in [(3, 7, 2, 1), (2, 64, 1, 2), (1, 5, 3, 0)]:
        tuned = replace(
            config,
            workers=workers,
            batch_size=batch,
            streams=streams,
            model=replace(config.model, threads=threads),
        )
        assert comparable(run_audit(tuned)) == reference


def test_two_shards_merge_to_the_same_json_as_one_run(config):
    one = run_audit(config)
    parts = [run_shard(config, (i, 2)) for i in range(2)]
    parts = [pickle.loads(pickle.dumps(p)) for p in parts]  # plain picklable data
    assert {p.done for p in parts} == {p.total for p in parts}
    assert comparable(merge(parts[::-1])) == comparable(one)


def test_merge_refuses_shards_of_different_audits(config):
    a = run_shard(config, (0, 2))
    b = run_shard(replace(config, seed=1), (1, 2))
    with pytest.raises(Exception, match="different settings"):
        merge([a, b])


def test_moved_samples_are_the_largest_deltas(config):
    results = run_audit(config)
    assert set(results.moved) == {"gaussian_noise", "jpeg_compression"}
    for name, moved in results.moved.items():
        assert len(moved) == 3
        deltas = [m["delta"] for m in moved]
        assert deltas == sorted(deltas, reverse=True)
        worst = max(r.delta_quantiles["max"] for r in results.results if r.perturbation == name)
        assert deltas[0] == worst
        first = moved[0]
        assert first["clean_thumbnail"].startswith("data:image/png;base64,")
        assert first["perturbed_thumbnail"].startswith("data:image/png;base64,")
        assert len(first["clean_probs"]) == 2 and first["label"] in ("real", "fake")
        diff = max(abs(a - b) for a, b in zip(first["clean_probs"], first["perturbed_probs"]))
        assert diff == pytest.approx(first["delta"], abs=2e-6)


def test_determinism_probe_reruns_a_subset(config):
    results = run_audit(config)
    probe = results.determinism
    # every probe sample clean, and each of the 4 levels once (first repeat)
    assert probe["n_samples"] == 8 and probe["n_evaluations"] == 8 + 4
    assert probe["max_abs_diff"] == 0.0 and probe["decision_flips"] == 0
    assert results.status == "complete"
    assert results.progress["done"] == results.progress["total"] == 24 * (1 + 4 * 2)


def test_fixed_batch_one_model(tmp_path, data_dir):
    fixed = build_model(tmp_path / "b1.onnx", batch=1, metadata={"classes": ["real", "fake"]})
    config = AuditConfig(model_path=fixed, data_path=data_dir, perturbations=("contrast",))
    dynamic = build_model(tmp_path / "dyn.onnx", metadata={"classes": ["real", "fake"]})
    a = json.loads(comparable(run_audit(replace(config, batch_size=16))))
    b = json.loads(comparable(run_audit(replace(config, model_path=dynamic))))
    assert a["results"] == b["results"] and a["clean"] == b["clean"]


def _png_header_only(path, width, height):
    """A PNG whose header claims `width` x `height` (a decompression bomb's first bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def test_bad_samples_are_skipped_with_their_reason(config, data_dir):
    _png_header_only(data_dir / "real" / "bomb.png", 100_000, 100_000)
    ok, jpeg = cv2.imencode(".jpg", colour_image(np.random.default_rng(1), 0.2))
    (data_dir / "fake" / "cut.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    write_image(
        data_dir / "real" / "big.png", colour_image(np.random.default_rng(2), 0.2, (60, 60))
    )
    results = run_audit(replace(config, max_pixels=2000))
    reasons = {s["path"]: s["reason"] for s in results.data["skipped"]}
    assert (
        "over the limit" in reasons["real/bomb.png"] and "--max-pixels" in reasons["real/bomb.png"]
    )
    assert "over the limit" in reasons["real/big.png"]
    assert "truncated" in reasons["fake/cut.jpg"]
    assert results.data["n_samples"] == 24 and results.data["n_skipped"] == 3


def test_grey_and_rgba_images_are_converted_and_counted(config, data_dir):
    cv2.imwrite(str(data_dir / "real" / "grey.png"), np.full((20, 24), 60, np.uint8))
    cv2.imwrite(str(data_dir / "fake" / "alpha.png"), np.full((20, 24, 4), 200, np.uint8))
    results = run_audit(config)
    rows = {r["path"]: r for r in results.data["manifest"]}
    assert rows["real/grey.png"]["converted"] == "gray"
    assert rows["fake/alpha.png"]["converted"] == "rgba"
    assert "converted" not in rows["real/r00.png"]
    assert results.data["converted"] == {"gray": 1, "rgba": 1}


@pytest.mark.parametrize(
    "given, cores, expected",
    [
        ((0, 0, 0), 2, (2, 2, 1, 1)),  # 2 cores: two single-threaded model calls at once
        ((0, 0, 0), 16, (16, 4, 4, 1)),  # at most 4 calls, the cores shared among them
        ((0, 1, 0), 2, (2, 1, 2, 1)),  # one call gets every core
        ((0, 0, 2), 8, (8, 4, 2, 1)),  # threads given: as many calls as fit the cores
        ((1, 0, 0), 4, (1, 4, 1, 4)),  # one worker: OpenCV may use the cores itself
    ],
)
def test_tuning_shares_the_cores(given, cores, expected):
    tuning = plan_tuning(*given, cores=cores)
    assert (tuning.workers, tuning.streams, tuning.threads, tuning.opencv) == expected


def test_tuning_is_recorded_and_opencv_threads_restored(config):
    before = cv2.getNumThreads()
    tuned = replace(config, workers=2, streams=3, model=replace(config.model, threads=1))
    workers = run_audit(tuned).config["workers"]
    assert workers == {
        "pool": "threads",
        "perturbation_workers": 2,
        "inference_streams": 3,
        "onnxruntime_threads": 1,
        "opencv_threads": max(1, plan_tuning(0, 0, 0).workers // 2),
    }
    assert cv2.getNumThreads() == before
