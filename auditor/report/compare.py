"""`auditor compare`: audits of several models on the same data and configuration.

Models audited on the same manifest and settings saw the very same perturbed pixels, so
their per-sample outcomes are paired: at each level, RA (correct) and RR at each
tolerance (robust) of every model are tested against the first model (the reference)
with the exact McNemar test on the samples where the two disagree
(`auditor.metrics.paired`). "Different" means p < 0.05, with no correction for the
number of tests, which is stated beside it. Levels where RA is not different but RR is
lead the comparison: two models a reviewer cannot tell apart by accuracy can still
differ in how stable their outputs are. Interval overlap is shown, never used to decide.
Results without per-sample outcomes (from an older auditor) get no test, and say so.

Corruption error CE and its mean mCE are relative to the first model:
CE = sum_l (1 - RA_model) / sum_l (1 - RA_ref).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.errors import ConfigError
from auditor.metrics.catalogue import get, measure
from auditor.metrics.paired import SIGNIFICANCE, Paired, paired_test, unpack_bits
from auditor.results import AuditResults, LevelResult

# What must match for a comparison to be fair; preprocessing may differ per model.
SAME_CONFIG = (
    "tolerance_keys",
    "headline_tolerance_key",
    "seed",
    "repeats",
    "delta_norm",
    "threshold",
    "limit",
    "scale_to_input",
    "max_pixels",  # decoding caps the pixels: a different cap perturbs different images
)


@dataclass(frozen=True)
class Cell:
    """One model at one perturbation level."""

    ra: float | None
    ra_ci: list[float] | None
    rr: float | None
    rr_ci: list[float] | None

    @classmethod
    def of(cls, level: LevelResult | None, key: str) -> Cell:
        """The cell of one model's `level` (None where it has none), RR at tolerance `key`."""
        if level is None:
            return cls(None, None, None, None)
        return cls(*measure(get("ra"), level), *measure(get("rr"), level, key))


@dataclass(frozen=True)
class Tests:
    """One model against the reference at one level: McNemar on RA and on RR per tolerance."""

    ra: Paired | None  # None: unlabelled
    rr: dict[str, Paired]  # tolerance key -> test


@dataclass(frozen=True)
class Row:
    perturbation: str
    level: int
    params: dict[str, Any]
    cells: list[Cell]
    # Per model after the reference: its tests against the reference; None where either
    # audit has no per-sample outcomes for this level.
    tests: list[Tests | None]
    no_effect: bool  # the reference's level changed no pixel
    key: str  # the headline tolerance

    def disagrees(self, index: int) -> bool:
        """RA not different but RR (headline) different, for model `index` (1-based)."""
        test = self.tests[index - 1]
        if test is None or test.ra is None or self.key not in test.rr:
            return False
        return not test.ra.different and test.rr[self.key].different

    @property
    def flagged(self) -> bool:
        """Some model's RA is not different from the reference's while its RR is."""
        return any(self.disagrees(i) for i in range(1, len(self.cells)))


@dataclass(frozen=True)
class Tally:
    """How many levels differ from the reference on RA and on RR, and out of how many tests."""

    ra_different: int
    ra_tested: int
    rr_different: int
    rr_tested: int
    untested: int  # levels without per-sample outcomes in one of the two audits


@dataclass(frozen=True)
class Comparison:
    names: list[str]
    audits: list[AuditResults]
    rows: list[Row]
    ce: dict[str, list[float | None]]  # perturbation -> CE of each model
    mce: list[float | None]

    @property
    def reference(self) -> AuditResults:
        return self.audits[0]

    @property
    def key(self) -> str:
        return self.reference.headline_key

    def tally(self, index: int) -> Tally:
        """The test counts of model `index` (1-based) against the reference."""
        tests = [row.tests[index - 1] for row in self.rows]
        done = [t for t in tests if t is not None]
        ra = [t.ra for t in done if t.ra is not None]
        rr = [t.rr[self.key] for t in done if self.key in t.rr]
        return Tally(
            sum(t.different for t in ra),
            len(ra),
            sum(t.different for t in rr),
            len(rr),
            len(tests) - len(done),
        )

    def disagreements(self) -> list[tuple[Row, int]]:
        """(row, model index) where RA is not different but RR is, in the order of the levels."""
        return [
            (row, i) for row in self.rows for i in range(1, len(self.names)) if row.disagrees(i)
        ]


def _config_key(results: AuditResults) -> dict[str, Any]:
    config = results.config
    key = {name: config.get(name) for name in SAME_CONFIG}
    key["perturbations"] = [
        (p.get("name"), p.get("levels")) for p in config.get("perturbations") or []
    ]
    return key


def check_comparable(audits: list[tuple[Path, AuditResults]]) -> None:
    """Raise `ConfigError` unless every audit used the reference's data and configuration."""
    if len(audits) < 2:
        raise ConfigError("compare needs at least two results files")
    ref_path, ref = audits[0]
    ref_key = _config_key(ref)
    for path, other in audits[1:]:
        a, b = ref.data.get("manifest_sha256"), other.data.get("manifest_sha256")
        if not a or a != b:
            raise ConfigError(
                f"{path} was not audited on the same data as {ref_path} "
                f"(manifest sha256 {str(b)[:12]} vs {str(a)[:12]})"
            )
        key = _config_key(other)
        for name, value in ref_key.items():
            if key[name] != value:
                raise ConfigError(
                    f"{path} was not audited with the same configuration as {ref_path} "
                    f"({name} differs)"
                )


def paired_tests(reference: LevelResult, other: LevelResult) -> Tests | None:
    """McNemar tests of `other` against `reference` at one level; None without outcomes.

    Both levels must come from audits that `check_comparable` accepted: the same manifest,
    so bit i is the same sample in both.
    """
    a, b = reference.outcomes, other.outcomes
    if not a or not b or reference.n != other.n:
        return None
    n = reference.n
    try:
        ra = None
        if a.get("correct") is not None and b.get("correct") is not None:
            ra = paired_test(unpack_bits(a["correct"], n), unpack_bits(b["correct"], n))
        robust_a, robust_b = a.get("robust") or {}, b.get("robust") or {}
        rr = {
            k: paired_test(unpack_bits(robust_a[k], n), unpack_bits(robust_b[k], n))
            for k in robust_a
            if k in robust_b
        }
    except ValueError as exc:
        where = f"{reference.perturbation} L{reference.level}"
        raise ConfigError(f"the per-sample outcomes at {where} are damaged: {exc}") from None
    return Tests(ra, rr)


def corruption_error(
    audits: list[AuditResults],
) -> tuple[dict[str, list[float | None]], list[float | None]]:
    """Return CE per perturbation and model, relative to the first model, and mCE."""
    ce: dict[str, list[float | None]] = {}
    for pert in [str(p.get("name")) for p in audits[0].config.get("perturbations") or []]:
        errors = [_total_error(results, pert) for results in audits]
        ref = errors[0]
        ce[pert] = [round(e / ref, 6) if e is not None and ref else None for e in errors]
    mce: list[float | None] = []
    for i in range(len(audits)):
        values = [v for row in ce.values() if (v := row[i]) is not None]
        mce.append(round(sum(values) / len(values), 6) if values else None)
    return ce, mce


def _total_error(results: AuditResults, perturbation: str) -> float | None:
    """Return sum over levels of (1 - RA), or None when a level has no RA."""
    ras = [measure(get("ra"), r)[0] for r in results.results if r.perturbation == perturbation]
    if not ras or any(ra is None for ra in ras):
        return None
    return sum(1 - float(ra) for ra in ras if ra is not None)


def compare_results(audits: list[tuple[Path, AuditResults]]) -> Comparison:
    """Check that the audits are comparable, line their levels up and test each pair."""
    check_comparable(audits)
    results = [r for _, r in audits]
    key = results[0].headline_key
    index = [{(r.perturbation, r.level): r for r in res.results} for res in results]
    rows = []
    for level in results[0].results:
        found = [levels.get((level.perturbation, level.level)) for levels in index]
        cells = [Cell.of(lv, key) for lv in found]
        tests = [paired_tests(level, lv) if lv is not None else None for lv in found[1:]]
        rows.append(
            Row(level.perturbation, level.level, level.params, cells, tests, level.no_effect, key)
        )
    ce, mce = corruption_error(results)
    names = [str(r.model.get("file_name") or Path(str(p)).name) for p, r in audits]
    return Comparison(names, results, rows, ce, mce)


def p_text(p: float) -> str:
    """`p = 0.0312`, `p = 1`, or `p < 0.001`."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"


def paired_text(test: Paired | None, label: str) -> str:
    """`RA different (p = 0.0312; 9 vs 2)`: the verdict, p-value and discordant counts."""
    if test is None:
        return f"{label} not tested"
    word = "different" if test.different else "not different"
    return f"{label} {word} ({p_text(test.p)}; {test.only_a} vs {test.only_b})"


def summary_lines(comparison: Comparison) -> list[str]:
    """One line per model against the reference, for stderr."""
    lines = []
    reference = comparison.names[0]
    for i, name in enumerate(comparison.names[1:], start=1):
        t = comparison.tally(i)
        if not t.rr_tested:
            lines.append(
                f"{name} against {reference}: no paired test (the results hold no per-sample "
                "outcomes; audit both models again with this version of auditor)"
            )
            continue
        ra = "RA not tested (no labels)"
        if t.ra_tested:
            ra = f"RA different at {t.ra_different} of {t.ra_tested} levels"
        rr = f"RR(b={comparison.key}) at {t.rr_different} of {t.rr_tested}"
        alpha = f"{SIGNIFICANCE:g}"
        lines.append(f"{name} against {reference}: {ra}, {rr} (McNemar, p < {alpha})")
    return lines


def render_compare(comparison: Comparison) -> str:
    """Return the standalone HTML comparison."""
    from auditor.report.html import jinja_environment, stylesheet
    from auditor.version import __version__

    template = jinja_environment().get_template("compare.html")
    labelled = all(a.labelled for a in comparison.audits)
    return template.render(
        c=comparison,
        css=stylesheet(),
        version=__version__,
        key=comparison.key,
        labelled=labelled,
        significance=SIGNIFICANCE,
        tallies=[comparison.tally(i) for i in range(1, len(comparison.names))],
        paired_text=paired_text,
        p_text=p_text,
        charts_ra=_charts(comparison, "ra") if labelled else [],
        charts_rr=_charts(comparison, "rr"),
    )


def _charts(comparison: Comparison, metric: str) -> list[tuple[str, Any]]:
    """(perturbation, SVG) small multiples of `metric` against level, one line per model."""
    from markupsafe import Markup

    from auditor.report import charts

    drawn = charts.compare_by_level(comparison.names, comparison.audits, metric)
    return [(name, Markup(svg)) for name, svg in drawn]
