"""Streaming statistics equal the array metrics, and merge exactly in any split."""

from __future__ import annotations

import numpy as np
import pytest
import reference_metrics
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor import metrics
from auditor.engine.stats import AuditStats, Scoring

KEYS = ["0.01", "0.05", "0.1", "0.2"]
TOLERANCES = (0.01, 0.05, 0.1, 0.2)


def random_case(seed: int, n: int, k: int, repeats: int, coarse: bool):
    rng = np.random.default_rng(seed)
    clean = rng.dirichlet(np.ones(k), size=n)
    perturbed = rng.dirichlet(np.ones(k), size=(repeats, n))
    if coarse:  # many ties, and deltas that sit exactly on tolerances
        clean = np.round(clean, 2)
        clean[:, -1] = 1 - clean[:, :-1].sum(axis=1)
        perturbed = np.round(perturbed, 2)
        perturbed[..., -1] = 1 - perturbed[..., :-1].sum(axis=-1)
    labels = rng.integers(0, k, size=n)
    return clean, perturbed, labels


def streamed(clean, perturbed, labels, scoring, cuts):
    """Accumulate in chunks split at `cuts`, each chunk in its own stats, then merge."""
    parts = []
    bounds = [0, *sorted(set(cuts)), len(clean)]
    for a, b in zip(bounds, bounds[1:]):
        if a == b:
            continue
        part = AuditStats()
        part.add(clean[a:b], [perturbed[:, a:b]], None if labels is None else labels[a:b], scoring)
        parts.append(part)
    total = AuditStats()
    for part in reversed(parts):  # order must not matter
        total.merge(part)
    return total


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 40),
    k=st.sampled_from([2, 3]),
    repeats=st.integers(1, 3),
    coarse=st.booleans(),
    labelled=st.booleans(),
    norm=st.sampled_from(["linf", "l1", "true-class"]),
    cuts=st.lists(st.integers(0, 40), max_size=4),
)
def test_streamed_statistics_equal_array_metrics(seed, n, k, repeats, coarse, labelled, norm, cuts):
    if norm == "true-class":
        labelled = True
    clean, perturbed, labels = random_case(seed, n, k, repeats, coarse)
    labels = labels if labelled else None
    positive = 1 if k == 2 else None
    names = ["a", "b", "c"][:k]
    scoring = Scoring(0.5, positive, norm, TOLERANCES)
    clean_expected = reference_metrics.clean_metrics(clean, labels, 0.5, positive, names)
    expected = reference_metrics.level_metrics(
        clean,
        perturbed,
        labels,
        tolerances=TOLERANCES,
        tolerance_keys=KEYS,
        threshold=0.5,
        positive=positive,
        class_names=names,
        delta_norm=norm,
        clean_accuracy=clean_expected["accuracy"],
    )
    stats = streamed(clean, perturbed, labels, scoring, [c for c in cuts if c <= n])
    clean_got = stats.clean.finish(scoring, names, labelled)
    got = stats.levels[0].finish(scoring, KEYS, names, labelled, clean_got["accuracy"])
    assert clean_got == clean_expected
    assert got == expected


def test_quantiles_from_counts_match_numpy_on_quantized_values():
    rng = np.random.default_rng(3)
    values = rng.random(101)
    q = metrics.quantize(values)
    counts = metrics.value_counts(q)
    for p in (0.0, 0.5, 0.9, 1.0):
        assert metrics.quantile_from_counts(counts, p) == np.quantile(q / 1e6, p)


def test_exact_sums_do_not_depend_on_order():
    values = np.array([0.1, 1e-300, -0.3, 0.2, 1e17, -1e17])
    forward = metrics.exact_total(values)
    assert forward == metrics.exact_total(values[::-1])
    assert metrics.exact_mean(forward, len(values)) == pytest.approx(0.0, abs=1e-17)


def test_auc_from_counts_counts_ties_half():
    assert metrics.auc_from_counts({5: 1}, {5: 1}) == 0.5
    assert metrics.auc_from_counts({7: 2}, {3: 1, 9: 1}) == 0.5
    assert metrics.auc_from_counts({}, {1: 1}) is None


def test_moved_keeps_the_three_largest_with_ties_by_key_then_level():
    stats = AuditStats()
    for key, level, delta in [("b", 1, 0.5), ("a", 2, 0.5), ("c", 1, 0.1), ("d", 3, 0.9)]:
        stats.offer_moved("x", {"sample": key, "level": level, "delta": delta})
    assert [c["sample"] for c in stats.moved["x"]] == ["d", "a", "b"]
    other = AuditStats()
    other.offer_moved("x", {"sample": "0", "level": 1, "delta": 0.5})
    stats.merge(other)
    assert [c["sample"] for c in stats.moved["x"]] == ["d", "0", "a"]
