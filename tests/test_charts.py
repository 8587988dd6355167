"""Tests of `auditor.report.charts`: valid SVG, one line per series, escaping, audit charts."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.report import charts
from auditor.report.charts import UNIT_TICKS, Axis, Series, line_chart
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
    assert start[1] == charts.MARGIN_TOP
    assert end[1] == charts.MARGIN_TOP + charts.PLOT_HEIGHT
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


def test_ra_chart_has_one_line_per_perturbation_from_clean_accuracy(results: AuditResults) -> None:
    root = parse(charts.ra_by_level(results))
    lines = polylines(root)
    assert len(lines) == 2
    titles = [text_of(g, f"{SVG}title") for g in root.findall(f".//{SVG}g[@class='series']")]
    assert titles == ["gaussian_noise", "jpeg_compression"]
    for line in lines:
        points = coordinates(line)
        assert len(points) == 6  # clean plus five levels
        # level 0 is the clean accuracy, the same for every perturbation
        assert points[0] == coordinates(lines[0])[0]


def test_ra_chart_is_absent_without_labels(results: AuditResults) -> None:
    unlabelled = dataclasses.replace(results, clean={**results.clean, "accuracy": None})
    assert charts.ra_by_level(unlabelled) is None


def test_rr_chart_starts_at_one(results: AuditResults) -> None:
    root = parse(charts.rr_by_level(results))
    lines = polylines(root)
    assert len(lines) == 2
    assert all(coordinates(line)[0][1] == charts.MARGIN_TOP for line in lines)
    assert "b = 0.1" in text_of(root, f"{SVG}title")


def test_rr_tolerance_charts_one_per_perturbation_one_line_per_level(
    results: AuditResults,
) -> None:
    pairs = charts.rr_by_tolerance(results)
    assert [name for name, _ in pairs] == ["gaussian_noise", "jpeg_compression"]
    ids = set()
    for _, svg in pairs:
        root = parse(svg)
        ids.add(root.get("id"))
        lines = polylines(root)
        assert len(lines) == 5
        assert all(len(coordinates(line)) == 51 for line in lines)
    assert len(ids) == 2  # ids stay unique within one report


def test_escaping_reaches_the_audit_charts(results: AuditResults) -> None:
    renamed = [dataclasses.replace(r, perturbation=NASTY) for r in results.results[:5]]
    odd = dataclasses.replace(results, results=renamed)
    for svg in [
        charts.ra_by_level(odd),
        charts.rr_by_level(odd),
        charts.rr_by_tolerance(odd)[0][1],
    ]:
        parse(svg)
        assert svg is not None and "<b>" not in svg
