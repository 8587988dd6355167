"""`auditor render`, `compare` and `verify`: reports from saved results, and their checks."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from auditor.cli.boundary import reports_errors
from auditor.cli.options import (
    identity_options,
)
from auditor.errors import (
    EXIT_GATE_FAILED,
    EXIT_OK,
    ConfigError,
)
from auditor.publish import (
    WRITERS,
    Target,
    check_targets,
    parse_formats,
    publish,
    targets,
    write_text,
)

EXIT_ALTERED = EXIT_GATE_FAILED  # `verify`: the report was changed since it was written
RENDERED = tuple(sorted(name for name in WRITERS if name != "json"))  # render writes no JSON


def output_targets(
    formats: str, report: Path, json_path: Path | None, known: Iterable[str] | None = None
) -> list[Target]:
    """Where each `--format` output goes; with a `json_path` (`check`), the JSON always."""
    names = parse_formats(formats, known)
    if json_path is not None:
        names = ("json", *(name for name in names if name != "json"))
    return targets(names, report, json_path)


def signing_key(path: Path | None) -> Any:
    from auditor.report.integrity import load_signing_key

    return load_signing_key(path) if path is not None else None


def listed(paths: list[Path]) -> str:
    """`a.json, a.html and a.md`."""
    names = [str(path) for path in paths]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@click.command()
@click.argument("results_path", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="HTML report to write; the other formats go next to it.",
)
@click.option(
    "--format",
    "formats",
    default="html",
    show_default=True,
    metavar="NAMES",
    help=f"Outputs, comma-separated, of {', '.join(RENDERED)} (REPORT.junit.xml, REPORT.md).",
)
@identity_options
@reports_errors
def render(results_path: Path, output: Path, formats: str, **options: Any) -> None:
    """Re-render the report of saved results (no model needed), as a new issue."""
    from auditor.report import provenance

    to = output_targets(formats, output, None, RENDERED)
    check_targets(to)
    key = signing_key(options["sign_key"])
    loaded = load_results(results_path)
    # the report says it was rendered from this file, not produced by an audit run
    source = {"path": str(results_path), "sha256": file_sha256(results_path)}
    results = provenance.identify(
        loaded, options["auditor"], options["organisation"], rendered_from=source
    )
    click.echo(f"auditor: wrote {listed(publish(results, to, key))}", err=True)


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of the file's bytes."""
    import hashlib

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"cannot read the results {path}: {exc.strerror}") from exc


def load_results(path: Path) -> Any:
    from auditor.results import load_json

    try:
        return load_json(path)
    except OSError as exc:
        raise ConfigError(f"cannot read the results {path}: {exc.strerror}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(str(exc).splitlines()[0]) from exc


@click.command()
@click.argument(
    "results_paths", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False)
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="HTML comparison to write.",
)
@reports_errors
def compare(results_paths: tuple[Path, ...], output: Path) -> None:
    """Compare audits of several models on the same data and configuration.

    The first results file is the reference: each other model's RA and RR are tested
    against it level by level (exact McNemar test on the same samples), and one line
    per model sums the tests up on stderr.
    """
    from auditor.report.compare import compare_results, render_compare, summary_lines

    audits = [(path, load_results(path)) for path in results_paths]
    comparison = compare_results(audits)
    write_text(output, render_compare(comparison), "the comparison")
    for line in summary_lines(comparison):
        click.echo(f"auditor: {line}", err=True)
    click.echo(f"auditor: wrote {output}", err=True)


@click.command()
@click.argument("report_path", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--public-key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Ed25519 public key (PEM): also check the report's signature.",
)
@reports_errors
def verify(report_path: Path, public_key: Path | None) -> None:
    """Check an archived report: exit 0 intact, 1 altered or not signed, 2 unreadable."""
    from auditor.report.verify import verify_report

    outcome = verify_report(report_path, public_key)
    for note in outcome.notes:
        click.echo(f"auditor: {note}", err=True)
    for problem in outcome.problems:
        click.echo(f"auditor: ALTERED: {problem}", err=True)
    if outcome.intact:
        click.echo(f"auditor: {report_path}: {outcome.summary()}", err=True)
    sys.exit(EXIT_OK if outcome.passed else EXIT_ALTERED)
