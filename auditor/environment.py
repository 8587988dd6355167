"""What the audit ran on: library versions, platform and execution provider."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

import cv2
import numpy as np
import onnx

from auditor import __version__
from auditor.model import installed_runtimes


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
    }


def _runtime_version() -> str:
    """Name which onnxruntime distribution is installed, with its version."""
    return ", ".join(f"{metadata.version(d)} ({d})" for d in installed_runtimes())
