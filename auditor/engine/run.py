"""The engine: streams samples x perturbations x levels x repeats through the model.

`run_shard` audits one shard of the samples and returns plain, picklable partial
statistics (`ShardResult`); `merge` turns any set of shards into `AuditResults`;
`run_audit` is both for one shard. Per-sample results go to a journal as they are
computed, so an interrupted run resumes where it stopped. Every draw uses the
generator of (seed, sample, perturbation, level, repeat), every statistic is a count
or an exact sum, and every model call on CPU has one shape (`CPU_CALL_ROWS`), so
results depend neither on workers, batch size, order, resumption nor sharding.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from auditor import data
from auditor.adversarial.registry import SEARCHES
from auditor.config import AuditConfig, echo_keys, validate
from auditor.data import video
from auditor.engine import environment, memory
from auditor.engine.facecrop import FaceFront
from auditor.engine.partial import (
    NothingDone,
    ShardResult,
    describe_config,
    merge,
    now,
    render_moved,
    render_thumbnails,
)
from auditor.engine.pipeline import RUNNING, Pipeline, Tuning, plan_tuning
from auditor.engine.plan import SEARCH, AuditPlan, build_plan
from auditor.engine.probe import PROBE_SAMPLES, run_probe
from auditor.engine.shard import Progress, Searches, ShardRun, stop_error
from auditor.engine.stats import AuditStats, Scoring
from auditor.errors import AuditorError, ConfigError, DataError
from auditor.model.adapter import Model, load_model
from auditor.model.providers import CPU
from auditor.results import AuditResults

__all__ = ["AuditInterrupted", "merge", "run_audit", "run_shard"]

CPU_BATCH, GPU_BATCH = 8, 32
"""Rows per model call when `--batch-size 0`. On CPU the convolutional models of
bench/engine.py run as fast per image at 1 as at 32, and smaller calls keep both
cores busy to the end of an audit; a GPU wants larger ones."""
CPU_CALL_ROWS = CPU_BATCH
"""Rows of every model call on CPU, whatever `--batch-size` (the last call of a batch
padded): a row's probabilities can differ in their last bits with the shape it is
computed in (numpy's exp on the sample detectors' logits, onnxruntime's kernels on a
ViT-like model at 1 row against more), so one shape makes the results the same for
every batch size. `--batch-size` is then the rows a model stream takes at a time, in
whole calls (`Pipeline`): padded, a 1-row batch cost 7.5 times the model's time of an
8-row one on bench/engine.py's heavy model (--batch-ab)."""
THUMBNAIL_TRIES = 8
"""Decodable samples tried for the report's thumbnails before it goes without."""


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

    Whatever stops the run is an `AuditorError` (one line for the user, see
    `stop_error`): running out of memory a `MemoryLimitError` that names `--max-memory`,
    any other unexpected error its type and first line; stopped while samples were
    scored, it says they are kept in the journal. (A single sample's failure only skips
    that sample: see `Pipeline._prepare`.)
    """
    try:
        return _run_shard(config, shard, progress, model)
    except AuditorError:
        raise
    except Exception as exc:
        raise stop_error(exc, config.max_memory) from exc


def _run_shard(
    config: AuditConfig, shard: tuple[int, int], progress: Progress | None, model: Model | None
) -> ShardResult:
    started = now()
    with memory.stage("loading the model and listing the data"):
        setup = _set_up(config, shard, model)
    config, plan, dataset = setup.config, setup.plan, setup.dataset
    mine = [(i, s) for i, s in enumerate(dataset.samples) if i % shard[1] == shard[0]]
    part = _started_part(setup, shard, mine, started)
    workers = setup.tuning.workers
    probe_keys = set(sorted(s.key for s in dataset.samples)[:PROBE_SAMPLES])
    run = ShardRun(config, part, setup.label_of, probe_keys, progress)
    run.searches = Searches(setup.model, plan, config) if plan.searches else None
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


def _started_part(
    setup: _Setup, shard: tuple[int, int], mine: list[tuple[int, data.Sample]], started: str
) -> ShardResult:
    """The shard's empty result, after the model's warm-up and with its thumbnails."""
    config = setup.config
    decodable = _decodable(mine, config.max_pixels)
    first = next(decodable, None)
    if first is not None:  # fixes the output kind on a deterministic input
        with memory.stage(RUNNING):
            setup.model.infer(setup.model.to_tensor([first[2]]))
    part = _new_part(setup, shard, started, total=len(mine) * setup.plan.units_per_sample)
    if first is not None:
        shown = itertools.islice(itertools.chain([first], decodable), THUMBNAIL_TRIES)
        _show_thumbnails(part, shown, config, setup.tuning.workers, setup.face)
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
    face: FaceFront | None = None  # --face-crop


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
    # A GPU needs its batches: there every call has --batch-size rows (the last padded),
    # so the results depend on the batch size in their last bits (see CPU_CALL_ROWS).
    model.call_rows = CPU_CALL_ROWS if model.provider == CPU else config.batch_size
    dataset = data.discover(config.data_path, config.limit)
    _check_labels_needed(config, dataset)
    if plan.searches and dataset.media == "video":
        names = ", ".join(sorted(plan.names(SEARCH)))
        raise ConfigError(f"{names} searches images; it cannot run on videos")
    face = _face_front(config, plan, dataset)
    if face is not None:  # the preset may ask for its own resize (dfdc: letterbox, centred)
        model.prep = face.adjust(model.prep)
    return _Setup(config, plan, tuning, model, dataset, _label_indexer(model, dataset), face)


def _face_front(config: AuditConfig, plan: AuditPlan, dataset: data.Dataset) -> FaceFront | None:
    """The `--face-crop` front end, or None; refused where it is not supported."""
    if config.face.crop is None:
        return None
    if plan.searches:
        names = ", ".join(sorted(plan.names(SEARCH)))
        raise ConfigError(f"--face-crop does not support the searches ({names}) yet")
    return FaceFront(config.face)


def _new_part(setup: _Setup, shard: tuple[int, int], started: str, total: int) -> ShardResult:
    """The shard's empty result: its descriptions, digest and scoring, nothing counted."""
    config, model, dataset = setup.config, setup.model, setup.dataset
    description = describe_config(config, setup.plan, model, setup.tuning.describe())
    return ShardResult(
        shard=shard,
        digest=_digest(description, model, dataset, setup.face),
        started_at=started,
        model=model.describe(),
        config=description,
        environment=environment.describe(model.provider),
        dataset={
            "path": str(dataset.path),
            "kind": dataset.kind,
            "labelled": dataset.labelled,
            "media": dataset.media,
            **(
                {"face_crop": setup.face.describe(dataset.media == "video")}
                if setup.face is not None
                else {}
            ),
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
        face=setup.face,
    )


def _decodable(
    mine: Iterable[tuple[int, data.Sample]], max_pixels: int
) -> Iterator[tuple[int, data.Sample, Any]]:
    """The shard's samples that decode, decoded, in order (the pipeline skips the others)."""
    for index, sample in mine:
        try:
            decoded = data.decode(sample, max_pixels)
        except MemoryError:
            raise
        except Exception:  # the pipeline meets it again and records why
            continue
        yield index, sample, decoded.image


def _show_thumbnails(
    part: ShardResult,
    candidates: Iterable[tuple[int, data.Sample, Any]],
    config: AuditConfig,
    workers: int,
    face: FaceFront | None = None,
) -> None:
    """The report's thumbnails: of the first candidate every planned level perturbs."""
    for index, sample, image in candidates:
        try:
            part.thumbnails = render_thumbnails(sample, image, part.plan, config, workers, face)
        except MemoryError:
            raise
        except Exception:  # the pipeline skips this sample with the reason
            continue
        part.thumbnails_index = index
        return


def _digest(
    description: dict[str, Any], model: Model, dataset: data.Dataset, face: FaceFront | None
) -> str:
    """Digest of what decides every per-sample result: settings, model, classes, data listing."""
    echo = echo_keys()  # recorded for the reader; the figures do not depend on them
    settings = {k: v for k, v in description.items() if k not in echo}
    # Names and labels only: each journal record carries its file's sha256, so a file
    # changed since (whatever its size) is scored again rather than the resume refused.
    listing = [[s.key, s.label] for s in dataset.samples]
    described = model.describe()
    # The classes as resolved (`via` in their settings): they are not in `config`.
    classes = {"classes": described["classes"], "positive": described["positive_class"]}
    blob = {"settings": settings, "model": described["sha256"], **classes, "data": listing}
    if face is not None:  # a detector named by path: its file, not only its name
        blob["face_detector"] = face.describe()["detector"]["sha256"]
    blob["call_rows"] = model.batch or model.call_rows  # a GPU's: the batch size
    canonical = json.dumps(blob, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_searches(config: AuditConfig, plan: AuditPlan) -> None:
    """Refuse what the searches do not support: resuming, a budget below 1, a missing extra."""
    if not plan.searches:
        return
    names = ", ".join(sorted(plan.names(SEARCH)))
    for name in plan.names(SEARCH):
        SEARCHES[name].check()  # the gradient attacks need the whitebox extra
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
