"""auditor: audit how robust an ONNX image classifier is (robust accuracy and robust ratio).

The small public API: `AuditConfig` and `run_audit`. They are imported lazily so that
`import auditor.perturbations` or `auditor.report.html` does not load onnxruntime.
"""

from __future__ import annotations

from typing import Any

from auditor.version import __version__

__all__ = ["AuditConfig", "run_audit", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "AuditConfig":
        from auditor.config import AuditConfig

        return AuditConfig
    if name == "run_audit":
        from auditor.engine.run import run_audit

        return run_audit
    raise AttributeError(f"module 'auditor' has no attribute {name!r}")
