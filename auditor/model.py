"""The model adapter: load and check an ONNX classifier, preprocess, predict probabilities.

Everything model-specific (layout, dtype, preprocessing, output kind, classes) lives
here; the rest of `auditor` sees RGB uint8 images go in and probability vectors come out.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray

from auditor import outputs, preprocess
from auditor.config import ModelOptions
from auditor.errors import ConfigError, ModelError, RuntimeMissingError
from auditor.preprocess import Preprocessing

METADATA_KEY = "auditor.preprocess"
_RUNTIME_STATUS = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_RUNTIME_LOCATION = re.compile(r"\S+\.(?:cc|cpp|h):\d+ (?:[\w:~<>]+\(.*?\) )?")
RUNTIME_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu")
TENSOR_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclass
class Model:
    """A loaded ONNX classifier with everything needed to score RGB images."""

    path: Path
    session: Any
    proto_info: dict[str, Any]
    input_name: str
    input_dtype: type
    batch: int | None  # None: dynamic batch
    output_name: str
    prep: Preprocessing
    options: ModelOptions
    metadata: dict[str, Any]
    classes: list[str] | None = None
    output_kind: str | None = None
    output_kind_evidence: str = ""
    num_outputs: int | None = None
    provider: str = "CPUExecutionProvider"
    _graph_hint: str | None = field(default=None, repr=False)

    def predict(self, images: Sequence[NDArray[np.uint8]]) -> NDArray[np.float64]:
        """Return the normalized output (N x K probabilities) for RGB uint8 `images`."""
        return self.infer(self.to_tensor(images))

    def to_tensor(self, images: Sequence[NDArray[np.uint8]]) -> NDArray[Any]:
        """Preprocess RGB uint8 `images` into one input tensor; safe to call from threads."""
        return preprocess.to_tensor(images, self.prep, self.input_dtype)

    def infer(self, tensor: NDArray[Any]) -> NDArray[np.float64]:
        """Run the model on a tensor from `to_tensor`; return N x K probabilities."""
        raw = self._run(tensor)
        if self.output_kind is None:
            self.output_kind, self.output_kind_evidence = outputs.detect_kind(
                raw, self.options.output_kind, self.metadata.get("output_kind"), self._graph_hint
            )
        return outputs.normalize(raw, self.output_kind)

    def _run(self, tensor: NDArray[Any]) -> NDArray[np.float64]:
        """Run the session on `tensor` in chunks the model accepts; check the values."""
        step = self.batch or len(tensor)
        chunks = []
        for start in range(0, len(tensor), step):
            part = tensor[start : start + step]
            missing = step - len(part)
            if missing:  # a fixed batch larger than what is left: pad, then drop
                part = np.concatenate([part, np.repeat(part[-1:], missing, axis=0)])
            try:
                out = self.session.run([self.output_name], {self.input_name: part})[0]
            except Exception as exc:  # onnxruntime raises several unrelated types
                raise ModelError(f"{self.path}: inference failed: {runtime_message(exc)}") from exc
            chunks.append(np.asarray(out, np.float64)[: step - missing])
        raw = np.concatenate(chunks).reshape(len(tensor), -1)
        if not np.all(np.isfinite(raw)):
            raise ModelError(f"{self.path}: the model produced NaN or infinite outputs")
        self._check_width(raw.shape[1])
        return raw

    def _check_width(self, width: int) -> None:
        """Fix the number of classes on the first call and check the class names fit."""
        if self.num_outputs is None:
            self.num_outputs = width
            expected = 2 if width == 1 else width
            if self.classes is None:
                self.classes = [str(i) for i in range(expected)]
            elif len(self.classes) != expected:
                raise ConfigError(
                    f"{len(self.classes)} class names ({', '.join(self.classes)}) but the "
                    f"model output '{self.output_name}' gives {expected} classes"
                )
        elif width != self.num_outputs:
            raise ModelError(
                f"{self.path}: output width changed from {self.num_outputs} "
                f"to {width} between batches"
            )

    @property
    def task(self) -> str:
        """`binary` for one- or two-column outputs, else `multiclass`."""
        return "binary" if (self.num_outputs or 2) <= 2 else "multiclass"

    def positive_index(self) -> int | None:
        """Index of the positive class of a binary model (`fake` if named so, else 1)."""
        if self.task != "binary" or not self.classes:
            return None
        wanted = self.options.positive_class or self.metadata.get("positive_class")
        if wanted is not None:
            if wanted not in self.classes:
                raise ConfigError(
                    f"positive class '{wanted}' is not one of the classes {', '.join(self.classes)}"
                )
            return self.classes.index(wanted)
        return self.classes.index("fake") if "fake" in self.classes else 1

    def describe(self) -> dict[str, Any]:
        """Return the model section of the results JSON."""
        positive = self.positive_index()
        return {
            **self.proto_info,
            "input_name": self.input_name,
            "output_name": self.output_name,
            "layout": self.prep.layout,
            "batch": self.batch if self.batch is not None else "dynamic",
            "output_kind": self.output_kind,
            "output_kind_evidence": self.output_kind_evidence,
            "classes": self.classes,
            "task": self.task,
            "positive_class": self.classes[positive]
            if positive is not None and self.classes
            else None,
            "preprocess": self.prep.as_dict(),
            "preprocess_sources": dict(self.prep.sources),
        }


def load_model(path: Path, options: ModelOptions) -> Model:
    """Load, check and open the ONNX model at `path` on the CPU execution provider."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    proto = _read_proto(path)
    metadata = _read_metadata(proto, path)
    session = _open_session(path, options)
    input_meta = _pick(session.get_inputs(), options.input_name, "input", "--input", path)
    output_meta = _pick_output(session.get_outputs(), options.output_name, path)
    dtype = TENSOR_DTYPES.get(input_meta.type)
    shape = list(input_meta.shape)
    if dtype is None or len(shape) != 4:
        raise ModelError(
            f"{path}: expected an image input of rank 4 in float32 or float16, "
            f"found '{input_meta.name}' {input_meta.type} {shape}"
        )
    layout, size = _infer_layout(shape)
    prep = preprocess.resolve(options.preprocess, metadata, size, layout)
    if size is not None and prep.size != size:
        raise ConfigError(
            f"{path}: size {prep.size[0]}x{prep.size[1]} (from "
            f"{prep.sources['size']}) does not match the model's fixed input "
            f"size {size[0]}x{size[1]}"
        )
    classes = options.classes or metadata.get("classes")
    return Model(
        path=path,
        session=session,
        proto_info=_describe_proto(proto, path, session),
        input_name=input_meta.name,
        input_dtype=dtype,
        batch=shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None,
        output_name=output_meta.name,
        prep=prep,
        options=options,
        metadata=metadata,
        classes=[str(c) for c in classes] if classes else None,
        provider=session.get_providers()[0],
        _graph_hint=outputs.graph_hint(proto, output_meta.name),
    )


def _read_proto(path: Path) -> onnx.ModelProto:
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and others for garbage
        raise ModelError(f"{path}: not a readable ONNX model ({_first_line(exc)})") from exc
    if not proto.graph.input or not proto.graph.output:
        raise ModelError(f"{path}: not an ONNX model (no graph inputs or outputs found)")
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise ModelError(
            f"{path}: the ONNX checker rejected the model: {_first_line(exc)}"
        ) from exc
    return proto


def _read_metadata(proto: onnx.ModelProto, path: Path) -> dict[str, Any]:
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


def import_runtime() -> Any:
    """Import onnxruntime, refusing a missing runtime or two runtimes side by side."""
    installed = installed_runtimes()
    if len(installed) > 1:
        raise RuntimeMissingError(
            f"both {' and '.join(installed)} are installed and overwrite each other's files: "
            "uninstall both, then install one extra ('auditor[cpu]' or 'auditor[gpu]')"
        )
    try:
        import onnxruntime as ort
    except ImportError:
        raise RuntimeMissingError(
            "onnxruntime is not installed: install auditor with the 'cpu' extra "
            "(pip install 'auditor[cpu]') or the 'gpu' extra for CUDA"
        ) from None
    return ort


def installed_runtimes() -> list[str]:
    """Names of the onnxruntime distributions installed (at most one is sane)."""
    found = []
    for dist in RUNTIME_DISTRIBUTIONS:
        try:
            metadata.version(dist)
            found.append(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def _open_session(path: Path, options: ModelOptions) -> Any:
    ort = import_runtime()
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = options.threads
    session_options.log_severity_level = 3  # errors only; warnings would clutter stderr
    try:
        return ort.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(
            f"{path}: onnxruntime cannot load the model: {runtime_message(exc)}"
        ) from exc


def _pick(items: Sequence[Any], wanted: str | None, what: str, flag: str, path: Path) -> Any:
    names = [i.name for i in items]
    if wanted is not None:
        if wanted not in names:
            raise ConfigError(f"{path}: no {what} named '{wanted}'; found {', '.join(names)}")
        return items[names.index(wanted)]
    if len(items) > 1:
        raise ConfigError(
            f"{path}: the model has several {what}s ({', '.join(names)}): "
            f"choose one with {flag} NAME"
        )
    return items[0]


def _pick_output(items: Sequence[Any], wanted: str | None, path: Path) -> Any:
    """Return the output named `wanted`, else the first shaped [N, K] or [N]."""
    if wanted is not None or len(items) == 1:
        return _pick(items, wanted, "output", "--output-name", path)
    for item in items:
        if len(item.shape) in (1, 2):
            return item
    raise ModelError(
        f"{path}: no output shaped [N, K] among "
        f"{', '.join(i.name for i in items)}; choose one with --output-name"
    )


def _infer_layout(shape: list[Any]) -> tuple[str | None, tuple[int, int] | None]:
    """Infer the layout from which axis has 3 channels, and the static (H, W) if any."""

    def static(d: Any) -> int | None:
        return d if isinstance(d, int) and d > 0 else None

    if static(shape[1]) == 3 and static(shape[3]) != 3:
        layout: str | None = "nchw"
    elif static(shape[3]) == 3 and static(shape[1]) != 3:
        layout = "nhwc"
    else:
        layout = None
    if layout is None:
        return None, None
    h, w = (shape[2], shape[3]) if layout == "nchw" else (shape[1], shape[2])
    size = (h, w) if static(h) and static(w) else None
    return layout, size


def _describe_proto(proto: onnx.ModelProto, path: Path, session: Any) -> dict[str, Any]:
    def io(items: Sequence[Any]) -> list[dict[str, Any]]:
        return [
            {
                "name": i.name,
                "shape": [d if isinstance(d, int) else str(d) for d in i.shape],
                "dtype": i.type,
            }
            for i in items
        ]

    return {
        "path": str(path),
        "file_name": path.name,
        "sha256": _sha256(path),
        "size_bytes": path.stat().st_size,
        "opset": max(
            (o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=None
        ),
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "inputs": io(session.get_inputs()),
        "outputs": io(session.get_outputs()),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def runtime_message(exc: BaseException) -> str:
    """Return what an onnxruntime error says, without its status code and C++ location."""
    text = _RUNTIME_STATUS.sub("", _first_line(exc, limit=2000))
    # "... failed:/src/graph/model.cc:181 onnxruntime::Model::Model(...) Unsupported ..."
    located = _RUNTIME_LOCATION.search(text)
    if located:
        text = text[located.end() :]
    return text.strip()[:300] or type(exc).__name__


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:limit]
