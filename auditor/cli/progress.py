"""A progress bar on stderr: done/total, rate and time left. Silent when not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 28
REFRESH_SECONDS = 0.2


class ProgressBar:
    """Callable as `bar(done, total)`; redraws at most every REFRESH_SECONDS."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.start = time.monotonic()
        self.last_draw = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last_draw < REFRESH_SECONDS and done < total):
            return
        self.last_draw = now
        fraction = done / total if total else 1.0
        filled = int(WIDTH * fraction)
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else 0.0
        bar = "#" * filled + "-" * (WIDTH - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {fraction:4.0%} {done}/{total} "
            f"{rate:,.0f}/s, {_clock(left)} left "
        )
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
