"""A small ONNX-to-PyTorch converter for image classifiers: the model half of the gradient twin.

`convert(proto)` returns a `TorchGraph` that runs the graph's nodes in order with
`torch` operations, so autograd gives input gradients that onnxruntime does not. It
covers the operators image classifiers use (convolutions, pooling, normalization,
activations, linear layers, the shape arithmetic exporters emit, Resize in its common
modes); any other operator raises `UnsupportedOperator` naming it. Nothing here is
trusted blindly: the twin's outputs are compared with onnxruntime's on every audit.

Why not onnx2torch: it imports torchvision, which cannot be installed beside the CPU
build of torch that these machines provide, and a CUDA build of torch costs about 5 GB.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper

from auditor.errors import ConfigError

Tensor = torch.Tensor
Values = list[Tensor | None]
Attrs = dict[str, Any]
OpFn = Callable[[Values, Attrs, int], Tensor | Sequence[Tensor]]

OPS: dict[str, OpFn] = {}

_DTYPES: dict[int, torch.dtype] = {
    onnx.TensorProto.FLOAT: torch.float32,
    onnx.TensorProto.DOUBLE: torch.float64,
    onnx.TensorProto.FLOAT16: torch.float16,
    onnx.TensorProto.INT64: torch.int64,
    onnx.TensorProto.INT32: torch.int32,
    onnx.TensorProto.INT8: torch.int8,
    onnx.TensorProto.UINT8: torch.uint8,
    onnx.TensorProto.BOOL: torch.bool,
}


class UnsupportedOperator(ConfigError):
    """The graph has an operator the gradient twin cannot convert."""


def op(*names: str) -> Callable[[OpFn], OpFn]:
    """Register the decorated function as the converter of the ONNX operators `names`."""

    def register(fn: OpFn) -> OpFn:
        for name in names:
            OPS[name] = fn
        return fn

    return register


class TorchGraph(torch.nn.Module):
    """An ONNX graph run node by node with torch operations (inference semantics)."""

    def __init__(self, proto: onnx.ModelProto, input_name: str | None = None) -> None:
        super().__init__()
        graph = proto.graph
        self.opset = max(
            (o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=13
        )
        self.constants: dict[str, Tensor] = {
            init.name: _widened(torch.from_numpy(np.array(numpy_helper.to_array(init))))
            for init in graph.initializer
        }
        # Older exporters list initializers among the inputs: those are weights, not inputs.
        self.inputs = [i.name for i in graph.input if i.name not in self.constants]
        if input_name is not None:  # the image input the model is fed (`--input`)
            self.constants.pop(input_name, None)
            self.inputs = [input_name]
        self.outputs = [o.name for o in graph.output]
        self.nodes = [
            (n.op_type, list(n.input), list(n.output), _attributes(n), n.name) for n in graph.node
        ]
        for op_type, _, _, _, name in self.nodes:
            if op_type not in OPS:
                raise unsupported(op_type, name)

    def on(self, device: torch.device) -> TorchGraph:
        """Move the weights to `device` (they are plain tensors, not registered buffers)."""
        self.constants = {k: v.to(device) for k, v in self.constants.items()}
        return self

    def forward(self, x: Tensor, wanted: Sequence[str] | None = None) -> list[Tensor]:
        """Return the values named `wanted` (default: the graph outputs) for input `x`."""
        values: dict[str, Tensor | None] = {"": None, **self.constants, self.inputs[0]: x}
        for op_type, inputs, outputs, attrs, _ in self.nodes:
            result = OPS[op_type]([values.get(i) for i in inputs], attrs, self.opset)
            results = [result] if isinstance(result, Tensor) else list(result)
            for name, value in zip(outputs, results):
                if value.is_floating_point() and value.device != x.device:
                    value = value.to(x.device)  # a Constant or ConstantOfShape made on the CPU
                values[name] = value
        out = []
        for name in wanted or self.outputs:
            found = values.get(name)
            if found is None:
                raise ConfigError(f"the gradient twin computed no value '{name}'")
            out.append(found)
        return out


def convert(proto: onnx.ModelProto, input_name: str | None = None) -> TorchGraph:
    """Convert `proto` fed at `input_name` (default: its first input that is no weight).

    Raises `UnsupportedOperator` naming the first operator it cannot convert.
    """
    for node in proto.graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise unsupported(f"{node.domain}.{node.op_type}", node.name)
    return TorchGraph(proto, input_name).eval()


def unsupported(op_type: str, node: str) -> UnsupportedOperator:
    """The one-line error for an operator the converter lacks, with the way out."""
    where = f" (node '{node}')" if node else ""
    return UnsupportedOperator(
        f"the gradient twin cannot convert operator '{op_type}'{where}; "
        "use the black-box search instead: -p square_linf"
    )


def _widened(value: Tensor) -> Tensor:
    """float16 computed in float32: CPU kernels lack half precision, and gradients want it."""
    return value.float() if value.dtype == torch.float16 else value


def _attributes(node: onnx.NodeProto) -> Attrs:
    out: Attrs = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, onnx.TensorProto):
            value = _widened(torch.from_numpy(np.array(numpy_helper.to_array(value))))
        elif isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8") for v in value]
        out[attr.name] = value
    return out


def _need(value: Tensor | None) -> Tensor:
    if value is None:
        raise ConfigError("the gradient twin met a missing required input")
    return value


def _ints(value: Tensor | None) -> list[int]:
    return [int(v) for v in _need(value).reshape(-1).tolist()]


# --- elementwise -------------------------------------------------------------------------

_UNARY: dict[str, Callable[[Tensor], Tensor]] = {
    "Relu": torch.relu,
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "Exp": torch.exp,
    "Log": torch.log,
    "Sqrt": torch.sqrt,
    "Abs": torch.abs,
    "Neg": torch.neg,
    "Reciprocal": torch.reciprocal,
    "Floor": torch.floor,
    "Ceil": torch.ceil,
    "Round": torch.round,
    "Sign": torch.sign,
    "Erf": torch.erf,
    "Sin": torch.sin,
    "Cos": torch.cos,
    "Softsign": F.softsign,
    "Not": torch.logical_not,
    "Identity": lambda x: x,
}


def _unary(name: str) -> OpFn:
    fn = _UNARY[name]
    return lambda v, a, s: fn(_need(v[0]))


for _name in _UNARY:
    OPS[_name] = _unary(_name)


def _divide(x: Tensor, y: Tensor) -> Tensor:
    if x.is_floating_point() or y.is_floating_point():
        return x / y
    return torch.div(x, y, rounding_mode="trunc")  # ONNX integer division truncates


_BINARY: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "Add": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "Div": _divide,
    "Pow": torch.pow,
    "Equal": torch.eq,
    "Less": torch.lt,
    "LessOrEqual": torch.le,
    "Greater": torch.gt,
    "GreaterOrEqual": torch.ge,
    "And": torch.logical_and,
    "Or": torch.logical_or,
    "PRelu": lambda x, slope: torch.where(x >= 0, x, x * slope),
}


def _binary(name: str) -> OpFn:
    fn = _BINARY[name]
    return lambda v, a, s: fn(_need(v[0]), _need(v[1]))


for _name in _BINARY:
    OPS[_name] = _binary(_name)


def _fold(fn: Callable[[Tensor, Tensor], Tensor], mean: bool = False) -> OpFn:
    def run(v: Values, a: Attrs, s: int) -> Tensor:
        items = [_need(x) for x in v]
        out = items[0]
        for item in items[1:]:
            out = fn(out, item)
        return out / len(items) if mean else out

    return run


OPS.update(
    Max=_fold(torch.maximum),
    Min=_fold(torch.minimum),
    Sum=_fold(torch.add),
    Mean=_fold(torch.add, mean=True),
)


@op("Where")
def _where(v: Values, a: Attrs, s: int) -> Tensor:
    return torch.where(_need(v[0]).bool(), _need(v[1]), _need(v[2]))


@op("LeakyRelu")
def _leaky_relu(v: Values, a: Attrs, s: int) -> Tensor:
    return F.leaky_relu(_need(v[0]), float(a.get("alpha", 0.01)))


@op("Elu")
def _elu(v: Values, a: Attrs, s: int) -> Tensor:
    return F.elu(_need(v[0]), float(a.get("alpha", 1.0)))


@op("Selu")
def _selu(v: Values, a: Attrs, s: int) -> Tensor:
    alpha, gamma = (
        float(a.get("alpha", 1.67326319217681884765625)),
        float(a.get("gamma", 1.05070102214813232421875)),
    )
    x = _need(v[0])
    return gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


@op("HardSigmoid")
def _hard_sigmoid(v: Values, a: Attrs, s: int) -> Tensor:
    alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
    return torch.clamp(alpha * _need(v[0]) + beta, 0, 1)


@op("HardSwish")
def _hard_swish(v: Values, a: Attrs, s: int) -> Tensor:
    x = _need(v[0])
    return x * torch.clamp(x / 6 + 0.5, 0, 1)


@op("Softplus")
def _softplus(v: Values, a: Attrs, s: int) -> Tensor:
    return F.softplus(_need(v[0]))


@op("Gelu")
def _gelu(v: Values, a: Attrs, s: int) -> Tensor:
    return F.gelu(_need(v[0]), approximate=str(a.get("approximate", "none")))


@op("Clip")
def _clip(v: Values, a: Attrs, s: int) -> Tensor:
    x = _need(v[0])
    if s < 11:
        low, high = a.get("min"), a.get("max")
    else:
        low = v[1] if len(v) > 1 else None
        high = v[2] if len(v) > 2 else None
    return torch.clamp(x, min=low, max=high)


@op("Cast")
def _cast(v: Values, a: Attrs, s: int) -> Tensor:
    to = int(a["to"])
    if to not in _DTYPES:
        raise UnsupportedOperator(f"the gradient twin cannot Cast to ONNX type {to}")
    dtype = _DTYPES[to]
    return _need(v[0]).to(torch.float32 if dtype == torch.float16 else dtype)


@op("Dropout")
def _dropout(v: Values, a: Attrs, s: int) -> list[Tensor]:
    x = _need(v[0])
    return [x, torch.ones_like(x, dtype=torch.bool)]


@op("Constant")
def _constant(v: Values, a: Attrs, s: int) -> Tensor:
    if "value" in a:
        return a["value"]  # type: ignore[no-any-return]
    for key, dtype in (("value_float", torch.float32), ("value_floats", torch.float32),
                       ("value_int", torch.int64), ("value_ints", torch.int64)):  # fmt: skip
        if key in a:
            return torch.tensor(a[key], dtype=dtype)
    raise UnsupportedOperator("the gradient twin cannot convert a Constant of this kind")


@op("ConstantOfShape")
def _constant_of_shape(v: Values, a: Attrs, s: int) -> Tensor:
    value = a.get("value", torch.zeros(1))
    return torch.full(_ints(v[0]), value.reshape(-1)[0].item(), dtype=value.dtype)


# --- linear layers and convolutions ---------------------------------------------------------


@op("MatMul")
def _matmul(v: Values, a: Attrs, s: int) -> Tensor:
    return torch.matmul(_need(v[0]), _need(v[1]))


@op("Gemm")
def _gemm(v: Values, a: Attrs, s: int) -> Tensor:
    x, w = _need(v[0]), _need(v[1])
    x = x.t() if a.get("transA", 0) else x
    w = w.t() if a.get("transB", 0) else w
    out = float(a.get("alpha", 1.0)) * (x @ w)
    if len(v) > 2 and v[2] is not None:
        out = out + float(a.get("beta", 1.0)) * v[2]
    return out


@op("Einsum")
def _einsum(v: Values, a: Attrs, s: int) -> Tensor:
    return torch.einsum(str(a["equation"]), *[_need(x) for x in v])


def _pads(x: Tensor, a: Attrs, kernel: Sequence[int], strides: Sequence[int],
          dilations: Sequence[int]) -> list[int]:  # fmt: skip
    """ONNX pads [b1, b2, ..., e1, e2, ...] for the node, resolving `auto_pad`."""
    spatial = len(kernel)
    auto = str(a.get("auto_pad", "NOTSET"))
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, k, st, d in zip(x.shape[2:], kernel, strides, dilations):
            out = math.ceil(size / st)
            total = max(0, (out - 1) * st + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            begins.append(small if auto == "SAME_UPPER" else large)
            ends.append(large if auto == "SAME_UPPER" else small)
        return begins + ends
    if auto == "VALID":
        return [0] * (2 * spatial)
    return list(a.get("pads", [0] * (2 * spatial)))


def _torch_pad(pads: Sequence[int]) -> list[int]:
    """ONNX [b1, b2, e1, e2] (first axis first) to F.pad's (last axis first) order."""
    half = len(pads) // 2
    out: list[int] = []
    for axis in reversed(range(half)):
        out += [pads[axis], pads[axis + half]]
    return out


def _window(x: Tensor, a: Attrs, kernel: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    spatial = len(kernel)
    strides = list(a.get("strides", [1] * spatial))
    dilations = list(a.get("dilations", [1] * spatial))
    return strides, dilations, _pads(x, a, kernel, strides, dilations)


@op("Conv")
def _conv(v: Values, a: Attrs, s: int) -> Tensor:
    x, w = _need(v[0]), _need(v[1])
    bias = v[2] if len(v) > 2 else None
    kernel = list(a.get("kernel_shape", w.shape[2:]))
    strides, dilations, pads = _window(x, a, kernel)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}.get(len(kernel))
    if conv is None:
        raise UnsupportedOperator(f"the gradient twin cannot convert a {len(kernel)}-D Conv")
    half = len(pads) // 2
    if pads[:half] == pads[half:]:
        padding: Any = pads[:half]
    else:
        x, padding = F.pad(x, _torch_pad(pads)), 0
    return conv(x, w, bias, strides, padding, dilations, int(a.get("group", 1)))


@op("ConvTranspose")
def _conv_transpose(v: Values, a: Attrs, s: int) -> Tensor:
    x, w = _need(v[0]), _need(v[1])
    bias = v[2] if len(v) > 2 else None
    kernel = list(a.get("kernel_shape", w.shape[2:]))
    if len(kernel) != 2 or "output_shape" in a or str(a.get("auto_pad", "NOTSET")) != "NOTSET":
        raise UnsupportedOperator(
            "the gradient twin converts ConvTranspose only in 2-D with explicit pads"
        )
    pads = list(a.get("pads", [0] * 4))
    if pads[:2] != pads[2:]:
        raise UnsupportedOperator("the gradient twin cannot convert asymmetric ConvTranspose pads")
    return F.conv_transpose2d(
        x, w, bias, list(a.get("strides", [1, 1])), pads[:2],
        list(a.get("output_padding", [0, 0])), int(a.get("group", 1)),
        list(a.get("dilations", [1, 1])),
    )  # fmt: skip


# --- normalization -------------------------------------------------------------------------


@op("BatchNormalization")
def _batch_norm(v: Values, a: Attrs, s: int) -> Tensor:
    x, scale, bias, mean, var = (_need(t) for t in v[:5])
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, float(a.get("epsilon", 1e-5)))


@op("InstanceNormalization")
def _instance_norm(v: Values, a: Attrs, s: int) -> Tensor:
    x, scale, bias = (_need(t) for t in v[:3])
    return F.instance_norm(x, weight=scale, bias=bias, eps=float(a.get("epsilon", 1e-5)))


@op("LayerNormalization")
def _layer_norm(v: Values, a: Attrs, s: int) -> Tensor:
    x, scale = _need(v[0]), _need(v[1])
    bias = v[2] if len(v) > 2 else None
    axis = int(a.get("axis", -1)) % x.dim()
    return F.layer_norm(x, list(x.shape[axis:]), scale, bias, float(a.get("epsilon", 1e-5)))


@op("LRN")
def _lrn(v: Values, a: Attrs, s: int) -> Tensor:
    return F.local_response_norm(
        _need(v[0]), int(a["size"]), float(a.get("alpha", 1e-4)), float(a.get("beta", 0.75)),
        float(a.get("bias", 1.0)),
    )  # fmt: skip


# --- pooling -------------------------------------------------------------------------------


@op("MaxPool")
def _max_pool(v: Values, a: Attrs, s: int) -> Tensor:
    x = _need(v[0])
    kernel = list(a["kernel_shape"])
    strides, dilations, pads = _window(x, a, kernel)
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[len(kernel)]
    half = len(pads) // 2
    if pads[:half] != pads[half:] or any(p > k // 2 for p, k in zip(pads, kernel * 2)):
        x = F.pad(x, _torch_pad(pads), value=-math.inf)
        pads = [0] * len(pads)
    return pool(x, kernel, strides, pads[:half], dilations, bool(a.get("ceil_mode", 0)))


@op("AveragePool")
def _average_pool(v: Values, a: Attrs, s: int) -> Tensor:
    x = _need(v[0])
    kernel = list(a["kernel_shape"])
    strides, _, pads = _window(x, a, kernel)
    include = bool(a.get("count_include_pad", 0))
    half = len(pads) // 2
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(kernel)]
    symmetric = pads[:half] == pads[half:] and all(p <= k // 2 for p, k in zip(pads, kernel))
    if symmetric:
        return pool(x, kernel, strides, pads[:half], bool(a.get("ceil_mode", 0)), include)
    if not any(pads):
        return pool(x, kernel, strides, 0, bool(a.get("ceil_mode", 0)), include)
    # Asymmetric padding: average the padded sum by the count of real (or all) cells.
    padded = F.pad(x, _torch_pad(pads))
    total = pool(padded, kernel, strides, 0, bool(a.get("ceil_mode", 0)), True)
    if include:
        return total
    ones = F.pad(torch.ones_like(x[:1, :1]), _torch_pad(pads))
    share = pool(ones, kernel, strides, 0, bool(a.get("ceil_mode", 0)), True)
    return total / share


@op("GlobalAveragePool")
def _global_average_pool(v: Values, a: Attrs, s: int) -> Tensor:
    x = _need(v[0])
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


@op("GlobalMaxPool")
def _global_max_pool(v: Values, a: Attrs, s: int) -> Tensor:
    x = _need(v[0])
    return torch.amax(x, dim=tuple(range(2, x.dim())), keepdim=True)


# --- softmax and reductions ----------------------------------------------------------------


def _softmax_like(fn: Callable[..., Tensor]) -> OpFn:
    def run(v: Values, a: Attrs, s: int) -> Tensor:
        x = _need(v[0])
        if s >= 13:
            return fn(x, dim=int(a.get("axis", -1)))
        # Before opset 13 the input is flattened to 2-D at `axis` (default 1).
        axis = int(a.get("axis", 1)) % x.dim()
        flat = x.reshape(int(np.prod(x.shape[:axis])), -1)
        return fn(flat, dim=1).reshape(x.shape)

    return run


OPS["Softmax"] = _softmax_like(torch.softmax)
OPS["LogSoftmax"] = _softmax_like(torch.log_softmax)


def _axes(v: Values, a: Attrs, s: int, attr_until: int) -> list[int] | None:
    if s < attr_until:
        return list(a["axes"]) if "axes" in a else None
    return _ints(v[1]) if len(v) > 1 and v[1] is not None else None


def _reduce(fn: Callable[[Tensor, tuple[int, ...], bool], Tensor], attr_until: int) -> OpFn:
    def run(v: Values, a: Attrs, s: int) -> Tensor:
        x = _need(v[0])
        axes = _axes(v, a, s, attr_until)
        if axes is None or not axes:
            if axes is not None and a.get("noop_with_empty_axes", 0):
                return x
            axes = list(range(x.dim()))
        return fn(x, tuple(ax % x.dim() for ax in axes), bool(a.get("keepdims", 1)))

    return run


OPS.update(
    ReduceMean=_reduce(lambda x, d, k: x.mean(dim=d, keepdim=k), 18),
    ReduceSum=_reduce(lambda x, d, k: x.sum(dim=d, keepdim=k), 13),
    ReduceMax=_reduce(lambda x, d, k: torch.amax(x, dim=d, keepdim=k), 18),
    ReduceMin=_reduce(lambda x, d, k: torch.amin(x, dim=d, keepdim=k), 18),
    ReduceProd=_reduce(lambda x, d, k: _prod(x, d, k), 18),
    ReduceL2=_reduce(lambda x, d, k: torch.sqrt((x * x).sum(dim=d, keepdim=k)), 18),
    ReduceSumSquare=_reduce(lambda x, d, k: (x * x).sum(dim=d, keepdim=k), 18),
)


def _prod(x: Tensor, dims: tuple[int, ...], keep: bool) -> Tensor:
    for d in sorted(dims, reverse=True):
        x = x.prod(dim=d, keepdim=keep)
    return x


def _argfn(fn: Callable[..., Tensor]) -> OpFn:
    def run(v: Values, a: Attrs, s: int) -> Tensor:
        return fn(_need(v[0]), dim=int(a.get("axis", 0)), keepdim=bool(a.get("keepdims", 1)))

    return run


OPS.update(ArgMax=_argfn(torch.argmax), ArgMin=_argfn(torch.argmin))


# --- shapes --------------------------------------------------------------------------------


@op("Shape")
def _shape(v: Values, a: Attrs, s: int) -> Tensor:
    shape = list(_need(v[0]).shape)
    start, end = int(a.get("start", 0)), a.get("end")
    return torch.tensor(shape[start : None if end is None else int(end)], dtype=torch.int64)


@op("Size")
def _size(v: Values, a: Attrs, s: int) -> Tensor:
    return torch.tensor(_need(v[0]).numel(), dtype=torch.int64)


@op("Flatten")
def _flatten(v: Values, a: Attrs, s: int) -> Tensor:
    x = _need(v[0])
    axis = int(a.get("axis", 1)) % (x.dim() + 1) if x.dim() else 0
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


@op("Reshape")
def _reshape(v: Values, a: Attrs, s: int) -> Tensor:
    x = _need(v[0])
    shape = _ints(v[1])
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return x.reshape(shape)


@op("Transpose")
def _transpose(v: Values, a: Attrs, s: int) -> Tensor:
    x = _need(v[0])
    return x.permute(list(a.get("perm", reversed(range(x.dim())))))


@op("Concat")
def _concat(v: Values, a: Attrs, s: int) -> Tensor:
    items = [_need(x) for x in v]
    dtype = torch.promote_types(items[0].dtype, items[-1].dtype)
    return torch.cat([i.to(dtype) for i in items], dim=int(a["axis"]))


@op("Split")
def _split(v: Values, a: Attrs, s: int) -> list[Tensor]:
    x = _need(v[0])
    axis = int(a.get("axis", 0))
    if s >= 13:
        sizes = _ints(v[1]) if len(v) > 1 and v[1] is not None else None
    else:
        sizes = list(a["split"]) if "split" in a else None
    if sizes is None:
        parts = int(a.get("num_outputs", 0)) or 2
        sizes = [math.ceil(x.shape[axis] / parts)] * parts
        sizes[-1] = x.shape[axis] - sum(sizes[:-1])
    return list(torch.split(x, sizes, dim=axis))


@op("Unsqueeze")
def _unsqueeze(v: Values, a: Attrs, s: int) -> Tensor:
    x = _need(v[0])
    axes = list(a["axes"]) if s < 13 else _ints(v[1])
    rank = x.dim() + len(axes)
    for axis in sorted(ax % rank for ax in axes):
        x = x.unsqueeze(axis)
    return x


@op("Squeeze")
def _squeeze(v: Values, a: Attrs, s: int) -> Tensor:
    x = _need(v[0])
    axes = (
        (list(a["axes"]) if "axes" in a else None)
        if s < 13
        else (_ints(v[1]) if len(v) > 1 and v[1] is not None else None)
    )
    if axes is None:
        return x.squeeze()
    for axis in sorted((ax % x.dim() for ax in axes), reverse=True):
        x = x.squeeze(axis)
    return x


@op("Slice")
def _slice(v: Values, a: Attrs, s: int) -> Tensor:
    x = _need(v[0])
    if s < 10:
        starts, ends = list(a["starts"]), list(a["ends"])
        axes = list(a.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(v[1]), _ints(v[2])
        axes = _ints(v[3]) if len(v) > 3 and v[3] is not None else list(range(len(starts)))
        steps = _ints(v[4]) if len(v) > 4 and v[4] is not None else [1] * len(starts)
    index: list[slice] = [slice(None)] * x.dim()
    flips = []
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis %= x.dim()
        size = x.shape[axis]
        if step > 0:
            lo = max(0, min(size, start + size if start < 0 else start))
            hi = max(0, min(size, end + size if end < 0 else end))
            index[axis] = slice(lo, hi, step)
        else:  # negative steps: slice the flipped axis
            lo = max(-1, min(size - 1, start + size if start < 0 else start))
            hi = max(-1, min(size - 1, end + size if end < 0 else end))
            index[axis] = slice(size - 1 - lo, size - 1 - hi, -step)
            flips.append(axis)
    if flips:
        x = torch.flip(x, flips)
    return x[tuple(index)]


@op("Gather")
def _gather(v: Values, a: Attrs, s: int) -> Tensor:
    x, index = _need(v[0]), _need(v[1]).long()
    axis = int(a.get("axis", 0)) % x.dim()
    index = torch.where(index < 0, index + x.shape[axis], index)
    out = torch.index_select(x, axis, index.reshape(-1))
    return out.reshape([*x.shape[:axis], *index.shape, *x.shape[axis + 1 :]])


@op("Expand")
def _expand(v: Values, a: Attrs, s: int) -> Tensor:
    x, shape = _need(v[0]), _ints(v[1])
    return x * torch.ones(shape, dtype=x.dtype, device=x.device)  # ONNX broadcasts both ways


@op("Tile")
def _tile(v: Values, a: Attrs, s: int) -> Tensor:
    return _need(v[0]).repeat(_ints(v[1]))


@op("Range")
def _range(v: Values, a: Attrs, s: int) -> Tensor:
    start, limit, delta = (_need(t) for t in v[:3])
    return torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype)


@op("Pad")
def _pad(v: Values, a: Attrs, s: int) -> Tensor:
    x = _need(v[0])
    mode = str(a.get("mode", "constant"))
    if s < 11:
        pads, value = list(a["pads"]), float(a.get("value", 0.0))
    else:
        pads = _ints(v[1])
        value = float(v[2].item()) if len(v) > 2 and v[2] is not None else 0.0
        if len(v) > 3 and v[3] is not None:
            raise UnsupportedOperator("the gradient twin cannot convert Pad with axes")
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}.get(mode)
    if torch_mode is None:
        raise UnsupportedOperator(f"the gradient twin cannot convert Pad mode '{mode}'")
    order = _torch_pad(pads)
    while len(order) > 2 and order[-2:] == [0, 0]:
        order = order[:-2]  # torch pads only the last axes in replicate/reflect modes
    if torch_mode == "constant":
        return F.pad(x, order, value=value)
    return F.pad(x, order, mode=torch_mode)


@op("Resize", "Upsample")
def _resize(v: Values, a: Attrs, s: int) -> Tensor:
    x = _need(v[0])
    mode = str(a.get("mode", "nearest"))
    if len(v) == 2:  # Upsample, or Resize-10: (X, scales)
        scales: list[float] | None = _need(v[1]).reshape(-1).tolist()
        sizes = None
        transform = "asymmetric"
    else:
        scales_in = v[2] if len(v) > 2 else None
        sizes_in = v[3] if len(v) > 3 else None
        scales = (
            scales_in.reshape(-1).tolist() if scales_in is not None and scales_in.numel() else None
        )
        sizes = _ints(sizes_in) if sizes_in is not None and sizes_in.numel() else None
        transform = str(a.get("coordinate_transformation_mode", "half_pixel"))
    if sizes is None and scales is None:
        raise UnsupportedOperator(
            "the gradient twin cannot convert a Resize without sizes or scales"
        )
    if sizes is not None:
        target = sizes[2:]
    else:
        target = [int(math.floor(d * f)) for d, f in zip(x.shape[2:], (scales or [])[2:])]
    nearest = str(a.get("nearest_mode", "round_prefer_floor"))
    if mode == "nearest" and transform == "asymmetric" and (nearest == "floor" or len(v) == 2):
        return F.interpolate(x, size=target, mode="nearest")
    if (
        mode == "nearest"
        and transform in ("half_pixel", "pytorch_half_pixel")
        and (nearest == "round_prefer_ceil")
    ):
        return F.interpolate(x, size=target, mode="nearest-exact")
    if mode in ("linear", "cubic") and transform in ("half_pixel", "pytorch_half_pixel",
                                                     "align_corners"):  # fmt: skip
        if mode == "cubic" and float(a.get("cubic_coeff_a", -0.75)) != -0.75:
            raise UnsupportedOperator("the gradient twin converts cubic Resize only with a = -0.75")
        kind = {(1, "linear"): "linear", (2, "linear"): "bilinear", (3, "linear"): "trilinear",
                (2, "cubic"): "bicubic"}.get((len(target), mode))  # fmt: skip
        if kind is not None and not a.get("exclude_outside", 0):
            return F.interpolate(x, size=target, mode=kind,
                                 align_corners=transform == "align_corners")  # fmt: skip
    raise UnsupportedOperator(
        f"the gradient twin cannot convert operator 'Resize' in mode {mode} with "
        f"{transform} coordinates; use the black-box search instead: -p square_linf"
    )


def supported_operators() -> list[str]:
    """The ONNX operators the converter handles, sorted."""
    return sorted(OPS)
