"""The report's first screen: verdict, what was tested, ranked findings, headline chart."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_report import Page, visible

from auditor.cli import main
from auditor.errors import EXIT_GATE_FAILED, EXIT_OK
from auditor.report import html as report
from auditor.report.html import render_html, summary_lines
from auditor.report.integrity import read_embedded
from auditor.report.provenance import identify
from auditor.results import AuditResults, Gate, Verdict, from_json, load_json
from auditor.verdict.findings import RULES, documented_rules, find

GOLD = Path(__file__).parent / "gold" / "results.json"


@pytest.fixture(scope="module")
def results() -> AuditResults:
    return load_json(GOLD)


@pytest.fixture(scope="module")
def html(results: AuditResults) -> str:
    return render_html(results)


def first_screen(html: str) -> str:
    """What comes before the contents list: title, verdict, tested, findings, chart."""
    return html[html.index("<body>") : html.index('<nav id="contents"')]


def test_the_first_screen_is_verdict_tested_findings_then_chart(html: str) -> None:
    top = first_screen(html)
    order = ["<h1>", 'id="verdict-line"', 'id="tested"', 'id="findings"', 'id="chart-headline"']
    assert [top.index(mark) for mark in order] == sorted(top.index(mark) for mark in order)
    assert "FAIL: 1 failed and 1 inconclusive of 3 gate(s)" in top
    # the report id once, and the contents list below all of it
    assert top.count("5f0c2a9e-3b1d-4c6e-9a7f-2d8e1b4c6a90") == 1
    assert "<nav" not in top


def test_the_tested_line_says_what_was_tested(results: AuditResults) -> None:
    line = report.tested(results)
    assert line.startswith(
        "detector_a.onnx (sha256 3db0b2dfa996…) on 300 samples (150 real, 150 fake)"
    )
    assert "suite quick: 2 perturbations at L1-L5 (gaussian_noise, jpeg_compression)" in line
    assert "RR tolerance b = 0.1 (also 0.01, 0.05, 0.2); 1 draw per sample and level." in line
    chosen = dataclasses.replace(results, config={**results.config, "suite": None, "repeats": 3})
    assert "perturbations given with -p: 2 perturbations" in report.tested(chosen)
    assert "3 draws per sample and level" in report.tested(chosen)


def test_findings_are_listed_in_rank_and_link_to_their_evidence(
    results: AuditResults, html: str
) -> None:
    page = Page(first_screen(html))
    items = [a for a in page.all("li") if "finding" in (a.get("class") or "")]
    found = find(results)
    assert len(items) == len(found) == 4
    assert [a.get("class") for a in items] == [f"finding severity-{f.severity}" for f in found]
    top = first_screen(html)
    for finding in found:
        assert finding.text.replace(">", "&gt;") in top
    links = re.findall(r'<li class="finding[^"]*">.*?<a href="#([^"]+)">', top)
    assert links == ["gates", "gates", "lvl-gaussian_noise-L5", "cls-gaussian_noise-L5"]
    ids = set(re.findall(r'id="([^"]+)"', html))
    assert set(links) <= ids


def test_without_a_policy_the_verdict_is_measurements_only(results: AuditResults) -> None:
    ungated = dataclasses.replace(results, verdict=Verdict(True, [], "NO GATES"))
    out = render_html(ungated)
    line = out[out.index('id="verdict-line"') : out.index("</p>", out.index('id="verdict-line"'))]
    assert "Not assessed against a policy: measurements only" in line
    assert "NO GATES" not in visible(out) and "passes by default" not in out


def test_an_interrupted_report_says_incomplete_in_its_title_and_headline(
    results: AuditResults,
) -> None:
    cut = dataclasses.replace(results, status="incomplete", progress={"done": 10, "total": 40})
    out = render_html(cut)
    assert "<title>Robustness audit of detector_a.onnx: INCOMPLETE, FAIL</title>" in out
    top = first_screen(out)
    assert '<span class="verdict verdict-incomplete">INCOMPLETE</span>' in top
    assert "interrupted after 10 of 40 work units" in top
    assert "comes from the partial subset of samples and levels that finished" in top
    assert "Findings on the partial subset" in top
    assert "(INCOMPLETE)" in out[: out.index("</style>")]  # the printed running header too
    ungated = dataclasses.replace(cut, verdict=Verdict(True, [], "NO GATES"))
    assert "<title>Robustness audit of detector_a.onnx: INCOMPLETE</title>" in render_html(ungated)


def test_more_findings_than_fit_are_all_listed_further_down(results: AuditResults) -> None:
    gates = [Gate(f"gate {i}", "ra", 0.99, 0.5, False, "gaussian_noise L5") for i in range(7)]
    many = dataclasses.replace(results, verdict=Verdict(False, gates, "FAIL"))
    out = render_html(many)
    top = first_screen(out)
    total = len(find(many))
    assert top.count('<li class="finding') == report.FINDINGS_SHOWN
    assert f"all {total} findings" in top
    rest = out[out.index('id="how-findings"') :]
    assert rest.count('<li class="finding') == total


def test_how_findings_are_chosen_documents_every_rule(html: str) -> None:
    section = html[html.index('<section id="how-findings"') :]
    section = section[: section.index("</section>")]
    rows = Page(section).table("rules-table")["rows"]
    assert rows == [name for name, _ in RULES]
    for name, text in documented_rules():
        assert str(report.code_spans(text)) in section, name
    assert "at most 0.05" in section  # the threshold's value, not its name
    assert "ranked by severity" in section


def test_summary_lines_name_the_failing_gates(results: AuditResults) -> None:
    lines = summary_lines(results)
    assert lines[0] == report.summary_line(results) and lines[0].endswith("verdict FAIL")
    assert lines[1:] == [
        "auditor:   FAIL: ra >= 0.6 at every level: 0.513 [0.457, 0.569] at gaussian_noise L5, "
        "needs >= 0.6",
        "auditor:   INCONCLUSIVE: RA >= 0.9 at jpeg_compression, levels 1, 2, 3: 0.913 "
        "[0.876, 0.940] at jpeg_compression L3, needs >= 0.9",
    ]
    gates = [Gate(f"gate {i}", "ra", 0.99, 0.5, False, "gaussian_noise L5") for i in range(8)]
    many = summary_lines(dataclasses.replace(results, verdict=Verdict(False, gates, "FAIL")))
    assert len(many) == 1 + report.GATES_SHOWN + 1
    assert many[-1] == "auditor:   and 3 more (see the report)"


def test_check_writes_findings_and_names_the_gate_on_stderr(binary_model, data_dir, tmp_path):
    out = tmp_path / "r.html"
    args = ["check", str(binary_model), "--data", str(data_dir), "-o", str(out), "-p", "contrast"]
    result = CliRunner().invoke(main, [*args, "--fail-under-ra", "0.99"])
    assert result.exit_code == EXIT_GATE_FAILED, result.stderr
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["findings"][0]["rule"] == "gate"
    assert set(data["findings"][0]) == {
        "rule", "severity", "text", "perturbation", "level", "metric", "value", "ci",
    }  # fmt: skip
    assert data["findings"][0]["ci"] is not None  # a quick gate shows its level's interval
    lines = result.stderr.splitlines()
    at = next(i for i, line in enumerate(lines) if "verdict FAIL" in line)
    assert lines[at + 1].startswith("auditor:   FAIL: RA >= 0.99 at every level: ")
    embedded = from_json(read_embedded(out.read_text(), "r").json_text)
    assert embedded.findings == data["findings"]


def test_render_of_results_without_findings_computes_them(tmp_path, results):
    data = json.loads(GOLD.read_text())
    assert "findings" not in data  # the golden results predate findings
    out = tmp_path / "r.html"
    assert CliRunner().invoke(main, ["render", str(GOLD), "-o", str(out)]).exit_code == EXIT_OK
    embedded = from_json(read_embedded(out.read_text(), "r").json_text)
    assert embedded.findings == [f.to_dict() for f in find(results)]
    assert identify(results).findings == embedded.findings


def test_page_css_quotes_names_safely(results: AuditResults) -> None:
    odd = dataclasses.replace(results, model={**results.model, "file_name": 'a"b</style>\n'})
    css = str(report.page_css(odd))
    assert "</style>" not in css and '"b' not in css
    assert r"a\22 b\3c /style\3e \a " in css
    assert 'content: "Report 5f0c2a9e-3b1d-4c6e-9a7f-2d8e1b4c6a90"' in css
    assert 'counter(page) " of " counter(pages)' in css
