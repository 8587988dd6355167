"""Tests of `auditor.report.charts`: valid SVG, one line per series, escaping, audit charts."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.report import charts, svg
from auditor.report.svg import UNIT_TICKS, Axis, Series, line_chart
from auditor.results import AuditResults, load_json

GOLD = Path(__file__).parent / "gold" / "results.json"
SVG = "{http://www.w3.org/2000/svg}"
LEVELS = Axis("level", 0.0, 5.0, [(float(i), str(i)) for i in range(6)])
RATE = Axis("rate", 0.0, 1.0, UNIT_TICKS)
NASTY = 'noise <b>&"quoted"\'s</b>'


@pytest.fixture(scope="module")
def results() -> AuditResults:
    return load_json(GOLD)


def parse(svg: str | None) -> ET.Element:
    assert svg is not None
    return ET.fromstring(svg)


def text_of(root: ET.Element, path: str) -> str:
    """Return the text of the first element at `path`, failing when there is none."""
    found = root.find(path)
    assert found is not None and found.text is not None, path
    return found.text


def polylines(root: ET.Element) -> list[ET.Element]:
    return root.findall(f".//{SVG}polyline")


def coordinates(line: ET.Element) -> list[tuple[float, float]]:
    pairs = [p.split(",") for p in line.get("points", "").split()]
    return [(float(x), float(y)) for x, y in pairs]


def series(count: int) -> list[Series]:
    return [
        Series(f"s{i}", [(float(x), 1.0 - 0.1 * i * x / 5) for x in range(6)]) for i in range(count)
    ]


def test_chart_is_accessible_svg() -> None:
    root = parse(line_chart("c1", "A title", series(3), LEVELS, RATE))
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == "A title"
    assert root.get("aria-labelledby") == title.get("id") == "c1-title"


@pytest.mark.parametrize("count", [1, 2, 7, 12])
def test_one_polyline_and_one_legend_entry_per_series(count: int) -> None:
    root = parse(line_chart("c", "t", series(count), LEVELS, RATE))
    assert len(polylines(root)) == count
    assert len(root.findall(f".//{SVG}g[@class='legend']")) == count
    assert all(len(coordinates(line)) == 6 for line in polylines(root))


def test_axes_carry_ticks_and_labels() -> None:
    root = parse(line_chart("c", "t", series(1), LEVELS, RATE))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"0.0", "0.2", "1.0", "0", "5", "level", "rate"} <= set(texts)


def test_lines_differ_by_more_than_colour() -> None:
    root = parse(line_chart("c", "t", series(12), LEVELS, RATE))
    styles = [(p.get("stroke"), p.get("stroke-dasharray")) for p in polylines(root)]
    assert len(set(styles)) == 12
    dashes = {p.get("stroke-dasharray") for p in polylines(root)}
    assert len(dashes) > 1
    groups = root.findall(f".//{SVG}g[@class='series']")
    kinds = [{c.get("class") for c in g if c.get("class")} for g in groups[:5]]
    assert all(len(k) == 1 for k in kinds)  # one marker shape per line
    assert len(set.union(*kinds)) == 5  # and five different shapes


def test_points_map_onto_the_plot_area() -> None:
    root = parse(line_chart("c", "t", [Series("a", [(0.0, 1.0), (5.0, 0.0)])], LEVELS, RATE))
    ((start, end),) = [coordinates(p) for p in polylines(root)]
    assert start[1] == svg.MARGIN_TOP
    assert end[1] == svg.MARGIN_TOP + svg.PLOT_HEIGHT
    assert start[0] < end[0]


def test_missing_values_are_left_out() -> None:
    line = Series("a", [(0.0, 1.0), (1.0, None), (2.0, float("nan")), (3.0, 0.5)])
    root = parse(line_chart("c", "t", [line], LEVELS, RATE))
    assert len(coordinates(polylines(root)[0])) == 2


def test_names_are_escaped() -> None:
    svg = line_chart(NASTY, NASTY, [Series(NASTY, [(0.0, 1.0)])], LEVELS, RATE)
    assert "<b>" not in svg
    root = parse(svg)
    assert text_of(root, f"{SVG}title") == NASTY
    assert text_of(root, f".//{SVG}g[@class='series']/{SVG}title") == NASTY


@given(st.text(max_size=40))
def test_any_label_gives_well_formed_svg(label: str) -> None:
    root = parse(line_chart("c", label, [Series(label, [(0.0, 0.5), (1.0, 0.4)])], LEVELS, RATE))
    assert len(polylines(root)) == 1


def panels(root: ET.Element) -> list[ET.Element]:
    return root.findall(f".//{SVG}g[@class='panel']")


def test_headline_chart_has_a_titled_panel_per_perturbation_with_ra_and_rr(
    results: AuditResults,
) -> None:
    root = parse(charts.headline(results))
    found = panels(root)
    assert [text_of(g, f"{SVG}title") for g in found] == ["gaussian_noise", "jpeg_compression"]
    assert [text_of(g, f"{SVG}text[@class='panel-title']") for g in found] == [
        "gaussian_noise",
        "jpeg_compression",
    ]
    for panel in found:
        names = [text_of(g, f"{SVG}title") for g in panel.findall(f"{SVG}g[@class='series']")]
        assert names == ["RA", "RR(b=0.1)"]
        ra, rr = (coordinates(line) for line in polylines(panel))
        assert len(ra) == len(rr) == 6  # clean plus five levels
        assert rr[0][1] == min(y for _, y in rr)  # RR starts at 1, the top
    # level 0 of RA is the clean accuracy, the same in every panel
    assert coordinates(polylines(found[0])[0])[0][1] == coordinates(polylines(found[1])[0])[0][1]


def test_headline_chart_draws_the_intervals_around_the_lines(results: AuditResults) -> None:
    panel = panels(parse(charts.headline(results)))[0]
    bands = panel.findall(f"{SVG}polygon[@class='band']")
    assert len(bands) == 2  # RA (with the clean interval) and RR
    ra, rr = ([float(p.split(",")[1]) for p in b.get("points", "").split()] for b in bands)
    assert len(ra) == 2 * 6 and len(rr) == 2 * 5  # RA from the clean interval, RR from L1
    upper, lower = ra[:6], ra[6:][::-1]
    line = [y for _, y in coordinates(polylines(panel)[0])]
    assert all(u < y < low for u, y, low in zip(upper, line, lower))  # y grows downwards
    # gaussian_noise L5: RA 0.513 [0.457, 0.569], a band 0.112 of the plot's height
    assert lower[5] - upper[5] == pytest.approx(0.112 * svg.PANEL_HEIGHT, abs=0.2)


def test_chance_line_for_a_binary_detector_only(results: AuditResults) -> None:
    root = parse(charts.headline(results))
    assert charts.chance(results) == 0.5
    for panel in panels(root):
        (line,) = panel.findall(f".//{SVG}g[@class='reference']/{SVG}line")
        y = float(line.get("y1", "0"))
        top = min(y for _, y in coordinates(polylines(panel)[1]))  # RR at 1
        assert y == pytest.approx(top + svg.PANEL_HEIGHT / 2, abs=0.1)
    legend = root.find(f".//{SVG}g[@class='legend-reference']/{SVG}text")
    assert legend is not None and legend.text == "chance 0.50"
    multiclass = dataclasses.replace(results, model={**results.model, "task": "multiclass"})
    assert charts.chance(multiclass) is None
    assert "reference" not in charts.headline(multiclass)


def test_headline_without_labels_shows_rr_only(results: AuditResults) -> None:
    unlabelled = dataclasses.replace(results, clean={**results.clean, "accuracy": None})
    root = parse(charts.headline(unlabelled))
    assert all(len(polylines(panel)) == 1 for panel in panels(root))
    assert charts.per_class(unlabelled, "real", "fake") is None


def test_per_class_chart_shows_each_class_of_a_binary_detector(results: AuditResults) -> None:
    root = parse(charts.per_class(results, "real", "fake"))
    found = panels(root)
    assert len(found) == 2
    names = [text_of(g, f"{SVG}title") for g in found[0].findall(f"{SVG}g[@class='series']")]
    assert names == ["real kept real", "fake caught"]
    real, fake = (coordinates(line) for line in polylines(found[0]))
    assert real[0][1] < fake[0][1]  # clean: 0.960 real kept real above 0.927 fake caught
    assert fake[-1][1] > real[-1][1]  # gaussian_noise L5: 36/150 fakes caught, 118/150 reals


def test_levels_without_effect_are_hollow(results: AuditResults) -> None:
    rows = list(results.results)
    object.__setattr__(rows[0], "no_effect", True)
    try:
        svg = charts.headline(results)
    finally:
        object.__delattr__(rows[0], "no_effect")
    assert 'fill="#fff"' in svg and "no pixel changed" in svg
    assert 'fill="#fff"' not in charts.headline(results)


def test_rr_tolerance_charts_one_panel_per_perturbation_one_line_per_level(
    results: AuditResults,
) -> None:
    root = parse(charts.rr_by_tolerance(results))
    found = panels(root)
    assert [text_of(g, f"{SVG}title") for g in found] == ["gaussian_noise", "jpeg_compression"]
    for panel in found:
        lines = polylines(panel)
        assert len(lines) == 5
        assert all(len(coordinates(line)) == 51 for line in lines)
    assert len(root.findall(f".//{SVG}g[@class='legend']")) == 5  # one legend for all panels


def test_escaping_reaches_the_audit_charts(results: AuditResults) -> None:
    renamed = [dataclasses.replace(r, perturbation=NASTY) for r in results.results[:5]]
    odd = dataclasses.replace(results, results=renamed)
    for drawn in [
        charts.headline(odd),
        charts.per_class(odd, "real", "fake"),
        charts.rr_by_tolerance(odd),
    ]:
        parse(drawn)
        assert drawn is not None and "<b>" not in drawn
