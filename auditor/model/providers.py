"""onnxruntime: importing it, choosing the execution provider, opening a session.

`auto` takes CUDA when onnxruntime offers it, else the CPU. A provider asked for by name
that is missing falls back to the CPU with a `ProviderWarning` (shown on stderr by the
CLI) and the reason is recorded, so a report never claims a GPU run that did not happen.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from auditor.errors import ConfigError, ModelError, RuntimeMissingError

RUNTIME_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
ALIASES = {"cpu": CPU, "cuda": CUDA, "tensorrt": "TensorrtExecutionProvider"}
# Operator domains onnxruntime implements; a node from any other domain needs a
# custom-op library that `auditor` never loads from an untrusted model.
KNOWN_DOMAINS = {
    "",
    "ai.onnx",
    "ai.onnx.ml",
    "ai.onnx.preview.training",
    "com.microsoft",
    "com.microsoft.nchwc",
    "com.microsoft.experimental",
    "com.ms.internal.nhwc",
}
_RUNTIME_STATUS = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_RUNTIME_LOCATION = re.compile(r"\S+\.(?:cc|cpp|h):\d+ (?:[\w:~<>]+\(.*?\) )?")


class ProviderWarning(UserWarning):
    """A requested execution provider is missing; the model runs on another one."""


@dataclass
class Runtime:
    """Which provider was asked for, which ran, and the session options used."""

    provider: str
    requested: str
    available: list[str]
    fallback: str | None
    session_options: dict[str, Any] = field(default_factory=dict)
    provider_options: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The `runtime` entry of the model section of the results."""
        return {
            "provider": self.provider,
            "requested": self.requested,
            "available": list(self.available),
            "fallback": self.fallback,
            "session_options": dict(self.session_options),
            # e.g. CUDA's use_tf32 or cudnn_conv_algo_search: they move probabilities
            "provider_options": dict(self.provider_options),
        }


QUIET = 4
"""onnxruntime's log severity for `auditor`: fatal only (0 verbose .. 4 fatal)."""


def import_runtime() -> Any:
    """Import onnxruntime, refusing a missing runtime or two runtimes side by side."""
    installed = installed_runtimes()
    if len(installed) > 1:
        raise RuntimeMissingError(
            f"both {' and '.join(installed)} are installed and overwrite each other's files: "
            "uninstall both, then install one extra ('auditor[cpu]' or 'auditor[gpu]')"
        )
    try:
        import onnxruntime as ort

        ort.set_default_logger_severity(QUIET)  # also the environment's own log lines
    except ImportError:
        raise RuntimeMissingError(
            "onnxruntime is not installed: install auditor with the 'cpu' extra "
            "(pip install 'auditor[cpu]') or the 'gpu' extra for CUDA"
        ) from None
    return ort


def installed_runtimes() -> list[str]:
    """Names of the onnxruntime distributions installed (at most one is sane)."""
    found = []
    for dist in RUNTIME_DISTRIBUTIONS:
        try:
            metadata.version(dist)
            found.append(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def choose_provider(
    requested: str, available: list[str], known: list[str]
) -> tuple[str, str | None]:
    """Return the provider to use for `requested` and the reason for a fallback, if any."""
    wanted = requested.strip()
    if wanted.lower() == "auto":
        return (CUDA if CUDA in available else CPU), None
    name = _canonical(wanted, known)
    if name in available:
        return name, None
    return CPU, (
        f"execution provider {name} is not available in this onnxruntime "
        f"(available: {', '.join(available)}); running on {CPU}"
    )


def _canonical(wanted: str, known: list[str]) -> str:
    """`cuda` -> CUDAExecutionProvider; refuse a name onnxruntime has never heard of."""
    lowered = wanted.lower()
    if lowered in ALIASES:
        return ALIASES[lowered]
    for name in known:
        if lowered in (name.lower(), name.lower().removesuffix("executionprovider")):
            return name
    raise ConfigError(
        f"unknown execution provider '{wanted}': expected auto, cpu, cuda or one of "
        f"{', '.join(known)}"
    )


def open_session(path: Path, threads: int, requested: str, proto: Any) -> tuple[Any, Runtime]:
    """Open an onnxruntime session for `path` on the chosen provider; describe the run."""
    ort = import_runtime()
    available = list(ort.get_available_providers())
    chosen, fallback = choose_provider(requested, available, list(ort.get_all_providers()))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Fatal only: onnxruntime's own error lines (coloured, multi-line) would precede the
    # one line `auditor` prints for the same failure.
    options.log_severity_level = QUIET
    providers = [chosen] if chosen == CPU else [chosen, CPU]
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:
        raise ModelError(f"{path}: {_load_failure(exc, proto)}") from exc
    ran = session.get_providers()[0]
    if fallback is None and ran != chosen:  # e.g. CUDA listed but its libraries missing
        fallback = f"onnxruntime could not start {chosen}; running on {ran}"
    if fallback is not None:  # never silent: the report must not claim a GPU run
        warnings.warn(fallback, ProviderWarning, stacklevel=2)
    return session, Runtime(
        provider=ran,
        requested=requested,
        available=available,
        fallback=fallback,
        session_options={
            "intra_op_num_threads": threads,
            "inter_op_num_threads": options.inter_op_num_threads,
            "graph_optimization_level": options.graph_optimization_level.name,
            "execution_mode": options.execution_mode.name,
        },
        provider_options=dict(session.get_provider_options().get(ran, {})),
    )


def _load_failure(exc: BaseException, proto: Any) -> str:
    """Explain why onnxruntime refused the model, naming an unknown operator domain."""
    local = {f.domain for f in proto.functions}  # model-local functions are fine
    for node in proto.graph.node:
        if node.domain not in KNOWN_DOMAINS and node.domain not in local:
            return (
                f"operator '{node.op_type}' of domain '{node.domain}' is not known to "
                "onnxruntime (it needs a custom-operator library, which auditor does not load)"
            )
    return f"onnxruntime cannot load the model: {runtime_message(exc)}"


def runtime_message(exc: BaseException) -> str:
    """Return what an onnxruntime error says, without its status code and C++ location."""
    text = str(exc).strip() or type(exc).__name__
    text = _RUNTIME_STATUS.sub("", text.splitlines()[0][:2000])
    # "... failed:/src/graph/model.cc:181 onnxruntime::Model::Model(...) Unsupported ..."
    located = _RUNTIME_LOCATION.search(text)
    if located:
        text = text[located.end() :]
    return text.strip()[:300] or type(exc).__name__
