"""Partial results of one shard (`ShardResult`) and `merge`, which makes `AuditResults`.

A `ShardResult` is plain data (dicts, lists, numbers and the `stats` dataclasses), so it
can be pickled to another process or machine; `merge` of all shards of an audit gives
the same results JSON as one run over every sample.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from auditor import data, metrics
from auditor.config import AuditConfig, record_settings
from auditor.data import thumbnails
from auditor.engine.plan import PERTURBATION, SEARCH, AuditPlan, Draw
from auditor.engine.stats import AuditStats, Scoring
from auditor.errors import ConfigError, DataError
from auditor.perturbations.registry import applied_params
from auditor.results import AuditResults, LevelResult, PerturbationSummary, tolerance_key
from auditor.verdict import gates
from auditor.version import __version__


@dataclass
class ShardResult:
    """What one shard measured: statistics and descriptions, all plain data."""

    shard: tuple[int, int]
    digest: str  # settings + model + data listing; equal for every shard of one audit
    started_at: str
    model: dict[str, Any]
    config: dict[str, Any]
    environment: dict[str, Any]
    dataset: dict[str, Any]  # path, kind, labelled
    class_names: list[str]
    scoring: Scoring
    plan: AuditPlan  # the same for every shard of one audit (the digest covers it)
    stats: AuditStats
    skipped: list[dict[str, str]]  # found before decoding (shard 0 carries them)
    total: int  # work units: samples x plan.units_per_sample
    done: int = 0
    skipped_decode: list[dict[str, str]] = field(default_factory=list)
    manifest: list[dict[str, Any]] = field(default_factory=list)
    thumbnails: dict[str, Any] = field(default_factory=dict)
    thumbnails_index: int | None = None
    probe: dict[str, Any] | None = None
    frame_stats: AuditStats | None = None  # videos: every frame counted as a sample


def merge(parts: Sequence[ShardResult]) -> AuditResults:
    """Merge the shards of one audit into its results (gates evaluated)."""
    if not parts:
        raise ValueError("merge needs at least one shard")
    first = min(parts, key=lambda p: p.shard)
    if any(p.digest != first.digest for p in parts):
        raise ConfigError("cannot merge shards of audits with different settings, model or data")
    stats = AuditStats()
    for part in parts:
        stats.merge(part.stats)
    manifest = sorted((row for p in parts for row in p.manifest), key=lambda r: r["path"])
    skipped = sorted(
        (s for p in parts for s in (*p.skipped, *p.skipped_decode)), key=lambda s: s["path"]
    )
    done, total = sum(p.done for p in parts), sum(p.total for p in parts)
    complete = done == total and len({p.shard for p in parts}) == first.shard[1]
    if stats.clean.n == 0:
        if complete:
            reason = skipped[0]["reason"] if skipped else "none decoded"
            raise DataError(
                f"{first.dataset['path']}: no usable images; all {len(skipped)} were "
                f"skipped (first reason: {reason})"
            )
        raise NothingDone(done, total)
    return _assemble(first, parts, stats, manifest, skipped, complete, done, total)


def _assemble(
    first: ShardResult,
    parts: Sequence[ShardResult],
    stats: AuditStats,
    manifest: list[dict[str, Any]],
    skipped: list[dict[str, str]],
    complete: bool,
    done: int,
    total: int,
) -> AuditResults:
    s, config, labelled = first.scoring, first.config, first.dataset["labelled"]
    keys = config["tolerance_keys"]
    clean = stats.clean.finish(s, first.class_names, labelled)
    order = _manifest_order(stats, manifest)
    pixel_params = {d["name"]: d.get("pixel_params") or [] for d in first.plan.described}
    sides = stats.sides if config.get("scale_to_input") else None
    levels = []
    for planned, level in zip(first.plan.levels, stats.levels):
        values = level.finish(s, keys, first.class_names, labelled, clean["accuracy"])
        scaled = pixel_params.get(planned.name, []) if planned.kind == PERTURBATION else []
        levels.append(
            LevelResult(
                perturbation=planned.name,
                family=planned.family,
                level=planned.level,
                params=dict(planned.params),
                **values,
                applied=applied_params(scaled, planned.params, sides),
                **level.pixels.finish(),
                **level.faces.finish(),
                outcomes=level.outcomes.finish(order, keys) if order is not None else None,
            )
        )
    with_thumbs = [p for p in parts if p.thumbnails_index is not None]
    thumbs = (
        min(with_thumbs, key=lambda p: p.thumbnails_index or 0).thumbnails if with_thumbs else {}
    )
    probes = [p.probe for p in parts if p.probe is not None]
    return AuditResults(
        auditor_version=__version__,
        created_at=now(),
        started_at=min(p.started_at for p in parts),
        finished_at=now(),
        model=first.model,
        data=_describe_data(first, manifest, skipped),
        config=config,
        environment=first.environment,
        clean=clean,
        results=levels,
        summary=_summaries(config, levels, keys, clean["accuracy"]),
        thumbnails=thumbs,
        verdict=gates.evaluate(
            levels,
            config["headline_tolerance_key"],
            config["fail_under_ra"],
            config["fail_under_rr"],
        ),
        moved={name: [_public(c) for c in moved] for name, moved in stats.moved.items()},
        frame_results=_frame_results(first, parts, levels),
        crop_boxes=[stats.crop_boxes[k] for k in sorted(stats.crop_boxes)] or None,
        adversarial=_adversarial(first.plan, config, stats),
        determinism=_merge_probes(probes) if complete and probes else None,
        status="complete" if complete else "incomplete",
        progress={"done": done, "total": total},
    )


def _manifest_order(stats: AuditStats, manifest: list[dict[str, Any]]) -> list[int] | None:
    """Where each manifest row's outcomes were counted; None when they were not all kept."""
    order = stats.manifest_order()
    if [stats.keys[i] for i in order] != [row["path"] for row in manifest]:
        return None
    return order


class NothingDone(Exception):
    """An interrupted audit that scored no sample: there are no results to write."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"nothing done ({done} of {total})")
        self.done, self.total = done, total


def _frame_results(
    first: ShardResult, parts: Sequence[ShardResult], levels: Sequence[LevelResult]
) -> dict[str, Any] | None:
    """Videos: the levels again, with every frame a sample of its own."""
    if first.frame_stats is None:
        return None
    stats = AuditStats()
    for part in parts:
        stats.merge(part.frame_stats or AuditStats())
    s, config, labelled = first.scoring, first.config, first.dataset["labelled"]
    clean = stats.clean.finish(s, first.class_names, labelled)
    rows = []
    for lv, level in zip(levels, stats.levels):
        values = level.finish(s, config["tolerance_keys"], [], labelled, None)
        rows.append(
            {"perturbation": lv.perturbation, "level": lv.level}
            | {k: values[k] for k in ("n", "ra", "ra_ci", "rr", "rr_ci")}
            | {k: values[k] for k in ("flip_rate", "flip_rate_ci")}
        )
    kept = {k: clean[k] for k in ("n", "accuracy", "accuracy_ci")}
    return {"n_frames": stats.clean.n, "clean": kept, "levels": rows}


def _adversarial(plan: AuditPlan, config: dict[str, Any], stats: AuditStats) -> dict[str, Any]:
    """The searches' figures per level (empty when no search ran).

    Each search describes its own levels; where several ran, the first one's
    settings lead the section and every search adds its levels under `perturbations`.
    """
    from auditor.adversarial.registry import SEARCHES, Tally

    section: dict[str, Any] = {}
    for name in plan.names(SEARCH):
        counts = stats.adversarial.get(name)
        if not counts:
            continue
        search = SEARCHES[name]
        tallies = [Tally(lv.level, lv.params, c) for lv, c in zip(plan.levels_of(name), counts)]
        part = search.describe({k: config[k] for k in search.settings}, tallies)
        for key, value in part.items():
            if isinstance(value, dict):  # per search: `perturbations`, `attacks`
                section.setdefault(key, {}).update(value)
            elif key == "threat_model" and key in section and value not in section[key]:
                section[key] = f"{section[key]} {value}"  # each kind of search states its own
            else:
                section.setdefault(key, value)
    return section


def _public(candidate: dict[str, Any]) -> dict[str, Any]:
    out = dict(candidate)
    out["delta"] = metrics.rounded(candidate["delta"])
    out["clean_probs"] = [metrics.rounded(v) for v in candidate["clean_probs"]]
    out["perturbed_probs"] = [metrics.rounded(v) for v in candidate["perturbed_probs"]]
    return out


def _merge_probes(probes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "n_samples": sum(p["n_samples"] for p in probes),
        "n_evaluations": sum(p["n_evaluations"] for p in probes),
        "max_abs_diff": max(p["max_abs_diff"] for p in probes),
        "decision_flips": sum(p["decision_flips"] for p in probes),
    }


def _summaries(
    config: dict[str, Any],
    levels: Sequence[LevelResult],
    keys: Sequence[str],
    clean_accuracy: float | None,
) -> list[PerturbationSummary]:
    """Mean and area under the curve of RA and RR over each perturbation's levels."""
    out = []
    for p in config["perturbations"]:
        mine = [lv for lv in levels if lv.perturbation == p["name"]]
        ras = [lv.ra for lv in mine if lv.ra is not None]
        ra_start = clean_accuracy if len(ras) == len(mine) else None  # None: unlabelled
        out.append(
            PerturbationSummary(
                perturbation=p["name"],
                family=p["family"],
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
    first: ShardResult, manifest: list[dict[str, Any]], skipped: list[dict[str, str]]
) -> dict[str, Any]:
    counts: dict[str, int] = {}
    converted: dict[str, int] = {}
    for row in manifest:
        if row["label"] is not None:
            counts[row["label"]] = counts.get(row["label"], 0) + 1
        if row.get("converted"):
            converted[row["converted"]] = converted.get(row["converted"], 0) + 1
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return {
        "path": first.dataset["path"],
        "kind": first.dataset["kind"],
        "n_samples": len(manifest),
        "n_skipped": len(skipped),
        "manifest_sha256": hashlib.sha256(canonical).hexdigest(),
        "class_counts": dict(sorted(counts.items())),
        "converted": dict(sorted(converted.items())),
        "skipped": skipped,
        "manifest": manifest,
        **({"face_crop": first.dataset["face_crop"]} if "face_crop" in first.dataset else {}),
        **(_describe_video(first, manifest) if first.dataset.get("media") == "video" else {}),
    }


def _describe_video(first: ShardResult, manifest: list[dict[str, Any]]) -> dict[str, Any]:
    from auditor.data import video
    from auditor.engine import clips

    counts = [len(row["frames"]) for row in manifest] or [0]
    options = first.config["video"]
    sampling = video.frame_sampling(options["frames"], options["fps"])
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
        "aggregate": options["aggregate"],
        "clip_codec": clips.clip_codec(),
    }


def describe_config(
    config: AuditConfig,
    plan: AuditPlan,
    model: Any,
    tuning: dict[str, Any],
) -> dict[str, Any]:
    """The config section of the results: everything needed to re-run the audit."""

    # What the settings alone do not say: the plan, the model's preprocessing, the tuning.
    resolved = {
        "perturbations": plan.describe(),
        "tolerance_keys": [tolerance_key(b) for b in config.tolerances],
        "headline_tolerance_key": tolerance_key(config.headline_tolerance),
        "preprocess": model.prep.as_dict(),
        **_search_settings(config, plan),
        "workers": tuning,
    }
    return record_settings(config, resolved)


def _search_settings(config: AuditConfig, plan: AuditPlan) -> dict[str, Any]:
    """The settings the planned searches read (`queries`); none when no search is planned."""
    return {name: getattr(config, name) for name in plan.search_settings}


def render_thumbnails(
    sample: data.Sample,
    image: Any,
    plan: AuditPlan,
    config: AuditConfig,
    workers: int = 1,
    face: Any = None,
) -> dict[str, Any]:
    """Thumbnails of one sample clean and at every sampled level (first repeat), on `workers`
    threads. The searches' points are not kept, so they have none.

    With `face` (a `FaceFront`), each thumbnail is the face crop the model saw, or the whole
    image where no face was found.
    """
    from auditor.engine.pipeline import perturb

    draws = [d for d in plan.draws if d.repeat == 0]

    def seen(pixels: Any) -> Any:
        cut = face.cut(pixels) if face is not None else None
        return pixels if cut is None else cut[0]

    def render(draw: Draw) -> str:
        out = perturb(image, draw, sample.key, config.seed, config.scale_to_input)
        return thumbnails.data_uri(seen(out))

    levels: dict[str, list[str]] = {d.perturbation: [] for d in draws}
    with ThreadPoolExecutor(workers) as pool:
        for draw, uri in zip(draws, pool.map(render, draws)):
            levels[draw.perturbation].append(uri)
    return {"sample": sample.key, "clean": thumbnails.data_uri(seen(image)), "levels": levels}


def render_moved(
    part: ShardResult, samples: dict[str, data.Sample], config: AuditConfig, workers: int = 1
) -> None:
    """Add clean and perturbed thumbnails to the shard's most-moved samples."""
    from auditor.engine.pipeline import perturb

    def render(name: str, c: dict[str, Any]) -> None:
        draw = part.plan.draw(name, c["level"], c["repeat"])
        try:
            image = data.decode(samples[c["sample"]], config.max_pixels).image
            out = perturb(image, draw, c["sample"], config.seed, config.scale_to_input)
        except MemoryError:
            raise
        except Exception:  # changed on disk since, or fails now: leave the thumbnails out
            c["clean_thumbnail"] = c["perturbed_thumbnail"] = None
            return
        c["clean_thumbnail"] = thumbnails.data_uri(image)
        c["perturbed_thumbnail"] = thumbnails.data_uri(out)

    todo = [
        (name, c)
        for name, candidates in part.stats.moved.items()
        for c in candidates
        if "clean_thumbnail" not in c
    ]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda job: render(*job), todo))  # each fills its own candidate


def now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
