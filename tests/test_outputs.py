"""Reading outputs: probabilities or logits, the evidence, and normalization."""

from __future__ import annotations

import numpy as np
import pytest

from auditor.errors import ConfigError, ModelError
from auditor.model.outputs import declared_kind, detect_kind, normalize


@pytest.mark.parametrize(
    "forced, meta, op, expected",
    [
        ("logits", "probs", "Softmax", ("logits", "set by --output-kind logits")),
        ("auto", "logits", "Softmax", ("logits", "set by the model's metadata")),
        ("auto", None, "Sigmoid", ("probs", "produced by a Sigmoid node")),
        ("auto", None, "Gemm", None),
    ],
)
def test_declared_kind_order_flag_metadata_graph(forced, meta, op, expected):
    found = declared_kind(forced, meta, op)
    if expected is None:
        assert found is None
    else:
        assert found[0] == expected[0] and expected[1] in found[1]


def test_declared_kind_refuses_unknown_flag_or_metadata():
    with pytest.raises(ConfigError, match="--output-kind must be one of"):
        declared_kind("maybe", None, None)
    with pytest.raises(ConfigError, match="metadata output_kind: .* found 'probabilities'"):
        declared_kind("auto", "probabilities", None)


@pytest.mark.parametrize(
    "raw, kind, words",
    [
        ([[0.2, 0.8], [0.6, 0.4]], "probs", "every row sums to 1"),
        ([[0.2, 0.3], [0.6, 0.1]], "logits", "not 1"),
        ([[-2.0, 3.0], [1.0, 0.5]], "logits", "not 1"),
        ([[0.3], [0.9]], "probs", "positive-class probability"),
        ([[-1.5], [2.0]], "logits", "logit (sigmoid)"),
    ],
)
def test_detect_kind_from_values(raw, kind, words):
    found, evidence = detect_kind(np.array(raw), "auto", None, None)
    assert found == kind and words in evidence


def test_normalize_logits_and_sigmoid_against_formulas():
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    probs = normalize(logits, "logits")
    np.testing.assert_allclose(probs[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())
    np.testing.assert_allclose(probs[1], [1.0, 0.0, 0.0])  # no overflow
    one = normalize(np.array([[0.0], [np.log(3.0)], [-800.0]]), "logits")
    np.testing.assert_allclose(one, [[0.5, 0.5], [0.25, 0.75], [1.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(normalize(np.array([[0.3]]), "probs"), [[0.7, 0.3]])


def test_probabilities_outside_unit_interval_are_refused():
    with pytest.raises(ModelError, match="pass --output-kind logits"):
        normalize(np.array([[1.7, -0.7]]), "probs")
