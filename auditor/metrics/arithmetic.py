"""RA, RR, flip rate, intervals and AUC as `spec/metrics.md` defines them. Pure numpy.

Arrays: `clean` is N x K probabilities, `perturbed` is R x N x K (R repeats), `labels`
is N class indices or None. Worst-of-R: a sample counts as robust only if every repeat
keeps its decision correct (RA) and its probability change within b (RR).

What is not a count is computed from values at the reported precision (DIGITS
decimals): delta quantiles from counts of quantized deltas, AUC from counts of
quantized scores, mean shifts from exact sums. The same helpers serve the streaming
accumulators in `auditor.engine.stats`, so a run split into shards merges to the same figures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

Z95 = 1.959963984540054  # two-sided 95% normal quantile
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


def roc_auc(scores: Probs, positives: NDArray[np.bool_]) -> float | None:
    """Return the ROC AUC of `scores` (Mann-Whitney, ties counted half); None if one class.

    Scores are taken at the reported precision (see `quantize`).
    """
    q = quantize(scores)
    return auc_from_counts(value_counts(q[positives]), value_counts(q[~positives]))


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


def clean_metrics(
    clean: Probs,
    labels: Labels | None,
    threshold: float,
    positive: int | None,
    class_names: Sequence[str],
) -> dict[str, Any]:
    """Return clean accuracy with its interval, per-class accuracy and AUC."""
    n = len(clean)
    if labels is None:
        return {"n": n, "accuracy": None, "accuracy_ci": None, "per_class": {}, "auc": None}
    correct = decide(clean, threshold, positive) == labels
    per_class = {}
    for index, name in enumerate(class_names):
        mask = labels == index
        if mask.any():
            k, m = int(correct[mask].sum()), int(mask.sum())
            per_class[name] = {"n": m, "accuracy": rounded(k / m), "accuracy_ci": wilson(k, m)}
    auc = roc_auc(clean[:, positive], labels == positive) if positive is not None else None
    k = int(correct.sum())
    return {
        "n": n,
        "accuracy": rounded(k / n),
        "accuracy_ci": wilson(k, n),
        "per_class": per_class,
        "auc": auc,
    }


def level_metrics(
    clean: Probs,
    perturbed: Probs,
    labels: Labels | None,
    *,
    tolerances: Sequence[float],
    tolerance_keys: Sequence[str],
    threshold: float,
    positive: int | None,
    class_names: Sequence[str],
    delta_norm: str,
    clean_accuracy: float | None,
) -> dict[str, Any]:
    """Return the metrics of one perturbation level (the LevelResult fields it owns)."""
    n = clean.shape[0]
    worst = deltas(clean, perturbed, delta_norm, labels).max(axis=0)
    base = decide(clean, threshold, positive)
    decisions = decide(perturbed, threshold, positive)
    flips = int((decisions != base[None]).any(axis=0).sum())
    within = {key: worst <= b + FLOAT_SLACK for b, key in zip(tolerances, tolerance_keys)}
    out: dict[str, Any] = {
        "n": n,
        "rr": {key: rounded(float(mask.mean())) for key, mask in within.items()},
        "rr_ci": {key: wilson(int(mask.sum()), n) for key, mask in within.items()},
        "flip_rate": rounded(flips / n),
        "flip_rate_ci": wilson(flips, n),
        "delta_quantiles": delta_quantiles(value_counts(quantize(worst))),
        "rr_curve": [
            [float(b), rounded(float(np.mean(worst <= b + FLOAT_SLACK)))] for b in CURVE_TOLERANCES
        ],
        "ra": None,
        "ra_ci": None,
        "ra_drop": None,
        "per_class": {},
        "auc": None,
    }
    if labels is not None:
        robust = (decisions == labels[None]).all(axis=0)
        k = int(robust.sum())
        out.update(ra=rounded(k / n), ra_ci=wilson(k, n))
        out["ra_drop"] = rounded(k / n - clean_accuracy) if clean_accuracy is not None else None
        out["per_class"] = _per_class(clean, perturbed, labels, robust, positive, class_names)
        if positive is not None:
            aucs = [roc_auc(rep[:, positive], labels == positive) for rep in perturbed]
            out["auc"] = min((a for a in aucs if a is not None), default=None)
    return out


def _per_class(
    clean: Probs,
    perturbed: Probs,
    labels: Labels,
    robust: NDArray[np.bool_],
    positive: int | None,
    class_names: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """RA per true class and, for binary models, the mean shift of p(positive)."""
    out = {}
    for index, name in enumerate(class_names):
        mask = labels == index
        if not mask.any():
            continue
        k, m = int(robust[mask].sum()), int(mask.sum())
        entry: dict[str, Any] = {"n": m, "ra": rounded(k / m), "ra_ci": wilson(k, m)}
        if positive is not None:
            shift = perturbed[:, mask, positive] - clean[None, mask, positive]
            entry["mean_shift"] = rounded(exact_mean(exact_total(shift), shift.size))
        out[name] = entry
    return out


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
