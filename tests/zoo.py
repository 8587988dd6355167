"""A zoo of tiny ONNX classifiers covering every input, output and file case of the adapter.

Each model reads the image tensor (uint8 and float16 inputs are cast to float inside,
uint8 also divided by 255, as such models do), brings it to NCHW, then either flattens it
(static sizes) or averages each channel (dynamic sizes), and applies one linear layer
and a head. `ZooModel.reference` recomputes the output in numpy from the same weights,
given the tensor the test built itself, so tests check the adapter against numpy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ELEMENT = {
    "float32": TensorProto.FLOAT,
    "float16": TensorProto.FLOAT16,
    "float64": TensorProto.DOUBLE,
    "uint8": TensorProto.UINT8,
}


@dataclass(frozen=True)
class ZooModel:
    """A built model and what a numpy reference needs to recompute its probabilities."""

    path: Path
    weights: np.ndarray  # (features, K)
    bias: np.ndarray
    head: str  # softmax, sigmoid or none (raw logits)
    pooling: str  # flatten or mean
    dtype: str

    def reference(self, tensor_nchw: np.ndarray) -> np.ndarray:
        """Probabilities (N x max(K, 2)) from the NCHW tensor fed to the model."""
        x = tensor_nchw.astype(np.float64)
        if self.dtype == "uint8":
            x = x / 255
        features = x.reshape(len(x), -1) if self.pooling == "flatten" else x.mean(axis=(2, 3))
        logits = features @ self.weights.astype(np.float64) + self.bias
        if logits.shape[1] == 1:
            p = 1 / (1 + np.exp(-logits[:, 0]))
            return np.stack([1 - p, p], axis=1)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def build(
    path: Path,
    *,
    layout: str = "nchw",
    dtype: str = "float32",
    batch: int | str = "N",
    size: tuple[int | str, int | str] = (8, 8),
    head: str = "softmax",
    classes: int = 2,
    props: dict[str, str] | None = None,
    optional_input: bool = False,
    required_input: bool = False,
    outputs: str = "one",  # one, pooled_first (4-D then [N, K]), logits_and_probs
    custom_op: bool = False,
    nan: bool = False,
    external: bool = False,
    seed: int = 0,
) -> ZooModel:
    """Write one zoo model to `path` and return it with its weights."""
    h, w = size
    pooling = "flatten" if isinstance(h, int) and isinstance(w, int) else "mean"
    features = 3 * int(h) * int(w) if pooling == "flatten" else 3
    rng = np.random.default_rng(seed)
    scale = 8.0 / np.sqrt(features)  # logits of several units, mostly outside [0, 1]
    weights = (rng.normal(0, scale, (features, classes))).astype(np.float32)
    bias = rng.normal(0, 0.5, classes).astype(np.float32)
    nodes, inits = _body(layout, dtype, pooling, nan)
    inits += [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")]
    nodes.append(helper.make_node("Gemm", ["features", "W", "B"], ["logits"]))
    inputs = [_input("image", dtype, layout, batch, size)]
    if optional_input or required_input:
        inputs.append(helper.make_tensor_value_info("gain", TensorProto.FLOAT, [1]))
        nodes.append(helper.make_node("Mul", ["logits", "gain"], ["gained"]))
        if optional_input:  # an initializer of the same name makes the input optional
            inits.append(numpy_helper.from_array(np.ones(1, np.float32), "gain"))
    last = "gained" if (optional_input or required_input) else "logits"
    if custom_op:
        nodes.append(helper.make_node("Calibrate", [last], ["calibrated"], domain="vendor.ops"))
        last = "calibrated"
    final = _head(nodes, head, last)
    graph_outputs = _outputs(outputs, final, last, batch, classes)
    graph = helper.make_graph(nodes, "zoo", inputs, graph_outputs, initializer=inits)
    opsets = [helper.make_opsetid("", 17)]
    if custom_op:
        opsets.append(helper.make_opsetid("vendor.ops", 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="auditor-zoo")
    model.ir_version = 8
    if props:
        helper.set_model_props(model, props)
    if external:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            location="weights.bin",
            size_threshold=0,
        )
    else:
        onnx.save(model, str(path))
    return ZooModel(path, weights, bias, head, pooling, dtype)


def _input(
    name: str, dtype: str, layout: str, batch: int | str, size: tuple
) -> onnx.ValueInfoProto:
    h, w = size
    shape = [batch, 3, h, w] if layout == "nchw" else [batch, h, w, 3]
    return helper.make_tensor_value_info(name, ELEMENT[dtype], shape)


def _body(
    layout: str, dtype: str, pooling: str, nan: bool
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """image -> float NCHW -> features (flattened or channel means)."""
    nodes, inits, x = [], [], "image"
    if dtype != "float32":
        nodes.append(helper.make_node("Cast", [x], ["as_float"], to=TensorProto.FLOAT))
        x = "as_float"
    if dtype == "uint8":  # the model normalizes its raw pixels itself
        inits.append(numpy_helper.from_array(np.array(1 / 255, np.float32), "inv255"))
        nodes.append(helper.make_node("Mul", [x, "inv255"], ["unit"]))
        x = "unit"
    if layout == "nhwc":
        nodes.append(helper.make_node("Transpose", [x], ["nchw"], perm=[0, 3, 1, 2]))
        x = "nchw"
    if nan:  # sqrt(x - 0.5) is NaN wherever a pixel is darker than mid-grey
        inits.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
        nodes.append(helper.make_node("Sub", [x, "half"], ["shifted"]))
        nodes.append(helper.make_node("Sqrt", ["shifted"], ["rooted"]))
        x = "rooted"
    if pooling == "mean":
        nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
        x = "pooled"
    nodes.append(helper.make_node("Identity", [x], ["spatial"]))  # a 4-D tensor to expose
    nodes.append(helper.make_node("Flatten", ["spatial"], ["features"]))
    return nodes, inits


def _head(nodes: list[onnx.NodeProto], head: str, last: str) -> str:
    if head == "none":
        return last
    op = {"softmax": "Softmax", "sigmoid": "Sigmoid"}[head]
    nodes.append(
        helper.make_node(op, [last], ["scores"], **({"axis": 1} if op == "Softmax" else {}))
    )
    return "scores"


def _outputs(kind: str, final: str, logits: str, batch: int | str, classes: int) -> list:
    def info(name: str, shape: list) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    if kind == "pooled_first":
        return [info("spatial", [batch, 3, None, None]), info(final, [batch, classes])]
    if kind == "logits_and_probs":
        return [info(logits, [batch, classes]), info(final, [batch, classes])]
    return [info(final, [batch, classes])]


def labels_prop(key: str, names: list[str], style: str) -> dict[str, str]:
    """Class names as exporters write them under `key`, in one of several styles."""
    text = {
        "newline": "\n".join(names),
        "comma": ",".join(names),
        "json_list": json.dumps(names),
        "json_dict": json.dumps({str(i): n for i, n in enumerate(names)}),
        "python_dict": repr(dict(enumerate(names))),
    }[style]
    return {key: text}


def retarget_external(path: Path, location: str) -> None:
    """Point every external-data reference of the model at `path` to `location`."""
    proto = onnx.load(str(path), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    path.write_bytes(proto.SerializeToString())
