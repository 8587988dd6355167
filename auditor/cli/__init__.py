"""The command line: options -> `AuditConfig` -> engine -> files -> exit code.

Domain errors (`AuditorError`) become one line on stderr and exit 2 here, at exactly
one boundary; the core never imports click.
"""

from __future__ import annotations

import functools
import json
import shlex
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from auditor.cli.options import (
    F,
    Number,
    NumberList,
    identity_options,
    model_options,
    suite_names,
)
from auditor.config import (
    DEFAULT_TOLERANCES,
    DELTA_NORMS,
    ENGINES,
    AuditConfig,
    ModelOptions,
    VideoOptions,
)
from auditor.config import PreprocessOptions as Prep
from auditor.engine.clips import AGGREGATES
from auditor.errors import (
    EXIT_CANNOT_RUN,
    EXIT_GATE_FAILED,
    EXIT_OK,
    AuditorError,
    ConfigError,
    OutputError,
)
from auditor.version import __version__

EXIT_ALTERED = EXIT_GATE_FAILED  # `verify`: the report was changed since it was written


def _reports_errors(command: F) -> F:
    """Turn `AuditorError` into one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AuditorError as exc:
            click.echo(f"auditor: error: {exc}", err=True)
            sys.exit(EXIT_CANNOT_RUN)
        except KeyboardInterrupt:
            click.echo("auditor: interrupted", err=True)
            sys.exit(EXIT_CANNOT_RUN)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="auditor")
def main() -> None:
    """Audit how robust an ONNX image classifier is: robust accuracy (RA) and robust
    ratio (RR) per perturbation and level, in one self-contained HTML report."""
    _show_warnings_as_lines()


def _show_warnings_as_lines() -> None:
    """Show the core's warnings (a provider or codec fallback) as one `auditor: warning:` line."""

    def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        click.echo(f"auditor: warning: {message}", err=True)

    from auditor.model.providers import ProviderWarning
    from auditor.perturbations.video_codecs import CodecWarning

    warnings.showwarning = show
    warnings.simplefilter("always", ProviderWarning)
    warnings.simplefilter("always", CodecWarning)  # each is warned once per process


@main.command()
@click.argument("model", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder with one sub-folder per class, a CSV/JSONL manifest (path,label), "
    "or a folder of unlabelled images.",
)
@click.option("--classes", help="Class names in the model's output order, comma-separated.")
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
    type=click.Choice(suite_names()),
    help="Named set of perturbations.",
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
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--queries",
    type=int,
    default=1000,
    show_default=True,
    help="Model queries per sample, level and objective of an adversarial search (square_linf).",
)
@click.option("--limit", type=int, help="Audit at most N samples (stratified by class).")
@click.option(
    "--batch-size",
    type=int,
    default=0,
    show_default=True,
    help="Images per model call (0: 8 on CPU, 32 on a GPU); results do not depend on it.",
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
@_reports_errors
def check(**options: Any) -> None:
    """Audit MODEL on the images under --data; write the HTML report and results JSON."""
    from auditor.cli.progress import ProgressBar
    from auditor.engine.run import AuditInterrupted, run_audit
    from auditor.report.html import summary_line
    from auditor.verdict import policy

    rules = policy.load_policy(options["policy_path"]) if options["policy_path"] else None
    key = _signing_key(options["sign_key"])  # before the audit: a bad key fails fast
    json_path = options["json_path"] or options["output"].with_suffix(".json")
    journal = json_path.with_name(json_path.name + ".journal")
    config = _config_from(_with_policy(options, rules), journal)
    if config.ray_address and config.engine != "ray":
        raise ConfigError("--ray-address needs --engine ray")
    if config.engine == "ray":
        from auditor.engine.distributed import run_audit_ray as run_audit
    try:
        results = _issued(run_audit(config, ProgressBar("auditing")), rules, options)
    except AuditInterrupted as stop:
        partial = _issued(stop.results, rules, options) if stop.results is not None else None
        _report_interrupted(stop, partial, json_path, options["output"], key)
    _write_outputs(results, json_path, options["output"], key)
    click.echo(summary_line(results), err=True)
    click.echo(f"auditor: wrote {options['output']} and {json_path}", err=True)
    sys.exit(EXIT_OK if results.verdict.passed else EXIT_GATE_FAILED)


def _issued(results: Any, rules: Any, options: dict[str, Any]) -> Any:
    """Apply the policy's gates to `results`, then give them a report identity."""
    from auditor.report import provenance
    from auditor.verdict import policy

    if rules is not None:
        results = policy.apply(results, rules)
    return provenance.identify(results, options["auditor"], options["organisation"])


def _report_interrupted(
    stop: Any, partial: Any, json_path: Path, html_path: Path, key: Any
) -> None:
    """Write what an interrupted audit did, marked incomplete; say how to resume; exit 2."""
    done = f"{stop.done} of {stop.total} work units"
    if partial is not None:
        _write_outputs(partial, json_path, html_path, key)
        click.echo(
            f"auditor: interrupted after {done}; wrote a partial report marked "
            f"INCOMPLETE to {html_path} and {json_path}",
            err=True,
        )
    else:
        click.echo(f"auditor: interrupted after {done}; no sample finished", err=True)
    command = [arg for arg in ("auditor", *sys.argv[1:]) if arg != "--resume"]
    click.echo(f"auditor: to continue, run: {shlex.join(command)} --resume", err=True)
    sys.exit(EXIT_CANNOT_RUN)


def _signing_key(path: Path | None) -> Any:
    from auditor.report.integrity import load_signing_key

    return load_signing_key(path) if path is not None else None


def _with_policy(options: dict[str, Any], rules: Any) -> dict[str, Any]:
    """Return `options` with the policy's [audit] settings; a conflicting flag is an error."""
    from auditor.verdict.policy import merge_settings

    if rules is None:
        return options
    source = click.get_current_context().get_parameter_source
    names = ("suite", "tolerances", "seed", "headline_tolerance")
    return merge_settings(options, {name for name in names if _explicit(source(name))}, rules)


def _explicit(source: Any) -> bool:
    return source not in (None, click.core.ParameterSource.DEFAULT)


def _write_outputs(results: Any, json_path: Path, html_path: Path, key: Any = None) -> None:
    """Write the JSON first, so the measurements survive a report that cannot be written."""
    from auditor.results import to_json, write_atomic

    text = to_json(results)
    try:
        write_atomic(json_path, text)
    except OSError as exc:
        raise OutputError(f"cannot write the results to {json_path}: {exc.strerror}") from exc
    try:
        _write_html(text, html_path, key)
    except OutputError as exc:
        raise OutputError(f"{exc}; the results were saved to {json_path}") from exc


def _write_html(json_text: str, html_path: Path, key: Any) -> None:
    """Render the report embedding `json_text`, signed with `key` when one is given."""
    from auditor.report.html import render_html
    from auditor.report.integrity import digest, sign
    from auditor.results import from_json, write_atomic

    signature = sign(digest(json_text), key) if key is not None else None
    # rendered from the JSON text itself, exactly as `verify` will re-render it
    html = render_html(from_json(json_text), signature, json_text)
    try:
        write_atomic(html_path, html)
    except OSError as exc:
        raise OutputError(f"cannot write the report to {html_path}: {exc.strerror}") from exc


def _model_options_from(options: dict[str, Any]) -> ModelOptions:
    """Build the `ModelOptions` shared by `check` and `inspect` from their parsed options."""
    prep = Prep(**{key: options[key] for key in Prep.__dataclass_fields__})
    classes = options["classes"]
    return ModelOptions(
        preprocess=prep,
        classes=tuple(c.strip() for c in classes.split(",")) if classes else None,
        positive_class=options["positive_class"],
        output_kind=options["output_kind"],
        input_name=options["input_name"],
        output_name=options["output_name"],
        provider=options["provider"],
        max_model_size=options["max_model_size"],
    )


def _config_from(options: dict[str, Any], journal: Path | None = None) -> AuditConfig:
    """Build the `AuditConfig` of `auditor check` from its parsed options."""
    return AuditConfig(
        model_path=options["model"],
        data_path=options["data_path"],
        model=replace(_model_options_from(options), threads=options["threads"]),
        perturbations=options["perturbations"],
        suite=options["suite"],
        tolerances=options["tolerances"],
        headline_tolerance=options["headline_tolerance"],
        delta_norm=options["delta_norm"],
        repeats=options["repeats"],
        seed=options["seed"],
        limit=options["limit"],
        threshold=options["threshold"],
        batch_size=options["batch_size"],
        workers=options["workers"],
        streams=options["streams"],
        max_pixels=options["max_pixels"],
        journal_path=journal,
        resume=options["resume"],
        scale_to_input=options["scale_to_input"],
        fail_under_ra=options["fail_under_ra"],
        fail_under_rr=options["fail_under_rr"],
        command_line=("auditor", *sys.argv[1:]),
        engine=options["engine"],
        ray_address=options["ray_address"],
        video=VideoOptions(options["frames"], options["fps"], options["aggregate"]),
        queries=options["queries"],
    )


@main.command("inspect")
@click.argument("model", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--classes", help="Class names in the model's output order, comma-separated.")
@click.option("--positive-class", help="Positive class of a binary model.")
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@_reports_errors
def inspect_command(model: Path, as_json: bool, **options: Any) -> None:
    """Show MODEL's inputs, outputs, preprocessing, output kind and the check flags."""
    from auditor.model.inspection import format_text, inspect_model

    report = inspect_model(model, _model_options_from(options))
    click.echo(json.dumps(report, indent=2) if as_json else format_text(report))


@main.command("perturbations")
@click.option("--suite", type=click.Choice(suite_names()), help="Only this suite's members.")
@click.option("--tsv", is_flag=True, help="Tab-separated columns, for scripts.")
def list_perturbations(suite: str | None, tsv: bool) -> None:
    """List perturbations: name, family, levels 1..5 (as -p values) and description."""
    from auditor.perturbations import REGISTRY, SUITES
    from auditor.perturbations.registry import level_spec

    rows = [("name", "family", "levels", "description")]
    for name in SUITES[suite] if suite else sorted(REGISTRY):
        p = REGISTRY[name]
        facts = p.implementation()
        used = f" [codec: {facts['codec']}, {facts['container']}]" if "container" in facts else ""
        rows.append((p.name, p.family, level_spec(p), p.description + used))
    if tsv:
        click.echo("\n".join("\t".join(row) for row in rows))
        return
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])


@main.command()
@click.argument("results_path", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="HTML report to write.",
)
@identity_options
@_reports_errors
def render(results_path: Path, output: Path, **options: Any) -> None:
    """Re-render the HTML report of saved results (no model needed), as a new issue."""
    from auditor.report import provenance
    from auditor.results import to_json

    key = _signing_key(options["sign_key"])
    results = provenance.identify(
        _load_results(results_path), options["auditor"], options["organisation"]
    )
    _write_html(to_json(results), output, key)
    click.echo(f"auditor: wrote {output}", err=True)


def _load_results(path: Path) -> Any:
    from auditor.results import load_json

    try:
        return load_json(path)
    except OSError as exc:
        raise ConfigError(f"cannot read the results {path}: {exc.strerror}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(str(exc).splitlines()[0]) from exc


@main.command()
@click.argument(
    "results_paths", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False)
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="HTML comparison to write.",
)
@_reports_errors
def compare(results_paths: tuple[Path, ...], output: Path) -> None:
    """Compare audits of several models on the same data and configuration."""
    from auditor.report.compare import compare_results, render_compare
    from auditor.results import write_atomic

    audits = [(path, _load_results(path)) for path in results_paths]
    comparison = compare_results(audits)
    try:
        write_atomic(output, render_compare(comparison))
    except OSError as exc:
        raise OutputError(f"cannot write the comparison to {output}: {exc.strerror}") from exc
    click.echo(f"auditor: wrote {output}", err=True)


@main.command()
@click.argument("report_path", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--public-key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Ed25519 public key (PEM): also check the report's signature.",
)
@_reports_errors
def verify(report_path: Path, public_key: Path | None) -> None:
    """Check an archived report: exit 0 intact, 1 altered, 2 unreadable."""
    from auditor.report.verify import verify_report

    outcome = verify_report(report_path, public_key)
    for note in outcome.notes:
        click.echo(f"auditor: {note}", err=True)
    for problem in outcome.problems:
        click.echo(f"auditor: ALTERED: {problem}", err=True)
    if outcome.intact:
        click.echo(f"auditor: {report_path}: intact", err=True)
    sys.exit(EXIT_OK if outcome.intact else EXIT_ALTERED)
