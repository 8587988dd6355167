"""`auditor verify`: is an archived report what its embedded results render to?

It recomputes the digest of the embedded results, checks an optional signature over
it (`auditor.report.integrity`), and re-renders the results to compare the visible text.
`Verification.summary` says exactly what that proved: an unsigned report that is intact
shows only that its text matches its embedded results, which anyone holding the results
file could produce with `auditor render`; a signature names the key that vouches for it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor import files
from auditor.errors import ConfigError
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
UNSIGNED = (
    "intact, unsigned: the text matches the embedded results; anyone with the results "
    "file could have produced it"
)


@dataclass
class Verification:
    """The outcome of `verify_report`: problems found, and notes on what was checked."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signed_by: str | None = None  # the fingerprint whose valid signature the report carries
    checked_with: str = ""  # "--public-key" or "the key the report carries"
    not_signed: bool = False  # a --public-key was given, but the report has no signature

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def passed(self) -> bool:
        """Intact, and signed when a key was given to check the signature with."""
        return self.intact and not self.not_signed

    def summary(self) -> str:
        """What was proved, in one line (after the problems, if any)."""
        if not self.intact:
            return "ALTERED"
        if self.not_signed:
            return (
                "not signed: --public-key was given but the report carries no signature "
                "(its text matches its embedded results)"
            )
        if self.signed_by is None:
            return UNSIGNED
        return f"intact, signed by {self.signed_by} (checked with {self.checked_with})"


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
            _check_embedded_key(found.signature, actual, out)
        return
    raw = load_public_key(public_key)
    if not found.signature:
        out.not_signed = True
        return
    if found.signature.get("fingerprint") != fingerprint(raw):
        out.problems.append(
            f"signed by key {found.signature.get('fingerprint')}, not by {fingerprint(raw)}"
        )
    elif not signature_valid(found.signature, actual, raw):
        out.problems.append("the signature does not match the embedded results")
    else:
        out.notes.append(f"signature valid, key {fingerprint(raw)}")
        out.signed_by, out.checked_with = fingerprint(raw), "--public-key"


def _check_embedded_key(signature: dict[str, str], actual: str, out: Verification) -> None:
    """Check a signature with the public key the report carries (no key was given)."""
    claimed = signature.get("fingerprint", "?")
    try:
        raw = base64.b64decode(signature.get("public_key", ""), validate=True)
    except (binascii.Error, ValueError):
        out.problems.append("the report's public key is not valid base64")
        return
    if fingerprint(raw) != claimed:
        out.problems.append(f"the report's public key does not have its fingerprint {claimed}")
        return
    try:
        valid = signature_valid(signature, actual, raw)
    except ConfigError:  # cryptography is not installed: say what was not checked
        out.notes.append(f"signed by key {claimed}; install auditor[sign] to check it")
        return
    if not valid:
        out.problems.append("the signature does not match the embedded results")
        return
    out.notes.append(
        f"signed by key {claimed}, checked with the key the report carries: compare that "
        "fingerprint with the one you trust, or pass --public-key"
    )
    out.signed_by, out.checked_with = claimed, "the key the report carries"
