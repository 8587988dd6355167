"""A progress bar on stderr: done/total in named units, rate and time left.

Silent when not a terminal. The engine counts work units: per sample, its clean row and
each perturbed draw; `unit_name` says so in words ("images x levels").
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import TextIO

WIDTH = 28
MIN_WIDTH = 10
REFRESH_SECONDS = 0.2


class ProgressBar:
    """Callable as `bar(done, total)`; redraws at most every REFRESH_SECONDS."""

    def __init__(self, label: str, stream: TextIO | None = None, unit: str = "") -> None:
        self.label = label
        self.unit = unit
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
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else 0.0
        unit = f" {self.unit}" if self.unit else ""
        counts = f"{fraction:4.0%} {done}/{total}{unit}, {rate:,.0f}/s, {_clock(left)} left "
        # a line longer than the terminal would wrap, and each redraw would add a line
        room = shutil.get_terminal_size().columns - len(self.label) - len(counts) - 5
        width = max(MIN_WIDTH, min(WIDTH, room))
        filled = int(width * fraction)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {counts}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def audit_bar(data_path: Path, repeats: int = 1) -> ProgressBar:
    """The bar of `auditor check`, its unit named after the data (images or videos)."""
    from auditor.data.samples import media_of

    return ProgressBar("auditing", unit=unit_name(media_of(data_path), repeats))


def unit_name(media: str, repeats: int = 1) -> str:
    """What one work unit of the engine is, in words: `images x levels` (`x repeats`).

    A sample's clean row counts as one more level, and each repeat of a level as one.
    """
    samples = "videos" if media == "video" else "images"
    return f"{samples} x levels" + (" x repeats" if repeats > 1 else "")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
