"""The engine: streams samples x perturbations x levels x repeats through the model.

Samples are decoded once per batch and dropped after it; only probability vectors
are kept. Each perturbation draw uses the generator of (seed, sample, perturbation,
level, repeat), so results do not depend on batch size or order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor import __version__, data, environment, gates, metrics, perturbations, thumbnails, video
from auditor.config import DELTA_NORMS, AuditConfig
from auditor.errors import ConfigError, DataError, SampleError
from auditor.model import Model, load_model
from auditor.perturbations.registry import PlannedPerturbation
from auditor.results import AuditResults, LevelResult, PerturbationSummary, tolerance_key
from auditor.seeds import derive_rng

Progress = Callable[[int, int], None]  # (units done, units in all)
Image = NDArray[np.uint8]


@dataclass
class _Counter:
    """Counts work units (one sample scored once) and reports them to `progress`."""

    total: int
    progress: Progress | None
    done: int = 0

    def advance(self, units: int) -> None:
        self.done += units
        if self.progress:
            self.progress(self.done, self.total)


@dataclass
class _Collected:
    """What the stream keeps: probabilities and labels, never the images."""

    clean: list[NDArray[np.float64]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    perturbed: dict[tuple[int, int], list[NDArray[np.float64]]] = field(default_factory=dict)
    manifest: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[data.Skipped] = field(default_factory=list)
    thumbnails: dict[str, Any] = field(default_factory=dict)
    frames: _Collected | None = None  # video audits: every frame as a sample
    frame_counts: list[int] = field(default_factory=list)


def run_audit(config: AuditConfig, progress: Progress | None = None) -> AuditResults:
    """Run the audit `config` describes and return its results (gates included)."""
    started = _now()
    _check_config(config)
    planned = perturbations.plan(config.perturbations, config.suite)
    model = load_model(config.model_path, config.model)
    dataset = data.discover(config.data_path, config.limit)
    if config.fail_under_ra is not None and not dataset.labelled:
        raise ConfigError(
            "--fail-under-ra needs labelled data (class folders or a manifest with labels)"
        )
    if config.delta_norm == "true-class" and not dataset.labelled:
        raise ConfigError("the true-class delta norm needs labelled data")
    label_of = _label_indexer(model, dataset)
    collected = _Collected(skipped=list(dataset.skipped))
    per_sample = 1 + sum(len(p.levels) for p in planned) * config.repeats
    counter = _Counter(len(dataset.samples) * per_sample, progress)
    if dataset.media == "video":
        collected.frames = _Collected()
        for sample in dataset.samples:
            _score_video(sample, model, planned, config, label_of, collected)
            counter.advance(per_sample)
    for batch in _batches(dataset.samples if dataset.media == "image" else [], config.batch_size):
        decoded = _decode(batch, collected)
        counter.advance((len(batch) - len(decoded)) * per_sample)
        if decoded:
            _score_batch(decoded, model, planned, config, label_of, collected, counter)
    if not collected.clean:
        first = collected.skipped[0].reason if collected.skipped else "none decoded"
        raise DataError(
            f"{config.data_path}: no usable images; all {len(dataset.samples)} "
            f"were skipped (first reason: {first})"
        )
    return _assemble(config, model, dataset, planned, collected, started)


def _score_batch(
    decoded: list[tuple[data.Sample, Image]],
    model: Model,
    planned: Sequence[PlannedPerturbation],
    config: AuditConfig,
    label_of: Callable[[data.Sample], int],
    collected: _Collected,
    counter: _Counter,
) -> None:
    """Score one batch clean and under every perturbation level."""
    images = [image for _, image in decoded]
    collected.clean.append(model.predict(images))
    collected.labels.extend(label_of(sample) for sample, _ in decoded)
    counter.advance(len(decoded))
    want_thumbnails = not collected.thumbnails
    if want_thumbnails:
        collected.thumbnails = {
            "sample": decoded[0][0].key,
            "clean": thumbnails.data_uri(images[0]),
            "levels": {},
        }
    for pi, pp in enumerate(planned):
        for li, params in enumerate(pp.levels, start=1):
            repeats = []
            for repeat in range(config.repeats):
                perturbed = [
                    _perturb(pp, params, sample, image, li, repeat, config)
                    for sample, image in decoded
                ]
                repeats.append(model.predict(perturbed))
                if want_thumbnails and repeat == 0:
                    collected.thumbnails["levels"].setdefault(pp.name, []).append(
                        thumbnails.data_uri(perturbed[0])
                    )
                counter.advance(len(decoded))
            collected.perturbed.setdefault((pi, li), []).append(np.stack(repeats))


@dataclass(frozen=True)
class _Draw:
    perturbation: str
    level: int
    params: dict[str, float]
    repeat: int


def _score_video(
    sample: data.Sample,
    model: Model,
    planned: Sequence[PlannedPerturbation],
    config: AuditConfig,
    label_of: Callable[[data.Sample], int],
    collected: _Collected,
) -> None:
    """Score one video per video and per frame (a skipped video is recorded as such)."""
    draws = [
        _Draw(pp.name, li, dict(params), r)
        for pp in planned
        for li, params in enumerate(pp.levels, start=1)
        for r in range(config.repeats)
    ]
    sampling = video.frame_sampling(config.video.frames, config.video.fps)
    try:
        rows = video.clip_rows(
            sample.path,
            sample.key,
            draws,
            model.to_tensor,
            seed=config.seed,
            scale_to_input=config.scale_to_input,
            sampling=sampling,
        )
    except SampleError as exc:
        collected.skipped.append(data.Skipped(sample.key, str(exc)))
        return
    clean, perturbed, frames = video.split_rows(
        model.infer(rows.tensor), rows.frames, config.video.aggregate, model.positive_index()
    )
    collected.manifest.append(
        {
            "path": sample.key,
            "sha256": rows.clip.sha256,
            "label": sample.label,
            "frames": list(rows.clip.indices),
        }
    )
    collected.frame_counts.append(rows.frames)
    assert collected.frames is not None
    _add(collected, clean[None], perturbed[:, None], label_of(sample), planned, config.repeats)
    _add(collected.frames, frames[0], frames[1:], label_of(sample), planned, config.repeats)


def _add(
    collected: _Collected,
    clean: NDArray[np.float64],
    perturbed: NDArray[np.float64],
    label: int,
    planned: Sequence[PlannedPerturbation],
    repeats: int,
) -> None:
    """Collect N samples: `clean` N x K and `perturbed` D x N x K in draw order."""
    collected.clean.append(clean)
    collected.labels.extend([label] * len(clean))
    rows = iter(perturbed)
    for pi, pp in enumerate(planned):
        for li in range(1, len(pp.levels) + 1):
            stacked = np.stack([next(rows) for _ in range(repeats)])
            collected.perturbed.setdefault((pi, li), []).append(stacked)


def _perturb(
    pp: PlannedPerturbation,
    params: dict[str, float],
    sample: data.Sample,
    image: Image,
    level: int,
    repeat: int,
    config: AuditConfig,
) -> Image:
    rng = derive_rng(config.seed, sample.key, pp.name, level, repeat)
    return perturbations.apply(pp.name, image, params, rng, config.scale_to_input)


def _decode(batch: Sequence[data.Sample], collected: _Collected) -> list[tuple[data.Sample, Image]]:
    """Decode a batch; unusable files become `Skipped` entries with their reason."""
    decoded = []
    for sample in batch:
        try:
            image, digest = data.read_image(sample)
        except SampleError as exc:
            collected.skipped.append(data.Skipped(sample.key, str(exc)))
            continue
        collected.manifest.append({"path": sample.key, "sha256": digest, "label": sample.label})
        decoded.append((sample, image))
    return decoded


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


def _assemble(
    config: AuditConfig,
    model: Model,
    dataset: data.Dataset,
    planned: Sequence[PlannedPerturbation],
    collected: _Collected,
    started: str,
) -> AuditResults:
    """Compute every metric from what was collected and build the results object."""
    keys = [tolerance_key(b) for b in config.tolerances]
    clean = np.concatenate(collected.clean)
    labels = np.asarray(collected.labels, np.int64) if dataset.labelled else None
    classes = list(model.classes or [])
    positive = model.positive_index()
    clean_summary = metrics.clean_metrics(clean, labels, config.threshold, positive, classes)
    levels = []
    for pi, pp in enumerate(planned):
        for li, params in enumerate(pp.levels, start=1):
            perturbed = np.concatenate(collected.perturbed[(pi, li)], axis=1)
            values = metrics.level_metrics(
                clean,
                perturbed,
                labels,
                tolerances=config.tolerances,
                tolerance_keys=keys,
                threshold=config.threshold,
                positive=positive,
                class_names=classes,
                delta_norm=config.delta_norm,
                clean_accuracy=clean_summary["accuracy"],
            )
            levels.append(
                LevelResult(
                    perturbation=pp.name,
                    family=pp.perturbation.family,
                    level=li,
                    params=dict(params),
                    **values,
                )
            )
    headline = tolerance_key(config.headline_tolerance)
    return AuditResults(
        auditor_version=__version__,
        created_at=_now(),
        started_at=started,
        finished_at=_now(),
        model=model.describe(),
        data=_describe_data(dataset, collected, config),
        config=_describe_config(config, planned, keys, model),
        environment=environment.describe(model.provider),
        clean=clean_summary,
        results=levels,
        summary=_summaries(planned, levels, keys, clean_summary["accuracy"]),
        thumbnails=collected.thumbnails,
        frame_results=_frame_results(config, planned, collected.frames, labels is not None, model)
        if collected.frames is not None
        else None,
        verdict=gates.evaluate(levels, headline, config.fail_under_ra, config.fail_under_rr),
    )


FRAME_LEVEL_KEYS = (
    *("perturbation", "level", "n", "ra", "ra_ci"),
    *("rr", "rr_ci", "flip_rate", "flip_rate_ci"),
)


def _frame_results(
    config: AuditConfig,
    planned: Sequence[PlannedPerturbation],
    frames: _Collected,
    labelled: bool,
    model: Model,
) -> dict[str, Any]:
    """The levels again with every frame as a sample: the report's secondary table."""
    clean = np.concatenate(frames.clean)
    labels = np.asarray(frames.labels, np.int64) if labelled else None
    positive = model.positive_index()
    summary = metrics.clean_metrics(clean, labels, config.threshold, positive, [])
    levels = []
    for pi, pp in enumerate(planned):
        for li in range(1, len(pp.levels) + 1):
            values = metrics.level_metrics(
                clean,
                np.concatenate(frames.perturbed[(pi, li)], axis=1),
                labels,
                tolerances=config.tolerances,
                tolerance_keys=[tolerance_key(b) for b in config.tolerances],
                threshold=config.threshold,
                positive=positive,
                class_names=[],
                delta_norm=config.delta_norm,
                clean_accuracy=None,
            )
            row = {"perturbation": pp.name, "level": li, **values}
            levels.append({k: row[k] for k in FRAME_LEVEL_KEYS})
    kept = ("n", "accuracy", "accuracy_ci")
    return {"n_frames": len(clean), "clean": {k: summary[k] for k in kept}, "levels": levels}


def _summaries(
    planned: Sequence[PlannedPerturbation],
    levels: Sequence[LevelResult],
    keys: Sequence[str],
    clean_accuracy: float | None,
) -> list[PerturbationSummary]:
    """Mean and area under the curve of RA and RR over each perturbation's levels."""
    out = []
    for pp in planned:
        mine = [lv for lv in levels if lv.perturbation == pp.name]
        ras = [lv.ra for lv in mine if lv.ra is not None]
        ra_start = clean_accuracy if len(ras) == len(mine) else None  # None: unlabelled
        out.append(
            PerturbationSummary(
                perturbation=pp.name,
                family=pp.perturbation.family,
                levels=len(mine),
                mean_ra=metrics.rounded(float(np.mean(ras))) if ra_start is not None else None,
                mean_rr={
                    k: metrics.rounded(float(np.mean([lv.rr[k] for lv in mine]))) for k in keys
                },
                area_ra=metrics.area_under(ra_start, ras) if ra_start is not None else None,
                area_rr={k: metrics.area_under(1.0, [lv.rr[k] for lv in mine]) for k in keys},
            )
        )
    return out


def _describe_data(
    dataset: data.Dataset, collected: _Collected, config: AuditConfig
) -> dict[str, Any]:
    manifest = sorted(collected.manifest, key=lambda row: row["path"])
    counts: dict[str, int] = {}
    for row in manifest:
        if row["label"] is not None:
            counts[row["label"]] = counts.get(row["label"], 0) + 1
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return {
        "path": str(dataset.path),
        "kind": dataset.kind,
        "n_samples": len(manifest),
        "n_skipped": len(collected.skipped),
        "manifest_sha256": hashlib.sha256(canonical).hexdigest(),
        "class_counts": counts,
        "skipped": [{"path": s.path, "reason": s.reason} for s in collected.skipped],
        "manifest": manifest,
        **(_describe_video(config, collected) if dataset.media == "video" else {}),
    }


def _describe_video(config: AuditConfig, collected: _Collected) -> dict[str, Any]:
    counts = collected.frame_counts or [0]
    sampling = video.frame_sampling(config.video.frames, config.video.fps)
    return {
        "media": "video",
        "n_frames": sum(counts),
        "frames_per_video": {
            "frames": sampling.frames,
            "fps": sampling.fps,
            "sampling": sampling.describe(),
            "min": min(counts),
            "max": max(counts),
        },
        "aggregate": config.video.aggregate,
        "clip_codec": video.CLIP_CODEC,
    }


def _describe_config(
    config: AuditConfig,
    planned: Sequence[PlannedPerturbation],
    keys: Sequence[str],
    model: Model,
) -> dict[str, Any]:
    return {
        "suite": None if config.perturbations else config.suite,
        "perturbations": [
            {
                "name": pp.name,
                "family": pp.perturbation.family,
                "description": pp.perturbation.description,
                "pixel_params": list(pp.perturbation.pixel_params),
                "levels": [dict(lv) for lv in pp.levels],
            }
            for pp in planned
        ],
        "tolerances": list(config.tolerances),
        "tolerance_keys": list(keys),
        "headline_tolerance": config.headline_tolerance,
        "headline_tolerance_key": tolerance_key(config.headline_tolerance),
        "delta_norm": config.delta_norm,
        "seed": config.seed,
        "repeats": config.repeats,
        "threshold": config.threshold,
        "limit": config.limit,
        "batch_size": config.batch_size,
        "scale_to_input": config.scale_to_input,
        "preprocess": model.prep.as_dict(),
        "fail_under_ra": config.fail_under_ra,
        "fail_under_rr": config.fail_under_rr,
        "command_line": list(config.command_line),
    }


def _check_config(config: AuditConfig) -> None:
    """Reject option values that make no sense before any work is done."""
    if not config.tolerances or any(not 0 <= b <= 1 for b in config.tolerances):
        raise ConfigError("tolerances must be numbers in [0, 1]")
    if config.headline_tolerance not in config.tolerances:
        raise ConfigError(
            f"the headline tolerance {config.headline_tolerance:g} must be one of the tolerances"
        )
    if config.repeats < 1:
        raise ConfigError("--repeats must be at least 1")
    if config.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    if not 0 <= config.threshold <= 1:
        raise ConfigError("--threshold must be in [0, 1]")
    if config.limit is not None and config.limit < 1:
        raise ConfigError("--limit must be at least 1")
    if config.delta_norm not in DELTA_NORMS:
        raise ConfigError(f"--delta-norm must be one of {', '.join(DELTA_NORMS)}")


def _batches(samples: Sequence[data.Sample], size: int) -> Iterator[Sequence[data.Sample]]:
    for start in range(0, len(samples), size):
        yield samples[start : start + size]


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
