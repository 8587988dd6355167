"""What a new user meets: grouped `check --help` with examples, "did you mean" for a
mistyped name, and an `auditor perturbations` listing that fits the terminal."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from auditor.adversarial.registry import SEARCHES
from auditor.cli import check, main
from auditor.cli.listing import _wrap_levels
from auditor.cli.options import CHECK_EXAMPLES, CHECK_GROUPS
from auditor.errors import EXIT_CANNOT_RUN, ConfigError
from auditor.perturbations import REGISTRY
from auditor.perturbations.levels import did_you_mean, unknown_name
from auditor.verdict import policy

TITLES = [title for title, _ in CHECK_GROUPS]


def run(*args: str, columns: int = 80):
    return CliRunner().invoke(main, list(args), prog_name="auditor", env={"COLUMNS": str(columns)})


def check_options() -> list[click.Option]:
    return [p for p in check.params if isinstance(p, click.Option)]


def test_check_help_shows_the_named_groups_in_order_then_two_examples():
    result = run("check", "--help")
    assert result.exit_code == 0
    headings = [line for line in result.stdout.splitlines() if re.fullmatch(r"\S.*:", line)]
    assert headings == [f"{t}:" for t in TITLES] + ["Other options:", "Examples:"]
    assert TITLES == [
        "Data",
        "Perturbations",
        "Metrics and gates",
        "Model and preprocessing",
        "Face crop",
        "Engine",
        "Output",
        "Identity and signing",
    ]
    examples = result.stdout.split("Examples:")[1]
    commands = [line.strip() for line in examples.splitlines() if "auditor check" in line]
    assert commands[0] == "auditor check model.onnx --data images/"
    assert len(commands) == 2 and commands[1].endswith("\\")  # continued, copyable
    assert all(len(line) <= 80 for line in result.stdout.splitlines())


def test_every_check_option_is_in_exactly_one_named_group():
    named = [name for _, names in CHECK_GROUPS for name in names]
    assert len(named) == len(set(named))
    longs = {next(o for o in p.opts if o.startswith("--")) for p in check_options()}
    assert set(named) == longs
    assert check.ungrouped_options == []  # so only --help is under "Other options"


def test_every_check_option_has_a_description_besides_its_default():
    bare = [
        p.name
        for p in check_options()
        if not re.sub(r"\[default: [^\]]*\]", "", p.help or "").strip(" .")
    ]
    assert not bare, f"options without a description: {bare}"


def test_a_mistyped_perturbation_gets_the_closest_name(binary_model, data_dir, tmp_path):
    result = run(
        "check", str(binary_model), "--data", str(data_dir), "-o", str(tmp_path / "r.html"),
        "-p", "gausian_noise",
    )  # fmt: skip
    assert result.exit_code == EXIT_CANNOT_RUN
    assert result.stderr == (
        "auditor: error: unknown perturbation 'gausian_noise'; did you mean gaussian_noise?\n"
    )


@pytest.mark.parametrize(
    "args, says",
    [
        (
            ["check", "m.onnx", "--data", ".", "--suite", "quik"],
            "auditor: error: Invalid value for '--suite': unknown suite 'quik'; "
            "did you mean quick? (see 'auditor check --help')\n",
        ),
        (
            ["perturbations", "--suite", "deepfak"],
            "auditor: error: Invalid value for '--suite': unknown suite 'deepfak'; "
            "did you mean deepfake? (see 'auditor perturbations --help')\n",
        ),
        (
            ["perturbations", "--suite", "fast"],
            "auditor: error: Invalid value for '--suite': unknown suite 'fast'; "
            "known: all, deepfake, imagenet-c, imagenet-c-all, quick "
            "(see 'auditor perturbations --help')\n",
        ),
    ],
)
def test_a_mistyped_suite_gets_one_line_with_the_closest_name(args, says):
    result = run(*args)
    assert result.exit_code == EXIT_CANNOT_RUN and result.stderr == says


def test_a_mistyped_policy_metric_gets_the_closest_name(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("[[gate]]\nmetric = 'flip'\nmax = 0.2\n")
    with pytest.raises(ConfigError) as info:
        policy.load_policy(path)
    assert (
        str(info.value) == f"policy {path}, gate 1: unknown metric 'flip'; did you mean flip_rate?"
    )


@pytest.mark.parametrize(
    "name, says",
    [
        ("gausian_noise", "did you mean gaussian_noise?"),  # linf_noise is far behind
        ("jpeg", "did you mean jpeg_compression or jpeg_double?"),  # named in full
        ("contrst", "did you mean contrast?"),
        ("xyz", ""),
    ],
)
def test_did_you_mean_names_only_the_close_ones(name, says):
    assert did_you_mean(name, sorted(REGISTRY)) == says


def test_with_nothing_close_the_error_lists_the_known_names():
    assert str(unknown_name("suite", "fast", ["all", "quick"])) == (
        "unknown suite 'fast'; known: all, quick"
    )
    assert (
        str(unknown_name("x", "fast", ["quick"], "see the list"))
        == "unknown x 'fast'; see the list"
    )


def test_the_listing_fits_the_terminal_width():
    narrow, wide = run("perturbations", columns=80), run("perturbations", columns=120)
    assert narrow.exit_code == wide.exit_code == 0
    widest = [max(len(line) for line in r.stdout.splitlines()) for r in (narrow, wide)]
    assert widest[0] <= 79 and 80 < widest[1] <= 119
    assert len(wide.stdout.splitlines()) < len(narrow.stdout.splitlines())
    for result in (narrow, wide):
        perturbations, searches = result.stdout.split("\nsearches (")
        assert "square_linf" in searches and "square_linf" not in perturbations
        assert "gaussian_noise" in perturbations and "gaussian_noise" not in searches


def test_the_listing_shows_every_level_spec_whole():
    """A wrapped spec, its lines joined, is the `-p` value that `--tsv` gives."""
    text = run("perturbations", columns=80).stdout
    block = text[text.index("\nsnow ") :].split("\nspatter ")[0]
    levels = block[block.index("levels ") + len("levels ") :]
    spec = "".join(line.strip() for line in levels.splitlines())
    tsv = {
        row.split("\t")[0]: row.split("\t")[2]
        for row in run("perturbations", "--tsv").stdout.splitlines()
    }
    assert spec == tsv["snow"] and len(spec) > 80


def test_tsv_keeps_one_line_of_four_columns_per_entry():
    lines = run("perturbations", "--tsv", columns=40).stdout.splitlines()
    assert lines[0] == "name\tfamily\tlevels\tdescription"
    assert len(lines) == 1 + len(REGISTRY) + len(SEARCHES)  # the searches too
    assert all(line.count("\t") == 3 for line in lines)


def test_level_specs_break_between_parameters_before_between_values():
    spec = "radius=3,4,6,8,10:alias_sigma=0.1,0.5,0.5,0.5,0.5"
    assert _wrap_levels(spec, 40) == ["radius=3,4,6,8,10:", "alias_sigma=0.1,0.5,0.5,0.5,0.5"]
    assert _wrap_levels(spec, 60) == [spec]
    long = "mean=0.1,0.2,0.55,0.55,0.55"
    assert _wrap_levels(long, 12) == ["mean=0.1,", "0.2,0.55,", "0.55,0.55"]


def test_the_interrupted_message_names_its_unit(capsys):
    from types import SimpleNamespace

    from auditor.cli.check import _report_interrupted

    with pytest.raises(SystemExit) as stopped:
        _report_interrupted(SimpleNamespace(done=10, total=40), None, [], None, "videos x levels")
    assert stopped.value.code == EXIT_CANNOT_RUN
    first = capsys.readouterr().err.splitlines()[0]
    assert first == "auditor: interrupted after 10 of 40 videos x levels; no sample finished"


def test_the_readme_shows_the_groups_in_order_and_the_examples():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    options = readme.split("### Options of `auditor check`")[1].split("\n### ")[0]
    assert re.findall(r"^#### (.+)$", options, re.M) == TITLES
    for title, names in CHECK_GROUPS:  # each option in its group's table
        table = options.split(f"#### {title}\n")[1].split("\n#### ")[0]
        assert all(f"`{name}" in table or f", {name}" in table for name in names), title
    shown = [line.strip() for line in CHECK_EXAMPLES.splitlines() if line.startswith("  ")]
    assert shown and all(line in readme for line in shown)
