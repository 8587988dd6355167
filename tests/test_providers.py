"""Choosing the execution provider, falling back visibly, recording what ran."""

from __future__ import annotations

import warnings

import pytest
from click.testing import CliRunner
from zoo import build

from auditor.cli import main
from auditor.config import ModelOptions
from auditor.errors import ConfigError
from auditor.model.adapter import load_model
from auditor.model.providers import CPU, CUDA, ProviderWarning, choose_provider

KNOWN = ["TensorrtExecutionProvider", CUDA, "OpenVINOExecutionProvider", CPU]


@pytest.mark.parametrize(
    "requested, available, expected",
    [
        ("auto", [CUDA, CPU], (CUDA, None)),
        ("auto", [CPU], (CPU, None)),
        ("cpu", [CUDA, CPU], (CPU, None)),
        ("cuda", [CUDA, CPU], (CUDA, None)),
        ("CUDAExecutionProvider", [CUDA, CPU], (CUDA, None)),
        ("openvino", ["OpenVINOExecutionProvider", CPU], ("OpenVINOExecutionProvider", None)),
    ],
)
def test_choose_provider(requested, available, expected):
    assert choose_provider(requested, available, KNOWN) == expected


def test_a_missing_provider_falls_back_to_cpu_with_a_reason():
    chosen, reason = choose_provider("tensorrt", [CPU], KNOWN)
    assert chosen == CPU and "TensorrtExecutionProvider is not available" in reason


def test_an_unknown_provider_name_is_refused():
    with pytest.raises(ConfigError, match="unknown execution provider 'warp'.*auto, cpu, cuda"):
        choose_provider("warp", [CPU], KNOWN)


def test_fallback_warns_and_is_recorded(tmp_path):
    path = build(tmp_path / "m.onnx").path
    if "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers():
        pytest.skip("CUDA is available here: no fallback to see")
    with pytest.warns(ProviderWarning, match="CUDAExecutionProvider is not available"):
        model = load_model(path, ModelOptions(provider="cuda"))
    runtime = model.describe()["runtime"]
    assert model.provider == CPU == runtime["provider"]
    assert runtime["requested"] == "cuda" and "not available" in runtime["fallback"]


def test_auto_and_cpu_do_not_warn(tmp_path):
    path = build(tmp_path / "m.onnx").path
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProviderWarning)
        for provider in ("auto", "cpu"):
            runtime = load_model(path, ModelOptions(provider=provider)).describe()["runtime"]
            assert runtime["fallback"] is None


def test_cli_shows_the_fallback_as_one_warning_line(tmp_path):
    if "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers():
        pytest.skip("CUDA is available here: no fallback to see")
    path = build(tmp_path / "m.onnx").path
    result = CliRunner().invoke(main, ["inspect", str(path), "--provider", "cuda"])
    assert result.exit_code == 0
    warning_lines = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warning_lines == [
        line for line in warning_lines if line.startswith("auditor: warning: execution provider")
    ]
    assert len(warning_lines) == 1
    assert "fallback: execution provider CUDAExecutionProvider" in result.stdout
