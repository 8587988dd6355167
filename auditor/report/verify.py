"""`auditor verify`: is an archived report what its embedded results render to?

It recomputes the digest of the embedded results, checks an optional signature over
it (`auditor.report.integrity`), and re-renders the results to compare the visible text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor import files
from auditor.report.html import render_html
from auditor.report.integrity import (
    Embedded,
    ReportUnreadable,
    digest,
    fingerprint,
    load_public_key,
    read_embedded,
    signature_valid,
)
from auditor.results import from_json

MAX_REPORT_BYTES = 1 << 30  # reports are megabytes; this only stops a runaway read


@dataclass
class Verification:
    """The outcome of `verify_report`: problems found, and notes on what was checked."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_report(path: Path, public_key: Path | None = None) -> Verification:
    """Check the report at `path`: digest, signature (with `public_key`), visible text."""
    from auditor.version import __version__

    text = _read_report(Path(path))
    found = read_embedded(text, str(path))
    out = Verification()
    if found.blocks > 1:  # which one the reader's browser shows is anyone's guess
        out.problems.append(f"the report embeds {found.blocks} results blocks, not one")
        return out
    actual = digest(found.json_text)
    if actual != found.claimed_digest:
        out.problems.append(
            f"the embedded results hash to {actual}, the header says {found.claimed_digest}"
        )
    _check_signature(found, actual, public_key, out)
    try:
        results = from_json(found.json_text, f"{path} (embedded results)")
    except ValueError as exc:
        out.problems.append(str(exc))
        return out
    if found.generator != __version__:
        out.notes.append(
            f"rendered by auditor {found.generator or '?'}, this is {__version__}: checked the "
            "digest and signature only, not the visible text"
        )
    elif _rendered(results, found) != text:
        out.problems.append("the visible report differs from what its embedded results render to")
    return out


def _read_report(path: Path) -> str:
    """The report's text, read with a bound, newlines as `open` in text mode gives them."""
    try:
        data = files.read_regular(path, MAX_REPORT_BYTES)
        text = data.decode("utf-8")
    except (files.Refused, UnicodeDecodeError) as exc:
        reason = exc.detail if isinstance(exc, files.Refused) else str(exc)
        raise ReportUnreadable(f"cannot read {path}: {reason}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _rendered(results: Any, found: Embedded) -> str | None:
    """What the embedded results render to; None when they cannot be rendered."""
    try:
        return render_html(results, signature=found.signature)
    except Exception:  # results that parse but no auditor wrote: the report was altered
        return None


def _check_signature(
    found: Embedded, actual: str, public_key: Path | None, out: Verification
) -> None:
    if public_key is None:
        if found.signature:
            out.notes.append(
                f"signed by key {found.signature['fingerprint']}; pass --public-key to check it"
            )
        return
    raw = load_public_key(public_key)
    if not found.signature:
        out.problems.append("the report is not signed")
        return
    if found.signature.get("fingerprint") != fingerprint(raw):
        out.problems.append(
            f"signed by key {found.signature.get('fingerprint')}, not by {fingerprint(raw)}"
        )
    elif not signature_valid(found.signature, actual, raw):
        out.problems.append("the signature does not match the embedded results")
    else:
        out.notes.append(f"signature valid, key {fingerprint(raw)}")
