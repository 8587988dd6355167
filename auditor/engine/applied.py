"""What each level did before the model saw it: pixels changed, faces found (mergeable).

Facts of the perturbation and of the face front end on this data, not of the model;
counted like every other figure (`auditor.engine.stats`), so shards merge exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor import metrics

PSNR_STEPS = 100  # PSNR is counted in steps of 1 / PSNR_STEPS dB
PEAK = 255.0  # the largest uint8 pixel value: PSNR's peak signal


@dataclass
class PixelStats:
    """How a level's draws changed the pixels: counts that add up across shards."""

    measured: int = 0  # samples whose pixels were compared (none on a search's levels)
    changed: int = 0  # samples with at least one draw that changed a pixel
    identical: int = 0  # draws that changed no pixel (PSNR infinite)
    psnr: Counter[int] = field(default_factory=Counter)  # other draws: PSNR in PSNR_STEPS

    def add(self, sse: NDArray[np.int64], values: NDArray[np.int64]) -> None:
        """Count samples: `sse` N x R squared differences per draw, `values` N pixel values."""
        touched = sse > 0
        self.measured += len(sse)
        self.changed += int(touched.any(axis=1).sum())
        self.identical += int((~touched).sum())
        peak = np.broadcast_to(values[:, None], sse.shape)[touched] * PEAK**2
        psnr = 10.0 * np.log10(peak / sse[touched])
        self.psnr.update(metrics.value_counts(np.rint(psnr * PSNR_STEPS).astype(np.int64)))

    def merge(self, other: PixelStats) -> None:
        self.measured += other.measured
        self.changed += other.changed
        self.identical += other.identical
        self.psnr.update(other.psnr)

    def finish(self) -> dict[str, Any]:
        """`changed_share`, `psnr_median` and `no_effect`; None and False where not measured."""
        if not self.measured:
            return {"changed_share": None, "psnr_median": None, "no_effect": False}
        return {
            "changed_share": metrics.rounded(self.changed / self.measured),
            "psnr_median": self._median(),
            "no_effect": self.changed == 0,
        }

    def _median(self) -> float | None:
        """The median PSNR over draws, unchanged ones infinite; None where that is infinite."""
        finite = sum(self.psnr.values())
        total = finite + self.identical
        low, high = (total - 1) // 2, total // 2  # the middle rank(s), 0-based
        if high >= finite:  # an infinite value is in the middle
            return None
        keys = sorted(self.psnr)
        ends = np.cumsum([self.psnr[k] for k in keys])
        a, b = (keys[int(np.searchsorted(ends, rank, side="right"))] for rank in (low, high))
        return round((a + b) / 2 / PSNR_STEPS, 2)


@dataclass
class FaceStats:
    """`--face-crop` at one level: faces found, and how far the crops moved (mergeable)."""

    samples: int = 0  # samples counted
    found: int = 0  # samples whose face was found under every draw of the level
    shifts: Counter[int] = field(default_factory=Counter)  # crop centre shift, px -> draws

    def add(self, lost: NDArray[np.bool_], shifts: Sequence[float]) -> None:
        """Count samples: `lost` R x N (no face under that draw); `shifts` of the found draws."""
        self.samples += lost.shape[1]
        self.found += int((~lost.any(axis=0)).sum())
        self.shifts.update(metrics.value_counts(np.rint(np.asarray(shifts)).astype(np.int64)))

    def merge(self, other: FaceStats) -> None:
        self.samples += other.samples
        self.found += other.found
        self.shifts.update(other.shifts)

    def finish(self) -> dict[str, Any]:
        """`face_found_rate` and `crop_shift_median` (px, whole); empty when not counted."""
        if not self.samples:
            return {}
        keys = sorted(self.shifts)
        median = None
        if keys:
            ends = np.cumsum([self.shifts[k] for k in keys])
            total = int(ends[-1])
            ranks = ((total - 1) // 2, total // 2)  # the middle rank(s), 0-based
            a, b = (keys[int(np.searchsorted(ends, r, "right"))] for r in ranks)
            median = (a + b) / 2
        return {
            "face_found_rate": metrics.rounded(self.found / self.samples),
            "crop_shift_median": median,
        }
