"""What the gradient attacks need installed: PyTorch, from the `whitebox` extra.

Importable without torch, so that the attacks register, list and plan everywhere; the
check runs before an audit that plans one starts.
"""

from __future__ import annotations

import importlib

from auditor.errors import ConfigError

INSTALL = 'pip install "auditor[cpu,whitebox]"'


class MissingExtraError(ConfigError):
    """A gradient attack was asked for without PyTorch installed."""


def has_torch() -> bool:
    """Whether PyTorch imports here (a broken install counts as missing)."""
    try:
        importlib.import_module("torch")
    except ImportError:
        return False
    return True


def require_torch(name: str) -> None:
    """Raise `MissingExtraError` (one line naming the extra) when PyTorch is missing."""
    if not has_torch():
        raise MissingExtraError(
            f"the gradient attack {name} needs PyTorch, from the whitebox extra: {INSTALL}"
        )
