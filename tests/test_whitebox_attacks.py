"""The gradient attacks: analytic first steps, eps 0, a constant model, seeding, every head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import WEIGHTS_2, build_model, colour_image
from test_attacks import constant_model

from auditor.adversarial.counts import OBJECTIVES
from auditor.adversarial.registry import SEARCHES, Group, Scorer, SearchLevel
from auditor.config import ModelOptions
from auditor.model.adapter import load_model

torch = pytest.importorskip("torch")

from auditor.adversarial import gradient, torch_losses  # noqa: E402
from auditor.adversarial.twin import GradientTwin  # noqa: E402

SETTINGS = {"twin_tolerance": 1e-3, "attack_steps": 0, "restarts": 1}


def images(count: int, seed: int = 0, reds: tuple[float, float] = (0.3, 0.7)) -> list:
    rng = np.random.default_rng(seed)
    return [colour_image(rng, red, (16, 16)) for red in np.linspace(*reds, count)]


def setup(path: Path, batch: list, positive: int | None = 1):
    model = load_model(path, ModelOptions())
    clean = model.predict(batch)
    targets = np.argmax(clean, axis=1).astype(np.int64)
    twin = GradientTwin(model)
    scorer = Scorer(model.predict, positive if clean.shape[1] == 2 else None, 0.5, twin)
    keys = [f"s{i}" for i in range(len(batch))]
    return model, twin, scorer, Group(batch, keys, clean, targets)


def run(name: str, scorer: Scorer, group: Group, value: float, level: int = 1, **settings):
    search = SEARCHES[name]
    params = {search.param_names[0]: value}
    return search.run(scorer, group, SearchLevel(level, params, 0, {**SETTINGS, **settings}))


def test_the_first_step_is_the_analytic_one(tmp_path):
    """Mean-colour softmax model: d CE / d pixel has the sign of (W_other - W_y) per channel."""
    model, twin, _, group = setup(build_model(tmp_path / "m.onnx"), images(4))
    for i, image in enumerate(group.images):
        y = int(group.targets[i])
        loss = torch_losses.flip_cross_entropy(y, 0.5, 1)
        clean = twin.tensor(image)
        sample = gradient.Sample(clean, *gradient.ball(clean, 4), np.random.default_rng(0))
        step = next(gradient.fgsm(twin, sample, loss, 4))
        direction = np.sign(WEIGHTS_2[:, 1 - y] - WEIGHTS_2[:, y])  # per channel
        expected = np.clip(image.astype(np.float64) + 4 * direction, 0, 255)
        assert np.array_equal(step.numpy(), expected)


def test_the_twin_gradient_matches_a_finite_difference(tmp_path):
    """Directional derivative of log p_fake, against onnxruntime's central difference."""
    model, twin, _, group = setup(build_model(tmp_path / "m.onnx"), images(1))
    x = twin.tensor(group.images[0]).requires_grad_(True)
    grad = torch.autograd.grad(twin.log_probs(x)[0, 1], x)[0].numpy()
    direction = np.random.default_rng(0).choice([-1.0, 1.0], size=x.shape)
    h = 20.0  # the mean-colour model is linear in the pixels before the softmax
    up = np.clip(group.images[0] + h * direction, 0, 255).astype(np.uint8)
    down = np.clip(group.images[0] - h * direction, 0, 255).astype(np.uint8)
    moved = (up.astype(float) - down.astype(float)) / 2
    p_up, p_down = np.log(model.predict([up, down])[:, 1])
    assert np.isclose((grad * moved).sum(), (p_up - p_down) / 2, rtol=2e-2)


@pytest.mark.parametrize("name", ["fgsm", "pgd_linf", "apgd_linf"])
def test_eps_zero_changes_nothing(tmp_path, name):
    _, _, scorer, group = setup(build_model(tmp_path / "m.onnx"), images(4))
    found = run(name, scorer, group, 0.0)
    for k in range(len(OBJECTIVES)):
        assert np.array_equal(found.probs[k], group.clean)
    assert all(c.queries == {0: 4} for c in found.counts.values())


@pytest.mark.parametrize("name", ["fgsm", "pgd_linf", "apgd_linf", "cw_l2"])
def test_a_model_that_ignores_its_input_is_unaffected(tmp_path, name):
    _, _, scorer, group = setup(constant_model(tmp_path / "constant.onnx"), images(3))
    found = run(name, scorer, group, 16 / 255, attack_steps=3)
    for objective in OBJECTIVES:
        figures = found.counts[objective].finish()
        assert figures["unaffected"] is True
        assert figures["moved_fraction"] == 0.0
    assert np.allclose(found.probs, group.clean[None], atol=1e-7)


@pytest.mark.parametrize(
    ("head", "classes"), [("sigmoid", 1), ("softmax", 2), ("none", 2), ("softmax", 3)]
)
@pytest.mark.parametrize("name", ["fgsm", "pgd_linf", "apgd_linf", "cw_l2"])
def test_every_head_is_attacked(tmp_path, name, head, classes):
    """One-column sigmoid, 2-class and K-class models: a large budget flips them all."""
    path = build_model(tmp_path / "m.onnx", head=head, classes=classes)
    batch = images(4, reds=(0.4, 0.6))
    _, _, scorer, group = setup(path, batch)
    found = run(name, scorer, group, 64 / 255, attack_steps=10)
    flip = found.counts["flip"].finish()
    assert flip["success_fraction"] == 1.0
    assert found.counts["delta"].finish()["moved_fraction"] == 1.0
    assert found.counts["flip"].twin_clean <= 1e-5


def test_results_do_not_depend_on_the_group(tmp_path):
    """Per-sample generators and gradients: a group of 4 gives what two groups of 2 give."""
    path = build_model(tmp_path / "m.onnx")
    batch = images(4, reds=(0.45, 0.55))
    _, _, scorer, whole = setup(path, batch)
    together = run("pgd_linf", scorer, whole, 2 / 255, restarts=2)
    halves = []
    for part in (slice(0, 2), slice(2, 4)):
        group = Group(batch[part], whole.keys[part], whole.clean[part], whole.targets[part])
        halves.append(run("pgd_linf", scorer, group, 2 / 255, restarts=2).probs)
    assert np.allclose(together.probs, np.concatenate(halves, axis=1), atol=1e-6)


def test_apgd_checkpoints_are_the_papers():
    assert gradient.apgd_checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]


def test_cw_reports_the_median_l2_of_its_successes(tmp_path):
    """The minimal flips of a linear model grow with the margin; the budget bounds the point."""
    _, _, scorer, group = setup(build_model(tmp_path / "m.onnx"), images(4, reds=(0.4, 0.6)))
    small = run("cw_l2", scorer, group, 1 / 255, attack_steps=30)
    large = run("cw_l2", scorer, group, 64 / 255, attack_steps=30)
    describe = SEARCHES["cw_l2"].describe
    from auditor.adversarial.registry import Tally

    entry = describe(SETTINGS, [Tally(1, {"l2": 1 / 255}, large.counts)])["perturbations"]
    level = entry["cw_l2"][0]
    assert level["l2_found"] == 4 and 0 < level["l2_median"] < 64 / 255
    assert small.counts["flip"].success <= large.counts["flip"].success == 4
    for found, budget in ((small, 1 / 255), (large, 64 / 255)):
        assert found.counts["flip"].n == 4
        assert budget > 0


def test_cw_points_stay_inside_the_l2_budget(tmp_path):
    clean = torch.full((8, 8, 3), 100.0)
    far = clean + torch.linspace(-90, 90, 192).reshape(8, 8, 3)
    budget = 50.0
    point = gradient.within_l2(far, clean, budget)
    assert float(torch.linalg.vector_norm(point - clean)) <= budget
    assert torch.equal(point, torch.round(point))


def test_untrusted_twin_is_labelled_a_transfer_attack():
    from auditor.adversarial.whitebox_search import gradient_source

    assert gradient_source("x", 1e-6, 2e-6, 1e-3).startswith("white-box")
    text = gradient_source("x", 1e-6, 0.02, 1e-3)
    assert text.startswith("transfer attack from an inexact surrogate") and "0.02" in text
