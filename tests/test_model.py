"""The model adapter against numpy recomputations of the same tiny models."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import build_model, colour_image, reference_probs
from zoo import build, labels_prop

from auditor.config import ModelOptions, PreprocessOptions
from auditor.errors import ConfigError, ModelError, RuntimeMissingError
from auditor.model.adapter import load_model, runtime_message


@pytest.fixture
def images():
    rng = np.random.default_rng(3)
    return [
        colour_image(rng, red, size=(20 + i, 24)) for i, red in enumerate([0.1, 0.3, 0.5, 0.7, 0.9])
    ]


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("batch", ["N", 1, 3])
@pytest.mark.parametrize(
    "head, classes",
    [("softmax", 2), ("none", 2), ("sigmoid", 1), ("none", 1), ("softmax", 3), ("none", 3)],
)
def test_predictions_match_numpy(tmp_path, images, layout, batch, head, classes):
    path = build_model(tmp_path / "m.onnx", head=head, classes=classes, layout=layout, batch=batch)
    model = load_model(path, ModelOptions())
    probs = model.predict(images)
    expected = reference_probs(images, classes=classes)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert model.output_kind == ("probs" if head != "none" else "logits")
    assert model.prep.layout == layout
    assert model.task == ("multiclass" if classes == 3 else "binary")


def test_output_kind_evidence_names_the_reason(tmp_path, images):
    model = load_model(build_model(tmp_path / "m.onnx", head="none"), ModelOptions())
    model.predict(images)
    assert "read as logits" in model.output_kind_evidence
    forced = load_model(
        build_model(tmp_path / "p.onnx", head="none"), ModelOptions(output_kind="logits")
    )
    forced.predict(images)
    assert forced.output_kind_evidence == "set by --output-kind logits"


def test_metadata_preprocessing_and_flag_override(tmp_path, images):
    meta = {"size": [8, 8], "scale": 1 / 255, "classes": ["real", "fake"], "resize": "crop"}
    path = build_model(tmp_path / "m.onnx", size=("H", "W"), metadata=meta)
    model = load_model(path, ModelOptions())
    assert model.prep.size == (8, 8) and model.prep.resize == "crop"
    assert model.prep.sources["size"] == "metadata" and model.prep.sources["std"] == "default"
    assert model.classes == ["real", "fake"]
    flagged = load_model(path, ModelOptions(preprocess=PreprocessOptions(size=(12, 10))))
    assert flagged.prep.size == (12, 10) and flagged.prep.sources["size"] == "flag"
    assert flagged.predict(images).shape == (5, 2)


def test_static_size_comes_from_the_input_shape(tmp_path):
    model = load_model(build_model(tmp_path / "m.onnx", size=(16, 12)), ModelOptions())
    assert model.prep.size == (16, 12) and model.prep.sources["size"] == "model"


def test_dynamic_size_without_flag_is_refused(tmp_path):
    path = build_model(tmp_path / "m.onnx", size=("H", "W"))
    with pytest.raises(ConfigError, match="pass --size HxW"):
        load_model(path, ModelOptions())


def test_describe_lists_model_facts(tmp_path, images):
    path = build_model(tmp_path / "m.onnx", metadata={"classes": ["real", "fake"]})
    model = load_model(path, ModelOptions())
    model.predict(images)
    info = model.describe()
    assert len(info["sha256"]) == 64 and info["opset"] == 17
    assert info["inputs"][0]["shape"] == ["N", 3, 16, 16]
    assert info["positive_class"] == "fake" and info["batch"] == "dynamic"
    assert info["producer"].startswith("auditor-tests")


def test_positive_class_defaults_and_override(tmp_path, images):
    path = build_model(tmp_path / "m.onnx", metadata={"classes": ["fake", "real"]})
    assert load_model(path, ModelOptions()).positive_index() == 0
    other = load_model(path, ModelOptions(positive_class="real"))
    assert other.positive_index() == 1
    with pytest.raises(ConfigError, match="positive class 'x'"):
        load_model(path, ModelOptions(positive_class="x")).positive_index()


def test_class_count_mismatch_is_reported(tmp_path, images):
    path = build_model(tmp_path / "m.onnx", classes=3)
    model = load_model(path, ModelOptions(classes=("a", "b")))
    with pytest.raises(ConfigError, match="2 class names .* gives 3 classes"):
        model.predict(images)


def test_several_outputs_take_the_n_by_k_one(tmp_path, images):
    path = build_model(tmp_path / "m.onnx", extra_outputs=True)
    model = load_model(path, ModelOptions())
    assert model.output_name == "scores"
    np.testing.assert_allclose(model.predict(images), reference_probs(images), atol=1e-5)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "model file not found"),
        (b"", "not an ONNX model"),
        (b"\x00\xffgarbage" * 50, "not a readable ONNX model"),
    ],
)
def test_unusable_files_raise_one_line_model_errors(tmp_path, content, message):
    path = tmp_path / "bad.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message) as info:
        load_model(path, ModelOptions())
    assert "\n" not in str(info.value)


def test_truncated_model_is_refused(tmp_path):
    good = build_model(tmp_path / "m.onnx").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelError):
        load_model(path, ModelOptions())


def test_bad_metadata_json_is_refused(tmp_path):
    import onnx

    path = build_model(tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {"auditor.preprocess": "{not json"})
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model(path, ModelOptions())


def test_missing_runtime_names_the_extras(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # import fails
    with pytest.raises(RuntimeMissingError, match=r"'cpu' extra .*'gpu' extra"):
        load_model(build_model(tmp_path / "m.onnx"), ModelOptions())


def test_two_runtimes_side_by_side_are_refused(tmp_path, monkeypatch):
    import auditor.model.providers

    monkeypatch.setattr(auditor.model.providers, "RUNTIME_DISTRIBUTIONS", ("onnxruntime", "onnx"))
    with pytest.raises(RuntimeMissingError, match="both onnxruntime and onnx are installed"):
        load_model(build_model(tmp_path / "m.onnx"), ModelOptions())


def test_size_must_match_a_static_input(tmp_path):
    path = build_model(tmp_path / "m.onnx", size=(16, 16))
    with pytest.raises(ConfigError, match="8x12 .*from flag.* fixed input size 16x16"):
        load_model(path, ModelOptions(preprocess=PreprocessOptions(size=(8, 12))))


def test_probabilities_out_of_range_stop_with_a_hint(tmp_path, images):
    model = load_model(
        build_model(tmp_path / "m.onnx", head="none"), ModelOptions(output_kind="probs")
    )
    with pytest.raises(ModelError, match="pass --output-kind logits"):
        model.predict(images)


@pytest.mark.parametrize(
    "raw, expected",
    [
        (
            "[ONNXRuntimeError] : 1 : FAIL : Load model from m.onnx failed:/onnxruntime_src/"
            "onnxruntime/core/graph/model.cc:181 onnxruntime::Model::Model(onnx::ModelProto&&, "
            "const onnxruntime::PathString&) Unsupported model IR version: 14, max supported "
            "IR version: 11",
            "Unsupported model IR version: 14, max supported IR version: 11",
        ),
        (
            "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: image",
            "Got invalid dimensions for input: image",
        ),
        ("plain message\nsecond line", "plain message"),
    ],
)
def test_runtime_messages_keep_what_matters(raw, expected):
    assert runtime_message(RuntimeError(raw)) == expected


def test_a_model_too_new_for_the_runtime_is_refused_in_one_line(tmp_path):
    import onnx

    path = build_model(tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    proto.ir_version = 99  # no onnxruntime release reads this
    onnx.save(proto, str(path))
    # the onnx checker or onnxruntime refuses it, depending on the installed versions
    with pytest.raises(ModelError, match=r"(?i)ir.version") as info:
        load_model(path, ModelOptions())
    assert "\n" not in str(info.value) and ".cc:" not in str(info.value)


# --- the zoo: every input and output case against numpy ---------------------------------


def stretch_tensor(images, size, dtype="float32"):
    """The adapter's default preprocessing written out: linear resize, /255, NCHW."""
    h, w = size
    resized = np.stack(
        [cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR) for im in images]
    ).astype(np.float64)
    x = resized if dtype == "uint8" else resized / 255  # uint8 models get raw pixels
    if dtype == "float16":
        x = x.astype(np.float16).astype(np.float64)
    return x.transpose(0, 3, 1, 2)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "float64", "uint8"])
@pytest.mark.parametrize("batch", ["N", 1])
def test_zoo_inputs_match_numpy(tmp_path, images, layout, dtype, batch):
    zoo = build(tmp_path / "m.onnx", layout=layout, dtype=dtype, batch=batch, size=(6, 7))
    model = load_model(zoo.path, ModelOptions(provider="cpu"))
    expected = zoo.reference(stretch_tensor(images, (6, 7), dtype))
    np.testing.assert_allclose(
        model.predict(images), expected, atol=2e-3 if dtype == "float16" else 1e-5
    )
    assert model.prep.layout == layout and model.describe()["input_dtype"] == dtype
    assert model.describe()["batch"] == (1 if batch == 1 else "dynamic")


def test_uint8_input_gets_raw_pixels_unless_told_otherwise(tmp_path, images):
    zoo = build(tmp_path / "m.onnx", dtype="uint8")
    model = load_model(zoo.path, ModelOptions())
    assert model.prep.scale == 1.0 and model.prep.sources["scale"].startswith("model (uint8")
    tensor = model.to_tensor(images)
    assert tensor.dtype == np.uint8
    np.testing.assert_array_equal(tensor, stretch_tensor(images, (8, 8), "uint8"))
    inverted = ModelOptions(preprocess=PreprocessOptions(scale=-1.0, mean=(-255.0,) * 3))
    flipped = load_model(zoo.path, inverted).to_tensor(images)  # x = 255 - pixel
    np.testing.assert_array_equal(flipped, 255 - tensor)


@pytest.mark.parametrize(
    "head, classes",
    [("softmax", 2), ("none", 2), ("sigmoid", 1), ("none", 1), ("softmax", 4), ("none", 4)],
)
def test_zoo_heads_match_numpy(tmp_path, images, head, classes):
    zoo = build(tmp_path / "m.onnx", head=head, classes=classes)
    model = load_model(zoo.path, ModelOptions())
    probs = model.predict(images)
    np.testing.assert_allclose(probs, zoo.reference(stretch_tensor(images, (8, 8))), atol=1e-5)
    assert model.output_kind == ("logits" if head == "none" else "probs")
    assert model.classes == [str(i) for i in range(max(classes, 2))]
    assert model.describe()["classes_source"] == "indices"


def test_dynamic_height_and_width_need_size(tmp_path, images):
    zoo = build(tmp_path / "m.onnx", size=("H", "W"))
    with pytest.raises(ConfigError, match=r"input 'image' .*dynamic.*pass --size HxW"):
        load_model(zoo.path, ModelOptions())
    model = load_model(zoo.path, ModelOptions(preprocess=PreprocessOptions(size=(10, 12))))
    expected = zoo.reference(stretch_tensor(images, (10, 12)))
    np.testing.assert_allclose(model.predict(images), expected, atol=1e-5)


def test_several_inputs_need_input_flag_and_list_them(tmp_path, images):
    zoo = build(tmp_path / "m.onnx", optional_input=True)
    with pytest.raises(ConfigError, match=r"several inputs \(image .*, gain .*--input NAME"):
        load_model(zoo.path, ModelOptions())
    model = load_model(zoo.path, ModelOptions(input_name="image"))
    expected = zoo.reference(stretch_tensor(images, (8, 8)))
    np.testing.assert_allclose(model.predict(images), expected, atol=1e-5)
    with pytest.raises(ModelError, match="also requires input.*image"):
        load_model(zoo.path, ModelOptions(input_name="gain"))
    with pytest.raises(ConfigError, match="no input named 'x'; found image"):
        load_model(zoo.path, ModelOptions(input_name="x"))


def test_a_second_required_input_is_refused_by_name(tmp_path):
    zoo = build(tmp_path / "m.onnx", required_input=True)
    with pytest.raises(ModelError, match="also requires input.*gain.*cannot supply"):
        load_model(zoo.path, ModelOptions(input_name="image"))


def test_several_outputs_default_and_output_name(tmp_path, images):
    expected_for = {}
    zoo = build(tmp_path / "a.onnx", outputs="pooled_first")
    model = load_model(zoo.path, ModelOptions())
    assert model.output_name == "scores"  # the 4-D output is skipped
    expected_for["a"] = zoo.reference(stretch_tensor(images, (8, 8)))
    np.testing.assert_allclose(model.predict(images), expected_for["a"], atol=1e-5)
    zoo = build(tmp_path / "b.onnx", outputs="logits_and_probs")
    first = load_model(zoo.path, ModelOptions())
    chosen = load_model(zoo.path, ModelOptions(output_name="scores"))
    expected = zoo.reference(stretch_tensor(images, (8, 8)))
    assert first.output_name == "logits"
    np.testing.assert_allclose(first.predict(images), expected, atol=1e-5)
    np.testing.assert_allclose(chosen.predict(images), expected, atol=1e-5)
    assert (first.output_kind, chosen.output_kind) == ("logits", "probs")
    with pytest.raises(ConfigError, match="no output named 'nope'; found logits"):
        load_model(zoo.path, ModelOptions(output_name="nope"))


@pytest.mark.parametrize("key", ["classes", "labels", "names", "class_names"])
@pytest.mark.parametrize("style", ["newline", "comma", "json_list", "json_dict", "python_dict"])
def test_class_names_from_common_metadata(tmp_path, images, key, style):
    names = ["cat", "dog", "bird"]
    zoo = build(tmp_path / "m.onnx", classes=3, props=labels_prop(key, names, style))
    model = load_model(zoo.path, ModelOptions())
    assert model.classes == names and model.classes_source == f"metadata ({key})"
    model.predict(images)
    assert model.describe()["classes"] == names


def test_class_names_precedence(tmp_path):
    props = {**labels_prop("labels", ["a", "b"], "newline")}
    props["auditor.preprocess"] = json.dumps({"classes": ["real", "fake"]})
    path = build(tmp_path / "m.onnx", props=props).path
    assert load_model(path, ModelOptions()).classes == ["real", "fake"]
    flagged = load_model(path, ModelOptions(classes=("x", "y")))
    assert flagged.classes == ["x", "y"] and flagged.classes_source == "flag"
    only_labels = build(tmp_path / "l.onnx", props=labels_prop("labels", ["a", "b"], "newline"))
    assert load_model(only_labels.path, ModelOptions()).classes == ["a", "b"]


def test_nan_outputs_stop_with_a_clear_message(tmp_path):
    zoo = build(tmp_path / "m.onnx", nan=True, head="none")
    model = load_model(zoo.path, ModelOptions())
    dark = np.full((8, 8, 3), 10, np.uint8)
    with pytest.raises(ModelError, match=r"output 'logits' holds \d+ NaN or infinite value"):
        model.predict([dark])


def test_describe_records_the_runtime(tmp_path):
    model = load_model(build(tmp_path / "m.onnx").path, ModelOptions(threads=1))
    runtime = model.describe()["runtime"]
    assert runtime["provider"] == model.provider == "CPUExecutionProvider"
    assert runtime["requested"] == "auto" and "CPUExecutionProvider" in runtime["available"]
    assert runtime["session_options"]["intra_op_num_threads"] == 1
    assert runtime["session_options"]["graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert runtime["session_options"]["execution_mode"] == "ORT_SEQUENTIAL"
    assert isinstance(runtime["provider_options"], dict)


@pytest.mark.gpu
def test_cuda_runs_and_agrees_with_cpu(tmp_path, images):
    zoo = build(tmp_path / "m.onnx", classes=4, size=(32, 32))
    cpu = load_model(zoo.path, ModelOptions(provider="cpu"))
    cuda = load_model(zoo.path, ModelOptions(provider="cuda"))
    assert cuda.provider == "CUDAExecutionProvider" and cuda.runtime.fallback is None
    assert "device_id" in cuda.describe()["runtime"]["provider_options"]
    # TF32 matrix products on recent GPUs move logits by ~1e-3: probabilities stay within 5e-3
    np.testing.assert_allclose(cuda.predict(images), cpu.predict(images), atol=5e-3)


def _pooling_model(path, input_shape, output_rows):
    """Mean of each channel, softmax over the channels; `output_rows` names the output's rows.

    With `output_rows=1` the mean is over the batch too: one row whatever the batch.
    """
    import onnx
    from onnx import TensorProto, helper

    axes = [0, 2, 3] if output_rows == 1 else [2, 3]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [output_rows, 3])
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=axes, keepdims=1),
        helper.make_node("Flatten", ["m"], ["f"], axis=1),
        helper.make_node("Softmax", ["f"], ["y"], axis=1),
    ]
    graph = helper.make_graph(nodes, "pool", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_an_output_that_ignores_the_batch_is_refused(tmp_path, images):
    model = load_model(_pooling_model(tmp_path / "b.onnx", ["N", 3, 8, 8], 1), ModelOptions())
    assert model.predict(images[:1]).shape == (1, 3)  # one image: cannot tell
    with pytest.raises(ModelError, match=r"shape \[1, 3\] for a batch of 5 images"):
        model.predict(images)


def test_a_huge_declared_input_is_refused_before_any_allocation(tmp_path):
    path = _pooling_model(tmp_path / "huge.onnx", ["N", 3, 100_000, 100_000], "N")
    with pytest.raises(ModelError, match=r"100000x100000 pixels per image.*--size HxW"):
        load_model(path, ModelOptions())
    dynamic = _pooling_model(tmp_path / "dynamic.onnx", ["N", 3, "H", "W"], "N")
    with pytest.raises(ModelError, match=r"50000x50000 pixels"):
        load_model(dynamic, ModelOptions(preprocess=PreprocessOptions(size=(50_000, 50_000))))
    assert load_model(dynamic, ModelOptions(preprocess=PreprocessOptions(size=(9, 9)))).prep


def test_onnxruntime_prints_nothing_of_its_own(tmp_path):
    """A model that fails while running gives auditor's error, not onnxruntime's log line."""
    import subprocess
    import sys
    from pathlib import Path

    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 5])  # 192 % 5 != 0
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("Slice", ["r", "starts", "ends", "axes"], ["y"]),
    ]
    ints = [helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in
            (("starts", 0), ("ends", 2), ("axes", 1))]  # fmt: skip
    graph = helper.make_graph(nodes, "bad", [x], [y], initializer=[shape, *ints])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    code = (
        "import numpy as np\n"
        "from auditor.config import ModelOptions\n"
        "from auditor.errors import ModelError\n"
        "from auditor.model.adapter import load_model\n"
        f"model = load_model({str(path)!r}, ModelOptions())\n"
        "try:\n"
        "    model.predict([np.zeros((8, 8, 3), np.uint8)])\n"
        "except ModelError as exc:\n"
        "    print('refused:', exc)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PATH": "/usr/bin:/bin"},
    )
    assert run.stdout.startswith("refused:") and "inference failed" in run.stdout, run.stdout
    assert run.stderr == ""
