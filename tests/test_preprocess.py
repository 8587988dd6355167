"""Resize modes, normalization and where each preprocessing value came from."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from zoo import build

from auditor.config import PreprocessOptions
from auditor.errors import ConfigError
from auditor.model.preprocess import INTERPOLATIONS, Preprocessing, resize_image, resolve, to_tensor


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


def _arithmetic(images, p, dtype):
    """The normalization written out in float32 array arithmetic, as `to_tensor` must match."""
    batch = np.stack([resize_image(img, p) for img in images]).astype(np.float32)
    if p.channel_order == "bgr":
        batch = batch[..., ::-1]
    batch = (batch * np.float32(p.scale) - np.asarray(p.mean, np.float32)) / np.asarray(
        p.std, np.float32
    )
    if p.layout == "nchw":
        batch = batch.transpose(0, 3, 1, 2)
    if np.issubdtype(dtype, np.integer):
        batch = np.clip(np.rint(batch), 0, 255)
    return np.ascontiguousarray(batch, dtype=dtype)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("order", ["rgb", "bgr"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.uint8])
def test_table_lookup_gives_the_arithmetic_bits(wide_image, layout, order, dtype):
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    scale = 1.0 if dtype is np.uint8 else 1 / 255
    p = prep(size=(7, 9), layout=layout, channel_order=order, scale=scale, mean=mean, std=std)
    images = [wide_image, wide_image[::-1, ::2].copy()]
    expected = _arithmetic(images, p, dtype)
    assert to_tensor(images, p, dtype).tobytes() == expected.tobytes()
    out = np.full(expected.shape, 7, dtype)  # written in place, every value
    assert to_tensor(images, p, dtype, out=out) is out and out.tobytes() == expected.tobytes()
    with pytest.raises(ValueError, match="expected"):
        to_tensor(images[:1], p, dtype, out=out)


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


# --- every preprocessing option through a real model, against numpy written out here ------


@pytest.fixture
def wide_image():
    """A 20x40 RGB image with structure everywhere, so misplaced pixels change the output."""
    rng = np.random.default_rng(11)
    return rng.integers(0, 256, size=(20, 40, 3), dtype=np.uint8)


def to_nchw(pixels, scale=1 / 255, mean=(0, 0, 0), std=(1, 1, 1)):
    x = (pixels.astype(np.float64) * scale - np.array(mean)) / np.array(std)
    return x.transpose(2, 0, 1)[None]


def run(zoo, images, **flags):
    from auditor.config import ModelOptions
    from auditor.model.adapter import load_model

    model = load_model(zoo.path, ModelOptions(preprocess=PreprocessOptions(**flags)))
    return model.predict(images)


def test_crop_against_numpy(tmp_path, wide_image):
    zoo = build(tmp_path / "m.onnx", size=(8, 8))
    # short side 20 -> 8 / 0.5 = 16: the image becomes 16x32; its centre 8x8 is rows 4..12,
    # columns 12..20
    scaled = cv2.resize(wide_image, (32, 16), interpolation=cv2.INTER_LINEAR)
    expected = zoo.reference(to_nchw(scaled[4:12, 12:20]))
    got = run(zoo, [wide_image], resize="crop", crop_ratio=0.5)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("align, top", [("center", 2), ("topleft", 0)])
def test_letterbox_against_numpy(tmp_path, wide_image, align, top):
    zoo = build(tmp_path / "m.onnx", size=(8, 8))
    # 20x40 fits 8x8 as 4x8; the rest is pad value 100
    canvas = np.full((8, 8, 3), 100, np.uint8)
    canvas[top : top + 4] = cv2.resize(wide_image, (8, 4), interpolation=cv2.INTER_AREA)
    expected = zoo.reference(to_nchw(canvas))
    got = run(
        zoo, [wide_image], resize="letterbox", pad_value=100, pad_align=align, interpolation="area"
    )
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("name, flag", [(k, v) for k, v in INTERPOLATIONS.items()])
def test_interpolations_against_cv2(tmp_path, wide_image, name, flag):
    zoo = build(tmp_path / "m.onnx", size=(8, 12))
    expected = zoo.reference(to_nchw(cv2.resize(wide_image, (12, 8), interpolation=flag)))
    np.testing.assert_allclose(run(zoo, [wide_image], interpolation=name), expected, atol=1e-5)


def test_channel_order_scale_mean_std_against_numpy(tmp_path, wide_image):
    zoo = build(tmp_path / "m.onnx", size=(8, 8), layout="nhwc")
    resized = cv2.resize(wide_image, (8, 8), interpolation=cv2.INTER_LINEAR)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    expected = zoo.reference(to_nchw(resized[..., ::-1], 1 / 255, mean, std))
    got = run(zoo, [wide_image], channel_order="bgr", mean=mean, std=std)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # the same values from metadata give the same output, with metadata as their source
    meta = {"channel_order": "bgr", "mean": list(mean), "std": list(std), "scale": 1 / 255}
    zoo2 = build(tmp_path / "m2.onnx", size=(8, 8), layout="nhwc", seed=0, props=_meta(meta))
    from auditor.config import ModelOptions
    from auditor.model.adapter import load_model

    model = load_model(zoo2.path, ModelOptions())
    np.testing.assert_allclose(model.predict([wide_image]), expected, atol=1e-5)
    assert {model.prep.sources[k] for k in meta} == {"metadata"}


def _meta(values):
    import json

    return {"auditor.preprocess": json.dumps(values)}
