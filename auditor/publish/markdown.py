"""A Markdown summary (`--format md`) for `$GITHUB_STEP_SUMMARY` or a merge-request comment.

GitHub-flavoured Markdown: the verdict line, the headline table (per perturbation and
level: parameters, RA, RR at the headline tolerance and flip rate, each with its 95%
interval), then the gates. Names from the results are escaped, so a `|` in a
perturbation's name cannot break a table row.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.publish.figures import (
    HEADLINE,
    Figure,
    clean_figure,
    directions,
    gate_interval,
    level_figures,
    threshold,
)
from auditor.publish.writers import Writer, register
from auditor.report.html import interval, params, rate
from auditor.results import AuditResults, LevelResult

# Backslash-escaped: what would end a cell (`|`) or start a link, emphasis, code, strike,
# HTML or an entity; all ASCII punctuation, which CommonMark lets a backslash escape.
_SPECIAL = set("\\`*[]<|~&")
CHANCE_MARK = "\u2020"  # dagger


@register
class MarkdownWriter(Writer):
    """A Markdown summary for CI job pages and merge requests."""

    name = "md"
    suffix = ".md"
    what = "the Markdown summary"

    def render(self, results: AuditResults) -> str:
        return render_markdown(results)


def render_markdown(results: AuditResults) -> str:
    """Return the GitHub-flavoured Markdown summary of `results`."""
    blocks = [_verdict(results), *_notes(results), _headline(results), *_gates(results)]
    return "\n\n".join(block for block in blocks if block) + "\n"


def escape(text: object) -> str:
    """Escape `text` for a Markdown table cell or line: one line, no markup of its own."""
    line = " ".join(str(text).split())
    return "".join(_escaped(line, i) for i in range(len(line)))


def _escaped(line: str, i: int) -> str:
    char = line[i]
    if char == "_":  # inside a word (`jpeg_compression`) it never makes emphasis
        inside = 0 < i < len(line) - 1 and line[i - 1].isalnum() and line[i + 1].isalnum()
        return char if inside else "\\_"
    return f"\\{char}" if char in _SPECIAL else char


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Return a GFM table of cells already escaped; `right`: the columns aligned right."""
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def _verdict(results: AuditResults) -> str:
    word = results.verdict.result
    model = results.model.get("file_name") or results.model.get("path")
    n = results.clean.get("n", results.data.get("n_samples"))
    line = f"**Verdict: {word}**, {n} samples"
    if results.labelled:
        clean = clean_figure(results)
        line += f", {clean.heading} {clean.text()}"
    if word == "NO GATES":
        line += "; no gate was set, so these are measurements only"
    return f"## auditor: {escape(model)}\n\n{line}."


def _notes(results: AuditResults) -> list[str]:
    notes = []
    if results.status != "complete":
        progress = results.progress or {}
        notes.append(
            f"> **Incomplete**: the audit was interrupted after {progress.get('done', '?')} "
            f"of {progress.get('total', '?')} work units; every figure below is partial."
        )
    if not results.labelled:
        notes.append("> Unlabelled data: RA needs labels and is not measured.")
    return notes


def _headline(results: AuditResults) -> str:
    if not results.results:
        return ""
    chance = _chance(results)
    shown = level_figures(results, results.results[0], HEADLINE)
    header = ["perturbation", "level", "parameters", *(f"{f.heading} [95% CI]" for f in shown)]
    rows = [_level_row(results, level, chance) for level in results.results]
    legend = directions(shown)
    if chance is not None:
        legend += (
            f" {CHANCE_MARK}: the 95% interval reaches chance, {rate(chance)} (the accuracy of "
            "always answering the largest class): not shown to beat guessing."
        )
    text = table(header, rows, {1, *range(3, len(header))})
    return f"### Robustness by perturbation and level\n\n{text}\n\n{legend}"


def _level_row(results: AuditResults, level: LevelResult, chance: float | None) -> list[str]:
    figures = level_figures(results, level, HEADLINE)
    cells = [f.text() + _below_chance(f, chance) for f in figures]
    return [escape(level.perturbation), str(level.level), escape(params(level.params)), *cells]


def _chance(results: AuditResults) -> float | None:
    """The accuracy of always answering the largest class; None when unlabelled."""
    counts = results.data.get("class_counts") or {}
    total = sum(counts.values())
    return max(counts.values()) / total if results.labelled and total else None


def _below_chance(figure: Figure, chance: float | None) -> str:
    """Mark an RA whose interval reaches chance: the model was not shown to beat guessing."""
    if chance is None or figure.metric.key != "ra" or not figure.ci:
        return ""
    return f" {CHANCE_MARK}" if figure.ci[0] <= chance else ""


def _gates(results: AuditResults) -> list[str]:
    gates = results.verdict.gates
    if not gates:
        return []
    rows = [
        [
            escape(g.gate),
            escape(g.where),
            rate(g.value),
            interval(gate_interval(results, g)),
            escape(threshold(g)),
            f"**{g.result}**",
        ]
        for g in gates
    ]
    header = ["gate", "where", "value", "95% CI", "threshold", "outcome"]
    blocks = ["### Gates", table(header, rows, {2})]
    if results.verdict.decision_rule:
        blocks.append(escape(results.verdict.decision_rule))
    return ["\n\n".join(blocks)]
