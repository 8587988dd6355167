"""Shared pieces of the command line: parameter types, shared options, grouped help.

`check` and `inspect` read the model with the same options (`model_options`), and
`check` and `render` identify the report with the same ones (`identity_options`).
`check --help` shows its options in the named groups of `CHECK_GROUPS`, with examples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import click

# cloup, for `check --help`'s option groups: click has no groups, and cloup adds them as a
# click.Command subclass (our parameters, types and usage errors stay click's) whose
# formatter aligns every group's columns; rich-click would restyle all help and pull in rich.
import cloup

from auditor.config import DEFAULT_MAX_MODEL_SIZE
from auditor.model.outputs import OUTPUT_KINDS
from auditor.model.preprocess import (
    CHANNEL_ORDERS,
    INTERPOLATIONS,
    LAYOUTS,
    PAD_ALIGNS,
    RESIZE_MODES,
)

F = TypeVar("F", bound=Callable[..., Any])


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


class Names(click.ParamType):
    """Comma-separated names (class names), each stripped of surrounding spaces."""

    name = "names"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[str, ...] | None:
        if isinstance(value, tuple):
            return value
        return tuple(name.strip() for name in str(value).split(",")) if value else None


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


class ByteSize(click.ParamType):
    """A size in bytes: 4GB, 512MiB or a plain number."""

    name = "size"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        from auditor.errors import ConfigError
        from auditor.model.modelfile import parse_size

        try:
            return parse_size(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


def model_options(command: F) -> F:
    """The options that say how to read the model, shared by `check` and `inspect`."""
    for option in reversed(MODEL_OPTIONS):
        command = option(command)
    return command


MODEL_OPTIONS = [
    click.option("--size", type=Size(), help="Model input size HxW (default: from the model)."),
    click.option(
        "--resize",
        type=click.Choice(RESIZE_MODES),
        help="How an image becomes the input size: stretch it, centre-crop it, or fit it "
        "and pad [default: stretch].",
    ),
    click.option("--crop-ratio", type=Number(), help="For --resize crop [default: 0.875]."),
    click.option("--pad-value", type=Number(), help="For --resize letterbox, 0..255 [default: 0]."),
    click.option(
        "--pad-align",
        type=click.Choice(PAD_ALIGNS),
        help="For --resize letterbox: where the image sits [default: center].",
    ),
    click.option(
        "--interpolation",
        type=click.Choice(tuple(INTERPOLATIONS)),
        help="How the resize resamples [default: linear].",
    ),
    click.option(
        "--channel-order",
        type=click.Choice(CHANNEL_ORDERS),
        help="Channel order the model expects [default: rgb].",
    ),
    click.option(
        "--scale",
        type=Number(),
        help="x = (pixel * scale - mean) / std [default: 1/255; 1 for uint8 inputs].",
    ),
    click.option("--mean", type=NumberList(3), help="Three numbers [default: 0,0,0]."),
    click.option("--std", type=NumberList(3), help="Three numbers [default: 1,1,1]."),
    click.option(
        "--layout",
        type=click.Choice(LAYOUTS),
        help="Input tensor layout [default: from the input shape].",
    ),
    click.option("--input", "input_name", help="Model input to feed when it has several."),
    click.option("--output-name", help="Model output to read when it has several."),
    click.option(
        "--output-kind",
        type=click.Choice(OUTPUT_KINDS),
        default="auto",
        show_default=True,
        help="Read the output as probabilities or logits.",
    ),
    click.option(
        "--provider",
        default="auto",
        show_default=True,
        metavar="auto|cpu|cuda|NAME",
        help="onnxruntime execution provider; a missing one falls back to CPU with a warning.",
    ),
    click.option(
        "--max-model-size",
        type=ByteSize(),
        default=str(DEFAULT_MAX_MODEL_SIZE),
        help="Refuse a model (file plus external data) larger than this, e.g. 4GB [default: 2GiB].",
    ),
]


def face_options(command: F) -> F:
    """`--face-crop` and the face detector's settings, of `check`."""
    for option in reversed(FACE_OPTIONS):
        command = option(command)
    return command


FACE_OPTIONS = [
    click.option(
        "--face-crop",
        metavar="PRESET",
        help="Find the largest face in each perturbed image (or video frame) and feed the "
        "model its crop: ffpp, dfdc, sbi or box:scale=S. An image with no face is skipped "
        "('no face'); a perturbed one with no face counts as wrong and not robust (a video: "
        "scored on the frames with a face).",
    ),
    click.option(
        "--face-detector",
        default="blazeface-full",
        show_default=True,
        metavar="NAME|PATH",
        help="blazeface-full, blazeface-short, or a YuNet .onnx / BlazeFace .tflite file.",
    ),
    click.option(
        "--face-score",
        type=Number(),
        default="0.5",
        show_default=True,
        help="Lowest face detection score kept, in (0, 1).",
    ),
    click.option(
        "--face-min-size",
        type=Number(),
        default="20",
        show_default=True,
        help="Faces whose shorter side is below this many pixels are ignored.",
    ),
]


def suite_names() -> list[str]:
    from auditor.perturbations import SUITES

    return sorted(SUITES)


class NameChoice(click.Choice):
    """A choice among registered names; a wrong one gets the closest names, not all of them."""

    def __init__(self, kind: str, names: Sequence[str]) -> None:
        super().__init__(names)
        self.kind = kind

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            from auditor.perturbations.levels import unknown_name

            names = [str(name) for name in self.choices]
            self.fail(str(unknown_name(self.kind, str(value), names)), param, ctx)


def suite_choice() -> NameChoice:
    """`--suite`'s type: the registered suites, a typo answered with "did you mean"."""
    return NameChoice("suite", suite_names())


def identity_options(command: F) -> F:
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


class GroupedCommand(cloup.Command):
    """A command whose `--help` lists its options in `groups`: (title, long names) pairs.

    The groups show in their order, each option in its group's; an option no group
    names shows under "Other options", beside `--help`.
    """

    def __init__(self, *args: Any, groups: Sequence[Group] = (), **kwargs: Any) -> None:
        # up to 100 columns on a terminal that wide (click stops at 80): fewer wrapped lines
        kwargs.setdefault("formatter_settings", cloup.HelpFormatter.settings(max_width=100))
        super().__init__(*args, **kwargs)
        options = {_long_name(p): p for p in self.params if isinstance(p, click.Option)}
        self.option_groups = [_option_group(group, options) for group in groups]
        self.ungrouped_options = list(options.values())  # what the groups left


Group = tuple[str, tuple[str, ...]]
"""An option group of `GroupedCommand`: its title and its options' long names."""


def _option_group(group: Group, options: dict[str, click.Option]) -> cloup.OptionGroup:
    """The cloup group of `group`, its options taken out of `options`."""
    title, names = group
    option_group = cloup.OptionGroup(title)
    option_group.options = [options.pop(name) for name in names]
    for option in option_group.options:
        option.group = option_group  # type: ignore[attr-defined]  # where cloup looks for it
    return option_group


def _long_name(option: click.Option) -> str:
    return next((o for o in option.opts if o.startswith("--")), option.opts[0])


CHECK_GROUPS: tuple[Group, ...] = (
    ("Data", ("--data", "--limit", "--max-pixels", "--frames", "--fps", "--aggregate")),
    (
        "Perturbations",
        (
            "--perturbation",
            "--suite",
            "--repeats",
            "--seed",
            "--scale-to-input",
            "--queries",
            "--twin-tolerance",
            "--attack-steps",
            "--restarts",
        ),
    ),
    (
        "Metrics and gates",
        (
            "--tolerance",
            "--headline-tolerance",
            "--delta-norm",
            "--fail-under-ra",
            "--fail-under-rr",
            "--policy",
        ),
    ),
    (
        "Model and preprocessing",
        (
            "--classes",
            "--positive-class",
            "--threshold",
            "--output-kind",
            "--input",
            "--output-name",
            "--size",
            "--resize",
            "--crop-ratio",
            "--pad-value",
            "--pad-align",
            "--interpolation",
            "--channel-order",
            "--scale",
            "--mean",
            "--std",
            "--layout",
            "--provider",
            "--max-model-size",
        ),
    ),
    ("Face crop", ("--face-crop", "--face-detector", "--face-score", "--face-min-size")),
    (
        "Engine",
        (
            "--batch-size",
            "--workers",
            "--streams",
            "--threads",
            "--max-memory",
            "--resume",
            "--engine",
            "--ray-address",
        ),
    ),
    ("Output", ("--output", "--json", "--format")),
    ("Identity and signing", ("--auditor", "--organisation", "--sign-key")),
)
"""`check --help`'s option groups, in the order the help and the README show them."""

CHECK_EXAMPLES = """\
Examples:

\b
  # the quick suite; writes auditor-report.html and auditor-report.json
  auditor check model.onnx --data images/

\b
  # jpeg, and blur at three levels of your own; gates from a policy (exit 1
  # if one fails); a JUnit file for CI beside out/report.html
  auditor check model.onnx --data labels.csv --policy policy.toml \\
    -p jpeg_compression -p gaussian_blur:sigma=1,2,4 -o out/report.html \\
    --format html,json,junit
"""
"""`check --help`'s closing examples; a `\\b` line keeps click from rewrapping a paragraph."""
