"""Video audits: frame sampling and decoding, consistent perturbation, aggregation, and
whole audits of the bundled sample clips."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import without_run_specifics

from auditor.data import video
from auditor.data.video import FrameSampling
from auditor.engine import clips
from auditor.errors import ConfigError, DataError, SampleError
from auditor.perturbations import registry

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_VIDEOS = ROOT / "samples" / "video" / "data"
DETECTOR_A = ROOT / "samples" / "deepfake" / "detector_a.onnx"


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 12.0) -> Path:
    """Write RGB `frames` as Motion-JPEG in .avi (written and read by every OpenCV build)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    return path


def counting_clip(path: Path, count: int, fps: float = 12.0) -> Path:
    """A clip whose frame i is flat grey 8 * i: a decoded frame tells its own index."""
    return write_clip(path, [np.full((24, 32, 3), 8 * i, np.uint8) for i in range(count)], fps)


def decoded_indices(clip: video.Clip) -> list[int]:
    return [int(round(frame.mean() / 8)) for frame in clip.frames]


# ---------------------------------------------------------------- sampling and decoding


def test_frames_are_spread_evenly_and_decoded_in_order(tmp_path):
    clip = video.read_clip(counting_clip(tmp_path / "c.avi", 30), FrameSampling(frames=6))
    assert clip.indices == (2, 7, 12, 17, 22, 27)
    assert decoded_indices(clip) == list(clip.indices)
    assert clip.total_frames == 30 and clip.native_fps == pytest.approx(12.0)
    assert all(f.shape == (24, 32, 3) and f.dtype == np.uint8 for f in clip.frames)


def test_a_short_video_gives_all_its_frames(tmp_path):
    clip = video.read_clip(counting_clip(tmp_path / "c.avi", 5), FrameSampling(frames=16))
    assert decoded_indices(clip) == [0, 1, 2, 3, 4]


def test_fps_sampling_takes_the_frame_on_screen_at_each_tick(tmp_path):
    path = counting_clip(tmp_path / "c.avi", 24, fps=12.0)
    clip = video.read_clip(path, FrameSampling(frames=None, fps=4.0))
    assert clip.indices == (0, 3, 6, 9, 12, 15, 18, 21)
    assert decoded_indices(clip) == list(clip.indices)
    capped = video.read_clip(path, FrameSampling(frames=3, fps=4.0))
    assert capped.indices == (3, 12, 18)  # the middles of 3 runs of the 8


def test_the_file_hash_is_the_sha256_of_its_bytes(tmp_path):
    import hashlib

    path = counting_clip(tmp_path / "c.avi", 4)
    clip = video.read_clip(path, FrameSampling())
    assert clip.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file"),
        (b"not a video at all", "decodable"),
        (bytes(range(256)) * 40, "decodable"),
    ],
)
def test_an_undecodable_video_is_a_sample_error(tmp_path, content, reason):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(SampleError, match=reason):
        video.read_clip(path, FrameSampling())


def test_bad_sampling_options_are_refused():
    with pytest.raises(ConfigError, match="--frames"):
        FrameSampling(frames=0)
    with pytest.raises(ConfigError, match="--fps"):
        FrameSampling(fps=0.0)


def test_this_build_reads_the_common_containers():
    assert {".mp4", ".avi"} <= set(video.decodable_suffixes())


def test_images_and_videos_together_are_refused(tmp_path):
    assert video.media_kind([Path("a/x.MP4"), Path("b/y.webm")], tmp_path) == "video"
    assert video.media_kind([Path("a/x.png")], tmp_path) == "image"
    with pytest.raises(DataError, match="mixes 1 image.*and 2 video.*separately"):
        video.media_kind([Path("a/x.png"), Path("a/y.avi"), Path("a/z.mkv")], tmp_path)


# ---------------------------------------------------------------- aggregation


def test_aggregates_are_per_class_and_sum_to_one():
    frames = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    assert clips.aggregate(frames, "mean", 1) == pytest.approx([17 / 30, 13 / 30])
    assert clips.aggregate(frames, "median", 1) == pytest.approx([0.6, 0.4])
    # max: the most suspicious frame (highest p of the positive class), whole vector.
    assert clips.aggregate(frames, "max", 1) == pytest.approx([0.2, 0.8])
    three = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    assert clips.aggregate(three, "max", None) == pytest.approx(np.array([0.7, 0.3, 0.6]) / 1.6)
    assert clips.aggregate(three, "median", None).sum() == pytest.approx(1.0)


def test_aggregation_works_over_repeats_too():
    frames = np.random.default_rng(0).dirichlet([1, 1], size=(3, 5))  # R x F x K
    for how in clips.AGGREGATES:
        out = clips.aggregate(frames, how, 1)
        assert out.shape == (3, 2)
        for r in range(3):
            assert out[r] == pytest.approx(clips.aggregate(frames[r], how, 1))


def test_an_unknown_aggregate_is_refused():
    with pytest.raises(ConfigError, match="--aggregate"):
        clips.aggregate(np.ones((2, 2)) / 2, "mode", 1)


# ---------------------------------------------------------------- perturbation


@pytest.fixture
def occlusion(monkeypatch):
    """A perturbation with a global draw: a black square at a random place."""

    def occlude(image, rng, side):
        out = image.copy()
        y = int(rng.integers(0, image.shape[0] - side))
        x = int(rng.integers(0, image.shape[1] - side))
        out[y : y + side, x : x + side] = 0
        return out

    spec = registry.Perturbation("test_occlusion", "test", occlude, ({"side": 6},))
    monkeypatch.setitem(registry.REGISTRY, "test_occlusion", spec)
    return spec


def test_a_global_draw_is_the_same_on_every_frame(occlusion):
    frames = [np.full((40, 40, 3), 50 + 10 * i, np.uint8) for i in range(6)]
    rng_for = lambda: clips.derive_rng(0, "real/a.mp4", "test_occlusion", 1, 0)  # noqa: E731
    out = clips.perturb_clip("test_occlusion", frames, {"side": 6}, rng_for)
    masks = [np.all(frame == 0, axis=2) for frame in out]
    assert masks[0].sum() == 36
    assert all(np.array_equal(mask, masks[0]) for mask in masks)
    # Another video draws another place.
    other = lambda: clips.derive_rng(0, "real/b.mp4", "test_occlusion", 1, 0)  # noqa: E731
    elsewhere = clips.perturb_clip("test_occlusion", frames, {"side": 6}, other)
    assert not np.array_equal(np.all(elsewhere[0] == 0, axis=2), masks[0])


def test_per_pixel_noise_is_a_static_pattern_over_the_frames():
    frames = [np.full((20, 20, 3), 128, np.uint8) for _ in range(4)]
    rng_for = lambda: clips.derive_rng(3, "fake/c.mp4", "gaussian_noise", 2, 0)  # noqa: E731
    out = clips.perturb_clip("gaussian_noise", frames, {"sigma": 0.12}, rng_for)
    assert not np.array_equal(out[0], frames[0])
    assert all(np.array_equal(frame, out[0]) for frame in out)


def test_the_rate_factor_is_read_from_the_level():
    assert clips.rate_factor({"crf": 35}) == 35.0
    assert clips.rate_factor({"rate_factor": 28}) == 28.0
    with pytest.raises(ConfigError, match="expected a rate factor"):
        clips.rate_factor({"a": 1, "b": 2})


def test_without_pyav_each_frame_goes_through_the_stand_in(monkeypatch):
    from auditor.perturbations import video as video_perturbations
    from auditor.perturbations import video_codecs

    monkeypatch.setattr(video_codecs, "unavailable", lambda encoder: "no PyAV here")
    monkeypatch.setattr(video_codecs, "warn_fallback", lambda *args: None)
    frames = [np.full((24, 32, 3), 40 * i, np.uint8) for i in range(3)]
    out = clips.perturb_clip("video_compression", frames, {"crf": 40}, lambda: None)
    alone = [video_perturbations.compress("video_compression", f, 40) for f in frames]
    assert all(np.array_equal(a, b) for a, b in zip(out, alone))


@pytest.mark.parametrize("name", ["video_compression", "h265_compression"])
def test_compression_re_encodes_the_whole_clip(name):
    rng = np.random.default_rng(1)
    base = cv2.resize(rng.integers(0, 256, (12, 16, 3), np.uint8), (64, 48))
    frames = [np.roll(base, i, axis=1) for i in range(8)]
    errors = []
    for crf in (30, 40):
        out = clips.perturb_clip(name, frames, {"crf": crf}, lambda: None)
        assert len(out) == 8 and out[0].shape == (48, 64, 3) and out[0].dtype == np.uint8
        errors.append(np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(out, frames)]))
    assert 0 < errors[0] < errors[1]


# ---------------------------------------------------------------- rows for the model


@dataclass(frozen=True)
class Draw:
    perturbation: str
    level: int
    params: dict
    repeat: int


def test_clip_rows_hold_clean_frames_then_each_draw(tmp_path):
    path = counting_clip(tmp_path / "c.avi", 10)
    draws = [Draw("gaussian_noise", 1, {"sigma": 0.08}, r) for r in range(2)]
    rows = clips.clip_rows(
        path,
        "real/c.avi",
        draws,
        lambda frames: np.stack(frames).astype(np.float32),
        seed=0,
        scale_to_input=True,
        sampling=FrameSampling(frames=4),
    )
    assert rows.frames == 4 and rows.tensor.shape == (12, 24, 32, 3)
    assert rows.clip.indices == (1, 3, 6, 8) and rows.clip.frames == []
    clean, first, second = rows.tensor[:4], rows.tensor[4:8], rows.tensor[8:]
    assert [round(f.mean() / 8) for f in clean] == [1, 3, 6, 8]
    noise = first - clean
    # The same pattern on every frame wherever no frame clipped at 0 or 255, another
    # pattern for the next repeat.
    unclipped = ((first > 0) & (first < 255)).all(axis=0)
    assert unclipped.mean() > 0.5
    for n in noise[1:]:
        assert np.array_equal(n[unclipped], noise[0][unclipped])
    assert not np.array_equal(second - clean, noise)


def test_split_rows_aggregates_per_video_and_keeps_the_frames():
    probs = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9], [0.5, 0.5], [0.5, 0.5]])
    clean, perturbed, frames = clips.split_rows(probs, 2, "mean", 1)
    assert clean == pytest.approx([0.7, 0.3])
    assert perturbed == pytest.approx(np.array([[0.2, 0.8], [0.5, 0.5]]))
    assert frames.shape == (3, 2, 2) and np.array_equal(frames[1], probs[2:4])


# ---------------------------------------------------------------- whole audits


def check(tmp_path: Path, data: Path, *extra: str):
    """`auditor check` of detector_a on `data`; return (result, results JSON or None)."""
    from click.testing import CliRunner

    from auditor.cli import main

    report = tmp_path / "out" / "report.html"
    args = ["check", str(DETECTOR_A), "--data", str(data), "-o", str(report), *extra]
    result = CliRunner().invoke(main, args)
    json_path = report.with_suffix(".json")
    return result, json.loads(json_path.read_text()) if json_path.is_file() else None


QUICK = ("-p", "brightness:delta=0.1,0.5", "-p", "gaussian_noise:sigma=0.02,0.3")


def test_the_sample_clips_audit_end_to_end(tmp_path):
    result, out = check(tmp_path, SAMPLE_VIDEOS, *QUICK)
    assert result.exit_code == 0, result.output
    data = out["data"]
    assert data["media"] == "video" and data["n_samples"] == 12 and data["n_frames"] == 192
    assert data["frames_per_video"]["min"] == data["frames_per_video"]["max"] == 16
    assert data["aggregate"] == "mean" and data["class_counts"] == {"fake": 6, "real": 6}
    assert data["manifest"][0]["frames"] == list(range(16))
    assert data["clip_codec"].startswith("H.264 (libx264 core ")
    assert out["clean"]["n"] == 12 and out["clean"]["accuracy"] == 1.0  # see samples/video
    assert [r["n"] for r in out["results"]] == [12] * 4  # every metric is per video
    frames = out["frame_results"]
    assert frames["n_frames"] == 192 and frames["clean"]["n"] == 192
    assert [(f["perturbation"], f["level"], f["n"]) for f in frames["levels"]] == [
        (r["perturbation"], r["level"], 192) for r in out["results"]
    ]
    probe = out["determinism"]  # 8 videos re-scored clean, each level once
    assert probe["n_evaluations"] == 12 and probe["max_abs_diff"] < 1e-5
    # Strong noise breaks the artefact detector on videos as on images.
    assert out["results"][3]["ra"] < out["results"][2]["ra"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="video"' in html and 'id="frame-table"' in html and "192" in html
    # The saved JSON alone re-renders the video section (no model, no videos needed).
    from auditor.report.html import render_html
    from auditor.results import load_json

    again = render_html(load_json(tmp_path / "out" / "report.json"))
    assert again.count('id="frame-table"') == 1


def test_frames_and_fps_choose_the_frames_of_each_video(tmp_path):
    _, out = check(tmp_path, SAMPLE_VIDEOS, "-p", "brightness:delta=0.3", "--frames", "4")
    assert out["data"]["n_frames"] == 48
    assert out["data"]["manifest"][0]["frames"] == [2, 6, 10, 14]
    _, out = check(tmp_path, SAMPLE_VIDEOS, "-p", "brightness:delta=0.3", "--fps", "3")
    assert out["data"]["manifest"][0]["frames"] == [0, 4, 8, 12]  # clips are 12 fps
    assert out["data"]["frames_per_video"]["sampling"] == "3 frames per second"


def test_aggregation_modes_give_different_video_scores(tmp_path):
    scores = {}
    for how in clips.AGGREGATES:
        result, out = check(
            tmp_path, SAMPLE_VIDEOS, "-p", "brightness:delta=0.3", "--aggregate", how
        )
        assert result.exit_code == 0 and out["data"]["aggregate"] == how
        scores[how] = out["clean"]["auc"], out["results"][0]["rr"]["0.01"]
    assert len(set(scores.values())) > 1


def test_a_mix_of_images_and_videos_is_refused(tmp_path):
    data = tmp_path / "mixed"
    write_clip(data / "fake" / "f.avi", [np.full((48, 48, 3), 90, np.uint8)] * 3)
    (data / "real").mkdir()
    cv2.imwrite(str(data / "real" / "r.png"), np.zeros((48, 48, 3), np.uint8))
    result, out = check(tmp_path, data, *QUICK)
    assert result.exit_code == 2 and out is None
    assert "mixes 1 image(s)" in result.output and "separately" in result.output
    assert "Traceback" not in result.output


def test_a_manifest_of_videos_is_audited_and_a_mixed_one_refused(tmp_path):
    rows = ["path,label", "real/real_0.avi,real", "fake/fake_0.avi,fake"]
    for row in rows[1:]:
        write_clip(tmp_path / row.split(",")[0], [np.full((48, 48, 3), 99, np.uint8)] * 2)
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    result, out = check(tmp_path, tmp_path / "list.csv", "-p", "brightness:delta=0.3")
    assert result.exit_code == 0 and out["data"]["media"] == "video"
    (tmp_path / "mixed.csv").write_text("\n".join([*rows, "real/x.png,real"]) + "\n")
    result, _ = check(tmp_path, tmp_path / "mixed.csv", "-p", "brightness:delta=0.3")
    assert result.exit_code == 2 and "mixes" in result.output


def test_an_undecodable_video_is_skipped_with_its_reason(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(SAMPLE_VIDEOS, data)
    (data / "real" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    result, out = check(tmp_path, data, "-p", "brightness:delta=0.3")
    assert result.exit_code == 0, result.output
    assert out["data"]["n_samples"] == 12 and out["data"]["n_skipped"] == 1
    (skipped,) = out["data"]["skipped"]
    assert skipped["path"] == "real/broken.mp4" and "not a decodable video" in skipped["reason"]


# ---------------------------------------------------------------- the streaming engine


def comparable(results) -> dict:
    """The results JSON less timestamps, environment and the echoed tuning options."""
    from auditor.results import to_json

    return without_run_specifics(
        json.loads(to_json(results)), ("batch_size", "workers", "command_line")
    )


@pytest.fixture
def video_config():
    from auditor.config import AuditConfig, VideoOptions

    return AuditConfig(
        DETECTOR_A,
        SAMPLE_VIDEOS,
        perturbations=("gaussian_noise:sigma=0.05,0.2", "brightness:delta=0.3"),
        repeats=2,
        video=VideoOptions(frames=5),
    )


def close(a, b, tolerance: float = 1e-5) -> bool:
    """Equal structure and text; numbers equal within `tolerance`."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(close, a, b))
    if isinstance(a, float) and isinstance(b, (int, float)):
        return abs(a - b) <= tolerance
    return a == b


def test_video_results_do_not_depend_on_workers_batches_or_shards(video_config):
    import pickle
    from dataclasses import replace

    from auditor.engine.run import merge, run_audit, run_shard

    reference = comparable(run_audit(replace(video_config, workers=1)))
    assert reference["frame_results"]["n_frames"] == 60
    for workers in (2, 3):
        assert comparable(run_audit(replace(video_config, workers=workers))) == reference
    # onnxruntime's CPU kernels can round a row differently in another batch (about
    # 1e-6 with detector_a, for images too), which can move a 6th decimal.
    for batch in (1, 7, 500):
        assert close(comparable(run_audit(replace(video_config, batch_size=batch))), reference)
    parts = [pickle.loads(pickle.dumps(run_shard(video_config, (i, 3)))) for i in range(3)]
    assert close(comparable(merge(parts[::-1])), reference)


def test_an_interrupted_video_audit_resumes_to_the_same_results(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    def command(out: Path, *extra: str) -> list[str]:
        # 736 rows per video ((1 + 3 x 5 x 3) x 16 frames): with batches of 736 every
        # run, resumed or not, sends the model the same batches (see the test above).
        return [
            sys.executable, "-m", "auditor", "check", str(DETECTOR_A), "--data",
            str(SAMPLE_VIDEOS), "-o", str(out / "report.html"), "-p", "gaussian_noise",
            "-p", "brightness", "-p", "contrast", "--repeats", "3", "--batch-size", "736",
            *extra,
        ]  # fmt: skip

    def start(args: list[str]) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True, cwd=ROOT)

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert start(command(whole)).wait() == 0
    process = start(command(killed, "--workers", "1"))
    journal = killed / "report.json.journal"
    deadline = time.monotonic() + 120
    while not (journal.is_file() and journal.read_bytes().count(b"\n") > 3):
        assert process.poll() is None, "the audit finished before it could be interrupted"
        assert time.monotonic() < deadline, "no journal records appeared"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = start(command(killed, "--resume"))
    _, err = resumed.communicate()
    assert resumed.returncode == 0, err
    a, b = (json.loads((d / "report.json").read_text()) for d in (whole, killed))
    for data in (a, b):
        without_run_specifics(data, ("command_line", "workers", "batch_size"))
    assert a["frame_results"]["n_frames"] == 192 and a == b


@pytest.mark.parametrize(
    ("option", "message"), [(("--fps", "0"), "--fps must be"), (("--frames", "0"), "--frames")]
)
def test_bad_frame_options_are_one_line_errors(tmp_path, option, message):
    result, out = check(tmp_path, SAMPLE_VIDEOS, "-p", "brightness:delta=0.3", *option)
    assert result.exit_code == 2 and out is None
    assert message in result.output and "Traceback" not in result.output
