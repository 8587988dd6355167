"""The results of an audit and their JSON form (`schema: "auditor/results@1"`).

The engine produces one `AuditResults`; the report reads only that object. The JSON
keys are a contract (see the interface spec): add keys freely, never rename them.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from auditor import files
from auditor.typecheck import check_fields

SCHEMA = "auditor/results@1"
MAX_RESULTS_BYTES = 1 << 30  # results are kilobytes to megabytes; this stops a runaway read

Interval = list[float]  # [low, high] of a 95% Wilson interval
# Level keys that older results lack; written back only where they hold something.
MEASURED_LATER = ("applied", "changed_share", "psnr_median", "no_effect", "outcomes")


@dataclass(frozen=True)
class LevelResult:
    """The metrics of one perturbation at one level."""

    perturbation: str
    family: str
    level: int
    params: dict[str, Any]
    n: int
    ra: float | None
    ra_ci: Interval | None
    rr: dict[str, float]
    rr_ci: dict[str, Interval]
    flip_rate: float
    flip_rate_ci: Interval
    delta_quantiles: dict[str, float]
    per_class: dict[str, dict[str, Any]]
    auc: float | None
    ra_drop: float | None
    rr_curve: list[list[float]]  # [[b, RR(b)], ...] on a fine grid of tolerances
    # The parameters as applied: {"params": {name: value or {min, median, max}}, "scale":
    # {min, median, max} of the factor pixel-sized parameters were scaled by, or None}.
    # None in results written before it was recorded.
    applied: dict[str, Any] | None = None
    changed_share: float | None = None  # share of samples whose pixels some draw changed
    psnr_median: float | None = None  # dB; None: infinite (most draws changed nothing)
    no_effect: bool = False  # no draw changed any pixel of any sample: RR measured nothing
    # Per-sample outcome bitsets in manifest order (`auditor.metrics.paired`):
    # {"correct": str | None, "robust": {tolerance key: str}, "flipped": str}.
    outcomes: dict[str, Any] | None = None
    # --face-crop only (absent otherwise): the share of samples whose face was found under
    # every draw of the level, and the median distance (px) of the crop's centre from the
    # clean crop's, over the draws that found a face.
    face_found_rate: float | None = None
    crop_shift_median: float | None = None

    @property
    def scaled(self) -> bool:
        """Whether the parameters applied differ from those stated (scaled to the images)."""
        return bool(self.applied and self.applied.get("scale"))

    def applied_text(self) -> str:
        """The parameters as applied, `sigma=0.2143` or `sigma=0.18-0.25 (median 0.21)`."""
        values = (self.applied or {}).get("params") or self.params
        return ", ".join(f"{k}={spread_text(v)}" for k, v in values.items())

    def scale_text(self) -> str:
        """The factor pixel-sized parameters were scaled by: `0.2143`, or its range; or ``."""
        scale = (self.applied or {}).get("scale")
        return spread_text(scale if scale["min"] != scale["max"] else scale["min"]) if scale else ""


def spread_text(value: Any) -> str:
    """A number (`0.2143`), or a `{min, median, max}` range (`0.18-0.25 (median 0.21)`)."""
    if isinstance(value, dict):
        low, mid, high = (spread_text(value[k]) for k in ("min", "median", "max"))
        return f"{low}\u2013{high} (median {mid})"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class PerturbationSummary:
    """Aggregates of one perturbation over its levels."""

    perturbation: str
    family: str
    levels: int
    mean_ra: float | None
    mean_rr: dict[str, float]
    area_ra: float | None
    area_rr: dict[str, float]


@dataclass(frozen=True)
class Gate:
    """One pass/fail rule and its outcome."""

    gate: str
    metric: str
    threshold: float
    value: float | None
    passed: bool
    where: str = ""
    # Policy gates decide on the 95% interval (`auditor.verdict.policy`); quick gates on the value.
    ci: Interval | None = None
    outcome: str = ""  # "PASS" | "FAIL" | "INCONCLUSIVE"; "" in older JSON: from `passed`
    bound: str = "min"  # "min": value must reach the threshold; "max": must not exceed it
    checked: int = 0  # how many perturbation levels the gate was checked at

    @property
    def result(self) -> str:
        """Return the gate's outcome, reading older JSON that has only `passed`."""
        return self.outcome or ("PASS" if self.passed else "FAIL")


@dataclass(frozen=True)
class Verdict:
    passed: bool
    gates: list[Gate] = field(default_factory=list)
    outcome: str = ""  # "PASS" | "FAIL" | "INCONCLUSIVE" | "NO GATES"; "" in older JSON
    decision_rule: str = ""  # how the outcome follows from the values and intervals
    policy: dict[str, Any] | None = None  # {"path", "sha256", "audit", "gates"} when given

    @property
    def result(self) -> str:
        """Return the verdict word, reading older JSON that has only `passed`."""
        if self.outcome:
            return self.outcome
        if not self.passed:
            return "FAIL"
        return "PASS" if self.gates else "NO GATES"


@dataclass(frozen=True)
class AuditResults:
    """Everything an audit measured, and what is needed to trust and re-run it."""

    auditor_version: str
    created_at: str
    started_at: str
    finished_at: str
    model: dict[str, Any]
    data: dict[str, Any]
    config: dict[str, Any]
    environment: dict[str, Any]
    clean: dict[str, Any]
    results: list[LevelResult]
    summary: list[PerturbationSummary]
    thumbnails: dict[str, Any]
    verdict: Verdict
    # What a reviewer must read first (`auditor.verdict.findings`), computed when the
    # results are issued: [{rule, severity, text, perturbation, level, metric, value, ci}],
    # most serious first. None (and absent from the JSON) in results never issued.
    findings: list[dict[str, Any]] | None = None
    # Per perturbation, the samples whose probabilities moved most (largest delta first):
    # {"sample", "level", "label", "delta", "clean_probs", "perturbed_probs",
    #  "clean_thumbnail", "perturbed_thumbnail"}.
    moved: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # A re-run of a subset: {"n_samples", "n_evaluations", "max_abs_diff", "decision_flips"}.
    determinism: dict[str, Any] | None = None
    status: str = "complete"  # "complete" | "incomplete" (interrupted; see `progress`)
    progress: dict[str, int] = field(default_factory=dict)  # {"done", "total"} work units
    # Video audits only: the levels computed with every frame as a sample of its own,
    # {"n_frames", "clean": {n, accuracy, accuracy_ci}, "levels": [{perturbation, level,
    # n, ra, ra_ci, rr, rr_ci, flip_rate, flip_rate_ci}]}, in the order of `results`.
    frame_results: dict[str, Any] | None = None
    # --face-crop only: every sample's crop boxes [x, y, w, h] in pixels of the full image
    # (None: no face found), by sample key: [{"sample", "clean", "levels": {perturbation:
    # [[box per repeat] per level]}}]; for a video each box is a list, one per frame
    # scored, and "frames" gives the frame numbers.
    crop_boxes: list[dict[str, Any]] | None = None
    # Who issued the report and when (`auditor.report.provenance`): {"report_id", "issued_at",
    # "auditor", "organisation", "statement"}; empty in results that were never issued.
    identification: dict[str, Any] = field(default_factory=dict)
    # square_linf: queries, threat model and per-level search figures; {} when none ran
    adversarial: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA

    @property
    def tolerance_keys(self) -> list[str]:
        """The RR tolerance keys (`"0.1"`), in the order the audit used them."""
        return list(self.config["tolerance_keys"])

    @property
    def headline_key(self) -> str:
        return str(self.config["headline_tolerance_key"])

    @property
    def labelled(self) -> bool:
        return self.clean.get("accuracy") is not None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready dict, `schema` first."""
        body = asdict(self)
        if not body["adversarial"]:  # absent unless a search ran: older readers see no change
            del body["adversarial"]
        for level in body["results"]:
            if level["applied"] is None:  # results from before they were measured stay as read
                for key in MEASURED_LATER:
                    if level[key] in (None, False):
                        del level[key]
            if level["face_found_rate"] is None:  # no --face-crop: no face figures
                del level["face_found_rate"], level["crop_shift_median"]
        if body["findings"] is None:  # absent until issued
            del body["findings"]
        if body["crop_boxes"] is None:  # absent without --face-crop
            del body["crop_boxes"]
        return {"schema": body.pop("schema"), **body}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditResults:
        """Build results from their JSON form; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["results"] = [_build(LevelResult, r) for r in data["results"]]
        kwargs["summary"] = [_build(PerturbationSummary, s) for s in data.get("summary", [])]
        verdict = data.get("verdict") or {"passed": True, "gates": []}
        kwargs["verdict"] = Verdict(
            verdict["passed"],
            [_build(Gate, g) for g in verdict.get("gates", [])],
            verdict.get("outcome", ""),
            verdict.get("decision_rule", ""),
            verdict.get("policy"),
        )
        return cls(**kwargs)


def _build(cls: Any, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


def tolerance_key(b: float) -> str:
    """Return the JSON key of tolerance `b`: its shortest decimal string (`"0.1"`)."""
    return repr(float(b)) if float(b) != int(b) else str(int(b))


# `<`, `>` and `&` only ever occur inside JSON strings, where `\u003c` means the same
# character: written so, the text can sit in an HTML <script> block that no string can
# close, and the file on disk is byte for byte the copy embedded in the report.
_HTML_SAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def to_json(results: AuditResults) -> str:
    """Return the results as indented ASCII JSON text, safe to embed in HTML."""
    text = json.dumps(results.to_dict(), indent=2, allow_nan=False) + "\n"
    for char, escaped in _HTML_SAFE.items():
        text = text.replace(char, escaped)
    return text


def from_json(text: str, origin: str = "results") -> AuditResults:
    """Parse results JSON text; `ValueError` names `origin` when it is not results."""
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{origin}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    except ValueError as exc:  # NaN or Infinity, refused by `_no_constant`
        raise ValueError(f"{origin}: {exc}") from None
    except RecursionError:
        raise ValueError(f"{origin}: not results JSON (nested too deeply)") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{origin}: expected schema {SCHEMA}, found {found!r}")
    check_fields(AuditResults, data, origin, optional=frozenset({"summary", "verdict"}))
    return AuditResults.from_dict(data)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number results may hold")


def load_json(path: Path) -> AuditResults:
    """Read results written by `write_json`; `ValueError` when the file cannot be read."""
    try:
        data = files.read_regular(path, MAX_RESULTS_BYTES)
    except files.Refused as exc:
        raise ValueError(f"cannot read the results {path}: {exc.detail}") from None
    text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    return from_json(text, str(path))


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file renamed into place.

    A failure leaves no half-written file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        # mkstemp makes the file private (0600); a report should get the usual mode.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it, then put it back
    os.umask(mask)
    return mask
