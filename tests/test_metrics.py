"""RA, RR, flip rate, intervals and AUC against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import reference_metrics

from auditor import metrics


def binary(p_fake):
    p = np.asarray(p_fake, np.float64)
    return np.stack([1 - p, p], axis=-1)


def level(clean, perturbed, labels, **kw):
    defaults = dict(
        tolerances=[0.05, 0.1],
        tolerance_keys=["0.05", "0.1"],
        threshold=0.5,
        positive=1,
        class_names=["real", "fake"],
        delta_norm="linf",
        clean_accuracy=None,
    )
    return reference_metrics.level_metrics(clean, perturbed, labels, **{**defaults, **kw})


def test_wilson_matches_known_values():
    # Reference values of the 95% Wilson interval (Newcombe 1998, example 81/263).
    lo, hi = metrics.wilson(81, 263)
    assert lo == pytest.approx(0.2553, abs=1e-4) and hi == pytest.approx(0.3662, abs=1e-4)
    assert metrics.wilson(0, 10)[0] == 0.0 and metrics.wilson(10, 10)[1] == 1.0
    assert metrics.wilson(0, 0) is None


def test_ra_rr_flip_on_a_hand_made_case():
    clean = binary([0.9, 0.8, 0.2, 0.4])
    labels = np.array([1, 1, 0, 0])
    perturbed = binary([[0.85, 0.3, 0.25, 0.6]])  # one repeat
    out = level(clean, perturbed, labels)
    # decisions after: fake, real, real, fake -> correct: yes, no, yes, no
    assert out["ra"] == 0.5
    # deltas: 0.05, 0.5, 0.05, 0.2 -> within 0.05: 2 (0.05 <= 0.05); within 0.1: 2
    assert out["rr"] == {"0.05": 0.5, "0.1": 0.5}
    assert out["flip_rate"] == 0.5
    assert out["delta_quantiles"]["max"] == 0.5
    assert out["per_class"]["fake"]["ra"] == 0.5 and out["per_class"]["real"]["ra"] == 0.5
    assert out["per_class"]["fake"]["mean_shift"] == pytest.approx((-0.05 - 0.5) / 2)


def test_worst_of_r_needs_every_repeat_to_pass():
    clean = binary([0.9, 0.1])
    labels = np.array([1, 0])
    perturbed = binary([[0.9, 0.1], [0.3, 0.12]])  # repeat 2 flips sample 0
    out = level(clean, perturbed, labels)
    assert out["ra"] == 0.5 and out["flip_rate"] == 0.5
    assert out["rr"]["0.1"] == 0.5
    assert out["delta_quantiles"]["max"] == pytest.approx(0.6)


def test_rr_needs_no_labels_and_ra_is_none_without_them():
    out = level(binary([0.5, 0.5]), binary([[0.52, 0.9]]), None)
    assert out["ra"] is None and out["per_class"] == {} and out["auc"] is None
    assert out["rr"]["0.1"] == 0.5


def test_threshold_and_positive_class_drive_binary_decisions():
    probs = binary([0.3, 0.7])
    assert list(metrics.decide(probs, 0.5, 1)) == [0, 1]
    assert list(metrics.decide(probs, 0.25, 1)) == [1, 1]
    assert list(metrics.decide(probs, 0.5, 0)) == [0, 1]  # class 0 positive: p0 = .7, .3
    three = np.array([[0.2, 0.5, 0.3]])
    assert list(metrics.decide(three, 0.5, None)) == [1]


def test_delta_norms():
    clean = np.array([[0.6, 0.3, 0.1]])
    pert = np.array([[[0.4, 0.4, 0.2]]])
    assert metrics.deltas(clean, pert, "linf", None)[0, 0] == pytest.approx(0.2)
    assert metrics.deltas(clean, pert, "l1", None)[0, 0] == pytest.approx(0.4)
    assert metrics.deltas(clean, pert, "true-class", np.array([2]))[0, 0] == pytest.approx(0.1)


def test_roc_auc_with_ties_and_one_class():
    assert (
        reference_metrics.roc_auc(
            np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True])
        )
        == 0.75
    )
    assert reference_metrics.roc_auc(np.array([0.5, 0.5]), np.array([False, True])) == 0.5
    assert reference_metrics.roc_auc(np.array([0.5, 0.6]), np.array([True, True])) is None


def test_rr_curve_is_the_empirical_cdf_of_delta():
    clean = binary([0.5] * 4)
    pert = binary([[0.5, 0.53, 0.6, 0.9]])
    curve = dict((b, v) for b, v in level(clean, pert, None)["rr_curve"])
    assert curve[0.0] == 0.25 and curve[0.03] == 0.5 and curve[0.1] == 0.75
    assert curve[0.39] == 0.75 and curve[0.4] == 1.0


def test_clean_metrics_and_area():
    out = reference_metrics.clean_metrics(
        binary([0.9, 0.2, 0.6]), np.array([1, 0, 0]), 0.5, 1, ["real", "fake"]
    )
    assert out["accuracy"] == pytest.approx(2 / 3, abs=1e-6)
    assert out["per_class"]["real"]["n"] == 2 and out["auc"] == 1.0
    assert metrics.area_under(1.0, [1.0, 1.0]) == 1.0
    assert metrics.area_under(1.0, [0.0]) == 0.5
