"""`auditor check`: options -> `AuditConfig` -> engine -> published files -> exit code."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from auditor.cli.boundary import reports_errors
from auditor.cli.options import (
    CHECK_EXAMPLES,
    CHECK_GROUPS,
    ByteSize,
    GroupedCommand,
    Names,
    Number,
    NumberList,
    face_options,
    identity_options,
    model_options,
    suite_choice,
)
from auditor.cli.reports import listed, output_targets, signing_key
from auditor.config import (
    DEFAULT_TOLERANCES,
    DELTA_NORMS,
    ENGINES,
    AuditConfig,
)
from auditor.engine.clips import AGGREGATES
from auditor.errors import (
    EXIT_CANNOT_RUN,
    EXIT_GATE_FAILED,
    EXIT_OK,
    ConfigError,
)
from auditor.publish import WRITERS, Target, check_targets, publish, write_text
from auditor.settings import from_options


@click.command(cls=GroupedCommand, groups=CHECK_GROUPS, epilog=CHECK_EXAMPLES)
@click.argument("model", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder with one sub-folder per class, a CSV/JSONL manifest (path,label), "
    "or a folder of unlabelled images.",
)
@click.option(
    "--classes", type=Names(), help="Class names in the model's output order, comma-separated."
)
@click.option(
    "-p",
    "--perturbation",
    "perturbations",
    multiple=True,
    metavar="SPEC",
    help="Repeatable: NAME or NAME:PARAM=v1,v2,... (overrides --suite).",
)
@click.option(
    "--suite",
    default="quick",
    show_default=True,
    type=suite_choice(),
    help="Named set of perturbations (auditor perturbations --suite NAME lists one).",
)
@click.option(
    "--tolerance",
    "tolerances",
    type=NumberList(),
    default=",".join(map(str, DEFAULT_TOLERANCES)),
    show_default=True,
    help="RR tolerances b.",
)
@click.option(
    "--headline-tolerance",
    type=Number(),
    default=0.1,
    show_default=True,
    help="The tolerance b of the headline RR and of --fail-under-rr.",
)
@click.option(
    "--delta-norm",
    type=click.Choice(DELTA_NORMS),
    default="linf",
    show_default=True,
    help="How the change of the probability vector is measured.",
)
@click.option(
    "--repeats",
    type=int,
    default=1,
    show_default=True,
    help="Random draws per sample and level; a sample counts only if all pass.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of every random draw: the same seed, the same results.",
)
@click.option(
    "--queries",
    type=int,
    default=1000,
    show_default=True,
    help="Model queries per sample, level and objective of an adversarial search (square_linf).",
)
@click.option(
    "--twin-tolerance",
    type=float,
    default=1e-3,
    show_default=True,
    help="Largest |twin - onnxruntime| probability difference for which a gradient attack "
    "counts as white-box; above it the level is labelled a transfer attack.",
)
@click.option(
    "--attack-steps",
    type=int,
    default=0,
    show_default=True,
    help="Gradient steps of pgd_linf, apgd_linf and cw_l2 (0: 10, 20 and 50).",
)
@click.option(
    "--restarts",
    type=int,
    default=1,
    show_default=True,
    help="Random restarts of pgd_linf and apgd_linf.",
)
@click.option("--limit", type=int, help="Audit at most N samples (stratified by class).")
@click.option(
    "--batch-size",
    type=int,
    default=0,
    show_default=True,
    help="Images a model stream takes at a time (0: 8 on CPU, 32 on a GPU); on CPU every "
    "model call has 8 rows, so results do not depend on it.",
)
@click.option(
    "--workers",
    type=int,
    default=0,
    show_default=True,
    help="Perturbation threads (0: one per core); results do not depend on it.",
)
@click.option(
    "--streams",
    type=int,
    default=0,
    show_default=True,
    help="Model calls at once (0: one per core on CPU, at most 4; 1 on a GPU); "
    "results do not depend on it.",
)
@click.option(
    "--threads",
    type=int,
    default=0,
    show_default=True,
    help="onnxruntime threads per model call (0: the cores shared among the streams); "
    "results do not depend on it.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted audit from its journal (the results JSON path + .journal).",
)
@click.option(
    "--max-pixels",
    type=int,
    default=100_000_000,
    show_default=True,
    help="Skip images with more pixels than this (decompression bombs).",
)
@click.option(
    "--max-memory",
    type=ByteSize(),
    help="Memory the audit may use, e.g. 8G or 512M [default: 75% of the machine's]; "
    "needing more ends it with exit 2, its finished samples kept for --resume "
    "(local engine).",
)
@click.option(
    "--frames",
    type=click.IntRange(min=1),
    help="Video data: frames per video, spread evenly [default: 16; with --fps: at most N].",
)
@click.option(
    "--fps", type=Number(), help="Video data: score this many frames per second of video."
)
@click.option(
    "--aggregate",
    type=click.Choice(AGGREGATES),
    default="mean",
    show_default=True,
    help="Video data: how the frames' probabilities make the video's.",
)
@click.option(
    "--threshold",
    type=Number(),
    default=0.5,
    show_default=True,
    help="Decision threshold of a binary model.",
)
@click.option(
    "--positive-class", help="Positive class of a binary model (default: 'fake', else index 1)."
)
@click.option(
    "--scale-to-input/--no-scale-to-input",
    default=True,
    show_default=True,
    help="Scale pixel-sized perturbation parameters to the image size.",
)
@model_options
@face_options
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("auditor-report.html"),
    show_default=True,
    help="HTML report.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Results JSON [default: the report's path with suffix .json].",
)
@click.option(
    "--format",
    "formats",
    default="html,json",
    show_default=True,
    metavar="NAMES",
    help=f"Outputs, comma-separated, of {', '.join(sorted(WRITERS))}; each but the JSON goes "
    "next to the report (REPORT.junit.xml, REPORT.md). The results JSON is always written, "
    "listed or not: --resume, render and verify read it.",
)
@click.option("--fail-under-ra", type=Number(), help="Exit 1 if any level's RA is below X.")
@click.option(
    "--fail-under-rr", type=Number(), help="Exit 1 if any level's headline RR is below X."
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="local",
    show_default=True,
    help="Run here, or split over a Ray cluster (needs the ray extra); same results.",
)
@click.option(
    "--ray-address",
    metavar="ADDRESS",
    help="--engine ray: the cluster's head (HOST:PORT or auto) [default: a private local Ray].",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML policy: [audit] suite/tolerance/seed and [[gate]] rules decided on intervals.",
)
@identity_options
@reports_errors
def check(**options: Any) -> None:
    """Audit MODEL on the images under --data; write the results JSON, HTML report and more."""
    from auditor.cli.progress import audit_bar
    from auditor.engine.run import AuditInterrupted, run_audit
    from auditor.report.html import summary_lines
    from auditor.verdict import policy

    models = options["model"]
    if len(models) > 1:
        check_models(models, options)
        return
    options = {**options, "model": models[0]}
    rules = policy.load_policy(options["policy_path"]) if options["policy_path"] else None
    key = signing_key(options["sign_key"])  # before the audit: a bad key fails fast
    json_path = options["json_path"] or options["output"].with_suffix(".json")
    to = output_targets(options["formats"], options["output"], json_path)
    journal = json_path.with_name(json_path.name + ".journal")
    check_targets(to, [("the journal", journal)])  # before the audit, not after it
    config = _config_from(_with_policy(options, rules), journal)
    if config.ray_address and config.engine != "ray":
        raise ConfigError("--ray-address needs --engine ray")
    if config.engine == "ray":
        from auditor.engine.distributed import run_audit_ray as run_audit
    bar = audit_bar(config.data_path, config.repeats)
    try:
        with _bounded_memory(config) as config:
            audited = run_audit(config, bar)
        results = _issued(audited, rules, options)
    except AuditInterrupted as stop:
        partial = _issued(stop.results, rules, options) if stop.results is not None else None
        _report_interrupted(stop, partial, to, key, bar.unit)
    written = publish(results, to, key)
    click.echo("\n".join(summary_lines(results)), err=True)
    click.echo(f"auditor: wrote {listed(written)}", err=True)
    sys.exit(EXIT_OK if results.verdict.passed else EXIT_GATE_FAILED)


def check_models(models: tuple[Path, ...], options: dict[str, Any]) -> None:
    """Several models in one run: a report per model and their comparison; exit 1 if any fails."""
    from auditor.cli.progress import audit_bar
    from auditor.engine.multi import check_several, run_audits
    from auditor.engine.run import AuditInterrupted
    from auditor.report.compare import compare_results, render_compare
    from auditor.report.compare import summary_lines as compare_lines
    from auditor.report.html import summary_lines
    from auditor.verdict import policy

    rules = policy.load_policy(options["policy_path"]) if options["policy_path"] else None
    key = signing_key(options["sign_key"])
    stems = [path.stem for path in models]
    if len(set(stems)) < len(stems):
        raise ConfigError("the models' file names must differ: their reports are named after them")
    merged = _with_policy(options, rules)
    configs = [_config_from({**merged, "model": path}) for path in models]
    check_several(configs[0], len(models))
    bar = audit_bar(configs[0].data_path, configs[0].repeats)
    try:
        with _bounded_memory(configs[0]) as bounded:  # one process runs every model
            limited = [replace(c, max_memory=bounded.max_memory) for c in configs]
            every = [_issued(r, rules, options) for r in run_audits(limited, bar)]
    except AuditInterrupted as stop:
        click.echo(
            f"auditor: interrupted after {stop.done} of {stop.total} {bar.unit}; "
            "a multi-model run writes no partial reports",
            err=True,
        )
        sys.exit(EXIT_CANNOT_RUN)
    audits = []
    for stem, results in zip(stems, every):
        report = _named(options["output"], stem)
        given = options["json_path"]
        json_path = _named(given, stem) if given else report.with_suffix(".json")
        written = publish(results, output_targets(options["formats"], report, json_path), key)
        for line in summary_lines(results):
            click.echo(line, err=True)
        click.echo(f"auditor: wrote {listed(written)}", err=True)
        audits.append((json_path, results))
    comparison = compare_results(audits)
    path = _named(options["output"], "compare")
    write_text(path, render_compare(comparison), "the comparison")
    for line in compare_lines(comparison):
        click.echo(f"auditor: {line}", err=True)
    click.echo(f"auditor: wrote {path}", err=True)
    passed = all(results.verdict.passed for results in every)
    sys.exit(EXIT_OK if passed else EXIT_GATE_FAILED)


def _named(path: Path, stem: str) -> Path:
    """`report.html` -> `report-STEM.html`: one model's file of a multi-model run."""
    return path.with_name(f"{path.stem}-{stem}{path.suffix}")


@contextmanager
def _bounded_memory(config: AuditConfig) -> Iterator[AuditConfig]:
    """Run the local engine within --max-memory (default: a share of the machine's).

    Yields the config with the limit filled in, so the engine can name it. Ray's
    workers are other processes, on other machines: the limit is not theirs.
    """
    from auditor.engine import memory

    if config.engine != "local":
        yield config
        return
    config = replace(config, max_memory=config.max_memory or memory.default_max_memory())
    limit = config.max_memory
    assert limit is not None
    memory.check_limit(limit)

    def exceeded(used: int) -> None:  # the watchdog's thread: end the process itself
        where = f"auditing, {memory.describe_size(used)} resident"
        click.echo(f"auditor: error: {memory.exhausted_message(limit, where)}", err=True)
        sys.stderr.flush()
        os._exit(EXIT_CANNOT_RUN)  # the journal holds every finished batch already

    with memory.bounded(limit, memory.runs_on_cpu(config.model.provider), exceeded):
        yield config


def _issued(results: Any, rules: Any, options: dict[str, Any]) -> Any:
    """Apply the policy's gates to `results`, then give them a report identity."""
    from auditor.report import provenance
    from auditor.verdict import policy

    if rules is not None:
        results = policy.apply(results, rules)
    return provenance.identify(results, options["auditor"], options["organisation"])


def _report_interrupted(stop: Any, partial: Any, to: list[Target], key: Any, unit: str) -> None:
    """Write what an interrupted audit did, marked incomplete; say how to resume; exit 2."""
    done = f"{stop.done} of {stop.total} {unit}"
    if partial is not None:
        written = publish(partial, to, key)
        click.echo(
            f"auditor: interrupted after {done}; wrote a partial report marked "
            f"INCOMPLETE to {listed(written)}",
            err=True,
        )
    else:
        click.echo(f"auditor: interrupted after {done}; no sample finished", err=True)
    command = [arg for arg in ("auditor", *sys.argv[1:]) if arg != "--resume"]
    click.echo(f"auditor: to continue, run: {shlex.join(command)} --resume", err=True)
    sys.exit(EXIT_CANNOT_RUN)


def _with_policy(options: dict[str, Any], rules: Any) -> dict[str, Any]:
    """Return `options` with the policy's [audit] settings; a conflicting flag is an error."""
    from auditor.verdict.policy import merge_settings

    if rules is None:
        return options
    source = click.get_current_context().get_parameter_source
    return merge_settings(options, {name for name in options if _explicit(source(name))}, rules)


def _explicit(source: Any) -> bool:
    return source not in (None, click.core.ParameterSource.DEFAULT)


def _config_from(options: dict[str, Any], journal: Path | None = None) -> AuditConfig:
    """Build the `AuditConfig` of `auditor check` from its parsed options."""
    return from_options(
        AuditConfig, options, command_line=("auditor", *sys.argv[1:]), journal_path=journal
    )
