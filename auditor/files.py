"""Opening files that users name, which are untrusted: regular files only, never blocking,
read with a bound, and a one-line reason when that cannot be done.

`open`/`read_bytes` on a FIFO blocks until a writer comes, on a device reads forever, and
on a sparse file of tens of gigabytes reads all of it. Every file `auditor` reads on a
user's word (images, videos, manifests, reports, keys, results) comes through here.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from auditor.errors import AuditorError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
# O_NONBLOCK: opening a FIFO that slipped in after the check must not wait for a writer.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
_REASON_CHARS = 200


_UNREADABLE = "cannot read the file: "


class Refused(AuditorError):
    """A file cannot be read safely; the message is the reason, without the path."""

    @property
    def detail(self) -> str:
        """The reason without its `cannot read the file:` lead, for a message of its own."""
        return str(self).removeprefix(_UNREADABLE)


def kind(mode: int) -> str:
    """What a non-regular file is, in words: `a FIFO`, `a folder`, ..."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def refusal(path: Path | str) -> str | None:
    """Why `path` cannot be read as a regular file (None: it can), without opening it."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return _unreadable(exc)
    except ValueError:  # a NUL byte in the name
        return _UNREADABLE + "its name holds a NUL byte"
    if stat.S_ISREG(mode):
        return None
    return f"not a regular file ({kind(mode)})"


@contextmanager
def open_regular(path: Path | str) -> Iterator[BinaryIO]:
    """Open the regular file at `path` for binary reading; refuse anything else."""
    reason = refusal(path)  # before opening: opening some devices has side effects
    if reason is not None:
        raise Refused(reason)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise Refused(_unreadable(exc)) from exc
    handle = os.fdopen(fd, "rb")
    with handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # replaced between the check and the open
            raise Refused(f"not a regular file ({kind(mode)})")
        yield handle


def size_of(handle: BinaryIO) -> int:
    """The size in bytes of the open file `handle`."""
    return os.fstat(handle.fileno()).st_size


def read_regular(path: Path | str, max_bytes: int) -> bytes:
    """Return the bytes of the regular file at `path`; refuse one over `max_bytes`."""
    with open_regular(path) as handle:
        size = size_of(handle)
        if size > max_bytes:
            raise Refused(too_large(size, max_bytes))
        try:  # the file's size, not the bound: Python sizes its buffer by the request
            data = handle.read(min(size, max_bytes) + 1)
        except OSError as exc:
            raise Refused(_unreadable(exc)) from exc
    if len(data) > max_bytes:  # grew while being read, or a file that states no size
        raise Refused(too_large(len(data), max_bytes))
    return data


def too_large(size: int, max_bytes: int) -> str:
    """The reason for refusing a file of `size` bytes."""
    return f"the file is {size:,} bytes, over the limit of {max_bytes:,}"


def one_line(exc: BaseException) -> str:
    """A short one-line account of an exception raised by a decoder (OpenCV, FFmpeg)."""
    text = str(exc).strip()
    # cv2.error: "OpenCV(4.x) /path/loadsave.cpp:816: error: (-215:...) in function ..."
    text = re.sub(r"^OpenCV\([^)]*\) \S+: error: ", "", text)
    first = text.splitlines()[0].strip() if text else ""
    name = type(exc).__name__
    line = f"{name}: {first}" if first else name
    return line if len(line) <= _REASON_CHARS else line[: _REASON_CHARS - 3] + "..."


def _unreadable(exc: OSError) -> str:
    return _UNREADABLE + str(exc.strerror or exc)
