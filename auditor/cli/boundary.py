"""The one boundary where errors become exit codes: every error one line on stderr.

Domain errors (`AuditorError`) and click's usage errors become one line and exit 2;
the core never imports click.
"""

from __future__ import annotations

import functools
import sys
import warnings
from typing import Any

import click

from auditor.cli.options import (
    F,
)
from auditor.errors import (
    EXIT_CANNOT_RUN,
    EXIT_OK,
    AuditorError,
)


def reports_errors(command: F) -> F:
    """Turn `AuditorError` into one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AuditorError as exc:
            click.echo(f"auditor: error: {exc}", err=True)
            sys.exit(EXIT_CANNOT_RUN)
        except KeyboardInterrupt:
            click.echo("auditor: interrupted", err=True)
            sys.exit(EXIT_CANNOT_RUN)

    return wrapper  # type: ignore[return-value]


class OneLineErrors(click.Group):
    """A group whose usage errors are one line on stderr with exit 2, like every other error.

    Click's own form takes three lines ("Usage", "Try --help", "Error"); the usage hint is
    folded into the one line here.
    """

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        run = functools.partial(super().main, args, prog_name, standalone_mode=False, **extra)
        if not standalone_mode:
            return run()
        try:
            outcome: Any = run()
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "auditor"
            fail(f"{exc.format_message()} (see '{where} --help')", EXIT_CANNOT_RUN)
        except click.ClickException as exc:
            fail(exc.format_message(), EXIT_CANNOT_RUN)
        except click.Abort:
            fail("interrupted", EXIT_CANNOT_RUN, prefix="auditor: ")
        # --help and --version end with an exit code in this mode; commands exit themselves
        sys.exit(outcome if isinstance(outcome, int) else EXIT_OK)


def fail(message: str, code: int, prefix: str = "auditor: error: ") -> None:
    click.echo(prefix + " ".join(message.split()), err=True)  # one line, whatever click wrote
    sys.exit(code)


def show_warnings_as_lines() -> None:
    """Show the core's warnings (a provider or codec fallback) as one `auditor: warning:` line."""

    def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        click.echo(f"auditor: warning: {message}", err=True)

    from auditor.model.providers import ProviderWarning
    from auditor.perturbations.video_codecs import CodecWarning

    warnings.showwarning = show
    warnings.simplefilter("always", ProviderWarning)
    warnings.simplefilter("always", CodecWarning)  # each is warned once per process
