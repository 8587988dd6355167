"""How much memory an audit may use (`--max-memory`), how that is enforced, and what an
exhausted limit says.

On the CPU provider the limit is the process's address-space limit (`RLIMIT_AS`): an
allocation beyond it fails at once, in numpy (`MemoryError`), onnxruntime ("Failed to
allocate memory") or OpenCV ("Insufficient memory"), and the engine turns that failure
into one line that names what it was doing and the flag. `RLIMIT_AS` counts virtual
memory, which thread stacks and malloc arenas reserve beyond what is used: the 410-image
quickstart peaks at 0.9 GB virtual (0.15 GB resident) on 2 cores and 1.8 GB with 32
workers and 8 streams, far below the default of 75% of the machine's memory.

CUDA reserves address space far beyond what it uses, so with any other provider a
watchdog thread samples the resident size instead and calls `on_exceeded` (the CLI ends
the process with the same line) once it passes the limit.
"""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from auditor.errors import ConfigError, out_of_memory

DEFAULT_SHARE = 0.75
"""`--max-memory` by default: this share of the machine's (or the container's) memory."""
WATCH_INTERVAL = 0.05
"""Seconds between two samples of the resident size by the watchdog."""
_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


class Exhausted(MemoryError):
    """An allocation failed while the engine was at `stage` ("running the model")."""

    def __init__(self, stage: str, detail: str = "") -> None:
        super().__init__(f"out of memory while {stage}" + (f": {detail}" if detail else ""))
        self.stage = stage


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Tag an allocation failure inside the block with `name` (an `Exhausted`)."""
    try:
        yield
    except Exhausted:
        raise
    except Exception as exc:
        if out_of_memory(exc):
            raise Exhausted(name, _first_line(exc)) from exc
        raise


def exhausted_message(limit: int | None, where: str, kept: str = "") -> str:
    """The one line of an audit that ran out of memory `where` ("running the model")."""
    if limit is None:
        return f"the audit ran out of memory (while {where}){kept}"
    return (
        f"the audit needs more memory than --max-memory {describe_size(limit)} allows "
        f"(while {where}); raise it, or lower --batch-size, --workers, --streams or --repeats{kept}"
    )


def default_max_memory() -> int:
    """`DEFAULT_SHARE` of the memory this process can have: the machine's or its cgroup's."""
    return int(machine_memory() * DEFAULT_SHARE)


def machine_memory() -> int:
    """Physical memory in bytes, or the container's memory limit where that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def describe_size(size: int) -> str:
    """`8G`, `512M`, `2GiB` when exact in such a unit, else gigabytes to three digits."""
    units = (("GiB", 1024**3), ("G", 10**9), ("MiB", 1024**2), ("M", 10**6), ("K", 1000))
    for unit, base in units:
        if size >= base and size % base == 0:
            return f"{size // base}{unit}"
    return f"{size / 10**9:.3g}G" if size >= 10**9 else f"{size / 10**6:.3g}M"


def check_limit(limit: int) -> None:
    """Refuse a limit the process already exceeds (it could do nothing but fail)."""
    used = virtual_size()
    if used is not None and limit <= used:
        raise ConfigError(
            f"--max-memory {describe_size(limit)} is below the {describe_size(used)} this "
            "process already uses before the audit starts; give a larger size"
        )


@contextmanager
def bounded(limit: int, address_space: bool, on_exceeded: Callable[[int], None]) -> Iterator[None]:
    """Run the block with at most `limit` bytes: the address space, or the resident size.

    `address_space` lowers `RLIMIT_AS` (restored afterwards); otherwise, or where the
    system refuses that, a watchdog thread calls `on_exceeded(resident bytes)` once the
    resident size passes `limit`.
    """
    if address_space:
        before = _lower_address_space(limit)
        if before is not None:
            try:
                yield
            finally:
                resource.setrlimit(resource.RLIMIT_AS, before)
            return
    watchdog = Watchdog(limit, on_exceeded)
    watchdog.start()
    try:
        yield
    finally:
        watchdog.stop()


def _lower_address_space(limit: int) -> tuple[int, int] | None:
    """Lower `RLIMIT_AS` to `limit` (never raise it); return the limits before, or None
    where the system refuses."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        lowest = [value for value in (limit, soft, hard) if value != resource.RLIM_INFINITY]
        resource.setrlimit(resource.RLIMIT_AS, (min(lowest), hard))
    except (ValueError, OSError):
        return None
    return soft, hard


class Watchdog(threading.Thread):
    """Samples the resident size every `WATCH_INTERVAL` s; calls `on_exceeded` past `limit`."""

    def __init__(self, limit: int, on_exceeded: Callable[[int], None]) -> None:
        super().__init__(name="auditor-memory", daemon=True)
        self.limit = limit
        self.on_exceeded = on_exceeded
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(WATCH_INTERVAL):
            used = resident_size()
            if used is None:
                return  # nothing to watch on this system
            if used > self.limit:
                self.on_exceeded(used)
                return

    def stop(self) -> None:
        self._stopped.set()


def resident_size() -> int | None:
    """This process's resident memory in bytes (None where /proc is missing)."""
    return _statm(1)


def virtual_size() -> int | None:
    """This process's virtual memory in bytes (None where /proc is missing)."""
    return _statm(0)


def _statm(field: int) -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[field])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def runs_on_cpu(provider: str) -> bool:
    """Whether `--provider` resolves to onnxruntime's CPU provider on this machine."""
    from auditor.model.providers import CPU, choose_provider, import_runtime

    ort = import_runtime()
    available, known = list(ort.get_available_providers()), list(ort.get_all_providers())
    return choose_provider(provider, available, known)[0] == CPU
