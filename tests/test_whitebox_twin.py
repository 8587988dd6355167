"""The gradient twin: the converter against onnxruntime, the preprocessing twin against OpenCV.

Tolerances, stated once: the converted graph gives probabilities within 1e-5 of
onnxruntime (float32 models; float16 ones within 1e-3, since onnxruntime computes
those in half precision and the twin in float); the preprocessing twin's resize
matches `cv2.resize` on float images within 1e-3 pixel units (OpenCV's own float
arithmetic), and OpenCV's uint8 resize, which works in fixed point, within one grey
level once rounded.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import zoo
from click.testing import CliRunner
from conftest import build_model, colour_image
from onnx import TensorProto, helper, numpy_helper

from auditor.config import ModelOptions, PreprocessOptions
from auditor.model.adapter import load_model
from auditor.model.preprocess import INTERPOLATIONS, Preprocessing, resize_image

torch = pytest.importorskip("torch")

from auditor.adversarial import onnx_torch, prep_twin  # noqa: E402
from auditor.adversarial.twin import GradientTwin  # noqa: E402
from auditor.cli import main  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "deepfake"
SIZES = [(48, 48), (60, 80), (300, 200), (37, 150), (21, 30)]


def images(count: int, size: tuple[int, int] = (20, 24), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [colour_image(rng, red, size) for red in np.linspace(0.1, 0.9, count)]


@pytest.mark.parametrize("interpolation", sorted(INTERPOLATIONS))
@pytest.mark.parametrize("resize", ["stretch", "crop", "letterbox"])
def test_the_resize_twin_matches_opencv(interpolation, resize):
    rng = np.random.default_rng(1)
    for height, width in SIZES:
        prep = Preprocessing(size=(32, 40), layout="nchw", resize=resize,
                             interpolation=interpolation, pad_value=17.0)  # fmt: skip
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        twin = prep_twin.apply(image, prep_twin.resize_map(height, width, prep))
        uint8 = resize_image(image, prep).astype(np.float32)
        assert np.abs(np.clip(np.rint(twin), 0, 255) - uint8).max() <= 1.0
        if resize != "letterbox":  # OpenCV's float resize of the same geometry
            floats = resize_image(image.astype(np.float32), prep)
            assert np.abs(twin - floats).max() <= 1e-3


@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
def test_the_resize_twin_matches_opencv_for_a_224_crop_of_a_video_frame(interpolation):
    # Both axes grow and both sides exceed OpenCV 5's 128 channels per resize: the
    # basis vectors must go through in several probes.
    prep = Preprocessing(size=(224, 224), layout="nchw", resize="crop",
                         interpolation=interpolation)  # fmt: skip
    image = np.random.default_rng(2).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    twin = prep_twin.apply(image, prep_twin.resize_map(240, 320, prep))
    floats = resize_image(image.astype(np.float32), prep)
    # float32 sums of up to 320 terms of values up to 255: a few 1e-3 apart at most
    assert twin.shape == (224, 224, 3) and np.abs(twin - floats).max() <= 5e-3
    uint8 = resize_image(image, prep).astype(np.float32)
    assert np.abs(np.clip(np.rint(twin), 0, 255) - uint8).max() <= 1.0


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_the_linear_twin_matches_the_input_tensor(tmp_path, layout, order):
    """Channel order, scale, mean, std and layout: the twin's tensor is the pipeline's."""
    path = build_model(tmp_path / "m.onnx", layout=layout, size=(16, 16))
    options = ModelOptions(preprocess=PreprocessOptions(
        channel_order=order, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3)))  # fmt: skip
    model = load_model(path, options)
    twin = GradientTwin(model)
    for image in images(3, size=(16, 16)):
        linear = twin.linear_input(twin.tensor(image)).detach().numpy()
        assert np.abs(linear - model.to_tensor([image])[0]).max() <= 1e-5


def test_the_twin_gradient_is_the_linear_maps(tmp_path):
    """d input / d pixel is the resize matrices times scale / std (rounding passed through)."""
    path = build_model(tmp_path / "m.onnx", size=(16, 16))
    model = load_model(path, ModelOptions(preprocess=PreprocessOptions(std=(0.5, 0.5, 0.5))))
    twin = GradientTwin(model)
    image = images(1, size=(20, 24))[0]
    x = twin.tensor(image).requires_grad_(True)
    direction = torch.randn(
        3, 16, 16, dtype=torch.float32, generator=torch.Generator().manual_seed(0)
    )
    (twin._input(x)[0] * direction).sum().backward()
    mapping = prep_twin.resize_map(20, 24, model.prep)
    expected = np.einsum("ih,cij,jw->hwc", mapping.rows, direction.numpy(), mapping.cols)
    assert np.allclose(x.grad.numpy(), expected / 255 / 0.5, atol=1e-6)


def zoo_cases(tmp_path: Path) -> list[tuple[Path, dict]]:
    cases = []
    for i, (layout, dtype, head, classes, size) in enumerate([
        ("nchw", "float32", "softmax", 2, (8, 8)),
        ("nhwc", "float32", "sigmoid", 1, (8, 8)),
        ("nchw", "float32", "none", 5, ("H", "W")),
        ("nhwc", "uint8", "softmax", 3, (8, 8)),
        ("nchw", "float16", "none", 2, (8, 8)),
        ("nchw", "float64", "softmax", 4, (6, 10)),
    ]):  # fmt: skip
        path = tmp_path / f"zoo{i}.onnx"
        zoo.build(path, layout=layout, dtype=dtype, head=head, classes=classes, size=size)
        cases.append((path, {"size": (8, 8)} if size == ("H", "W") else {}, dtype))
    return cases


def test_the_converter_matches_onnxruntime_on_the_zoo(tmp_path):
    for path, sizes, dtype in zoo_cases(tmp_path):
        model = load_model(path, ModelOptions(preprocess=PreprocessOptions(**sizes)))
        batch = images(6, size=(12, 9))
        real = model.predict(batch)
        tolerance = 1e-3 if dtype == "float16" else 1e-5
        assert GradientTwin(model).fidelity(batch, real) <= tolerance, path.name


@pytest.mark.parametrize("name", ["detector_a", "detector_b"])
def test_the_converter_matches_onnxruntime_on_the_sample_detectors(name):
    model = load_model(SAMPLES / f"{name}.onnx", ModelOptions())
    paths = sorted((SAMPLES / "data").glob("*/*.png"))[::20]
    batch = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    assert GradientTwin(model).fidelity(batch, model.predict(batch)) <= 1e-5


def many_ops_model(path: Path) -> Path:
    """A small CNN of the operators real classifiers use, in the forms exporters write."""
    rng = np.random.default_rng(0)

    def init(name: str, shape: tuple[int, ...], scale: float = 0.3) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, scale, shape).astype(np.float32), name)

    def ints(name: str, values: list[int]) -> onnx.TensorProto:
        return numpy_helper.from_array(np.array(values, np.int64), name)

    node = helper.make_node
    nodes = [
        node("Pad", ["x", "pads"], ["p"], mode="reflect"),
        node("Conv", ["p", "w1", "b1"], ["c1"], pads=[0, 0, 1, 1], strides=[1, 1]),
        node("BatchNormalization", ["c1", "s", "bb", "m", "v"], ["bn"], epsilon=1e-3),
        node("Relu", ["bn"], ["r"]),
        node("MaxPool", ["r"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Conv", ["mp", "w2"], ["c2"], group=2, auto_pad="SAME_UPPER", kernel_shape=[3, 3]),
        node("Clip", ["c2", "lo", "hi"], ["cl"]),
        node("HardSwish", ["cl"], ["hs"]),
        node("AveragePool", ["hs"], ["ap"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        node(
            "Resize",
            ["ap", "", "scales"],
            ["up"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        ),
        node(
            "Resize",
            ["ap", "", "", "sizes"],
            ["lin"],
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        ),
        node("ReduceMean", ["up", "axes23"], ["rm"], keepdims=1),
        node("Sigmoid", ["rm"], ["gate"]),
        node("Mul", ["lin", "gate"], ["gated"]),
        node("Concat", ["gated", "lin"], ["cat"], axis=1),
        node("Transpose", ["cat"], ["t"], perm=[0, 2, 3, 1]),
        node("Shape", ["t"], ["shape"]),
        node("Gather", ["shape", "zero"], ["n"], axis=0),
        node("Unsqueeze", ["n", "axes0"], ["n1"]),
        node("Concat", ["n1", "minus1"], ["newshape"], axis=0),
        node("Reshape", ["t", "newshape"], ["flat"]),
        node("MatMul", ["flat", "w3"], ["h"]),
        node("LeakyRelu", ["h"], ["lr"], alpha=0.1),
        node("Dropout", ["lr"], ["d"]),
        node("Gemm", ["d", "w4", "b4"], ["logits"], transB=1),
        node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    inits = [
        ints("pads", [0, 0, 1, 1, 0, 0, 1, 1]), init("w1", (4, 3, 3, 3)), init("b1", (4,)),
        init("s", (4,)), init("bb", (4,)), init("m", (4,)),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 4).astype(np.float32), "v"),
        init("w2", (4, 2, 3, 3)),
        numpy_helper.from_array(np.array(-1.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(2.0, np.float32), "hi"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
        ints("sizes", [1, 4, 6, 6]), ints("axes23", [2, 3]),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        ints("axes0", [0]), ints("minus1", [-1]), init("w3", (8 * 6 * 6, 16), 0.05),
        init("w4", (3, 16)), init("b4", (3,)),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes, "many_ops",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 3])],
        initializer=inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def test_the_converter_covers_a_cnn_of_common_operators(tmp_path):
    path = many_ops_model(tmp_path / "ops.onnx")
    graph = onnx_torch.convert(onnx.load(str(path)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seed in range(3):
        x = np.random.default_rng(seed).normal(0, 1, (1, 3, 12, 12)).astype(np.float32)
        expected = session.run(None, {"x": x})[0]
        with torch.no_grad():
            got = graph(torch.from_numpy(x))[0].numpy()
        assert np.abs(got - expected).max() <= 1e-5


def test_initializers_listed_as_inputs_are_weights(tmp_path):
    """Older exporters list the weights among the graph inputs; they are not inputs."""
    path = build_model(tmp_path / "m.onnx", size=(16, 16))
    proto = onnx.load(str(path))
    for init in proto.graph.initializer:
        proto.graph.input.append(helper.make_tensor_value_info(
            init.name, TensorProto.FLOAT, list(init.dims)))  # fmt: skip
    graph = onnx_torch.convert(proto)
    assert graph.inputs == ["image"]


def test_an_unsupported_operator_exits_2_naming_it(tmp_path, data_dir):
    path = build_model(tmp_path / "m.onnx", size=(16, 16))
    proto = onnx.load(str(path))
    proto.graph.node.insert(0, helper.make_node("CumSum", ["image", "axis"], ["summed"]))
    proto.graph.node[1].input[0] = "summed"
    proto.graph.initializer.append(numpy_helper.from_array(np.array(3, np.int64), "axis"))
    onnx.save(proto, str(path))
    result = CliRunner().invoke(main, ["check", str(path), "--data", str(data_dir), "-p",
                                       "fgsm", "-o", str(tmp_path / "r.html")])  # fmt: skip
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "'CumSum'" in lines[0] and "-p square_linf" in lines[0]


def test_an_output_read_as_logits_is_twinned_as_logits(tmp_path):
    """--output-kind logits on a graph ending in Softmax: the twin reads it as the model does."""
    path = build_model(tmp_path / "m.onnx", classes=3, size=(16, 16))
    model = load_model(path, ModelOptions(output_kind="logits"))
    batch = images(4, size=(16, 16))
    real = model.predict(batch)
    assert GradientTwin(model).fidelity(batch, real) <= 1e-6


def test_the_twin_feeds_the_chosen_input(tmp_path):
    """A model with an optional second input (a weight that may be fed): --input image."""
    path = tmp_path / "optional.onnx"
    zoo.build(path, optional_input=True)
    model = load_model(path, ModelOptions(input_name="image"))
    batch = images(4, size=(8, 8))
    twin = GradientTwin(model)
    assert twin.graph.inputs == ["image"]
    assert twin.fidelity(batch, model.predict(batch)) <= 1e-5
