"""The HTML report (`--format html`), rendered from the results JSON text it embeds."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from auditor.publish.writers import Writer, register
from auditor.report.html import render_html
from auditor.report.integrity import digest, sign
from auditor.results import AuditResults, from_json, to_json


@register
@dataclass(frozen=True)
class HtmlWriter(Writer):
    """The self-contained HTML report, signed when a key is given."""

    name = "html"
    suffix = ".html"
    what = "the report"
    signing_key: Any = None  # an Ed25519 private key (`auditor.report.integrity`)

    def render(self, results: AuditResults) -> str:
        json_text = to_json(results)
        key = self.signing_key
        signature = sign(digest(json_text), key) if key is not None else None
        # rendered from the JSON text itself, exactly as `auditor verify` will re-render it
        return render_html(from_json(json_text), signature, json_text)

    def signed_with(self, key: Any) -> Writer:
        return replace(self, signing_key=key)
