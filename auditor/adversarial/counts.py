"""Mergeable figures of the adversarial search: queries spent and successes per level."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from auditor.adversarial.square import Outcome

OBJECTIVES = ("flip", "delta")


@dataclass
class SearchCounts:
    """Mergeable figures of one objective at one level: queries per sample, successes."""

    n: int = 0
    success: int = 0
    moved: int = 0
    queries: Counter[int] = field(default_factory=Counter)

    def add(self, outcomes: Sequence[Outcome]) -> None:
        self.n += len(outcomes)
        self.success += sum(o.success for o in outcomes)
        self.moved += sum(o.moved for o in outcomes)
        self.queries.update(o.queries for o in outcomes)

    def merge(self, other: SearchCounts) -> None:
        self.n += other.n
        self.success += other.success
        self.moved += other.moved
        self.queries.update(other.queries)

    def finish(self) -> dict[str, Any]:
        """The figures `summarize` gives, from counts (so shards merge exactly)."""
        if not self.n:
            return {"n": 0, "success_fraction": None, "queries_median": None,
                    "queries_p90": None, "queries_total": 0, "moved_fraction": None,
                    "unaffected": None}  # fmt: skip
        spent = np.repeat(
            np.array(sorted(self.queries), np.float64),
            [self.queries[q] for q in sorted(self.queries)],
        )
        return {
            "n": self.n,
            "success_fraction": round(self.success / self.n, 6),
            "queries_median": float(np.median(spent)),
            "queries_p90": float(np.percentile(spent, 90)),
            "queries_total": int(spent.sum()),
            "moved_fraction": round(self.moved / self.n, 6),
            "unaffected": self.moved == 0,
        }


@dataclass
class AttackCounts(SearchCounts):
    """A gradient attack's figures: the search's, the twin's fidelity, CW's L2 distances.

    Fidelity is the largest |twin - onnxruntime| probability difference, on the clean
    and on the final adversarial images; `l2` holds the smallest successful L2 (RMS on
    the 0..1 scale) per sample where one was found. All merge exactly across shards.
    """

    twin_clean: float = 0.0
    twin_adversarial: float = 0.0
    l2: list[float] = field(default_factory=list)

    def merge(self, other: SearchCounts) -> None:
        super().merge(other)
        if isinstance(other, AttackCounts):
            self.twin_clean = max(self.twin_clean, other.twin_clean)
            self.twin_adversarial = max(self.twin_adversarial, other.twin_adversarial)
            self.l2 = sorted(self.l2 + other.l2)

    def finish(self) -> dict[str, Any]:
        figures = super().finish()
        figures["twin_clean"] = _fidelity(self.twin_clean)
        figures["twin_adversarial"] = _fidelity(self.twin_adversarial)
        return figures


def _fidelity(value: float) -> float:
    """A probability difference as reported: two significant digits."""
    return float(f"{value:.2g}")
