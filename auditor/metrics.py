"""RA, RR, flip rate, intervals and AUC as `spec/metrics.md` defines them. Pure numpy.

Arrays: `clean` is N x K probabilities, `perturbed` is R x N x K (R repeats), `labels`
is N class indices or None. Worst-of-R: a sample counts as robust only if every repeat
keeps its decision correct (RA) and its probability change within b (RR).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

Z95 = 1.959963984540054  # two-sided 95% normal quantile
CURVE_TOLERANCES = np.round(np.arange(0.0, 0.5001, 0.01), 2)
DIGITS = 6  # reported precision; keeps results stable across batch sizes and platforms
# delta <= b is tested with this slack: 0.53 - 0.5 must count as within b = 0.03.
FLOAT_SLACK = 1e-9

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
    """Return the ROC AUC of `scores` (Mann-Whitney, ties counted half); None if one class."""
    n_pos = int(positives.sum())
    n_neg = len(positives) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties so that equal scores count one half.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    u = ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0
    return rounded(u / (n_pos * n_neg))


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
        "delta_quantiles": {
            "p50": rounded(np.quantile(worst, 0.5)),
            "p90": rounded(np.quantile(worst, 0.9)),
            "max": rounded(worst.max()),
        },
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
            entry["mean_shift"] = rounded(float(shift.mean()))
        out[name] = entry
    return out


def area_under(start: float, values: Sequence[float]) -> float:
    """Area under the curve (level 0 = `start`, then `values`), x scaled to [0, 1]."""
    ys = np.asarray([start, *values], dtype=np.float64)
    xs = np.linspace(0.0, 1.0, len(ys))
    return rounded(float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs) / 2.0)))


def rounded(value: float) -> float:
    """Round a reported figure to DIGITS decimals."""
    return round(float(value), DIGITS)
