"""Shared fixtures: tiny real ONNX classifiers and small image folders, built on the fly.

The models score the mean colour of the image: GlobalAveragePool -> Flatten -> Gemm,
then an optional Softmax or Sigmoid. `reference_probs` recomputes the same thing in
numpy from the same weights, so tests can check the adapter against it.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

# Weights of the colour classifier: class "fake" goes with a high red mean.
WEIGHTS_2 = np.array([[-8.0, 8.0], [2.0, -2.0], [0.0, 0.0]], np.float32)
BIAS_2 = np.array([2.0, -2.0], np.float32)
WEIGHTS_1 = WEIGHTS_2[:, 1:] - WEIGHTS_2[:, :1]
BIAS_1 = BIAS_2[1:] - BIAS_2[:1]
WEIGHTS_3 = np.array([[4.0, -2.0, -2.0], [-2.0, 4.0, -2.0], [-2.0, -2.0, 4.0]], np.float32)
BIAS_3 = np.zeros(3, np.float32)


def build_model(
    path: Path,
    *,
    head: str = "softmax",
    classes: int = 2,
    layout: str = "nchw",
    batch: int | str = "N",
    size: tuple[int | str, int | str] = (16, 16),
    metadata: dict | None = None,
    extra_outputs: bool = False,
) -> Path:
    """Write a mean-colour classifier; `head` is softmax, sigmoid or none (raw logits)."""
    weights, bias = {1: (WEIGHTS_1, BIAS_1), 2: (WEIGHTS_2, BIAS_2), 3: (WEIGHTS_3, BIAS_3)}[
        classes
    ]
    h, w = size
    shape = [batch, 3, h, w] if layout == "nchw" else [batch, h, w, 3]
    nodes = []
    source = "image"
    if layout == "nhwc":
        nodes.append(helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]))
        source = "nchw"
    nodes += [
        helper.make_node("GlobalAveragePool", [source], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"]),
        helper.make_node("Gemm", ["features", "W", "B"], ["logits"]),
    ]
    final = "logits"
    if head != "none":
        op = {"softmax": "Softmax", "sigmoid": "Sigmoid"}[head]
        nodes.append(
            helper.make_node(op, ["logits"], ["scores"], **({"axis": 1} if op == "Softmax" else {}))
        )
        final = "scores"
    outputs = [helper.make_tensor_value_info(final, TensorProto.FLOAT, [batch, classes])]
    if extra_outputs:
        outputs.insert(
            0, helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [batch, 3, 1, 1])
        )
    graph = helper.make_graph(
        nodes,
        "colour_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        outputs,
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="auditor-tests"
    )
    model.ir_version = 8
    if metadata is not None:
        helper.set_model_props(model, {"auditor.preprocess": json.dumps(metadata)})
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def reference_probs(
    images: list[np.ndarray],
    classes: int = 2,
    head: str = "softmax",
    size: tuple[int, int] = (16, 16),
) -> np.ndarray:
    """Recompute the fixture model's probabilities in numpy (stretch resize, /255)."""
    weights, bias = {1: (WEIGHTS_1, BIAS_1), 2: (WEIGHTS_2, BIAS_2), 3: (WEIGHTS_3, BIAS_3)}[
        classes
    ]
    means = np.stack(
        [
            cv2.resize(im, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
            .astype(np.float64)
            .mean(axis=(0, 1))
            / 255
            for im in images
        ]
    )
    logits = means @ weights.astype(np.float64) + bias
    if classes == 1:
        p = 1 / (1 + np.exp(-logits[:, 0]))
        return np.stack([1 - p, p], axis=1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def colour_image(rng: np.random.Generator, red: float, size: tuple[int, int] = (20, 24)):
    """An RGB uint8 image with mean red near `red` (0..1), noise around it."""
    h, w = size
    base = np.empty((h, w, 3), np.float64)
    base[..., 0], base[..., 1], base[..., 2] = red, 1 - red, 0.5
    noisy = base * 255 + rng.normal(0, 20, size=(h, w, 3))
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def write_image(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])
    return path


def write_class_folders(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    """real/ (low red) and fake/ (high red) images; a few sit near the boundary."""
    rng = np.random.default_rng(seed)
    for i in range(per_class):
        write_image(root / "real" / f"r{i:02d}.png", colour_image(rng, 0.15 + 0.03 * i))
        write_image(root / "fake" / f"f{i:02d}.png", colour_image(rng, 0.85 - 0.03 * i))
    return root


@pytest.fixture
def binary_model(tmp_path: Path) -> Path:
    return build_model(
        tmp_path / "binary.onnx", metadata={"classes": ["real", "fake"], "size": [16, 16]}
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "data")


def cuda_usable() -> bool:
    """True when onnxruntime can open a session on the CUDA execution provider here."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [])
    graph.output.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1]))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    try:
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CUDAExecutionProvider"]
        )
    except Exception:  # drivers or CUDA libraries missing
        return False
    return session.get_providers()[0] == "CUDAExecutionProvider"


def pytest_collection_modifyitems(config, items):
    """Skip tests marked `gpu` where CUDA cannot run."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if gpu_items and not cuda_usable():
        skip = pytest.mark.skip(reason="onnxruntime's CUDA execution provider is not usable here")
        for item in gpu_items:
            item.add_marker(skip)


# Keys of the results JSON that differ between two runs of the same audit: timestamps,
# the machine, and the report identity (a new id and issue date for every issue).
RUN_SPECIFIC = ("created_at", "started_at", "finished_at", "environment", "identification")


def without_run_specifics(data: dict, config_keys: tuple[str, ...] = ()) -> dict:
    """Drop `RUN_SPECIFIC` keys, and `config_keys` from `config`, from results JSON `data`."""
    for key in RUN_SPECIFIC:
        data.pop(key)
    for key in config_keys:
        data["config"].pop(key)
    return data


SCHEMA = Path(__file__).resolve().parents[1] / "auditor" / "schema" / "results.schema.json"


def schema_errors(data: dict) -> list[str]:
    """Where results JSON `data` breaks the results JSON Schema shipped in the package."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(data)]


@pytest.fixture(autouse=True)
def _results_files_fit_the_schema(request):
    """After each test, every results file auditor wrote under its tmp_path fits the schema.

    Auditor's issued results carry `findings`; files a test wrote by hand to try the
    readers on odd input do not, and are left alone.
    """
    root = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if root is None:
        return
    for path in sorted(root.rglob("*.json")):
        if not path.is_file() or path.stat().st_size > 50_000_000:  # a FIFO, a sparse file
            continue  # hostile inputs of a test: opening them would block or fill memory
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):  # broken on purpose: not auditor's
            continue
        if (
            isinstance(data, dict)
            and data.get("schema") == "auditor/results@1"
            and "findings" in data
        ):
            errors = schema_errors(data)
            assert not errors, f"{path} does not fit the results schema: {errors[:3]}"
