"""`auditor compare`: audits of several models on the same data and configuration.

RA and RR per level side by side; the levels where the models' RA intervals overlap but
their RR intervals do not are flagged (two models a reviewer cannot tell apart by
accuracy can still differ in how stable their outputs are); corruption error CE and its
mean mCE are relative to the first model: CE = sum_l (1 - RA_model) / sum_l (1 - RA_ref).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from auditor.errors import ConfigError
from auditor.metrics.catalogue import get, measure
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
class Row:
    perturbation: str
    level: int
    params: dict[str, Any]
    cells: list[Cell]
    flagged: bool  # RA intervals all overlap, yet some pair of RR intervals is disjoint


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


def _overlap(a: list[float] | None, b: list[float] | None) -> bool | None:
    if not a or not b:
        return None
    return a[0] <= b[1] and b[0] <= a[1]


def _flag(cells: list[Cell]) -> bool:
    pairs = list(combinations(cells, 2))
    ra_agree = [_overlap(x.ra_ci, y.ra_ci) for x, y in pairs]
    rr_agree = [_overlap(x.rr_ci, y.rr_ci) for x, y in pairs]
    if any(v is None for v in ra_agree):
        return False
    return all(ra_agree) and any(v is False for v in rr_agree)


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
    """Check that the audits are comparable and line their levels up side by side."""
    check_comparable(audits)
    results = [r for _, r in audits]
    key = results[0].headline_key
    index = [{(r.perturbation, r.level): r for r in res.results} for res in results]
    rows = []
    for level in results[0].results:
        cells = [Cell.of(found.get((level.perturbation, level.level)), key) for found in index]
        rows.append(Row(level.perturbation, level.level, level.params, cells, _flag(cells)))
    ce, mce = corruption_error(results)
    names = [str(r.model.get("file_name") or Path(str(p)).name) for p, r in audits]
    return Comparison(names, results, rows, ce, mce)


def render_compare(comparison: Comparison) -> str:
    """Return the standalone HTML comparison."""
    from auditor.report.html import jinja_environment, stylesheet
    from auditor.version import __version__

    template = jinja_environment().get_template("compare.html")
    return template.render(
        c=comparison,
        css=stylesheet(),
        version=__version__,
        key=comparison.reference.headline_key,
        labelled=all(a.labelled for a in comparison.audits),
    )
