"""Check that JSON values have the types a dataclass declares, before anything reads them.

Results files are read years later and may have been edited by hand: `auditor render`
must refuse a value of the wrong type with one line naming it, not fail deep inside a
template. The declared annotations are the single source of what is expected.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Union


def check_fields(cls: Any, data: Any, where: str, optional: frozenset[str] = frozenset()) -> None:
    """Raise `ValueError` naming the first field of `data` that does not fit `cls`'s types.

    Missing fields with defaults (or named in `optional`) are fine; unknown keys are
    ignored (results of a newer version).
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be an object, found {_kind(data)}")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in data:
            check_value(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.name not in optional and _required(f):
            raise ValueError(f"{where} lacks {f.name!r}")


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def check_value(expected: Any, value: Any, where: str) -> None:
    """Raise `ValueError` when `value` does not fit the annotation `expected`."""
    if not _fits(expected, value, where):
        raise ValueError(f"{where} must be {_name(expected)}, found {_kind(value)}")


def _fits(expected: Any, value: Any, where: str) -> bool:
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if expected is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_fits(arg, value, where) for arg in args)
    if expected is type(None):
        return value is None
    if expected is float:  # JSON writes 1.0 as 1 only by hand; accept ints, never bools
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        if not isinstance(value, list):
            return False
        for i, item in enumerate(value):
            check_value(args[0] if args else Any, item, f"{where}[{i}]")
        return True
    if origin is dict:
        if not isinstance(value, dict):
            return False
        for key, item in value.items():
            check_value(args[1] if args else Any, item, f"{where}[{key!r}]")
        return True
    if dataclasses.is_dataclass(expected):
        check_fields(expected, value, where)
        return True
    if isinstance(expected, type):
        return isinstance(value, expected)
    return True  # a form this checker does not know: let the reader decide


def _name(expected: Any) -> str:
    if typing.get_origin(expected) in (Union, types.UnionType):
        return " or ".join(_name(arg) for arg in typing.get_args(expected))
    if expected is type(None):
        return "null"
    origin = typing.get_origin(expected)
    if origin is list:
        return "a list"
    if origin is dict or expected is dict:
        return "an object"
    names: dict[Any, str] = {float: "a number", int: "an integer", str: "a string"}
    names[bool] = "true or false"
    return names.get(expected, getattr(expected, "__name__", str(expected)))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string" if len(value) > 40 else f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__
