"""The search registry: adversarial searches, which query the model, and their protocol.

A search is not an image-to-image function, so it is not a perturbation. The engine
runs it per planned level on a group of scored samples:

- it gets a `Scorer` (the model's score function `predict(list of uint8 RGB images)
  -> N x K probabilities`, the positive class index and the decision threshold), the
  `Group` (images, sample keys, clean probabilities, targets: labels or clean
  decisions) and the `SearchLevel` (level number, parameters, seed, the settings it
  reads, such as `queries`);
- it returns `Found`: per sample the probabilities of the `points` it found, counted
  as that level's draws (every metric is the worst over them), and mergeable counts
  (`SearchCounts` per key) that shards add up exactly;
- `describe` turns the merged counts into the results' `adversarial` section.

Searches register with `@search`, which fills `SEARCHES` (keyed by the name `-p`
takes); `-p NAME:PARAM=...` parses their levels as it does a perturbation's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from auditor.adversarial.counts import SearchCounts
from auditor.adversarial.whitebox import require_torch
from auditor.perturbations.levels import Params, Range, RangeSpec, as_ranges, level_table
from auditor.perturbations.registry import REGISTRY

FAMILY = "adversarial"

Image = NDArray[np.uint8]
Probs = NDArray[np.float64]
LevelCounts = dict[str, SearchCounts]  # mergeable figures of one level, e.g. per objective


@dataclass(frozen=True)
class Scorer:
    """What a search needs from the model."""

    predict: Callable[[Sequence[Image]], Probs]  # uint8 RGB images -> N x K probabilities
    positive: int | None  # the positive class of a binary model decided by `threshold`
    threshold: float
    # the model's `twin.GradientTwin` where a gradient attack is planned (needs torch)
    twin: Any = None


@dataclass(frozen=True)
class Group:
    """The scored samples a search runs on at once."""

    images: Sequence[Image]  # decoded uint8 RGB, before the model's preprocessing
    keys: Sequence[str]  # sample keys: each sample's generators derive from its own
    clean: Probs  # N x K clean probabilities
    targets: NDArray[np.int64]  # labels, or the clean decisions for unlabelled data


@dataclass(frozen=True)
class SearchLevel:
    """One planned level of a search."""

    level: int  # 1-based
    params: Params
    seed: int
    settings: Mapping[str, Any]  # the audit settings the search reads (`Search.settings`)


@dataclass(frozen=True)
class Found:
    """What a search found for a group at one level."""

    probs: NDArray[np.float64]  # points x N x K: the level's draws
    counts: LevelCounts


class Tally(NamedTuple):
    """One level's merged counts, for `describe`."""

    level: int
    params: Params
    counts: LevelCounts


SearchRun = Callable[[Scorer, Group, SearchLevel], Found]
# (settings, every level's tally) -> the results' `adversarial` section for this search
SearchDescribe = Callable[[Mapping[str, Any], Sequence[Tally]], dict[str, Any]]


@dataclass(frozen=True)
class Search:
    """A registered search: how it runs one level, its level table, what it reads."""

    name: str
    family: str
    run: SearchRun
    describe: SearchDescribe
    levels: tuple[Params, ...]
    points: int  # points found per sample and level: the level's draws
    settings: tuple[str, ...] = ()  # `AuditConfig` fields it reads, recorded in `config`
    integer_params: tuple[str, ...] = ()
    needs_twin: bool = False  # a gradient attack: the engine builds the model's twin
    ranges: Mapping[str, Range] = field(default_factory=dict)  # what each parameter accepts

    @property
    def description(self) -> str:
        """The first line of `run`'s docstring, shown in listings and reports."""
        doc = (self.run.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.levels[0])

    @property
    def pixel_params(self) -> tuple[str, ...]:
        """None: a search's parameters are not scaled with the image."""
        return ()

    def implementation(self) -> dict[str, str]:
        """Facts about how it runs here (none yet, as for most perturbations)."""
        return {}

    def check(self) -> None:
        """Refuse, before an audit starts, to run without what it needs (`MissingExtraError`)."""
        if self.needs_twin:
            require_torch(self.name)


SEARCHES: dict[str, Search] = {}


def search(
    name: str,
    levels: Mapping[str, Sequence[float]],
    *,
    points: int,
    describe: SearchDescribe,
    settings: Sequence[str] = (),
    integer_params: Sequence[str] = (),
    family: str = FAMILY,
    needs_twin: bool = False,
    ranges: Mapping[str, RangeSpec] | None = None,
) -> Callable[[SearchRun], SearchRun]:
    """Register the decorated `run` as the search `name` with its per-level `levels` table.

    `points`: the points `run` returns per sample and level; `settings`: the
    `AuditConfig` fields it reads (recorded in the results' config when it is planned);
    `describe`: its part of the results' `adversarial` section; `needs_twin`: a gradient
    attack, which gets the model's gradient twin in `Scorer.twin`; `ranges`: the values
    each parameter accepts, as for a perturbation. A name is registered once, and never
    one a perturbation already has.
    """
    table = level_table(name, levels)
    accepted = as_ranges(name, ranges or {}, table)

    def register(run: SearchRun) -> SearchRun:
        known = SEARCHES.get(name)
        if known is not None and known.run is not run:
            raise ValueError(f"search '{name}' is already registered by {known.run.__module__}")
        if name in REGISTRY:
            raise ValueError(f"search '{name}': a perturbation of that name is registered")
        SEARCHES[name] = Search(
            name,
            family,
            run,
            describe,
            table,
            points,
            tuple(settings),
            tuple(integer_params),
            needs_twin,
            accepted,
        )
        return run

    return register
