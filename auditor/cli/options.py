"""Shared pieces of the command line: parameter types and option groups.

`check` and `inspect` read the model with the same options (`model_options`), and
`check` and `render` identify the report with the same ones (`identity_options`).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import click

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
    click.option("--resize", type=click.Choice(RESIZE_MODES), help="[default: stretch]"),
    click.option("--crop-ratio", type=Number(), help="For --resize crop [default: 0.875]."),
    click.option("--pad-value", type=Number(), help="For --resize letterbox, 0..255 [default: 0]."),
    click.option("--pad-align", type=click.Choice(PAD_ALIGNS), help="[default: center]"),
    click.option(
        "--interpolation", type=click.Choice(tuple(INTERPOLATIONS)), help="[default: linear]"
    ),
    click.option("--channel-order", type=click.Choice(CHANNEL_ORDERS), help="[default: rgb]"),
    click.option(
        "--scale",
        type=Number(),
        help="x = (pixel * scale - mean) / std [default: 1/255; 1 for uint8 inputs].",
    ),
    click.option("--mean", type=NumberList(3), help="Three numbers [default: 0,0,0]."),
    click.option("--std", type=NumberList(3), help="Three numbers [default: 1,1,1]."),
    click.option("--layout", type=click.Choice(LAYOUTS), help="[default: from the input shape]"),
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
        help="Find the largest face in each perturbed image and feed the model its crop: "
        "ffpp, dfdc, sbi or box:scale=S. An image with no face is skipped ('no face'); "
        "a perturbed one with no face counts as wrong and not robust.",
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
