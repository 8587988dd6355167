"""`square_linf` as an audit search: its registry entry, one level's run, its figures.

The engine runs it per level on each group of scored samples, batched over the group,
with the model's score function: two searches per level,

- "flip" (targets: labels, or clean decisions for unlabelled data) -> its best point;
- "delta" (targets: the clean probabilities) -> its best point.

Both points count as the level's two draws, so every metric is the worst over the
points found: RA (a sample is robust only if neither point changes its decision) is
set by the flip search, RR and the delta quantiles (largest change) by the delta
search, and the flip rate by whichever flipped. Each (sample, level, objective) draws
from its own generator, so results depend neither on batching, workers nor shards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from auditor import seeds
from auditor.adversarial.counts import OBJECTIVES, SearchCounts
from auditor.adversarial.registry import Found, Group, Scorer, SearchLevel, Tally, search
from auditor.adversarial.square import (
    Outcome,
    initial_fraction,
    pixel_steps,
    square_linf,
    threat_model,
)
from auditor.perturbations.epsilon import EPS_LADDER

NAME = "square_linf"
SUMMARY = (
    "Square Attack (black-box, model outputs only): the worst point of the L-inf ball "
    "found; squares start at p_init 0.05 of the image up to eps 4/255, 0.05 (k/4)^2 at "
    "k/255, 0.8 from 16/255 on, halved on the paper's schedule."
)


def describe(settings: Mapping[str, Any], tallies: Sequence[Tally]) -> dict[str, Any]:
    """The results' `adversarial` section: per level, the figures of both objectives."""
    queries = int(settings["queries"])
    return {
        "queries": queries,
        "threat_model": threat_model(queries),
        "metrics": "RA from the flip search; RR, delta quantiles from the delta search; "
        "each metric is the worst over the points both searches found",
        "perturbations": {
            NAME: [
                {
                    "level": t.level,
                    "params": dict(t.params),
                    "p_init": initial_fraction(pixel_steps(float(t.params["eps"]))),
                    **{obj: t.counts[obj].finish() for obj in OBJECTIVES},
                }  # fmt: skip
                for t in tallies
            ]
        },
    }


@search(
    NAME,
    levels={"eps": EPS_LADDER},
    points=len(OBJECTIVES),
    settings=("queries",),
    describe=describe,
    ranges={"eps": (0, 1)},
)
def run(scorer: Scorer, group: Group, level: SearchLevel) -> Found:
    """Square Attack (black-box): the worst point of the L-inf ball found (see SUMMARY)."""
    found: dict[str, list[Outcome]] = {}
    for objective in OBJECTIVES:
        rngs = [
            seeds.derive_rng(level.seed, k, f"{NAME}:{objective}", level.level, 0)
            for k in group.keys
        ]
        found[objective] = square_linf(
            scorer.predict,
            group.images,
            group.targets if objective == "flip" else group.clean,
            float(level.params["eps"]),
            rngs,
            objective=objective,
            queries=int(level.settings["queries"]),
            threshold=scorer.threshold,
            positive=scorer.positive,
            clean_probs=group.clean if objective == "flip" else None,
        )
    probs = np.stack([np.stack([o.probs for o in found[obj]]) for obj in OBJECTIVES])
    counts = {obj: SearchCounts() for obj in OBJECTIVES}
    for objective, outcomes in found.items():
        counts[objective].add(outcomes)
    return Found(probs.reshape(len(OBJECTIVES), len(group.images), group.clean.shape[1]), counts)


run.__doc__ = SUMMARY  # the listing's description: the docstring's only line
