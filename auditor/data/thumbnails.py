"""Small PNG thumbnails as `data:` URIs, so the report stays one self-contained file."""

from __future__ import annotations

import base64

import cv2
import numpy as np
from numpy.typing import NDArray

MAX_SIDE = 96


def data_uri(image: NDArray[np.uint8], max_side: int = MAX_SIDE) -> str:
    """Return RGB `image`, shrunk to at most `max_side` pixels, as a PNG data URI."""
    h, w = image.shape[:2]
    factor = min(1.0, max_side / max(h, w))
    if factor < 1.0:
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    # PNG, not JPEG: a lossy thumbnail would add artefacts of its own to what it shows.
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
    if not ok:
        raise RuntimeError("OpenCV could not PNG-encode a thumbnail")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")
