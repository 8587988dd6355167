"""Reading a classifier's output: logits or probabilities, and normalizing them.

The rule: values in [0, 1] with rows summing to 1 are probabilities;
a single column in [0, 1] is the positive class's probability; anything else is logits.
A Softmax or Sigmoid at the end of the graph is stronger evidence than the values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor.errors import ConfigError, ModelError

OUTPUT_KINDS = ("auto", "probs", "logits")
_PROBABILITY_OPS = {"Softmax", "Sigmoid"}
# Float slack for probabilities: rows may sum to 1 +- this, values may stray this far
# outside [0, 1].
_PROBABILITY_SLACK = 1e-3


def graph_hint(proto: Any, output_name: str) -> str | None:
    """Return the op type of the node that produces `output_name`, if any."""
    for node in proto.graph.node:
        if output_name in node.output:
            return str(node.op_type)
    return None


def declared_kind(
    forced: str, from_metadata: str | None, op_type: str | None
) -> tuple[str, str] | None:
    """The output kind and its evidence when a flag, the metadata or the graph decides it."""
    if forced not in OUTPUT_KINDS:
        raise ConfigError(f"--output-kind must be one of {', '.join(OUTPUT_KINDS)}")
    if forced != "auto":
        return forced, f"set by --output-kind {forced}"
    if from_metadata not in (None, "auto", "probs", "logits"):
        raise ConfigError(
            f"metadata output_kind: expected probs, logits or auto, found {from_metadata!r}"
        )
    if from_metadata in ("probs", "logits"):
        return from_metadata, f"set by the model's metadata (output_kind = {from_metadata})"
    if op_type in _PROBABILITY_OPS:
        return "probs", f"the output is produced by a {op_type} node"
    return None


def detect_kind(
    raw: NDArray[np.float64], forced: str, from_metadata: str | None, op_type: str | None
) -> tuple[str, str]:
    """Decide whether `raw` outputs are `probs` or `logits`; return it with the evidence."""
    declared = declared_kind(forced, from_metadata, op_type)
    if declared is not None:
        return declared
    low, high = float(raw.min()), float(raw.max())
    in_unit = low >= 0.0 and high <= 1.0
    span = f"values on the first batch lie in [{low:.4g}, {high:.4g}]"
    if raw.shape[1] == 1:
        if in_unit:
            return "probs", f"one column and {span}: read as the positive-class probability"
        return "logits", f"one column and {span}, outside [0, 1]: read as a logit (sigmoid)"
    sums = raw.sum(axis=1)
    if in_unit and np.all(np.abs(sums - 1.0) <= _PROBABILITY_SLACK):
        return "probs", f"{span} and every row sums to 1: read as probabilities"
    return "logits", (
        f"{span}; rows sum to {sums.min():.4g}..{sums.max():.4g}, not 1: read as logits (softmax)"
    )


def normalize(raw: NDArray[np.float64], kind: str) -> NDArray[np.float64]:
    """Return N x K probabilities from `raw` outputs of the given kind (K >= 2)."""
    if kind == "probs" and (raw.min() < -_PROBABILITY_SLACK or raw.max() > 1 + _PROBABILITY_SLACK):
        raise ModelError(
            f"the output was read as probabilities but holds values in "
            f"[{raw.min():.4g}, {raw.max():.4g}]; if it gives logits, pass --output-kind logits"
        )
    if raw.shape[1] == 1:
        p = raw[:, 0] if kind == "probs" else _sigmoid(raw[:, 0])
        return np.stack([1.0 - p, p], axis=1)
    if kind == "probs":
        return raw
    shifted = raw - raw.max(axis=1, keepdims=True)  # for numerical stability
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for large |x|
    return out
