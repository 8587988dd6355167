"""Level tables and `-p` specs, shared by both kinds an audit plans: perturbations and searches.

A level table is a tuple of parameter dicts, mildest first. `-p NAME:PARAM=v1,v2,...`
replaces it: `split_spec` cuts a spec into the name and its groups, and `parse_levels`
turns the groups into the levels of whichever registered entry the name found, each
value checked against the `Range` its entry declares for the parameter.
`unknown_name` is the one error for a name no registry holds (a perturbation, a suite,
a metric): it suggests the closest names rather than listing them all.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from auditor.errors import ConfigError

Params = dict[str, float]


@dataclass(frozen=True)
class Range:
    """The values a parameter accepts: `low` to `high`, either end excluded or unbounded."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False  # `low` itself is refused
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self) -> str:
        """`0..100`, `(0, 1]`, `> 0` or `>= 0`: the range as messages show it."""
        low, high = _bound(self.low), _bound(self.high)
        if math.isinf(self.high):
            return f"{'>' if self.low_open else '>='} {low}"
        if math.isinf(self.low):
            return f"{'<' if self.high_open else '<='} {high}"
        if not (self.low_open or self.high_open):
            return f"{low}..{high}"
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)


def _bound(value: float) -> str:
    """A range's end as messages show it: `10000`, not `1e+04`."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else format_value(value)


# How a registration declares a range: a `Range`, or (low, high) for the closed interval.
RangeSpec = Range | tuple[float, float]


def as_ranges(
    name: str, ranges: Mapping[str, RangeSpec], table: Sequence[Params]
) -> dict[str, Range]:
    """`ranges` as `Range`s, checked: each names a parameter, and every level lies inside."""
    out = {k: r if isinstance(r, Range) else Range(*r) for k, r in ranges.items()}
    for key, allowed in out.items():
        if key not in table[0]:
            raise ValueError(f"{name}: a range for '{key}', which is no parameter")
        for level in table:
            if level[key] not in allowed:
                raise ValueError(
                    f"{name}: its level value {key}={level[key]} is outside {allowed.describe()}"
                )
    return out


class Leveled(Protocol):
    """A registered entry with a level table: a perturbation or a search."""

    @property
    def name(self) -> str: ...

    @property
    def levels(self) -> tuple[Params, ...]: ...

    @property
    def integer_params(self) -> tuple[str, ...]: ...

    @property
    def param_names(self) -> tuple[str, ...]: ...

    @property
    def ranges(self) -> Mapping[str, Range]: ...


class Entry(Leveled, Protocol):
    """What plans and listings read of a registered perturbation or search."""

    @property
    def family(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def pixel_params(self) -> tuple[str, ...]: ...

    def implementation(self) -> dict[str, str]: ...


def level_table(name: str, levels: Mapping[str, Sequence[float]]) -> tuple[Params, ...]:
    """Turn `{param: per-level values}` into one params dict per level, checking the lengths."""
    lengths = {len(values) for values in levels.values()}
    if len(lengths) != 1:
        raise ValueError(f"{name}: every parameter needs the same number of levels")
    count = lengths.pop()
    return tuple({key: values[i] for key, values in levels.items()} for i in range(count))


def split_spec(spec: str) -> tuple[str, list[str]]:
    """Cut `name[:param=v1,v2,...[:param2=...]]` into the name and its `param=...` groups."""
    name, *groups = spec.strip().split(":")
    return name.strip(), groups


def parse_levels(entry: Leveled, spec: str, groups: Sequence[str]) -> tuple[Params, ...]:
    """The levels `groups` (from `split_spec(spec)`) give `entry`; none: its own table."""
    if not groups:
        return entry.levels
    names = entry.param_names
    overrides: dict[str, list[float]] = {}
    for group in groups:
        key, sep, values = group.partition("=")
        key = key.strip()
        if not sep or key not in names:
            raise ConfigError(
                f"bad perturbation spec '{spec}': expected {entry.name}:PARAM=v1,v2,... "
                f"with PARAM one of {', '.join(names)}"
            )
        overrides[key] = [_parse_value(v, spec) for v in values.split(",") if v.strip()]
    counts = {len(v) for v in overrides.values()}
    if len(counts) != 1 or 0 in counts:
        raise ConfigError(f"bad perturbation spec '{spec}': give the same number of values")
    count = counts.pop()
    missing = [k for k in names if k not in overrides]
    if missing and count != len(entry.levels):
        raise ConfigError(
            f"bad perturbation spec '{spec}': with {count} levels give every parameter "
            f"({', '.join(names)})"
        )
    levels = tuple(
        {k: overrides[k][i] if k in overrides else entry.levels[i][k] for k in names}
        for i in range(count)
    )
    typed = tuple(_typed(entry, lv) for lv in levels)
    for level in typed:
        check_ranges(entry, level, f"bad perturbation spec '{spec}'")
    return typed


def check_ranges(entry: Leveled, params: Mapping[str, float], where: str) -> None:
    """Refuse a parameter outside the range `entry` declares for it (`ConfigError`)."""
    for key, value in params.items():
        allowed = entry.ranges.get(key)
        if allowed is not None and value not in allowed:
            raise ConfigError(
                f"{where}: {key} must be {allowed.describe()}, got {format_value(value)}"
            )


def _typed(entry: Leveled, params: Params) -> Params:
    """Keep integer parameters (a JPEG quality) as ints so reports show `30`, not `30.0`."""
    return {k: (int(round(v)) if k in entry.integer_params else v) for k, v in params.items()}


def _parse_value(text: str, spec: str) -> float:
    try:
        value = float(Fraction(text.strip()))  # accepts 0.03, 8/255 and 30
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"bad perturbation spec '{spec}': '{text}' is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"bad perturbation spec '{spec}': '{text}' is not finite")
    return value


def reject_duplicates(names: Sequence[str]) -> None:
    """Refuse a plan that names one perturbation or search twice."""
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"perturbation given twice: {', '.join(duplicates)}")


def level_spec(entry: Leveled) -> str:
    """The level table as the tail of a `-p` spec: `quality=25,18,15,10,7[:param2=...]`."""
    return ":".join(
        f"{key}=" + ",".join(format_value(lv[key]) for lv in entry.levels)
        for key in entry.param_names
    )


def format_value(value: float) -> str:
    """Show `value` short and exact: `0.2`, `30`, and `8/255` where decimals would round."""
    short = f"{value:.4g}"
    pixels = value * 255
    if float(short) != value and abs(pixels - round(pixels)) < 1e-9:
        return f"{round(pixels)}/255"
    return short


MAX_SUGGESTIONS = 8
"""At most this many names follow "did you mean"; the list stays one short line."""


def unknown_name(
    kind: str, name: str, known: Iterable[str], listing: str | None = None
) -> ConfigError:
    """The error for `name`, no known `kind`: the closest `known` names, else `listing`.

    `listing` (default: `known: ` and every known name) is shown only when no name is
    close, so a typo gets one suggestion rather than the whole registry.
    """
    known = list(known)
    hint = did_you_mean(name, known) or listing or f"known: {', '.join(known)}"
    return ConfigError(f"unknown {kind} '{name}'; {hint}")


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """`did you mean A, B or C?` for the `known` names close to `name`; '' if none is."""
    close = _close(name, known) + _containing(name, known)
    names = list(dict.fromkeys(close))[:MAX_SUGGESTIONS]
    if not names:
        return ""
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"did you mean {listed}?"


def _close(name: str, known: Sequence[str]) -> list[str]:
    """The spellings nearest `name` (a typo), best first, all about as near as the best."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    ratios = [difflib.SequenceMatcher(None, name, other).ratio() for other in close]
    # `gausian_noise` is 0.96 from gaussian_noise and 0.70 from linf_noise: one answer
    return [other for other, ratio in zip(close, ratios) if ratio >= ratios[0] - 0.1]


def _containing(name: str, known: Sequence[str]) -> list[str]:
    """The names that contain `name` (`jpeg` -> jpeg_compression, jpeg_double), sorted."""
    part = name.strip().lower()
    return sorted(other for other in known if len(part) >= 3 and part in other.lower())
