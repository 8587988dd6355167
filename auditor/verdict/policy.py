"""`--policy FILE.toml`: the audit settings and the gates that decide pass/fail.

Each gate is decided on the 95% interval of its metric, not on the point value, so an
audit on too few samples cannot pass by luck: PASS when the whole interval clears the
threshold, FAIL when the whole interval misses it, INCONCLUSIVE when it straddles it.
INCONCLUSIVE exits 1 like FAIL: the model was not shown to pass.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor import files
from auditor.config import policy_settings
from auditor.errors import ConfigError
from auditor.metrics import catalogue
from auditor.metrics.catalogue import CLEAN, GATEABLE
from auditor.results import AuditResults, Gate, LevelResult, Verdict, tolerance_key
from auditor.verdict.gates import FAIL, INCONCLUSIVE, PASS, QUICK_RULE, combine, skipped_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

MAX_POLICY_BYTES = 1 << 20  # a policy is a few dozen lines
AUDIT_KEYS = tuple(key for key, _ in policy_settings())  # suite, tolerance, seed
GATE_KEYS = ("metric", "perturbation", "levels", "min", "max", "tolerance")
DECISION_RULE = (
    "Each policy gate is decided on the 95% interval of its metric (Wilson score interval; "
    "for AUC the Hanley-McNeil normal approximation): PASS when the whole interval clears "
    "the threshold (lower bound >= min, or upper bound <= max), FAIL when the whole interval "
    "misses it (upper bound < min, or lower bound > max), INCONCLUSIVE otherwise. A gate "
    "checked at several levels takes its worst outcome. The verdict is FAIL if any gate "
    "fails, else INCONCLUSIVE if any gate is inconclusive, else PASS. INCONCLUSIVE exits "
    "with code 1 like FAIL, because the audit did not show that the model meets the policy; "
    "more samples narrow the intervals and can settle it."
)


@dataclass(frozen=True)
class PolicyGate:
    """One `[[gate]]` table of a policy file."""

    metric: str
    perturbation: str = "*"
    levels: tuple[int, ...] | None = None  # None: every level
    min: float | None = None
    max: float | None = None
    tolerance: float | None = None  # for a metric measured per tolerance (rr)

    @property
    def threshold(self) -> float:
        return self.min if self.min is not None else float(self.max)  # type: ignore[arg-type]

    def describe(self, headline_key: str) -> str:
        """Return the gate in words: `RA >= 0.85 at gaussian_* levels 1, 2, 3`."""
        metric = catalogue.get(self.metric)
        op = ">=" if self.min is not None else "<="
        text = f"{metric.heading(self.tolerance_key_for(headline_key))} {op} {self.threshold:g}"
        if metric.scope == CLEAN:
            return text
        where = "every perturbation" if self.perturbation == "*" else self.perturbation
        levels = (
            "every level" if self.levels is None else "levels " + ", ".join(map(str, self.levels))
        )
        return f"{text} at {where}, {levels}"

    def tolerance_key_for(self, headline_key: str) -> str:
        """Return the key of the gate's tolerance, the headline's when it names none."""
        return tolerance_key(self.tolerance) if self.tolerance is not None else headline_key


@dataclass(frozen=True)
class Policy:
    """A parsed policy file: `[audit]` settings and `[[gate]]` rules."""

    path: str
    sha256: str
    audit: dict[str, Any]
    gates: tuple[PolicyGate, ...]

    def tolerances(self) -> tuple[float, ...]:
        """Return the gates' RR tolerances, which the audit must measure."""
        return tuple(g.tolerance for g in self.gates if g.tolerance is not None)

    def as_dict(self) -> dict[str, Any]:
        """Return the policy's JSON form, recorded in the verdict."""
        return {
            "path": self.path,
            "sha256": self.sha256,
            "audit": dict(self.audit),
            "gates": [dataclasses.asdict(g) for g in self.gates],
        }


def load_policy(path: Path) -> Policy:
    """Read and check the policy file at `path`; `ConfigError` says what is wrong."""
    path = Path(path)
    try:
        raw = files.read_regular(path, MAX_POLICY_BYTES)
        data = tomllib.loads(raw.decode("utf-8"))
    except files.Refused as exc:
        raise ConfigError(f"cannot read the policy {path}: {exc.detail}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"policy {path} is not valid TOML: {exc}") from exc
    except RecursionError:  # arrays nested thousands deep
        raise ConfigError(f"policy {path} is not valid TOML: nested too deeply") from None
    unknown = set(data) - {"audit", "gate"}
    if unknown:
        raise ConfigError(f"policy {path}: unknown table(s) {', '.join(sorted(unknown))}")
    audit = _audit_table(data.get("audit", {}), path)
    gates = data.get("gate", [])
    if not isinstance(gates, list):
        raise ConfigError(f"policy {path}: gates are written [[gate]]")
    parsed = tuple(_gate(g, i + 1, path) for i, g in enumerate(gates))
    return Policy(str(path), hashlib.sha256(raw).hexdigest(), audit, parsed)


def merge_settings(options: dict[str, Any], given: set[str], rules: Policy) -> dict[str, Any]:
    """Return `check` options with the policy's [audit] settings and the gates' tolerances.

    `given` names the options set explicitly on the command line: one that contradicts
    the policy is an error, since the policy is what the report says was audited.
    """
    out = dict(options)
    for key, name in policy_settings():
        if key not in rules.audit:
            continue
        value = rules.audit[key]
        value = tuple(value) if isinstance(value, list) else value  # as the option gives it
        if name in given and options[name] != value:
            raise ConfigError(
                f"--{key} {options[name]!r} conflicts with {key} = {rules.audit[key]!r} "
                f"in the policy {rules.path}; drop one of them"
            )
        out[name] = value
    if rules.audit.get("suite") and not options.get("perturbations"):
        from auditor.perturbations import SUITES
        from auditor.perturbations.levels import unknown_name

        if rules.audit["suite"] not in SUITES:
            unknown = unknown_name("suite", rules.audit["suite"], sorted(SUITES))
            raise ConfigError(f"policy {rules.path}: {unknown}")
    # the gates' RR tolerances must be measured, and the headline must be one of them
    tolerances = tuple(sorted(set(out["tolerances"]) | set(rules.tolerances())))
    out["tolerances"] = tolerances
    if out["headline_tolerance"] not in tolerances:
        if "headline_tolerance" in given:
            out["tolerances"] = tuple(sorted({*tolerances, out["headline_tolerance"]}))
        else:
            out["headline_tolerance"] = min(tolerances, key=lambda b: abs(b - 0.1))
    return out


def _audit_table(table: Any, path: Path) -> dict[str, Any]:
    if not isinstance(table, dict) or set(table) - set(AUDIT_KEYS):
        raise ConfigError(f"policy {path}: [audit] may set only {', '.join(AUDIT_KEYS)}")
    if "suite" in table and not isinstance(table["suite"], str):
        raise ConfigError(f"policy {path}: [audit] suite must be a string")
    if "seed" in table and (isinstance(table["seed"], bool) or not isinstance(table["seed"], int)):
        raise ConfigError(f"policy {path}: [audit] seed must be an integer")
    if "tolerance" in table:
        tol = table["tolerance"]
        tol = tol if isinstance(tol, list) else [tol]
        if not tol or not all(_is_rate(b) for b in tol):
            raise ConfigError(f"policy {path}: [audit] tolerance must be numbers in [0, 1]")
        table = {**table, "tolerance": [float(b) for b in tol]}
    return dict(table)


def _gate(table: Any, number: int, path: Path) -> PolicyGate:
    where = f"policy {path}, gate {number}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    if set(table) - set(GATE_KEYS):
        unknown = ", ".join(sorted(set(table) - set(GATE_KEYS)))
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected {', '.join(GATE_KEYS)}")
    metric = table.get("metric")
    if isinstance(metric, str) and metric not in catalogue.CATALOGUE:  # a typo: suggest
        # imported here: the perturbations load OpenCV, which rendering a report never needs
        from auditor.perturbations.levels import unknown_name

        raise ConfigError(f"{where}: {unknown_name('metric', metric, GATEABLE)}")
    if metric not in GATEABLE:
        raise ConfigError(f"{where}: metric must be one of {', '.join(GATEABLE)}, found {metric!r}")
    if ("min" in table) == ("max" in table):
        raise ConfigError(f"{where}: give exactly one of min or max")
    bound = table.get("min", table.get("max"))
    if not _is_rate(bound):
        raise ConfigError(f"{where}: the threshold must be a number in [0, 1], found {bound!r}")
    levels = table.get("levels")
    if levels is not None and (
        not isinstance(levels, list) or not all(isinstance(x, int) and x >= 1 for x in levels)
    ):
        raise ConfigError(f"{where}: levels must be a list of level numbers (1, 2, ...)")
    tolerance = table.get("tolerance")
    if tolerance is not None and not _is_rate(tolerance):
        raise ConfigError(f"{where}: tolerance must be a number in [0, 1]")
    if not catalogue.get(metric).per_tolerance:
        tolerance = None  # the spec's own example sets it on an ra gate: it means nothing there
    perturbation = table.get("perturbation", "*")
    if not isinstance(perturbation, str):
        raise ConfigError(f"{where}: perturbation must be a name or a glob")
    return PolicyGate(
        metric=metric,
        perturbation=perturbation,
        levels=tuple(levels) if levels is not None else None,
        min=float(table["min"]) if "min" in table else None,
        max=float(table["max"]) if "max" in table else None,
        tolerance=float(tolerance) if tolerance is not None else None,
    )


def _is_rate(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


def decide(value: float | None, ci: list[float] | None, gate: PolicyGate) -> str:
    """Return PASS, FAIL or INCONCLUSIVE for one measured value and its interval."""
    if value is None:
        return INCONCLUSIVE
    low, high = ci if ci else (value, value)
    if gate.min is not None:
        return PASS if low >= gate.min else FAIL if high < gate.min else INCONCLUSIVE
    assert gate.max is not None
    return PASS if high <= gate.max else FAIL if low > gate.max else INCONCLUSIVE


def apply(results: AuditResults, policy: Policy) -> AuditResults:
    """Return `results` with the verdict of the policy's gates added to any quick gates."""
    gates = [*results.verdict.gates, *(evaluate_gate(results, g) for g in policy.gates)]
    if results.status != "complete":
        gates.append(_completion_gate(results))
    rule = DECISION_RULE
    if results.verdict.gates:
        rule = f"{DECISION_RULE} {QUICK_RULE}"
    verdict = combine(gates, rule, policy.as_dict())
    return dataclasses.replace(results, verdict=verdict)


_RANK = {PASS: 0, INCONCLUSIVE: 1, FAIL: 2}


def _completion_gate(results: AuditResults) -> Gate:
    """An interrupted audit cannot pass a policy: what was not run was not shown to pass."""
    done, total = results.progress.get("done"), results.progress.get("total")
    share = done / total if isinstance(done, int) and isinstance(total, int) and total else None
    where = f"{done} of {total} work units run" if share is not None else "interrupted"
    return Gate(
        "the audit ran to completion",
        "completion",
        1.0,
        share,
        False,
        where,
        outcome=INCONCLUSIVE,
    )


def evaluate_gate(results: AuditResults, gate: PolicyGate) -> Gate:
    """Check `gate` at every level it names and return its worst outcome."""
    text = gate.describe(results.headline_key)
    bound = "min" if gate.min is not None else "max"
    checks = level_checks(results, gate)
    skipped = skipped_levels(results, gate)
    if skipped:
        text += f" ({skipped_text(skipped)})"
    if not checks:
        return Gate(
            text,
            gate.metric,
            gate.threshold,
            None,
            False,
            "every matching level had no effect" if skipped else "no measured level matches",
            outcome=INCONCLUSIVE,
            bound=bound,
        )

    def badness(check: LevelCheck) -> tuple[int, float]:
        """Worst outcome first; among equals, the value furthest on the wrong side."""
        if check.value is None:
            return _RANK[check.outcome], math.inf
        gap = gate.threshold - check.value if bound == "min" else check.value - gate.threshold
        return _RANK[check.outcome], gap

    worst = max(checks, key=badness)
    return Gate(
        text,
        gate.metric,
        gate.threshold,
        worst.value,
        worst.outcome == PASS,
        worst.where,
        ci=list(worst.ci) if worst.ci else None,
        outcome=worst.outcome,
        bound=bound,
        checked=len(checks),
    )


@dataclass(frozen=True)
class LevelCheck:
    """A policy gate at one level it applies to: the measurement and its outcome."""

    level: LevelResult | None  # None: the clean section (a clean_accuracy gate)
    value: float | None
    ci: list[float] | None
    outcome: str  # PASS | FAIL | INCONCLUSIVE, as `decide` gives it
    reason: str = ""  # why it was not decided on its value (a level with no effect)

    @property
    def where(self) -> str:
        """Where it was measured: `jpeg_compression L3`, or `clean`; then the reason, if any."""
        place = "clean" if self.level is None else f"{self.level.perturbation} L{self.level.level}"
        return f"{place}: {self.reason}" if self.reason else place


NO_EFFECT = "no effect: no pixel changed on any sample, so this level measured nothing"


def level_checks(results: AuditResults, gate: PolicyGate) -> list[LevelCheck]:
    """Return `gate` decided at each level it applies to, in the order of the results.

    A level that changed no pixel (`no_effect`) measured nothing: a gate that lists its
    level number in `levels` is INCONCLUSIVE there, with the reason; a gate over every
    level skips it (`skipped_levels`). `evaluate_gate` takes the worst of these checks;
    the publish writers show each one.
    """
    metric = catalogue.get(gate.metric)
    key = gate.tolerance_key_for(results.headline_key)
    if metric.scope == CLEAN:
        value, ci = catalogue.measure(metric, results.clean, key, results.model)
        return [LevelCheck(None, value, ci, decide(value, ci, gate))]
    checks = []
    for level in _matching(results, gate):
        if level.no_effect:
            if gate.levels is not None:  # the gate names this level: it cannot be decided
                checks.append(LevelCheck(level, None, None, INCONCLUSIVE, NO_EFFECT))
            continue
        value, ci = catalogue.measure(metric, level, key, results.model)
        checks.append(LevelCheck(level, value, ci, decide(value, ci, gate)))
    return checks


def skipped_levels(results: AuditResults, gate: PolicyGate) -> list[LevelResult]:
    """The no-effect levels a gate over every level skips (see `level_checks`)."""
    if gate.levels is not None or catalogue.get(gate.metric).scope == CLEAN:
        return []
    return [level for level in _matching(results, gate) if level.no_effect]


def _matching(results: AuditResults, gate: PolicyGate) -> list[LevelResult]:
    """The levels a gate applies to: its perturbation glob, and its levels if it lists them."""
    return [
        level
        for level in results.results
        if fnmatch.fnmatchcase(level.perturbation, gate.perturbation)
        and (gate.levels is None or level.level in gate.levels)
    ]


def recorded_gates(verdict: Verdict) -> tuple[PolicyGate, ...]:
    """Return the policy gates a verdict records (`Policy.as_dict`), read back from JSON."""
    recorded = (verdict.policy or {}).get("gates") or []
    known = {f.name for f in dataclasses.fields(PolicyGate)}
    gates = []
    for table in recorded:
        values = {k: v for k, v in table.items() if k in known}
        if values.get("levels") is not None:
            values["levels"] = tuple(values["levels"])
        gates.append(PolicyGate(**values))
    return tuple(gates)
