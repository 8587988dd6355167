"""Line charts of an audit as inline SVG, built by plain string formatting.

No plotting library: the report stays one deterministic, dependency-light file, and
every string that reaches the SVG (perturbation names above all) is escaped here.
Lines differ by colour, marker and dash pattern, so none is told by colour alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape as _escape

from auditor.metrics.catalogue import capital, get, measure
from auditor.results import AuditResults, LevelResult

# Okabe-Ito, a palette readable with the common colour-vision deficiencies; its
# yellow is left out because it vanishes on white.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
MARKERS = ("circle", "square", "triangle", "diamond", "triangle-down")
DASHES = ("", "6 3", "2 3", "8 3 2 3")

WIDE = 640
NARROW = 420
PLOT_HEIGHT = 220
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 18, 14, 60
INSET = 8  # keeps points at the ends of the x range off the y axis
LEGEND_ROW, LEGEND_CHARS = 18, 24
# Characters XML 1.0 forbids; a name read from a results file could carry them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
UNIT_TICKS = tuple((v / 5, f"{v / 5:.1f}") for v in range(6))


@dataclass(frozen=True)
class Series:
    """One line: its legend label and its (x, y) points; a point whose y is None is left out."""

    label: str
    points: Sequence[tuple[float, float | None]]


@dataclass(frozen=True)
class Axis:
    """An axis: its label, its range and its (value, text) ticks."""

    label: str
    low: float
    high: float
    ticks: Sequence[tuple[float, str]]


def escape(text: str) -> str:
    """Return `text` safe inside SVG text or an attribute, in HTML and in XML."""
    return _escape(_NOT_XML.sub("\ufffd", str(text)), quote=True)


def _num(value: float) -> str:
    # One decimal is finer than a pixel and keeps the golden report stable.
    return f"{value:.1f}"


def _marker(kind: str, x: float, y: float, colour: str) -> str:
    """Return the SVG of one marker centred on (x, y)."""
    style = f'class="marker-{kind}" fill="{colour}"'
    if kind == "circle":
        return f'<circle {style} cx="{_num(x)}" cy="{_num(y)}" r="3.5"/>'
    if kind == "square":
        return f'<rect {style} x="{_num(x - 3.5)}" y="{_num(y - 3.5)}" width="7" height="7"/>'
    offsets = {
        "triangle": ((0, -4.5), (4.5, 3.5), (-4.5, 3.5)),
        "triangle-down": ((0, 4.5), (4.5, -3.5), (-4.5, -3.5)),
        "diamond": ((0, -4.5), (4.5, 0), (0, 4.5), (-4.5, 0)),
    }[kind]
    corners = " ".join(f"{_num(x + dx)},{_num(y + dy)}" for dx, dy in offsets)
    return f'<polygon {style} points="{corners}"/>'


def _style(index: int) -> tuple[str, str, str]:
    """Return (colour, marker, dash) of series `index`; combinations repeat after 140."""
    return (
        PALETTE[index % len(PALETTE)],
        MARKERS[index % len(MARKERS)],
        DASHES[index % len(DASHES)],
    )


def _short(label: str) -> str:
    return label if len(label) <= LEGEND_CHARS else label[: LEGEND_CHARS - 1] + "\u2026"


@dataclass(frozen=True)
class _Frame:
    """Where the plot area lies in the SVG, and how data maps onto it."""

    x: Axis
    y: Axis
    width: float  # of the plot area

    @property
    def bottom(self) -> float:
        return MARGIN_TOP + PLOT_HEIGHT

    def px(self, value: float) -> float:
        span = self.width - 2 * INSET
        return MARGIN_LEFT + INSET + (value - self.x.low) / (self.x.high - self.x.low) * span

    def py(self, value: float) -> float:
        value = min(max(value, self.y.low), self.y.high)
        return self.bottom - (value - self.y.low) / (self.y.high - self.y.low) * PLOT_HEIGHT


def _axes(frame: _Frame, x_mark: tuple[float, str] | None) -> list[str]:
    """Return the grid, ticks, axis lines, axis labels and the optional mark on x."""
    right, bottom = MARGIN_LEFT + frame.width, frame.bottom
    grid = [
        f'<line x1="{MARGIN_LEFT}" x2="{_num(right)}" y1="{_num(frame.py(v))}" '
        f'y2="{_num(frame.py(v))}"/>'
        for v, _ in frame.y.ticks
    ]
    ticks = [
        f'<text x="{MARGIN_LEFT - 6}" y="{_num(frame.py(v) + 4)}" text-anchor="end">'
        f"{escape(text)}</text>"
        for v, text in frame.y.ticks
    ] + [
        f'<text x="{_num(frame.px(v))}" y="{bottom + 16}" text-anchor="middle">'
        f"{escape(text)}</text>"
        for v, text in frame.x.ticks
    ]
    if x_mark is not None:
        at = _num(frame.px(x_mark[0]))
        grid.append(
            f'<line x1="{at}" x2="{at}" y1="{MARGIN_TOP}" y2="{bottom}" '
            'stroke="#57606a" stroke-dasharray="3 3"/>'
        )
        ticks.append(
            f'<text x="{at}" y="{MARGIN_TOP - 3}" text-anchor="middle">{escape(x_mark[1])}</text>'
        )
    return [
        '<g class="grid" stroke="#e5e8eb">',
        *grid,
        "</g>",
        '<g class="ticks" fill="#57606a" font-size="11">',
        *ticks,
        "</g>",
        f'<path class="axis" fill="none" stroke="#1b1f24" '
        f'd="M{MARGIN_LEFT},{MARGIN_TOP} V{bottom} H{_num(right)}"/>',
        f'<text class="label" x="{_num(MARGIN_LEFT + frame.width / 2)}" y="{bottom + 36}" '
        f'text-anchor="middle">{escape(frame.x.label)}</text>',
        f'<text class="label" transform="translate(14 {_num(MARGIN_TOP + PLOT_HEIGHT / 2)}) '
        f'rotate(-90)" text-anchor="middle">{escape(frame.y.label)}</text>',
    ]


def _line(frame: _Frame, index: int, series: Series, marker_step: int) -> list[str]:
    """Return one series: a polyline and its markers, titled with the series label."""
    colour, marker, dash = _style(index)
    points = [
        (frame.px(a), frame.py(b)) for a, b in series.points if b is not None and math.isfinite(b)
    ]
    coords = " ".join(f"{_num(a)},{_num(b)}" for a, b in points)
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return [
        f'<g class="series"><title>{escape(series.label)}</title>',
        f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>',
        *(_marker(marker, a, b, colour) for a, b in points[::marker_step]),
        "</g>",
    ]


def _legend_entry(index: int, label: str, lx: float, ly: float) -> str:
    colour, marker, dash = _style(index)
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<g class="legend"><line x1="{lx}" x2="{lx + 28}" y1="{ly}" y2="{ly}" '
        f'stroke="{colour}" stroke-width="2"{dash_attr}/>{_marker(marker, lx + 14, ly, colour)}'
        f'<text x="{lx + 34}" y="{ly + 4}">{escape(_short(label))}</text></g>'
    )


def line_chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    x: Axis,
    y: Axis,
    *,
    width: int = WIDE,
    marker_step: int = 1,
    x_mark: tuple[float, str] | None = None,
) -> str:
    """Return an SVG line chart with axes, ticks, a legend and an accessible title."""
    frame = _Frame(x, y, width - MARGIN_LEFT - MARGIN_RIGHT)
    # Legend columns as wide as the longest label (about 7 px a character at 12 px).
    column = 40 + 7 * max((len(_short(s.label)) for s in series), default=1)
    columns = max(1, int(frame.width // column))
    legend_top = frame.bottom + MARGIN_BOTTOM
    height = legend_top + math.ceil(len(series) / columns) * LEGEND_ROW + 6
    ident = escape(chart_id)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-labelledby="{ident}-title" id="{ident}" '
        'font-family="system-ui, sans-serif" font-size="12" fill="#1b1f24">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        *_axes(frame, x_mark),
    ]
    for index, line in enumerate(series):
        parts.extend(_line(frame, index, line, marker_step))
    for index, line in enumerate(series):
        lx = MARGIN_LEFT + (index % columns) * column
        ly = legend_top + (index // columns) * LEGEND_ROW
        parts.append(_legend_entry(index, line.label, lx, ly))
    parts.append("</svg>")
    return "\n".join(parts)


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


def ra_by_level(results: AuditResults) -> str | None:
    """Return the chart of RA against level (level 0 = clean accuracy), None if unlabelled."""
    clean = measure(get("clean_accuracy"), results.clean)[0]
    if clean is None:
        return None
    ra = get("ra")
    series = [
        Series(name, [(0.0, clean)] + [(float(r.level), measure(ra, r)[0]) for r in rows])
        for name, rows in by_perturbation(results).items()
    ]
    y = Axis(f"{ra.name} ({ra.label})", 0.0, 1.0, UNIT_TICKS)
    title = f"{capital(ra.name)} against level"
    return line_chart("chart-ra", title, series, _level_axis(results), y)


def rr_by_level(results: AuditResults) -> str:
    """Return the chart of RR at the headline tolerance against level (level 0 = 1.0)."""
    key, rr = results.headline_key, get("rr")
    series = [
        Series(name, [(0.0, 1.0)] + [(float(r.level), measure(rr, r, key)[0]) for r in rows])
        for name, rows in by_perturbation(results).items()
    ]
    y = Axis(f"{rr.name} {rr.label} (b = {key})", 0.0, 1.0, UNIT_TICKS)
    title = f"{capital(rr.name)} at tolerance b = {key} against level"
    return line_chart("chart-rr", title, series, _level_axis(results), y)


def rr_by_tolerance(results: AuditResults) -> list[tuple[str, str]]:
    """Return (perturbation, chart) pairs: RR against tolerance b, one line per level."""
    charts = []
    headline = float(results.config["headline_tolerance"])
    rr = get("rr")
    for index, (name, rows) in enumerate(by_perturbation(results).items()):
        series = [Series(f"level {r.level}", [(float(b), v) for b, v in r.rr_curve]) for r in rows]
        high = max((b for r in rows for b, _ in r.rr_curve), default=0.5) or 0.5
        ticks = [(t / 10, f"{t / 10:.1f}") for t in range(int(high * 10 + 1e-9) + 1)]
        x = Axis("tolerance b", 0.0, high, ticks)
        y = Axis(f"{rr.name} {rr.label}(b)", 0.0, 1.0, UNIT_TICKS)
        # About six markers per line keep a 51-point curve readable.
        step = max(1, max((len(r.rr_curve) for r in rows), default=1) // 5)
        chart = line_chart(
            f"chart-rrb-{index}",
            f"{capital(rr.name)} against tolerance b: {name}",
            series,
            x,
            y,
            width=NARROW,
            marker_step=step,
            x_mark=(headline, f"b = {results.headline_key}") if headline <= high else None,
        )
        charts.append((name, chart))
    return charts


# ---------------------------------------------------------------- compare


@dataclass(frozen=True)
class Band:
    """A series' 95% intervals: (x, low, high) at its points; a None interval breaks it."""

    points: Sequence[tuple[float, list[float] | None]]


def _band(frame: _Frame, index: int, band: Band) -> list[str]:
    """Return a series' band as translucent polygons in its colour, one per unbroken run."""
    colour = _style(index)[0]
    runs: list[list[tuple[float, list[float]]]] = [[]]
    for x, ci in band.points:
        if ci is None:
            runs.append([])
        else:
            runs[-1].append((x, ci))
    shapes = []
    for run in (r for r in runs if len(r) >= 2):
        upper = [f"{_num(frame.px(x))},{_num(frame.py(ci[1]))}" for x, ci in run]
        lower = [f"{_num(frame.px(x))},{_num(frame.py(ci[0]))}" for x, ci in reversed(run)]
        shapes.append(
            f'<polygon class="band" points="{" ".join(upper + lower)}" fill="{colour}" '
            'fill-opacity="0.15" stroke="none"/>'
        )
    return shapes


def banded_chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    bands: Sequence[Band],
    x: Axis,
    y: Axis,
    *,
    width: int = NARROW,
) -> str:
    """Return `line_chart` with each series' 95% band drawn under the lines, in its colour."""
    svg = line_chart(chart_id, title, series, x, y, width=width)
    frame = _Frame(x, y, width - MARGIN_LEFT - MARGIN_RIGHT)
    shapes = [shape for i, band in enumerate(bands) for shape in _band(frame, i, band)]
    if not shapes:
        return svg
    first_line = '<g class="series">'
    return svg.replace(first_line, "\n".join([*shapes, first_line]), 1)


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
        series, bands = [], []
        for model, results in zip(names, audits):
            rows = by_perturbation(results).get(name, [])
            if metric == "ra":
                start = measure(get("clean_accuracy"), results.clean)
            else:
                start = (1.0, [1.0, 1.0])  # at level 0 nothing moved
            measured = [(float(r.level), *measure(m, r, key)) for r in rows]
            series.append(Series(model, [(0.0, start[0])] + [(x, v) for x, v, _ in measured]))
            bands.append(Band([(0.0, start[1])] + [(x, ci) for x, _, ci in measured]))
        title = f"{m.heading(key)} against level: {name}"
        chart_id = f"chart-{metric}-{index}"
        charts.append((name, banded_chart(chart_id, title, series, bands, axis, y)))
    return charts
