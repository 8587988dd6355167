"""Pass/fail gates: `--fail-under-ra` and `--fail-under-rr` over every level.

These quick gates decide on the measured value alone; `auditor.verdict.policy` adds gates that
decide on the 95% interval. `combine` turns any mix of gates into one verdict. A level
that changed no pixel (`no_effect`) measured nothing, so no gate counts it as a pass.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.metrics.catalogue import Metric, get, measure
from auditor.results import Gate, LevelResult, Verdict

PASS, FAIL, INCONCLUSIVE, NO_GATES = "PASS", "FAIL", "INCONCLUSIVE", "NO GATES"
QUICK_RULE = (
    "Quick gates (--fail-under-ra, --fail-under-rr) compare the measured value of the "
    "worst level with the threshold: PASS when it reaches the threshold, else FAIL."
)


def evaluate(
    levels: Sequence[LevelResult],
    headline_key: str,
    fail_under_ra: float | None,
    fail_under_rr: float | None,
) -> Verdict:
    """Check each gate against the worst level; the verdict passes if every gate does."""
    gates = []
    for key, threshold in (("ra", fail_under_ra), ("rr", fail_under_rr)):
        if threshold is not None:
            gates.append(_quick_gate(get(key), levels, headline_key, threshold))
    return combine(gates, QUICK_RULE if gates else "")


def _quick_gate(
    metric: Metric, levels: Sequence[LevelResult], headline_key: str, threshold: float
) -> Gate:
    """`metric` (at the headline tolerance) must reach `threshold` at every level.

    Levels that changed no pixel (`no_effect`) measured nothing: they are skipped, and
    the gate's text names them.
    """
    text = f"{metric.heading(headline_key)} >= {threshold:g} at every level"
    skipped = [lv for lv in levels if lv.no_effect]
    if skipped:
        text += f" with an effect ({skipped_text(skipped)})"
    scored = [
        (value, lv)
        for lv in levels
        if not lv.no_effect and (value := measure(metric, lv, headline_key)[0]) is not None
    ]
    return _worst_gate(metric.key, text, threshold, scored)


def skipped_text(levels: Sequence[LevelResult]) -> str:
    """`skipped, no pixel changed: gaussian_blur L1, L2` for the no-effect levels skipped."""
    grouped: dict[str, list[str]] = {}
    for lv in levels:
        grouped.setdefault(lv.perturbation, []).append(f"L{lv.level}")
    named = "; ".join(f"{name} {', '.join(names)}" for name, names in grouped.items())
    return f"skipped, no pixel changed: {named}"


def combine(gates: Sequence[Gate], rule: str, policy: dict | None = None) -> Verdict:
    """Return the verdict of `gates`: any FAIL fails, else any INCONCLUSIVE, else PASS."""
    outcomes = {g.result for g in gates}
    if not gates:
        outcome = NO_GATES
    elif FAIL in outcomes:
        outcome = FAIL
    elif INCONCLUSIVE in outcomes:
        outcome = INCONCLUSIVE
    else:
        outcome = PASS
    return Verdict(
        passed=outcome in (PASS, NO_GATES),
        gates=list(gates),
        outcome=outcome,
        decision_rule=rule,
        policy=policy,
    )


def _worst_gate(
    metric: str, text: str, threshold: float, scored: list[tuple[float, LevelResult]]
) -> Gate:
    if not scored:
        return Gate(text, metric, threshold, None, False, "no level to check", outcome=FAIL)
    value, level = min(scored, key=lambda pair: pair[0])
    where = f"{level.perturbation} L{level.level}"
    passed = value >= threshold
    return Gate(
        text,
        metric,
        threshold,
        value,
        passed,
        where,
        outcome=PASS if passed else FAIL,
        checked=len(scored),
    )
