"""The perturbation registry: level tables, suites, spec parsing and `apply`.

A perturbation is a pure function `f(image, rng, **params) -> image` on uint8 RGB
H x W x 3 arrays, registered with its five-level parameter table by `@perturbation`.
Built-ins and plugins register the same way; CLI choices come from these dicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor.errors import ConfigError

Image = NDArray[np.uint8]
Params = dict[str, float]

REFERENCE_SIZE = 224
"""Pixel-sized parameters are tuned for images whose short side is this many pixels."""


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
    # A search that queries the model (family "adversarial"): the engine runs it on
    # batches of samples, never through the per-image `apply`.
    needs_model: bool = False

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
    needs_model: bool = False,
) -> Callable[[PerturbationFunction], PerturbationFunction]:
    """Register the decorated function under `name` with its per-level `levels` table.

    Built-ins and plugins both use this decorator. `pixel_params` are scaled with the
    image (see `scaled_params`), `integer_params` are shown and passed as ints, and
    `implementation` returns facts for the report, such as the codec that was used;
    `needs_model` marks a search that the engine runs with the model (`square_linf`).
    A name can be registered once: a plugin cannot silently replace a built-in.
    """
    lengths = {len(values) for values in levels.values()}
    if len(lengths) != 1:
        raise ValueError(f"{name}: every parameter needs the same number of levels")
    count = lengths.pop()
    table = tuple({key: values[i] for key, values in levels.items()} for i in range(count))

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
            needs_model,
        )
        return function

    return register


def get(name: str) -> Perturbation:
    """Return the registered perturbation `name`, or fail listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigError(f"unknown perturbation '{name}'; known: {known}") from None


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


def scaled_params(p: Perturbation, params: Params, shape: tuple[int, ...]) -> Params:
    """Scale `p`'s pixel-sized parameters by the image's short side / REFERENCE_SIZE."""
    factor = min(shape[0], shape[1]) / REFERENCE_SIZE
    return {k: (v * factor if k in p.pixel_params else v) for k, v in params.items()}


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
    if scale_to_input:
        params = scaled_params(p, params, image.shape)
    out = p.function(image, rng, **params)
    assert out.shape == image.shape and out.dtype == np.uint8, f"{name} broke the image"
    return out


def parse_spec(spec: str) -> PlannedPerturbation:
    """Parse `name` or `name:param=v1,v2,...[:param2=...]` into a planned perturbation."""
    name, *groups = spec.strip().split(":")
    p = get(name.strip())
    if not groups:
        return PlannedPerturbation(p, p.levels)
    overrides: dict[str, list[float]] = {}
    for group in groups:
        key, sep, values = group.partition("=")
        key = key.strip()
        if not sep or key not in p.param_names:
            raise ConfigError(
                f"bad perturbation spec '{spec}': expected {name}:PARAM=v1,v2,... "
                f"with PARAM one of {', '.join(p.param_names)}"
            )
        overrides[key] = [_parse_value(v, spec) for v in values.split(",") if v.strip()]
    counts = {len(v) for v in overrides.values()}
    if len(counts) != 1 or 0 in counts:
        raise ConfigError(f"bad perturbation spec '{spec}': give the same number of values")
    count = counts.pop()
    missing = [k for k in p.param_names if k not in overrides]
    if missing and count != len(p.levels):
        raise ConfigError(
            f"bad perturbation spec '{spec}': with {count} levels give every parameter "
            f"({', '.join(p.param_names)})"
        )
    levels = tuple(
        {k: overrides[k][i] if k in overrides else p.levels[i][k] for k in p.param_names}
        for i in range(count)
    )
    return PlannedPerturbation(p, tuple(_typed(p, lv) for lv in levels))


def _typed(p: Perturbation, params: Params) -> Params:
    """Keep integer parameters (a JPEG quality) as ints so reports show `30`, not `30.0`."""
    return {k: (int(round(v)) if k in p.integer_params else v) for k, v in params.items()}


def _parse_value(text: str, spec: str) -> float:
    try:
        value = float(Fraction(text.strip()))  # accepts 0.03, 8/255 and 30
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"bad perturbation spec '{spec}': '{text}' is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"bad perturbation spec '{spec}': '{text}' is not finite")
    return value


def plan(specs: Sequence[str], suite: str | None) -> list[PlannedPerturbation]:
    """Return what to run: the `-p` specs if any were given, else the `suite`."""
    if specs:
        planned = [parse_spec(s) for s in specs]
    else:
        name = suite or "quick"
        if name not in SUITES:
            raise ConfigError(f"unknown suite '{name}'; known: {', '.join(sorted(SUITES))}")
        planned = [PlannedPerturbation(get(n), get(n).levels) for n in SUITES[name]]
    names = [pp.name for pp in planned]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"perturbation given twice: {', '.join(duplicates)}")
    return planned


def level_spec(p: Perturbation) -> str:
    """The level table as the tail of a `-p` spec: `quality=25,18,15,10,7[:param2=...]`."""
    return ":".join(
        f"{key}=" + ",".join(format_value(lv[key]) for lv in p.levels) for key in p.param_names
    )


def format_value(value: float) -> str:
    """Show `value` short and exact: `0.2`, `30`, and `8/255` where decimals would round."""
    short = f"{value:.4g}"
    pixels = value * 255
    if float(short) != value and abs(pixels - round(pixels)) < 1e-9:
        return f"{round(pixels)}/255"
    return short


def describe_levels(planned: PlannedPerturbation) -> list[dict[str, Any]]:
    """Return the per-level parameters as plain dicts for results and listings."""
    return [dict(lv) for lv in planned.levels]
