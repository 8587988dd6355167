"""`auditor check A.onnx B.onnx --data DIR`: one pass, one report per model, their comparison."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import build_model, colour_image, without_run_specifics

from auditor.cli import main
from auditor.config import ModelOptions
from auditor.engine.fanout import FanOut
from auditor.errors import EXIT_CANNOT_RUN, EXIT_GATE_FAILED, EXIT_OK
from auditor.model.adapter import load_model

VIDEOS = Path(__file__).parents[1] / "samples" / "video" / "data"
QUICK = ("-p", "brightness", "-p", "gaussian_noise", "--limit", "12")


def run(*args: object):
    return CliRunner().invoke(main, ["check", *(str(a) for a in args)])


@pytest.fixture
def models(tmp_path: Path) -> tuple[Path, Path]:
    """Two models that differ in input size, layout, dtype of output and head."""
    meta = {"classes": ["real", "fake"]}
    a = build_model(tmp_path / "alpha.onnx", metadata={**meta, "size": [16, 16]})
    b = build_model(
        tmp_path / "beta.onnx",
        head="sigmoid",
        classes=1,
        layout="nhwc",
        size=(24, 20),
        metadata={**meta, "size": [24, 20]},
    )
    return a, b


def test_each_model_gets_the_results_of_its_own_run(tmp_path, models, data_dir):
    out = tmp_path / "out"
    both = run(*models, "--data", data_dir, *QUICK, "-o", out / "report.html")
    assert both.exit_code == EXIT_OK, both.output
    names = {p.name for p in out.iterdir()}
    assert names == {
        "report-alpha.html",
        "report-alpha.json",
        "report-beta.html",
        "report-beta.json",
        "report-compare.html",
    }
    assert "beta.onnx against alpha.onnx" in both.output
    for model in models:
        alone = run(model, "--data", data_dir, *QUICK, "-o", tmp_path / f"{model.stem}.html")
        assert alone.exit_code == EXIT_OK, alone.output
        single = json.loads((tmp_path / f"{model.stem}.json").read_text())
        multi = json.loads((out / f"report-{model.stem}.json").read_text())
        keys = ("command_line",)
        assert without_run_specifics(multi, keys) == without_run_specifics(single, keys)
    compare = (out / "report-compare.html").read_text()
    assert "alpha.onnx" in compare and "beta.onnx" in compare


def test_exit_code_is_1_when_one_model_fails_a_gate(tmp_path, models, data_dir):
    # alpha scores the colour images well; gamma, with its classes swapped, gets them wrong.
    inverted = build_model(
        tmp_path / "gamma.onnx", head="none", metadata={"classes": ["fake", "real"]}
    )
    result = run(
        models[0], inverted, "--data", data_dir, *QUICK, "--fail-under-ra", "0.5",
        "-o", tmp_path / "r.html",
    )  # fmt: skip
    assert result.exit_code == EXIT_GATE_FAILED, result.output
    alpha = json.loads((tmp_path / "r-alpha.json").read_text())
    gamma = json.loads((tmp_path / "r-gamma.json").read_text())
    assert alpha["verdict"]["passed"] is True
    assert gamma["verdict"]["passed"] is False


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("-p", "square_linf:eps=0,4/255", "--queries", "5"), "searches query one model"),
        (("--data", VIDEOS, "--frames", "2"), "videos take one model"),
        (("--resume",), "--resume takes one model"),
        (("--face-crop", "ffpp"), "--face-crop takes one model"),
    ],
)
def test_what_several_models_refuse(tmp_path, models, data_dir, extra, message):
    result = run(*models, "--data", data_dir, *extra, "-o", tmp_path / "r.html")
    assert result.exit_code == EXIT_CANNOT_RUN
    assert message in result.output
    assert not list(tmp_path.glob("r*"))


def test_models_named_alike_are_refused(tmp_path, models, data_dir):
    other = tmp_path / "elsewhere"
    other.mkdir()
    twin = build_model(other / "alpha.onnx", metadata={"classes": ["real", "fake"]})
    result = run(models[0], twin, "--data", data_dir, "-o", tmp_path / "r.html")
    assert result.exit_code == EXIT_CANNOT_RUN
    assert "file names must differ" in result.output


def test_fan_out_rows_hold_each_models_own_tensor(models):
    loaded = [load_model(path, ModelOptions()) for path in models]
    fan = FanOut(loaded)
    images = [colour_image(np.random.default_rng(i), 0.3 + 0.2 * i) for i in range(3)]
    rows = fan.to_tensor(images)
    probs = fan.infer(rows)
    for i, model in enumerate(loaded):
        assert np.array_equal(fan.view(rows, i), model.to_tensor(images))
        assert np.array_equal(probs[:, fan.columns(i)], model.predict(images))
