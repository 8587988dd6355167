"""Settings as data: `setting` declares a config field with its `Setting`, and the walks
over such dataclasses (`record`, `from_options`, `values`) read those declarations.

`auditor.config` declares the audit's settings with these; nothing else lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from typing import Any, TypeVar

RESULT = "result"  # decides the results: recorded in `config` and in the resume digest
ECHO = "echo"  # recorded in `config` for the reader, left out of the resume digest
LOCAL = "local"  # neither: how and where this one run goes (journal, resume, engine)
GROUP = "group"  # a nested dataclass of settings, each with a role of its own
ROLES = (RESULT, ECHO, LOCAL, GROUP)

Check = Callable[[Any, Any], bool]  # (value, the whole config) -> valid?
T = TypeVar("T")


@dataclass(frozen=True)
class Setting:
    """What one config field is: how it is recorded, set, shown and checked."""

    role: str
    key: str | None = None  # key in the results' `config` (a GROUP's: nested under it)
    via: str | None = None  # recorded under no key of its own: where it is recorded instead
    resolved: bool = False  # the recorded value comes from elsewhere (plan, model, tuning)
    companion: str | None = None  # a key resolved elsewhere, recorded right after this one
    record: Callable[[Any, Any], Any] | None = None  # (value, config) -> value recorded
    option: str | None = None  # parameter name of `auditor check`
    policy: str | None = None  # key in a policy's `[audit]` table
    label: str | None = None  # row label in the report's configuration table ...
    row: int | None = None  # ... and that row's position
    valid: Check | None = None
    message: str = ""  # the ConfigError when not `valid`; `{value}` is the value

    def __post_init__(self) -> None:
        problems = [
            (self.role not in ROLES, f"role must be one of {ROLES}"),
            (
                self.role in (RESULT, ECHO) and (self.key is None) == (self.via is None),
                "a recorded setting needs exactly one of key or via",
            ),
            (self.role == LOCAL and bool(self.key or self.via), "a local setting is not recorded"),
            ((self.label is None) != (self.row is None), "label and row go together"),
            (self.label is not None and self.key is None, "a row shows a recorded key"),
            ((self.valid is None) != (not self.message), "valid and message go together"),
        ]
        for failed, problem in problems:
            if failed:
                raise ValueError(f"bad setting {self}: {problem}")


def setting(default: Any = MISSING, role: str = "", *, factory: Any = MISSING, **facts: Any) -> Any:
    """A dataclass field whose metadata holds its `Setting(role, **facts)`."""
    metadata = {"setting": Setting(role, **facts)}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def settings_of(cls: Any) -> Iterator[tuple[Field[Any], Setting]]:
    """Each field of the settings dataclass `cls` with its `Setting`, in declaration order."""
    for f in fields(cls):
        spec = f.metadata.get("setting")
        if not isinstance(spec, Setting):
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with settings.setting")
        yield f, spec


def nested(f: Field[Any]) -> type | None:
    """The settings dataclass a field holds, or None for a plain value."""
    factory = f.default_factory
    return factory if isinstance(factory, type) and is_dataclass(factory) else None


def walk(cls: Any) -> Iterator[Setting]:
    """Every `Setting` of `cls`, nested ones included, depth first."""
    for f, spec in settings_of(cls):
        yield spec
        inner = nested(f)
        if inner is not None:
            yield from walk(inner)


def values(options: Any) -> Iterator[tuple[Setting, Any]]:
    """Every (`Setting`, value) of the settings dataclass instance `options`, depth first."""
    for f, spec in settings_of(type(options)):
        value = getattr(options, f.name)
        yield spec, value
        if nested(f) is not None:
            yield from values(value)


def record(options: Any, config: Any, resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded settings of `options` (part of `config`), in declaration order.

    A resolved setting takes its value from `resolved`, and is left out when `resolved`
    lacks it; a companion's value is always in `resolved`.
    """
    out: dict[str, Any] = {}
    for f, spec in settings_of(type(options)):
        value = getattr(options, f.name)
        if spec.key is None:
            if spec.role == GROUP:  # its settings sit at this level
                out.update(record(value, config, resolved))
            continue
        if spec.resolved:
            if spec.key in resolved:
                out[spec.key] = resolved[spec.key]
        elif spec.role == GROUP:
            out[spec.key] = record(value, config, resolved)
        else:
            value = spec.record(value, config) if spec.record else value
            out[spec.key] = list(value) if isinstance(value, (tuple, list)) else value
        if spec.companion is not None:
            out[spec.companion] = resolved[spec.companion]
    return out


def from_options(cls: type[T], options: Mapping[str, Any], **given: Any) -> T:
    """Build the settings dataclass `cls` from parsed options, named by `Setting.option`.

    Nested dataclasses are built the same way; `given` sets fields that are no option
    (the command line, the journal); a field whose option is absent keeps its default.
    """
    built: dict[str, Any] = {}
    for f, spec in settings_of(cls):
        inner = nested(f)
        if f.name in given:
            built[f.name] = given[f.name]
        elif inner is not None:
            built[f.name] = from_options(inner, options)
        elif spec.option is not None and spec.option in options:
            built[f.name] = options[spec.option]
    return cls(**built)
