"""Finding and decoding samples: class folders, CSV/JSONL manifests, unlabelled folders.

A file that cannot be used is a result ("skipped, and why"), not a crash: the audit
goes on without it and the report lists it.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from auditor.data.imagesize import header_size, jpeg_truncated
from auditor.data.video import VIDEO_SUFFIXES, is_video, media_kind, still
from auditor.errors import DataError, SampleError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
MANIFEST_SUFFIXES = (".csv", ".jsonl")


@dataclass(frozen=True)
class Sample:
    """One image to audit; `key` (its path relative to the data root) identifies it."""

    key: str
    path: Path
    label: str | None


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class Dataset:
    """The samples of an audit, in a stable order, and what was skipped before decoding."""

    path: Path
    kind: str  # "folders" | "manifest" | "unlabelled"
    samples: list[Sample]
    skipped: list[Skipped] = field(default_factory=list)
    media: str = "image"  # "image" | "video" (see `auditor.data.video`); never both

    @property
    def labelled(self) -> bool:
        return self.kind != "unlabelled"

    @property
    def label_names(self) -> list[str]:
        """The distinct labels, sorted."""
        return sorted({s.label for s in self.samples if s.label is not None})


def discover(path: Path, limit: int | None = None) -> Dataset:
    """Find the samples under a folder or in a manifest, at most `limit` of them."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data path not found: {path}")
    if path.is_file():
        if path.suffix.lower() not in MANIFEST_SUFFIXES:
            raise DataError(f"{path}: expected a folder or a .csv/.jsonl manifest")
        dataset = _from_manifest(path)
    else:
        dataset = _from_folder(path)
    if not dataset.samples:
        looked = ", ".join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        raise DataError(f"{path}: no images found (looked for {looked})")
    listed = [s.path for s in dataset.samples] + [Path(s.path) for s in dataset.skipped]
    dataset.media = media_kind(listed, path)
    if limit is not None:
        dataset.samples = stratified(dataset.samples, limit)
    return dataset


def media_of(path: Path) -> str:
    """`"video"` or `"image"`: what the data at `path` holds, from its first sample alone.

    `discover` refuses a mix of images and videos, so the first sample decides; a folder
    is walked only up to it. Data `discover` would refuse reads as `"image"`.
    """
    path = Path(path)
    try:
        if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
            first = next((Path(raw) for raw, _ in _manifest_rows(path)), None)
        else:
            first = next((p for p in path.rglob("*") if _is_image(p) and p.is_file()), None)
    except (OSError, DataError, UnicodeDecodeError):
        return "image"
    return "video" if first is not None and is_video(first) else "image"


def _from_folder(root: Path) -> Dataset:
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and _images_under(d))
    if not class_dirs:
        samples = [Sample(_key(p, root), p, None) for p in _images_under(root)]
        return Dataset(root, "unlabelled", samples)
    samples = [Sample(_key(p, root), p, d.name) for d in class_dirs for p in _images_under(d)]
    strays = [Skipped(_key(p, root), "image outside the class folders") for p in _images_in(root)]
    return Dataset(root, "folders", samples, strays)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _is_image(p))


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and _is_image(p))


def _is_image(path: Path) -> bool:
    """An image or a video (`discover` refuses a mix of both)."""
    suffix = path.suffix.lower()
    return suffix in IMAGE_SUFFIXES + VIDEO_SUFFIXES and not path.name.startswith(".")


def _key(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _from_manifest(manifest: Path) -> Dataset:
    """Read `path,label` rows; paths are relative to the manifest's folder."""
    rows = list(_manifest_rows(manifest))
    seen: set[str] = set()
    for raw_path, _ in rows:
        if raw_path in seen:  # the same file twice would be counted twice, same draws
            raise DataError(f"{manifest}: '{raw_path}' is listed more than once")
        seen.add(raw_path)
    labelled = {row[1] is not None for row in rows}
    if len(labelled) > 1:
        raise DataError(f"{manifest}: some rows have a label and some do not")
    root = manifest.parent
    samples, skipped = [], []
    for raw_path, label in rows:
        file = (root / raw_path).resolve() if not Path(raw_path).is_absolute() else Path(raw_path)
        key = Path(raw_path).as_posix()
        if file.is_file():
            samples.append(Sample(key, file, label))
        else:
            skipped.append(Skipped(key, "file not found"))
    kind = "manifest" if labelled == {True} else "unlabelled"
    return Dataset(manifest, kind, samples, skipped)


def _manifest_rows(manifest: Path) -> Iterable[tuple[str, str | None]]:
    text = manifest.read_text(encoding="utf-8-sig")
    if manifest.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                    yield str(row["path"]), _label(row.get("label"))
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise DataError(
                        f"{manifest}:{number}: expected a JSON object with 'path' (and 'label')"
                    ) from None
        return
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "path" not in reader.fieldnames:
        raise DataError(f"{manifest}: expected a CSV header with 'path' (and 'label')")
    for row in reader:
        if row.get("path"):
            yield row["path"].strip(), _label(row.get("label"))


def _label(value: object) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def stratified(samples: list[Sample], limit: int) -> list[Sample]:
    """Take at most `limit` samples, round-robin over the labels, in stable key order."""
    groups: dict[str | None, list[Sample]] = defaultdict(list)
    for sample in sorted(samples, key=lambda s: s.key):
        groups[sample.label].append(sample)
    queues = [groups[label] for label in sorted(groups, key=lambda x: (x is None, x or ""))]
    taken: list[Sample] = []
    depth = 0
    while len(taken) < limit and any(depth < len(q) for q in queues):
        taken.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return sorted(taken[:limit], key=lambda s: s.key)


DEFAULT_MAX_PIXELS = 100_000_000


@dataclass(frozen=True)
class Decoded:
    """A decoded sample: RGB uint8 pixels, the file's sha256, and any colour conversion."""

    image: NDArray[np.uint8]
    sha256: str
    converted: str | None  # "gray" | "rgba" | None


def read_image(sample: Sample) -> tuple[NDArray[np.uint8], str]:
    """Decode `sample` to RGB uint8 H x W x 3; return it with the file's sha256."""
    decoded = decode(sample)
    return decoded.image, decoded.sha256


def decode(sample: Sample, max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    """Decode `sample` to RGB uint8, refusing images over `max_pixels` pixels.

    The size is read from the header before decoding where the format allows (see
    `auditor.data.imagesize`), so a decompression bomb is refused without being decoded.
    A video gives its middle frame (thumbnails, warm-up; audits read videos in `video`).
    """
    if is_video(sample.path):
        frame, sha256 = still(sample.path)
        return Decoded(frame, sha256, None)
    try:
        data = sample.path.read_bytes()
    except OSError as exc:
        raise SampleError(f"cannot read the file: {exc.strerror or exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    size = header_size(data)
    if size is not None:
        _check_pixels(size[0], size[1], max_pixels)
    if jpeg_truncated(data):
        raise SampleError("truncated JPEG (no end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise SampleError("not a decodable image (corrupt, truncated or unsupported format)")
    _check_pixels(image.shape[1], image.shape[0], max_pixels)
    return Decoded(to_rgb(image), digest, _conversion(image))


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise SampleError(
            f"{width}x{height} is {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (--max-pixels)"
        )


def _conversion(image: NDArray[Any]) -> str | None:
    if image.ndim == 2 or image.shape[2] == 1:
        return "gray"
    return "rgba" if image.shape[2] == 4 else None


def to_rgb(image: NDArray[Any]) -> NDArray[np.uint8]:
    """Convert a decoded OpenCV image (gray, BGR or BGRA; 8 or 16 bit) to RGB uint8."""
    if image.dtype == np.uint16:
        image = np.rint(image / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise SampleError(f"unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(image[:, :, ::-1])
