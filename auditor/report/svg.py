"""Line charts as inline SVG, built by plain string formatting: axes, lines, bands, legends.

No plotting library: the report stays one deterministic, dependency-light file, and
every string that reaches the SVG (perturbation names above all) is escaped here.
Lines differ by colour, marker and dash pattern, so none is told by colour alone.
What the charts of an audit show is `auditor.report.charts`'.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape as _escape

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
    """One line: its legend label and its (x, y) points; a point whose y is None is left out.

    `band` holds the (x, low, high) of its 95% intervals, drawn as a shaded band; points
    whose x is in `hollow` are drawn as hollow markers (levels that measured nothing).
    """

    label: str
    points: Sequence[tuple[float, float | None]]
    band: Sequence[tuple[float, float, float]] = ()
    hollow: frozenset[float] = frozenset()


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


def _marker(kind: str, x: float, y: float, colour: str, outline: str | None = None) -> str:
    """Return the SVG of one marker centred on (x, y); with `outline`, a hollow one."""
    style = f'class="marker-{kind}" fill="{colour}"'
    if outline is not None and outline != colour:
        style += f' stroke="{outline}" stroke-width="1.5"'
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


def _short(label: str, limit: int = LEGEND_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


@dataclass(frozen=True)
class _Frame:
    """Where the plot area lies in the SVG, and how data maps onto it."""

    x: Axis
    y: Axis
    width: float  # of the plot area
    left: float = MARGIN_LEFT
    top: float = MARGIN_TOP
    height: float = PLOT_HEIGHT

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @property
    def right(self) -> float:
        return self.left + self.width

    def px(self, value: float) -> float:
        span = self.width - 2 * INSET
        return self.left + INSET + (value - self.x.low) / (self.x.high - self.x.low) * span

    def py(self, value: float) -> float:
        value = min(max(value, self.y.low), self.y.high)
        return self.bottom - (value - self.y.low) / (self.y.high - self.y.low) * self.height


def _axes(frame: _Frame, x_mark: tuple[float, str] | None, labels: bool = True) -> list[str]:
    """Return the grid, ticks, axis lines, axis labels and the optional mark on x."""
    left, top, right, bottom = frame.left, frame.top, frame.right, frame.bottom
    grid = [
        f'<line x1="{_num(left)}" x2="{_num(right)}" y1="{_num(frame.py(v))}" '
        f'y2="{_num(frame.py(v))}"/>'
        for v, _ in frame.y.ticks
    ]
    ticks = [
        f'<text x="{_num(left - 6)}" y="{_num(frame.py(v) + 4)}" text-anchor="end">'
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
            f'<line x1="{at}" x2="{at}" y1="{_num(top)}" y2="{_num(bottom)}" '
            'stroke="#57606a" stroke-dasharray="3 3"/>'
        )
        ticks.append(
            f'<text x="{at}" y="{_num(top - 3)}" text-anchor="middle">{escape(x_mark[1])}</text>'
        )
    parts = [
        '<g class="grid" stroke="#e5e8eb">',
        *grid,
        "</g>",
        '<g class="ticks" fill="#57606a" font-size="11">',
        *ticks,
        "</g>",
        f'<path class="axis" fill="none" stroke="#1b1f24" '
        f'd="M{_num(left)},{_num(top)} V{_num(bottom)} H{_num(right)}"/>',
    ]
    if labels:
        parts += [
            f'<text class="label" x="{_num(left + frame.width / 2)}" y="{_num(bottom + 36)}" '
            f'text-anchor="middle">{escape(frame.x.label)}</text>',
            f'<text class="label" transform="translate(14 {_num(top + frame.height / 2)}) '
            f'rotate(-90)" text-anchor="middle">{escape(frame.y.label)}</text>',
        ]
    return parts


def _reference(frame: _Frame, reference: tuple[float, str] | None) -> list[str]:
    """A dashed horizontal line at a reference value (chance), labelled at its right end."""
    if reference is None:
        return []
    value, text = reference
    y = _num(frame.py(value))
    label = (
        f'<text x="{_num(frame.right - 2)}" y="{_num(frame.py(value) - 4)}" text-anchor="end" '
        f'font-size="11" fill="#1b1f24">{escape(text)}</text>'
        if text
        else ""
    )
    return [
        f'<g class="reference"><line x1="{_num(frame.left)}" x2="{_num(frame.right)}" '
        f'y1="{y}" y2="{y}" stroke="#1b1f24" stroke-width="1.2" stroke-dasharray="5 4"/>'
        f"{label}</g>"
    ]


def _band(frame: _Frame, index: int, series: Series) -> list[str]:
    """The series' 95% intervals as a translucent band in its colour."""
    ok = [(x, lo, hi) for x, lo, hi in series.band if math.isfinite(lo) and math.isfinite(hi)]
    if not ok:
        return []
    colour = _style(index)[0]
    upper = [f"{_num(frame.px(x))},{_num(frame.py(hi))}" for x, _, hi in ok]
    lower = [f"{_num(frame.px(x))},{_num(frame.py(lo))}" for x, lo, _ in reversed(ok)]
    return [
        f'<polygon class="band" points="{" ".join(upper + lower)}" fill="{colour}" '
        'fill-opacity="0.16" stroke="none"/>'
    ]


def _line(frame: _Frame, index: int, series: Series, marker_step: int) -> list[str]:
    """Return one series: a polyline and its markers, titled with the series label."""
    colour, marker, dash = _style(index)
    kept = [(a, b) for a, b in series.points if b is not None and math.isfinite(b)]
    points = [(frame.px(a), frame.py(b)) for a, b in kept]
    coords = " ".join(f"{_num(a)},{_num(b)}" for a, b in points)
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    markers = [
        _marker(marker, x, y, "#fff" if a in series.hollow else colour, colour)
        for (a, _), (x, y) in list(zip(kept, points))[::marker_step]
    ]
    return [
        f'<g class="series"><title>{escape(series.label)}</title>',
        f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>',
        *markers,
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


def _open_svg(chart_id: str, title: str, width: float, height: float, desc: str = "") -> list[str]:
    ident = escape(chart_id)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{_num(width)}" height="{_num(height)}" viewBox="0 0 {_num(width)} {_num(height)}" '
        f'aria-labelledby="{ident}-title" id="{ident}" '
        'font-family="system-ui, sans-serif" font-size="12" fill="#1b1f24">',
        f'<title id="{ident}-title">{escape(title)}</title>',
    ]
    if desc:
        parts.append(f"<desc>{escape(desc)}</desc>")
    return parts


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
    reference: tuple[float, str] | None = None,
) -> str:
    """Return an SVG line chart with axes, ticks, a legend and an accessible title.

    Each series' `band` is drawn under its line; `reference` is a dashed horizontal line
    (value, label), such as chance.
    """
    frame = _Frame(x, y, width - MARGIN_LEFT - MARGIN_RIGHT)
    # Legend columns as wide as the longest label (about 7 px a character at 12 px).
    column = 40 + 7 * max((len(_short(s.label)) for s in series), default=1)
    columns = max(1, int(frame.width // column))
    legend_top = frame.bottom + MARGIN_BOTTOM
    height = legend_top + math.ceil(len(series) / columns) * LEGEND_ROW + 6
    parts = [*_open_svg(chart_id, title, width, height), *_axes(frame, x_mark)]
    for index, line in enumerate(series):
        parts.extend(_band(frame, index, line))
    parts.extend(_reference(frame, reference))
    for index, line in enumerate(series):
        parts.extend(_line(frame, index, line, marker_step))
    for index, line in enumerate(series):
        lx = MARGIN_LEFT + (index % columns) * column
        ly = legend_top + (index // columns) * LEGEND_ROW
        parts.append(_legend_entry(index, line.label, lx, ly))
    parts.append("</svg>")
    return "\n".join(parts)


@dataclass(frozen=True)
class Panel:
    """One small multiple: its title (a perturbation's name) and its lines."""

    title: str
    series: Sequence[Series]


FULL = 1000  # small multiples fill the page width; the viewBox scales with it
PANEL_COLUMNS = 4
PANEL_HEIGHT = 118  # of each panel's plot area
PANEL_LEFT, PANEL_RIGHT, PANEL_TOP, PANEL_BOTTOM = 44, 14, 30, 34
TITLE_CHARS = 34


def small_multiples(
    chart_id: str,
    title: str,
    panels: Sequence[Panel],
    x: Axis,
    y: Axis,
    *,
    reference: tuple[float, str] | None = None,
    x_mark: tuple[float, str] | None = None,
    marker_step: int = 1,
    notes: Sequence[str] = (),
) -> str:
    """Return one full-width SVG of `panels` on a grid, sharing axes and one legend.

    Each panel is titled in bold above its plot; a series keeps its style (by label)
    across panels, so one legend reads for all of them. The legend fills the grid's
    first empty cell, or runs below the grid when there is none.
    """
    columns = max(1, min(PANEL_COLUMNS, max(len(panels), 3)))
    rows = max(1, math.ceil(len(panels) / columns))
    cell = FULL / columns
    cell_height = PANEL_TOP + PANEL_HEIGHT + PANEL_BOTTOM
    labels = list(dict.fromkeys(s.label for panel in panels for s in panel.series))
    banded = any(s.band for panel in panels for s in panel.series)
    items = _legend_items(labels, reference, banded, [f"x: {x.label}; y: {y.label}", *notes])
    if len(panels) < rows * columns:  # the legend goes in the first free cell
        at = len(panels)
        legend, _ = _legend(
            items,
            (at % columns) * cell + PANEL_LEFT,
            8 + (at // columns) * cell_height + PANEL_TOP,
            cell - PANEL_LEFT,
        )
        height: float = 8 + rows * cell_height
    else:
        legend, used = _legend(items, PANEL_LEFT, 8 + rows * cell_height + 8, FULL - PANEL_LEFT)
        height = 8 + rows * cell_height + 8 + used
    desc = f"{y.label} against {x.label}; panels: " + ", ".join(p.title for p in panels)
    parts = _open_svg(chart_id, title, FULL, height, desc)
    for i, panel in enumerate(panels):
        left = (i % columns) * cell
        top = 8 + (i // columns) * cell_height
        frame = _Frame(
            x, y, cell - PANEL_LEFT - PANEL_RIGHT, left + PANEL_LEFT, top + PANEL_TOP, PANEL_HEIGHT
        )
        parts.append(f'<g class="panel"><title>{escape(panel.title)}</title>')
        parts.append(
            f'<text class="panel-title" x="{_num(frame.left)}" y="{_num(top + 14)}" '
            f'font-size="14" font-weight="700">{escape(_short(panel.title, TITLE_CHARS))}</text>'
        )
        parts.extend(_axes(frame, x_mark, labels=False))
        for line in panel.series:
            parts.extend(_band(frame, labels.index(line.label), line))
        if reference is not None:
            parts.extend(_reference(frame, (reference[0], "")))
        for line in panel.series:
            parts.extend(_line(frame, labels.index(line.label), line, marker_step))
        parts.append("</g>")
    parts.extend(legend)
    parts.append("</svg>")
    return "\n".join(parts)


def _legend_items(
    labels: Sequence[str], reference: tuple[float, str] | None, banded: bool, notes: Sequence[str]
) -> list[tuple[str, str, int]]:
    """(kind, text, series index) of each legend entry: lines, chance, band, then notes."""
    items = [("series", label, index) for index, label in enumerate(labels)]
    if reference is not None:
        items.append(("reference", reference[1], 0))
    if banded:
        items.append(("band", "shaded: 95% interval", 0))
    return items + [("note", note, 0) for note in notes]


def _legend(
    items: list[tuple[str, str, int]], left: float, top: float, width: float
) -> tuple[list[str], float]:
    """Lay the legend out in rows within `width`; return its SVG and the height used."""
    parts: list[str] = []
    x, y = left, top + 6
    for kind, text, index in items:
        if kind == "note":  # notes wrap on rows of their own
            for line in textwrap.wrap(text, max(12, int(width // 6.5))):
                y += LEGEND_ROW if x > left else 0
                parts.append(
                    f'<text class="note" x="{_num(left)}" y="{_num(y + 4)}" fill="#57606a">'
                    f"{escape(line)}</text>"
                )
                x = left + 1
            continue
        need = 40 + 7 * len(_short(text))
        if x > left and x + need > left + width:
            x, y = left, y + LEGEND_ROW
        parts.append(_legend_mark(kind, index, text, x, y))
        x += need
    return parts, y - top + LEGEND_ROW


def _legend_mark(kind: str, index: int, text: str, lx: float, ly: float) -> str:
    if kind == "series":
        return _legend_entry(index, text, lx, ly)
    if kind == "reference":
        mark = (
            f'<line x1="{_num(lx)}" x2="{_num(lx + 28)}" y1="{_num(ly)}" y2="{_num(ly)}" '
            'stroke="#1b1f24" stroke-width="1.2" stroke-dasharray="5 4"/>'
        )
    else:
        mark = (
            f'<rect x="{_num(lx)}" y="{_num(ly - 6)}" width="28" height="12" fill="#0072B2" '
            'fill-opacity="0.16"/>'
        )
    return (
        f'<g class="legend-{kind}">{mark}<text x="{_num(lx + 34)}" y="{_num(ly + 4)}">'
        f"{escape(_short(text))}</text></g>"
    )
