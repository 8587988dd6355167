"""What the adversarial search maximizes: leave the decision (RA) or move the output (RR).

Losses are computed from the normalized probabilities that `Model.predict` gives;
larger is better for the attacker.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor.metrics import decide

Probs = NDArray[np.float64]

# Output changes below this are float noise (the same image scored in another batch
# can differ by ~1e-7); reports round to 6 digits.
NOISE = 1e-6
LOSSES = ("logit", "prob")


@dataclass(frozen=True)
class Objective:
    """What the search maximizes for each sample, and when it has succeeded.

    `losses(probs, rows)` gives the value to maximize for the rows' samples;
    `succeeded(probs, rows, losses)` whether each one meets the goal.
    """

    losses: Callable[[Probs, NDArray[np.int64]], NDArray[np.float64]]
    succeeded: Callable[[Probs, NDArray[np.int64], NDArray[np.float64]], NDArray[np.bool_]]
    stops_on_success: bool
    reference: Probs | None = None  # delta: the clean probabilities
    noise: float = NOISE


def flip_objective(
    labels: NDArray[Any], threshold: float, positive: int | None, loss: str = "logit"
) -> Objective:
    """Untargeted: push each sample's decision away from its label `labels[i]`.

    The loss is a margin, positive once the decision has left the label: for argmax
    models max_{k != y} s_k - s_y, for binary models decided by `threshold` on column
    `positive` the signed distance of the positive score past the threshold. With
    `loss` "logit" s = log p (for a softmax model the logit margin of the paper, and it
    keeps its resolution when probabilities saturate); with "prob" s = p.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
    y_all = np.asarray(labels, np.int64)
    cut = float(np.clip(threshold, 1e-12, 1 - 1e-12))

    def scale(p: Probs) -> Probs:
        return np.log(np.maximum(p, 1e-300)) if loss == "logit" else p

    def losses(probs: Probs, rows: NDArray[np.int64]) -> NDArray[np.float64]:
        y = y_all[rows]
        if len(y) and (y.min() < 0 or y.max() >= probs.shape[1]):
            raise ValueError(f"flip targets must be class indices 0..{probs.shape[1] - 1}")
        if positive is not None and probs.shape[1] == 2:
            own, other = probs[:, positive], probs[:, 1 - positive]
            if loss == "logit":  # log-odds of the positive class past logit(threshold)
                past = scale(own) - scale(other) - math.log(cut / (1 - cut))
            else:
                past = own - cut
            return np.where(y == positive, -past, past)
        index = np.arange(len(y))
        scores = scale(probs)
        own = scores[index, y]
        scores = scores.copy()
        scores[index, y] = -np.inf
        return scores.max(axis=1) - own

    def succeeded(
        probs: Probs, rows: NDArray[np.int64], _: NDArray[np.float64]
    ) -> NDArray[np.bool_]:
        return decide(probs, threshold, positive) != y_all[rows]

    return Objective(losses, succeeded, stops_on_success=True)


def delta_objective(clean: Probs, norm: str = "linf", goal: float | None = None) -> Objective:
    """Maximize the change of the probability vector from `clean` (RR's delta).

    Success means a change above `goal` (None: above float noise); only with a `goal`
    does the search stop early, since RR at every tolerance wants the largest delta.
    """
    if norm not in ("linf", "l1"):
        raise ValueError(f"the delta objective supports linf and l1, not {norm!r}")
    reference = two_columns(np.asarray(clean, np.float64))
    bar = NOISE if goal is None else goal

    def losses(probs: Probs, rows: NDArray[np.int64]) -> NDArray[np.float64]:
        diff = np.abs(probs - reference[rows])
        out: NDArray[np.float64] = diff.max(axis=1) if norm == "linf" else diff.sum(axis=1)
        return out

    def succeeded(
        probs: Probs, rows: NDArray[np.int64], values: NDArray[np.float64]
    ) -> NDArray[np.bool_]:
        return values > bar

    return Objective(losses, succeeded, stops_on_success=goal is not None, reference=reference)


def two_columns(probs: Probs) -> Probs:
    """Expand a one-column sigmoid output p to (1 - p, p), as `Model.predict` does."""
    probs = probs.reshape(len(probs), -1)
    return np.concatenate([1 - probs, probs], axis=1) if probs.shape[1] == 1 else probs
