"""The engine: the audit's plan, the streaming pipeline, mergeable statistics, partial
results and their merge, the crash journal, the determinism probe and the Ray runner.

`run_audit`, `run_shard` and `merge` live in `auditor.engine.run`; they are imported
lazily here so that importing one engine module does not load the others.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AuditInterrupted", "merge", "run_audit", "run_shard"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from auditor.engine import run

        return getattr(run, name)
    raise AttributeError(f"module 'auditor.engine' has no attribute {name!r}")
