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
from auditor.engine.applied import FaceStats, PixelStats
from auditor.metrics import paired

Probs = NDArray[np.float64]
Labels = NDArray[np.int64]
MOVED_PER_PERTURBATION = 3
# The worst delta given to a sample whose face was lost at a level (`--face-crop`): above
# every tolerance (they are at most 1), so RR counts it not robust.
LOST_DELTA = 2.0


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
class Outcomes:
    """Each counted sample's outcome bits at one level, in the order they were counted.

    One byte (0 or 1) per sample and flag, so shards' outcomes concatenate; the results
    store them as bitsets in manifest order (`auditor.metrics.paired`).
    """

    correct: bytearray = field(default_factory=bytearray)  # empty when unlabelled
    robust: list[bytearray] = field(default_factory=list)  # per tolerance
    flipped: bytearray = field(default_factory=bytearray)

    def add(
        self,
        correct: NDArray[np.bool_] | None,
        robust: Sequence[NDArray[np.bool_]],
        flipped: NDArray[np.bool_],
    ) -> None:
        if not self.robust:
            self.robust = [bytearray() for _ in robust]
        if correct is not None:
            self.correct += correct.astype(np.uint8).tobytes()
        for mine, bits in zip(self.robust, robust):
            mine += bits.astype(np.uint8).tobytes()
        self.flipped += flipped.astype(np.uint8).tobytes()

    def merge(self, other: Outcomes) -> None:
        """Append `other`'s samples after these (their keys follow in `AuditStats.keys`)."""
        if not self.robust:
            self.robust = [bytearray() for _ in other.robust]
        self.correct += other.correct
        for mine, theirs in zip(self.robust, other.robust):
            mine += theirs
        self.flipped += other.flipped

    def finish(self, order: Sequence[int], keys: Sequence[str]) -> dict[str, Any] | None:
        """The bitsets in `order` (count positions sorted into manifest order), or None.

        None when no outcome was kept (results merged from statistics without them).
        """
        if len(self.flipped) != len(order):
            return None
        index = np.asarray(order, np.intp)

        def bitset(flags: bytearray) -> str:
            return paired.pack_bits(np.frombuffer(bytes(flags), np.uint8)[index] > 0)

        return {
            "correct": bitset(self.correct) if len(self.correct) == len(order) else None,
            "robust": {k: bitset(flags) for k, flags in zip(keys, self.robust)},
            "flipped": bitset(self.flipped),
        }


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
    pixels: PixelStats = field(default_factory=PixelStats)
    outcomes: Outcomes = field(default_factory=Outcomes)
    faces: FaceStats = field(default_factory=FaceStats)

    def add(
        self,
        clean: Probs,
        perturbed: Probs,
        labels: Labels | None,
        s: Scoring,
        keep_outcomes: bool = False,
        lost: NDArray[np.bool_] | None = None,
    ) -> None:
        """Count samples: `clean` N x K, `perturbed` R x N x K.

        `keep_outcomes`: also keep each sample's outcome bits (`Outcomes`), in the order
        the samples are counted. `lost` (R x N, `--face-crop`): draws where no face was
        found; such a sample counts as flipped, wrong and outside every tolerance.
        """
        if not self.within:
            self.within = [0] * len(s.tolerances)
            self.curve = [0] * len(metrics.CURVE_TOLERANCES)
        worst = metrics.deltas(clean, perturbed, s.delta_norm, labels).max(axis=0)
        base = metrics.decide(clean, s.threshold, s.positive)
        decisions = metrics.decide(perturbed, s.threshold, s.positive)
        flipped = (decisions != base[None]).any(axis=0)
        missing: NDArray[np.bool_] | None = None
        if lost is not None:
            missing = np.asarray(lost.any(axis=0), bool)
        if missing is not None:
            worst = np.where(missing, LOST_DELTA, worst)
            flipped |= missing
        self.n += len(clean)
        self.flips += int(flipped.sum())
        ordered = np.sort(worst)  # count of deltas <= b + slack, for every b at once
        within = np.searchsorted(ordered, np.asarray(s.tolerances) + metrics.FLOAT_SLACK, "right")
        curve = np.searchsorted(ordered, metrics.CURVE_TOLERANCES + metrics.FLOAT_SLACK, "right")
        self.within = [a + int(b) for a, b in zip(self.within, within)]
        self.curve = [a + int(b) for a, b in zip(self.curve, curve)]
        self.deltas.update(metrics.value_counts(metrics.quantize(worst)))
        correct = None
        if labels is not None:
            correct = self._add_labelled(clean, perturbed, labels, decisions, s, missing)
        if keep_outcomes:
            robust = [worst <= b + metrics.FLOAT_SLACK for b in s.tolerances]
            self.outcomes.add(correct, robust, flipped)

    def _add_labelled(
        self,
        clean: Probs,
        perturbed: Probs,
        labels: Labels,
        decisions: Any,
        s: Scoring,
        missing: NDArray[np.bool_] | None = None,
    ) -> NDArray[np.bool_]:
        """Count the labelled figures; return which samples were correct under every draw."""
        robust = (decisions == labels[None]).all(axis=0)
        if missing is not None:  # no face found: the pipeline made no decision to be right
            robust &= ~missing
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
        return robust

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
        self.pixels.merge(other.pixels)
        self.outcomes.merge(other.outcomes)
        self.faces.merge(other.faces)

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
    keys: list[str] = field(default_factory=list)  # the samples whose outcomes are kept, in order
    sides: Counter[int] = field(default_factory=Counter)  # short side in px -> samples
    # --face-crop: every sample's crop boxes, clean and per level and draw (`crop_record`)
    crop_boxes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(
        self,
        clean: Probs,
        perturbed: Sequence[Probs],
        labels: Labels | None,
        s: Scoring,
        keys: Sequence[str] | None = None,
        lost: Sequence[NDArray[np.bool_] | None] | None = None,
    ) -> None:
        """Count a group of samples: `perturbed[j]` is R x N x K for level j.

        With the samples' `keys`, each level also keeps their outcome bits (`Outcomes`);
        `lost[j]` (R x N, `--face-crop`) marks the draws of level j where no face was found.
        """
        while len(self.levels) < len(perturbed):
            self.levels.append(LevelStats())
        self.clean.add(clean, labels, s)
        if keys is not None:
            self.keys.extend(keys)
        misses = lost if lost is not None else [None] * len(perturbed)
        for stats, probs, missing in zip(self.levels, perturbed, misses):
            stats.add(clean, probs, labels, s, keys is not None, missing)

    def add_pixels(
        self,
        levels: Sequence[int],
        sse: NDArray[np.int64],
        values: NDArray[np.int64],
        sides: Sequence[int],
    ) -> None:
        """Count how the draws changed the pixels: `sse[:, j]` (N x R) is for level `levels[j]`."""
        self.sides.update(sides)
        for j, index in enumerate(levels):
            self.levels[index].pixels.add(sse[:, j], values)

    def add_faces(self, index: int, lost: NDArray[np.bool_], shifts: Sequence[float]) -> None:
        """Count level `index`'s faces (`FaceStats.add`)."""
        self.levels[index].faces.add(lost, shifts)

    def manifest_order(self) -> list[int]:
        """The positions of the kept samples sorted by key: the results' manifest order."""
        return sorted(range(len(self.keys)), key=self.keys.__getitem__)

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
        self.keys.extend(other.keys)
        self.sides.update(other.sides)
        for name, candidates in other.moved.items():
            self.moved[name] = _top(self.moved.get(name, []) + candidates)
        self.crop_boxes.update(other.crop_boxes)
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
