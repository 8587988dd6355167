"""The linear half of the gradient twin: auditor's resize, crop and letterbox as matrices.

For a fixed input and output size, `preprocess.resize_image` is linear in the pixels
(before its rounding to uint8): out = R @ X @ C^T per channel, plus the letterbox's
constant border. The matrices are read from OpenCV itself, by resizing basis vectors,
so they follow `cv2.resize` for each interpolation (OpenCV resizes the two axes
separably). Everything after the resize (channel order, scale, mean, std, layout) is
affine per value and lives in `twin`.

One OpenCV detail shapes how the probes are made: with INTER_AREA, OpenCV uses its
area weights only when both axes shrink, else a bilinear-like rule on both axes, so an
axis's matrix is probed with the other axis shrinking or growing as in the real resize.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from auditor.model.preprocess import INTERPOLATIONS, Preprocessing

Matrix = NDArray[np.float32]
# OpenCV resizes at most this many channels at once: 512 up to OpenCV 4, 128 in OpenCV 5
# (more fail with "unable to wrap channels"; a side over 128 that grows needs several)
_PROBE_CHANNELS = 128


@dataclass(frozen=True)
class ResizeMap:
    """How one image size is brought to the model's size: out = rows @ X @ cols.T + border."""

    rows: Matrix  # H x h: weight of input row k on output row i
    cols: Matrix  # W x w
    border: NDArray[np.float32]  # H x W: the letterbox's pad value outside the image, else 0


def axis_matrix(n_in: int, n_out: int, method: int, other_grows: bool) -> Matrix:
    """The n_out x n_in matrix that `cv2.resize` applies along one axis.

    Each column is OpenCV's resize of a basis vector. When the other axis keeps or
    shrinks its size, the probe is the n_in x n_in identity resized to n_out x n_in
    (the other axis unchanged); when it grows, the basis vectors go through the channels
    of an n_in x 1 image resized to n_out x 2, which takes OpenCV's growing path.
    """
    if not other_grows:
        eye = np.eye(n_in, dtype=np.float32)
        return np.ascontiguousarray(cv2.resize(eye, (n_in, n_out), interpolation=method))
    out = np.empty((n_out, n_in), np.float32)
    for start in range(0, n_in, _PROBE_CHANNELS):
        count = min(_PROBE_CHANNELS, n_in - start)
        probe = np.zeros((n_in, 1, count), np.float32)
        probe[start + np.arange(count), 0, np.arange(count)] = 1.0
        resized = cv2.resize(probe, (2, n_out), interpolation=method)
        out[:, start : start + count] = resized.reshape(n_out, 2, count)[:, 0, :]
    return out


@functools.lru_cache(maxsize=64)
def resize_map(height: int, width: int, prep: Preprocessing) -> ResizeMap:
    """The `ResizeMap` of an `height` x `width` image under `prep` (as `resize_image`)."""
    out_h, out_w = prep.size
    method = INTERPOLATIONS[prep.interpolation]
    if prep.resize == "stretch":
        rows, cols = _scaled(height, width, out_h, out_w, method)
        return ResizeMap(rows, cols, np.zeros((out_h, out_w), np.float32))
    if prep.resize == "crop":
        factor = max(out_h / prep.crop_ratio / height, out_w / prep.crop_ratio / width)
        new_w, new_h = max(out_w, round(width * factor)), max(out_h, round(height * factor))
        rows, cols = _scaled(height, width, new_h, new_w, method)
        top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
        return ResizeMap(
            np.ascontiguousarray(rows[top : top + out_h]),
            np.ascontiguousarray(cols[left : left + out_w]),
            np.zeros((out_h, out_w), np.float32),
        )
    factor = min(out_h / height, out_w / width)  # letterbox: fit inside, then pad
    new_w = min(out_w, max(1, round(width * factor)))
    new_h = min(out_h, max(1, round(height * factor)))
    inner_rows, inner_cols = _scaled(height, width, new_h, new_w, method)
    top, left = (
        (0, 0) if prep.pad_align == "topleft" else ((out_h - new_h) // 2, (out_w - new_w) // 2)
    )
    rows = np.zeros((out_h, height), np.float32)
    cols = np.zeros((out_w, width), np.float32)
    rows[top : top + new_h] = inner_rows
    cols[left : left + new_w] = inner_cols
    border = np.full((out_h, out_w), float(np.clip(round(prep.pad_value), 0, 255)), np.float32)
    border[top : top + new_h, left : left + new_w] = 0.0
    return ResizeMap(rows, cols, border)


def _scaled(height: int, width: int, new_h: int, new_w: int, method: int) -> tuple[Matrix, Matrix]:
    """Row and column matrices of `cv2.resize` from height x width to new_h x new_w."""
    if (height, width) == (new_h, new_w):  # OpenCV copies the image
        return np.eye(height, dtype=np.float32), np.eye(width, dtype=np.float32)
    rows = axis_matrix(height, new_h, method, other_grows=new_w > width)
    cols = axis_matrix(width, new_w, method, other_grows=new_h > height)
    return rows, cols


def apply(image: NDArray[np.floating], mapping: ResizeMap) -> NDArray[np.float32]:
    """The resize in floats, before rounding: for checking the matrices against OpenCV."""
    x = np.asarray(image, np.float32)
    out = np.einsum("ih,hwc,jw->ijc", mapping.rows, x, mapping.cols, optimize=True)
    return np.asarray(out + mapping.border[..., None], np.float32)
