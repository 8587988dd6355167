"""`AuditConfig`: everything an audit needs, built by the CLI or by a script."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TOLERANCES = (0.01, 0.05, 0.1, 0.2)
HEADLINE_TOLERANCE = 0.1
DELTA_NORMS = ("linf", "l1", "true-class")
ENGINES = ("local", "ray")  # where the audit runs: this process, or a Ray cluster
# Largest model (file plus external data) read without --max-model-size: 2 GiB, the
# most one protobuf file can hold, so only external-data models need more.
DEFAULT_MAX_MODEL_SIZE = 2 * 1024**3


@dataclass(frozen=True)
class PreprocessOptions:
    """Preprocessing flags as given; None means "from the model's metadata, else default"."""

    size: tuple[int, int] | None = None
    resize: str | None = None
    crop_ratio: float | None = None
    pad_value: float | None = None
    pad_align: str | None = None
    interpolation: str | None = None
    channel_order: str | None = None
    scale: float | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    layout: str | None = None


@dataclass(frozen=True)
class ModelOptions:
    """How to read the model: preprocessing, classes and output interpretation."""

    preprocess: PreprocessOptions = field(default_factory=PreprocessOptions)
    classes: tuple[str, ...] | None = None
    positive_class: str | None = None
    output_kind: str = "auto"
    input_name: str | None = None
    output_name: str | None = None
    threads: int = 0  # 0 lets onnxruntime choose
    provider: str = "auto"  # auto, cpu, cuda or an onnxruntime provider name
    max_model_size: int = DEFAULT_MAX_MODEL_SIZE  # bytes, model file plus external data


@dataclass(frozen=True)
class VideoOptions:
    """How video samples are read and scored (ignored for images)."""

    frames: int | None = None  # frames per video; None: 16, or every frame at `fps`
    fps: float | None = None  # sample this many frames per second instead
    aggregate: str = "mean"  # frame probabilities -> video's: mean | median | max


@dataclass(frozen=True)
class AuditConfig:
    """One audit: model, data, perturbations, metrics options and gates."""

    model_path: Path
    data_path: Path
    model: ModelOptions = field(default_factory=ModelOptions)
    perturbations: tuple[str, ...] = ()
    suite: str = "quick"
    tolerances: tuple[float, ...] = DEFAULT_TOLERANCES
    headline_tolerance: float = HEADLINE_TOLERANCE
    delta_norm: str = "linf"
    repeats: int = 1
    seed: int = 0
    limit: int | None = None
    threshold: float = 0.5
    batch_size: int = 0  # rows per model call; 0 = automatic (engine.CPU_BATCH, GPU_BATCH)
    workers: int = 0  # perturbation threads; 0 = one per core
    streams: int = 0  # model calls at once; 0 = automatic (`pipeline.plan_tuning`)
    max_pixels: int = 100_000_000  # larger images are skipped (decompression bombs)
    scale_to_input: bool = True
    fail_under_ra: float | None = None
    fail_under_rr: float | None = None
    command_line: tuple[str, ...] = ()
    journal_path: Path | None = None  # crash journal; None: no journal
    resume: bool = False  # continue from `journal_path` if it exists
    engine: str = "local"  # one of ENGINES; the results do not depend on it
    ray_address: str | None = None  # --engine ray: a running cluster; None: a private local Ray
    video: VideoOptions = field(default_factory=VideoOptions)
    queries: int = 1000  # model queries per sample, level and objective of square_linf
