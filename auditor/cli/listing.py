"""`auditor inspect` and `auditor perturbations`: what a model and the registries hold."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from auditor.cli.boundary import reports_errors
from auditor.cli.options import (
    Names,
    model_options,
    suite_choice,
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
@click.option("--suite", type=suite_choice(), help="Only this suite's members.")
@click.option("--tsv", is_flag=True, help="Tab-separated columns, one line each, for scripts.")
def list_perturbations(suite: str | None, tsv: bool) -> None:
    """List perturbations, then searches: name, family, description, levels (as -p values).

    The listing fits the terminal's width (80 columns when not a terminal).
    """
    from auditor.adversarial.registry import SEARCHES
    from auditor.perturbations import REGISTRY, SUITES

    rows = [_listing_row(REGISTRY[name]) for name in (SUITES[suite] if suite else sorted(REGISTRY))]
    # Searches belong to no suite: they cost `--queries` model calls and run when named.
    searches = [] if suite else [_listing_row(SEARCHES[name]) for name in sorted(SEARCHES)]
    if tsv:
        header = ("name", "family", "levels", "description")
        click.echo("\n".join("\t".join(row) for row in [header, *rows, *searches]))
    else:
        click.echo("\n".join(_fitted(rows, searches, shutil.get_terminal_size((80, 24)).columns)))


Row = tuple[str, str, str, str]


def _fitted(rows: list[Row], searches: list[Row], columns: int) -> list[str]:
    """The listing's lines for a terminal `columns` wide; the searches in a section of their own."""
    widths = [max(len(row[i]) for row in [*rows, *searches]) for i in range(2)]
    title = (
        f"{'name'.ljust(widths[0])}  {'family'.ljust(widths[1])}  description; levels as -p values"
    )
    lines = [title] + [line for row in rows for line in _listing_block(row, widths, columns)]
    if searches:
        lines += ["", "searches (they query the model; name them with -p):"]
        lines += [line for row in searches for line in _listing_block(row, widths, columns)]
    return lines


def _listing_row(entry: Entry) -> Row:
    """A perturbation's or search's row: name, family, levels as -p values, description."""
    from auditor.perturbations.levels import level_spec

    facts = entry.implementation()
    used = f" [codec: {facts['codec']}, {facts['container']}]" if "container" in facts else ""
    return (entry.name, entry.family, level_spec(entry), entry.description + used)


MIN_TEXT_WIDTH = 30
"""The description column never gets narrower than this: on a tiny terminal lines wrap."""
LEVELS = "levels "


def _listing_block(row: Row, widths: list[int], columns: int) -> list[str]:
    """A row's lines: name and family, then the description and levels wrapped beside them."""
    name, family, levels, description = row
    margin = widths[0] + widths[1] + 4
    width = max(columns - margin - 1, MIN_TEXT_WIDTH)  # the last column stays free: no wrap
    ladder = _wrap_levels(levels, width - len(LEVELS))
    text = textwrap.wrap(description, width) + [
        (LEVELS if i == 0 else " " * len(LEVELS)) + line for i, line in enumerate(ladder)
    ]
    first = f"{name.ljust(widths[0])}  {family.ljust(widths[1])}  "
    return [(first if i == 0 else " " * margin) + line for i, line in enumerate(text)]


def _wrap_levels(spec: str, width: int) -> list[str]:
    """Break a level spec after its `:` (between parameters), or after a `,` if it must."""
    pieces = [p + ":" for p in spec.split(":")]
    pieces[-1] = pieces[-1][:-1]
    tokens = [
        t for p in pieces for t in (re.findall(r"[^,]*,|[^,]+$", p) if len(p) > width else [p])
    ]
    lines = [""]
    for token in tokens:
        if lines[-1] and len(lines[-1]) + len(token) > width:
            lines.append("")
        lines[-1] += token
    return lines
