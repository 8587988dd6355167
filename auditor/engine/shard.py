"""One shard's run: samples stream through the pipeline into the statistics and the
journal; the searches run on each scored group; Ctrl-C stops after the current batch.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np

from auditor import data, metrics
from auditor.adversarial.registry import SEARCHES, Group, Scorer, SearchLevel
from auditor.config import AuditConfig
from auditor.data.video import file_sha256
from auditor.engine import memory
from auditor.engine.facecrop import ClipFaces, Faces, lost_probs
from auditor.engine.journal import Journal, journal_record, load_records
from auditor.engine.partial import (
    ShardResult,
)
from auditor.engine.pipeline import Failed, Pipeline, Scored, skip_reason
from auditor.engine.plan import AuditPlan
from auditor.engine.stats import AuditStats
from auditor.errors import AuditorError, DataError, MemoryLimitError, SampleError
from auditor.model.adapter import Model

Progress = Callable[[int, int], None]  # (units done, units in all)

COUNT_GROUP = 32
"""Finished samples counted into the statistics at a time (any number gives the same)."""


class ShardRun:
    """The mutable side of one shard: journal, statistics, progress."""

    def __init__(
        self,
        config: AuditConfig,
        part: ShardResult,
        label_of: Callable[[data.Sample], int],
        probe_keys: set[str],
        progress: Progress | None,
    ) -> None:
        self.config = config
        self.part = part
        self.plan = part.plan
        self.label_of = label_of
        self.probe_keys = probe_keys
        self.first_pass: dict[str, Scored] = {}
        self.waiting: list[Scored] = []  # absorbed, not yet in the statistics
        self.progress = progress
        self.sampled = self.plan.sampled  # the levels of a sample's tensor rows, in order
        self.repeats = config.repeats
        self.searches: Searches | None = None

    def execute(
        self, pipeline: Pipeline, mine: list[tuple[int, data.Sample]], dataset: data.Dataset
    ) -> None:
        journal = None
        if self.config.journal_path is not None:
            journal = self._open_journal(dataset, mine, pipeline.tuning.workers)
        seen = {row["path"] for row in self.part.manifest} | {
            s["path"] for s in self.part.skipped_decode
        }
        todo = [(i, s) for i, s in mine if s.key not in seen]
        try:
            with graceful_stop() as stopped:
                for group in pipeline.run(todo):
                    self._absorb(group)
                    if journal is not None:
                        journal.append(journal_record(item) for item in group)
                        journal.flush()
                    if stopped.is_set():
                        break
        except Exception as exc:  # the samples finished so far stay journaled: say so
            kept = ""
            if journal is not None:
                kept = f"; the samples finished so far are kept in {journal.path}: add --resume"
            raise stop_error(exc, self.config.max_memory, kept) from exc
        finally:
            if journal is not None:
                journal.close()
        self._count_waiting()
        if journal is not None and self.part.done == self.part.total:
            journal.remove()

    def _open_journal(
        self, dataset: data.Dataset, mine: list[tuple[int, data.Sample]], workers: int
    ) -> Journal:
        """Start the shard's journal; on resume, count its records of unchanged files.

        A scored sample whose file's sha256 is no longer the journaled one is scored
        again, and so is every sample skipped before (its file may have been mended).
        The journal is then rewritten without the records it no longer uses.
        """
        assert self.config.journal_path is not None
        digest = f"{self.part.digest}:{self.part.shard[0]}/{self.part.shard[1]}"
        journal, records = Journal.start(self.config.journal_path, digest, self.config.resume)
        if not records:
            return journal
        width = len(self.part.class_names) or None
        finished = load_records(
            journal.path, records, dataset.samples, self.plan, width, {i for i, _ in mine}
        )
        with ThreadPoolExecutor(workers) as pool:  # hashlib hashes outside the GIL
            unchanged = list(pool.map(_unchanged, finished))
        if not all(unchanged):
            journal.rewrite(digest, [r for r, keep in zip(records, unchanged) if keep])
        self._absorb([item for item, keep in zip(finished, unchanged) if keep])
        self._count_waiting()
        return journal

    def _absorb(self, group: Sequence[Scored | Failed]) -> None:
        """Count a group of finished samples into the statistics."""
        part = self.part
        scored = [g for g in group if isinstance(g, Scored)]
        for item in group:
            if isinstance(item, Failed):
                part.skipped_decode.append({"path": item.sample.key, "reason": item.reason})
        for item in scored:
            row: dict[str, Any] = {"path": item.sample.key, "sha256": item.sha256}
            row["label"] = item.sample.label
            if item.converted:
                row["converted"] = item.converted
            if item.frames is not None:
                row["frames"] = list(item.frame_indices)
            part.manifest.append(row)
            if item.sample.key in self.probe_keys:
                self.first_pass[item.sample.key] = item
        part.done += len(group) * self.plan.units_per_sample
        # Counted in groups of COUNT_GROUP samples: the statistics cost a fixed overhead
        # per call and level, and a model batch often finishes a single sample.
        self.waiting += scored
        if len(self.waiting) >= COUNT_GROUP:
            self._count_waiting()
        if self.progress:
            self.progress(part.done, part.total)

    def _count_waiting(self) -> None:
        """Count the samples absorbed but not yet counted."""
        if self.waiting:
            scored, self.waiting = self.waiting, []
            self._count(scored)

    def _count(self, scored: list[Scored]) -> None:
        s = self.part.scoring
        clean = np.stack([item.clean for item in scored])
        labels = (
            np.array([self.label_of(item.sample) for item in scored], np.int64)
            if self.part.dataset["labelled"]
            else None
        )
        shape = (len(scored), len(self.sampled), self.repeats, clean.shape[1])
        every = np.stack([item.perturbed for item in scored]).reshape(shape)
        lost = self._lost_faces(scored, clean, labels, every)
        per_level = [np.ascontiguousarray(every[:, j].transpose(1, 0, 2)) for j in range(shape[1])]
        found: list[np.ndarray] = []
        if self.searches is not None:
            targets = (
                labels if labels is not None else metrics.decide(clean, s.threshold, s.positive)
            )
            found = self.searches.run(scored, clean, targets, self.part.stats)
        keys = [item.sample.key for item in scored]
        lost_levels = None
        if lost is not None:  # --face-crop runs no search: the levels are the sampled ones
            lost_levels = [np.ascontiguousarray(lost[:, j].T) for j in range(shape[1])]
        perturbed = self.plan.in_order(per_level, found)
        self.part.stats.add(clean, perturbed, labels, s, keys, lost_levels)
        self._count_faces(scored, shape[1])
        self._count_pixels(scored, shape[1])
        if self.sampled:  # the searches' images are not kept, so they offer none
            self._offer_moved(scored, clean, every, per_level, labels)
        if self.part.frame_stats is not None:
            self._count_frames(scored, labels, shape[1])

    def _lost_faces(
        self,
        scored: list[Scored],
        clean: np.ndarray,
        labels: np.ndarray | None,
        every: np.ndarray,
    ) -> np.ndarray | None:
        """`--face-crop`: which draws found no face (N x L x R), their rows rescored in place.

        Such a row is scored as `facecrop.lost_probs` of the sample's clean scores and its
        label (unlabelled: its clean decision); None without face crops.
        """
        tracks = [item.faces for item in scored]
        if not tracks or any(t is None for t in tracks):
            return None
        lost = np.array([t.lost for t in tracks if t is not None], bool).reshape(every.shape[:3])
        s = self.part.scoring
        targets = labels if labels is not None else metrics.decide(clean, s.threshold, s.positive)
        for n, j, r in zip(*np.nonzero(lost)):
            every[n, j, r] = lost_probs(clean[n], int(targets[n]))
        return lost

    def _count_faces(self, scored: list[Scored], levels: int) -> None:
        """`--face-crop`: count each level's faces found and crop shifts (`FaceStats`).

        An image counts once per level; a video counts each frame it scores.
        """
        tracks = [item.faces for item in scored if item.faces is not None]
        if not levels or len(tracks) != len(scored):
            return
        # draws x units (images, or the frames of every video), then per level R x units
        lost = np.concatenate([t.frame_lost() for t in tracks], axis=1)
        lost = lost.reshape(levels, self.repeats, -1)
        for j, planned in enumerate(self.sampled):
            draws = range(j * self.repeats, (j + 1) * self.repeats)
            moved = [v for t in tracks for d in draws for v in t.draw_shifts(d) if v is not None]
            self.part.stats.add_faces(planned.index, lost[j], moved)
        for item, track in zip(scored, tracks):
            self.part.stats.crop_boxes[item.sample.key] = self._crop_record(item, track)

    def _crop_record(self, item: Scored, track: Faces) -> dict[str, Any]:
        """One sample's crop boxes for the results' `crop_boxes` (see `AuditResults`).

        An image's box is [x, y, w, h] (None: no face); a video's is a list of them, one
        per frame scored, with the frame numbers under `frames`.
        """

        def box(value: Any) -> list[int] | None:
            return None if value is None else list(value)

        def at(draw: int) -> Any:
            if isinstance(track, ClipFaces):
                return [box(frame.draws[draw]) for frame in track.frames]
            return box(track.draws[draw])

        levels: dict[str, list[list[Any]]] = {}
        for j, planned in enumerate(self.sampled):
            draws = range(j * self.repeats, (j + 1) * self.repeats)
            levels.setdefault(planned.name, []).append([at(d) for d in draws])
        record: dict[str, Any] = {"sample": item.sample.key}
        if isinstance(track, ClipFaces):
            record["frames"] = list(item.frame_indices)
            record["clean"] = [box(frame.clean) for frame in track.frames]
        else:
            record["clean"] = box(track.clean)
        return {**record, "levels": levels}

    def _count_pixels(self, scored: list[Scored], levels: int) -> None:
        """Count how each sampled level's draws changed the pixels (`PixelChange`)."""
        changes = [item.change for item in scored]
        if not levels or any(change is None for change in changes):
            return  # a journal written before the pixel change was recorded
        sse = np.array([c.sse for c in changes if c is not None], np.int64)
        values = np.array([c.values for c in changes if c is not None], np.int64)
        sides = [c.side for c in changes if c is not None]
        indices = [planned.index for planned in self.sampled]
        shaped = sse.reshape(len(scored), levels, self.repeats)
        self.part.stats.add_pixels(indices, shaped, values, sides)

    def _count_frames(self, scored: list[Scored], labels: np.ndarray | None, levels: int) -> None:
        """Videos: count every frame as a sample of its own (the secondary figures)."""
        assert self.part.frame_stats is not None
        frames = [item.frames for item in scored if item.frames is not None]
        clean = np.concatenate([f[0] for f in frames])
        every = np.concatenate([f[1:] for f in frames], axis=1)  # D x sum(F) x K
        every = every.reshape(levels, self.repeats, *every.shape[1:])
        per_frame = np.repeat(labels, [f.shape[1] for f in frames]) if labels is not None else None
        lost = self._lost_frames(scored, clean, per_frame, every)
        per_level = [np.ascontiguousarray(every[j]) for j in range(levels)]
        self.part.frame_stats.add(clean, per_level, per_frame, self.part.scoring, None, lost)

    def _lost_frames(
        self,
        scored: list[Scored],
        clean: np.ndarray,
        labels: np.ndarray | None,
        every: np.ndarray,
    ) -> list[np.ndarray] | None:
        """`--face-crop` on videos: per level, the frames (R x frames) where no face was found.

        Their rows in `every` (L x R x frames x K) are rescored in place as
        `facecrop.lost_probs`, as a lost image is; None without face crops.
        """
        tracks = [item.faces for item in scored]
        if not tracks or not all(isinstance(t, ClipFaces) for t in tracks):
            return None
        lost = np.concatenate([t.frame_lost() for t in tracks if t is not None], axis=1)
        lost = lost.reshape(every.shape[:3])
        s = self.part.scoring
        targets = labels if labels is not None else metrics.decide(clean, s.threshold, s.positive)
        for j, r, u in zip(*np.nonzero(lost)):
            every[j, r, u] = lost_probs(clean[u], int(targets[u]))
        return [np.ascontiguousarray(lost[j]) for j in range(len(lost))]

    def _offer_moved(
        self,
        scored: list[Scored],
        clean: np.ndarray,
        every: np.ndarray,
        per_level: list[np.ndarray],
        labels: np.ndarray | None,
    ) -> None:
        from auditor import metrics

        norm = self.part.scoring.delta_norm
        deltas = np.stack([metrics.deltas(clean, p, norm, labels) for p in per_level])  # L R N
        worst = deltas.max(axis=1)  # L x N
        by_name: dict[str, list[int]] = {}
        for j, planned in enumerate(self.sampled):
            by_name.setdefault(planned.name, []).append(j)
        for name, js in by_name.items():
            for n, item in enumerate(scored):
                j = js[int(np.argmax(worst[js, n]))]
                r = int(np.argmax(deltas[j, :, n]))
                self.part.stats.offer_moved(
                    name,
                    {
                        "sample": item.sample.key,
                        "level": self.sampled[j].level,
                        "repeat": r,
                        "label": item.sample.label,
                        "delta": float(deltas[j, r, n]),
                        "clean_probs": clean[n].tolist(),
                        "perturbed_probs": every[n, j, r].tolist(),
                        **_crop_boxes(item, j * self.repeats + r),
                    },
                )


def _crop_boxes(item: Scored, draw: int) -> dict[str, Any]:
    """`--face-crop`: a moved sample's crop boxes [x, y, w, h], clean and at its draw."""
    if item.faces is None:
        return {}
    box = item.faces.draws[draw]
    return {
        "crop_boxes": {
            "clean": list(item.faces.clean),
            "perturbed": None if box is None else list(box),
        }
    }


def stop_error(exc: Exception, limit: int | None, kept: str = "") -> AuditorError:
    """The one-line error of what stopped a run, followed by `kept` (how to go on).

    Running out of memory names `--max-memory` (`limit`) and what the engine was doing;
    any other error that is not already an `AuditorError` gives its type and first line.
    """
    if isinstance(exc, AuditorError):
        return type(exc)(f"{exc}{kept}") if kept else exc
    if isinstance(exc, MemoryError):
        where = exc.stage if isinstance(exc, memory.Exhausted) else "auditing"
        return MemoryLimitError(memory.exhausted_message(limit, where, kept))
    return AuditorError(f"the audit stopped on an unexpected error: {skip_reason(exc)}{kept}")


def _unchanged(item: Scored | Failed) -> bool:
    """Whether a journaled sample still stands: scored, and its file's content the same."""
    if isinstance(item, Failed):
        return False
    try:
        return file_sha256(item.sample.path) == item.sha256
    except OSError:  # gone or unreadable now: the pipeline says why
        return False


@contextmanager
def graceful_stop() -> Iterator[threading.Event]:
    """Turn the first Ctrl-C or SIGTERM into a stop after the current batch.

    A second Ctrl-C interrupts at once. Outside the main thread nothing is installed.
    """
    stopped = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stopped
        return

    def handler(signum: int, frame: Any) -> None:
        if stopped.is_set():
            raise KeyboardInterrupt
        stopped.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopped
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Searches:
    """The planned searches, run level by level on each scored group with the model."""

    def __init__(self, model: Model, plan: AuditPlan, config: AuditConfig) -> None:
        self.model, self.config = model, config
        self.levels = plan.searches
        self.twin: Any = None
        if any(SEARCHES[lv.name].needs_twin for lv in self.levels):
            from auditor.adversarial.twin import GradientTwin  # needs torch: only when planned

            self.twin = GradientTwin(model)  # the model converted once per audit (shard)

    def run(
        self, scored: Sequence[Scored], clean: np.ndarray, targets: np.ndarray, stats: AuditStats
    ) -> list[np.ndarray]:
        """Run every searched level on the group; return its points x N x K probs per level."""
        config = self.config
        group = Group(
            images=[_decode_again(item.sample, config.max_pixels) for item in scored],
            keys=[item.sample.key for item in scored],
            clean=clean,
            targets=np.asarray(targets, np.int64),
        )
        scorer = Scorer(
            self.model.predict, self.model.positive_index(), config.threshold, self.twin
        )
        found = []
        for planned in self.levels:
            search = SEARCHES[planned.name]
            settings = {name: getattr(config, name) for name in search.settings}
            level = SearchLevel(planned.level, dict(planned.params), config.seed, settings)
            result = search.run(scorer, group, level)
            # Its points are the level's draws: the statistics take the worst over them.
            assert result.probs.shape == (planned.draws, *clean.shape), f"{search.name} broke"
            stats.add_search_counts(planned.name, planned.level - 1, result.counts)
            found.append(result.probs)
        return found


def _decode_again(sample: data.Sample, max_pixels: int) -> Any:
    """A scored sample's pixels once more, for the searches; a file changed since stops the run."""
    try:
        return data.decode(sample, max_pixels).image
    except SampleError as exc:
        raise DataError(
            f"{sample.key} changed on disk during the audit ({exc}); the work so far is in "
            "the journal: run the audit again with --resume"
        ) from None
