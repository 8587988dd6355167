"""Finding samples in folders and manifests; decoding and skipping bad files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import colour_image, write_class_folders, write_image

from auditor.data import Sample, discover, read_image, stratified
from auditor.errors import DataError, SampleError


def test_class_folders(data_dir):
    dataset = discover(data_dir)
    assert dataset.kind == "folders" and dataset.label_names == ["fake", "real"]
    assert len(dataset.samples) == 24
    assert dataset.samples[0].key == "fake/f00.png"


def test_unlabelled_folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(tmp_path / f"{i}.png", colour_image(rng, 0.5))
    dataset = discover(tmp_path)
    assert dataset.kind == "unlabelled" and not dataset.labelled
    assert all(s.label is None for s in dataset.samples)


def test_csv_and_jsonl_manifests(data_dir):
    (data_dir / "m.csv").write_text(
        "path,label\nreal/r00.png,real\nfake/f01.png,fake\nmissing.png,real\n"
    )
    dataset = discover(data_dir / "m.csv")
    assert [s.label for s in dataset.samples] == ["real", "fake"]
    assert dataset.skipped[0].path == "missing.png"
    assert dataset.skipped[0].reason == "file not found"
    (data_dir / "m.jsonl").write_text('{"path": "real/r00.png", "label": "real"}\n')
    assert discover(data_dir / "m.jsonl").samples[0].key == "real/r00.png"


def test_manifest_without_path_column(tmp_path):
    (tmp_path / "m.csv").write_text("file,label\na.png,real\n")
    with pytest.raises(DataError, match="expected a CSV header with 'path'"):
        discover(tmp_path / "m.csv")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, "no images found"),
        (lambda p: p / "nope", "data path not found"),
    ],
)
def test_no_usable_data(tmp_path, make, message):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=message):
        discover(make(tmp_path))


def test_stratified_limit_takes_from_every_class():
    samples = [Sample(f"{c}/{i}", None, c) for c in ("a", "b") for i in range(10)]  # type: ignore[arg-type]
    taken = stratified(samples, 5)
    assert len(taken) == 5 and {s.label for s in taken} == {"a", "b"}
    assert stratified(samples, 100) == sorted(samples, key=lambda s: s.key)


def test_read_image_converts_grey_and_alpha(tmp_path):
    import cv2

    grey = tmp_path / "g.png"
    cv2.imwrite(str(grey), np.full((5, 6), 90, np.uint8))
    rgba = tmp_path / "a.png"
    cv2.imwrite(str(rgba), np.full((5, 6, 4), (10, 20, 30, 128), np.uint8))
    image, digest = read_image(Sample("g.png", grey, None))
    assert image.shape == (5, 6, 3) and np.all(image == 90) and len(digest) == 64
    image, _ = read_image(Sample("a.png", rgba, None))
    assert tuple(image[0, 0]) == (30, 20, 10)  # BGRA on disk -> RGB


def test_corrupt_image_raises_sample_error(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    with pytest.raises(SampleError, match="not a decodable image"):
        read_image(Sample("bad.png", path, None))


def test_images_outside_class_folders_are_skipped(tmp_path):
    write_class_folders(tmp_path, per_class=2)
    write_image(tmp_path / "stray.png", colour_image(np.random.default_rng(0), 0.5))
    dataset = discover(tmp_path)
    assert [s.path for s in dataset.skipped] == ["stray.png"]


def test_manifest_listing_a_file_twice_is_refused(data_dir):
    (data_dir / "m.csv").write_text("path,label\nreal/r00.png,real\nreal/r00.png,real\n")
    with pytest.raises(DataError, match="listed more than once"):
        discover(data_dir / "m.csv")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".ppm", ".pgm"])
def test_header_size_is_read_without_decoding(tmp_path, suffix):
    import cv2

    from auditor.data.imagesize import header_size

    image = colour_image(np.random.default_rng(0), 0.3, (37, 53))
    if suffix == ".pgm":
        image = image[:, :, 0]
    ok, encoded = cv2.imencode(suffix, image)
    assert ok and header_size(encoded.tobytes()) == (53, 37)


def test_decode_refuses_images_over_max_pixels_and_reports_conversion(tmp_path):
    import cv2

    from auditor.data import decode

    path = write_image(tmp_path / "a.png", colour_image(np.random.default_rng(0), 0.3, (20, 30)))
    with pytest.raises(SampleError, match="20 is 600 pixels, over the limit of 599"):
        decode(Sample("a.png", path, None), max_pixels=599)
    assert decode(Sample("a.png", path, None), max_pixels=600).converted is None
    grey = tmp_path / "g.png"
    cv2.imwrite(str(grey), np.full((5, 6), 90, np.uint8))
    assert decode(Sample("g.png", grey, None)).converted == "gray"


def test_media_of_reads_the_first_sample_only(data_dir, tmp_path):
    from auditor.data.samples import media_of

    assert media_of(data_dir) == "image"
    videos = tmp_path / "videos"
    (videos / "fake").mkdir(parents=True)
    (videos / "fake" / "a.webm").write_bytes(b"not decoded: the suffix decides")
    assert media_of(videos) == "video"
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"path": "fake/a.mov", "label": "fake"}\n')
    assert media_of(manifest) == "video"
    assert media_of(tmp_path / "missing") == "image"  # discover will say what is wrong
