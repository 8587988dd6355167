"""Several models audited in one run: each sample decoded and perturbed once, scored by all.

`run_audits` gives one `AuditResults` per model, each the same as a run of its own
(`FanOut` keeps every model's rows and batches as they would be), with the same
manifest by construction. Searches, videos, the face crop, the journal (so `--resume`) and
Ray are single-model only for now: a search queries one model, and the others are not yet
written for several.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import cast

from auditor.config import AuditConfig
from auditor.engine.fanout import FanOut, split
from auditor.engine.partial import merge, now, render_moved
from auditor.engine.probe import PROBE_SAMPLES, run_probe
from auditor.engine.run import (
    AuditInterrupted,
    _pipeline,
    _set_up,
    _Setup,
    _started_part,
)
from auditor.engine.shard import Progress, ShardRun, graceful_stop
from auditor.errors import ConfigError
from auditor.model.adapter import Model
from auditor.results import AuditResults

__all__ = ["check_several", "run_audits"]


def check_several(config: AuditConfig, models: int) -> None:
    """Refuse what a multi-model run does not support yet, before any work."""
    if models < 2:
        return
    if config.resume:
        raise ConfigError("--resume takes one model; audit the models one by one to resume")
    if config.engine != "local":
        raise ConfigError(f"--engine {config.engine} takes one model; it runs one at a time")


def run_audits(
    configs: Sequence[AuditConfig], progress: Progress | None = None
) -> list[AuditResults]:
    """Audit each config's model on the same samples in one pass; one result per model.

    The configs differ only in `model_path`. Raises `AuditInterrupted` (with no results)
    on Ctrl-C or SIGTERM: a multi-model run writes no partial reports.
    """
    started = now()
    setups = [_set_up(replace(c, journal_path=None), (0, 1), None) for c in configs]
    first_setup = setups[0]
    _refuse(first_setup)
    mine = list(enumerate(first_setup.dataset.samples))
    parts = [_started_part(setup, (0, 1), mine, started) for setup in setups]
    probe_keys = set(sorted(s.key for _, s in mine)[:PROBE_SAMPLES])
    runs = [
        ShardRun(setup.config, part, setup.label_of, probe_keys, progress if i == 0 else None)
        for i, (setup, part) in enumerate(zip(setups, parts))
    ]
    fan = FanOut([setup.model for setup in setups])
    # The pipeline takes the fan-out for its one model: it calls only what both provide.
    shared = replace(first_setup, model=cast(Model, fan))
    with graceful_stop() as stopped:
        for group in _pipeline(shared).run(mine):
            for i, run in enumerate(runs):
                run._absorb(split(fan, group, i))
            if stopped.is_set():
                break
    for run in runs:
        run._count_waiting()
    done, total = parts[0].done, parts[0].total
    if done != total:
        raise AuditInterrupted(None, done, total)
    for setup, part, run in zip(setups, parts, runs):
        pipeline = _pipeline(setup)  # the probe re-scores a few samples with this model only
        part.probe = run_probe(
            pipeline,
            [s for _, s in mine],
            run.first_pass,
            probe_keys,
            setup.plan.draws,
            part.scoring,
        )
        render_moved(part, {s.key: s for _, s in mine}, setup.config, setup.tuning.workers)
    return [merge([part]) for part in parts]


def _refuse(setup: _Setup) -> None:
    """Searches, videos and the face crop run one model at a time."""
    if setup.plan.searches:
        raise ConfigError("adversarial searches query one model; audit the models one by one")
    if setup.dataset.media == "video":
        raise ConfigError("videos take one model at a time; audit the models one by one")
    if setup.face is not None:
        raise ConfigError("--face-crop takes one model at a time; audit the models one by one")
