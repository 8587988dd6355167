"""Mergeable statistics: per-level counts and exact sums that add up across shards.

Every figure of a level is a count, an exact integer sum, or a count of values at the
reported precision (see `metrics`), so `merge` of two shards' statistics equals the
statistics of one run over both, in any order. The objects are plain dataclasses of
ints, lists and dicts: picklable, so shards can run in other processes or machines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor import metrics
from auditor.adversarial.counts import SearchCounts

Probs = NDArray[np.float64]
Labels = NDArray[np.int64]
MOVED_PER_PERTURBATION = 3


@dataclass(frozen=True)
class Scoring:
    """What turns probabilities into decisions and deltas."""

    threshold: float
    positive: int | None
    delta_norm: str
    tolerances: tuple[float, ...]


@dataclass
class ClassStats:
    """Per true class: samples, robust samples, exact sum of p(positive) shifts."""

    n: int = 0
    robust: int = 0
    shift_total: int = 0  # exact, in units of 2**-1074
    shift_count: int = 0

    def merge(self, other: ClassStats) -> None:
        self.n += other.n
        self.robust += other.robust
        self.shift_total += other.shift_total
        self.shift_count += other.shift_count


@dataclass
class LevelStats:
    """Everything `metrics.level_metrics` needs for one perturbation level, as sums."""

    n: int = 0
    flips: int = 0
    robust: int = 0
    within: list[int] = field(default_factory=list)  # per tolerance
    curve: list[int] = field(default_factory=list)  # per metrics.CURVE_TOLERANCES
    deltas: Counter[int] = field(default_factory=Counter)  # quantized worst delta -> count
    per_class: dict[int, ClassStats] = field(default_factory=dict)
    scores: list[tuple[Counter[int], Counter[int]]] = field(default_factory=list)  # per repeat

    def add(self, clean: Probs, perturbed: Probs, labels: Labels | None, s: Scoring) -> None:
        """Count samples: `clean` N x K, `perturbed` R x N x K."""
        if not self.within:
            self.within = [0] * len(s.tolerances)
            self.curve = [0] * len(metrics.CURVE_TOLERANCES)
        worst = metrics.deltas(clean, perturbed, s.delta_norm, labels).max(axis=0)
        base = metrics.decide(clean, s.threshold, s.positive)
        decisions = metrics.decide(perturbed, s.threshold, s.positive)
        self.n += len(clean)
        self.flips += int((decisions != base[None]).any(axis=0).sum())
        ordered = np.sort(worst)  # count of deltas <= b + slack, for every b at once
        within = np.searchsorted(ordered, np.asarray(s.tolerances) + metrics.FLOAT_SLACK, "right")
        curve = np.searchsorted(ordered, metrics.CURVE_TOLERANCES + metrics.FLOAT_SLACK, "right")
        self.within = [a + int(b) for a, b in zip(self.within, within)]
        self.curve = [a + int(b) for a, b in zip(self.curve, curve)]
        self.deltas.update(metrics.value_counts(metrics.quantize(worst)))
        if labels is not None:
            self._add_labelled(clean, perturbed, labels, decisions, s)

    def _add_labelled(
        self, clean: Probs, perturbed: Probs, labels: Labels, decisions: Any, s: Scoring
    ) -> None:
        robust = (decisions == labels[None]).all(axis=0)
        self.robust += int(robust.sum())
        for index in np.unique(labels).tolist():
            mask = labels == index
            entry = self.per_class.setdefault(index, ClassStats())
            entry.n += int(mask.sum())
            entry.robust += int(robust[mask].sum())
            if s.positive is not None:
                shift = perturbed[:, mask, s.positive] - clean[None, mask, s.positive]
                entry.shift_total += metrics.exact_total(shift)
                entry.shift_count += shift.size
        if s.positive is not None:
            is_pos = labels == s.positive
            while len(self.scores) < len(perturbed):
                self.scores.append((Counter(), Counter()))
            for r, rep in enumerate(perturbed):
                q = metrics.quantize(rep[:, s.positive])
                self.scores[r][0].update(metrics.value_counts(q[is_pos]))
                self.scores[r][1].update(metrics.value_counts(q[~is_pos]))

    def merge(self, other: LevelStats) -> None:
        """Add `other`'s counts to these."""
        if not self.within:
            self.within, self.curve = [0] * len(other.within), [0] * len(other.curve)
        self.n += other.n
        self.flips += other.flips
        self.robust += other.robust
        self.within = [a + b for a, b in zip(self.within, other.within)]
        self.curve = [a + b for a, b in zip(self.curve, other.curve)]
        self.deltas.update(other.deltas)
        for index, entry in other.per_class.items():
            self.per_class.setdefault(index, ClassStats()).merge(entry)
        while len(self.scores) < len(other.scores):
            self.scores.append((Counter(), Counter()))
        for mine, theirs in zip(self.scores, other.scores):
            mine[0].update(theirs[0])
            mine[1].update(theirs[1])

    def finish(
        self,
        s: Scoring,
        keys: Sequence[str],
        class_names: Sequence[str],
        labelled: bool,
        clean_accuracy: float | None,
    ) -> dict[str, Any]:
        """Return the same dict as `metrics.level_metrics` on the samples counted."""
        n, w = self.n, metrics.wilson
        out: dict[str, Any] = {
            "n": n,
            "rr": {k: metrics.rounded(c / n) for k, c in zip(keys, self.within)},
            "rr_ci": {k: w(c, n) for k, c in zip(keys, self.within)},
            "flip_rate": metrics.rounded(self.flips / n),
            "flip_rate_ci": w(self.flips, n),
            "delta_quantiles": metrics.delta_quantiles(self.deltas),
            "rr_curve": [
                [float(b), metrics.rounded(c / n)]
                for b, c in zip(metrics.CURVE_TOLERANCES, self.curve)
            ],
            "ra": None,
            "ra_ci": None,
            "ra_drop": None,
            "per_class": {},
            "auc": None,
        }
        if labelled:
            out.update(ra=metrics.rounded(self.robust / n), ra_ci=w(self.robust, n))
            if clean_accuracy is not None:
                out["ra_drop"] = metrics.rounded(self.robust / n - clean_accuracy)
            out["per_class"] = self._finish_classes(s, class_names)
            if s.positive is not None:
                aucs = [metrics.auc_from_counts(pos, neg) for pos, neg in self.scores]
                out["auc"] = min((a for a in aucs if a is not None), default=None)
        return out

    def _finish_classes(self, s: Scoring, class_names: Sequence[str]) -> dict[str, Any]:
        out = {}
        for index, name in enumerate(class_names):
            entry = self.per_class.get(index)
            if entry is None or entry.n == 0:
                continue
            row: dict[str, Any] = {
                "n": entry.n,
                "ra": metrics.rounded(entry.robust / entry.n),
                "ra_ci": metrics.wilson(entry.robust, entry.n),
            }
            if s.positive is not None:
                mean = metrics.exact_mean(entry.shift_total, entry.shift_count)
                row["mean_shift"] = metrics.rounded(mean)
            out[name] = row
        return out


@dataclass
class CleanStats:
    """Clean accuracy counts, per class, and the clean scores for the AUC."""

    n: int = 0
    correct: int = 0
    per_class: dict[int, list[int]] = field(default_factory=dict)  # index -> [n, correct]
    pos: Counter[int] = field(default_factory=Counter)
    neg: Counter[int] = field(default_factory=Counter)

    def add(self, clean: Probs, labels: Labels | None, s: Scoring) -> None:
        self.n += len(clean)
        if labels is None:
            return
        correct = metrics.decide(clean, s.threshold, s.positive) == labels
        self.correct += int(correct.sum())
        for index in np.unique(labels).tolist():
            mask = labels == index
            entry = self.per_class.setdefault(index, [0, 0])
            entry[0] += int(mask.sum())
            entry[1] += int(correct[mask].sum())
        if s.positive is not None:
            q = metrics.quantize(clean[:, s.positive])
            self.pos.update(metrics.value_counts(q[labels == s.positive]))
            self.neg.update(metrics.value_counts(q[labels != s.positive]))

    def merge(self, other: CleanStats) -> None:
        self.n += other.n
        self.correct += other.correct
        for index, (n, k) in other.per_class.items():
            entry = self.per_class.setdefault(index, [0, 0])
            entry[0] += n
            entry[1] += k
        self.pos.update(other.pos)
        self.neg.update(other.neg)

    def finish(self, s: Scoring, class_names: Sequence[str], labelled: bool) -> dict[str, Any]:
        """Return the same dict as `metrics.clean_metrics` on the samples counted."""
        n = self.n
        if not labelled:
            return {"n": n, "accuracy": None, "accuracy_ci": None, "per_class": {}, "auc": None}
        per_class = {}
        for index, name in enumerate(class_names):
            if index in self.per_class and self.per_class[index][0]:
                m, k = self.per_class[index]
                per_class[name] = {
                    "n": m,
                    "accuracy": metrics.rounded(k / m),
                    "accuracy_ci": metrics.wilson(k, m),
                }
        auc = metrics.auc_from_counts(self.pos, self.neg) if s.positive is not None else None
        return {
            "n": n,
            "accuracy": metrics.rounded(self.correct / n),
            "accuracy_ci": metrics.wilson(self.correct, n),
            "per_class": per_class,
            "auc": auc,
        }


@dataclass
class AuditStats:
    """Clean statistics, one `LevelStats` per planned level, and the most-moved samples."""

    clean: CleanStats = field(default_factory=CleanStats)
    levels: list[LevelStats] = field(default_factory=list)
    moved: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # search -> per level -> key (an objective) -> mergeable counts (queries, successes)
    adversarial: dict[str, list[dict[str, SearchCounts]]] = field(default_factory=dict)

    def add(
        self,
        clean: Probs,
        perturbed: Sequence[Probs],
        labels: Labels | None,
        s: Scoring,
    ) -> None:
        """Count a group of samples: `perturbed[j]` is R x N x K for level j."""
        while len(self.levels) < len(perturbed):
            self.levels.append(LevelStats())
        self.clean.add(clean, labels, s)
        for stats, probs in zip(self.levels, perturbed):
            stats.add(clean, probs, labels, s)

    def offer_moved(self, perturbation: str, candidate: dict[str, Any]) -> bool:
        """Keep `candidate` if it is among the most moved; return whether it was kept."""
        kept = _top(self.moved.get(perturbation, []) + [candidate])
        self.moved[perturbation] = kept
        return any(c is candidate for c in kept)

    def merge(self, other: AuditStats) -> None:
        """Add `other`'s statistics to these."""
        self.clean.merge(other.clean)
        while len(self.levels) < len(other.levels):
            self.levels.append(LevelStats())
        for mine, theirs in zip(self.levels, other.levels):
            mine.merge(theirs)
        for name, candidates in other.moved.items():
            self.moved[name] = _top(self.moved.get(name, []) + candidates)
        for name, levels in other.adversarial.items():
            for index, counts in enumerate(levels):
                self.add_search_counts(name, index, counts)

    def add_search_counts(self, search: str, index: int, counts: dict[str, SearchCounts]) -> None:
        """Add a search's mergeable counts of its level `index` (0-based) to these."""
        levels = self.adversarial.setdefault(search, [])
        while len(levels) <= index:
            levels.append({})
        for key, figures in counts.items():
            levels[index].setdefault(key, type(figures)()).merge(figures)


def moved_order(candidate: dict[str, Any]) -> tuple[float, str, int]:
    """Largest delta first; ties by sample key, then level."""
    return (-candidate["delta"], candidate["sample"], candidate["level"])


def _top(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(candidates, key=moved_order)[:MOVED_PER_PERTURBATION]
