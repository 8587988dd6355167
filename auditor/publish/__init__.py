"""The publish layer: writes an audit's results in each format asked for.

Every output (`--format html,json,junit,md`) is a `Writer` in `WRITERS`. `publish`
writes the results JSON first, so the measurements survive a writer that fails, then
each other format; every file is written atomically. `check`, `render` and the partial
report of an interrupted audit all publish through here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.errors import ConfigError, OutputError
from auditor.publish import html, junit, markdown, results_json  # noqa: F401  (they register)
from auditor.publish.writers import WRITERS, Writer, register, write_text
from auditor.results import AuditResults

__all__ = [
    "WRITERS",
    "Target",
    "Writer",
    "check_targets",
    "parse_formats",
    "publish",
    "register",
    "targets",
    "write_text",
]

JSON = "json"


@dataclass(frozen=True)
class Target:
    """One file to write: the writer's `--format` name and where its file goes."""

    format: str
    path: Path


def parse_formats(text: str, known: Iterable[str] | None = None) -> tuple[str, ...]:
    """Return the writer names of a `--format` value (`html,junit`), in order, once each.

    `known` narrows the accepted names (default: every registered writer); an unknown
    or empty name is a `ConfigError` that lists the known ones.
    """
    accepted = sorted(known if known is not None else WRITERS)
    names = [name.strip().lower() for name in text.split(",")]
    for name in names:
        if name not in accepted:
            found = f"unknown format {name!r}" if name else "an empty format name"
            raise ConfigError(f"--format: {found}; expected some of {', '.join(accepted)}")
    return tuple(dict.fromkeys(names))


def targets(formats: Sequence[str], report: Path, json_path: Path | None = None) -> list[Target]:
    """Place each format: HTML at `report`, JSON at `json_path`, others beside the report.

    `-o out/audit.html` puts the JUnit XML at `out/audit.junit.xml` and the Markdown
    summary at `out/audit.md`.
    """
    report = Path(report)
    fixed = {"html": report, JSON: Path(json_path) if json_path else report.with_suffix(".json")}
    return [
        Target(name, fixed.get(name) or report.with_suffix(WRITERS[name].suffix))
        for name in formats
    ]


def check_targets(to: Sequence[Target], others: Sequence[tuple[str, Path]] = ()) -> None:
    """Refuse, before any work, targets that cannot all be written.

    Two outputs on one path (`--json X -o X`) are a `ConfigError`; a path under a regular
    file an `OutputError`. `others`: more files the command writes,
    as (what, path), such as the journal.
    """
    claimed: dict[str, str] = {}
    for what, path in [(WRITERS[t.format].what, t.path) for t in to] + list(others):
        where = os.path.realpath(path)
        if where in claimed:
            raise ConfigError(
                f"{claimed[where]} and {what} would both be written to {path}; "
                "give them different paths (-o, --json)"
            )
        claimed[where] = what
        _check_writable(Path(path), what)


def _check_writable(path: Path, what: str) -> None:
    """Refuse a `path` whose nearest existing ancestor is no folder."""
    for folder in path.parents:
        if folder.exists():
            if not folder.is_dir():
                raise OutputError(
                    f"cannot write {what} to {path}: {folder} is a file, not a folder"
                )
            return


def publish(results: AuditResults, to: Sequence[Target], signing_key: Any = None) -> list[Path]:
    """Write `results` to every target, the JSON first; return the paths written, in order.

    `signing_key` signs the report (HTML) of a writer that embeds a signature. A failed
    write raises `OutputError` naming the files already written (the JSON first of all);
    it leaves no half-written file.
    """
    ordered = sorted(to, key=lambda target: target.format != JSON)  # stable: JSON first
    done: list[Target] = []
    for target in ordered:
        writer = WRITERS[target.format].signed_with(signing_key)
        try:
            writer.write(results, target.path)
        except OutputError as exc:
            raise OutputError(f"{exc}{_kept(done)}") from exc
        done.append(target)
    return [target.path for target in done]


def _kept(done: list[Target]) -> str:
    """Name what a failed publish did write: `; the results were saved to r.json`."""
    saved = [str(t.path) for t in done if t.format == JSON]
    others = [str(t.path) for t in done if t.format != JSON]
    text = f"; the results were saved to {saved[0]}" if saved else ""
    return text + (f" (also written: {', '.join(others)})" if others else "")
