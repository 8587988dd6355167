"""The engine: streams samples x perturbations x levels x repeats through the model.

`run_shard` audits one shard of the samples and returns plain, picklable partial
statistics (`ShardResult`); `merge` turns any set of shards into `AuditResults`;
`run_audit` is both for one shard. Per-sample results go to a journal as they are
computed, so an interrupted run resumes where it stopped. Every draw uses the
generator of (seed, sample, perturbation, level, repeat), and every statistic is a
count or an exact sum, so results depend neither on workers, batch size, order,
resumption nor sharding.
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from auditor import data, metrics
from auditor.adversarial.registry import SEARCHES, Group, Scorer, SearchLevel
from auditor.config import AuditConfig, echo_keys, validate
from auditor.data import video
from auditor.engine import environment
from auditor.engine.journal import Journal, from_journal_record, journal_record
from auditor.engine.partial import (
    NothingDone,
    ShardResult,
    describe_config,
    merge,
    now,
    render_moved,
    render_thumbnails,
)
from auditor.engine.pipeline import Failed, Pipeline, Scored, Tuning, plan_tuning
from auditor.engine.plan import SEARCH, AuditPlan, build_plan
from auditor.engine.probe import PROBE_SAMPLES, run_probe
from auditor.engine.stats import AuditStats, Scoring
from auditor.errors import ConfigError, DataError, SampleError
from auditor.model.adapter import Model, load_model
from auditor.model.providers import CPU
from auditor.results import AuditResults

Progress = Callable[[int, int], None]  # (units done, units in all)

__all__ = ["AuditInterrupted", "merge", "run_audit", "run_shard"]

COUNT_GROUP = 32
"""Finished samples counted into the statistics at a time (any number gives the same)."""
CPU_BATCH, GPU_BATCH = 8, 32
"""Rows per model call when `--batch-size 0`. On CPU the convolutional models of
bench/engine.py run as fast per image at 1 as at 32, and smaller calls keep both
cores busy to the end of an audit; a GPU wants larger ones."""


class AuditInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the audit; `results` holds what was done (or None)."""

    def __init__(self, results: AuditResults | None, done: int, total: int) -> None:
        super().__init__(f"interrupted after {done} of {total} work units")
        self.results = results
        self.done = done
        self.total = total


def run_audit(config: AuditConfig, progress: Progress | None = None) -> AuditResults:
    """Run the audit `config` describes and return its results (gates included).

    Raises `AuditInterrupted` (carrying the partial results) on Ctrl-C or SIGTERM.
    """
    part = run_shard(config, (0, 1), progress)
    try:
        results = merge([part])
    except NothingDone:
        raise AuditInterrupted(None, part.done, part.total) from None
    if results.status != "complete":
        raise AuditInterrupted(results, part.done, part.total)
    return results


def run_shard(
    config: AuditConfig,
    shard: tuple[int, int] = (0, 1),
    progress: Progress | None = None,
    model: Model | None = None,
) -> ShardResult:
    """Audit the samples of `shard` (i, n): every n-th sample from the i-th on.

    `model`: a freshly loaded model of `config` to use instead of loading one (a
    long-lived worker that audits many shards loads it once).
    """
    started = now()
    setup = _set_up(config, shard, model)
    config, plan, dataset = setup.config, setup.plan, setup.dataset
    mine = [(i, s) for i, s in enumerate(dataset.samples) if i % shard[1] == shard[0]]
    first = _warm_up(setup.model, mine, config)  # fixes the output kind on a deterministic input
    part = _new_part(setup, shard, started, total=len(mine) * plan.units_per_sample)
    workers = setup.tuning.workers
    if first is not None:
        part.thumbnails = render_thumbnails(first[1], first[2], plan, config, workers)
        part.thumbnails_index = first[0]
    probe_keys = set(sorted(s.key for s in dataset.samples)[:PROBE_SAMPLES])
    run = _ShardRun(config, part, setup.label_of, probe_keys, progress)
    run.searches = _Searches(setup.model, plan, config) if plan.searches else None
    pipeline = _pipeline(setup)
    if dataset.media == "video":
        part.frame_stats = AuditStats()  # the same levels with every frame as a sample
    run.execute(pipeline, mine, dataset)
    if part.done == part.total:
        part.probe = run_probe(
            pipeline, [s for _, s in mine], run.first_pass, probe_keys, plan.draws, part.scoring
        )
    render_moved(part, {s.key: s for _, s in mine}, config, workers)
    return part


@dataclass(frozen=True)
class _Setup:
    """What a shard runs with: the config as tuned, the plan, the model and the data."""

    config: AuditConfig
    plan: AuditPlan
    tuning: Tuning
    model: Model
    dataset: data.Dataset
    label_of: Callable[[data.Sample], int]


def _set_up(config: AuditConfig, shard: tuple[int, int], model: Model | None) -> _Setup:
    """Check the settings, plan, load the model, tune for its provider, find the data."""
    _check_config(config, shard)
    plan = build_plan(config)
    _check_searches(config, plan)
    tuning = plan_tuning(config.workers, config.streams, config.model.threads)
    config = replace(config, model=replace(config.model, threads=tuning.threads))
    model = model if model is not None else load_model(config.model_path, config.model)
    if model.provider != CPU and not config.streams:
        tuning = replace(tuning, streams=1)  # a GPU runs one batch at a time
    if not config.batch_size:
        config = replace(config, batch_size=CPU_BATCH if model.provider == CPU else GPU_BATCH)
    dataset = data.discover(config.data_path, config.limit)
    _check_labels_needed(config, dataset)
    if plan.searches and dataset.media == "video":
        names = ", ".join(sorted(plan.names(SEARCH)))
        raise ConfigError(f"{names} searches images; it cannot run on videos")
    return _Setup(config, plan, tuning, model, dataset, _label_indexer(model, dataset))


def _new_part(setup: _Setup, shard: tuple[int, int], started: str, total: int) -> ShardResult:
    """The shard's empty result: its descriptions, digest and scoring, nothing counted."""
    config, model, dataset = setup.config, setup.model, setup.dataset
    description = describe_config(config, setup.plan, model, setup.tuning.describe())
    return ShardResult(
        shard=shard,
        digest=_digest(description, model, dataset),
        started_at=started,
        model=model.describe(),
        config=description,
        environment=environment.describe(model.provider),
        dataset={
            "path": str(dataset.path),
            "kind": dataset.kind,
            "labelled": dataset.labelled,
            "media": dataset.media,
        },
        class_names=list(model.classes or []),
        scoring=Scoring(
            config.threshold, model.positive_index(), config.delta_norm, tuple(config.tolerances)
        ),
        plan=setup.plan,
        stats=AuditStats(),
        skipped=[{"path": s.path, "reason": s.reason} for s in dataset.skipped]
        if shard[0] == 0
        else [],
        total=total,
    )


def _pipeline(setup: _Setup) -> Pipeline:
    """The streaming pipeline of `setup`'s model, plan and tuning."""
    config = setup.config
    sampling = None  # images
    if setup.dataset.media == "video":
        sampling = video.frame_sampling(config.video.frames, config.video.fps)
    return Pipeline(
        setup.model,
        setup.plan,
        seed=config.seed,
        scale_to_input=config.scale_to_input,
        batch_size=config.batch_size,
        tuning=setup.tuning,
        max_pixels=config.max_pixels,
        sampling=sampling,
        aggregate=config.video.aggregate,
    )


class _ShardRun:
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
        self.searches: _Searches | None = None

    def execute(
        self, pipeline: Pipeline, mine: list[tuple[int, data.Sample]], dataset: data.Dataset
    ) -> None:
        journal = None
        if self.config.journal_path is not None:
            digest = f"{self.part.digest}:{self.part.shard[0]}/{self.part.shard[1]}"
            journal, records = Journal.start(self.config.journal_path, digest, self.config.resume)
            self._absorb([from_journal_record(r, dataset.samples, self.plan) for r in records])
            self._count_waiting()
        seen = {row["path"] for row in self.part.manifest} | {
            s["path"] for s in self.part.skipped_decode
        }
        todo = [(i, s) for i, s in mine if s.key not in seen]
        with _graceful_stop() as stopped:
            for group in pipeline.run(todo):
                self._absorb(group)
                if journal is not None:
                    journal.append(journal_record(item) for item in group)
                    journal.flush()
                if stopped.is_set():
                    break
        self._count_waiting()
        if journal is not None:
            if self.part.done == self.part.total:
                journal.remove()
            else:
                journal.close()

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
        per_level = [np.ascontiguousarray(every[:, j].transpose(1, 0, 2)) for j in range(shape[1])]
        found: list[np.ndarray] = []
        if self.searches is not None:
            targets = (
                labels if labels is not None else metrics.decide(clean, s.threshold, s.positive)
            )
            found = self.searches.run(scored, clean, targets, self.part.stats)
        self.part.stats.add(clean, self.plan.in_order(per_level, found), labels, s)
        if self.sampled:  # the searches' images are not kept, so they offer none
            self._offer_moved(scored, clean, every, per_level, labels)
        if self.part.frame_stats is not None:
            self._count_frames(scored, labels, shape[1])

    def _count_frames(self, scored: list[Scored], labels: np.ndarray | None, levels: int) -> None:
        """Videos: count every frame as a sample of its own (the secondary figures)."""
        assert self.part.frame_stats is not None
        frames = [item.frames for item in scored if item.frames is not None]
        clean = np.concatenate([f[0] for f in frames])
        every = np.concatenate([f[1:] for f in frames], axis=1)  # D x sum(F) x K
        every = every.reshape(levels, self.repeats, *every.shape[1:])
        per_frame = np.repeat(labels, [f.shape[1] for f in frames]) if labels is not None else None
        per_level = [np.ascontiguousarray(every[j]) for j in range(levels)]
        self.part.frame_stats.add(clean, per_level, per_frame, self.part.scoring)

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
                    },
                )


@contextmanager
def _graceful_stop() -> Iterator[threading.Event]:
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


def _warm_up(
    model: Model, mine: list[tuple[int, data.Sample]], config: AuditConfig
) -> tuple[int, data.Sample, Any] | None:
    """Run the model once on the shard's first decodable sample; return it, decoded."""
    for index, sample in mine:
        try:
            decoded = data.decode(sample, config.max_pixels)
        except SampleError:
            continue
        model.infer(model.to_tensor([decoded.image]))
        return index, sample, decoded.image
    return None


def _digest(description: dict[str, Any], model: Model, dataset: data.Dataset) -> str:
    """Digest of what decides every per-sample result: settings, model, classes, data listing."""
    echo = echo_keys()  # recorded for the reader; the figures do not depend on them
    settings = {k: v for k, v in description.items() if k not in echo}
    listing = [
        [s.key, s.label, s.path.stat().st_size if s.path.is_file() else None]
        for s in dataset.samples
    ]
    described = model.describe()
    # The classes as resolved (`via` in their settings): they are not in `config`.
    classes = {"classes": described["classes"], "positive": described["positive_class"]}
    blob = {"settings": settings, "model": described["sha256"], **classes, "data": listing}
    canonical = json.dumps(blob, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class _Searches:
    """The planned searches, run level by level on each scored group with the model."""

    def __init__(self, model: Model, plan: AuditPlan, config: AuditConfig) -> None:
        self.model, self.config = model, config
        self.levels = plan.searches

    def run(
        self, scored: Sequence[Scored], clean: np.ndarray, targets: np.ndarray, stats: AuditStats
    ) -> list[np.ndarray]:
        """Run every searched level on the group; return its points x N x K probs per level."""
        config = self.config
        group = Group(
            images=[data.decode(item.sample, config.max_pixels).image for item in scored],
            keys=[item.sample.key for item in scored],
            clean=clean,
            targets=np.asarray(targets, np.int64),
        )
        scorer = Scorer(self.model.predict, self.model.positive_index(), config.threshold)
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


def _check_searches(config: AuditConfig, plan: AuditPlan) -> None:
    """Refuse what the searches do not support: resuming, and a budget below 1."""
    if not plan.searches:
        return
    names = ", ".join(sorted(plan.names(SEARCH)))
    if "queries" in plan.search_settings and config.queries < 1:
        raise ConfigError("--queries must be at least 1")
    if config.resume:
        # The journal keeps per-image scores, not the searches' query counts.
        raise ConfigError(f"--resume does not support {names}; run the audit again without it")


def _check_labels_needed(config: AuditConfig, dataset: data.Dataset) -> None:
    if config.fail_under_ra is not None and not dataset.labelled:
        raise ConfigError(
            "--fail-under-ra needs labelled data (class folders or a manifest with labels)"
        )
    if config.delta_norm == "true-class" and not dataset.labelled:
        raise ConfigError("the true-class delta norm needs labelled data")


def _label_indexer(model: Model, dataset: data.Dataset) -> Callable[[data.Sample], int]:
    """Map each sample's label to the model's class index (-1: none), checking them first."""
    if not dataset.labelled:
        return lambda sample: -1
    if model.classes is None:
        model.classes = dataset.label_names  # spec: else sorted folder names
    classes = model.classes
    index = {name: i for i, name in enumerate(classes)}
    for label in dataset.label_names:
        if label not in index and not (label.isdigit() and int(label) < len(classes)):
            raise DataError(
                f"{dataset.path}: label '{label}' is not one of the model's "
                f"classes ({', '.join(classes)}); name the classes with --classes"
            )
    return lambda s: index[s.label] if s.label in index else int(s.label or 0)


def _check_config(config: AuditConfig, shard: tuple[int, int]) -> None:
    """Reject bad settings (`config.validate`) and a bad shard before any work is done."""
    validate(config)
    if not 0 <= shard[0] < shard[1]:
        raise ConfigError(f"bad shard {shard}: expected (i, n) with 0 <= i < n")
