"""Pass/fail gates: `--fail-under-ra` and `--fail-under-rr` over every level."""

from __future__ import annotations

from collections.abc import Sequence

from auditor.results import Gate, LevelResult, Verdict


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
    return Verdict(passed=all(g.passed for g in gates), gates=gates)


def _worst_gate(
    metric: str, text: str, threshold: float, scored: list[tuple[float, LevelResult]]
) -> Gate:
    if not scored:
        return Gate(text, metric, threshold, None, False, "no level to check")
    value, level = min(scored, key=lambda pair: pair[0])
    where = f"{level.perturbation} L{level.level}"
    return Gate(text, metric, threshold, value, value >= threshold, where)
