"""The results JSON (`--format json`): what `--resume`, `render` and `verify` read back."""

from __future__ import annotations

from auditor.publish.writers import Writer, register
from auditor.results import AuditResults, to_json


@register
class JsonWriter(Writer):
    """The results JSON: written first, whatever else is asked for."""

    name = "json"
    suffix = ".json"
    what = "the results"

    def render(self, results: AuditResults) -> str:
        return to_json(results)
