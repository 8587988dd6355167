"""The writer interface of the publish layer, and its registry keyed by `--format` name.

A writer turns an `AuditResults` into the text of one file (`render`, pure) and puts
that text in place atomically (`write`). Built-in writers register with `@register`,
the way a new format would; `--format` choices come from `WRITERS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar

from auditor.errors import OutputError
from auditor.results import AuditResults, write_atomic


class Writer:
    """One output format: its `--format` name, file suffix, and how to render results."""

    name: ClassVar[str]  # as users type it in --format: "junit"
    suffix: ClassVar[str]  # of its file, which goes next to the HTML report: ".junit.xml"
    what: ClassVar[str]  # in messages: "cannot write the JUnit XML to ..."

    def render(self, results: AuditResults) -> str:
        """Return the file's text; pure, so a writer is tested without touching disk."""
        raise NotImplementedError

    def write(self, results: AuditResults, path: Path) -> None:
        """Write `render(results)` to `path` atomically; `OutputError` says why it could not."""
        write_text(path, self.render(results), self.what)

    def signed_with(self, key: Any) -> Writer:
        """Return the writer that signs with `key`; formats without a signature ignore it."""
        return self


WRITERS: dict[str, Writer] = {}
W = TypeVar("W", bound=type[Writer])


def register(cls: W) -> W:
    """Class decorator: add one instance of a `Writer` to `WRITERS` under its name."""
    if cls.name in WRITERS:
        raise ValueError(f"a writer named {cls.name!r} is already registered")
    WRITERS[cls.name] = cls()
    return cls


def write_text(path: Path, text: str, what: str) -> None:
    """Write `text` to `path` atomically; an `OSError` becomes one-line `OutputError`."""
    try:
        write_atomic(Path(path), text)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(f"cannot write {what} to {path}: {reason}") from exc
