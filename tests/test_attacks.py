"""The Square Attack search: its lattice, its schedule, its sanity bars on real models."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from conftest import build_model, colour_image
from onnx import TensorProto, helper, numpy_helper

from auditor import perturbations
from auditor.adversarial import (
    Outcome,
    initial_fraction,
    pixel_steps,
    square_fraction,
    square_linf,
    square_side,
    summarize,
    threat_model,
)
from auditor.config import ModelOptions
from auditor.metrics import decide
from auditor.model.adapter import Model, load_model
from auditor.seeds import derive_rng

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "deepfake"
LADDER = (1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)
PER_CLASS = 20  # 40 sample images keep the sanity bars under a few seconds
FLIP_BUDGET = 100  # small budgets keep the sanity bars fast; the default is 1,000
DELTA_BUDGET = 200


def rngs_for(keys: list[str], level: int, name: str = "square_linf") -> list:
    return [derive_rng(0, key, name, level, 0) for key in keys]


@pytest.fixture(scope="module")
def samples() -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """Every 10th sample image of each class: keys, RGB images, labels (fake = 1)."""
    keys, images, labels = [], [], []
    for label, folder in enumerate(("real", "fake")):
        for path in sorted((SAMPLES / "data" / folder).glob("*.png"))[::10][:PER_CLASS]:
            keys.append(f"{folder}/{path.name}")
            images.append(np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1]))
            labels.append(label)
    return keys, images, np.array(labels)


@pytest.fixture(scope="module", params=["detector_a.onnx", "detector_b.onnx"])
def detector(request) -> Model:
    return load_model(SAMPLES / request.param, ModelOptions())


def test_pixel_steps_round_down_to_whole_pixels():
    assert [pixel_steps(e) for e in LADDER] == [1, 2, 4, 8, 16]
    assert pixel_steps(0.003) == 0 and pixel_steps(0.0) == 0
    assert pixel_steps(0.2) == 51
    with pytest.raises(ValueError):
        pixel_steps(-1 / 255)


def test_schedule_halves_at_the_scaled_milestones():
    # With 1,000 queries, the paper's milestones 10, 50, 200 fall at 1, 5, 20.
    assert square_fraction(0, 1000) == square_fraction(1, 1000) == 0.05
    assert square_fraction(2, 1000) == square_fraction(5, 1000) == 0.025
    assert square_fraction(6, 1000) == 0.0125
    assert square_fraction(999, 1000) == pytest.approx(0.05 / 2**9)
    assert square_fraction(60, 10_000) == 0.0125
    assert square_side(0.05, 48, 48) == 11
    assert square_side(0.05, 4, 100) == 3  # never the whole short side
    assert square_side(1e-6, 48, 48) == 1


def test_the_first_square_grows_with_eps():
    # The paper's 0.05 up to 4/255, then the side in proportion to eps, ART's 0.8 from 16/255.
    assert [initial_fraction(k) for k in (0, 1, 2, 4)] == [0.05] * 4
    assert initial_fraction(8) == pytest.approx(0.2) and initial_fraction(7) < 0.2
    assert initial_fraction(16) == initial_fraction(51) == 0.8
    assert square_side(initial_fraction(16), 48, 48) == 43


def test_the_search_starts_from_the_p_init_of_its_eps(samples):
    keys, images, labels = samples
    keys, images = keys[:6], images[:6]
    model = load_model(SAMPLES / "detector_b.onnx", ModelOptions())
    clean = model.predict(images)

    def found(eps: float, p_init: float | None) -> list[np.ndarray]:
        out = square_linf(model.predict, images, clean, eps, rngs_for(keys, 5),
                          objective="delta", queries=12, p_init=p_init)  # fmt: skip
        return [o.image for o in out]

    for eps, p_init in ((2 / 255, 0.05), (16 / 255, 0.8)):
        assert all(np.array_equal(a, b) for a, b in zip(found(eps, None), found(eps, p_init)))
    assert not all(
        np.array_equal(a, b) for a, b in zip(found(16 / 255, None), found(16 / 255, 0.05))
    )


def test_every_query_stays_in_the_uint8_ball(tmp_path):
    model = load_model(build_model(tmp_path / "m.onnx", classes=3), ModelOptions())
    rng = np.random.default_rng(3)
    images = [colour_image(rng, 0.5, size) for size in ((20, 24), (31, 17), (9, 40))]
    seen: list[np.ndarray] = []

    def score(batch):
        seen.extend(batch)
        return model.predict(batch)

    targets = decide(model.predict(images), 0.5, None)
    rngs = [np.random.default_rng(i) for i in range(3)]
    out = square_linf(score, images, targets, 5 / 255, rngs, queries=40)
    assert sum(o.queries for o in out) == len(seen)
    for image in seen:
        clean = next(im for im in images if im.shape == image.shape)
        assert image.dtype == np.uint8
        assert np.abs(image.astype(int) - clean.astype(int)).max() <= 5
    for clean, o in zip(images, out):
        assert o.image.shape == clean.shape and 1 <= o.queries <= 40
        # the returned probabilities belong to the returned image
        np.testing.assert_allclose(o.probs, model.predict([o.image])[0], atol=1e-6)


def test_eps_zero_changes_nothing(samples):
    keys, images, labels = samples
    model = load_model(SAMPLES / "detector_a.onnx", ModelOptions())
    clean = model.predict(images)
    decisions = decide(clean, 0.5, 1)
    for objective, targets in (("flip", decisions), ("delta", clean)):
        out = square_linf(
            model.predict, images, targets, 0.0, rngs_for(keys, 0), objective=objective, positive=1
        )
        for image, o in zip(images, out):
            assert np.array_equal(o.image, image)
            assert o.queries == 1 and not o.success and not o.moved


def test_ra_under_search_is_at_most_ra_under_noise(detector, samples):
    keys, images, labels = samples
    clean = detector.predict(images)
    positive = detector.positive_index()
    for level, eps in enumerate(LADDER, start=1):
        noisy = [
            perturbations.apply("linf_noise", im, {"eps": eps}, rng)
            for im, rng in zip(images, rngs_for(keys, level, "linf_noise"))
        ]
        ra_noise = np.mean(decide(detector.predict(noisy), 0.5, positive) == labels)
        out = square_linf(
            detector.predict, images, labels, eps, rngs_for(keys, level),
            queries=FLIP_BUDGET, positive=positive, clean_probs=clean,
        )  # fmt: skip
        adversarial = np.stack([o.probs for o in out])
        correct = decide(adversarial, 0.5, positive) == labels
        assert np.array_equal(correct, [not o.success for o in out])
        assert correct.mean() <= ra_noise, f"eps {eps}: {correct.mean()} > {ra_noise}"
    assert correct.mean() < ra_noise  # at 16/255 the search finds what noise does not


def test_delta_search_beats_noise_for_most_samples(detector, samples):
    keys, images, _ = samples
    clean = detector.predict(images)
    for level, eps in ((3, 4 / 255), (5, 16 / 255)):
        noisy = [
            perturbations.apply("linf_noise", im, {"eps": eps}, rng)
            for im, rng in zip(images, rngs_for(keys, level, "linf_noise"))
        ]
        noise_delta = np.abs(detector.predict(noisy) - clean).max(axis=1)
        out = square_linf(
            detector.predict, images, clean, eps, rngs_for(keys, level),
            objective="delta", queries=DELTA_BUDGET,
        )  # fmt: skip
        found = np.array([o.loss for o in out])
        assert np.mean(found >= noise_delta - 1e-6) >= 0.8
        assert np.median(found) >= np.median(noise_delta)
        assert all(o.queries == DELTA_BUDGET for o in out)  # no goal: the whole budget


def constant_model(path: Path) -> Path:
    """A 2-class model whose output ignores its input: zero weights, fixed bias."""
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"]),
        helper.make_node("Gemm", ["features", "W", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 2])],
        initializer=[
            numpy_helper.from_array(np.zeros((3, 2), np.float32), "W"),
            numpy_helper.from_array(np.array([0.3, -0.3], np.float32), "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_model_that_ignores_its_input_is_unaffected(tmp_path):
    model = load_model(constant_model(tmp_path / "constant.onnx"), ModelOptions())
    rng = np.random.default_rng(0)
    images = [colour_image(rng, red) for red in (0.2, 0.5, 0.8)]
    clean = model.predict(images)
    rngs = [np.random.default_rng(i) for i in range(3)]
    flips = square_linf(model.predict, images, [0, 0, 0], 16 / 255, rngs, queries=30)
    assert [o.queries for o in flips] == [30, 30, 30]
    assert not any(o.success or o.moved for o in flips)
    deltas = square_linf(
        model.predict, images, clean, 16 / 255, rngs, objective="delta", queries=30
    )
    assert [o.loss for o in deltas] == [0.0, 0.0, 0.0]
    for summary in (summarize(flips), summarize(deltas)):
        assert summary["unaffected"] and summary["success_fraction"] == 0.0


def test_results_do_not_depend_on_the_batch_split(samples):
    keys, images, labels = samples
    model = load_model(SAMPLES / "detector_a.onnx", ModelOptions())
    clean = model.predict(images)
    for objective, targets in (("flip", labels), ("delta", clean)):

        def search(part: slice, objective=objective, targets=targets) -> list[Outcome]:
            return square_linf(
                model.predict, images[part], targets[part], 8 / 255, rngs_for(keys[part], 4),
                objective=objective, queries=60, positive=1,
            )  # fmt: skip

        assert_same(search(slice(None)), search(slice(0, 25)) + search(slice(25, None)))


def test_a_sample_searched_alone_gets_the_same_result(samples):
    keys, images, _ = samples
    model = load_model(SAMPLES / "detector_a.onnx", ModelOptions())
    clean = model.predict(images)

    def search(part: slice) -> list[Outcome]:
        return square_linf(
            model.predict, images[part], clean[part], 8 / 255, rngs_for(keys[part], 4),
            objective="delta", queries=100,
        )  # fmt: skip

    # Sample 3 is one whose score in a batch of one differs in the 7th digit; scored
    # alone as such, its search would take another path from query 60 on.
    alone = [o for i in range(8) for o in search(slice(i, i + 1))]
    assert_same(search(slice(0, 8)), alone)


def assert_same(whole: list[Outcome], split: list[Outcome]) -> None:
    for a, b in zip(whole, split):
        assert np.array_equal(a.image, b.image)
        assert (a.queries, a.success) == (b.queries, b.success)
        assert a.loss == pytest.approx(b.loss, abs=1e-6)


@pytest.mark.parametrize("head, classes", [("sigmoid", 1), ("softmax", 2), ("softmax", 3)])
def test_binary_and_multiclass_models_flip(tmp_path, head, classes):
    model = load_model(build_model(tmp_path / "m.onnx", head=head, classes=classes), ModelOptions())
    rng = np.random.default_rng(1)
    centre = 0.4 if classes <= 2 else 0.5  # where the colour model's classes meet
    images = [colour_image(rng, red) for red in np.linspace(centre - 0.05, centre + 0.05, 12)]
    positive = 1 if classes <= 2 else None
    targets = decide(model.predict(images), 0.5, positive)
    rngs = [np.random.default_rng(i) for i in range(12)]
    out = square_linf(
        model.predict, images, targets, 16 / 255, rngs, queries=100, positive=positive
    )
    flipped = decide(np.stack([o.probs for o in out]), 0.5, positive) != targets
    assert np.array_equal(flipped, [o.success for o in out])
    assert flipped.sum() > 0
    for o in out:  # a flipped sample stops early; the others spend the budget
        assert o.queries < 100 if o.success else o.queries == 100


def test_a_one_column_score_is_read_as_a_sigmoid(tmp_path):
    model = load_model(build_model(tmp_path / "m.onnx", head="sigmoid", classes=1), ModelOptions())
    rng = np.random.default_rng(2)
    images = [colour_image(rng, red) for red in (0.38, 0.4, 0.42)]
    targets = decide(model.predict(images), 0.5, 1)

    def one_column(batch):
        return model.predict(batch)[:, 1:]

    def run(score):
        rngs = [np.random.default_rng(i) for i in range(3)]
        return square_linf(score, images, targets, 8 / 255, rngs, queries=50, positive=1)

    for a, b in zip(run(one_column), run(model.predict)):
        assert np.array_equal(a.image, b.image) and a.success == b.success


def test_a_binary_threshold_other_than_half_decides(tmp_path):
    model = load_model(build_model(tmp_path / "m.onnx"), ModelOptions())
    rng = np.random.default_rng(4)
    images = [colour_image(rng, red) for red in np.linspace(0.45, 0.55, 8)]
    targets = decide(model.predict(images), 0.9, 1)
    rngs = [np.random.default_rng(i) for i in range(8)]
    out = square_linf(
        model.predict, images, targets, 16 / 255, rngs, queries=100, threshold=0.9, positive=1
    )
    probs = np.stack([o.probs for o in out])
    assert np.array_equal(decide(probs, 0.9, 1) != targets, [o.success for o in out])
    assert any(o.success for o in out)


def test_a_delta_goal_stops_the_search_early(tmp_path):
    model = load_model(build_model(tmp_path / "m.onnx"), ModelOptions())
    rng = np.random.default_rng(5)
    images = [colour_image(rng, 0.4) for _ in range(4)]
    clean = model.predict(images)
    rngs = [np.random.default_rng(i) for i in range(4)]
    out = square_linf(
        model.predict, images, clean, 16 / 255, rngs, objective="delta", queries=200,
        delta_goal=0.05,
    )  # fmt: skip
    assert all(o.success and o.loss > 0.05 and o.queries < 200 for o in out)


def test_samples_already_flipped_cost_no_query(tmp_path):
    model = load_model(build_model(tmp_path / "m.onnx"), ModelOptions())
    rng = np.random.default_rng(6)
    images = [colour_image(rng, red) for red in (0.1, 0.9)]  # real, fake
    clean = model.predict(images)
    rngs = [np.random.default_rng(i) for i in range(2)]
    out = square_linf(
        model.predict, images, [1, 1], 1 / 255, rngs, queries=20, positive=1, clean_probs=clean
    )
    assert (out[0].queries, out[0].success) == (0, True)
    assert np.array_equal(out[0].image, images[0])
    assert out[1].queries == 20 and not out[1].success


def test_summary_gives_queries_and_success():
    image = np.zeros((2, 2, 3), np.uint8)
    outcomes = [
        Outcome(image, np.array([0.5, 0.5]), queries=q, success=q < 100, loss=0.1, moved=True)
        for q in (1, 5, 10, 50, 100, 100, 100, 100, 100, 100)
    ]
    summary = summarize(outcomes)
    assert summary["queries_median"] == 100.0
    assert summary["queries_p90"] == 100.0
    assert summary["success_fraction"] == 0.4 and summary["n"] == 10
    assert not summary["unaffected"]
    assert summarize(outcomes[:4])["queries_median"] == 7.5
    assert summarize([])["n"] == 0


def test_threat_model_names_budget_and_what_is_missing():
    text = threat_model(1000)
    assert "1000 queries" in text and "white-box" in text and "corner" in text
    assert "p_init of the image of 0.05 up to eps 4/255" in text and "at most 0.8" in text
    assert "corner" not in threat_model(500, corner_start=False)


def test_bad_arguments_are_refused():
    image = np.zeros((4, 4, 3), np.uint8)
    rngs = [np.random.default_rng(0)]
    with pytest.raises(ValueError, match="objective"):
        square_linf(lambda b: np.ones((len(b), 2)) / 2, [image], [0], 0.1, rngs, objective="x")
    with pytest.raises(ValueError, match="targets"):
        square_linf(lambda b: np.ones((len(b), 2)) / 2, [image], [0, 1], 0.1, rngs)
    with pytest.raises(ValueError, match="class indices"):  # unlabelled: pass decisions
        square_linf(lambda b: np.ones((len(b), 2)) / 2, [image], [-1], 0.1, rngs)
    with pytest.raises(ValueError, match="uint8"):
        square_linf(lambda b: np.ones((len(b), 2)) / 2, [image.astype(float)], [0], 0.1, rngs)
