"""What the audit ran on: library versions, platform, hardware and execution provider."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx

from auditor.model.adapter import installed_runtimes
from auditor.version import __version__

_CPUINFO = Path("/proc/cpuinfo")
_NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
_OS_RELEASE = Path("/etc/os-release")


def describe(provider: str) -> dict[str, Any]:
    """Return the environment section of the results JSON."""
    return {
        "auditor": __version__,
        "python": platform.python_version(),
        "onnxruntime": _runtime_version(),
        "onnx": onnx.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "provider": provider,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "os": os_name(),
        "cpu": cpu_model(),
        "gpu": gpu_models() or None,
    }


def _runtime_version() -> str:
    """Name which onnxruntime distribution is installed, with its version."""
    return ", ".join(f"{metadata.version(d)} ({d})" for d in installed_runtimes())


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpu_model(cpuinfo: Path = _CPUINFO) -> str:
    """Return the CPU model and logical core count, from /proc/cpuinfo where there is one."""
    text = _read(cpuinfo)
    names = [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.split(":", 1)[0].strip() in ("model name", "Model", "cpu model")
    ]
    name = names[0] if names else (platform.processor() or platform.machine())
    cores = sum(1 for line in text.splitlines() if line.startswith("processor"))
    return f"{name} ({cores} logical cores)" if cores else name


def gpu_models(root: Path = _NVIDIA_GPUS) -> list[str]:
    """Return the NVIDIA GPU models the driver lists (none when there is no such driver)."""
    found = []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    for entry in entries:
        for line in _read(entry / "information").splitlines():
            if line.startswith("Model:"):
                found.append(line.split(":", 1)[1].strip())
    return found


def os_name(os_release: Path = _OS_RELEASE) -> str:
    """Return the OS name (`Debian GNU/Linux 13 (trixie)`) and the kernel release."""
    for line in _read(os_release).splitlines():
        if line.startswith("PRETTY_NAME="):
            return f"{line.split('=', 1)[1].strip().strip(chr(34))}, kernel {platform.release()}"
    return f"{platform.system()} {platform.release()}".strip()
