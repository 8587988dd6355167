"""Who issued a report and when: the identification block ISO/IEC 17025 7.8.2.1 asks for.

Added by the CLI after the audit (the engine measures; it does not issue reports).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timezone

from auditor.results import AuditResults

STATEMENT = (
    "The results relate only to the model file and the data identified in this report, "
    "tested with the method, configuration and environment stated here."
)


def now_utc() -> str:
    """Return the current UTC time as `2025-03-14T09:26:53+00:00`."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def identify(
    results: AuditResults,
    auditor: str | None = None,
    organisation: str | None = None,
    issued_at: str | None = None,
) -> AuditResults:
    """Return `results` with a report identification: a new unique id and the issue date.

    Names not given are kept from an earlier identification (re-rendering keeps who
    ran the audit); the id and date are always new, since each issue is its own report.
    """
    before = results.identification or {}
    identification = {
        "report_id": str(uuid.uuid4()),
        "issued_at": issued_at or now_utc(),
        "auditor": auditor if auditor is not None else before.get("auditor"),
        "organisation": organisation if organisation is not None else before.get("organisation"),
        "statement": STATEMENT,
    }
    if before.get("report_id"):
        identification["supersedes"] = before["report_id"]
    return dataclasses.replace(results, identification=identification)
