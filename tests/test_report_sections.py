"""The report's archival sections: identification, method, environment, appendix, form."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from test_report import Page, visible

from auditor.report import sections
from auditor.report.html import render_html
from auditor.report.provenance import identify
from auditor.results import AuditResults, load_json

GOLD = Path(__file__).parent / "gold" / "results.json"
CSS = Path(__file__).parent.parent / "templates" / "report.css"


@pytest.fixture(scope="module")
def results() -> AuditResults:
    return load_json(GOLD)


@pytest.fixture(scope="module")
def html(results: AuditResults) -> str:
    return render_html(results)


def section(html: str, section_id: str) -> str:
    start = html.index(f'<section id="{section_id}"')
    return html[start : html.index("</section>", start)]


def test_identification(results, html):
    ident = section(html, "identification")
    for value in ("5f0c2a9e-3b1d-4c6e-9a7f-2d8e1b4c6a90", "A. Reviewer", "Example Test Lab"):
        assert value in ident
    assert results.started_at in ident and results.finished_at in ident
    assert "2025-03-14T09:26:54+00:00" in ident  # issued
    assert "results relate only to the model file and the data identified" in ident
    assert "End of report" in html[html.index('id="end-of-report"') :]


def test_identify_gives_each_issue_a_new_id(results):
    first = identify(results, "B. Auditor", None)
    again = identify(first)
    assert first.identification["report_id"] != again.identification["report_id"]
    assert again.identification["supersedes"] == first.identification["report_id"]
    assert again.identification["auditor"] == "B. Auditor"  # kept when not given again
    assert first.identification["organisation"] == "Example Test Lab"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", first.identification["issued_at"])


def test_method_comes_before_any_result(html):
    method = html.index('<section id="method"')
    for result_section in ("sample-size", "charts", "levels", "moved", "verdict"):
        assert method < html.index(f'<section id="{result_section}"')
    text = section(html, "method")
    assert "not formal verification" in text
    assert "RA &gt;= 0.9 at jpeg_compression, levels 1, 2, 3" in text  # the criterion
    assert "L1: sigma=0.08; L2: sigma=0.12" in text  # parameters per level
    assert "implementation: codec=OpenCV 4.10.0 libjpeg-turbo 3.0.3" in text
    assert "No adversarial search was run" in text
    assert "Worst-case (adversarial) robustness" in text


def test_threat_model_names_an_adversarial_search(results):
    perts = [*results.config["perturbations"], {"name": "pgd_linf", "family": "adversarial"}]
    attacked = dataclasses.replace(results, config={**results.config, "perturbations": perts})
    assert "An adversarial search was run (pgd_linf)" in sections.threat_model(attacked)
    assert not any("adversarial" in item for item in sections.not_assessed(attacked))


def test_threat_model_describes_the_face_front_end(results):
    assert "face front end" not in sections.threat_model(results)  # no --face-crop
    face = {
        "preset": "sbi",
        "rule": "Self-Blended Images: the box plus w/8 and h/8 on each side, clipped",
        "detector": {"detector": "/models/yunet.onnx", "score": 0.7, "min_size": 32.0},
        "selection": "largest face by box area",
    }
    cropped = dataclasses.replace(results, data={**results.data, "face_crop": face})
    text = sections.threat_model(cropped)
    assert "hit the whole image before a face front end" in text
    assert "/models/yunet.onnx (score at least 0.7, smallest face 32 px)" in text
    assert "the largest face by box area was kept, and the sbi crop (Self-Blended" in text
    videos = dataclasses.replace(cropped, data={**cropped.data, "n_frames": 192})
    assert "hit the whole frame" in sections.threat_model(videos)


def test_item_tested_and_runtime(html):
    model = section(html, "model")
    assert "detector_a.onnx.data" in model and "9400000" in model  # external data
    config = section(html, "configuration")
    assert "CPUExecutionProvider" in config and "graph_optimization_level" in config
    assert "Intel(R) Xeon(R) Gold 6338" in config and "Ubuntu 22.04.4 LTS" in config
    assert "Fell back to another provider" in config
    assert "Decisions that flipped" in config


def test_without_the_newer_keys(results):
    model = {k: v for k, v in results.model.items() if k not in ("runtime", "external_data")}
    env = {k: v for k, v in results.environment.items() if k not in ("os", "cpu", "gpu")}
    perts = [
        {k: v for k, v in p.items() if k != "implementation"}
        for p in results.config["perturbations"]
    ]
    bare = dataclasses.replace(
        results,
        model=model,
        environment=env,
        config={**results.config, "perturbations": perts},
        moved={},
        determinism=None,
        identification={},
    )
    out = render_html(bare)
    assert 'id="external-data"' not in out and 'id="session-options"' not in out
    assert "implementation:" not in out and "No determinism probe" in out
    assert "Report <code>not issued</code>" in out


@pytest.mark.parametrize(
    "probe, note, warning",
    [
        ({"max_abs_diff": 0.0, "decision_flips": 0}, False, False),
        ({"max_abs_diff": 2e-06, "decision_flips": 0}, True, False),
        ({"max_abs_diff": 0.3, "decision_flips": 2}, False, True),
    ],
)
def test_determinism_probe_explains_last_bit_differences(results, probe, note, warning):
    probed = {"n_samples": 8, "n_evaluations": 43, **probe}
    out = visible(render_html(dataclasses.replace(results, determinism=probed)))
    assert ("differences of a few millionths are expected" in out) == note
    assert ("Not deterministic" in out) == warning


def test_moved_samples(results, html):
    moved = section(html, "moved")
    page = Page(moved)
    assert len([a for a in page.all("svg") if a.get("class") == "thumb"]) == 8
    assert "real 0.050, fake 0.950" in moved  # the clean probabilities
    assert [t["id"] for t in page.tables] == ["moved-0", "moved-1"]
    many = {"gaussian_noise": results.moved["gaussian_noise"] * 10}
    shown = section(render_html(dataclasses.replace(results, moved=many)), "moved")
    assert len(Page(shown).all("tr")) - 1 == sections.MOVED_SHOWN  # the JSON keeps all


def test_sample_size_statement(results, html):
    text = section(html, "sample-size")
    clean_half = (results.clean["accuracy_ci"][1] - results.clean["accuracy_ci"][0]) / 2
    assert f"{clean_half:.3f} for the clean accuracy" in text
    assert "Fewer than 100 samples" not in text
    few = dataclasses.replace(
        results, data={**results.data, "class_counts": {"real": 40, "fake": 150}}
    )
    assert "Fewer than 100 samples</strong> in class real" in section(
        render_html(few), "sample-size"
    )


def test_verdict_lists_value_interval_and_outcome(html):
    page = Page(section(html, "verdict"))
    gates = page.table("gates")
    assert gates["cols"] == [
        "Gate",
        "Deciding level",
        "Value",
        "95% interval",
        "Threshold",
        "Outcome",
    ]
    text = section(html, "verdict")
    assert '<span class="verdict verdict-inconclusive">INCONCLUSIVE</span>' in text
    assert "[0.876, 0.940]" in text  # the inconclusive gate's interval


def test_inconclusive_verdict_is_worded(results):
    gates = [g for g in results.verdict.gates if g.result != "FAIL"]
    inconclusive = dataclasses.replace(
        results, verdict=dataclasses.replace(results.verdict, gates=gates, outcome="INCONCLUSIVE")
    )
    out = render_html(inconclusive)
    assert "<title>Robustness audit of detector_a.onnx: INCONCLUSIVE</title>" in out
    assert "not shown to pass" in out and "exits with code 1" in out


def test_crosswalk_and_signature_block(html):
    page = Page(section(html, "crosswalk"))
    clauses = page.table("crosswalk-table")["rows"]
    for clause in ("7.8.2.1 d", "7.8.2.1 l", "7.8.6", "2(g)", "MEASURE 2.1", "MEASURE 2.5"):
        assert clause in clauses
    signature = section(html, "signature")
    assert "A. Reviewer" in signature and "not signed" in signature


def test_embedded_json_is_the_only_script_and_is_data(html):
    assert re.findall(r"<script[^>]*>", html) == [
        '<script type="application/json" id="auditor-results">'
    ]
    assert "<" not in html[html.index('id="auditor-results">') + 23 : html.index("</script>")]


def test_print_stylesheet():
    css = CSS.read_text()
    assert "@page {\n  size: A4;" in css
    printing = css[css.index("@media print") :]
    assert "thead { display: table-header-group; }" in printing
    assert ".scroll { overflow: visible; }" in printing  # wide tables are not clipped


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_text_colours_have_contrast_on_every_background():
    css = CSS.read_text()
    colours = dict(re.findall(r"--([a-z]+): (#[0-9a-f]{6});", css))
    text = ["ink", "muted", "pass", "fail", "inconclusive"]
    backgrounds = ["#ffffff", colours["band"], "#eef4fb", "#fff8c5"]
    for name in text:
        for background in backgrounds:
            ratio = _contrast(colours[name], background)
            assert ratio >= 4.5, f"{name} on {background}: {ratio:.2f}"


def test_outcomes_are_words_not_only_colours(html):
    badges = re.findall(r'<span class="verdict verdict-([a-z-]+)">([A-Z ]+)</span>', html)
    assert badges and all(cls.replace("-", " ") == word.lower() for cls, word in badges)


def test_visible_report_keeps_full_manifest_out(results, html):
    """The manifest is listed in the JSON only; the page shows its digest."""
    shown = visible(html)
    assert results.data["manifest_sha256"] in shown
    assert results.data["manifest"][0]["sha256"] not in shown
    assert results.data["manifest"][0]["sha256"] in html  # in the embedded JSON


def test_deviations_are_listed_in_the_method(results, html):
    text = section(html, "method")
    assert "2 data file(s) could not be used" in text and "repeats = 1" in text
    cut = dataclasses.replace(
        results,
        status="incomplete",
        progress={"done": 10, "total": 40},
        config={**results.config, "limit": 50},
    )
    items = sections.deviations(cut)
    assert any("interrupted after 10 of 40" in item for item in items)
    assert any("At most 50 samples" in item for item in items)
    assert "interrupted after 10 of 40" in render_html(cut)  # also among the warnings
