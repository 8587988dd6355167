"""Who issued a report and when: the identification block ISO/IEC 17025 7.8.2.1 asks for.

Added by the CLI after the audit (the engine measures; it does not issue reports). Every
issue, by `check`, its interrupted path or `render`, passes through `identify`, which
also states the findings (`auditor.verdict.findings`) of the results as issued, after
the policy was applied, so the three agree.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timezone
from typing import Any

from auditor.results import AuditResults
from auditor.verdict.findings import find

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
    rendered_from: dict[str, Any] | None = None,
) -> AuditResults:
    """Return `results` with a report identification and their findings.

    The identification is a new unique id and the issue date; names not given are kept
    from an earlier identification (re-rendering keeps who ran the audit). A report
    re-rendered from a results file (`auditor render`) passes `rendered_from`, that
    file's `{"path", "sha256"}`: it was not produced by an audit run, and says so.
    """
    before = results.identification or {}
    identification: dict[str, Any] = {
        "report_id": str(uuid.uuid4()),
        "issued_at": issued_at or now_utc(),
        "auditor": auditor if auditor is not None else before.get("auditor"),
        "organisation": organisation if organisation is not None else before.get("organisation"),
        "statement": STATEMENT,
    }
    if before.get("report_id"):
        identification["supersedes"] = before["report_id"]
    if rendered_from is not None:
        identification["rendered_from"] = dict(rendered_from)
    return dataclasses.replace(
        results, identification=identification, findings=findings_of(results)
    )


def findings_of(results: AuditResults) -> list[dict[str, Any]]:
    """The findings of `results` as the JSON carries them, most serious first."""
    return [finding.to_dict() for finding in find(results)]
