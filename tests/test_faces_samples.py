"""The sample face videos (`samples/faces_build.py`): small, a valid data set, and a face
that the default detector finds in every clean frame, where `boxes.json` says it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.data import discover
from auditor.data.video import FrameSampling, read_clip
from auditor.faces import Box, load_detector

FACES = Path(__file__).resolve().parents[1] / "samples" / "faces"


@pytest.fixture(scope="module")
def truth() -> dict[str, list[Box]]:
    clips = json.loads((FACES / "boxes.json").read_text(encoding="utf-8"))["clips"]
    return {key: [Box(*b) for b in boxes] for key, boxes in clips.items()}


def test_the_face_samples_stay_under_2_mb():
    assert sum(p.stat().st_size for p in FACES.rglob("*") if p.is_file()) < 2 * 2**20


def test_they_are_a_labelled_video_data_set():
    dataset = discover(FACES)
    assert dataset.media == "video" and not dataset.skipped
    labels = [s.label for s in dataset.samples]
    assert labels.count("real") == labels.count("fake") == 6


def test_every_clip_has_a_true_box_per_frame(truth):
    videos = sorted(p.relative_to(FACES).as_posix() for p in FACES.glob("*/*.mp4"))
    assert sorted(truth) == videos
    assert all(len(boxes) == 16 for boxes in truth.values())


def test_the_default_detector_finds_the_face_in_every_clean_frame(truth):
    detector = load_detector()
    for key, boxes in truth.items():
        frames = read_clip(FACES / key, FrameSampling(frames=len(boxes))).frames
        assert len(frames) == len(boxes)
        for index, (frame, box) in enumerate(zip(frames, boxes)):
            face = detector.detect(frame)
            assert face is not None and face.box.iou(box) >= 0.5, (key, index)
