"""Resize modes, normalization and where each preprocessing value came from."""

from __future__ import annotations

import numpy as np
import pytest

from auditor.config import PreprocessOptions
from auditor.errors import ConfigError
from auditor.preprocess import Preprocessing, resize_image, resolve, to_tensor


def prep(**kw) -> Preprocessing:
    return Preprocessing(size=kw.pop("size", (4, 4)), layout=kw.pop("layout", "nchw"), **kw)


def test_stretch_crop_and_letterbox_shapes():
    image = np.arange(8 * 16 * 3, dtype=np.uint8).reshape(8, 16, 3)
    for mode in ("stretch", "crop", "letterbox"):
        assert resize_image(image, prep(resize=mode, size=(6, 6))).shape == (6, 6, 3)


def test_letterbox_pads_with_the_pad_value_and_alignment():
    image = np.full((4, 8, 3), 200, np.uint8)
    centred = resize_image(image, prep(resize="letterbox", size=(8, 8), pad_value=7))
    assert np.all(centred[:2] == 7) and np.all(centred[2:6] == 200) and np.all(centred[6:] == 7)
    topleft = resize_image(image, prep(resize="letterbox", size=(8, 8), pad_align="topleft"))
    assert np.all(topleft[:4] == 200) and np.all(topleft[4:] == 0)


def test_crop_keeps_the_centre():
    image = np.zeros((10, 10, 3), np.uint8)
    image[3:7, 3:7] = 255
    out = resize_image(
        image, prep(resize="crop", size=(4, 4), crop_ratio=0.4, interpolation="nearest")
    )
    assert np.all(out == 255)


def test_tensor_normalization_channel_order_and_layout():
    image = np.zeros((2, 2, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 255, 0, 51
    p = prep(size=(2, 2), mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 1.0), channel_order="bgr")
    tensor = to_tensor([image], p)
    assert tensor.shape == (1, 3, 2, 2) and tensor.dtype == np.float32
    # bgr: channel 0 is blue (51/255 = 0.2): (0.2 - 0.5) / 0.5 = -0.6
    np.testing.assert_allclose(tensor[0, :, 0, 0], [-0.6, -2.0, 0.5], atol=1e-6)
    nhwc = to_tensor([image], prep(size=(2, 2), layout="nhwc"))
    assert nhwc.shape == (1, 2, 2, 3)


def test_sources_flag_over_metadata_over_model_over_default():
    out = resolve(PreprocessOptions(scale=1.0), {"scale": 0.5, "mean": [1, 2, 3]}, (8, 8), "nchw")
    assert out.scale == 1.0 and out.sources["scale"] == "flag"
    assert out.mean == (1.0, 2.0, 3.0) and out.sources["mean"] == "metadata"
    assert out.size == (8, 8) and out.sources["size"] == "model"
    assert out.resize == "stretch" and out.sources["resize"] == "default"


@pytest.mark.parametrize(
    "metadata, message",
    [
        ({"resize": "squash"}, "'resize' from metadata: expected one of stretch"),
        ({"std": [1, 0, 1]}, "non-zero"),
        ({"mean": [1, 2]}, "three numbers"),
        ({"crop_ratio": 1.5}, r"\(0, 1\]"),
    ],
)
def test_bad_values_name_their_source(metadata, message):
    with pytest.raises(ConfigError, match=message):
        resolve(PreprocessOptions(), metadata, (8, 8), "nchw")
