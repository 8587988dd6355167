"""`auditor inspect`: what a model file is, how `check` will read it, and why.

`inspect_model` returns plain data (the `--json` output); `format_text` renders it for
people. When neither a flag, the metadata nor the graph says whether the output holds
probabilities or logits, one probe batch of plain grey, black and white images is run,
and the report says so.
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from auditor.config import ModelOptions
from auditor.model.adapter import Model, load_model
from auditor.model.preprocess import DynamicSizeError

PROBE_SIZE = (224, 224)  # only to probe a model whose input size is dynamic
# Neutral probe images: no colour, no texture; three levels give the values a span.
PROBE_PIXELS = (128, 0, 255)


def inspect_model(path: Path, options: ModelOptions) -> dict[str, Any]:
    """Load the model as `check` would and describe it, with the flags that reproduce it."""
    size_note = None
    try:
        model = load_model(path, options)
    except DynamicSizeError:
        size_note = f"dynamic; `check` needs --size HxW (probed at {PROBE_SIZE[0]}x{PROBE_SIZE[1]})"
        prep = dataclasses.replace(options.preprocess, size=PROBE_SIZE)
        model = load_model(path, dataclasses.replace(options, preprocess=prep))
    probe = _probe(model)
    info = model.describe()
    sources = info["preprocess_sources"]
    if size_note:
        sources["size"] = size_note
        info["preprocess"]["size"] = None
    return {
        "path": info["path"],
        "size_bytes": info["size_bytes"],
        "sha256": info["sha256"],
        "external_data": info["external_data"],
        "opset": info["opset"],
        "producer": info["producer"],
        "inputs": info["inputs"],
        "outputs": info["outputs"],
        "input_name": info["input_name"],
        "input_dtype": info["input_dtype"],
        "output_name": info["output_name"],
        "batch": info["batch"],
        "layout": info["layout"],
        "preprocess": info["preprocess"],
        "preprocess_sources": sources,
        "output_kind": info["output_kind"],
        "output_kind_evidence": info["output_kind_evidence"],
        "probe": probe,
        "num_outputs": model.num_outputs,
        "classes": info["classes"],
        "classes_source": info["classes_source"],
        "task": info["task"],
        "positive_class": info["positive_class"],
        "runtime": info["runtime"],
        "check_flags": check_flags(model, dynamic_size=size_note is not None),
    }


def _probe(model: Model) -> dict[str, Any]:
    """Run one probe batch of plain images when the output must be seen to be read."""
    declared = model.kind_without_values()
    widths = [o["shape"] for o in model.proto_info["outputs"] if o["name"] == model.output_name]
    static_width = bool(widths) and all(isinstance(d, int) for d in widths[0][1:])
    if declared is not None and static_width:
        model.output_kind, model.output_kind_evidence = declared
        shape = widths[0]
        model.check_width(int(np.prod(shape[1:])) if len(shape) > 1 else 1)
        return {"ran": False, "reason": "the output kind and width are known without running"}
    height, width = model.prep.size
    model.predict([np.full((height, width, 3), v, np.uint8) for v in PROBE_PIXELS])
    reason = "to see the output values" if declared is None else "the output width is dynamic"
    return {
        "ran": True,
        "reason": f"ran one probe batch of plain grey, black and white images {reason}",
    }


def check_flags(model: Model, dynamic_size: bool = False) -> list[str]:
    """The `auditor check` options that reproduce this reading of the model without metadata."""
    prep = model.prep
    flags: list[str] = []
    if len(model.proto_info["inputs"]) > 1:
        flags += ["--input", model.input_name]
    if len(model.proto_info["outputs"]) > 1:
        flags += ["--output-name", model.output_name]
    flags += ["--size", "HxW" if dynamic_size else f"{prep.size[0]}x{prep.size[1]}"]
    flags += ["--layout", prep.layout, "--resize", prep.resize]
    if prep.resize == "crop":
        flags += ["--crop-ratio", _number(prep.crop_ratio)]
    if prep.resize == "letterbox":
        flags += ["--pad-value", _number(prep.pad_value), "--pad-align", prep.pad_align]
    flags += ["--interpolation", prep.interpolation, "--channel-order", prep.channel_order]
    flags += ["--scale", _number(prep.scale)]
    flags += ["--mean", ",".join(map(_number, prep.mean))]
    flags += ["--std", ",".join(map(_number, prep.std))]
    if model.output_kind:
        flags += ["--output-kind", model.output_kind]
    if model.classes and model.classes_source != "indices":
        flags += ["--classes", ",".join(model.classes)]
    return flags


def _number(value: float) -> str:
    """Shortest exact form; 1/255 is written as such since that is how people give it."""
    if value != 0 and abs(1 / value - round(1 / value)) < 1e-9 and abs(value) < 1:
        return f"1/{round(1 / value)}"
    return repr(float(value)).removesuffix(".0")


def format_text(report: dict[str, Any]) -> str:
    """The inspection report for people: one fact per line, grouped."""

    def io(items: list[dict[str, Any]], chosen: str) -> list[str]:
        return [
            f"  {'*' if i['name'] == chosen else ' '} {i['name']}  {i['dtype']}  {i['shape']}"
            for i in items
        ]

    prep, sources = report["preprocess"], report["preprocess_sources"]
    runtime = report["runtime"] or {}
    lines = [
        f"model      {report['path']}",
        f"size       {report['size_bytes']} bytes",
        f"sha256     {report['sha256']}",
        *[
            f"external   {e['path']}  {e['size']} bytes  sha256 {e['sha256']}"
            for e in report["external_data"]
        ],
        f"opset      {report['opset']}",
        f"producer   {report['producer'] or '(not recorded)'}",
        "inputs (* = fed with the image)",
        *io(report["inputs"], report["input_name"]),
        "outputs (* = read)",
        *io(report["outputs"], report["output_name"]),
        f"input      {report['input_dtype']}, layout {report['layout']} "
        f"(from {sources.get('layout')}), batch {report['batch']}",
        "preprocessing (value, from)",
        *[f"  {key:<14}{_shown(key, prep[key])}  ({sources.get(key, '-')})" for key in prep],
        f"output     {report['output_kind']}: {report['output_kind_evidence']}",
        f"probe      {report['probe']['reason']}",
        f"classes    {', '.join(report['classes'] or [])} (from {report['classes_source']}); "
        f"task {report['task']}"
        + (f", positive class {report['positive_class']}" if report["positive_class"] else ""),
        f"provider   {runtime.get('provider')} (requested {runtime.get('requested')})"
        + (f"; fallback: {runtime['fallback']}" if runtime.get("fallback") else ""),
        f"session    {_options(runtime.get('session_options') or {})}",
        "check flags that reproduce this reading:",
        "  " + shlex.join(report["check_flags"]),
    ]
    return "\n".join(lines)


def _shown(key: str, value: Any) -> str:
    if key == "size":
        return f"{value[0]}x{value[1]}" if value else "dynamic"
    if isinstance(value, list):
        return ",".join(_shown("", v) for v in value)
    if isinstance(value, float):
        return _number(value)
    return str(value)


def _options(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())
