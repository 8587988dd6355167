"""What the report's method, sample-size, environment and appendix sections show.

Pure functions of an `AuditResults` (no rendering); `auditor.report.html` hands their output
to the templates. Every key they read may be absent in older or partial results.
"""

from __future__ import annotations

import re
from typing import Any

from auditor.metrics.catalogue import CATALOGUE, LEVEL, Metric, get, measure
from auditor.results import AuditResults

FEW_SAMPLES = 100  # below this many per class the metrics spec asks for a warning
MOVED_SHOWN = 5  # samples per perturbation in the report; the JSON keeps what the engine gave
METHOD_CLASS = (
    "Empirical testing with benign perturbations: each sample is perturbed at fixed, "
    "listed strengths and the model's output is measured. This is not formal verification: "
    "it proves no bound for inputs that were not tested."
)
# Only inline raster images may reach an <img>: results JSON can come from anywhere.
IMAGE_URI = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+")


def safe_image(uri: Any) -> str | None:
    """Return `uri` if it is an inline raster image, else None."""
    return uri if isinstance(uri, str) and IMAGE_URI.fullmatch(uri) else None


def adversarial(results: AuditResults) -> list[str]:
    """Return the names of the perturbations of family `adversarial` that were run."""
    return [
        str(p.get("name"))
        for p in results.config.get("perturbations") or []
        if p.get("family") == "adversarial"
    ]


def threat_model(results: AuditResults) -> str:
    """Return the threat-model statement: which inputs the results speak for."""
    searched = adversarial(results)
    benign = (
        "The benign perturbations model accidental degradation (noise, blur, compression, "
        "lighting) of the strengths listed, drawn at random; they say how the model behaves "
        "on such inputs on average, not how it behaves against someone who chooses the "
        "perturbation to fool it."
    )
    benign += front_end(results)
    if searched:
        search = results.adversarial or {}
        concrete = search.get("threat_model") or (
            "For each sample it looked for a perturbation within the listed budget that "
            "changes the output most."
        )
        return (
            f"{benign} An adversarial search was run ({', '.join(searched)}). {concrete} "
            f"{search.get('metrics', '')}{'.' if search.get('metrics') else ''} "
            "Its rows are a lower bound on the damage an attacker with that budget and access "
            "can do; a stronger or differently-informed attack may do more."
        )
    return (
        f"{benign} No adversarial search was run. Such a search would look, per sample, for "
        "the perturbation within a budget that changes the output most, and would bound what "
        "a deliberate attacker can do; these results give no such bound."
    )


def front_end(results: AuditResults) -> str:
    """With `--face-crop`: where the perturbation hit and how the face crop was found
    (a sentence that starts with a space), else ""."""
    data = results.data or {}
    face = data.get("face_crop")
    if not isinstance(face, dict):
        return ""
    found_by = face.get("detector")
    detector: dict[str, Any] = found_by if isinstance(found_by, dict) else {}
    media = "frame" if data.get("n_frames") else "image"
    return (
        f" Each perturbation hit the whole {media} before a face front end, as in a deployed "
        f"detector: the face detector {detector.get('detector', '(unknown)')} (score at least "
        f"{_number(detector.get('score'))}, smallest face {_number(detector.get('min_size'))} "
        f"px) ran on the perturbed pixels, the {face.get('selection', 'largest face')} was "
        f"kept, and the {face.get('preset')} crop ({face.get('rule')}) went to the model. A "
        "face the detector missed counts against the model: that decision was never made, so "
        "it is not a correct one."
    )


def _number(value: Any) -> str:
    """A recorded threshold as written (20.0 -> 20), or "?" where it is missing."""
    return f"{value:g}" if isinstance(value, (int, float)) else "?"


SEARCH_OBJECTIVES = {"flip": "flip the decision (RA)", "delta": "move the output (RR)"}


def search_rows(results: AuditResults) -> list[dict[str, Any]]:
    """Per searched level and objective: success fraction and queries spent (median, p90).

    A gradient attack's rows also say where its gradient came from (`gradient`: None for
    a black-box search) and how far the twin was from onnxruntime (`fidelity`).
    """
    rows = []
    search = results.adversarial or {}
    for name, levels in (search.get("perturbations") or {}).items():
        for entry in levels:
            for objective, label in SEARCH_OBJECTIVES.items():
                figures = entry.get(objective) or {}
                rows.append(
                    {
                        "perturbation": name,
                        "level": entry.get("level"),
                        "params": entry.get("params") or {},
                        "objective": label,
                        "success": figures.get("success_fraction"),
                        "median": figures.get("queries_median"),
                        "p90": figures.get("queries_p90"),
                        "unaffected": figures.get("unaffected"),
                        **gradient_cells(entry),
                    }
                )
    return rows


def gradient_cells(entry: dict[str, Any]) -> dict[str, Any]:
    """A gradient attack's level: "white-box" or a transfer label, and the twin's fidelity."""
    fidelity = entry.get("twin_fidelity")
    if not isinstance(fidelity, dict):
        return {"gradient": None, "fidelity": None}
    worst = max(float(fidelity.get("clean") or 0.0), float(fidelity.get("adversarial") or 0.0))
    trusted = bool(fidelity.get("trusted"))
    label = "white-box" if trusted else "transfer attack (inexact surrogate: gradient untrusted)"
    return {"gradient": label, "fidelity": worst}


def not_assessed(results: AuditResults) -> list[str]:
    """Return what this audit did not assess, so a reader does not assume it did."""
    items = []
    if not adversarial(results):
        items.append("Worst-case (adversarial) robustness: no adversarial search was run.")
    if not results.labelled:
        # the gateable metrics are the headline ones; of them, these need no labels
        unlabelled = [m.label for m in CATALOGUE.values() if m.gateable and not m.needs_labels]
        items.append(
            "Accuracy: the data carried no labels, so only output stability "
            f"({', '.join(unlabelled)}) was measured."
        )
    items += [
        "Perturbations, strengths and combinations other than those listed under Method.",
        "Natural distribution shift (other cameras, sources, generators, populations) "
        "beyond the data tested.",
        "Performance on subgroups of the data other than the classes shown (fairness, bias).",
        "Calibration of the probabilities, and the choice of decision threshold.",
        "Formal guarantees of any kind; the security of the model file and of the "
        "deployment pipeline.",
        "The model's training data and process, and its behaviour with preprocessing "
        "other than that stated.",
    ]
    return items


def deviations(results: AuditResults) -> list[str]:
    """Return the exclusions and departures from a full run of the stated method."""
    items = []
    if results.status != "complete":
        progress = results.progress or {}
        items.append(
            f"The audit was interrupted after {progress.get('done', '?')} of "
            f"{progress.get('total', '?')} work units; untested levels are missing."
        )
    if results.config.get("limit"):
        items.append(f"At most {results.config['limit']} samples were audited (--limit).")
    skipped = results.data.get("n_skipped") or 0
    if skipped:
        items.append(f"{skipped} data file(s) could not be used and were excluded (see Data).")
    if (results.config.get("repeats") or 1) == 1:
        items.append("One random draw per sample and level (repeats = 1), not a search over draws.")
    return items


SECTION_TITLES = {
    "identification": "Identification",
    "method": "Method",
    "model": "The item tested",
    "data": "Data",
    "levels": "Every perturbation and level",
    "verdict": "Gates and verdict",
    "configuration": "Configuration and environment",
    "not-assessed": "Not assessed",
    "signature": "Signature",
}


def _half(ci: Any) -> float | None:
    return (ci[1] - ci[0]) / 2 if ci and len(ci) == 2 else None


def _widest(results: AuditResults, metric: Metric) -> float | None:
    """The widest half-width of `metric`'s intervals (at the headline tolerance), if any."""
    if metric.scope != LEVEL:
        return _half(measure(metric, results.clean)[1])
    key = results.headline_key
    halves = [h for r in results.results if (h := _half(measure(metric, r, key)[1])) is not None]
    return max(halves) if halves else None


def sample_size(results: AuditResults) -> dict[str, Any]:
    """Return the sample-size statement: n, per-class counts and interval half-widths."""
    counts = results.data.get("class_counts") or {}
    return {
        "n": results.clean.get("n", results.data.get("n_samples")),
        "counts": counts,
        "small": sorted(name for name, count in counts.items() if count < FEW_SAMPLES),
        "clean_half": _widest(results, get("clean_accuracy")),
        "ra_half": _widest(results, get("ra")),
        "rr_half": _widest(results, get("rr")),
    }


def moved(results: AuditResults) -> list[tuple[str, list[dict[str, Any]]]]:
    """Return per perturbation the samples that moved most, with only safe thumbnails."""
    classes = [str(c) for c in results.model.get("classes") or []]
    out = []
    for name, rows in (results.moved or {}).items():
        shown = []
        for row in (rows or [])[:MOVED_SHOWN]:
            shown.append(
                {
                    **row,
                    "clean_thumbnail": safe_image(row.get("clean_thumbnail")),
                    "perturbed_thumbnail": safe_image(row.get("perturbed_thumbnail")),
                    "clean_text": probabilities(row.get("clean_probs"), classes),
                    "perturbed_text": probabilities(row.get("perturbed_probs"), classes),
                }
            )
        out.append((str(name), shown))
    return out


def probabilities(probs: Any, classes: list[str]) -> str:
    """Format a probability vector as `real 0.912, fake 0.088`."""
    if not isinstance(probs, list) or not probs:
        return "\u2014"
    names = classes if len(classes) == len(probs) else [str(i) for i in range(len(probs))]
    return ", ".join(f"{n} {float(p):.3f}" for n, p in zip(names, probs))


def environment_rows(results: AuditResults) -> list[tuple[str, Any]]:
    """Return the environment table: versions, provider, hardware and OS."""
    env = results.environment
    runtime = results.model.get("runtime") or {}
    rows: list[tuple[str, Any]] = [
        ("auditor", env.get("auditor")),
        ("Python", env.get("python")),
        ("onnxruntime", env.get("onnxruntime")),
        ("Execution provider that ran", runtime.get("provider") or env.get("provider")),
    ]
    if runtime:
        rows += [
            ("Provider requested", runtime.get("requested")),
            ("Providers available", runtime.get("available")),
            ("Fell back to another provider", runtime.get("fallback")),
        ]
    rows += [
        ("onnx", env.get("onnx")),
        ("OpenCV", env.get("opencv")),
        ("NumPy", env.get("numpy")),
        ("Operating system", env.get("os") or env.get("platform")),
        ("Platform", env.get("platform")),
        ("CPU", env.get("cpu") or env.get("processor") or env.get("machine")),
        ("GPU", env.get("gpu")),
        ("Results created", results.created_at),
    ]
    return rows


def session_options(results: AuditResults) -> list[tuple[str, Any]]:
    """Return the onnxruntime session options, when the results carry them."""
    runtime = results.model.get("runtime") or {}
    options = runtime.get("session_options") or {}
    return [(str(k), v) for k, v in sorted(options.items())]


# The standards crosswalk: (standard, clause, what it asks, the report section that answers).
CROSSWALK: list[tuple[str, str, str, str]] = [
    ("ISO/IEC 17025:2017", "7.8.2.1 a", "a title", "top"),
    ("ISO/IEC 17025:2017", "7.8.2.1 b", "name of the issuing organisation", "identification"),
    (
        "ISO/IEC 17025:2017",
        "7.8.2.1 d",
        "unique identification; a clear end of the report",
        "identification",
    ),
    ("ISO/IEC 17025:2017", "7.8.2.1 f", "the method used", "method"),
    (
        "ISO/IEC 17025:2017",
        "7.8.2.1 g",
        "description and unambiguous identification of the item",
        "model",
    ),
    ("ISO/IEC 17025:2017", "7.8.2.1 i", "dates of performance of the test", "identification"),
    ("ISO/IEC 17025:2017", "7.8.2.1 j", "date of issue of the report", "identification"),
    (
        "ISO/IEC 17025:2017",
        "7.8.2.1 l",
        "results relate only to the items tested",
        "identification",
    ),
    ("ISO/IEC 17025:2017", "7.8.2.1 m", "the results, with units where relevant", "levels"),
    (
        "ISO/IEC 17025:2017",
        "7.8.2.1 n",
        "deviations from, additions to or exclusions from the method",
        "method",
    ),
    (
        "ISO/IEC 17025:2017",
        "7.8.2.1 o",
        "identification of the person(s) authorizing the report",
        "signature",
    ),
    ("ISO/IEC 17025:2017", "7.8.3.1 c", "measurement uncertainty (here: 95% intervals)", "levels"),
    (
        "ISO/IEC 17025:2017",
        "7.8.6",
        "statement of conformity with the decision rule applied",
        "verdict",
    ),
    (
        "EU AI Act Annex IV",
        "2(g)",
        "validation and testing procedures; test data and its main characteristics",
        "data",
    ),
    ("EU AI Act Annex IV", "2(g)", "metrics used to measure accuracy and robustness", "levels"),
    (
        "EU AI Act Annex IV",
        "2(g)",
        "test logs and test reports dated and signed by the responsible persons",
        "signature",
    ),
    ("ISO/IEC TR 24029-1", "robustness goals", "state the goals before testing", "method"),
    ("ISO/IEC TR 24029-1", "decision criteria", "state how the outcome is decided", "method"),
    ("ISO/IEC TR 24029-1", "method class", "empirical (statistical) vs. formal methods", "method"),
    (
        "ISO/IEC TR 24029-1",
        "conduct and analyse",
        "test results and their interpretation",
        "levels",
    ),
    ("NIST AI RMF", "MEASURE 2.1", "test sets, metrics and tools documented", "configuration"),
    (
        "NIST AI RMF",
        "MEASURE 2.3",
        "performance measured and documented, with uncertainty",
        "levels",
    ),
    (
        "NIST AI RMF",
        "MEASURE 2.5",
        "validity and reliability; limits of generalisation",
        "not-assessed",
    ),
    (
        "Model Cards",
        "quantitative analyses",
        "disaggregated metrics with confidence intervals",
        "levels",
    ),
]
