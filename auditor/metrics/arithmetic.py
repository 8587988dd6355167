"""Metric arithmetic: Wilson intervals, decisions, deltas, exact sums and quantized counts.

`spec/metrics.md` defines RA, RR, flip rate and AUC; `auditor.metrics.catalogue` names
each reported metric once (label, result fields, interval, direction); the streaming
accumulators in `auditor.engine.stats` compute them with these helpers, so a run split
into shards merges to the same figures. Pure numpy.

Arrays: `clean` is N x K probabilities, `perturbed` is R x N x K (R repeats), `labels`
is N class indices or None. What is not a count is computed from values at the
reported precision (DIGITS decimals): delta quantiles from counts of quantized deltas,
AUC from counts of quantized scores, mean shifts from exact sums.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

from auditor.metrics.catalogue import Z95

CURVE_TOLERANCES = np.round(np.arange(0.0, 0.5001, 0.01), 2)
DIGITS = 6  # reported precision; keeps results stable across batch sizes and platforms
# delta <= b is tested with this slack: 0.53 - 0.5 must count as within b = 0.03.
FLOAT_SLACK = 1e-9
RESOLUTION = 10**DIGITS  # quantization step of deltas and scores: 1 / RESOLUTION
# Every float64 is an integer multiple of 2**-1074, so sums scaled by 2**1074 are exact
# Python integers: they add up to the same total in any order and across shards.
EXACT_SCALE = 2**1074

Probs = NDArray[np.float64]
Labels = NDArray[np.int64]


def wilson(successes: int, n: int) -> list[float] | None:
    """Return the 95% Wilson score interval [low, high] of `successes` out of `n`."""
    if n == 0:
        return None
    p = successes / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2)) / denom
    return [rounded(max(0.0, centre - half)), rounded(min(1.0, centre + half))]


def decide(probs: Probs, threshold: float, positive: int | None) -> NDArray[np.int64]:
    """Return decisions: binary by `threshold` on the positive class, else argmax."""
    if positive is not None and probs.shape[-1] == 2:
        negative = 1 - positive
        return np.where(probs[..., positive] >= threshold, positive, negative).astype(np.int64)
    return np.argmax(probs, axis=-1).astype(np.int64)


def deltas(clean: Probs, perturbed: Probs, norm: str, labels: Labels | None) -> Probs:
    """Return |f(x') - f(x)| per repeat and sample (R x N) in the chosen norm."""
    diff = np.abs(perturbed - clean[None])
    if norm == "linf":
        out: Probs = diff.max(axis=-1)
    elif norm == "l1":
        out = diff.sum(axis=-1)
    elif norm == "true-class":
        if labels is None:
            raise ValueError("the true-class norm needs labels")
        out = np.take_along_axis(diff, labels[None, :, None], axis=-1)[..., 0]
    else:
        raise ValueError(f"unknown delta norm {norm!r}")
    return out


def quantize(values: NDArray[np.float64]) -> NDArray[np.int64]:
    """Return `values` as integer multiples of 1 / RESOLUTION (round half to even)."""
    return np.rint(np.asarray(values, np.float64) * RESOLUTION).astype(np.int64)


def value_counts(quantized: NDArray[np.int64]) -> Counter[int]:
    """Return how often each quantized value occurs."""
    keys, counts = np.unique(quantized, return_counts=True)
    return Counter(dict(zip(keys.tolist(), counts.tolist())))


def auc_from_counts(pos: Mapping[int, int], neg: Mapping[int, int]) -> float | None:
    """ROC AUC from counts of quantized scores of positives and negatives; None if one class."""
    n_pos, n_neg = sum(pos.values()), sum(neg.values())
    if n_pos == 0 or n_neg == 0:
        return None
    twice_u = 0  # 2 U in integers: a tie counts one half
    below = 0
    for key in sorted(set(pos) | set(neg)):
        equal = neg.get(key, 0)
        twice_u += pos.get(key, 0) * (2 * below + equal)
        below += equal
    return rounded(float(Fraction(twice_u, 2 * n_pos * n_neg)))


def quantile_from_counts(counts: Mapping[int, int], q: float) -> float:
    """The `q` quantile (numpy's linear method) of the quantized values counted in `counts`."""
    keys = sorted(counts)
    cumulative = np.cumsum([counts[k] for k in keys])
    n = int(cumulative[-1])
    position = q * (n - 1)
    low = int(np.floor(position))
    gamma = position - low

    def at(rank: int) -> float:
        return keys[int(np.searchsorted(cumulative, rank, side="right"))] / RESOLUTION

    a, b = at(low), at(min(low + 1, n - 1))
    # numpy's _lerp, so that the result equals np.quantile on the expanded values
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def exact_total(values: NDArray[np.float64]) -> int:
    """The exact sum of float `values` in units of 2**-1074 (see EXACT_SCALE)."""
    total = 0
    for value in np.asarray(values, np.float64).ravel().tolist():
        num, den = value.as_integer_ratio()
        total += num * (EXACT_SCALE // den)
    return total


def exact_mean(total: int, count: int) -> float:
    """The correctly rounded mean of values whose `exact_total` is `total`."""
    return float(Fraction(total, EXACT_SCALE * count))


def delta_quantiles(counts: Mapping[int, int]) -> dict[str, float]:
    """Median, p90 and max of the deltas counted (quantized) in `counts`."""
    return {
        "p50": rounded(quantile_from_counts(counts, 0.5)),
        "p90": rounded(quantile_from_counts(counts, 0.9)),
        "max": rounded(max(counts) / RESOLUTION),
    }


def area_under(start: float, values: Sequence[float]) -> float:
    """Area under the curve (level 0 = `start`, then `values`), x scaled to [0, 1]."""
    ys = np.asarray([start, *values], dtype=np.float64)
    xs = np.linspace(0.0, 1.0, len(ys))
    return rounded(float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs) / 2.0)))


def rounded(value: float) -> float:
    """Round a reported figure to DIGITS decimals."""
    return round(float(value), DIGITS)
