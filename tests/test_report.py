"""Tests of `auditor.report.html`: golden HTML, self-containment, structure, summary line.

The golden report is `tests/gold/report.html`, rendered from `tests/gold/results.json`
(written by `tests/gold/make_results.py`). After an intended change to the report,
regenerate it and review the diff:

    AUDITOR_UPDATE_GOLD=1 python -m pytest tests/test_report.py -k golden
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from auditor.publish import WRITERS
from auditor.report import html as report
from auditor.report.html import render_html, summary_line
from auditor.results import AuditResults, Gate, Verdict, load_json, to_json

GOLD = Path(__file__).parent / "gold"
# What may differ between two renders of the same results: the renderer's version.
SCRUBS = [
    (re.compile(r"auditor \d+\.\d+\.\d+[^\s\"<]*"), "auditor X.Y.Z"),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?"), "DATETIME"),
]
NASTY = '<script>alert("x")</script>&noise'


class Page(HTMLParser):
    """Collects what the checks need from one HTML document."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[int] = []
        self.tables: list[dict[str, Any]] = []  # each: caption seen, row headers, col headers
        self._open: list[dict[str, Any]] = []
        self._th: list[str] | None = None
        self._th_scope: str | None = None
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.append((tag, values))
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag == "table":
            table: dict[str, Any] = {
                "id": values.get("id"),
                "caption": False,
                "rows": [],
                "cols": [],
            }
            self.tables.append(table)
            self._open.append(table)
        elif tag == "caption" and self._open:
            self._open[-1]["caption"] = True
        elif tag == "th":
            self._th, self._th_scope = [], values.get("scope")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._open:
            self._open.pop()
        elif tag == "th" and self._th is not None and self._open:
            text = " ".join("".join(self._th).split())
            key = "cols" if self._th_scope == "col" else "rows"
            self._open[-1][key].append(text)
            self._th = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._th is not None:
            self._th.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def table(self, table_id: str) -> dict[str, Any]:
        (found,) = [t for t in self.tables if t["id"] == table_id]
        return found


def visible(html: str) -> str:
    """Return the report without its embedded results JSON (data, not shown)."""
    start = html.index('<script type="application/json"')
    return html[:start] + html[html.index("</script>", start) :]


def scrub(text: str) -> str:
    for pattern, replacement in SCRUBS:
        text = pattern.sub(replacement, text)
    return text


@pytest.fixture(scope="module")
def results() -> AuditResults:
    return load_json(GOLD / "results.json")


@pytest.fixture(scope="module")
def html(results: AuditResults) -> str:
    return render_html(results)


@pytest.fixture(scope="module")
def page(html: str) -> Page:
    return Page(html)


def unlabelled(results: AuditResults) -> AuditResults:
    """The same audit as if the data had no labels: RR and flip rate only."""
    rows = [
        dataclasses.replace(r, ra=None, ra_ci=None, per_class={}, auc=None, ra_drop=None)
        for r in results.results
    ]
    summary = [dataclasses.replace(s, mean_ra=None, area_ra=None) for s in results.summary]
    clean = {
        "n": results.clean["n"],
        "accuracy": None,
        "accuracy_ci": None,
        "per_class": {},
        "auc": None,
    }
    data = {**results.data, "kind": "unlabelled", "class_counts": {}}
    return dataclasses.replace(
        results, results=rows, summary=summary, clean=clean, data=data, verdict=Verdict(True, [])
    )


def test_golden(html: str) -> None:
    gold = GOLD / "report.html"
    if os.environ.get("AUDITOR_UPDATE_GOLD"):
        gold.write_text(html, encoding="utf-8")
    expected, actual = scrub(gold.read_text(encoding="utf-8")), scrub(html)
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(),
            actual.splitlines(),
            "gold/report.html",
            "rendered",
            lineterm="",
            n=1,
        )
        pytest.fail(
            "report differs from the golden file (AUDITOR_UPDATE_GOLD=1 to accept):\n"
            + "\n".join(list(diff)[:60])
        )


def test_scrubs_hide_only_versions_and_dates() -> None:
    assert scrub("auditor 0.1.0.dev3+g1a2b at 2025-03-14T09:26:53Z") == (
        "auditor X.Y.Z at DATETIME"
    )
    assert scrub("RA 0.913 [0.876, 0.940]") == "RA 0.913 [0.876, 0.940]"


@pytest.mark.parametrize("variant", ["labelled", "unlabelled"])
def test_self_contained(results: AuditResults, variant: str) -> None:
    page = Page(render_html(results if variant == "labelled" else unlabelled(results)))
    links = [a.get(k) for _, a in page.tags for k in ("src", "href", "xlink:href") if k in a]
    assert links, "expected links and images to check"
    for link in links:
        assert link and (link.startswith("data:") or link.startswith("#")), link
    # the only script is the embedded results: data, never executed
    assert page.all("script") == [{"type": "application/json", "id": "auditor-results"}]
    assert not [a for _, a in page.tags if any(k.startswith("on") for k in a)]
    assert not page.all("link") and not page.all("iframe") and not page.all("object")
    csp = [m for m in page.all("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert len(csp) == 1
    assert "default-src 'none'" in (csp[0].get("content") or "")
    assert "img-src data:" in (csp[0].get("content") or "")


def test_fragment_links_point_at_ids(page: Page) -> None:
    ids = {a.get("id") for _, a in page.tags if a.get("id")}
    hrefs = [a.get("href") or "" for a in page.all("a")]
    targets = [href[1:] for href in hrefs if href.startswith("#")]
    assert targets and set(targets) <= ids


def thumbs(page: Page) -> list[dict[str, str | None]]:
    """The thumbnails shown: inline SVGs that show a stored image by reference."""
    return [a for a in page.all("svg") if a.get("class") == "thumb"]


def test_accessible_structure(page: Page) -> None:
    assert page.all("html")[0].get("lang") == "en"
    images = thumbs(page)
    # clean and five levels for each of two perturbations; two moved samples (clean and
    # perturbed) for each of two perturbations
    assert len(images) == 12 + 8 and not page.all("img")
    assert all((img.get("aria-label") or "").strip() for img in images)
    assert all(img.get("role") == "img" for img in images)
    assert page.tables and all(t["caption"] for t in page.tables)
    assert all(a.get("scope") in ("col", "row", "rowgroup") for a in page.all("th"))
    assert page.headings[0] == 1 and page.headings.count(1) == 1
    assert all(b - a <= 1 for a, b in zip(page.headings, page.headings[1:]))
    svgs = [s for s in page.all("svg") if s.get("class") == "chart"]
    assert len(svgs) == 3  # the headline (RA and RR by level), per class, RR by b
    assert all(s.get("role") == "img" and s.get("aria-labelledby") for s in svgs)


def test_sections_in_order(html: str) -> None:
    ids = [
        "summary",
        "verdict-line",
        "tested",
        "findings",
        "headline-chart",
        "contents",
        "glance",
        "identification",
        "scope-statement",
        "method",
        "criteria",
        "decision-rule",
        "perturbation-table",
        "threat-model-h",
        "not-assessed",
        "model-table",
        "external-data",
        "preprocess-table",
        "data-table",
        "skipped-table",
        "sample-size",
        "charts",
        "chart-per-class",
        "chart-rrb",
        "level-table",
        "binary-table",
        "summary-table",
        "moved-0",
        "thumbnail-table",
        "verdict",
        "gates",
        "config-table",
        "environment-table",
        "session-options",
        "determinism-table",
        "meaning",
        "how-findings",
        "rules-table",
        "crosswalk-table",
        "signature-table",
        "end-of-report",
        "pixel-store",
        "auditor-results",
    ]
    positions = [html.index(f'id="{i}"') for i in ids]
    assert positions == sorted(positions)
    assert html.rstrip().endswith("</html>")


def test_title_and_verdict(results: AuditResults, page: Page, html: str) -> None:
    title = "".join(page.text).split("Robustness audit of", 2)
    assert "detector_a.onnx: FAIL" in title[1]
    assert '<span class="verdict verdict-fail">FAIL</span>' in html
    gates = page.table("gates")
    assert gates["rows"] == [
        "ra >= 0.6 at every level",
        "rr(0.1) >= 0.2 at every level",
        "RA >= 0.9 at jpeg_compression, levels 1, 2, 3",
    ]
    passing = dataclasses.replace(
        results, verdict=Verdict(True, [dataclasses.replace(results.verdict.gates[1])])
    )
    assert "<title>Robustness audit of detector_a.onnx: PASS</title>" in render_html(passing)
    ungated = render_html(dataclasses.replace(results, verdict=Verdict(True, [])))
    assert "<title>Robustness audit of detector_a.onnx: MEASUREMENTS ONLY</title>" in ungated
    assert "Not assessed against a policy: measurements only" in ungated
    assert "NO GATES" not in visible(ungated) and "passes by default" not in ungated


def colspans(html: str, table_id: str) -> set[int]:
    """Return the widths of the row group headers of one table."""
    body = html[html.index(f'id="{table_id}"') :]
    body = body[: body.index("</table>")]
    return {int(n) for n in re.findall(r'scope="rowgroup" colspan="(\d+)"', body)}


def test_every_perturbation_and_level_in_the_table(
    results: AuditResults, page: Page, html: str
) -> None:
    table = page.table("level-table")
    assert colspans(html, "level-table") == {len(table["cols"])}
    assert colspans(html, "binary-table") == {len(page.table("binary-table")["cols"])}
    expected = [f"{r.perturbation} L{r.level}" for r in results.results]
    assert [row for row in table["rows"] if " L" in row] == expected
    assert table["cols"][:5] == ["Level", "Parameters", "n", "RA", "RA − clean"]
    assert [c for c in table["cols"] if c.startswith("RR")] == [
        "RR(b = 0.01)",
        "RR(b = 0.05)",
        "RR(b = 0.1)",
        "RR(b = 0.2)",
    ]
    assert table["cols"][-4:] == ["Flip rate", "Δ p50", "Δ p90", "Δ max"]


def test_numbers_and_intervals_are_shown(results: AuditResults, html: str) -> None:
    worst = results.results[4]
    assert worst.ra_ci is not None
    assert (
        f'{worst.ra:.3f} <span class="ci">[{worst.ra_ci[0]:.3f}, {worst.ra_ci[1]:.3f}]</span>'
        in html
    )
    lo, hi = worst.rr_ci["0.1"]
    assert f'{worst.rr["0.1"]:.3f} <span class="ci">[{lo:.3f}, {hi:.3f}]</span>' in html
    assert "sigma=0.38" in html and "quality=7" in html
    assert "0.943 [0.911, 0.964]" in html  # clean accuracy and its interval


def test_binary_detector_columns(page: Page) -> None:
    table = page.table("binary-table")
    assert table["cols"][:4] == ["Level", "real kept real", "fake caught", "AUC"]
    assert table["rows"][0] == "clean"


def test_multiclass_has_no_binary_table(results: AuditResults) -> None:
    model = {
        **results.model,
        "task": "multiclass",
        "classes": ["a", "b", "c"],
        "positive_class": None,
    }
    assert 'id="binary-table"' not in render_html(dataclasses.replace(results, model=model))


def test_unlabelled_shows_note_and_no_ra(results: AuditResults, html: str) -> None:
    out = render_html(unlabelled(results))
    page = Page(out)
    assert "No labels: RR and flip rate only" in out
    assert "Lowest RA" not in out and "Mean RA" not in out
    assert 'id="chart-per-class"' not in out and 'id="binary-table"' not in out
    level_cols = page.table("level-table")["cols"]
    assert not [c for c in level_cols if "RA" in c]
    assert colspans(out, "level-table") == {len(level_cols)}
    assert not [c for c in page.table("summary-table")["cols"] if "RA" in c]

    def shown(ci: list[float]) -> str:
        return f"[{ci[0]:.3f}, {ci[1]:.3f}]"

    # RA intervals of the labelled render must be gone, unless an RR or flip rate
    # interval happens to be the same count out of the same n.
    others = {shown(ci) for r in results.results for ci in [*r.rr_ci.values(), r.flip_rate_ci]}
    ra_only = {shown(r.ra_ci) for r in results.results if r.ra_ci} - others
    assert len(ra_only) >= 5
    assert all(ci in html and ci not in out for ci in ra_only)
    assert "RR(b = 0.1)" in page.table("level-table")["cols"]
    assert len([s for s in page.all("svg") if s.get("class") == "chart"]) == 2


def test_without_thumbnails(results: AuditResults) -> None:
    out = render_html(dataclasses.replace(results, thumbnails={}, moved={}))
    assert "No thumbnails were saved" in out and 'class="thumb"' not in out
    assert "record no per-sample changes" in out


def test_only_inline_images_reach_img(results: AuditResults) -> None:
    levels = {
        "gaussian_noise": [
            "https://example.invalid/x.png",
            "javascript:alert(1)",
            'data:image/png;base64,AAAA" onerror="x',
        ]
    }
    bad = levels["gaussian_noise"][0]
    moved = {"gaussian_noise": [{"sample": "a.png", "clean_thumbnail": bad}]}
    out = visible(
        render_html(
            dataclasses.replace(
                results, thumbnails={**results.thumbnails, "levels": levels}, moved=moved
            )
        )
    )
    assert "example.invalid" not in out and "javascript:" not in out and "onerror" not in out
    assert len(thumbs(Page(out))) == 1  # the clean image only


def test_names_from_results_are_escaped(results: AuditResults) -> None:
    rows = [dataclasses.replace(r, perturbation=NASTY) for r in results.results[:5]]
    summary = [dataclasses.replace(results.summary[0], perturbation=NASTY)]
    model = {**results.model, "file_name": NASTY}
    gates = [Gate(NASTY, "ra", 0.5, 0.4, False, NASTY)]
    odd = dataclasses.replace(
        results,
        results=rows,
        summary=summary,
        model=model,
        thumbnails={},
        verdict=Verdict(False, gates),
    )
    out = render_html(odd)
    assert out.count("<script") == 1 and "<script>" not in out
    assert "<script" not in out[out.index("</script>") :]
    page = Page(out)
    # the only script is the embedded results: data, never executed
    assert page.all("script") == [{"type": "application/json", "id": "auditor-results"}]
    assert NASTY in "".join(page.text)


def test_few_samples_and_many_skipped_files(results: AuditResults) -> None:
    skipped = [{"path": f"real/bad_{i:03d}.png", "reason": "cannot decode"} for i in range(60)]
    data = {
        **results.data,
        "class_counts": {"real": 40, "fake": 150},
        "skipped": skipped,
        "n_skipped": 60,
    }
    out = render_html(dataclasses.replace(results, data=data))
    assert "Only 40 samples of class real" in out
    assert "60 files were skipped" in out
    assert "10 more in the JSON results" in out
    assert len(Page(out).table("skipped-table")["rows"]) == report.SKIPPED_SHOWN


def test_round_trip_through_json_renders_the_same(results: AuditResults, html: str) -> None:
    again = AuditResults.from_dict(json.loads(to_json(results)))
    assert render_html(again) == html


def test_summary_line(results: AuditResults) -> None:
    assert summary_line(results) == (
        "auditor: detector_a.onnx, 300 samples, clean accuracy 0.943; "
        "worst RA 0.513 (gaussian_noise L5); worst RR@0.1 0.250 (gaussian_noise L5); "
        "verdict FAIL"
    )
    line = summary_line(unlabelled(results))
    assert line == (
        "auditor: detector_a.onnx, 300 samples; worst RR@0.1 0.250 (gaussian_noise L5); "
        "measurements only, no policy"
    )
    passing = dataclasses.replace(results, verdict=Verdict(True, results.verdict.gates[1:]))
    assert summary_line(passing).endswith("; verdict PASS")


def test_formatting() -> None:
    assert report.rate(0.5) == "0.500" and report.rate(None) == "—"
    assert report.interval([0.8123, 0.9007]) == "[0.812, 0.901]"
    assert report.interval(None) == ""
    assert report.params({"eps": 4 / 255, "quality": 25}) == "eps=0.01569, quality=25"
    assert report.show([1, "batch", True, None]) == "[1, batch, yes, —]"


def test_write_report_is_atomic(results: AuditResults, html: str, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    WRITERS["html"].write(results, target)
    assert target.read_text(encoding="utf-8") == html
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


def test_failed_render_leaves_no_file(results: AuditResults, tmp_path: Path) -> None:
    broken = dataclasses.replace(results, config={})  # no tolerance keys: cannot render
    target = tmp_path / "report.html"
    with pytest.raises(KeyError):
        WRITERS["html"].write(broken, target)
    assert list(tmp_path.iterdir()) == []


def test_templates_are_found() -> None:
    folder = report._templates_dir()
    assert (folder / "report.html").is_file() and (folder / "report.css").is_file()


def test_report_needs_no_model_runtime() -> None:
    code = (
        "import sys, auditor.report.html; "
        "heavy = {'onnxruntime', 'cv2', 'numpy', 'auditor.engine.run', 'auditor.model.adapter'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert out.stdout.strip() == "[]"


def test_code_spans_escape_first() -> None:
    assert str(report.code_spans("noise `sigma` <b>")) == "noise <code>sigma</code> &lt;b&gt;"
    assert str(report.code_spans("`<i>`")) == "<code>&lt;i&gt;</code>"


def test_repeats_are_explained(results: AuditResults) -> None:
    config = {**results.config, "repeats": 4}
    out = render_html(dataclasses.replace(results, config=config))
    assert "4 draws per sample and level, the worst counts" in out
    assert "the worst of 4" in out


def test_audit_without_perturbations_renders(results: AuditResults) -> None:
    empty = dataclasses.replace(
        results, results=[], summary=[], thumbnails={}, verdict=Verdict(True, [])
    )
    page = Page(render_html(empty))
    charts = [s for s in page.all("svg") if s.get("class") == "chart"]
    assert len(charts) == 1  # the headline chart, with no panel
    assert summary_line(empty) == (
        "auditor: detector_a.onnx, 300 samples, clean accuracy 0.943; measurements only, no policy"
    )


def test_the_configuration_table_shows_the_settings_the_results_record(
    results: AuditResults, page: Page
) -> None:
    rows = page.table("config-table")["rows"]
    assert rows[:3] == ["Command line", "Suite", "Seed"] and rows[-1] == "Batch size"
    assert "Output read as" not in rows  # the gold results are from before it was recorded
    config = {**results.config, "output_kind": "logits", "output_name": "scores"}
    newer = render_html(dataclasses.replace(results, config={**config, "input_name": None}))
    table = Page(newer).table("config-table")["rows"]
    assert table == [*rows[:-1], "Model input", "Model output", "Output read as", "Batch size"]
    assert '<th scope="row">Output read as</th><td>logits</td>' in newer
    older = {k: v for k, v in results.config.items() if k != "limit"}
    table = Page(render_html(dataclasses.replace(results, config=older))).table("config-table")
    assert "Sample limit" not in table["rows"]
