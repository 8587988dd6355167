"""Additive noise drawn as whole-pixel offsets: exact tables, exact draws, right shape."""

from __future__ import annotations

import math

import numpy as np
import pytest

from auditor.perturbations import offsets


def _probabilities(table: offsets.OffsetTable) -> np.ndarray:
    """P(offset = k) for k = -255..255, from the table's thresholds."""
    edges = np.concatenate([[0], table.thresholds.astype(np.float64), [2.0**32]])
    return np.diff(edges) / 2.0**32


@pytest.mark.parametrize("sigma", [0.08 * 255, 0.38 * 255, 0.7, 400.0])
def test_gaussian_table_is_the_rounded_normal(sigma):
    p = _probabilities(offsets.gaussian(sigma))
    k = np.arange(-255, 256)
    cdf = np.array([0.5 * math.erfc(-x / (sigma * math.sqrt(2))) for x in k + 0.5])
    expected = np.diff(np.concatenate([[0.0], cdf[:-1], [1.0]]))  # +-255 take the tails
    assert np.abs(p - expected).max() < 2**-31


@pytest.mark.parametrize("radius", [1.0, 2.55, 8.0, 16.0])
def test_uniform_table_is_the_rounded_uniform(radius):
    p = _probabilities(offsets.uniform(radius))
    reach = round(radius)
    assert p[255 - reach - 1] == 0 and p[255 + reach + 1] == 0
    inside = 1 / (2 * radius)
    assert p[255] == pytest.approx(inside, abs=1e-9)
    assert p[255 + reach] == pytest.approx(inside * (radius - reach + 0.5), abs=1e-9)


def test_zero_spread_draws_zero_offsets():
    rng = np.random.default_rng(0)
    for table in (offsets.gaussian(0.0), offsets.uniform(0.0)):
        assert not offsets.draw(rng, (50, 7), table).any()


@pytest.mark.parametrize("table", [offsets.gaussian(20.4), offsets.uniform(2.55)])
def test_draw_is_the_inverse_cdf_of_each_32_bit_draw(table):
    """Each offset is searchsorted(thresholds, u) for u = its 16 bits, then 16 more bits:
    drawn for the straddling buckets, and any at all for the others."""
    assert (table.fast == offsets._UNSURE).any()  # the second 16 bits are exercised
    shape = (300, 301, 3)
    rng = np.random.default_rng(5)
    high = rng.integers(0, 2**16, size=shape, dtype=np.uint16).astype(np.uint64)
    low = np.random.default_rng(6).integers(0, 2**16, size=shape, dtype=np.uint64)
    unsure = table.fast[high] == offsets._UNSURE
    low[unsure] = rng.integers(0, 2**16, size=int(unsure.sum()), dtype=np.uint64)
    expected = np.searchsorted(table.thresholds, (high << np.uint64(16)) | low, "right") - 255
    got = offsets.draw(np.random.default_rng(5), shape, table)
    assert got.dtype == np.int16 and np.array_equal(got, expected)


def test_draws_match_rounded_float_noise_in_distribution():
    sigma = 0.12 * 255
    drawn = offsets.draw(np.random.default_rng(1), (1_000_000,), offsets.gaussian(sigma))
    floats = np.rint(np.random.default_rng(2).standard_normal(1_000_000) * sigma)
    for k in (0, 10, 30, 60, 90):
        a, b = (np.count_nonzero(x == k) for x in (drawn, floats))
        assert abs(a - b) < 6 * math.sqrt(a + b) + 3
    assert drawn.std() == pytest.approx(floats.std(), rel=0.005)


def test_add_rounds_and_clips():
    image = np.array([[0, 128, 255]], np.uint8)
    moved = offsets.add(image, np.array([[-3, 200, 1]], np.int16))
    assert moved.tolist() == [[0, 255, 255]] and moved.dtype == np.uint8
