"""The model adapter: load and check an ONNX classifier, preprocess, predict probabilities.

Everything model-specific (layout, dtype, preprocessing, output kind, classes) lives
here; the rest of `auditor` sees RGB uint8 images go in and probability vectors come out.
Reading the file safely is `modelfile`'s job; choosing the provider is `providers`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray

from auditor.config import ModelOptions
from auditor.errors import ConfigError, ModelError, out_of_memory
from auditor.model import outputs, preprocess
from auditor.model.modelfile import (
    METADATA_KEY,
    ModelFile,
    labels_value,
    metadata_labels,
    read_metadata,
    read_model_file,
)
from auditor.model.preprocess import Preprocessing
from auditor.model.providers import (
    RUNTIME_DISTRIBUTIONS,
    Runtime,
    import_runtime,
    installed_runtimes,
    open_session,
    runtime_message,
)

__all__ = [
    "METADATA_KEY",
    "RUNTIME_DISTRIBUTIONS",
    "Model",
    "import_runtime",
    "installed_runtimes",
    "load_model",
    "runtime_message",
]

TENSOR_DTYPES: dict[str, type] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
}


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
    classes_source: str | None = None
    output_kind: str | None = None
    output_kind_evidence: str = ""
    num_outputs: int | None = None
    provider: str = "CPUExecutionProvider"
    runtime: Runtime | None = None
    # Rows of every session call, the last one padded: a row's result then never depends
    # on how many rows came with it (onnxruntime's kernels may round differently for
    # another batch shape). None: the whole tensor in one call. A fixed batch decides.
    call_rows: int | None = None
    _graph_hint: str | None = field(default=None, repr=False)

    def predict(self, images: Sequence[NDArray[np.uint8]]) -> NDArray[np.float64]:
        """Return the normalized output (N x K probabilities) for RGB uint8 `images`."""
        return self.infer(self.to_tensor(images))

    def to_tensor(
        self, images: Sequence[NDArray[np.uint8]], out: NDArray[Any] | None = None
    ) -> NDArray[Any]:
        """Preprocess RGB uint8 `images` into one input tensor (or `out`); thread-safe."""
        return preprocess.to_tensor(images, self.prep, self.input_dtype, out)

    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one image's input: C x H x W or H x W x C."""
        return preprocess.input_shape(self.prep)

    def infer(self, tensor: NDArray[Any]) -> NDArray[np.float64]:
        """Run the model on a tensor from `to_tensor`; return N x K probabilities."""
        raw = self.run_raw(tensor)
        if self.output_kind is None:
            self.output_kind, self.output_kind_evidence = outputs.detect_kind(
                raw, self.options.output_kind, self.metadata.get("output_kind"), self._graph_hint
            )
        # Call by call, at the call's shape: numpy's exp, too, may round a row differently
        # in an array of another length.
        step, probs = self.call_step(len(raw)), []
        for start in range(0, len(raw), step):
            chunk = raw[start : start + step]
            probs.append(outputs.normalize(_padded(chunk, step), self.output_kind)[: len(chunk)])
        return np.concatenate(probs)

    def call_step(self, rows: int) -> int:
        """Rows of each session call for a tensor of `rows` rows (see `call_rows`)."""
        return self.batch or self.call_rows or rows

    def kind_without_values(self) -> tuple[str, str] | None:
        """The output kind when a flag, the metadata or the graph decides it, else None."""
        return outputs.declared_kind(
            self.options.output_kind, self.metadata.get("output_kind"), self._graph_hint
        )

    def run_raw(self, tensor: NDArray[Any]) -> NDArray[np.float64]:
        """Run the session on `tensor` in chunks the model accepts; check the values."""
        step = self.call_step(len(tensor))
        chunks = []
        for start in range(0, len(tensor), step):
            part = tensor[start : start + step]
            missing = step - len(part)
            part = _padded(part, step)  # a call shape larger than what is left: pad, then drop
            try:
                out = self.session.run([self.output_name], {self.input_name: part})[0]
            except Exception as exc:  # onnxruntime raises several unrelated types
                if out_of_memory(exc):  # the engine names the limit and what it was doing
                    raise MemoryError(runtime_message(exc)) from exc
                raise ModelError(f"{self.path}: inference failed: {runtime_message(exc)}") from exc
            out = np.asarray(out, np.float64)
            if out.ndim == 0 or out.shape[0] != len(part):
                raise ModelError(
                    f"{self.path}: output '{self.output_name}' has shape {list(out.shape)} for "
                    f"a batch of {len(part)} images: its first axis must be the batch"
                )
            chunks.append(out[: step - missing])
        raw = np.concatenate(chunks).reshape(len(tensor), -1)
        bad = int(np.count_nonzero(~np.isfinite(raw)))
        if bad:
            raise ModelError(
                f"{self.path}: output '{self.output_name}' holds {bad} NaN or infinite "
                f"value(s) in a batch of {len(tensor)} images; the audit cannot score them"
            )
        self.check_width(raw.shape[1])
        return raw

    def check_width(self, width: int) -> None:
        """Fix the number of classes on the first call and check the class names fit."""
        if self.num_outputs is None:
            self.num_outputs = width
            expected = 2 if width == 1 else width
            if self.classes is None:
                self.classes = [str(i) for i in range(expected)]
                self.classes_source = "indices"
            elif len(self.classes) != expected:
                raise ConfigError(
                    f"{len(self.classes)} class names ({', '.join(self.classes)}, from "
                    f"{self.classes_source or 'the data folders'}) but the model output "
                    f"'{self.output_name}' gives {expected} classes"
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
            "input_dtype": np.dtype(self.input_dtype).name,
            "output_name": self.output_name,
            "layout": self.prep.layout,
            "batch": self.batch if self.batch is not None else "dynamic",
            "output_kind": self.output_kind,
            "output_kind_evidence": self.output_kind_evidence,
            "classes": self.classes,
            "classes_source": self.classes_source or ("data" if self.classes else None),
            "task": self.task,
            "positive_class": self.classes[positive]
            if positive is not None and self.classes
            else None,
            "preprocess": self.prep.as_dict(),
            "preprocess_sources": dict(self.prep.sources),
            "runtime": self.runtime.as_dict() if self.runtime else None,
        }


def _padded(rows: NDArray[Any], count: int) -> NDArray[Any]:
    """`rows` followed by copies of its last row, to `count` rows."""
    missing = count - len(rows)
    return np.concatenate([rows, np.repeat(rows[-1:], missing, axis=0)]) if missing else rows


def load_model(path: Path, options: ModelOptions) -> Model:
    """Check the ONNX file at `path`, open it on the chosen provider and read its input."""
    file = read_model_file(Path(path), options.max_model_size)
    path = file.path
    metadata = read_metadata(file.proto, path)
    session, runtime = open_session(path, options.threads, options.provider, file.proto)
    input_meta = _pick_input(session, options.input_name, path)
    output_meta = _pick_output(session.get_outputs(), options.output_name, path)
    dtype = TENSOR_DTYPES.get(input_meta.type)
    shape = list(input_meta.shape)
    if dtype is None or len(shape) != 4:
        raise ModelError(
            f"{path}: expected an image input of rank 4 in float32, float16, float64 or "
            f"uint8, found '{input_meta.name}' {input_meta.type} {shape}"
        )
    layout, size = infer_layout(shape, options.preprocess.layout or metadata.get("layout"))
    try:
        prep = preprocess.resolve(
            options.preprocess, metadata, size, layout, integer_input=dtype == np.uint8
        )
    except preprocess.DynamicSizeError as exc:
        raise preprocess.DynamicSizeError(
            f"{path}: input '{input_meta.name}' {shape}: {exc}"
        ) from None
    if size is not None and prep.size != size:
        raise ConfigError(
            f"{path}: size {prep.size[0]}x{prep.size[1]} (from "
            f"{prep.sources['size']}) does not match the model's fixed input "
            f"size {size[0]}x{size[1]}"
        )
    _check_input_size(prep.size, path)
    classes, classes_source = _classes(options, metadata, file.proto, path)
    return Model(
        path=path,
        session=session,
        proto_info=_describe_file(file, session),
        input_name=input_meta.name,
        input_dtype=dtype,
        batch=shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None,
        output_name=output_meta.name,
        prep=prep,
        options=options,
        metadata=metadata,
        classes=classes,
        classes_source=classes_source,
        provider=runtime.provider,
        runtime=runtime,
        _graph_hint=outputs.graph_hint(file.proto, output_meta.name),
    )


MAX_INPUT_PIXELS = 100_000_000
"""Largest model input (height x width) accepted: one 224 px image is 50,176 pixels, and a
declared input of 10^5 x 10^5 would ask for tens of GB per image before any inference."""


def _check_input_size(size: tuple[int, int], path: Path) -> None:
    h, w = size
    if h * w > MAX_INPUT_PIXELS:
        raise ModelError(
            f"{path}: the model's input is {h}x{w} pixels per image, more than the "
            f"{MAX_INPUT_PIXELS:,} an audit accepts; set a smaller input size with --size HxW"
        )


def _classes(
    options: ModelOptions, metadata: dict[str, Any], proto: onnx.ModelProto, path: Path
) -> tuple[list[str] | None, str | None]:
    """Class names from --classes, then `auditor.preprocess`, then common metadata keys."""
    if options.classes:
        return [str(c) for c in options.classes], "flag"
    if metadata.get("classes"):
        where = f"{path}: metadata '{METADATA_KEY}' classes"
        return labels_value(metadata["classes"], where), f"metadata ({METADATA_KEY})"
    found = metadata_labels(proto)
    if found:
        return found[0], f"metadata ({found[1]})"
    return None, None


def _pick_input(session: Any, wanted: str | None, path: Path) -> Any:
    """The image input: the only one, or `--input NAME`; every other must be optional."""
    required = list(session.get_inputs())
    optional = list(session.get_overridable_initializers())
    everything = required + optional
    names = [i.name for i in everything]
    if wanted is None:
        if len(everything) > 1:
            raise ConfigError(
                f"{path}: the model has several inputs ({_listing(everything)}): "
                "choose the image input with --input NAME"
            )
        return everything[0]
    if wanted not in names:
        raise ConfigError(f"{path}: no input named '{wanted}'; found {_listing(everything)}")
    others = [i for i in required if i.name != wanted]
    if others:
        raise ModelError(
            f"{path}: the model also requires input(s) {_listing(others)}, which auditor "
            f"cannot supply; only one image input can be fed"
        )
    return everything[names.index(wanted)]


def _listing(items: Sequence[Any]) -> str:
    return ", ".join(f"{i.name} {i.type} {list(i.shape)}" for i in items)


def _pick_output(items: Sequence[Any], wanted: str | None, path: Path) -> Any:
    """Return the output named `wanted`, else the first shaped [N, K] or [N]."""
    names = [i.name for i in items]
    if wanted is not None:
        if wanted not in names:
            raise ConfigError(f"{path}: no output named '{wanted}'; found {_listing(items)}")
        return items[names.index(wanted)]
    for item in items:
        if len(item.shape) in (1, 2):
            return item
    if len(items) == 1:
        return items[0]
    raise ModelError(
        f"{path}: no output shaped [N, K] among {_listing(items)}; choose one with --output-name"
    )


def infer_layout(
    shape: list[Any], given: str | None = None
) -> tuple[str | None, tuple[int, int] | None]:
    """Infer the layout from which axis has 3 channels (unless `given`), and the static (H, W)."""

    def static(d: Any) -> int | None:
        return d if isinstance(d, int) and d > 0 else None

    if given in ("nchw", "nhwc"):
        layout: str | None = given
    elif static(shape[1]) == 3 and static(shape[3]) != 3:
        layout = "nchw"
    elif static(shape[3]) == 3 and static(shape[1]) != 3:
        layout = "nhwc"
    else:
        layout = None
    if layout is None:
        return None, None
    h, w = (shape[2], shape[3]) if layout == "nchw" else (shape[1], shape[2])
    size = (h, w) if static(h) and static(w) else None
    return layout, size


def _describe_file(file: ModelFile, session: Any) -> dict[str, Any]:
    def io(items: Sequence[Any]) -> list[dict[str, Any]]:
        return [
            {
                "name": i.name,
                "shape": [d if isinstance(d, int) else str(d) for d in i.shape],
                "dtype": i.type,
            }
            for i in items
        ]

    proto = file.proto
    return {
        "path": str(file.path),
        "file_name": file.path.name,
        "sha256": file.sha256,
        "size_bytes": file.size_bytes,
        "external_data": file.external_data,
        "opset": max(
            (o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=None
        ),
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "inputs": io([*session.get_inputs(), *session.get_overridable_initializers()]),
        "outputs": io(session.get_outputs()),
    }
