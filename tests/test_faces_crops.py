"""Face crop presets: each published rule on worked examples, at the borders, and as
properties over random boxes; the preset parser and its one-line errors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.errors import ConfigError
from auditor.faces import PRESETS, Box, CropPreset, crop, parse_preset
from auditor.model.preprocess import PAD_ALIGNS, RESIZE_MODES, Preprocessing, resize_image

W, H = 640, 480
FACE = Box(100, 50, 80, 100)  # left 100, top 50, right 180, bottom 150


def region(spec: str, face: Box = FACE, width: int = W, height: int = H) -> list[float]:
    return parse_preset(spec).region(face, width, height).as_list()


# ---------------------------------------------------------------- the rules


def test_ffpp_is_a_square_of_1_3_times_the_longer_side_on_the_centre():
    # side int(100 * 1.3) = 130, centre (140, 100): corner (140 - 65, 100 - 65)
    assert region("ffpp") == [75, 35, 130, 130]


def test_ffpp_at_the_top_left_moves_the_square_and_keeps_its_side():
    assert region("ffpp", Box(5, 5, 50, 50)) == [0, 0, 65, 65]


def test_ffpp_at_the_bottom_right_shortens_the_side_and_stays_square():
    # side 78 from corner (591, 391): only 49 columns are left, so 49 x 49
    assert region("ffpp", Box(600, 400, 60, 60)) == [591, 391, 49, 49]


def test_dfdc_pads_a_third_of_width_and_height_on_each_side():
    # pads 80 // 3 = 26 and 100 // 3 = 33
    assert region("dfdc") == [74, 17, 132, 166]


def test_dfdc_is_clipped_to_the_image():
    assert region("dfdc", Box(10, 400, 90, 60)) == [0, 380, 130, 100]


def test_dfdc_asks_for_an_isotropic_resize_with_centre_padding():
    preset = parse_preset("dfdc")
    assert preset.preprocess == {"resize": "letterbox", "pad_align": "center", "pad_value": 0.0}
    assert parse_preset("ffpp").preprocess == {} and parse_preset("sbi").preprocess == {}


def test_the_preprocess_overrides_are_valid_model_preprocessing():
    """The engine applies them with dataclasses.replace on the model's `Preprocessing`."""
    overrides = parse_preset("dfdc").preprocess
    fields = {f.name for f in dataclasses.fields(Preprocessing)}
    assert set(overrides) <= fields
    assert overrides["resize"] in RESIZE_MODES and overrides["pad_align"] in PAD_ALIGNS
    # A 132 x 166 dfdc crop into a 48 x 48 input: scaled to 38 x 48, black bars of 5 px.
    prep = dataclasses.replace(Preprocessing(size=(48, 48), layout="nchw"), **overrides)
    pixels, _ = crop(np.full((H, W, 3), 200, np.uint8), FACE, "dfdc")
    resized = resize_image(pixels, prep)
    assert resized.shape == (48, 48, 3)
    assert not resized[:, :5].any() and not resized[:, -5:].any() and resized[:, 5:43].all()


def test_sbi_adds_an_eighth_of_width_and_height_on_each_side():
    # x: int(100 - 10) = 90 .. int(180 + 10) + 1 = 191; y: int(37.5) = 37 .. int(162.5) + 1
    assert region("sbi") == [90, 37, 101, 126]


def test_sbi_is_clipped_to_the_image():
    assert region("sbi", Box(-4, 440, 40, 40)) == [0, 435, 42, 45]


def test_box_scale_is_the_ffpp_square_with_another_scale():
    assert region("box:scale=2") == [40, 0, 200, 200]
    assert region("box:scale=1.3") == region("ffpp")


def test_crop_cuts_the_region_and_returns_its_box():
    image = np.arange(H * W * 3, dtype=np.uint32).reshape(H, W, 3).astype(np.uint8)
    pixels, box = crop(image, FACE, "ffpp")
    assert box == Box(75, 35, 130, 130)
    assert np.array_equal(pixels, image[35:165, 75:205])
    pixels[:] = 0  # a copy: the frame is left as it was
    assert image[35:165, 75:205].any()


def test_crop_takes_a_parsed_preset_too():
    image = np.zeros((H, W, 3), np.uint8)
    assert crop(image, FACE, parse_preset("dfdc"))[1] == crop(image, FACE, "dfdc")[1]


def test_a_face_box_outside_the_image_is_refused():
    with pytest.raises(ValueError, match="outside"):
        parse_preset("ffpp").region(Box(700, 500, 40, 40), W, H)


# ---------------------------------------------------------------- properties

faces = st.builds(
    lambda x, y, w, h: Box(x, y, w, h),
    st.floats(-30, 600),
    st.floats(-30, 440),
    st.floats(4, 300),
    st.floats(4, 300),
)
specs = st.sampled_from(["ffpp", "dfdc", "sbi", "box:scale=0.8", "box:scale=2.5"])


def overlaps(face: Box) -> bool:
    """A detector's box: its centre (where its anchor was) lies in the image."""
    return 0 <= face.x + face.w / 2 < W and 0 <= face.y + face.h / 2 < H


def px(value: float) -> int:
    return math.floor(value + 0.5)


@given(face=faces, spec=specs)
def test_every_region_is_inside_the_image_and_not_empty(face, spec):
    if not overlaps(face):
        return
    box = parse_preset(spec).region(face, W, H)
    assert all(float(v).is_integer() for v in box.as_list())
    assert box.x >= 0 and box.y >= 0 and box.right <= W and box.bottom <= H
    assert box.w >= 1 and box.h >= 1


@given(face=faces, scale=st.floats(0.5, 3.0))
def test_square_regions_are_square_and_hold_the_face_centre(face, scale):
    if not overlaps(face):
        return
    box = CropPreset("box", scale).region(face, W, H)
    assert box.w == box.h
    cx, cy = (px(face.x) + px(face.right)) // 2, (px(face.y) + px(face.bottom)) // 2
    assert box.x <= cx <= box.right and box.y <= cy <= box.bottom


@given(face=faces, spec=st.sampled_from(["dfdc", "sbi"]))
def test_margin_regions_hold_the_whole_face_box_inside_the_image(face, spec):
    if not overlaps(face):
        return
    box = parse_preset(spec).region(face, W, H)
    assert box.x <= max(face.x, 0) + 0.5 and box.y <= max(face.y, 0) + 0.5
    assert box.right >= min(face.right, W) - 0.5 and box.bottom >= min(face.bottom, H) - 0.5


@given(face=faces)
def test_larger_scales_give_larger_squares(face):
    if not overlaps(face):
        return
    small = CropPreset("box", 1.0).region(face, W, H)
    large = CropPreset("box", 2.0).region(face, W, H)
    assert large.w >= small.w


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize("text", ["ffpp", "dfdc", "sbi", "box:scale=1.5", "box:scale=10"])
def test_a_preset_round_trips_through_its_spec(text):
    preset = parse_preset(text)
    assert preset.spec == text and parse_preset(preset.spec) == preset


def test_parsing_ignores_case_and_spaces():
    assert parse_preset(" FFPP ") == CropPreset("ffpp")
    assert parse_preset("Box:Scale=2").scale == 2.0


@pytest.mark.parametrize("text", ["retinaface", "", "square", "ffpp:scale=2"])
def test_an_unknown_preset_is_refused_naming_the_presets(text):
    with pytest.raises(ConfigError) as caught:
        parse_preset(text)
    message = str(caught.value)
    assert "\n" not in message and "--face-crop" in message
    assert all(name in message for name in PRESETS)


@pytest.mark.parametrize(
    "text", ["box", "box:scale", "box:scale=", "box:scale=abc", "box:scale=0", "box:scale=-1",
             "box:scale=11", "box:scale=nan", "box:scale=inf", "box:size=2"],
)  # fmt: skip
def test_a_bad_box_scale_is_refused_with_an_example(text):
    with pytest.raises(ConfigError, match=r"box:scale=S .*e\.g\. box:scale=1\.5"):
        parse_preset(text)


def test_a_preset_built_by_hand_is_checked_too():
    with pytest.raises(ConfigError, match="unknown preset"):
        CropPreset("mtcnn")
    with pytest.raises(ConfigError, match="box:scale=S"):
        CropPreset("ffpp", 2.0)


def test_describe_names_the_rule_and_the_preprocessing():
    described = parse_preset("box:scale=1.5").describe()
    assert described["preset"] == "box:scale=1.5"
    assert "square" in str(described["rule"])
    assert parse_preset("dfdc").describe()["preprocess"]["resize"] == "letterbox"
