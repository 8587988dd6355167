"""The command line: options -> `AuditConfig` -> engine -> files -> exit code.

Domain errors (`AuditorError`) become one line on stderr and exit 2 here, at exactly
one boundary; the core never imports click.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import click

from auditor import __version__
from auditor.config import DEFAULT_TOLERANCES, DELTA_NORMS, AuditConfig, ModelOptions
from auditor.config import PreprocessOptions as Prep
from auditor.errors import (
    EXIT_CANNOT_RUN,
    EXIT_GATE_FAILED,
    EXIT_OK,
    AuditorError,
    ConfigError,
    OutputError,
)
from auditor.outputs import OUTPUT_KINDS
from auditor.preprocess import CHANNEL_ORDERS, INTERPOLATIONS, LAYOUTS, PAD_ALIGNS, RESIZE_MODES

F = TypeVar("F", bound=Callable[..., Any])
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


class NumberList(click.ParamType):
    """Comma-separated numbers (fractions such as 1/255 allowed), optionally of fixed length."""

    name = "numbers"

    def __init__(self, length: int | None = None) -> None:
        self.length = length

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[float, ...]:
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(float(Fraction(v.strip())) for v in str(value).split(","))
        except (ValueError, ZeroDivisionError):
            self.fail(f"expected comma-separated numbers, got {value!r}", param, ctx)
        if self.length is not None and len(numbers) != self.length:
            self.fail(f"expected {self.length} numbers, got {value!r}", param, ctx)
        return numbers


class Number(NumberList):
    """One number; fractions such as 1/255 allowed."""

    name = "number"

    def __init__(self) -> None:
        super().__init__(1)

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        return value if isinstance(value, float) else super().convert(value, param, ctx)[0]


class Size(click.ParamType):
    """An image size written HxW (or one number for a square)."""

    name = "HxW"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        parts = str(value).lower().split("x")
        if len(parts) == 1:
            parts = parts * 2
        if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
            self.fail(f"expected HxW such as 224x224, got {value!r}", param, ctx)
        return int(parts[0]), int(parts[1])


def _suite_names() -> list[str]:
    from auditor.perturbations import SUITES

    return sorted(SUITES)


def _identity_options(command: F) -> F:
    """Add `--auditor`, `--organisation` and `--sign-key`, shared by check and render."""
    for decorator in reversed(
        [
            click.option("--auditor", help="Responsible person, shown in the signature block."),
            click.option("--organisation", help="Issuing organisation, shown in the report."),
            click.option(
                "--sign-key",
                type=click.Path(path_type=Path, dir_okay=False),
                help="Ed25519 private key (PEM) that signs the results digest.",
            ),
        ]
    ):
        command = decorator(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="auditor")
def main() -> None:
    """Audit how robust an ONNX image classifier is: robust accuracy (RA) and robust
    ratio (RR) per perturbation and level, in one self-contained HTML report."""


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
    type=click.Choice(_suite_names()),
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
@click.option("--limit", type=int, help="Audit at most N samples (stratified by class).")
@click.option(
    "--batch-size",
    type=int,
    default=32,
    show_default=True,
    help="Images per model call; results do not depend on it.",
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
@click.option("--size", type=Size(), help="Model input size HxW (default: from the model).")
@click.option("--resize", type=click.Choice(RESIZE_MODES), help="[default: stretch]")
@click.option("--crop-ratio", type=Number(), help="For --resize crop [default: 0.875].")
@click.option("--pad-value", type=Number(), help="For --resize letterbox, 0..255 [default: 0].")
@click.option("--pad-align", type=click.Choice(PAD_ALIGNS), help="[default: center]")
@click.option("--interpolation", type=click.Choice(tuple(INTERPOLATIONS)), help="[default: linear]")
@click.option("--channel-order", type=click.Choice(CHANNEL_ORDERS), help="[default: rgb]")
@click.option("--scale", type=Number(), help="x = (pixel * scale - mean) / std [default: 1/255].")
@click.option("--mean", type=NumberList(3), help="Three numbers [default: 0,0,0].")
@click.option("--std", type=NumberList(3), help="Three numbers [default: 1,1,1].")
@click.option("--layout", type=click.Choice(LAYOUTS), help="[default: from the input shape]")
@click.option("--input", "input_name", help="Model input to feed when it has several.")
@click.option("--output-name", help="Model output to read when it has several.")
@click.option(
    "--output-kind",
    type=click.Choice(OUTPUT_KINDS),
    default="auto",
    show_default=True,
    help="Read the output as probabilities or logits.",
)
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
    "--policy",
    "policy_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML policy: [audit] suite/tolerance/seed and [[gate]] rules decided on intervals.",
)
@_identity_options
@_reports_errors
def check(**options: Any) -> None:
    """Audit MODEL on the images under --data; write the HTML report and results JSON."""
    from auditor import policy, provenance
    from auditor.engine import run_audit
    from auditor.progress import ProgressBar
    from auditor.report import summary_line

    rules = policy.load_policy(options["policy_path"]) if options["policy_path"] else None
    key = _signing_key(options["sign_key"])  # before the audit: a bad key fails fast
    config = _config_from(_with_policy(options, rules))
    results = run_audit(config, ProgressBar("auditing"))
    if rules is not None:
        results = policy.apply(results, rules)
    results = provenance.identify(results, options["auditor"], options["organisation"])
    json_path = options["json_path"] or options["output"].with_suffix(".json")
    _write_outputs(results, json_path, options["output"], key)
    click.echo(summary_line(results), err=True)
    click.echo(f"auditor: wrote {options['output']} and {json_path}", err=True)
    sys.exit(EXIT_OK if results.verdict.passed else EXIT_GATE_FAILED)


def _signing_key(path: Path | None) -> Any:
    from auditor.integrity import load_signing_key

    return load_signing_key(path) if path is not None else None


def _with_policy(options: dict[str, Any], rules: Any) -> dict[str, Any]:
    """Return `options` with the policy's [audit] settings; a conflicting flag is an error."""
    from auditor.policy import merge_settings

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
    from auditor.integrity import digest, sign
    from auditor.report import render_html
    from auditor.results import from_json, write_atomic

    signature = sign(digest(json_text), key) if key is not None else None
    # rendered from the JSON text itself, exactly as `verify` will re-render it
    html = render_html(from_json(json_text), signature, json_text)
    try:
        write_atomic(html_path, html)
    except OSError as exc:
        raise OutputError(f"cannot write the report to {html_path}: {exc.strerror}") from exc


def _config_from(options: dict[str, Any]) -> AuditConfig:
    """Build the `AuditConfig` of `auditor check` from its parsed options."""
    prep = Prep(**{key: options[key] for key in Prep.__dataclass_fields__})
    classes = options["classes"]
    model = ModelOptions(
        preprocess=prep,
        classes=tuple(c.strip() for c in classes.split(",")) if classes else None,
        positive_class=options["positive_class"],
        output_kind=options["output_kind"],
        input_name=options["input_name"],
        output_name=options["output_name"],
    )
    return AuditConfig(
        model_path=options["model"],
        data_path=options["data_path"],
        model=model,
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
        scale_to_input=options["scale_to_input"],
        fail_under_ra=options["fail_under_ra"],
        fail_under_rr=options["fail_under_rr"],
        command_line=("auditor", *sys.argv[1:]),
    )


@main.command("perturbations")
@click.option("--suite", type=click.Choice(_suite_names()), help="Only this suite's members.")
def list_perturbations(suite: str | None) -> None:
    """List perturbations: name, family, description and the parameters of each level."""
    from auditor.perturbations import REGISTRY, SUITES

    names = SUITES[suite] if suite else sorted(REGISTRY)
    for name in names:
        p = REGISTRY[name]
        levels = "; ".join(", ".join(f"{k}={v:.4g}" for k, v in lv.items()) for lv in p.levels)
        click.echo(f"{p.name}\t{p.family}\t{p.description}\t{levels}")


@main.command()
@click.argument("results_path", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="HTML report to write.",
)
@_identity_options
@_reports_errors
def render(results_path: Path, output: Path, **options: Any) -> None:
    """Re-render the HTML report of saved results (no model needed), as a new issue."""
    from auditor import provenance
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
    from auditor.compare import compare_results, render_compare
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
    from auditor.integrity import verify_report

    outcome = verify_report(report_path, public_key)
    for note in outcome.notes:
        click.echo(f"auditor: {note}", err=True)
    for problem in outcome.problems:
        click.echo(f"auditor: ALTERED: {problem}", err=True)
    if outcome.intact:
        click.echo(f"auditor: {report_path}: intact", err=True)
    sys.exit(EXIT_OK if outcome.intact else EXIT_ALTERED)
