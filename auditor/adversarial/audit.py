"""`square_linf` as an audit perturbation: registration, the per-shard run, its figures.

The search needs the model, so the engine does not send it through the per-image
pipeline: for each group of scored samples it runs two searches per level, batched
over the group, with `Model.predict` as the score function:

- "flip" (targets: labels, or clean decisions for unlabelled data) -> its best point;
- "delta" (targets: the clean probabilities) -> its best point.

Both points count as the level's two repeats, so every metric is the worst over the
points found: RA (a sample is robust only if neither point changes its decision) is
set by the flip search, RR and the delta quantiles (largest change) by the delta
search, and the flip rate by whichever flipped. Each (sample, level, objective) draws
from its own generator, so results depend neither on batching, workers nor shards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from auditor import seeds
from auditor.adversarial.counts import OBJECTIVES, SearchCounts
from auditor.adversarial.square import Outcome, square_linf, threat_model
from auditor.errors import ConfigError
from auditor.perturbations.epsilon import EPS_LADDER
from auditor.perturbations.registry import Image, perturbation

NAME = "square_linf"
FAMILY = "adversarial"


@perturbation(NAME, family=FAMILY, levels={"eps": EPS_LADDER}, needs_model=True)
def square_linf_perturbation(image: Image, rng: np.random.Generator, *, eps: float) -> Image:
    """Square Attack (black-box, model outputs only): the worst point of the L-inf ball found."""
    raise ConfigError(
        f"{NAME} searches with the model: run it through `auditor check -p {NAME}`, "
        f"not through `apply`"
    )


def search_level(
    model: Any,
    images: Sequence[Image],
    keys: Sequence[str],
    clean: np.ndarray,
    targets: np.ndarray,
    eps: float,
    level: int,
    seed: int,
    queries: int,
    threshold: float,
) -> tuple[np.ndarray, dict[str, list[Outcome]]]:
    """Run both searches for one level on a group; return 2 x N x K probs and outcomes."""
    found: dict[str, list[Outcome]] = {}
    for objective in OBJECTIVES:
        rngs = [seeds.derive_rng(seed, k, f"{NAME}:{objective}", level, 0) for k in keys]
        found[objective] = square_linf(
            model.predict,
            images,
            targets if objective == "flip" else clean,
            eps,
            rngs,
            objective=objective,
            queries=queries,
            threshold=threshold,
            positive=model.positive_index(),
            clean_probs=clean if objective == "flip" else None,
        )
    probs = np.stack([np.stack([o.probs for o in found[obj]]) for obj in OBJECTIVES])
    return probs.reshape(2, len(images), clean.shape[1]), found


def describe(
    queries: int,
    counts: dict[str, list[dict[str, SearchCounts]]],
    levels: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """The results' `adversarial` section: per perturbation and level, both objectives."""
    return {
        "queries": queries,
        "threat_model": threat_model(queries),
        "metrics": "RA from the flip search; RR, delta quantiles from the delta search; "
        "each metric is the worst over the points both searches found",
        "perturbations": {
            name: [
                {
                    "level": li,
                    "params": dict(levels[name][li - 1]),
                    **{obj: c[obj].finish() for obj in OBJECTIVES},
                }  # fmt: skip
                for li, c in enumerate(per_level, start=1)
            ]
            for name, per_level in counts.items()
        },
    }
