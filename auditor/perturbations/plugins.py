"""Third-party perturbations, found through the entry-point group `auditor.perturbations`.

An entry point names a module (importing it registers its perturbations with the
`@perturbation` decorator) or an object in one: a decorated perturbation function,
which importing already registered, or a function taking no arguments that
registers when called. A plugin that fails to load costs a one-line warning on
stderr and nothing else: the built-ins and the other plugins still work.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from auditor.perturbations.registry import REGISTRY

GROUP = "auditor.perturbations"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin entry point that could not be loaded, and why."""

    name: str
    target: str
    reason: str

    def message(self) -> str:
        return f"auditor: warning: plugin '{self.name}' ({self.target}) not loaded: {self.reason}"


LOADED: list[str] = []
FAILED: list[PluginFailure] = []


def load_plugins() -> None:
    """Load every entry point of the group once; warn on stderr about broken ones."""
    for entry in sorted(entry_points(group=GROUP), key=lambda e: (e.name, e.value)):
        if entry.value in LOADED or any(f.target == entry.value for f in FAILED):
            continue
        try:
            _load(entry)
        except Exception as exc:  # a plugin's bug must not stop the audit
            failure = PluginFailure(entry.name, entry.value, _reason(exc))
            FAILED.append(failure)
            print(failure.message(), file=sys.stderr)
        else:
            LOADED.append(entry.value)


def _load(entry: EntryPoint) -> None:
    target = entry.load()
    if isinstance(target, ModuleType):
        return  # importing the module registered its perturbations
    if not callable(target):
        raise TypeError(f"{entry.value} is neither a module nor a callable")
    if any(p.function is target for p in REGISTRY.values()):
        return  # a decorated perturbation function: registered on import
    target()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
