"""`--format md`: the Markdown summary, parsed as GitHub-flavoured Markdown (markdown-it-py)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from auditor.metrics.catalogue import CATALOGUE
from auditor.publish import WRITERS
from auditor.publish.markdown import CHANCE_MARK, escape, render_markdown
from auditor.results import AuditResults, Gate, Verdict, load_json

GOLD = Path(__file__).parent / "gold" / "results.json"
NASTY = "a|b *c* _d_ <b>x</b> [l](u) `e` ~~s~~ &amp; \\"


@pytest.fixture(scope="module")
def results() -> AuditResults:
    return load_json(GOLD)


def parse(text: str) -> tuple[list[str], list[list[list[str]]]]:
    """Return the paragraphs' text and each table as rows of cell text (header first)."""
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    paragraphs, tables = [], []
    cell_open = False
    for token in tokens:
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            tables[-1].append([])
        elif token.type in ("th_open", "td_open"):
            cell_open = True
        elif token.type in ("th_close", "td_close"):
            cell_open = False
        elif token.type == "inline":
            shown = "".join(child.content for child in token.children or [])
            if cell_open:
                tables[-1][-1].append(shown)
            else:
                paragraphs.append(shown)
    return paragraphs, tables


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_verdict_then_headline_table_then_gates(results):
    text = render_markdown(results)
    paragraphs, (headline, gates) = parse(text)
    assert paragraphs[0] == "auditor: detector_a.onnx"
    assert paragraphs[1] == "Verdict: FAIL, 300 samples, clean accuracy 0.943 [0.911, 0.964]."
    rr = CATALOGUE["rr"].heading("0.1")
    assert headline[0] == [
        "perturbation",
        "level",
        "parameters",
        "RA [95% CI]",
        f"{rr} [95% CI]",
        "flip rate [95% CI]",
    ]
    assert len(headline) == 1 + len(results.results)
    l3 = headline[8]
    assert l3[:3] == ["jpeg_compression", "3", "quality=15"]
    assert l3[3:] == ["0.913 [0.876, 0.940]", "1.000 [0.987, 1.000]", "0.050 [0.031, 0.081]"]
    assert gates[0] == ["gate", "where", "value", "95% CI", "threshold", "outcome"]
    assert gates[3] == [
        "RA >= 0.9 at jpeg_compression, levels 1, 2, 3",
        "jpeg_compression L3",
        "0.913",
        "[0.876, 0.940]",
        ">= 0.9",
        "INCONCLUSIVE",
    ]
    # a quick gate decides on the value; its worst level's interval is shown beside it
    assert gates[1][3] == "[0.457, 0.569]" and gates[1][5] == "FAIL"
    assert "Higher is better for RA and RR(b=0.1); lower is better for flip rate." in text


def test_an_interval_reaching_chance_is_marked(results):
    _, (headline, _) = parse(render_markdown(results))
    # balanced classes: chance is 0.5; gaussian_noise L5's RA interval starts at 0.457
    assert headline[5][3] == f"0.513 [0.457, 0.569] {CHANCE_MARK}"
    assert headline[4][3] == "0.650 [0.594, 0.702]"


def test_names_cannot_break_a_table(results):
    rows = [dataclasses.replace(r, perturbation=NASTY) for r in results.results]
    gate = Gate(f"RA >= 0.5 at {NASTY}", "ra", 0.5, 0.4, False, f"{NASTY}\nL1", outcome="FAIL")
    odd = dataclasses.replace(
        results, results=rows, verdict=Verdict(False, [gate], "FAIL"), model={"file_name": NASTY}
    )
    text = render_markdown(odd)
    paragraphs, (headline, gates) = parse(text)
    assert all(len(row) == 6 for row in headline + gates)
    assert {row[0] for row in headline[1:]} == {NASTY}
    assert gates[1][:2] == [f"RA >= 0.5 at {NASTY}", f"{NASTY} L1"]
    assert paragraphs[0] == f"auditor: {NASTY}"
    for line in text.splitlines():  # the strict check, without a Markdown parser
        if line.startswith("|"):
            assert unescaped_pipes(line) == 7, line
    assert "<b>" not in MarkdownIt("commonmark").enable("table").render(text)


def test_escape_keeps_words_readable():
    assert escape("jpeg_compression") == "jpeg_compression"
    assert escape("_x_ a|b\nc") == "\\_x\\_ a\\|b c"


def test_unlabelled_audit_has_no_ra_and_says_why(results):
    rows = [dataclasses.replace(r, ra=None, ra_ci=None) for r in results.results]
    clean = {"n": 300, "accuracy": None, "accuracy_ci": None}
    odd = dataclasses.replace(
        results, results=rows, clean=clean, data={**results.data, "class_counts": {}}
    )
    text = render_markdown(odd)
    paragraphs, (headline, _) = parse(text)
    assert headline[0][3:] == ["RR(b=0.1) [95% CI]", "flip rate [95% CI]"]
    assert "Unlabelled data: RA needs labels and is not measured." in paragraphs
    assert "clean accuracy" not in paragraphs[1] and CHANCE_MARK not in text


def test_no_gates_no_gate_table_and_an_incomplete_audit_says_so(results):
    partial = dataclasses.replace(
        results,
        verdict=Verdict(True, [], "NO GATES"),
        status="incomplete",
        progress={"done": 10, "total": 3300},
    )
    text = render_markdown(partial)
    paragraphs, tables = parse(text)
    assert len(tables) == 1 and "### Gates" not in text
    assert paragraphs[1].endswith("no gate was set, so these are measurements only.")
    assert "interrupted after 10 of 3300 work units" in paragraphs[2]
    assert text.splitlines()[4].startswith("> **Incomplete**")


def test_written_file_is_the_rendered_text(results, tmp_path):
    WRITERS["md"].write(results, tmp_path / "summary.md")
    assert (tmp_path / "summary.md").read_text(encoding="utf-8") == render_markdown(results)
