"""Render an audit's results as one self-contained HTML report, and its summary line.

This module reads only an `AuditResults`; it never imports onnxruntime, OpenCV or the
engine, so `auditor render results.json` and the report tests need no model.
"""

from __future__ import annotations

import importlib.resources
import re
import shlex
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from auditor.config import report_rows
from auditor.metrics.catalogue import CATALOGUE, Metric, get, measure
from auditor.report import charts, sections
from auditor.report.integrity import EMBED_ID, digest
from auditor.report.sections import FEW_SAMPLES
from auditor.results import AuditResults, to_json
from auditor.version import __version__

MISSING = "\u2014"
SKIPPED_SHOWN = 50  # a data folder full of broken files must not bloat the report
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
    parts.append("no gates" if word == "NO GATES" else f"verdict {word}")
    return "; ".join([head, *parts])


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
    return {
        "r": results,
        "version": __version__,
        "css": stylesheet(),
        "verdict": verdict_word(results),
        "labelled": results.labelled,
        "keys": results.tolerance_keys,
        "headline": results.headline_key,
        "groups": list(charts.by_perturbation(results).items()),
        # Results from before the pixel change was recorded have none: no columns for it.
        "pixels": any(r.changed_share is not None for r in results.results),
        # --face-crop: the face-found rate and crop shift beside n.
        "faces": any(r.face_found_rate is not None for r in results.results),
        "binary": _binary_classes(results.model),
        "worst_ra": _worst(results, get("ra")),
        "worst_rr": _worst(results, get("rr")),
        "warnings": _warnings(results),
        "chart_ra": Markup(svg) if (svg := charts.ra_by_level(results)) else None,
        "chart_rr": Markup(charts.rr_by_level(results)),
        "charts_rr_b": [(n, Markup(svg)) for n, svg in charts.rr_by_tolerance(results)],
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
        # to_json escapes <, > and &, so no string in it can close the <script> block
        "json_text": Markup(json_text),
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
