"""The model adapter against numpy recomputations of the same tiny models."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build_model, colour_image, reference_probs

from auditor.config import ModelOptions, PreprocessOptions
from auditor.errors import ConfigError, ModelError, RuntimeMissingError
from auditor.model import load_model, runtime_message


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
    import auditor.providers

    monkeypatch.setattr(auditor.providers, "RUNTIME_DISTRIBUTIONS", ("onnxruntime", "onnx"))
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
