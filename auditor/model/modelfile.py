"""Reading an untrusted ONNX file: size limit, external data, checker, metadata.

A model from a third party is data, not code we trust: nothing here follows a path
out of the model's folder, reads a file that is not a regular file, or loads more
than `max_model_size` bytes, and every refusal is one line naming the file.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from auditor.config import DEFAULT_MAX_MODEL_SIZE
from auditor.errors import ConfigError, ModelError

METADATA_KEY = "auditor.preprocess"
LABEL_KEYS = ("classes", "class_names", "labels", "label_names", "names")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$", re.I)
_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


@dataclass(frozen=True)
class ModelFile:
    """A checked ONNX model: its proto (external data not loaded) and file facts."""

    path: Path
    proto: onnx.ModelProto
    sha256: str
    size_bytes: int
    external_data: list[dict[str, Any]]


def parse_size(text: str | int) -> int:
    """Bytes from `4GB`, `512MiB`, `100k` or a plain number (kB = 1000, KiB = 1024)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise ConfigError(f"expected a size such as 4GB, 512MiB or 1000000, found {text!r}")
    number, unit, binary = match.groups()
    base = 1024 if binary else 1000
    return int(float(number) * base ** _UNITS[unit.lower()])


def read_model_file(path: Path, max_size: int = DEFAULT_MAX_MODEL_SIZE) -> ModelFile:
    """Check and read the model at `path`; refuse what is unsafe or not ONNX."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    size = path.stat().st_size
    _check_size(path, size, max_size, "the model file")
    proto = _parse(path)
    files = _external_files(proto, path)
    total = size + sum(target.stat().st_size for target in files.values())
    _check_size(path, total, max_size, "the model with its external data")
    _run_checker(proto, path, bool(files))
    external = [
        {"path": loc, "sha256": sha256_of(target), "size": target.stat().st_size}
        for loc, target in sorted(files.items())
    ]
    return ModelFile(path, proto, sha256_of(path), size, external)


def _check_size(path: Path, size: int, limit: int, what: str) -> None:
    if size > limit:
        raise ModelError(
            f"{path}: {what} is {size} bytes, over the limit of {limit} bytes; "
            "raise it with --max-model-size if you trust the file"
        )


def _parse(path: Path) -> onnx.ModelProto:
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and others for garbage
        raise ModelError(f"{path}: not a readable ONNX model ({first_line(exc)})") from exc
    if not proto.graph.input or not proto.graph.output:
        raise ModelError(f"{path}: not an ONNX model (no graph inputs or outputs found)")
    return proto


def _run_checker(proto: onnx.ModelProto, path: Path, has_external: bool) -> None:
    """Run the full onnx checker (with shape inference); one line on failure."""
    try:
        # With external data the checker must read the file itself to see the tensors.
        target: Any = str(path) if has_external else proto
        onnx.checker.check_model(target, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError and others
        raise ModelError(f"{path}: the ONNX checker rejected the model: {first_line(exc)}") from exc


def _all_tensors(proto: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of the model: the graph's, its subgraphs' and its functions'."""
    yield from _tensors(proto.graph)
    for function in proto.functions:
        yield from _node_tensors(function.node)


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of `graph` and its subgraphs: initializers and node attributes."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    yield from _node_tensors(graph.node)


def _node_tensors(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.TensorProto]:
    for node in nodes:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def _external_files(proto: onnx.ModelProto, path: Path) -> dict[str, Path]:
    """Check every external-data reference stays in the model's folder; map it to its file."""
    folder = path.parent.resolve()
    files: dict[str, Path] = {}
    for tensor in _all_tensors(proto):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        target = _safe_location(location, folder, path, tensor.name)
        end = _extent(entries, path, tensor.name)
        if end > target.stat().st_size:
            raise ModelError(
                f"{path}: tensor '{tensor.name}' reads up to byte {end} of external data "
                f"file '{location}', which holds {target.stat().st_size} bytes"
            )
        files[location] = target
    return files


def _extent(entries: dict[str, str], path: Path, tensor: str) -> int:
    """The byte just past a tensor's external data (offset + length)."""
    try:
        offset, length = int(entries.get("offset") or 0), int(entries.get("length") or 0)
    except ValueError:
        raise ModelError(
            f"{path}: tensor '{tensor}' has a non-numeric external-data offset or length"
        ) from None
    if offset < 0 or length < 0:
        raise ModelError(f"{path}: tensor '{tensor}' has a negative external-data offset or length")
    return offset + length


def _safe_location(location: str, folder: Path, path: Path, tensor: str) -> Path:
    """Resolve an external-data `location`; refuse one that leaves `folder`."""

    def refuse(why: str) -> ModelError:
        return ModelError(
            f"{path}: refusing external data '{location}' of tensor '{tensor}': {why}"
        )

    if not location:
        raise refuse("no location given")
    if os.path.isabs(location) or Path(location).is_absolute() or location.startswith("\\"):
        raise refuse("an absolute path; external data must sit in the model's folder")
    if ".." in Path(location.replace("\\", "/")).parts:
        raise refuse("'..' leaves the model's folder")
    given = folder / location
    try:
        target = given.resolve()
    except (OSError, ValueError) as exc:  # a NUL byte, a symlink loop, ...
        raise refuse(f"the path cannot be resolved ({exc})") from None
    if not target.is_relative_to(folder):
        raise refuse(f"it resolves to {target}, outside the model's folder")
    if given.is_symlink():  # the onnx checker refuses these too; say so plainly
        raise refuse("a symbolic link; external data must be a regular file")
    if not target.exists():
        raise refuse("no such file next to the model")
    if not target.is_file():
        raise refuse("not a regular file")
    return target


def read_metadata(proto: onnx.ModelProto, path: Path) -> dict[str, Any]:
    """Return the `auditor.preprocess` metadata object, or {} when there is none."""
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        return {}
    try:
        value = json.loads(props[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: metadata '{METADATA_KEY}' is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ModelError(f"{path}: metadata '{METADATA_KEY}' must be a JSON object")
    return value


def labels_value(value: Any, where: str) -> list[str]:
    """Class names from a metadata value: a list, or text as `metadata_labels` reads it."""
    names = _parse_labels(value) if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise ModelError(f"{where}: expected a list of class names, found {value!r}"[:300])
    return [str(n) for n in names]


def metadata_labels(proto: onnx.ModelProto) -> tuple[list[str], str] | None:
    """Class names from common metadata keys (`classes`, `labels`, `names`, ...) and the key.

    A value may be a JSON list, a JSON or Python dict {"0": "real", ...} keyed by index,
    or a newline- or comma-separated list.
    """
    props = {p.key.lower(): p.value for p in proto.metadata_props}
    for key in LABEL_KEYS:
        if key in props:
            names = _parse_labels(props[key])
            if names:
                return names, key
    return None


def _parse_labels(text: str) -> list[str] | None:
    value: Any
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        try:  # exporters such as ultralytics write a Python dict literal
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = text
    if isinstance(value, dict):
        try:
            ordered = sorted(value.items(), key=lambda kv: int(kv[0]))
        except (TypeError, ValueError):
            return None
        if [int(k) for k, _ in ordered] != list(range(len(ordered))):
            return None
        return [str(v) for _, v in ordered]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value] or None
    if isinstance(value, str):
        sep = "\n" if "\n" in value.strip() else ","
        names = [n.strip() for n in value.strip().split(sep)]
        return names if len(names) > 1 and all(names) else None
    return None


def sha256_of(path: Path) -> str:
    """Hex sha256 of the file at `path`, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, at most `limit` characters."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:limit]
