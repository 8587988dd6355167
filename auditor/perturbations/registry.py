"""The perturbation registry: image-to-image functions, suites, `-p` specs and `apply`.

A perturbation is a pure function `f(image, rng, **params) -> image` on uint8 RGB
H x W x 3 arrays, registered with its five-level parameter table and the range each
parameter accepts by `@perturbation`. A pixel-sized parameter is also at most the
image's diagonal: checked when it is applied, and before an audit for the 224 px
reference image when such parameters scale with the image.
Built-ins and plugins register the same way; CLI choices come from these dicts.
Searches that query the model are another kind, with a registry of their own
(`auditor.adversarial.registry`); level tables and specs are shared (`levels`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor.errors import ConfigError, SampleError
from auditor.perturbations.levels import (
    Params,
    Range,
    RangeSpec,
    as_ranges,
    check_ranges,
    format_value,
    level_table,
    parse_levels,
    reject_duplicates,
    split_spec,
    unknown_name,
)

Image = NDArray[np.uint8]

REFERENCE_SIZE = 224
"""Pixel-sized parameters are tuned for images whose short side is this many pixels."""
APPLIED_DIGITS = 6
"""Decimals of applied parameter values and scale factors in the results."""
REFERENCE_DIAGONAL = REFERENCE_SIZE * math.sqrt(2)
"""The diagonal of the square reference image: the most a scaled pixel-sized parameter
may be, since every image's diagonal is at least its short side times sqrt(2)."""


# f(image, rng, **params) -> image; each function names its own keyword parameters.
PerturbationFunction = Callable[..., Image]
# () -> facts about how a perturbation ran on this machine (the codec a build offered)
ImplementationProbe = Callable[[], Mapping[str, str]]


@dataclass(frozen=True)
class Perturbation:
    """A registered perturbation: its function, family and default level table."""

    name: str
    family: str
    function: PerturbationFunction
    levels: tuple[Params, ...]
    pixel_params: tuple[str, ...] = ()
    integer_params: tuple[str, ...] = ()
    probe: ImplementationProbe | None = None
    ranges: Mapping[str, Range] = field(default_factory=dict)  # what each parameter accepts

    def implementation(self) -> dict[str, str]:
        """Facts about how this perturbation runs here (e.g. `{"codec": "av1"}`); often empty."""
        return dict(self.probe()) if self.probe is not None else {}

    @property
    def description(self) -> str:
        """The first line of the function's docstring, shown in listings and reports."""
        doc = (self.function.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.levels[0])


@dataclass(frozen=True)
class PlannedPerturbation:
    """A perturbation with the parameter values of each level this audit runs."""

    perturbation: Perturbation
    levels: tuple[Params, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.perturbation.name


REGISTRY: dict[str, Perturbation] = {}
SUITES: dict[str, tuple[str, ...]] = {}


def perturbation(
    name: str,
    family: str,
    levels: Mapping[str, Sequence[float]],
    pixel_params: Sequence[str] = (),
    integer_params: Sequence[str] = (),
    implementation: ImplementationProbe | None = None,
    ranges: Mapping[str, RangeSpec] | None = None,
) -> Callable[[PerturbationFunction], PerturbationFunction]:
    """Register the decorated function under `name` with its per-level `levels` table.

    Built-ins and plugins both use this decorator. `pixel_params` are scaled with the
    image (see `scaled_params`) and are at most its diagonal, `integer_params` are shown
    and passed as ints, `ranges` give the values each parameter accepts (a `Range`, or
    (low, high) inclusive; `-p` values outside are refused before an audit), and
    `implementation` returns facts for the report, such as the codec that was used.
    A name can be registered once: a plugin cannot silently replace a built-in.
    """
    table = level_table(name, levels)
    accepted = as_ranges(name, ranges or {}, table)

    def register(function: PerturbationFunction) -> PerturbationFunction:
        known = REGISTRY.get(name)
        if known is not None and known.function is not function:
            where = known.function.__module__
            raise ValueError(f"perturbation '{name}' is already registered by {where}")
        REGISTRY[name] = Perturbation(
            name,
            family,
            function,
            table,
            tuple(pixel_params),
            tuple(integer_params),
            implementation,
            accepted,
        )
        return function

    return register


def get(name: str) -> Perturbation:
    """Return the registered perturbation `name`, or fail naming the closest known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise unknown_name("perturbation", name, sorted(REGISTRY)) from None


def resolve_params(p: Perturbation, level: int | float | Mapping[str, float]) -> Params:
    """Turn a severity 1..N, an explicit value or a params mapping into `p`'s params."""
    if isinstance(level, Mapping):
        unknown = set(level) - set(p.param_names)
        if unknown:
            raise ConfigError(f"{p.name}: unknown parameter(s) {sorted(unknown)}")
        return {**p.levels[0], **level}
    if isinstance(level, (int, np.integer)) and not isinstance(level, bool):
        if not 1 <= level <= len(p.levels):
            raise ConfigError(f"{p.name}: level must be 1..{len(p.levels)}, got {level}")
        return dict(p.levels[int(level) - 1])
    if len(p.param_names) != 1:
        raise ConfigError(f"{p.name}: has several parameters; pass them as a mapping")
    return {p.param_names[0]: float(level)}


def scale_factor(short_side: float) -> float:
    """The factor pixel-sized parameters are scaled by on an image of this short side."""
    return short_side / REFERENCE_SIZE


def scaled_params(p: Perturbation, params: Params, shape: tuple[int, ...]) -> Params:
    """Scale `p`'s pixel-sized parameters by the image's short side / REFERENCE_SIZE."""
    factor = scale_factor(min(shape[0], shape[1]))
    return {k: (v * factor if k in p.pixel_params else v) for k, v in params.items()}


def applied_params(
    pixel_params: Sequence[str], params: Mapping[str, Any], sides: Mapping[int, int] | None
) -> dict[str, Any]:
    """The parameters a level applied, given how many images had each short side (`sides`).

    Returns `{"params": {name: value}, "scale": {"min", "median", "max"} | None}`. A
    parameter that `scaled_params` scaled by a factor that varied over the images has
    `{"min", "median", "max"}` over the images instead of one value; the others keep
    their stated value. `scale` is None where nothing was scaled (`sides` None: scaling
    off; no pixel-sized parameter; no image counted).
    """
    scaled = [k for k in params if k in pixel_params]
    if not sides or not scaled:
        return {"params": dict(params), "scale": None}
    low, median, high = (scale_factor(side) for side in _min_median_max(sides))
    out: dict[str, Any] = dict(params)
    for name in scaled:
        values = sorted(float(params[name]) * f for f in (low, median, high))
        first, middle, last = (round(v, APPLIED_DIGITS) for v in values)
        out[name] = first if first == last else {"min": first, "median": middle, "max": last}
    scale = {"min": low, "median": median, "max": high}
    return {"params": out, "scale": {k: round(v, APPLIED_DIGITS) for k, v in scale.items()}}


def _min_median_max(counts: Mapping[int, int]) -> tuple[float, float, float]:
    """Min, median (numpy's: the mean of the two middle ones for an even count) and max."""
    keys = sorted(k for k, c in counts.items() if c > 0)
    total = sum(counts[k] for k in keys)

    def at(rank: int) -> int:
        seen = 0
        for key in keys:
            seen += counts[key]
            if seen > rank:
                return key
        raise ValueError(f"rank {rank} beyond {total} counts")

    median = (at((total - 1) // 2) + at(total // 2)) / 2
    return float(keys[0]), median, float(keys[-1])


def apply(
    name: str,
    image: Image,
    level: int | float | Mapping[str, float],
    rng: np.random.Generator,
    scale_to_input: bool = True,
) -> Image:
    """Return `image` perturbed by the registered perturbation `name`.

    `image` is a uint8 RGB array of shape H x W x 3 (any size from 8 px up); it is not
    modified, and the result has the same shape and dtype. `level` is one of:

    - a severity `1..5` (an `int`): that row of the perturbation's level table;
    - an explicit value (a `float`) of its only parameter, e.g. `0.1` for `linf_noise`;
    - a mapping of parameters, e.g. `{"quality": 30}`; missing ones come from level 1.

    All randomness comes from `rng`, so the same generator state gives the same bytes.
    With `scale_to_input` (the default), pixel-sized parameters such as a blur sigma
    are scaled by the image's short side / REFERENCE_SIZE. Unknown names and bad
    levels raise `ConfigError`; an image of the wrong type raises `ValueError`.
    Example: `apply("webp_compression", image, 3, np.random.default_rng(0))`.
    """
    p = get(name)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 image, got {image.dtype} {image.shape}")
    params = resolve_params(p, level)
    check_ranges(p, params, name)
    if scale_to_input:
        params = scaled_params(p, params, image.shape)
    check_within(p, params, math.hypot(image.shape[0], image.shape[1]))
    out = p.function(image, rng, **params)
    assert out.shape == image.shape and out.dtype == np.uint8, f"{name} broke the image"
    return out


def check_within(p: Perturbation, params: Params, diagonal: float) -> None:
    """Refuse pixel-sized parameters larger than the image's `diagonal` (`SampleError`:
    a larger image could take them)."""
    for key in p.pixel_params:
        if params[key] > diagonal:
            raise SampleError(
                f"{p.name}: {key} {format_value(params[key])} px is more than this image's "
                f"diagonal ({diagonal:.0f} px); it must be at most the diagonal"
            )


def check_reference(p: Perturbation, table: Sequence[Params]) -> None:
    """Refuse pixel-sized parameters over the reference image's diagonal (`ConfigError`):
    scaled with the image, they would be over every image's."""
    for level in table:
        for key in p.pixel_params:
            if level[key] > REFERENCE_DIAGONAL:
                raise ConfigError(
                    f"{p.name}: {key} {format_value(level[key])} px is more than the diagonal "
                    f"of the {REFERENCE_SIZE} px reference image ({REFERENCE_DIAGONAL:.1f} px), "
                    "so of every image once scaled to it; give at most that"
                )


def parse_spec(spec: str) -> PlannedPerturbation:
    """Parse `name` or `name:param=v1,v2,...[:param2=...]` into a planned perturbation."""
    name, groups = split_spec(spec)
    p = get(name)
    return PlannedPerturbation(p, parse_levels(p, spec, groups))


def suite_members(suite: str | None) -> tuple[str, ...]:
    """The perturbations of `suite` (None: the default, `quick`), or fail naming close suites."""
    name = suite or "quick"
    if name not in SUITES:
        raise unknown_name("suite", name, sorted(SUITES))
    return SUITES[name]


def plan(specs: Sequence[str], suite: str | None) -> list[PlannedPerturbation]:
    """Return what to run: the `-p` specs if any were given, else the `suite`."""
    if specs:
        planned = [parse_spec(s) for s in specs]
    else:
        planned = [PlannedPerturbation(get(n), get(n).levels) for n in suite_members(suite)]
    reject_duplicates([pp.name for pp in planned])
    return planned


def describe_levels(planned: PlannedPerturbation) -> list[dict[str, Any]]:
    """Return the per-level parameters as plain dicts for results and listings."""
    return [dict(lv) for lv in planned.levels]
