"""The audit's plan: every (perturbation or search, level) it runs, built once from the config.

`build_plan(config)` resolves the `-p` specs (or the suite) against both registries:
perturbations (image-to-image functions, sampled `repeats` times per level) and
searches (which query the model; their points count as the level's draws). The plan
is plain data, so it travels with a shard's partial results. Everything that needs
the levels reads them here: the pipeline (the sampled draws, in tensor-row order),
the searches, the statistics (the results' order), the work units of progress bars,
thumbnails, most-moved samples, and the `config.perturbations` description.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from auditor.adversarial.registry import SEARCHES
from auditor.config import AuditConfig
from auditor.perturbations.levels import (
    Entry,
    Params,
    parse_levels,
    reject_duplicates,
    split_spec,
    unknown_name,
)
from auditor.perturbations.registry import REGISTRY, check_reference, suite_members

PERTURBATION = "perturbation"  # sampled: an image-to-image function, `repeats` draws a level
SEARCH = "search"  # queries the model; its points are the level's draws

T = TypeVar("T")


@dataclass(frozen=True)
class Draw:
    """One perturbed copy of a sample: perturbation, level (1-based), params, repeat."""

    perturbation: str
    level: int
    params: dict[str, float]
    repeat: int


@dataclass(frozen=True)
class PlannedLevel:
    """One level of a perturbation or search, at its place in the results."""

    index: int  # position in the results' levels (and in `AuditStats.levels`)
    kind: str  # PERTURBATION or SEARCH
    name: str
    family: str
    level: int  # 1-based
    params: Params
    draws: int  # repeats of a perturbation; the points of a search


@dataclass(frozen=True)
class AuditPlan:
    """What an audit runs, level by level, in the order of its results."""

    levels: tuple[PlannedLevel, ...]
    draws: tuple[Draw, ...]  # the perturbations' draws of a sample, in tensor-row order
    described: tuple[dict[str, Any], ...]  # `config.perturbations`, one entry per name
    search_settings: tuple[str, ...]  # the `AuditConfig` fields the planned searches read

    @property
    def sampled(self) -> tuple[PlannedLevel, ...]:
        """The perturbations' levels, in the order of their tensor rows."""
        return tuple(lv for lv in self.levels if lv.kind == PERTURBATION)

    @property
    def searches(self) -> tuple[PlannedLevel, ...]:
        """The searches' levels, in plan order."""
        return tuple(lv for lv in self.levels if lv.kind == SEARCH)

    @property
    def units_per_sample(self) -> int:
        """Work units of one sample: its clean row and each sampled draw (what progress counts)."""
        return 1 + len(self.draws)

    def names(self, kind: str) -> list[str]:
        """The planned names of `kind` (PERTURBATION or SEARCH), in plan order."""
        return list(dict.fromkeys(lv.name for lv in self.levels if lv.kind == kind))

    def levels_of(self, name: str) -> tuple[PlannedLevel, ...]:
        """The planned levels of `name`, mildest first."""
        return tuple(lv for lv in self.levels if lv.name == name)

    def draw(self, name: str, level: int, repeat: int) -> Draw:
        """The sampled draw of perturbation `name` at `level` (1-based) and `repeat`."""
        return _draw(self.levels_of(name)[level - 1], repeat)

    def in_order(self, sampled: Sequence[T], searched: Sequence[T]) -> list[T]:
        """Per-level values of both kinds (each in plan order) merged into the results' order."""
        plain: Iterator[T] = iter(sampled)
        found: Iterator[T] = iter(searched)
        return [next(found) if lv.kind == SEARCH else next(plain) for lv in self.levels]

    def describe(self) -> list[dict[str, Any]]:
        """The results' `config.perturbations`: name, family, description, levels, facts."""
        return [{**d, "levels": [dict(lv) for lv in d["levels"]]} for d in self.described]


@dataclass(frozen=True)
class _Chosen:
    """One `-p` spec or suite member, resolved: its kind, entry, levels and draws a level."""

    kind: str
    entry: Entry
    table: tuple[Params, ...]
    draws: int
    settings: tuple[str, ...] = ()  # a search's: the `AuditConfig` fields it reads


def build_plan(config: AuditConfig) -> AuditPlan:
    """The plan of `config`: its `-p` specs, else its suite's members; each name once."""
    specs = config.perturbations or suite_members(config.suite)
    chosen = [_resolve(spec, config.repeats) for spec in specs]
    reject_duplicates([c.entry.name for c in chosen])
    if config.scale_to_input:  # unscaled, each image's own diagonal is checked on it
        for c in chosen:
            if c.kind == PERTURBATION:
                check_reference(REGISTRY[c.entry.name], c.table)
    levels: list[PlannedLevel] = []
    for c in chosen:
        levels += [
            PlannedLevel(
                len(levels) + i, c.kind, c.entry.name, c.entry.family, i + 1, dict(p), c.draws
            )
            for i, p in enumerate(c.table)
        ]
    settings = [s for c in chosen for s in c.settings]
    return AuditPlan(
        levels=tuple(levels),
        draws=tuple(
            _draw(lv, r) for lv in levels if lv.kind == PERTURBATION for r in range(lv.draws)
        ),
        described=tuple(_describe(c) for c in chosen),
        search_settings=tuple(dict.fromkeys(settings)),
    )


def _resolve(spec: str, repeats: int) -> _Chosen:
    """Find a spec's name among the perturbations, then the searches; parse its levels."""
    name, groups = split_spec(spec)
    if name in REGISTRY:
        p = REGISTRY[name]
        return _Chosen(PERTURBATION, p, parse_levels(p, spec, groups), repeats)
    if name in SEARCHES:
        s = SEARCHES[name]
        return _Chosen(SEARCH, s, parse_levels(s, spec, groups), s.points, s.settings)
    perturbations, searches = sorted(REGISTRY), sorted(SEARCHES)
    listing = f"perturbations: {', '.join(perturbations)}; searches: {', '.join(searches)}"
    raise unknown_name("perturbation", name, [*perturbations, *searches], listing)


def _draw(level: PlannedLevel, repeat: int) -> Draw:
    return Draw(level.name, level.level, dict(level.params), repeat)


def _describe(chosen: _Chosen) -> dict[str, Any]:
    entry = chosen.entry
    return {
        "name": entry.name,
        "family": entry.family,
        "description": entry.description,
        "pixel_params": list(entry.pixel_params),
        "levels": [dict(lv) for lv in chosen.table],
        # What really ran where it depends on the installed libraries (a codec).
        "implementation": entry.implementation(),
    }
