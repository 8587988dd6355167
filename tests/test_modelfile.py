"""Untrusted model files: external data, size limit, checker, garbage and unknown operators."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
from zoo import build, retarget_external

from auditor.config import ModelOptions
from auditor.errors import ConfigError, ModelError
from auditor.model.adapter import load_model
from auditor.model.modelfile import metadata_labels, parse_size, read_model_file


def one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_external_data_inside_the_folder_runs_and_is_hashed(tmp_path):
    zoo = build(tmp_path / "m.onnx", external=True)
    weights = tmp_path / "weights.bin"
    model = load_model(zoo.path, ModelOptions())
    [entry] = model.describe()["external_data"]
    assert entry == {
        "path": "weights.bin",
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "size": weights.stat().st_size,
    }
    image = np.full((8, 8, 3), 90, np.uint8)
    expected = zoo.reference(np.full((1, 3, 8, 8), 90 / 255))
    np.testing.assert_allclose(model.predict([image]), expected, atol=1e-5)


@pytest.mark.parametrize(
    "location, message",
    [
        ("../weights.bin", "'..' leaves the model's folder"),
        ("sub/../../weights.bin", "'..' leaves the model's folder"),
        ("ABSOLUTE", "an absolute path"),
        ("missing.bin", "no such file next to the model"),
    ],
)
def test_external_data_leaving_the_folder_is_refused(tmp_path, location, message):
    folder = tmp_path / "model"
    folder.mkdir()
    zoo = build(folder / "m.onnx", external=True)
    (folder / "weights.bin").rename(tmp_path / "weights.bin")  # one level up
    if location == "ABSOLUTE":
        location = str(tmp_path / "weights.bin")
    retarget_external(zoo.path, location)
    with pytest.raises(ModelError, match=message) as info:
        load_model(zoo.path, ModelOptions())
    assert "refusing external data" in one_line(info)


def test_a_symlink_pointing_out_of_the_folder_is_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    zoo = build(folder / "m.onnx", external=True)
    (folder / "weights.bin").rename(tmp_path / "secret.bin")
    (folder / "weights.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(ModelError, match="outside the model's folder") as info:
        load_model(zoo.path, ModelOptions())
    one_line(info)


def test_a_symlink_inside_the_folder_is_refused_too(tmp_path):
    zoo = build(tmp_path / "m.onnx", external=True)
    (tmp_path / "weights.bin").rename(tmp_path / "real.bin")
    (tmp_path / "weights.bin").symlink_to(tmp_path / "real.bin")
    with pytest.raises(ModelError, match="a symbolic link; external data must be a regular"):
        load_model(zoo.path, ModelOptions())


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_external_data_that_is_not_a_regular_file_is_refused(tmp_path, kind):
    zoo = build(tmp_path / "m.onnx", external=True)
    (tmp_path / "weights.bin").unlink()
    if kind == "directory":
        (tmp_path / "weights.bin").mkdir()
    else:
        os.mkfifo(tmp_path / "weights.bin")  # reading it would block forever
    with pytest.raises(ModelError, match="not a regular file") as info:
        load_model(zoo.path, ModelOptions())
    one_line(info)


def test_external_data_shorter_than_the_tensors_is_refused(tmp_path):
    zoo = build(tmp_path / "m.onnx", external=True)
    weights = tmp_path / "weights.bin"
    weights.write_bytes(weights.read_bytes()[:10])
    with pytest.raises(ModelError, match="reads up to byte .* holds 10 bytes"):
        load_model(zoo.path, ModelOptions())


def test_size_limit_counts_the_file_and_its_external_data(tmp_path):
    plain = build(tmp_path / "plain.onnx")
    with pytest.raises(ModelError, match=r"over the limit of 100 bytes.*--max-model-size"):
        load_model(plain.path, ModelOptions(max_model_size=100))
    folder = tmp_path / "ext"
    folder.mkdir()
    ext = build(folder / "m.onnx", external=True)
    file_size = ext.path.stat().st_size
    with pytest.raises(ModelError, match="the model with its external data is"):
        read_model_file(ext.path, file_size + 10)
    total = file_size + (folder / "weights.bin").stat().st_size
    assert read_model_file(ext.path, total).size_bytes == file_size


@pytest.mark.parametrize(
    "text, expected",
    [("4GB", 4 * 10**9), ("512MiB", 512 * 2**20), ("100k", 100_000), ("1234", 1234)],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_parse_size_refuses_nonsense():
    with pytest.raises(ConfigError, match="expected a size such as 4GB"):
        parse_size("big")


def test_truncated_and_text_files_are_refused(tmp_path):
    good = build(tmp_path / "m.onnx").path.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good[: len(good) * 2 // 3])
    with pytest.raises(ModelError, match="cut.onnx: not (a readable )?(an )?ONNX model") as info:
        load_model(cut, ModelOptions())
    one_line(info)
    text = tmp_path / "notes.onnx"
    text.write_text("this is a README, not a model\n" * 20)
    with pytest.raises(ModelError, match="notes.onnx: not") as info:
        load_model(text, ModelOptions())
    one_line(info)


def test_checker_errors_become_one_line(tmp_path):
    import onnx

    path = build(tmp_path / "m.onnx").path
    proto = onnx.load(str(path))
    proto.graph.node[-1].input[0] = "nowhere"  # an input nothing produces
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelError, match="the ONNX checker rejected the model: .*nowhere") as info:
        load_model(path, ModelOptions())
    one_line(info)


def test_an_unknown_operator_domain_is_named(tmp_path):
    zoo = build(tmp_path / "m.onnx", custom_op=True)
    with pytest.raises(ModelError, match="operator 'Calibrate' of domain 'vendor.ops'") as info:
        load_model(zoo.path, ModelOptions())
    one_line(info)


def test_metadata_labels_ignores_what_is_not_a_label_list():
    import onnx

    proto = onnx.ModelProto()
    onnx.helper.set_model_props(proto, {"names": "{'a': 1}", "labels": "single"})
    assert metadata_labels(proto) is None
    onnx.helper.set_model_props(proto, {"Labels": "{1: 'b', 0: 'a'}"})
    assert metadata_labels(proto) == (["a", "b"], "labels")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("location", "weights\x00.bin", "cannot be resolved"),
        ("offset", "ten", "non-numeric external-data offset"),
        ("length", "-5", "negative external-data offset or length"),
    ],
)
def test_malformed_external_data_entries_are_refused(tmp_path, key, value, message):
    import onnx

    zoo = build(tmp_path / "m.onnx", external=True)
    proto = onnx.load(str(zoo.path), load_external_data=False)
    for entry in proto.graph.initializer[0].external_data:
        if entry.key == key:
            entry.value = value
    if key not in {e.key for e in proto.graph.initializer[0].external_data}:
        proto.graph.initializer[0].external_data.add(key=key, value=value)
    zoo.path.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelError, match=message) as info:
        load_model(zoo.path, ModelOptions())
    one_line(info)


def test_auditor_preprocess_classes_as_text_or_garbage(tmp_path):
    import json

    text = build(tmp_path / "t.onnx", props={"auditor.preprocess": json.dumps({"classes": "a,b"})})
    assert load_model(text.path, ModelOptions()).classes == ["a", "b"]
    bad = build(tmp_path / "b.onnx", props={"auditor.preprocess": json.dumps({"classes": 7})})
    with pytest.raises(ModelError, match="classes: expected a list of class names, found 7"):
        load_model(bad.path, ModelOptions())


def test_external_data_of_a_constant_in_a_subgraph_is_checked_too(tmp_path):
    """A tensor hidden in a Constant node inside an If branch still may not leave the folder."""
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import set_external_data

    value = numpy_helper.from_array(np.arange(64, dtype=np.float32), "c")
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["k"], value=value)],
        "branch",
        [],
        [helper.make_tensor_value_info("k", TensorProto.FLOAT, [64])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["flag"], ["out"], then_branch=branch, else_branch=branch)],
        "g",
        [helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [64])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "m.onnx"
    (tmp_path / "c.bin").write_bytes(value.raw_data)

    def move_constants_to(location):
        for attr in model.graph.node[0].attribute:
            tensor = attr.g.node[0].attribute[0].t
            if tensor.HasField("raw_data"):
                tensor.ClearField("external_data")
                set_external_data(tensor, location=location, offset=0, length=256)
                tensor.ClearField("raw_data")
            else:
                next(e for e in tensor.external_data if e.key == "location").value = location
        path.write_bytes(model.SerializeToString())

    move_constants_to("c.bin")
    assert read_model_file(path).external_data[0] == {
        "path": "c.bin",
        "sha256": hashlib.sha256(value.raw_data).hexdigest(),
        "size": 256,
    }
    move_constants_to("/etc/passwd")
    with pytest.raises(ModelError, match="refusing external data '/etc/passwd'.*absolute"):
        read_model_file(path)
