"""The environment section: hardware and OS read from the system files where present."""

from __future__ import annotations

from auditor.engine import environment


def test_cpu_model_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    block = "processor\t: {}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) X\n\n"
    info.write_text("".join(block.format(i) for i in range(4)))
    assert environment.cpu_model(info) == "Intel(R) Xeon(R) X (4 logical cores)"
    assert environment.cpu_model(tmp_path / "missing")  # falls back to the platform


def test_gpu_models_from_the_nvidia_driver(tmp_path):
    assert environment.gpu_models(tmp_path / "none") == []
    card = tmp_path / "0000:17:00.0"
    card.mkdir()
    (card / "information").write_text("Model: \t\t NVIDIA H200\nIRQ: 1\n")
    assert environment.gpu_models(tmp_path) == ["NVIDIA H200"]


def test_os_name(tmp_path):
    release = tmp_path / "os-release"
    release.write_text('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    assert environment.os_name(release).startswith("Debian GNU/Linux 12 (bookworm), kernel ")
    assert environment.os_name(tmp_path / "missing")


def test_describe_has_the_keys_the_report_shows():
    env = environment.describe("CPUExecutionProvider")
    assert {"python", "onnxruntime", "onnx", "opencv", "numpy", "provider"} <= set(env)
    assert {"os", "cpu", "gpu"} <= set(env)
