"""Reading a CSV or JSONL manifest of `path,label` rows: untrusted text, read with bounds.

A manifest is UTF-8 (a leading byte-order mark is allowed), at most 1 GiB, in lines of
at most 64 Ki characters; a JSONL line is a JSON object nested at most 32 deep (keys
other than `path` and `label` are ignored); a path or label holds no control character
and no lone surrogate. Anything else is a one-line `DataError` naming the file and the
line, which never repeats the line itself (it may be megabytes long, or hold terminal
escapes).
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from pathlib import Path
from typing import Any, NamedTuple

from auditor import files
from auditor.errors import DataError

MAX_MANIFEST_BYTES = 1 << 30
MAX_LINE_CHARS = 64 * 1024
MAX_DEPTH = 32
# Control characters (and line separators) in a path or label, and lone surrogates,
# which no file name or UTF-8 report can hold.
_UNUSABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SHOWN_CHARS = 80


class Row(NamedTuple):
    """One manifest row: its line number, its path as written, its label (None: none)."""

    line: int
    path: str
    label: str | None


def read_rows(manifest: Path) -> list[Row]:
    """Return the rows of the `.csv` or `.jsonl` manifest at `manifest`."""
    try:
        data = files.read_regular(manifest, MAX_MANIFEST_BYTES)
    except files.Refused as exc:
        raise DataError(f"{manifest}: {exc}") from None
    lines = _text(manifest, data).splitlines()
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_CHARS:
            raise DataError(
                f"{manifest}:{number}: the line is {len(line):,} characters long, over the "
                f"limit of {MAX_LINE_CHARS:,}"
            )
    if manifest.suffix.lower() == ".jsonl":
        return _jsonl_rows(manifest, lines)
    return _csv_rows(manifest, lines)


def shown(path: str) -> str:
    """`path` quoted for a message, cut short when long."""
    if len(path) > _SHOWN_CHARS:
        path = path[: _SHOWN_CHARS - 3] + "..."
    return repr(path)


def _text(manifest: Path, data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{manifest}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x}); save the "
            "manifest as UTF-8"
        ) from None


def _jsonl_rows(manifest: Path, lines: list[str]) -> list[Row]:
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{manifest}:{number}"
        row = _json_object(line, where)
        path, label = row.get("path"), row.get("label")
        if not _scalar(path, label_ok=False) or not _scalar(label, label_ok=True):
            raise DataError(f"{where}: 'path' and 'label' must be strings or numbers")
        rows.append(_checked(Row(number, str(path), _label(label)), where))
    return rows


def _json_object(line: str, where: str) -> dict[str, Any]:
    expected = f"{where}: expected a JSON object with 'path' (and 'label')"
    if _too_deep(line):
        raise DataError(f"{where}: JSON nested more than {MAX_DEPTH} deep")
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):  # ValueError: JSONDecodeError, too many digits
        raise DataError(expected) from None
    if not isinstance(row, dict) or "path" not in row:
        raise DataError(expected)
    return row


def _too_deep(line: str) -> bool:
    """Whether the JSON text `line` nests arrays and objects more than `MAX_DEPTH` deep."""
    if line.count("[") + line.count("{") <= MAX_DEPTH:  # the common case, at C speed
        return False
    depth, in_string, escaped = 0, False, False
    for char in line:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _scalar(value: object, label_ok: bool) -> bool:
    if value is None or isinstance(value, bool):
        return label_ok
    return isinstance(value, (str, int, float))


def _csv_rows(manifest: Path, lines: list[str]) -> list[Row]:
    reader = csv.DictReader(lines)
    rows = []
    try:
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise DataError(f"{manifest}: expected a CSV header with 'path' (and 'label')")
        for row in reader:
            path = row.get("path")
            if isinstance(path, str) and path.strip():
                label = row.get("label")
                found = Row(reader.line_num, path.strip(), _label(label))
                rows.append(_checked(found, f"{manifest}:{reader.line_num}"))
    except csv.Error as exc:
        raise DataError(f"{manifest}:{reader.line_num}: not valid CSV ({exc})") from None
    return rows


def _checked(row: Row, where: str) -> Row:
    for what, text in (("path", row.path), ("label", row.label or "")):
        found = _UNUSABLE.search(text)
        if found:
            code = ord(found.group())
            name = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
            raise DataError(f"{where}: the {what} holds {name} (U+{code:04X})")
    return row


def _label(value: object) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None
