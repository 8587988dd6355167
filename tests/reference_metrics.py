"""Reference implementations of the level and clean metrics, on whole arrays.

Production computes these figures by streaming (`auditor.engine.stats`); the tests check
the streamed figures against these direct array versions of `spec/metrics.md`, and these
against hand-computed values. Worst-of-R: a sample counts as robust only if every repeat
keeps its decision correct (RA) and its probability change within b (RR).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor.metrics import (
    CURVE_TOLERANCES,
    FLOAT_SLACK,
    auc_from_counts,
    decide,
    delta_quantiles,
    deltas,
    exact_mean,
    exact_total,
    quantize,
    rounded,
    value_counts,
    wilson,
)

Probs = NDArray[np.float64]
Labels = NDArray[np.int64]


def roc_auc(scores: Probs, positives: NDArray[np.bool_]) -> float | None:
    """Return the ROC AUC of `scores` (Mann-Whitney, ties counted half); None if one class.

    Scores are taken at the reported precision (see `quantize`).
    """
    q = quantize(scores)
    return auc_from_counts(value_counts(q[positives]), value_counts(q[~positives]))


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
