"""`--face-crop` in the audit: perturb the whole image, find the face, crop, then score.

Real detector (the bundled BlazeFace), real photographs (scikit-image's astronaut on a
larger grey canvas, and its coffee cup, which has no face), the real sample detector.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from skimage import data as skimage_data

from auditor.cli import main
from auditor.config import AuditConfig, FaceOptions
from auditor.engine import run_audit
from auditor.engine.facecrop import FaceFront, lost_probs
from auditor.engine.journal import Journal
from auditor.engine.stats import LOST_DELTA, LevelStats, Scoring
from auditor.errors import ConfigError
from auditor.results import AuditResults
from auditor.verdict.findings import find

MODEL = Path(__file__).resolve().parents[1] / "samples" / "deepfake" / "detector_a.onnx"
FACE_SIDE = 320  # the astronaut's photograph, resized to this, on the canvas
PLACES = [(40, 30), (200, 60), (120, 150), (10, 200)]


def astronaut_at(x: int, y: int) -> np.ndarray:
    """The astronaut photograph at (x, y) of a 640 x 800 grey canvas (RGB)."""
    canvas = np.full((640, 800, 3), 90, np.uint8)
    photo = cv2.resize(np.ascontiguousarray(skimage_data.astronaut()[:, :, :3]), (FACE_SIDE,) * 2)
    canvas[y : y + FACE_SIDE, x : x + FACE_SIDE] = photo
    return canvas


def write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory) -> Path:
    """real/ and fake/ astronauts at four places, and one photograph with no face."""
    root = tmp_path_factory.mktemp("faces")
    for i, place in enumerate(PLACES):
        write(
            root / ("real" if i % 2 == 0 else "fake") / f"astronaut_{i}.png", astronaut_at(*place)
        )
    write(root / "real" / "coffee.png", skimage_data.coffee()[:, :, :3])
    return root


def config(data: Path, *perturbations: str, crop: str = "ffpp", **face) -> AuditConfig:
    return AuditConfig(
        model_path=MODEL,
        data_path=data,
        perturbations=perturbations,
        face=FaceOptions(crop=crop, **face),
        workers=2,
    )


def audit(data: Path, *perturbations: str, crop: str = "ffpp", **face) -> dict:
    return run_audit(config(data, *perturbations, crop=crop, **face)).to_dict()


@pytest.fixture(scope="module")
def results(faces_dir) -> dict:
    return audit(faces_dir, "jpeg_compression:quality=90", "gaussian_blur:sigma=40")


def level(results: dict, name: str) -> dict:
    return next(lv for lv in results["results"] if lv["perturbation"] == name)


def test_a_clean_image_without_a_face_is_skipped_no_face(results):
    assert results["data"]["skipped"] == [{"path": "real/coffee.png", "reason": "no face"}]
    assert results["data"]["n_samples"] == 4


def test_the_front_end_is_recorded(results):
    front = results["data"]["face_crop"]
    assert front["preset"] == "ffpp" and front["selection"] == "largest face by box area"
    assert front["detector"]["detector"] == "blazeface-full"
    assert front["detector"]["score"] == 0.5 and front["detector"]["min_size"] == 20.0
    assert len(front["detector"]["sha256"]) == 64
    assert results["config"]["face"] == {
        "crop": "ffpp",
        "detector": "blazeface-full",
        "score": 0.5,
        "min_size": 20.0,
    }


def test_a_mild_perturbation_keeps_every_face_and_the_crop_in_place(results):
    mild = level(results, "jpeg_compression")
    assert mild["face_found_rate"] == 1.0
    assert mild["crop_shift_median"] is not None and mild["crop_shift_median"] <= 3


def test_a_blur_that_destroys_the_face_counts_wrong_and_not_robust(results):
    lost = level(results, "gaussian_blur")
    assert lost["face_found_rate"] == 0.0 and lost["crop_shift_median"] is None
    assert lost["ra"] == 0.0 and lost["flip_rate"] == 1.0
    assert all(value == 0.0 for value in lost["rr"].values())
    assert results["clean"]["accuracy"] > 0  # so RA 0 is the lost faces, not the model


def test_a_lost_face_is_a_finding(results):
    findings = [f for f in find(AuditResults.from_dict(results)) if f.rule == "face_lost"]
    assert len(findings) == 1 and findings[0].perturbation == "gaussian_blur"
    assert findings[0].value == 0.0 and findings[0].severity == "high"
    assert "found no face in 100% of the samples" in findings[0].text


def test_the_thumbnails_are_the_crops(results, faces_dir):
    thumbs = results["thumbnails"]
    png = base64.b64decode(thumbs["clean"].split(",")[1])
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    height, width = decoded.shape[:2]
    assert height == width  # the ffpp crop is square; the canvas is 640 x 800


def test_the_crop_follows_a_moved_face():
    front = FaceFront(FaceOptions(crop="ffpp"))
    boxes = [front.cut(astronaut_at(*place)) for place in PLACES]
    assert all(b is not None for b in boxes)
    (_, first), *others = boxes  # type: ignore[misc]
    for (x, y), found in zip(PLACES[1:], others):
        box = found[1]
        dx, dy = x - PLACES[0][0], y - PLACES[0][1]
        # within 10 px: the full-range model sees the 800 px canvas at 192 px
        assert abs(box[0] - first[0] - dx) <= 10 and abs(box[1] - first[1] - dy) <= 10


def test_crop_rescale_moves_the_crop_and_the_moved_samples_show_their_boxes(faces_dir):
    out = audit(faces_dir, "crop_rescale:keep=0.9")
    moved = level(out, "crop_rescale")
    assert moved["face_found_rate"] == 1.0 and moved["crop_shift_median"] > 10
    shown = out["moved"]["crop_rescale"][0]["crop_boxes"]
    assert shown["perturbed"] is not None and shown["perturbed"] != shown["clean"]


def test_dfdc_letterboxes_the_crop_and_records_it(faces_dir):
    out = audit(faces_dir, "jpeg_compression:quality=90", crop="dfdc")
    assert out["config"]["preprocess"]["resize"] == "letterbox"
    assert out["model"]["preprocess_sources"]["resize"] == "--face-crop dfdc"
    assert out["data"]["face_crop"]["preprocess"]["resize"] == "letterbox"


def test_lost_probs_are_wrong_for_the_target_and_far_from_clean():
    clean = np.array([0.7, 0.2, 0.1])
    assert lost_probs(clean, 0).tolist() == [0.0, 0.0, 1.0]
    assert lost_probs(clean, 2).tolist() == [0.0, 1.0, 0.0]
    assert lost_probs(np.array([0.1, 0.9]), 0).tolist() == [0.0, 1.0]


def test_a_lost_draw_is_wrong_and_not_robust_whatever_its_probabilities():
    """Even where the substituted probabilities equal the clean ones and the label."""
    scoring = Scoring(0.5, 1, "linf", (0.01, 1.0))
    clean = np.array([[0.2, 0.8], [0.2, 0.8]])
    stats = LevelStats()
    lost = np.array([[True, False]])
    stats.add(clean, clean[None].copy(), np.array([1, 1]), scoring, True, lost)
    # The lost sample: wrong (RA), a flip, outside even b = 1 (RR); the other kept.
    assert stats.robust == 1 and stats.within == [1, 1] and stats.flips == 1
    assert LOST_DELTA > 1


def digest_of(audit_config: AuditConfig) -> str:
    """The journal digest a run of `audit_config` writes and resumes from (one shard)."""
    from auditor.engine.run import _new_part, _set_up

    part = _new_part(_set_up(audit_config, (0, 1), None), (0, 1), "now", 0)
    return f"{part.digest}:0/1"


def test_the_face_settings_are_in_the_resume_digest(faces_dir):
    base = config(faces_dir, "jpeg_compression:quality=90")
    others = [FaceOptions("sbi"), FaceOptions("ffpp", score=0.6), FaceOptions("ffpp", min_size=40)]
    digests = {digest_of(replace(base, face=face)) for face in [base.face, *others]}
    assert len(digests) == 4


def test_resume_with_another_preset_is_refused(faces_dir, tmp_path):
    journal = tmp_path / "audit.journal"
    ffpp = replace(config(faces_dir, "jpeg_compression:quality=90"), journal_path=journal)
    Journal.start(journal, digest_of(ffpp), resume=False)[0].close()  # ffpp's, nothing done
    sbi = replace(ffpp, face=FaceOptions("sbi"), resume=True)
    with pytest.raises(ConfigError, match="cannot resume"):
        run_audit(sbi)
    resumed = run_audit(replace(ffpp, resume=True)).to_dict()  # the same preset resumes
    assert resumed["data"]["n_samples"] == 4


def test_bad_presets_and_detectors_fail_before_the_audit(faces_dir):
    with pytest.raises(ConfigError, match="unknown preset"):
        audit(faces_dir, "jpeg_compression", crop="mtcnn")
    with pytest.raises(ConfigError, match="face-detector"):
        audit(faces_dir, "jpeg_compression", detector="nope")


def test_the_cli_runs_face_crop_and_reports_the_face_found_rate(faces_dir, tmp_path):
    out = tmp_path / "report.html"
    args = ["check", str(MODEL), "--data", str(faces_dir), "-p", "gaussian_blur:sigma=40"]
    result = CliRunner().invoke(main, [*args, "--face-crop", "sbi", "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert '<th scope="col" class="num">Face found</th>' in page
    written = json.loads(out.with_suffix(".json").read_text())
    assert written["config"]["face"]["crop"] == "sbi"
    assert written["results"][0]["face_found_rate"] == 0.0


def test_every_sample_and_level_has_its_crop_box(results):
    boxes = {record["sample"]: record for record in results["crop_boxes"]}
    assert len(boxes) == 4 and "real/coffee.png" not in boxes  # skipped: no face
    for record in boxes.values():
        assert "frames" not in record and len(record["clean"]) == 4
        assert record["levels"]["gaussian_blur"] == [[None]]  # one level, one repeat: lost
        mild = record["levels"]["jpeg_compression"][0][0]
        assert max(abs(a - b) for a, b in zip(mild, record["clean"])) <= 6
