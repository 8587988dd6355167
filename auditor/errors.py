"""The one exception root of `auditor`, its subclasses and the exit codes.

Every message is one line: what was expected, what was found, and the path.
This module imports nothing from `auditor`, so every other module can use it.
"""

from __future__ import annotations

EXIT_OK = 0
"""The audit ran and passed every gate (or no gate was set)."""
EXIT_GATE_FAILED = 1
"""The audit ran and at least one gate failed."""
EXIT_CANNOT_RUN = 2
"""The audit could not run: bad arguments, unusable model or no usable data."""


class AuditorError(Exception):
    """Base of every error `auditor` reports to the user as one line."""


class ConfigError(AuditorError):
    """An option or a perturbation spec is invalid."""


class ModelError(AuditorError):
    """The model file is missing, unreadable, unsupported or misbehaves."""


class RuntimeMissingError(ModelError):
    """No onnxruntime package is installed."""


class DataError(AuditorError):
    """The data folder or manifest gives no usable samples."""


class OutputError(AuditorError):
    """A report or results file cannot be written."""


class SampleError(AuditorError):
    """One sample cannot be used; it is skipped with this message as the reason."""


class MemoryLimitError(AuditorError):
    """The audit needs more memory than it may use (`--max-memory`)."""


# What an allocation failure says, whichever library raised it: Python and numpy raise
# MemoryError, onnxruntime "Failed to allocate memory" or bad_alloc, OpenCV "Insufficient
# memory", and a thread whose stack cannot be mapped "can't start new thread".
_ALLOCATION_FAILURES = (
    "failed to allocate",
    "insufficient memory",
    "bad_alloc",
    "out of memory",
    "cannot allocate memory",
    "can't start new thread",
)


def out_of_memory(exc: BaseException) -> bool:
    """True when `exc` says that memory could not be allocated."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)[:2000].lower()
    return any(words in text for words in _ALLOCATION_FAILURES)
