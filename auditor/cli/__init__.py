"""The command line: options -> `AuditConfig` -> engine -> files -> exit code.

Each command lives in a module of its own; this module holds the `auditor` group.
Errors become one line and an exit code in `auditor.cli.boundary`.
"""

from __future__ import annotations

import click

from auditor.cli.boundary import OneLineErrors, show_warnings_as_lines
from auditor.cli.check import check
from auditor.cli.listing import inspect_command, list_perturbations
from auditor.cli.reports import compare, render, verify
from auditor.version import __version__

__all__ = ["check", "main"]


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="auditor")
def main() -> None:
    """Audit how robust an ONNX image classifier is: robust accuracy (RA) and robust
    ratio (RR) per perturbation and level, in one self-contained HTML report."""
    show_warnings_as_lines()


for command in (check, inspect_command, list_perturbations, render, compare, verify):
    main.add_command(command)
