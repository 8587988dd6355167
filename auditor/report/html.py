"""Render an audit's results as one self-contained HTML report, and its summary line.

This module reads only an `AuditResults`; it never imports onnxruntime, OpenCV or the
engine, so `auditor render results.json` and the report tests need no model.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from auditor.config import report_rows
from auditor.metrics.catalogue import CATALOGUE, Metric, get, measure
from auditor.report import charts, pixels, sections
from auditor.report.integrity import EMBED_ID, digest
from auditor.report.sections import FEW_SAMPLES
from auditor.results import AuditResults, to_json
from auditor.verdict import findings as rules
from auditor.verdict.gates import NO_GATES
from auditor.version import __version__

MISSING = "\u2014"
SKIPPED_SHOWN = 50  # a data folder full of broken files must not bloat the report
FINDINGS_SHOWN = 6  # on the first screen; the rest are listed under "How findings are chosen"
GATES_SHOWN = 5  # failing gates named on stderr after the summary line
NOT_ASSESSED = "Not assessed against a policy: measurements only"
DELTA_NORMS = {
    "linf": "L-inf: the largest change of any class probability",
    "l1": "L1: the sum of the absolute changes of the class probabilities",
    "true-class": "true class: the change of the probability of the labelled class",
}


def _templates_dir() -> Path:
    """Return the template folder: package data when installed, else the checkout's."""
    packaged = importlib.resources.files("auditor") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "templates"


def rate(value: float | None) -> str:
    """Format a rate with 3 decimals, or a dash when there is none."""
    return MISSING if value is None else f"{value:.3f}"


def interval(ci: list[float] | None) -> str:
    """Format a 95% interval as `[0.812, 0.901]`, or nothing when there is none."""
    return "" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def signed(value: float | None) -> str:
    return MISSING if value is None else f"{value:+.3f}"


def show(value: Any) -> str:
    """Format any JSON value for a details table."""
    if isinstance(value, Markup):  # already escaped and marked up here
        return value
    if value is None or value == "":
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k}={show(v)}" for k, v in value.items())
    return str(value)


def code_spans(text: str | None) -> Markup:
    """Escape `text` and show its backtick spans (as in docstrings) as code."""
    escaped = str(Markup.escape(text or MISSING))
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped))


def params(values: dict[str, Any]) -> str:
    """Format a level's parameters as `sigma=0.08, quality=25`."""
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_templates_dir()),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        rate=rate, interval=interval, signed=signed, show=show, params=params, code_spans=code_spans
    )
    env.globals.update(anchor=anchor, thumbnail=pixels.thumbnail)
    # Every template and macro names and reads metrics through the catalogue.
    env.globals.update(metrics=CATALOGUE, measure=measure)
    return env


def jinja_environment() -> jinja2.Environment:
    """Return the Jinja environment of the report templates, with the report's filters."""
    return _environment()


def stylesheet() -> Markup:
    """Return the report stylesheet, inlined by every page `auditor` writes."""
    return Markup((_templates_dir() / "report.css").read_text(encoding="utf-8"))


def verdict_word(results: AuditResults) -> str:
    """Return `PASS`, `FAIL`, `INCONCLUSIVE`, or `NO GATES` when nothing was gated."""
    return results.verdict.result


@dataclass(frozen=True)
class Headline:
    """What the top of the report says: the title's words and the verdict sentence."""

    badges: list[str]  # `["FAIL"]`, `["INCOMPLETE", "FAIL"]`, `["MEASUREMENTS ONLY"]`
    sentence: str
    incomplete: bool

    @property
    def title(self) -> str:
        return ", ".join(self.badges)


def headline(results: AuditResults) -> Headline:
    """The verdict as the report's first screen states it.

    Without gates the audit was not assessed against a policy (it does not "pass");
    an interrupted audit says INCOMPLETE first and that its figures are a partial subset.
    """
    word = verdict_word(results)
    incomplete = results.status != "complete"
    badges = ["INCOMPLETE"] if incomplete else []
    if word != NO_GATES:
        badges.append(word)
        sentence = f"{word}: {_gate_counts(results)}."
    else:
        badges += [] if incomplete else ["MEASUREMENTS ONLY"]
        sentence = (
            f"{NOT_ASSESSED}. No pass/fail criterion was set (--policy FILE.toml, "
            "--fail-under-ra, --fail-under-rr)."
        )
    if incomplete:
        progress = results.progress or {}
        sentence = (
            f"INCOMPLETE: the audit was interrupted after {progress.get('done', '?')} of "
            f"{progress.get('total', '?')} work units. Every figure, finding and chart here "
            "comes from the partial subset of samples and levels that finished, which need "
            f"not represent the data. {sentence}"
        )
    return Headline(badges, sentence, incomplete)


def _gate_counts(results: AuditResults) -> str:
    gates = results.verdict.gates
    failed = sum(g.result == "FAIL" for g in gates)
    unsure = sum(g.result == "INCONCLUSIVE" for g in gates)
    if not failed and not unsure:
        return f"every gate passed ({len(gates)} of {len(gates)})"
    parts = [f"{failed} failed"] if failed else []
    parts += [f"{unsure} inconclusive"] if unsure else []
    return f"{' and '.join(parts)} of {len(gates)} gate(s); each is a finding below"


def _worst(results: AuditResults, metric: Metric) -> tuple[float, str] | None:
    """Return the lowest value of `metric` over all levels and where it is (`gaussian_noise L5`).

    A metric measured per tolerance is read at the headline tolerance. Levels that changed
    no pixel (`no_effect`) measured nothing and are left out.
    """
    key = results.headline_key
    found = [
        (v, f"{r.perturbation} L{r.level}")
        for r in results.results
        if not r.no_effect and (v := measure(metric, r, key)[0]) is not None
    ]
    return min(found, key=lambda pair: pair[0]) if found else None


def summary_line(results: AuditResults) -> str:
    """Return the one-line human summary printed on stderr after an audit."""
    key = results.headline_key
    n = results.clean.get("n", results.data.get("n_samples"))
    head = f"auditor: {results.model.get('file_name', results.model.get('path'))}, {n} samples"
    parts = []
    ra, rr, clean = get("ra"), get("rr"), get("clean_accuracy")
    if results.labelled:
        head += f", {clean.label} {rate(measure(clean, results.clean)[0])}"
        if worst := _worst(results, ra):
            parts.append(f"worst {ra.label} {rate(worst[0])} ({worst[1]})")
    if worst := _worst(results, rr):
        parts.append(f"worst {rr.label}@{key} {rate(worst[0])} ({worst[1]})")
    word = verdict_word(results)
    parts.append("measurements only, no policy" if word == NO_GATES else f"verdict {word}")
    return "; ".join([head, *parts])


def summary_lines(results: AuditResults) -> list[str]:
    """The summary line, then each failing or inconclusive gate (at most `GATES_SHOWN`)."""
    gates = rules.gate_findings(results)
    lines = [summary_line(results)]
    lines += [f"auditor:   {finding.text}" for finding in gates[:GATES_SHOWN]]
    if len(gates) > GATES_SHOWN:
        lines.append(f"auditor:   and {len(gates) - GATES_SHOWN} more (see the report)")
    return lines


def tested(results: AuditResults) -> str:
    """What was tested, in one line: model, data per class, perturbations, tolerance, repeats."""
    model = results.model.get("file_name") or results.model.get("path") or "the model"
    sha = str(results.model.get("sha256") or "")[:12]
    counts = results.data.get("class_counts") or {}
    n = results.clean.get("n", results.data.get("n_samples"))
    per_class = ", ".join(f"{count} {name}" for name, count in counts.items())
    data = f"{n} samples" + (f" ({per_class})" if per_class else ", unlabelled")
    if results.data.get("path"):
        data += f" from {results.data['path']}"
    keys = results.tolerance_keys
    others = [k for k in keys if k != results.headline_key]
    tolerance = f"RR tolerance b = {results.headline_key}" + (
        f" (also {', '.join(others)})" if others else ""
    )
    repeats = results.config.get("repeats") or 1
    draws = f"{repeats} draw{'s' if repeats != 1 else ''} per sample and level"
    head = f"{model}" + (f" (sha256 {sha}…)" if sha else "")
    return f"{head} on {data}; {_suite(results)}; {tolerance}; {draws}."


def _suite(results: AuditResults) -> str:
    """`suite quick: 7 perturbations at L1-L5 (gaussian_noise, ...)`."""
    planned = [
        (str(p.get("name")), len(p.get("levels") or []))
        for p in results.config.get("perturbations") or []
    ]
    if not planned:
        planned = [(name, len(rows)) for name, rows in charts.by_perturbation(results).items()]
    counts = {count for _, count in planned}
    if len(counts) == 1:
        (count,) = counts
        listed = f"at {rules.levels_text(range(1, count + 1))} ({', '.join(n for n, _ in planned)})"
    else:
        listed = (
            "(" + ", ".join(f"{n} {rules.levels_text(range(1, c + 1))}" for n, c in planned) + ")"
        )
    suite = results.config.get("suite")
    head = f"suite {suite}: " if suite else "perturbations given with -p: "
    return f"{head}{len(planned)} perturbation{'s' if len(planned) != 1 else ''} {listed}"


def anchor(kind: str, perturbation: str, level: int) -> str:
    """The id of a level's row: `lvl-jpeg_compression-L3` (`cls-` in the per-class table).

    A name with other characters than letters, digits, `_` and `-` gets a short digest,
    so that the id stays valid and unique.
    """
    slug = re.sub(r"[^A-Za-z0-9_-]", "-", perturbation)
    if slug != perturbation:
        slug += "-" + hashlib.sha256(perturbation.encode("utf-8")).hexdigest()[:8]
    return f"{kind}-{slug}-L{level}"


def finding_items(results: AuditResults, binary: bool) -> list[dict[str, Any]]:
    """The findings to list (as issued, or computed for results never issued), each linked.

    A finding links to its evidence: the gates table, the per-class row of a binary
    detector, or the level's row in the table of every level.
    """
    found = results.findings
    if found is None:
        found = [f.to_dict() for f in rules.find(results)]
    levels = {(r.perturbation, r.level) for r in results.results}
    items = []
    for finding in found:
        where = (finding.get("perturbation"), finding.get("level"))
        if finding.get("rule") == "gate":
            href, label = "#gates", "the gates"
        elif where in levels:
            kind = "cls" if binary and str(finding.get("rule", "")).startswith("class_") else "lvl"
            href, label = (
                f"#{anchor(kind, str(where[0]), int(where[1] or 0))}",
                f"{where[0]} L{where[1]}",
            )
        else:
            href, label = "#levels", "every level"
        items.append({**finding, "href": href, "evidence": label})
    return items


def page_css(results: AuditResults) -> Markup:
    """The running header and footer of a printed report: model, report id, page N of M."""
    model = str(results.model.get("file_name") or results.model.get("path") or "")
    report = str((results.identification or {}).get("report_id") or "not issued")
    status = "" if results.status == "complete" else " (INCOMPLETE)"
    return Markup(
        "@page {\n"
        f"  @top-left {{ content: {css_string('Robustness audit of ' + model + status)}; }}\n"
        f"  @top-right {{ content: {css_string('Report ' + report)}; }}\n"
        '  @bottom-right { content: "Page " counter(page) " of " counter(pages); }\n'
        f"  @bottom-left {{ content: {css_string('auditor ' + __version__)}; }}\n"
        "}\n"
    )


def css_string(text: str) -> str:
    """`text` as a quoted CSS string that cannot end the string or the <style> element."""
    out = []
    for char in text:
        if char.isalnum() or char in " .,:;_-()/+=@#[]{}!?*'":
            out.append(char)
        else:  # a CSS hex escape, closed by a space
            out.append(f"\\{ord(char):x} ")
    return '"' + "".join(out) + '"'


def _binary_classes(model: dict[str, Any]) -> tuple[str, str] | None:
    """Return (negative, positive) class names of a binary detector, else None."""
    classes = [str(c) for c in model.get("classes") or []]
    if model.get("task") != "binary" or len(classes) != 2:
        return None
    positive = model.get("positive_class") or classes[1]
    if positive not in classes:
        return None
    return classes[0] if positive == classes[1] else classes[1], positive


def _thumbnails(results: AuditResults) -> dict[str, Any] | None:
    """Return the thumbnail rows to show, keeping only inline image URIs."""
    thumbs = results.thumbnails or {}
    levels = thumbs.get("levels") or {}
    if not levels:
        return None

    safe = sections.safe_image
    rows = [(name, [safe(u) for u in uris]) for name, uris in levels.items()]
    width = max(len(uris) for _, uris in rows)
    return {
        "sample": thumbs.get("sample", ""),
        "clean": safe(thumbs.get("clean")),
        "rows": rows,
        "levels": list(range(1, width + 1)),
    }


def _warnings(results: AuditResults) -> list[str]:
    """Return the caveats a reader must see next to the numbers."""
    notes = []
    for name, count in (results.data.get("class_counts") or {}).items():
        if count < FEW_SAMPLES:
            notes.append(f"Only {count} samples of class {name}: its intervals are wide.")
    n = results.clean.get("n") or 0
    if not results.data.get("class_counts") and n < FEW_SAMPLES:
        notes.append(f"Only {n} samples: the intervals are wide.")
    if results.status != "complete":
        progress = results.progress or {}
        notes.append(
            f"The audit was interrupted after {progress.get('done', '?')} of "
            f"{progress.get('total', '?')} work units: the results are incomplete."
        )
    skipped = results.data.get("n_skipped") or 0
    if skipped:
        were = "file was" if skipped == 1 else "files were"
        notes.append(f"{skipped} {were} skipped (see Data).")
    return notes


def _context(
    results: AuditResults, json_text: str, signature: dict[str, str] | None
) -> dict[str, Any]:
    """Gather what the templates show, computed once here rather than in Jinja."""
    config = results.config
    skipped = results.data.get("skipped") or []
    command_line = _command_line(config.get("command_line") or [])
    delta_norm = DELTA_NORMS.get(config.get("delta_norm", "linf"), config.get("delta_norm"))
    preprocess = results.model.get("preprocess") or {}
    sources = results.model.get("preprocess_sources") or {}
    binary = _binary_classes(results.model)
    found = finding_items(results, bool(binary and results.labelled))
    embedded, images = pixels.stored(json_text)
    return {
        "r": results,
        "version": __version__,
        "css": stylesheet(),
        "page_css": page_css(results),
        "verdict": verdict_word(results),
        "top": headline(results),
        "tested": tested(results),
        "findings": found[:FINDINGS_SHOWN],
        "findings_more": found[FINDINGS_SHOWN:],
        "findings_all": found,
        "rules": rules.documented_rules(),
        "severity": rules.SEVERITY,
        "ranking": rules.ranking(),
        "chance": charts.chance(results),
        "pixel_store": pixels.store(images),
        "labelled": results.labelled,
        "keys": results.tolerance_keys,
        "headline": results.headline_key,
        "groups": list(charts.by_perturbation(results).items()),
        # Results from before the pixel change was recorded have none: no columns for it.
        "pixels": any(r.changed_share is not None for r in results.results),
        # --face-crop: the face-found rate and crop shift beside n.
        "faces": any(r.face_found_rate is not None for r in results.results),
        "face_video": bool(results.data.get("n_frames")),  # videos: the rate counts frames
        "binary": binary,
        "worst_ra": _worst(results, get("ra")),
        "worst_rr": _worst(results, get("rr")),
        "warnings": _warnings(results),
        "chart_headline": Markup(charts.headline(results)),
        "chart_per_class": Markup(svg)
        if binary and (svg := charts.per_class(results, *binary))
        else None,
        "chart_rrb": Markup(svg) if (svg := charts.rr_by_tolerance(results)) else None,
        "thumbs": _thumbnails(results),
        "preprocess": [(k, v, sources.get(k, MISSING)) for k, v in preprocess.items()],
        "skipped": skipped[:SKIPPED_SHOWN],
        "skipped_more": max(0, len(skipped) - SKIPPED_SHOWN),
        "delta_norm": delta_norm,
        "config_rows": _config_rows(results, command_line, delta_norm),
        "ident": results.identification or {},
        "digest": digest(json_text),
        "signature": signature,
        "embed_id": EMBED_ID,
        # to_json escapes <, > and &, so no string in it can close the <script> block;
        # the thumbnails' pixels are in the pixel store, named in it by digest
        "json_text": Markup(embedded),
        "method_class": sections.METHOD_CLASS,
        "threat_model": sections.threat_model(results),
        "not_assessed": sections.not_assessed(results),
        "adversarial": sections.adversarial(results),
        "search_rows": sections.search_rows(results),
        "search_queries": (results.adversarial or {}).get("queries"),
        "sample_size": sections.sample_size(results),
        "moved": sections.moved(results),
        "environment_rows": sections.environment_rows(results),
        "session_options": sections.session_options(results),
        "external_data": results.model.get("external_data") or [],
        "crosswalk": sections.CROSSWALK,
        "section_titles": sections.SECTION_TITLES,
        "deviations": sections.deviations(results),
        "policy": results.verdict.policy,
    }


def _command_line(command: list[str]) -> Any:
    return Markup("<code>{}</code>").format(shlex.join(map(str, command))) if command else MISSING


def _config_rows(results: AuditResults, command_line: Any, delta_norm: Any) -> list[Any]:
    """The configuration table: each declared row (`config.report_rows`) that `results` record.

    The rows shown in a form of their own are always there; another row is left out of
    results from before its setting was recorded.
    """
    special = {
        "command_line": command_line,
        "tolerances": ", ".join(results.tolerance_keys),
        "headline_tolerance": results.headline_key,
        "delta_norm": delta_norm,
    }
    config = results.config
    return [
        (label, special[key] if key in special else config[key])
        for label, key in report_rows()
        if key in special or key in config
    ]


def render_html(
    results: AuditResults,
    signature: dict[str, str] | None = None,
    json_text: str | None = None,
) -> str:
    """Return the standalone HTML report of `results`, embedding their JSON.

    `json_text` is the JSON to embed (by default `to_json(results)`); `signature` is what
    `auditor.report.integrity.sign` returned for that JSON's digest, shown in the header.
    """
    text = to_json(results) if json_text is None else json_text
    context = _context(results, text, signature)
    return _environment().get_template("report.html").render(context)
