"""The attacker's objectives in torch, on the twin's log-probabilities (1 x K, K >= 2).

They mirror `objectives` (which judges the real pipeline's points): the flip margin is
`flip_objective`'s "logit" loss, positive once the decision has left the target.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from numpy.typing import NDArray

Tensor = torch.Tensor
Loss = Callable[[Tensor], Tensor]


def flip_margin(target: int, threshold: float, positive: int | None) -> Loss:
    """Margin past the decision boundary (> 0: flipped), as `flip_objective` computes it."""
    cut = float(np.clip(threshold, 1e-12, 1 - 1e-12))
    offset = math.log(cut / (1 - cut))

    def margin(log_probs: Tensor) -> Tensor:
        row = log_probs[0]
        if positive is not None and row.shape[0] == 2:
            past = row[positive] - row[1 - positive] - offset
            return -past if target == positive else past
        others = torch.cat([row[:target], row[target + 1 :]])
        return torch.max(others) - row[target]

    return margin


def flip_cross_entropy(target: int, threshold: float, positive: int | None) -> Loss:
    """Cross-entropy of the target (to maximize): -log p_y, or softplus of a binary margin.

    For a binary model decided at `threshold`, softplus(margin) is the cross-entropy of
    the decision shifted to the threshold (-log p_y at 0.5), so it points where the
    decision flips.
    """
    margin = flip_margin(target, threshold, positive)

    def loss(log_probs: Tensor) -> Tensor:
        if positive is not None and log_probs.shape[1] == 2:
            return torch.nn.functional.softplus(margin(log_probs))
        return -log_probs[0, target]

    return loss


def delta_surrogate(clean: NDArray[np.float64], tie_break: float) -> Loss:
    """The largest change of any probability, plus a little "away from the clean class".

    The change has no gradient at the clean image itself; the small cross-entropy of the
    clean top class gives the first step a direction and rarely matters after it.
    """
    reference = torch.as_tensor(np.asarray(clean, np.float64))
    top = int(np.argmax(clean))

    def loss(log_probs: Tensor) -> Tensor:
        probs = torch.exp(log_probs[0])
        change = torch.max(torch.abs(probs - reference.to(probs.device)))
        return change - tie_break * log_probs[0, top]

    return loss
