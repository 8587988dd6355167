"""OpenCV's errors as one line, and its log held back where it only repeats them."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import cv2

# OpenCV's log level is one global: overlapping `quiet` blocks (workers loading their own
# detectors at once) share one silence, and the last to leave restores the level.
_LOCK = threading.Lock()
_silenced = 0
_saved_level = 0


def reason(exc: cv2.error) -> str:
    """The human part of an OpenCV error: `Failed to parse ONNX model: m.onnx`."""
    text = " ".join(str(exc).split())
    # "OpenCV(5.1.0) file.cpp:397: error: (-210:Unsupported format) WHAT in function 'f'"
    match = re.search(r"error: \([^)]*\) (.*?)(?: in function '[^']*')?$", text)
    return match.group(1) if match else text or "unknown OpenCV error"


@contextmanager
def quiet() -> Iterator[None]:
    """OpenCV's own log lines silenced for the duration of the block.

    Used only around loading and probing a model, whose failures become one-line
    `ModelError`s: OpenCV's multi-line log of the same failure would only repeat it.
    """
    global _silenced, _saved_level
    with _LOCK:
        if _silenced == 0:
            _saved_level = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        _silenced += 1
    try:
        yield
    finally:
        with _LOCK:
            _silenced -= 1
            if _silenced == 0:
                cv2.utils.logging.setLogLevel(_saved_level)
