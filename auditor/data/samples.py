"""Finding and decoding samples: class folders, CSV/JSONL manifests, unlabelled folders.

A file that cannot be used is a result ("skipped, and why"), not a crash: the audit
goes on without it and the report lists it.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from auditor import files
from auditor.data.imagesize import (
    DEFAULT_MAX_PIXELS,
    HEADER_BYTES,
    check_pixels,
    header_size,
    jpeg_truncated,
    max_file_bytes,
)
from auditor.data.manifest import read_rows, shown
from auditor.data.video import VIDEO_SUFFIXES, is_video, media_kind, still
from auditor.errors import DataError, SampleError

# Decoded by content with OpenCV; a file it cannot decode is skipped with the reason.
# `.gif` and `.pbm`/`.pnm` are read by OpenCV 5 (GIF) and every OpenCV (PBM/PNM).
IMAGE_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm",
    ".gif",
)  # fmt: skip
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
    if path.is_dir():
        dataset = _from_folder(path)
    else:
        reason = files.refusal(path)
        if reason is not None or path.suffix.lower() not in MANIFEST_SUFFIXES:
            found = f"; {reason}" if reason else ""
            raise DataError(f"{path}: expected a folder or a .csv/.jsonl manifest{found}")
        dataset = _from_manifest(path)
    if not dataset.samples:
        looked = ", ".join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        raise DataError(f"{path}: no images found (looked for {looked})")
    listed = [s.path for s in dataset.samples] + [
        Path(s.path) for s in dataset.skipped if _is_media(Path(s.path))
    ]
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
            first = next((Path(row.path) for row in read_rows(path)), None)
        else:
            first = next((p for p in path.rglob("*") if _is_media(p) and p.is_file()), None)
    except (OSError, DataError, UnicodeDecodeError):
        return "image"
    return "video" if first is not None and is_video(first) else "image"


def _from_folder(root: Path) -> Dataset:
    try:
        return _walk(root)
    except OSError as exc:
        raise DataError(f"cannot read the folder {root}: {exc.strerror or exc}") from exc


def _walk(root: Path) -> Dataset:
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and _media_under(d, root))
    if not class_dirs:
        samples, skipped = _listing(root, root, None)
        return Dataset(root, "unlabelled", samples, skipped)
    samples, skipped = [], []
    for folder in class_dirs:
        found, refused = _listing(folder, root, portable(folder.name))
        samples += found
        skipped += refused
    strays = [
        Skipped(_key(p, root), "image outside the class folders")
        for p in sorted(root.iterdir())
        if p.is_file() and _is_media(p) and not _hidden(p, root)
    ]
    return Dataset(root, "folders", samples, strays + skipped)


def _listing(folder: Path, root: Path, label: str | None) -> tuple[list[Sample], list[Skipped]]:
    """Images and videos under `folder` as samples, every other unhidden file as skipped."""
    samples, skipped = [], []
    for path in sorted(folder.rglob("*")):
        if _hidden(path, root) or path.is_dir():
            continue
        key = _key(path, root)
        reason = files.refusal(path)
        if reason is not None:
            skipped.append(Skipped(key, reason))
        elif _is_media(path):
            samples.append(Sample(key, path, label))
        else:
            skipped.append(Skipped(key, f"not an image or video file ({_suffix(path)})"))
    return _distinct(samples, skipped, root)


def _media_under(folder: Path, root: Path) -> bool:
    return any(p.is_file() and _is_media(p) and not _hidden(p, root) for p in folder.rglob("*"))


def _is_media(path: Path) -> bool:
    """An image or a video by its suffix (`discover` refuses a mix of both)."""
    return path.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES


def _hidden(path: Path, root: Path) -> bool:
    """Whether a part of `path` below `root` is hidden (`.DS_Store`, `.git/`, ...)."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _suffix(path: Path) -> str:
    return f"suffix {portable(path.suffix)}" if path.suffix else "no suffix"


def portable(name: str) -> str:
    """`name` as text that any JSON, HTML or UTF-8 file can hold, the same on every run.

    A file name that is valid UTF-8 is kept as it is. In one that is not, each byte that
    is not UTF-8, and each backslash, is written `\\xNN` (Python's `backslashreplace`): the
    name's bytes are found again by replacing every `\\xNN` with the byte NN.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # surrogate escapes: bytes that were not UTF-8
        raw = os.fsencode(name).replace(b"\\", b"\\x5c")
        return raw.decode("utf-8", "backslashreplace")
    return name


def _key(path: Path, root: Path) -> str:
    return portable(path.relative_to(root).as_posix())


def _distinct(
    samples: list[Sample], skipped: list[Skipped], root: Path
) -> tuple[list[Sample], list[Skipped]]:
    """Skip a non-UTF-8 name whose escaped key is another file's name, written plainly."""
    counts = Counter(s.key for s in samples)
    if all(count == 1 for count in counts.values()):
        return samples, skipped
    kept, dropped = [], []
    for sample in samples:
        escaped = sample.key != sample.path.relative_to(root).as_posix()
        if counts[sample.key] > 1 and escaped:
            reason = "its name is not UTF-8 and, escaped, reads as another file's name"
            dropped.append(Skipped(sample.key, reason))
        else:
            kept.append(sample)
    return kept, skipped + dropped


def _from_manifest(manifest: Path) -> Dataset:
    """Read `path,label` rows; paths are relative to the manifest's folder."""
    rows = read_rows(manifest)
    seen: set[str] = set()
    for row in rows:
        if row.path in seen:  # the same file twice would be counted twice, same draws
            raise DataError(f"{manifest}:{row.line}: {shown(row.path)} is listed more than once")
        seen.add(row.path)
    labelled = {row.label is not None for row in rows}
    if len(labelled) > 1:
        raise DataError(f"{manifest}: some rows have a label and some do not")
    root = manifest.parent
    samples, skipped = [], []
    for row in rows:
        file = Path(row.path) if Path(row.path).is_absolute() else (root / row.path).resolve()
        key = Path(row.path).as_posix()
        reason = files.refusal(file) if os.path.lexists(file) else "file not found"
        if reason is None:
            samples.append(Sample(key, file, row.label))
        else:
            skipped.append(Skipped(key, reason))
    kind = "manifest" if labelled == {True} else "unlabelled"
    return Dataset(manifest, kind, samples, skipped)


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

    The one door through which a sample's file is read, so every file meets the same
    checks in the same order and a file is refused with the same reason on every run:
    a regular file only; not empty; its header's size (see `auditor.data.imagesize`),
    then its file size, checked before the rest is read, so a decompression bomb or a
    sparse file of tens of gigabytes is refused after reading only its header; and any
    failure of the decoder becomes a `SampleError` with a one-line reason. A video gives
    its middle frame (thumbnails, warm-up; audits read videos in `video`).
    """
    if is_video(sample.path):
        frame, sha256 = still(sample.path, max_pixels)
        return Decoded(frame, sha256, None)
    data = _read_encoded(sample.path, max_pixels)
    digest = hashlib.sha256(data).hexdigest()
    size = header_size(data)  # again, whole: a JPEG's size can sit past the first bytes
    if size is not None:
        check_pixels(size[0], size[1], max_pixels)
    if jpeg_truncated(data):
        raise SampleError("truncated JPEG (no end-of-image marker)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except Exception as exc:  # cv2.error, MemoryError, ...: this file, not the audit, fails
        raise SampleError(f"not a decodable image ({files.one_line(exc)})") from None
    if image is None or image.size == 0:
        raise SampleError("not a decodable image (corrupt, truncated or unsupported format)")
    check_pixels(image.shape[1], image.shape[0], max_pixels)
    try:
        rgb = to_rgb(image)
    except SampleError:
        raise
    except Exception as exc:  # cv2.error on a channel layout OpenCV cannot convert
        raise SampleError(f"cannot convert the image to RGB ({files.one_line(exc)})") from None
    return Decoded(rgb, digest, _conversion(image))


def _read_encoded(path: Path, max_pixels: int) -> bytes:
    """The bytes of an image file, read only after its header and size pass the limits."""
    try:
        with files.open_regular(path) as handle:
            head = handle.read(HEADER_BYTES)
            if not head:
                raise SampleError("empty file (0 bytes)")
            size = header_size(head)
            if size is not None:
                check_pixels(size[0], size[1], max_pixels)
            limit = max_file_bytes(max_pixels)
            stored = files.size_of(handle)
            if stored > limit:
                raise SampleError(_over(stored, limit))
            # Read what the file holds (plus one byte to see it grow), not `limit`: Python
            # sizes its buffer by the request, and `--max-memory` bounds the address space.
            data = head + handle.read(min(stored, limit) + 1 - len(head))
    except files.Refused as exc:
        raise SampleError(str(exc)) from None
    except OSError as exc:
        raise SampleError(f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > limit:  # grew since, or a file that states no size
        raise SampleError(_over(len(data), limit))
    return data


def _over(size: int, limit: int) -> str:
    return f"{files.too_large(size, limit)} that --max-pixels allows"


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
