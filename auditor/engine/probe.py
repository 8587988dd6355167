"""The determinism probe: a few samples re-scored in a fresh pass, compared with the first.

Every probe sample is re-scored clean, and level j (first repeat) on probe sample
j mod (number of probe samples): each level is checked, at a small fixed cost. The
re-scoring uses the audit's worker pool and model streams, so it costs a few percent of
a short audit rather than a serial pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor import data, metrics
from auditor.engine import clips
from auditor.engine.pipeline import Pipeline, Scored, opencv_threads
from auditor.engine.plan import Draw
from auditor.engine.stats import Scoring
from auditor.errors import SampleError

PROBE_SAMPLES = 8
"""Samples re-scored by the probe: the first ones by key, so every run picks the same."""


@dataclass(frozen=True)
class _Job:
    sample: data.Sample
    before: Scored  # its first-pass result
    levels: list[int]  # indices into the draws


def run_probe(
    pipeline: Pipeline,
    samples: Sequence[data.Sample],
    first_pass: dict[str, Scored],
    probe_keys: set[str],
    draws: Sequence[Draw],
    scoring: Scoring,
) -> dict[str, Any]:
    """Re-score the probe samples among `samples` (those in `first_pass`); summarize.

    `probe_keys` are the probe samples of the whole audit, so that a shard checks the
    same levels of its probe samples as a run over every shard would.
    """
    order = sorted(probe_keys)
    levels = [k for k, d in enumerate(draws) if d.repeat == 0]
    jobs = [
        _Job(
            s,
            first_pass[s.key],
            [k for j, k in enumerate(levels) if order[j % len(order)] == s.key],
        )
        for s in samples
        if s.key in first_pass
    ]
    if not jobs:
        return {"n_samples": 0, "n_evaluations": 0, "max_abs_diff": 0.0, "decision_flips": 0}
    rescore = _rescore_clip if pipeline.sampling is not None else _rescore_image
    tuning = pipeline.tuning
    with opencv_threads(tuning.opencv), ThreadPoolExecutor(tuning.workers) as pool:
        again = pool.map(lambda job: _rescored(rescore, pipeline, job, draws), jobs)
        rows = [r for r in again if r is not None]
    if not rows:  # every probe file changed on disk since the first pass
        return {"n_samples": 0, "n_evaluations": 0, "max_abs_diff": 0.0, "decision_flips": 0}
    expected = np.concatenate([r[0] for r in rows])
    fresh = np.concatenate([r[1] for r in rows])
    flips = metrics.decide(expected, scoring.threshold, scoring.positive) != metrics.decide(
        fresh, scoring.threshold, scoring.positive
    )
    return {
        "n_samples": len(rows),
        "n_evaluations": len(expected),
        "max_abs_diff": metrics.rounded(float(np.abs(expected - fresh).max())),
        "decision_flips": int(flips.sum()),
    }


Rows = tuple[NDArray[np.float64], NDArray[np.float64]]


def _rescored(rescore: Any, pipeline: Pipeline, job: _Job, draws: Sequence[Draw]) -> Rows | None:
    """`rescore`'s rows, or None for a sample whose file no longer decodes (changed since)."""
    try:
        return rescore(pipeline, job, draws)
    except SampleError:
        return None


def _rescore_image(pipeline: Pipeline, job: _Job, draws: Sequence[Draw]) -> Rows:
    """(first-pass probabilities, fresh ones) of an image: clean, then its probe levels."""
    model = pipeline.model
    image = data.decode(job.sample, pipeline.max_pixels).image
    tensor: NDArray[Any] = np.empty((1 + len(job.levels), *model.input_shape()), model.input_dtype)
    pipeline.fill_rows(image, job.sample.key, [draws[k] for k in job.levels], tensor)
    expected = np.vstack([job.before.clean, job.before.perturbed[job.levels]])
    return expected, pipeline.score(tensor)


def _rescore_clip(pipeline: Pipeline, job: _Job, draws: Sequence[Draw]) -> Rows:
    """The same for a video: its clip re-read, re-scored clean and at its probe levels."""
    rows = pipeline.clip_rows(job.sample, [draws[k] for k in job.levels])
    positive = pipeline.model.positive_index()
    found = rows.faces.found() if rows.faces is not None else None  # as the first pass
    clean, perturbed, _ = clips.split_rows(
        pipeline.score(rows.tensor), rows.frames, pipeline.aggregate, positive, found
    )
    expected = np.vstack([job.before.clean, job.before.perturbed[job.levels]])
    return expected, np.vstack([clean, perturbed])
