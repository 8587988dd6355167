"""Properties of every registered perturbation, and the spec parser."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from auditor.errors import ConfigError
from auditor.perturbations import REGISTRY, SUITES, apply, get, parse_spec, plan
from auditor.seeds import derive_rng

NAMES = sorted(REGISTRY)
RANDOM = {"gaussian_noise", "linf_noise"}
# Level pairs whose ladder is not monotone in mean absolute change, and why.
NOT_MONOTONE = {
    ("pixelate", 1): "factor 0.6 resamples on a non-integer grid and shifts pixels; "
    "factor 0.5 makes aligned 2x2 blocks, which change pixels less",
}

images = st.tuples(st.integers(8, 48), st.integers(8, 48)).flatmap(
    lambda hw: arrays(np.uint8, (hw[0], hw[1], 3))
)
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def photo(seed: int = 0, size: int = 96) -> np.ndarray:
    """Texture at several scales, closer to a photograph than flat colour or pure noise."""
    rng = np.random.default_rng(seed)
    layers = [
        cv2.resize(
            rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32),
            (size, size),
            interpolation=cv2.INTER_CUBIC,
        )
        for cells in (3, 8, 24)
    ]
    return np.clip(sum(layers) / len(layers), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(image=images, level=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_shape_and_dtype_are_kept(name, image, level, seed):
    out = apply(name, image, level, np.random.default_rng(seed))
    assert out.shape == image.shape and out.dtype == np.uint8


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(image=images, level=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_same_seed_same_output_and_input_untouched(name, image, level, seed):
    before = image.copy()
    a = apply(name, image, level, np.random.default_rng(seed))
    b = apply(name, image, level, np.random.default_rng(seed))
    assert np.array_equal(a, b)
    assert np.array_equal(image, before)


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_different_seeds_differ_for_random_perturbations(name):
    image = photo()
    a = apply(name, image, 3, derive_rng(0, "a.png", name, 3, 0))
    b = apply(name, image, 3, derive_rng(1, "a.png", name, 3, 0))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_higher_level_moves_pixels_further_on_average(name):
    """Mean absolute change over a few photographs grows with the level."""
    photos = [photo(seed, size=224) for seed in range(6)]  # the reference size

    def strength(level: int) -> float:
        return float(
            np.mean(
                [
                    np.abs(
                        apply(name, im, level, derive_rng(0, str(i), name, level, 0)).astype(float)
                        - im
                    ).mean()
                    for i, im in enumerate(photos)
                ]
            )
        )

    strengths = [strength(level) for level in range(1, 6)]
    assert strengths[0] > 0
    assert strengths[-1] > strengths[0]
    for lower, (a, b) in enumerate(zip(strengths, strengths[1:]), start=1):
        if (name, lower) not in NOT_MONOTONE:
            assert b >= a * 0.95, (lower, strengths)


def test_linf_noise_stays_in_the_ball():
    image = photo()
    for eps_pixels in (1, 4, 16):
        out = apply("linf_noise", image, {"eps": eps_pixels / 255}, np.random.default_rng(0))
        assert np.abs(out.astype(int) - image).max() <= eps_pixels


def test_level_zero_strength_changes_nothing():
    image = photo()
    assert np.array_equal(apply("linf_noise", image, {"eps": 0.0}, np.random.default_rng(0)), image)
    assert np.array_equal(
        apply("gaussian_blur", image, {"sigma": 0.0}, np.random.default_rng(0)), image
    )


def test_explicit_value_equals_the_same_table_level():
    image = photo()
    rng = lambda: np.random.default_rng(5)  # noqa: E731
    assert np.array_equal(
        apply("jpeg_compression", image, 2, rng()),
        apply("jpeg_compression", image, {"quality": 18}, rng()),
    )
    assert np.array_equal(
        apply("gaussian_noise", image, 0.12, rng()), apply("gaussian_noise", image, 2, rng())
    )


def test_pixel_sized_parameters_scale_with_the_image():
    small = photo(size=56)  # a quarter of 224: sigma 4 acts like sigma 1
    scaled = apply("gaussian_blur", small, {"sigma": 4.0}, np.random.default_rng(0))
    direct = apply(
        "gaussian_blur", small, {"sigma": 1.0}, np.random.default_rng(0), scale_to_input=False
    )
    assert np.array_equal(scaled, direct)


def test_rounding_is_round_and_clip_not_truncation():
    image = np.full((8, 8, 3), 100, np.uint8)
    # contrast keeps a flat image flat: any truncation of 100.0 -> 99 would show
    out = apply("contrast", image, 5, np.random.default_rng(0))
    assert np.all(out == 100)


def test_suites_name_registered_perturbations():
    assert set(SUITES["quick"]) <= set(REGISTRY)
    assert "linf_noise" in SUITES["quick"]


def test_every_perturbation_has_a_description_and_five_levels():
    for p in REGISTRY.values():
        assert p.description and len(p.levels) == 5


def test_parse_spec_with_explicit_values():
    planned = parse_spec("jpeg_compression:quality=90,70,50")
    assert [lv["quality"] for lv in planned.levels] == [90, 70, 50]
    eps = parse_spec("linf_noise:eps=8/255,0.2").levels
    assert eps[0]["eps"] == pytest.approx(8 / 255) and eps[1]["eps"] == 0.2


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nope", "unknown perturbation 'nope'"),
        ("jpeg_compression:q=1", "PARAM one of quality"),
        ("jpeg_compression:quality=high", "'high' is not a number"),
        ("jpeg_compression:quality", "expected jpeg_compression:PARAM"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_spec(spec)


def test_plan_uses_specs_over_suite_and_rejects_duplicates():
    assert [p.name for p in plan(["contrast"], "quick")] == ["contrast"]
    assert [p.name for p in plan([], "quick")] == list(SUITES["quick"])
    with pytest.raises(ConfigError, match="given twice"):
        plan(["contrast", "contrast:factor=0.5,0.4,0.3,0.2,0.1"], None)


def test_apply_rejects_what_is_not_an_rgb_uint8_image():
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        apply("contrast", np.zeros((8, 8), np.uint8), 1, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="level must be 1..5"):
        apply("contrast", photo(), 6, np.random.default_rng(0))


def test_get_lists_known_names():
    with pytest.raises(ConfigError, match="known: .*contrast"):
        get("contrastt")
