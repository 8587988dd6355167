"""The DeeperForensics ladder, the laundering chain and the epsilon ladder.

Properties (hypothesis) of every perturbation in those modules, plus the facts each
one promises: exact ladders, the codecs of `video_compression` and `h265_compression`
(their stand-ins without PyAV: tests/test_codecs.py has the rest), bounded memory on a
12 Mpx photo and the same bytes whatever OpenCV's thread count.
"""

from __future__ import annotations

import dataclasses
import tracemalloc
import warnings

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from auditor.adversarial.registry import SEARCHES
from auditor.cli import main
from auditor.perturbations import REGISTRY, SUITES, apply, offsets, parse_spec, video, video_codecs
from auditor.perturbations.levels import level_spec
from auditor.perturbations.pixels import BAND_PIXELS
from auditor.seeds import derive_rng

MODULES = {"deepfake", "laundering", "epsilon", "video"}
MINE = sorted(n for n, p in REGISTRY.items() if p.function.__module__.split(".")[-1] in MODULES)
RANDOM = {"block_occlusion", "ycbcr_noise", "linf_noise", "linf_sign"}
DEEPFAKE_LADDER = (
    "color_saturation",
    "color_contrast",
    "block_occlusion",
    "ycbcr_noise",
    "gaussian_blur_kernel",
    "resize_roundtrip",
    "video_compression",
)
LAUNDERING = ("webp_compression", "jpeg_double", "downscale", "rotation", "crop_rescale", "gamma")

images = st.tuples(st.integers(8, 40), st.integers(8, 40)).flatmap(
    lambda hw: arrays(np.uint8, (hw[0], hw[1], 3))
)
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def photo(seed: int = 0, size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """Smooth texture at a few scales plus fine grain: closer to a photo than noise."""
    rng = np.random.default_rng(seed)
    h, w = size
    layers = [
        cv2.resize(rng.uniform(0, 255, (c, c, 3)).astype(np.float32), (w, h), cv2.INTER_CUBIC)
        for c in (3, 8, 24)
    ]
    grain = rng.normal(0, 4, (h, w, 3))
    return np.clip(np.rint(sum(layers) / len(layers) + grain), 0, 255).astype(np.uint8)


def change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).mean())


def test_every_perturbation_of_the_issue_is_registered():
    expected = {*DEEPFAKE_LADDER, "h265_compression", *LAUNDERING, "linf_noise", "linf_sign"}
    assert set(MINE) == expected
    assert {REGISTRY[n].family for n in (*DEEPFAKE_LADDER, "h265_compression")} == {"deepfake"}
    assert {REGISTRY[n].family for n in LAUNDERING} == {"laundering"}
    assert REGISTRY["linf_noise"].family == REGISTRY["linf_sign"].family == "epsilon"


def test_deeperforensics_tables_are_the_papers():
    tables = {name: [list(lv.values()) for lv in REGISTRY[name].levels] for name in DEEPFAKE_LADDER}
    assert tables["color_saturation"] == [[0.4], [0.3], [0.2], [0.1], [0.0]]
    assert tables["color_contrast"] == [[0.85], [0.725], [0.6], [0.475], [0.35]]
    assert tables["block_occlusion"] == [[16], [32], [48], [64], [80]]
    assert tables["ycbcr_noise"] == [[0.001], [0.002], [0.005], [0.01], [0.05]]
    assert tables["gaussian_blur_kernel"] == [[7], [9], [13], [17], [21]]
    assert tables["resize_roundtrip"] == [[2], [3], [4], [5], [6]]
    assert tables["video_compression"] == [[30], [32], [35], [38], [40]]
    # H.265: the same ladder plus libx265's documented offset (CRF 28 ~ x264's 23)
    assert [lv["crf"] for lv in REGISTRY["h265_compression"].levels] == [35, 37, 40, 43, 45]


def test_suites():
    assert SUITES["deepfake"] == (*DEEPFAKE_LADDER, "webp_compression", "jpeg_double")
    searches = set(SEARCHES)  # run only when named
    assert searches == {"square_linf", "fgsm", "pgd_linf", "apgd_linf", "cw_l2"}
    assert SUITES["all"] == tuple(sorted(set(REGISTRY) - searches))
    assert SUITES["quick"] == (
        "gaussian_noise",
        "gaussian_blur",
        "jpeg_compression",
        "brightness",
        "contrast",
        "pixelate",
        "linf_noise",
    )


@pytest.mark.parametrize("name", MINE)
@FAST
@given(image=images, level=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_shape_dtype_kept_same_seed_same_bytes_input_untouched(name, image, level, seed):
    before = image.copy()
    a = apply(name, image, level, np.random.default_rng(seed))
    b = apply(name, image, level, np.random.default_rng(seed))
    assert a.shape == image.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.array_equal(image, before)


@pytest.mark.parametrize("name", MINE)
def test_different_seeds_differ_only_for_random_perturbations(name):
    image = photo()
    a = apply(name, image, 3, derive_rng(0, "a.png", name, 3, 0))
    b = apply(name, image, 3, derive_rng(1, "a.png", name, 3, 0))
    assert np.array_equal(a, b) == (name not in RANDOM)


@pytest.mark.parametrize("name", MINE)
def test_strength_grows_with_level(name):
    """Mean absolute change over a few photographs rises strictly from level to level."""
    photos = [photo(seed) for seed in range(4)]
    strengths = [
        np.mean(
            [
                change(apply(name, im, level, derive_rng(0, str(i), name, level, 0)), im)
                for i, im in enumerate(photos)
            ]
        )
        for level in range(1, 6)
    ]
    assert strengths[0] > 0
    assert all(b > a for a, b in zip(strengths, strengths[1:])), strengths


@pytest.mark.parametrize("name", MINE)
@FAST
@given(seed=st.integers(0, 2**16), h=st.integers(32, 128), w=st.integers(32, 128))
def test_the_top_level_moves_any_photo_further_than_the_first(name, seed, h, w):
    image = photo(seed, size=(h, w))
    first = apply(name, image, 1, np.random.default_rng(seed))
    last = apply(name, image, 5, np.random.default_rng(seed))
    assert change(last, image) > change(first, image)


@pytest.mark.parametrize("name", MINE)
@pytest.mark.parametrize("level", [1, 3, 5])
def test_parameters_listed_are_those_applied(name, level, monkeypatch):
    """The function receives exactly the listed row, and the listing parses back to it."""
    p = REGISTRY[name]
    received: list[dict] = []

    def recorder(image, rng, **params):
        received.append(params)
        return p.function(image, rng, **params)

    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(p, function=recorder))
    apply(name, photo(), level, np.random.default_rng(0))  # 224 px: scaling is 1
    assert received == [p.levels[level - 1]]
    assert parse_spec(f"{name}:{level_spec(p)}").levels == p.levels


@pytest.mark.parametrize("name", MINE)
def test_same_bytes_whatever_opencvs_thread_count(name):
    image = photo(3, size=(480, 640))
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        single = apply(name, image, 4, np.random.default_rng(7))
        cv2.setNumThreads(8)
        many = apply(name, image, 4, np.random.default_rng(7))
    finally:
        cv2.setNumThreads(before)
    assert np.array_equal(single, many)


def test_a_12_megapixel_photo_stays_within_a_few_copies_of_itself():
    big = cv2.resize(photo(1, size=(300, 400)), (4000, 3000), interpolation=cv2.INTER_CUBIC)
    for name in MINE:
        tracemalloc.start()
        try:
            out = apply(name, big, 5, np.random.default_rng(0))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert out.shape == big.shape and out.dtype == np.uint8
        # the float versions would need 4 bytes per channel value per copy, several copies
        assert peak < 4 * big.nbytes, (name, peak / big.nbytes)


@pytest.mark.parametrize(
    ("name", "codec", "encoder"),
    [("video_compression", "h264", "libx264"), ("h265_compression", "hevc", "libx265")],
)
def test_video_codecs_really_encode_and_name_their_encoder(name, codec, encoder):
    facts = REGISTRY[name].implementation()
    assert facts["codec"] == codec and facts["encoder"] == encoder
    assert facts["encoder_version"] != "unknown" and "via PyAV" in facts["library"]
    assert "preset medium" in facts["settings"] and "yuv420p" in facts["settings"]
    image = photo()
    out = apply(name, image, 1, np.random.default_rng(0))
    assert 0 < change(out, image) < 20
    # a lower CRF keeps more
    mild = apply(name, image, {"crf": 10}, np.random.default_rng(0))
    assert change(mild, image) < change(out, image)


@pytest.fixture
def no_pyav(monkeypatch):
    """PyAV unloadable for this test; what was probed with or without it is forgotten."""
    caches = (video_codecs.unavailable, video_codecs.facts, video_codecs.warn_fallback)
    monkeypatch.setattr(video_codecs, "load_av", lambda: None)
    for cached in caches:
        cached.cache_clear()
    yield
    monkeypatch.undo()
    for cached in caches:
        cached.cache_clear()


@pytest.mark.parametrize("name", ["video_compression", "h265_compression"])
def test_without_pyav_a_stand_in_runs_with_one_warning_and_is_named(name, no_pyav):
    with pytest.warns(video_codecs.CodecWarning, match=f"{name}: PyAV .* cannot be imported"):
        facts = REGISTRY[name].implementation()
    assert facts["codec"] in {"av1", "mjpeg"} and facts["container"] in {"avif", "avi"}
    assert facts["note"].startswith("PyAV (the av package) cannot be imported: stand-in")
    image = photo()
    with warnings.catch_warnings():
        warnings.simplefilter("error", video_codecs.CodecWarning)  # warned once, not again
        out = apply(name, image, 1, np.random.default_rng(0))
    assert 0 < change(out, image) < 20
    assert video.crf_to_quality(30) == 41 and video.crf_to_quality(51) == 0


def test_the_motion_jpeg_stand_in_keeps_odd_sizes(monkeypatch, no_pyav):
    mjpeg = next(c for c in video.CANDIDATES if c.name == "mjpeg")
    assert video._works(mjpeg)
    monkeypatch.setattr(video, "fallback_codec", lambda: mjpeg)
    with pytest.warns(video_codecs.CodecWarning, match="Motion JPEG"):
        assert REGISTRY["video_compression"].implementation()["container"] == "avi"
    image = photo(size=(37, 51))  # odd sizes survive the AVI round trip
    out = apply("video_compression", image, 5, np.random.default_rng(0))
    assert out.shape == image.shape and change(out, image) > 0


def test_zero_strength_changes_nothing():
    image = photo(size=(61, 83))
    neutral = {
        "color_saturation": {"factor": 1.0},
        "color_contrast": {"factor": 1.0},
        "block_occlusion": {"count": 0},
        "ycbcr_noise": {"variance": 0.0},
        "gaussian_blur_kernel": {"kernel": 1},
        "resize_roundtrip": {"factor": 1.0},
        "downscale": {"factor": 1.0},
        "rotation": {"degrees": 0.0},
        "crop_rescale": {"keep": 1.0},
        "gamma": {"gamma": 1.0},
        "linf_noise": {"eps": 0.0},
        "linf_sign": {"eps": 0.0},
    }
    for name, params in neutral.items():
        out = apply(name, image, params, np.random.default_rng(0))
        assert np.array_equal(out, image), name


def test_colour_ladders_are_exact():
    image = photo()
    grey = apply("color_saturation", image, 5, np.random.default_rng(0))
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    luma = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(grey[..., 0] - luma).max() <= 0.5 + 1e-6
    darker = apply("color_contrast", image, 3, np.random.default_rng(0))
    assert np.array_equal(darker, np.rint(image * 0.6).astype(np.uint8))
    assert np.array_equal(
        apply("gamma", image, {"gamma": 2.0}, np.random.default_rng(0)),
        np.rint((image / 255.0) ** 2 * 255).astype(np.uint8),
    )


def test_block_occlusion_paints_grey_blocks_that_scale_with_the_image():
    white = np.full((512, 768, 3), 255, np.uint8)  # short side 512: blocks of 16 px
    out = apply("block_occlusion", white, {"count": 10}, np.random.default_rng(0))
    painted = np.all(out == 128, axis=2)
    assert painted.sum() <= 10 * 16 * 16 and painted.sum() >= 16 * 16
    assert np.all(out[~painted] == 255)


@pytest.mark.parametrize("eps", [1 / 255, 8 / 255, 0.1, 0.2, 0.3])
def test_epsilon_ladder_reaches_the_papers_range_and_beyond(eps):
    grey = np.full((64, 48, 3), 128, np.uint8)  # far from 0 and 255 up to eps 0.5
    k = round(eps * 255)
    sign = apply("linf_sign", grey, eps, np.random.default_rng(0)).astype(int) - 128
    assert set(np.unique(sign)) == {-k, k}
    noise = apply("linf_noise", grey, {"eps": eps}, np.random.default_rng(0)).astype(int) - 128
    assert np.abs(noise).max() <= k and np.abs(noise).max() >= k - 1
    assert parse_spec(f"linf_sign:eps={eps}").levels[0]["eps"] == eps


def test_linf_noise_draws_band_by_band_top_first():
    """A large image takes its draws band by band, in order, from the one generator."""
    image = photo(2, size=(700, 1600))  # 1.1 Mpx: two bands
    out = apply("linf_noise", image, 8 / 255, np.random.default_rng(3))
    rng, table = np.random.default_rng(3), offsets.uniform(8.0)
    rows = BAND_PIXELS // 1600
    expected = [
        offsets.add(s, offsets.draw(rng, s.shape, table)) for s in (image[:rows], image[rows:])
    ]
    assert np.array_equal(out, np.concatenate(expected))
    assert np.abs(out.astype(int) - image).max() == 8


def test_listing_is_aligned_with_a_header_and_shows_the_codec():
    result = CliRunner().invoke(
        main, ["perturbations", "--suite", "deepfake"], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "family", "description;"]
    assert [line.split()[0] for line in lines[1:] if line[0] != " "] == list(SUITES["deepfake"])
    column = lines[0].index("description")
    assert all(line[column - 2 : column] == "  " for line in lines)
    assert all(line[column] != " " for line in lines if not line.startswith(" " * 8))
    codec = REGISTRY["video_compression"].implementation()["codec"]
    block = result.stdout.split("\nvideo_compression ")[1].split("\nwebp_compression")[0]
    assert f"[codec: {codec}," in " ".join(block.split())  # wrapped to the terminal
    assert "first=95,90,85,80,75:" in result.stdout and "second=75,60,50,40,30" in result.stdout
    eps = CliRunner().invoke(main, ["perturbations", "--tsv"]).stdout
    assert "linf_sign\tepsilon\teps=1/255,2/255,4/255,8/255,16/255\t" in eps
