"""Pass/fail gates: `--fail-under-ra` and `--fail-under-rr` over every level.

These quick gates decide on the measured value alone; `auditor.verdict.policy` adds gates that
decide on the 95% interval. `combine` turns any mix of gates into one verdict.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    if fail_under_ra is not None:
        scored = [(lv.ra, lv) for lv in levels if lv.ra is not None]
        gates.append(
            _worst_gate("ra", f"RA >= {fail_under_ra:g} at every level", fail_under_ra, scored)
        )
    if fail_under_rr is not None:
        scored = [(lv.rr[headline_key], lv) for lv in levels]
        gates.append(
            _worst_gate(
                "rr",
                f"RR(b={headline_key}) >= {fail_under_rr:g} at every level",
                fail_under_rr,
                scored,
            )
        )
    return combine(gates, QUICK_RULE if gates else "")


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
