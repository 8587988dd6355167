"""The charts of an audit (and of a comparison) as inline SVG: what each one shows.

The drawing itself is `auditor.report.svg`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from auditor.metrics.catalogue import capital, get, measure
from auditor.report.svg import (
    NARROW,
    UNIT_TICKS,
    Axis,
    Panel,
    Series,
    line_chart,
    small_multiples,
)
from auditor.results import AuditResults, LevelResult


def by_perturbation(results: AuditResults) -> dict[str, list[LevelResult]]:
    """Group the level results by perturbation, keeping the audit's order."""
    groups: dict[str, list[LevelResult]] = {}
    for row in results.results:
        groups.setdefault(row.perturbation, []).append(row)
    return groups


def _level_axis(results: AuditResults) -> Axis:
    top = max((row.level for row in results.results), default=1)
    ticks = [(0.0, "clean")] + [(float(level), str(level)) for level in range(1, top + 1)]
    return Axis("level", 0.0, float(max(top, 1)), ticks)


def chance(results: AuditResults) -> float | None:
    """What always answering the largest class scores, for a labelled binary detector.

    The same chance as the findings' (`auditor.verdict.findings`); None otherwise.
    """
    counts = results.data.get("class_counts") or {}
    total = sum(counts.values())
    if results.model.get("task") != "binary" or not results.labelled or not total:
        return None
    return max(counts.values()) / total


def _no_effect(rows: Sequence[LevelResult]) -> frozenset[float]:
    return frozenset(float(r.level) for r in rows if getattr(r, "no_effect", False))


def _ci(ci: Sequence[float] | None) -> tuple[float, float] | None:
    return (float(ci[0]), float(ci[1])) if ci and len(ci) == 2 else None


def _series(
    label: str,
    start: tuple[float | None, Sequence[float] | None],
    rows: Sequence[LevelResult],
    read: Callable[[LevelResult], tuple[float | None, Sequence[float] | None]],
) -> Series:
    """One line from level 0 (`start`: value and interval) through each level's reading."""
    readings = [(0.0, *start)] + [(float(r.level), *read(r)) for r in rows]
    band = [(x, *ci) for x, _, c in readings if (ci := _ci(c)) is not None]
    return Series(label, [(x, v) for x, v, _ in readings], band, _no_effect(rows))


def _no_effect_note(results: AuditResults) -> list[str]:
    if any(getattr(r, "no_effect", False) for r in results.results):
        return ["hollow marker: no pixel changed at that level"]
    return []


def _chance_line(results: AuditResults) -> tuple[float, str] | None:
    value = chance(results)
    return None if value is None else (value, f"chance {value:.2f}")


def headline(results: AuditResults) -> str:
    """The headline chart: RA and RR against level, one panel per perturbation.

    Level 0 is the clean image (clean accuracy; RR 1). Bands are the 95% intervals; the
    dashed line is chance for a binary detector.
    """
    key, ra, rr = results.headline_key, get("ra"), get("rr")
    clean = measure(get("clean_accuracy"), results.clean)
    panels = []
    for name, rows in by_perturbation(results).items():
        lines = []
        if results.labelled:
            lines.append(_series(ra.label, clean, rows, lambda r: measure(ra, r)))
        rr_label = f"{rr.label}(b={key})"
        lines.append(_series(rr_label, (1.0, None), rows, lambda r: measure(rr, r, key)))
        panels.append(Panel(name, lines))
    what = f"{ra.label} and {rr.label}" if results.labelled else rr.label
    return small_multiples(
        "chart-headline",
        f"{what} against level, one panel per perturbation",
        panels,
        _level_axis(results),
        Axis("share of samples", 0.0, 1.0, UNIT_TICKS),
        reference=_chance_line(results),
        notes=_no_effect_note(results),
    )


def per_class(results: AuditResults, negative: str, positive: str) -> str | None:
    """A binary detector's per-class rates against level, one panel per perturbation."""
    if not results.labelled or not results.results:
        return None
    clean = results.clean.get("per_class") or {}
    labels = {negative: f"{negative} kept {negative}", positive: f"{positive} caught"}
    panels = []
    for name, rows in by_perturbation(results).items():
        lines = []
        for cls in (negative, positive):
            start = clean.get(cls) or {}

            def read(row: LevelResult, cls: str = cls) -> tuple[float | None, list[float] | None]:
                entry = row.per_class.get(cls) or {}
                return entry.get("ra"), entry.get("ra_ci")

            lines.append(
                _series(labels[cls], (start.get("accuracy"), start.get("accuracy_ci")), rows, read)
            )
        panels.append(Panel(name, lines))
    return small_multiples(
        "chart-per-class",
        f"{labels[negative]} and {labels[positive]} against level, one panel per perturbation",
        panels,
        _level_axis(results),
        Axis("share of the class", 0.0, 1.0, UNIT_TICKS),
        notes=_no_effect_note(results),
    )


def rr_by_tolerance(results: AuditResults) -> str | None:
    """RR against tolerance b, one panel per perturbation and one line per level."""
    groups = by_perturbation(results)
    if not groups:
        return None
    headline_b = float(results.config["headline_tolerance"])
    rr = get("rr")
    high = max((b for r in results.results for b, _ in r.rr_curve), default=0.5) or 0.5
    ticks = [(t / 10, f"{t / 10:.1f}") for t in range(int(high * 10 + 1e-9) + 1)]
    panels = [
        Panel(
            name, [Series(f"level {r.level}", [(float(b), v) for b, v in r.rr_curve]) for r in rows]
        )
        for name, rows in groups.items()
    ]
    # About six markers per line keep a 51-point curve readable.
    step = max(1, max((len(r.rr_curve) for r in results.results), default=1) // 5)
    return small_multiples(
        "chart-rrb",
        f"{capital(rr.name)} against tolerance b, one panel per perturbation, one line per level",
        panels,
        Axis("tolerance b", 0.0, high, ticks),
        Axis(f"{rr.label}(b)", 0.0, 1.0, UNIT_TICKS),
        x_mark=(headline_b, f"b = {results.headline_key}") if headline_b <= high else None,
        marker_step=step,
    )


# ---------------------------------------------------------------- compare


def compare_by_level(
    names: Sequence[str], audits: Sequence[AuditResults], metric: str
) -> list[tuple[str, str]]:
    """(perturbation, chart) small multiples for `auditor compare`: `metric` ("ra" or "rr" at
    the headline tolerance) against level, one line per model with its 95% band."""
    reference = audits[0]
    key = reference.headline_key
    m = get(metric)
    axis = _level_axis(reference)
    y = Axis(m.heading(key), 0.0, 1.0, UNIT_TICKS)
    charts = []
    for index, name in enumerate(by_perturbation(reference)):
        series = []
        for model, results in zip(names, audits):
            rows = by_perturbation(results).get(name, [])
            if metric == "ra":
                start = measure(get("clean_accuracy"), results.clean)
            else:
                start = (1.0, [1.0, 1.0])  # at level 0 nothing moved
            measured = [(float(r.level), *measure(m, r, key)) for r in rows]
            band = [(x, ci[0], ci[1]) for x, _, ci in [(0.0, None, start[1]), *measured] if ci]
            points = [(0.0, start[0])] + [(x, v) for x, v, _ in measured]
            series.append(Series(model, points, band=band))
        title = f"{m.heading(key)} against level: {name}"
        charts.append(
            (name, line_chart(f"chart-{metric}-{index}", title, series, axis, y, width=NARROW))
        )
    return charts
