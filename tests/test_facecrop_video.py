"""`--face-crop` on videos: each sampled frame perturbed whole, its face found, then cropped.

Real clips (the bundled face samples, and clips written here from scikit-image's
photographs), the real BlazeFace detector and the real sample detector.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from skimage import data as skimage_data

from auditor.cli import main
from auditor.config import AuditConfig, FaceOptions, VideoOptions
from auditor.engine import run_audit
from auditor.engine.clips import split_rows
from auditor.engine.facecrop import ClipFaces, FaceTrack, faces_from_record
from auditor.results import AuditResults
from auditor.verdict.findings import find

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "samples" / "deepfake" / "detector_a.onnx"
FACES = ROOT / "samples" / "faces"


def audit(data: Path, *perturbations: str, frames: int = 4, limit: int | None = 4) -> dict:
    config = AuditConfig(
        model_path=MODEL,
        data_path=data,
        perturbations=perturbations,
        face=FaceOptions(crop="ffpp"),
        video=VideoOptions(frames=frames),
        limit=limit,
        workers=2,
    )
    return run_audit(config).to_dict()


def level(results: dict, name: str) -> dict:
    return next(lv for lv in results["results"] if lv["perturbation"] == name)


@pytest.fixture(scope="module")
def results() -> dict:
    return audit(FACES, "jpeg_compression:quality=90", "gaussian_blur:sigma=40")


def test_the_face_samples_run_behind_a_face_crop(results):
    assert results["data"]["media"] == "video" and results["data"]["skipped"] == []
    assert results["data"]["n_samples"] == 4 and results["data"]["n_frames"] == 16
    front = results["data"]["face_crop"]
    assert front["preset"] == "ffpp" and front["face_found_rate"] == "per frame scored"
    assert "frames where a face was found" in front["no_face_perturbed"]


def test_a_mild_perturbation_keeps_the_faces_of_every_frame(results):
    mild = level(results, "jpeg_compression")
    assert mild["face_found_rate"] == 1.0 and mild["crop_shift_median"] <= 3


def test_a_blur_that_destroys_every_face_is_wrong_and_not_robust(results):
    lost = level(results, "gaussian_blur")
    assert lost["face_found_rate"] == 0.0 and lost["crop_shift_median"] is None
    assert lost["ra"] == 0.0 and lost["flip_rate"] == 1.0
    assert all(value == 0.0 for value in lost["rr"].values())
    assert results["clean"]["accuracy"] > 0  # so RA 0 is the lost faces, not the model
    # every frame is lost in the per-frame figures too
    frames = next(
        lv for lv in results["frame_results"]["levels"] if lv["perturbation"] == "gaussian_blur"
    )
    assert frames["ra"] == 0.0 and frames["flip_rate"] == 1.0


def test_the_finding_counts_frames(results):
    lost = [f for f in find(AuditResults.from_dict(results)) if f.rule == "face_lost"]
    assert len(lost) == 1 and "no face in 100% of the frames" in lost[0].text


def test_the_moved_videos_show_the_crop_of_their_first_frame(results):
    moved = results["moved"]["jpeg_compression"][0]
    assert len(moved["crop_boxes"]["clean"]) == 4 and moved["crop_boxes"]["perturbed"]


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 12.0) -> None:
    """An MPEG-4 clip of RGB `frames` (all of one size)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()


def canvas_with_face() -> np.ndarray:
    canvas = np.full((240, 320, 3), 90, np.uint8)
    photo = cv2.resize(np.ascontiguousarray(skimage_data.astronaut()[:, :, :3]), (200, 200))
    canvas[20:220, 60:260] = photo
    return canvas


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory) -> Path:
    """real/half.mp4: 4 frames with a face, then 4 of a coffee cup; real/cup.mp4: no face."""
    root = tmp_path_factory.mktemp("clips")
    face = canvas_with_face()
    cup = cv2.resize(np.ascontiguousarray(skimage_data.coffee()[:, :, :3]), (320, 240))
    write_clip(root / "real" / "half.mp4", [face] * 4 + [cup] * 4)
    write_clip(root / "real" / "cup.mp4", [cup] * 8)
    write_clip(root / "fake" / "face.mp4", [face] * 8)
    return root


def test_frames_without_a_clean_face_are_not_scored_and_a_video_without_any_is_skipped(
    mixed_dir,
):
    out = audit(mixed_dir, "jpeg_compression:quality=90", frames=8, limit=None)
    assert out["data"]["skipped"] == [{"path": "real/cup.mp4", "reason": "no face"}]
    assert out["data"]["n_samples"] == 2
    assert out["data"]["n_frames"] == 12  # the half clip's 4 face frames and the other's 8


def test_a_video_is_aggregated_over_the_frames_where_a_face_was_found():
    probs = np.array(
        [[0.8, 0.2], [0.6, 0.4], [0.7, 0.3], [0.1, 0.9], [0.0, 1.0], [0.5, 0.5]]
    )  # clean (2 frames), draw 1 (2 frames), draw 2 (2 frames)
    found = np.array([[True, True], [True, False], [False, False]])
    clean, perturbed, frames = split_rows(probs, 2, "mean", 1, found)
    np.testing.assert_allclose(clean, [0.7, 0.3])
    np.testing.assert_allclose(perturbed[0], [0.7, 0.3])  # only its first frame
    np.testing.assert_allclose(perturbed[1], [0.25, 0.75])  # none found: all rows (lost)
    assert frames.shape == (3, 2, 2)


def test_clip_faces_round_trip_the_journal_and_tell_lost_draws():
    first = FaceTrack((1, 2, 30, 30), ((2, 2, 30, 30), None))
    second = FaceTrack((5, 2, 30, 30), (None, None))
    faces = ClipFaces((first, second), dropped=(7,))
    assert faces.lost == [False, True]
    assert faces.found().tolist() == [[True, True], [True, False], [False, False]]
    assert faces.shifts() == [1.0, None]
    again = faces_from_record(json.loads(json.dumps(faces.as_list())))
    assert again == faces
    assert faces_from_record(first.as_list()) == first


def test_the_readme_example_runs_from_the_command_line(tmp_path):
    out = tmp_path / "faces.html"
    args = [
        "check", str(MODEL), "--data", str(FACES), "--face-crop", "ffpp",
        "-p", "video_compression:crf=30", "--limit", "2", "--frames", "4", "-o", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    written = json.loads(out.with_suffix(".json").read_text())
    assert level(written, "video_compression")["face_found_rate"] is not None
    assert "Face found" in out.read_text()


def test_a_resumed_video_audit_gives_the_same_figures(tmp_path):
    # One clip whose face this noise loses in 3 of its 4 frames: the partly lost case.
    data = tmp_path / "data"
    (data / "real").mkdir(parents=True)
    shutil.copy(FACES / "real" / "coffee_0.mp4", data / "real")
    journal = tmp_path / "audit.journal"
    config = AuditConfig(
        model_path=MODEL,
        data_path=data,
        perturbations=("gaussian_noise:sigma=0.2",),
        face=FaceOptions(crop="ffpp"),
        video=VideoOptions(frames=4),
        workers=2,
        journal_path=journal,
    )
    first = run_audit(config).to_dict()
    assert first["results"][0]["face_found_rate"] == 0.25
    again = run_audit(replace(config, resume=True)).to_dict()  # the video from the journal
    for key in ("results", "frame_results", "clean", "moved", "crop_boxes"):
        assert again[key] == first[key], key
    # the determinism probe re-scores the clip and aggregates the frames found, as before
    assert first["determinism"]["n_evaluations"] == 2
    assert first["determinism"]["max_abs_diff"] == 0.0


def test_every_video_frame_and_level_has_its_crop_box(results):
    boxes = {record["sample"]: record for record in results["crop_boxes"]}
    assert len(boxes) == results["data"]["n_samples"]
    for record in boxes.values():
        assert len(record["frames"]) == len(record["clean"]) == 4
        assert all(len(box) == 4 for box in record["clean"])
        mild, lost = record["levels"]["jpeg_compression"], record["levels"]["gaussian_blur"]
        assert len(mild) == 1 and len(mild[0]) == 1  # one level, one repeat
        assert all(box is not None for box in mild[0][0])
        assert lost[0][0] == [None] * 4  # the blur lost the face in every frame
