"""Findings: what a reviewer must read first, computed from the results by fixed rules.

Each rule looks at the measured figures only and states one finding per pattern, in
one sentence with its figure and interval. The rules, in order of severity:

- `gate`: a policy or quick gate failed or was inconclusive (with value, interval,
  threshold);
- `class_collapse`: a binary detector that, at some levels, calls almost every sample
  of one class the other class (its per-class rate at most `COLLAPSE`);
- `chance`: levels whose RA is not above chance (the 95% interval reaches the share of
  the largest class, what always answering that class scores);
- `face_lost`: with a face crop, levels where the face was found in fewer than
  `FACE_FOUND` of the samples; each such sample counts as wrong and not robust;
- `class_bias`: a binary detector that, at some other levels, calls most samples of one
  class the other class (its per-class rate at most `MOST`, above `COLLAPSE`);
- `no_effect`: levels whose perturbation changed no pixel of any sample (their RR of 1
  measures nothing);
- `ra_hides_rr`: levels where RA stayed within `STEADY` of the clean accuracy while RR at
  the headline tolerance fell to `MOVED` or below: decisions held, probabilities moved;
- `unstable`: other levels where RR at the headline tolerance fell to `UNSTABLE` or
  below: the output moved by more than the tolerance on most samples;
- `non_monotone`: a stronger level scored clearly better than a milder one (the two
  intervals do not overlap), so the ladder is not graded as its names say.

`RULES` documents them for the report; `find` runs them and ranks the findings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from auditor.metrics.catalogue import CATALOGUE, LEVEL, measure
from auditor.results import AuditResults, Gate, LevelResult, spread_text

COLLAPSE = 0.05  # a per-class rate at or below this: the class is (almost) never recognised
STEADY = 0.02  # RA within this of the clean accuracy counts as unchanged
MOVED = 0.5  # RR at the headline tolerance at or below this: most probabilities moved
MOST = 0.25  # a per-class rate at or below this: most of the class is called the other one
UNSTABLE = 0.2  # RR at the headline tolerance at or below this: the output moved on most samples
FACE_FOUND = 0.95  # a face-found rate below this: the face detector failed often
HIGH, MEDIUM, LOW = "high", "medium", "low"
_SEVERITY_RANK = {HIGH: 0, MEDIUM: 1, LOW: 2}
SEVERITY = {
    "gate": HIGH,
    "class_collapse": HIGH,
    "chance": HIGH,
    "face_lost": HIGH,
    "class_bias": MEDIUM,
    "no_effect": MEDIUM,
    "ra_hides_rr": MEDIUM,
    "unstable": MEDIUM,
    "non_monotone": LOW,
}


@dataclass(frozen=True)
class Finding:
    """One finding: the rule that made it, how serious, the sentence and its evidence."""

    rule: str
    severity: str
    text: str
    perturbation: str | None = None
    level: int | None = None  # the first level it names
    metric: str | None = None
    value: float | None = None
    ci: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find(results: AuditResults) -> list[Finding]:
    """Run every rule on `results`; return the findings, most serious first."""
    found = [finding for _, rule in RULES for finding in rule(results)]
    return sorted(found, key=lambda f: _SEVERITY_RANK[f.severity])  # stable within a rank


def levels_text(levels: Sequence[int]) -> str:
    """`L2`, `L1-L3`, `L1-L2, L5`: level numbers as short runs."""
    runs: list[list[int]] = []
    for level in sorted(levels):
        if runs and level == runs[-1][-1] + 1:
            runs[-1].append(level)
        else:
            runs.append([level])
    return ", ".join(f"L{r[0]}" if len(r) == 1 else f"L{r[0]}-L{r[-1]}" for r in runs)


def _by_perturbation(levels: Iterable[LevelResult]) -> dict[str, list[LevelResult]]:
    grouped: dict[str, list[LevelResult]] = {}
    for level in levels:
        grouped.setdefault(level.perturbation, []).append(level)
    return grouped


def _measured(results: AuditResults) -> list[LevelResult]:
    """The levels that measured something (not marked `no_effect`)."""
    return [lv for lv in results.results if not lv.no_effect]


def _span(rows: Sequence[LevelResult]) -> tuple[str, LevelResult]:
    """`jpeg_compression L1-L5; pixelate L2, L5` for `rows`, and the first (worst) row."""
    parts = [
        f"{name} {levels_text([lv.level for lv in mine])}"
        for name, mine in _by_perturbation(rows).items()
    ]
    return "; ".join(parts), rows[0]


def gate_findings(results: AuditResults) -> list[Finding]:
    """Each failing or inconclusive gate, with its value, interval and threshold."""
    out = []
    for gate in results.verdict.gates:
        if gate.result == "PASS":
            continue
        if gate.ci is None:  # a quick gate decides on the value: show its level's interval
            gate = replace(gate, ci=_level_interval(results, gate))
        out.append(
            Finding(
                "gate",
                SEVERITY["gate"],
                f"{gate.result}: {gate.gate}: {_gate_evidence(gate)}",
                metric=gate.metric,
                value=gate.value,
                ci=gate.ci,
                **_where(gate.where),
            )
        )
    return out


def _level_interval(results: AuditResults, gate: Gate) -> list[float] | None:
    """The 95% interval of the gate's metric at the level the gate names, if any."""
    where = _where(gate.where)
    metric = CATALOGUE.get(gate.metric)
    if not where or metric is None or metric.scope != LEVEL:
        return None
    for lv in results.results:
        if (lv.perturbation, lv.level) == (where["perturbation"], where["level"]):
            return measure(metric, lv, results.headline_key)[1]
    return None


def _gate_evidence(gate: Gate) -> str:
    if gate.value is None:
        return gate.where or "not measured"
    interval = f" [{gate.ci[0]:.3f}, {gate.ci[1]:.3f}]" if gate.ci else ""
    op = ">=" if gate.bound == "min" else "<="
    where = f" at {gate.where}" if gate.where else ""
    return f"{gate.value:.3f}{interval}{where}, needs {op} {gate.threshold:g}"


def _where(where: str) -> dict[str, Any]:
    """`jpeg_compression L3` (maybe `: reason` after it) -> perturbation and level."""
    place = where.partition(": ")[0]
    name, _, level = place.rpartition(" L")
    if name and level.isdigit():
        return {"perturbation": name, "level": int(level)}
    return {}


def collapse_findings(results: AuditResults) -> list[Finding]:
    """A binary detector that, at some levels, (almost) never recognises one class."""
    return _class_findings(results, "class_collapse", (-1.0, COLLAPSE), "almost every {} sample")


def bias_findings(results: AuditResults) -> list[Finding]:
    """A binary detector that, at levels not already a collapse, misses most of one class."""
    return _class_findings(results, "class_bias", (COLLAPSE, MOST), "most {} samples")


def _class_findings(
    results: AuditResults, rule: str, band: tuple[float, float], which: str
) -> list[Finding]:
    """Per class of a binary detector: the levels whose rate for it lies in `band`.

    `band` is (above, at most); `which` names the samples called the other class
    (`most {} samples`, filled with the class name).
    """
    classes = list(results.model.get("classes") or [])
    positive = str(results.model.get("positive_class"))
    if len(classes) != 2 or positive not in classes or not results.labelled:
        return []
    negative = classes[1 - classes.index(positive)]
    out = []
    named = {positive: f"{positive} caught", negative: f"{negative} kept {negative}"}
    for cls, called in ((positive, negative), (negative, positive)):
        rows = [lv for lv in _measured(results) if band[0] < _class_rate(lv, cls) <= band[1]]
        if not rows:
            continue
        rows.sort(key=lambda lv: _class_rate(lv, cls))
        where, worst = _span(rows)
        entry = worst.per_class[cls]
        kept = round(entry["ra"] * entry["n"])
        ci = entry.get("ra_ci")
        interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        out.append(
            Finding(
                rule,
                SEVERITY[rule],
                f"{where}: the detector calls {which.format(cls)} {called} "
                f"({named[cls]} {kept}/{entry['n']}{interval} at {worst.perturbation} "
                f"L{worst.level})",
                worst.perturbation,
                worst.level,
                f"per_class.{cls}.ra",
                entry["ra"],
                ci,
            )
        )
    return out


def _class_rate(level: LevelResult, cls: str) -> float:
    entry = level.per_class.get(cls) or {}
    rate = entry.get("ra")
    return float(rate) if rate is not None else 1.0


def chance_findings(results: AuditResults) -> list[Finding]:
    """Levels whose RA is not shown to be above what always answering one class scores."""
    counts = results.data.get("class_counts") or {}
    total = sum(counts.values())
    if not results.labelled or not total:
        return []
    chance = max(counts.values()) / total
    rows = [lv for lv in _measured(results) if lv.ra_ci is not None and lv.ra_ci[0] <= chance]
    if not rows:
        return []
    rows.sort(key=lambda lv: lv.ra if lv.ra is not None else 0.0)
    where, worst = _span(rows)
    ci = worst.ra_ci or [0.0, 0.0]
    return [
        Finding(
            "chance",
            SEVERITY["chance"],
            f"RA at chance ({chance:.3f}, the share of the largest class) at {len(rows)} "
            f"level(s): {where} (lowest {worst.ra:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] at "
            f"{worst.perturbation} L{worst.level})",
            worst.perturbation,
            worst.level,
            "ra",
            worst.ra,
            worst.ra_ci,
        )
    ]


def no_effect_findings(results: AuditResults) -> list[Finding]:
    """Levels that changed no pixel: their RR measures nothing."""
    rows = [lv for lv in results.results if lv.no_effect]
    if not rows:
        return []
    where, first = _span(rows)
    scaled = [
        f"{lv.perturbation} L{lv.level} at {lv.applied_text()} (stated {params_text(lv.params)})"
        for lv in rows
        if lv.scaled
    ]
    applied = f" (as applied to these images: {'; '.join(scaled)})" if scaled else ""
    return [
        Finding(
            "no_effect",
            SEVERITY["no_effect"],
            f"level(s) had no effect: no pixel changed on any sample at {where}{applied}; "
            "their RR is not evidence of robustness",
            first.perturbation,
            first.level,
            "changed_share",
            first.changed_share,
        )
    ]


def face_lost_findings(results: AuditResults) -> list[Finding]:
    """`--face-crop`: levels where the face detector lost the face in too many samples."""
    rows = [
        lv
        for lv in results.results
        if lv.face_found_rate is not None and lv.face_found_rate < FACE_FOUND
    ]
    if not rows:
        return []
    worst = min(rows, key=lambda lv: lv.face_found_rate or 0.0)
    where, _ = _span(rows)
    units = "frames" if results.data.get("n_frames") else "samples"  # videos count frames
    return [
        Finding(
            "face_lost",
            SEVERITY["face_lost"],
            f"the face detector found no face in {1 - (worst.face_found_rate or 0.0):.0%} of the "
            f"{units} at {worst.perturbation} L{worst.level} (face-found rate below "
            f"{FACE_FOUND:.0%} at {where}); those {units} count as wrong and not robust",
            worst.perturbation,
            worst.level,
            "face_found_rate",
            worst.face_found_rate,
        )
    ]


def params_text(params: dict[str, Any]) -> str:
    """`sigma=1, quality=25`: stated parameters as the report writes them."""
    return ", ".join(f"{k}={spread_text(v)}" for k, v in params.items())


def _steady(results: AuditResults) -> list[LevelResult]:
    """The levels whose RA held near the clean accuracy while RR fell to `MOVED` or below."""
    clean = results.clean.get("accuracy")
    key = results.headline_key
    if clean is None:
        return []
    return [
        lv
        for lv in _measured(results)
        if lv.ra is not None and lv.ra >= clean - STEADY and lv.rr.get(key, 1.0) <= MOVED
    ]


def hidden_movement_findings(results: AuditResults) -> list[Finding]:
    """Levels where decisions held (RA steady) while the probabilities moved (RR low)."""
    key = results.headline_key
    rows = _steady(results)
    if not rows:
        return []
    where, worst, ci = _lowest_rr(rows, key)
    return [
        Finding(
            "ra_hides_rr",
            SEVERITY["ra_hides_rr"],
            f"RA held within {STEADY} of the clean accuracy while RR(b={key}) fell to "
            f"{MOVED} or below at {len(rows)} level(s): {where} (RR {worst.rr[key]:.3f} "
            f"[{ci[0]:.3f}, {ci[1]:.3f}] at {worst.perturbation} L{worst.level}); decisions "
            "held but probabilities moved",
            worst.perturbation,
            worst.level,
            "rr",
            worst.rr[key],
            worst.rr_ci.get(key),
        )
    ]


def _lowest_rr(rows: list[LevelResult], key: str) -> tuple[str, LevelResult, list[float]]:
    """`rows` as text, their lowest-RR level and its interval (rows sorted by RR, in place)."""
    rows.sort(key=lambda lv: lv.rr.get(key, 1.0))
    where, worst = _span(rows)
    return where, worst, worst.rr_ci.get(key) or [0.0, 0.0]


def unstable_findings(results: AuditResults) -> list[Finding]:
    """Levels (not already `ra_hides_rr`) where the output moved beyond b on most samples."""
    key = results.headline_key
    hidden = {id(lv) for lv in _steady(results)}
    rows = [
        lv for lv in _measured(results) if id(lv) not in hidden and lv.rr.get(key, 1.0) <= UNSTABLE
    ]
    if not rows:
        return []
    where, worst, ci = _lowest_rr(rows, key)
    return [
        Finding(
            "unstable",
            SEVERITY["unstable"],
            f"the output moved by more than b={key} on most samples (RR at most {UNSTABLE}) at "
            f"{len(rows)} level(s): {where} (lowest RR {worst.rr[key]:.3f} [{ci[0]:.3f}, "
            f"{ci[1]:.3f}] at {worst.perturbation} L{worst.level})",
            worst.perturbation,
            worst.level,
            "rr",
            worst.rr[key],
            worst.rr_ci.get(key),
        )
    ]


def monotone_findings(results: AuditResults) -> list[Finding]:
    """Ladders where a stronger level scored clearly better (intervals apart) on RA or RR."""
    out = []
    key = results.headline_key
    readers: list[tuple[str, str, Callable[[LevelResult], Any]]] = [
        ("ra", "RA", lambda lv: (lv.ra, lv.ra_ci)),
        ("rr", f"RR(b={key})", lambda lv: (lv.rr.get(key), lv.rr_ci.get(key))),
    ]
    for name, rows in _by_perturbation(_measured(results)).items():
        for metric, label, read in readers:
            pair = _inversion(rows, read)
            if pair is None:
                continue
            mild, strong = pair
            (a, a_ci), (b, b_ci) = read(mild), read(strong)
            out.append(
                Finding(
                    "non_monotone",
                    SEVERITY["non_monotone"],
                    f"non-monotone ladder: {name} {label} is {a:.3f} [{a_ci[0]:.3f}, "
                    f"{a_ci[1]:.3f}] at L{mild.level} but {b:.3f} [{b_ci[0]:.3f}, "
                    f"{b_ci[1]:.3f}] at the stronger L{strong.level}",
                    name,
                    mild.level,
                    metric,
                    a,
                    a_ci,
                )
            )
    return out


def _inversion(
    rows: Sequence[LevelResult], read: Callable[[LevelResult], Any]
) -> tuple[LevelResult, LevelResult] | None:
    """The milder level and a stronger one whose interval lies wholly above it, if any."""
    ordered = sorted(rows, key=lambda lv: lv.level)
    for i, mild in enumerate(ordered):
        value, ci = read(mild)
        if value is None or not ci:
            continue
        for strong in ordered[i + 1 :]:
            other, other_ci = read(strong)
            if other is not None and other_ci and other_ci[0] > ci[1]:
                return mild, strong
    return None


RULES: tuple[tuple[str, Callable[[AuditResults], list[Finding]]], ...] = (
    ("gate", gate_findings),
    ("class_collapse", collapse_findings),
    ("chance", chance_findings),
    ("face_lost", face_lost_findings),
    ("class_bias", bias_findings),
    ("no_effect", no_effect_findings),
    ("ra_hides_rr", hidden_movement_findings),
    ("unstable", unstable_findings),
    ("non_monotone", monotone_findings),
)


_THRESHOLDS = {
    "COLLAPSE": COLLAPSE,
    "STEADY": STEADY,
    "MOVED": MOVED,
    "MOST": MOST,
    "UNSTABLE": UNSTABLE,
    "FACE_FOUND": FACE_FOUND,
}


def documented_rules() -> list[tuple[str, str]]:
    """Each rule and what it looks for, from this module's docstring, thresholds filled in.

    The report's "How findings are chosen" is made from this, so it cannot drift from
    the rules (a test checks that every rule in `RULES` is documented).
    """
    out: list[tuple[str, str]] = []
    for line in (__doc__ or "").splitlines():
        if line.startswith("- `"):
            name, _, text = line[3:].partition("`: ")
            out.append((name, text))
        elif out and line.startswith("  "):
            out[-1] = (out[-1][0], f"{out[-1][1]} {line.strip()}")
    for constant, value in _THRESHOLDS.items():
        out = [(name, text.replace(f"`{constant}`", f"{value:g}")) for name, text in out]
    return [(name, text.rstrip(";.")) for name, text in out]


def ranking() -> str:
    """How `find` orders the findings, in words for the report."""
    return (
        "Findings are ranked by severity (high, then medium, then low), and within a "
        "severity in the order of the rules above."
    )
