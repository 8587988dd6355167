"""`AuditConfig`: everything an audit needs, built by the CLI or by a script.

Every setting is declared once, here, with `settings.setting`: its role (does it decide
the results, is it only echoed in them, or is it local to this run), its key in the
results' `config`, its `--policy` `[audit]` key, its row in the report's configuration
table, its `auditor check` option and its validity check. The results' `config`
(`record_settings`), the resume digest (`echo_keys`), the policy's `[audit]` table
(`policy_settings`), the CLI's config (`settings.from_options`), the report's table
(`report_rows`) and `validate` are all read from that declaration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.errors import ConfigError
from auditor.settings import (
    ECHO,
    GROUP,
    LOCAL,
    RESULT,
    Check,
    record,
    setting,
    values,
    walk,
)

DEFAULT_TOLERANCES = (0.01, 0.05, 0.1, 0.2)
HEADLINE_TOLERANCE = 0.1
DELTA_NORMS = ("linf", "l1", "true-class")
ENGINES = ("local", "ray")  # where the audit runs: this process, or a Ray cluster
# Largest model (file plus external data) read without --max-model-size: 2 GiB, the
# most one protobuf file can hold, so only external-data models need more.
DEFAULT_MAX_MODEL_SIZE = 2 * 1024**3


def _at_least(low: int) -> Check:
    return lambda value, config: value >= low


def _rate(value: float, config: Any) -> bool:
    return 0 <= value <= 1


def _rates(values: tuple[float, ...], config: Any) -> bool:
    return bool(values) and all(0 <= b <= 1 for b in values)


def _suite_used(suite: str, config: Any) -> str | None:
    return None if config.perturbations else suite  # -p overrides the suite


PREP = "preprocess"  # as the model resolved it: flags, else its metadata, else defaults


@dataclass(frozen=True)
class PreprocessOptions:
    """Preprocessing flags as given; None means "from the model's metadata, else default"."""

    size: tuple[int, int] | None = setting(None, RESULT, via=PREP, option="size")
    resize: str | None = setting(None, RESULT, via=PREP, option="resize")
    crop_ratio: float | None = setting(None, RESULT, via=PREP, option="crop_ratio")
    pad_value: float | None = setting(None, RESULT, via=PREP, option="pad_value")
    pad_align: str | None = setting(None, RESULT, via=PREP, option="pad_align")
    interpolation: str | None = setting(None, RESULT, via=PREP, option="interpolation")
    channel_order: str | None = setting(None, RESULT, via=PREP, option="channel_order")
    scale: float | None = setting(None, RESULT, via=PREP, option="scale")
    mean: tuple[float, float, float] | None = setting(None, RESULT, via=PREP, option="mean")
    std: tuple[float, float, float] | None = setting(None, RESULT, via=PREP, option="std")
    layout: str | None = setting(None, RESULT, via=PREP, option="layout")


@dataclass(frozen=True)
class ModelOptions:
    """How to read the model: preprocessing, classes and output interpretation.

    Declared in the order of the results' `config`, where these keys sit at the top level.
    """

    preprocess: PreprocessOptions = setting(
        role=RESULT, factory=PreprocessOptions, key="preprocess", resolved=True
    )
    # auto, cpu, cuda or an onnxruntime provider name; recorded as asked, the results'
    # model.runtime says what ran
    provider: str = setting("auto", RESULT, key="provider", option="provider")
    max_model_size: int = setting(  # bytes, model file plus external data
        DEFAULT_MAX_MODEL_SIZE, RESULT, key="max_model_size", option="max_model_size"
    )
    # The three below are recorded as asked; the results' `model` says what they resolved to.
    output_kind: str = setting(
        "auto", RESULT, key="output_kind", option="output_kind", label="Output read as", row=12
    )
    output_name: str | None = setting(
        None, RESULT, key="output_name", option="output_name", label="Model output", row=11
    )
    input_name: str | None = setting(
        None, RESULT, key="input_name", option="input_name", label="Model input", row=10
    )
    # Recorded as resolved (flag, metadata or data folders) in the results' `model`, and
    # from there in the digest: the positive class picks a video's frame for --aggregate max.
    classes: tuple[str, ...] | None = setting(None, RESULT, via="model.classes", option="classes")
    positive_class: str | None = setting(
        None, RESULT, via="model.positive_class", option="positive_class"
    )
    threads: int = setting(  # 0 lets onnxruntime choose
        0,
        ECHO,
        via="workers",
        option="threads",
        valid=_at_least(0),
        message="--threads must be 0 (automatic) or more",
    )


@dataclass(frozen=True)
class VideoOptions:
    """How video samples are read and scored (ignored for images)."""

    # frames per video; None: 16, or every frame at `fps`
    frames: int | None = setting(None, RESULT, key="frames", option="frames")
    fps: float | None = setting(None, RESULT, key="fps", option="fps")  # frames per second
    # frame probabilities -> video's: mean | median | max
    aggregate: str = setting("mean", RESULT, key="aggregate", option="aggregate")


def _face_score(value: float, config: Any) -> bool:
    return 0 < value < 1


def _if_face_crop(value: Any, config: Any) -> Any:
    """A face detection setting as recorded: None while `--face-crop` is off."""
    return value if config.face.crop is not None else None


@dataclass(frozen=True)
class FaceOptions:
    """The face front end (`--face-crop`): off unless a preset is given.

    Defaults are `auditor.faces.detector`'s (bundled BlazeFace full range, score 0.5,
    smallest face 20 px), repeated here because config sits below the faces package.
    """

    crop: str | None = setting(None, RESULT, key="crop", option="face_crop")
    detector: str = setting(
        "blazeface-full", RESULT, key="detector", option="face_detector", record=_if_face_crop
    )
    score: float = setting(
        0.5,
        RESULT,
        key="score",
        option="face_score",
        record=_if_face_crop,
        valid=_face_score,
        message="--face-score must be in (0, 1)",
    )
    min_size: float = setting(
        20.0,
        RESULT,
        key="min_size",
        option="face_min_size",
        record=_if_face_crop,
        valid=lambda value, config: value >= 0,
        message="--face-min-size must be 0 or more pixels",
    )


@dataclass(frozen=True)
class AuditConfig:
    """One audit: model, data, perturbations, metrics options and gates.

    Declared in the order of the results' `config`.
    """

    # identified by the model's sha256 in the results' `model` and in the digest
    model_path: Path = setting(role=RESULT, via="model.sha256", option="model")
    # identified by the sample listing in the results' `data` and in the digest
    data_path: Path = setting(role=RESULT, via="data.manifest", option="data_path")
    suite: str = setting(
        "quick",
        RESULT,
        key="suite",
        record=_suite_used,
        option="suite",
        policy="suite",
        label="Suite",
        row=1,
    )
    # what the plan made of them: name, family, parameters of every level
    perturbations: tuple[str, ...] = setting(
        (), RESULT, key="perturbations", resolved=True, option="perturbations"
    )
    tolerances: tuple[float, ...] = setting(
        DEFAULT_TOLERANCES,
        RESULT,
        key="tolerances",
        companion="tolerance_keys",
        option="tolerances",
        policy="tolerance",
        label="Tolerances b",
        row=4,
        valid=_rates,
        message="tolerances must be numbers in [0, 1]",
    )
    headline_tolerance: float = setting(
        HEADLINE_TOLERANCE,
        RESULT,
        key="headline_tolerance",
        companion="headline_tolerance_key",
        option="headline_tolerance",
        label="Headline tolerance b",
        row=5,
        valid=lambda value, config: value in config.tolerances,
        message="the headline tolerance {value:g} must be one of the tolerances",
    )
    delta_norm: str = setting(
        "linf",
        RESULT,
        key="delta_norm",
        option="delta_norm",
        label="Output distance",
        row=6,
        valid=lambda value, config: value in DELTA_NORMS,
        message=f"--delta-norm must be one of {DELTA_NORMS}",
    )
    seed: int = setting(0, RESULT, key="seed", option="seed", policy="seed", label="Seed", row=2)
    repeats: int = setting(
        1,
        RESULT,
        key="repeats",
        option="repeats",
        label="Repeats (worst of R)",
        row=3,
        valid=_at_least(1),
        message="--repeats must be at least 1",
    )
    threshold: float = setting(
        0.5,
        RESULT,
        key="threshold",
        option="threshold",
        label="Decision threshold",
        row=8,
        valid=_rate,
        message="--threshold must be in [0, 1]",
    )
    limit: int | None = setting(
        None,
        RESULT,
        key="limit",
        option="limit",
        label="Sample limit",
        row=9,
        valid=lambda value, config: value is None or value >= 1,
        message="--limit must be at least 1",
    )
    max_pixels: int = setting(  # larger images are skipped (decompression bombs)
        100_000_000,
        RESULT,
        key="max_pixels",
        option="max_pixels",
        valid=_at_least(1),
        message="--max-pixels must be at least 1",
    )
    scale_to_input: bool = setting(
        True,
        RESULT,
        key="scale_to_input",
        option="scale_to_input",
        label="Pixel-sized parameters scaled to the input size",
        row=7,
    )
    model: ModelOptions = setting(role=GROUP, factory=ModelOptions)  # keys at the top level
    fail_under_ra: float | None = setting(None, RESULT, key="fail_under_ra", option="fail_under_ra")
    fail_under_rr: float | None = setting(None, RESULT, key="fail_under_rr", option="fail_under_rr")
    # model queries per sample, level and objective of square_linf; recorded only when
    # the plan has such a search
    queries: int = setting(1000, RESULT, key="queries", resolved=True, option="queries")
    # The gradient attacks' settings (fgsm, pgd_linf, apgd_linf, cw_l2), recorded only when
    # the plan has one. Above `twin_tolerance` (largest |twin - onnxruntime| probability
    # difference) a level is a transfer attack from an inexact surrogate, not white-box.
    twin_tolerance: float = setting(
        1e-3,
        RESULT,
        key="twin_tolerance",
        resolved=True,
        option="twin_tolerance",
        valid=lambda value, config: 0 <= value <= 1,
        message="--twin-tolerance must be in [0, 1]",
    )
    attack_steps: int = setting(  # 0: each attack's own default
        0,
        RESULT,
        key="attack_steps",
        resolved=True,
        option="attack_steps",
        valid=_at_least(0),
        message="--attack-steps must be 0 (each attack's default) or more",
    )
    restarts: int = setting(
        1,
        RESULT,
        key="restarts",
        resolved=True,
        option="restarts",
        valid=_at_least(1),
        message="--restarts must be at least 1",
    )
    command_line: tuple[str, ...] = setting(
        (), ECHO, key="command_line", label="Command line", row=0
    )
    video: VideoOptions = setting(role=GROUP, factory=VideoOptions, key="video")
    face: FaceOptions = setting(role=GROUP, factory=FaceOptions, key="face")
    batch_size: int = setting(  # rows per model call; 0 = automatic (engine.CPU_BATCH, GPU_BATCH)
        0,
        ECHO,
        key="batch_size",
        option="batch_size",
        label="Batch size",
        row=13,
        valid=_at_least(0),
        message="--batch-size must be 0 (automatic) or more",
    )
    # perturbation threads; 0 = one per core. Recorded as the tuning that ran (workers,
    # streams, threads), which the engine resolves.
    workers: int = setting(
        0,
        ECHO,
        key="workers",
        resolved=True,
        option="workers",
        valid=_at_least(0),
        message="--workers must be 0 (automatic) or more",
    )
    streams: int = setting(  # model calls at once; 0 = automatic (`pipeline.plan_tuning`)
        0,
        ECHO,
        via="workers",
        option="streams",
        valid=_at_least(0),
        message="--streams must be 0 (automatic) or more",
    )
    journal_path: Path | None = setting(None, LOCAL)  # crash journal; None: no journal
    resume: bool = setting(False, LOCAL, option="resume")  # continue from `journal_path`
    # one of ENGINES; the results do not depend on it
    engine: str = setting("local", LOCAL, option="engine")
    # --engine ray: a running cluster; None: a private local Ray
    ray_address: str | None = setting(None, LOCAL, option="ray_address")
    # bytes this run may use (`engine.memory`): the CLI enforces it around the audit, and
    # the engine names it when an allocation fails; None: no limit (a script's default)
    max_memory: int | None = setting(None, LOCAL, option="max_memory")


def record_settings(config: AuditConfig, resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of the results' `config`, in declaration order.

    `resolved` holds what is recorded from elsewhere: the values of the `resolved`
    settings (the planned perturbations, the model's preprocessing, the tuning) and the
    companions (tolerance keys). A resolved setting it lacks is not recorded (`queries`
    without a search).
    """
    out = record(config, config, resolved)
    unused = set(resolved) - set(out)
    if unused:
        raise ValueError(f"no setting records {sorted(unused)}")
    return out


def echo_keys() -> frozenset[str]:
    """The keys of the results' `config` that the resume digest leaves out."""
    return frozenset(s.key for s in walk(AuditConfig) if s.role == ECHO and s.key is not None)


def policy_settings() -> list[tuple[str, str]]:
    """(`[audit]` key, option name) of each setting a policy may set."""
    return [(s.policy, s.option) for s in walk(AuditConfig) if s.policy and s.option]


def report_rows() -> list[tuple[str, str]]:
    """(label, `config` key) of each row of the report's configuration table, in order."""
    shown = sorted((s for s in walk(AuditConfig) if s.row is not None), key=lambda s: s.row or 0)
    return [(str(s.label), str(s.key)) for s in shown]


def validate(config: AuditConfig) -> None:
    """Reject option values that make no sense, before any work is done (`ConfigError`)."""
    for spec, value in values(config):
        if spec.valid is not None and not spec.valid(value, config):
            raise ConfigError(spec.message.format(value=value))
