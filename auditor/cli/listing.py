"""`auditor inspect` and `auditor perturbations`: what a model and the registries hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from auditor.cli.boundary import reports_errors
from auditor.cli.options import (
    Names,
    model_options,
    suite_names,
)
from auditor.config import (
    ModelOptions,
)
from auditor.settings import from_options

if TYPE_CHECKING:  # importing the registries loads every perturbation: only when listing
    from auditor.perturbations.levels import Entry


@click.command("inspect")
@click.argument("model", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--classes", type=Names(), help="Class names in the model's output order, comma-separated."
)
@click.option("--positive-class", help="Positive class of a binary model.")
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@reports_errors
def inspect_command(model: Path, as_json: bool, **options: Any) -> None:
    """Show MODEL's inputs, outputs, preprocessing, output kind and the check flags."""
    from auditor.model.inspection import format_text, inspect_model

    report = inspect_model(model, from_options(ModelOptions, options))
    click.echo(json.dumps(report, indent=2) if as_json else format_text(report))


@click.command("perturbations")
@click.option("--suite", type=click.Choice(suite_names()), help="Only this suite's members.")
@click.option("--tsv", is_flag=True, help="Tab-separated columns, for scripts.")
def list_perturbations(suite: str | None, tsv: bool) -> None:
    """List perturbations, then searches: name, family, levels (as -p values), description."""
    from auditor.adversarial.registry import SEARCHES
    from auditor.perturbations import REGISTRY, SUITES

    header = ("name", "family", "levels", "description")
    rows = [_listing_row(REGISTRY[name]) for name in (SUITES[suite] if suite else sorted(REGISTRY))]
    # Searches belong to no suite: they cost `--queries` model calls and run when named.
    searches = [] if suite else [_listing_row(SEARCHES[name]) for name in sorted(SEARCHES)]
    if tsv:
        click.echo("\n".join("\t".join(row) for row in [header, *rows, *searches]))
        return
    widths = [max(len(row[i]) for row in [header, *rows, *searches]) for i in range(3)]
    for row in [header, *rows]:
        click.echo(_listing_line(row, widths))
    if searches:
        click.echo("\nsearches (they query the model; name them with -p):")
        for row in searches:
            click.echo(_listing_line(row, widths))


def _listing_row(entry: Entry) -> tuple[str, str, str, str]:
    """A perturbation's or search's row: name, family, levels as -p values, description."""
    from auditor.perturbations.levels import level_spec

    facts = entry.implementation()
    used = f" [codec: {facts['codec']}, {facts['container']}]" if "container" in facts else ""
    return (entry.name, entry.family, level_spec(entry), entry.description + used)


def _listing_line(row: tuple[str, ...], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3]
