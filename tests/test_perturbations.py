"""Properties of every registered perturbation, and the spec parser."""

from __future__ import annotations

import dataclasses
import tracemalloc
from fractions import Fraction

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from auditor.errors import ConfigError
from auditor.perturbations import REGISTRY, SUITES, apply, get, parse_spec, plan
from auditor.seeds import derive_rng

# Per-image functions; the searches that query the model have a registry of their own
# and run in the engine (tests/test_attacks_audit.py).
NAMES = sorted(REGISTRY)
# Perturbations that draw nothing from the rng: every seed gives the same bytes. Every
# other registered perturbation must differ between seeds.
DETERMINISTIC = {
    "brightness",
    "contrast",
    "defocus_blur",
    "gaussian_blur",
    "jpeg_compression",
    "pixelate",
    "saturate",
    "zoom_blur",
    # The DeeperForensics ladder and the laundering chain, bar their noise and occlusion.
    "color_contrast",
    "color_saturation",
    "crop_rescale",
    "downscale",
    "gamma",
    "gaussian_blur_kernel",
    "h265_compression",
    "jpeg_double",
    "resize_roundtrip",
    "rotation",
    "video_compression",
    "webp_compression",
}
# Level pairs (name, lower level) whose ladder is not monotone in strength, and why.
NOT_MONOTONE = {
    ("saturate", 2): "ImageNet-C's ladder: levels 1-2 desaturate (S x 0.3, x 0.1), "
    "levels 3-5 oversaturate (S x 2, x 5, x 20), starting mild again at level 3",
}
# How far a perturbation moves an image from the original. Mean absolute change for
# most; for frost, which swaps image for texture (level 1 adds 0.4 x texture, level 5
# keeps 0.6 x image and adds 0.75 x texture: similar mean change), the share of the
# image's own variation that is lost, 1 - correlation with the original.
CORRELATION_STRENGTH = {"frost"}

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


@pytest.mark.parametrize("name", NAMES)
def test_different_seeds_differ_exactly_for_random_perturbations(name):
    image = photo()
    a = apply(name, image, 3, derive_rng(0, "a.png", name, 3, 0))
    b = apply(name, image, 3, derive_rng(1, "a.png", name, 3, 0))
    assert np.array_equal(a, b) == (name in DETERMINISTIC)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_bytes_whatever_the_thread_count(name):
    image = photo(size=320)[:256]  # large enough for OpenCV to split work
    threads = cv2.getNumThreads()
    try:
        outputs = []
        for count in (1, 2, 4, threads):
            cv2.setNumThreads(count)
            outputs.append(apply(name, image, 4, derive_rng(3, "a.png", name, 4, 0)))
    finally:
        cv2.setNumThreads(threads)
    assert all(np.array_equal(outputs[0], out) for out in outputs[1:])


@pytest.mark.parametrize("name", NAMES)
def test_level_parameters_listed_are_those_applied(name, monkeypatch):
    """What `auditor perturbations` prints for each level is what the function receives."""
    from click.testing import CliRunner

    from auditor.cli import main

    listing = CliRunner().invoke(main, ["perturbations", "--tsv"]).output
    row = next(line for line in listing.splitlines() if line.split("\t")[0] == name)
    # The levels column is written as -p values: "p=v1,v2,...:q=w1,w2,...".
    columns = {
        key: [float(Fraction(v)) for v in values.split(",")]
        for key, values in (group.split("=") for group in row.split("\t")[2].split(":"))
    }
    count = len(next(iter(columns.values())))
    shown = [{k: v[i] for k, v in columns.items()} for i in range(count)]
    received: list[dict[str, float]] = []
    original = REGISTRY[name]

    def recording(image, rng, **params):
        received.append(params)
        return original.function(image, rng, **params)

    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(original, function=recording))
    image = photo(size=224)  # the reference size: scaling changes nothing either way
    for level in range(1, len(shown) + 1):
        apply(name, image, level, np.random.default_rng(0), scale_to_input=True)
        apply(name, image, level, np.random.default_rng(0), scale_to_input=False)
    assert len(received) == 2 * len(shown)
    for index, params in enumerate(received):
        assert params == pytest.approx(shown[index // 2], rel=1e-3), index // 2 + 1


def strength(name: str, original: np.ndarray, changed: np.ndarray) -> float:
    """How far `changed` is from `original` (see CORRELATION_STRENGTH)."""
    if name in CORRELATION_STRENGTH:
        a = original.astype(float).ravel()
        b = changed.astype(float).ravel()
        return 1.0 - float(np.corrcoef(a, b)[0, 1])
    return float(np.abs(changed.astype(float) - original).mean())


@pytest.mark.parametrize("name", NAMES)
def test_higher_level_moves_pixels_further_on_average(name):
    """Strength, averaged over photographs and seeds, grows with the level."""
    photos = [photo(seed, size=224) for seed in range(6)]  # the reference size
    seeds = 1 if name in DETERMINISTIC else 4  # random ones: average out the draw

    def mean_strength(level: int) -> float:
        values = [
            strength(name, im, apply(name, im, level, derive_rng(s, str(i), name, level, 0)))
            for s in range(seeds)
            for i, im in enumerate(photos)
        ]
        return float(np.mean(values))

    strengths = [mean_strength(level) for level in range(1, 6)]
    assert strengths[0] > 0
    assert strengths[-1] > strengths[0]
    for lower, (a, b) in enumerate(zip(strengths, strengths[1:]), start=1):
        if (name, lower) not in NOT_MONOTONE:
            assert b >= a * 0.95, (lower, strengths)


# Per-pixel corruptions (noise, JPEG blocks, pixelate's factor) are not size-aware by
# definition; every other ImageNet-C corruption is, through pixel_params or by drawing
# its pattern relative to the image. Known exception: glass_blur moves whole pixels,
# and a walk step's variance d(d+1)/3 does not grow as d^2, so a 3x larger image is
# shuffled a third less at distance 1 (level 1 loses 5 dB less on these smooth images).
SIZE_AWARE = sorted(
    set(SUITES["imagenet-c-all"])
    - {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"}
    - {"jpeg_compression", "pixelate", "glass_blur"}
)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(float) - b) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-10))


@pytest.mark.parametrize("name", SIZE_AWARE)
def test_scaled_parameters_give_a_comparable_degradation_at_three_times_the_size(name):
    """With scale_to_input, a 672 px enlargement loses as many dB of PSNR as the original."""
    for level in (1, 3, 5):
        gaps = []
        for i in range(2):
            small = photo(i, size=224)
            large = cv2.resize(small, (672, 672), interpolation=cv2.INTER_CUBIC)
            enlarged = apply(name, large, level, derive_rng(0, str(i), name, level, 0))
            direct = apply(name, small, level, derive_rng(0, str(i), name, level, 0))
            gaps.append(psnr(large, enlarged) - psnr(small, direct))
        assert abs(float(np.mean(gaps))) <= 2.0, (level, gaps)


@pytest.mark.parametrize("name", SUITES["imagenet-c-all"])
def test_large_images_need_only_a_few_full_size_float_copies(name):
    """Peak Python-side allocation stays under four float32 copies of the image."""
    image = cv2.resize(photo(size=224), (1600, 1200), interpolation=cv2.INTER_CUBIC)
    tracemalloc.start()
    try:
        out = apply(name, image, 5, derive_rng(0, "big.png", name, 5, 0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == image.shape and out.dtype == np.uint8
    assert peak < 16 * image.nbytes, peak / image.nbytes


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
    assert len(SUITES["imagenet-c"]) == 15 and len(set(SUITES["imagenet-c"])) == 15
    assert SUITES["imagenet-c-all"][:15] == SUITES["imagenet-c"]
    extra = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    assert SUITES["imagenet-c-all"][15:] == extra
    assert set(SUITES["imagenet-c-all"]) <= set(REGISTRY)


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


def test_get_suggests_the_closest_name_else_lists_the_known_ones():
    with pytest.raises(ConfigError) as typo:
        get("contrastt")
    assert str(typo.value) == "unknown perturbation 'contrastt'; did you mean contrast?"
    with pytest.raises(ConfigError, match="unknown perturbation 'xyz'; known: block_occlusion, "):
        get("xyz")
