"""The gradient attacks as audit searches: `fgsm`, `pgd_linf`, `apgd_linf` and `cw_l2`.

Each runs per level on a group of scored samples with two objectives, like
`square_linf`: "flip" (targets: labels or clean decisions; for RA) and "delta" (the
clean probabilities; for RR and the delta quantiles). Gradients come from the model's
gradient twin (`twin`), built once per audit by the engine; every candidate is rounded
to uint8 and scored by the real pipeline. Each level records the gradient's source and
the twin's fidelity (largest |twin - onnxruntime| probability difference on the clean
and the final adversarial images): above `--twin-tolerance` the level is labelled a
transfer attack from an inexact surrogate, not a white-box one.

Importing this module needs no torch (the attacks list and plan everywhere); running one
does (`whitebox.require_torch`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from auditor import seeds
from auditor.adversarial.counts import OBJECTIVES, AttackCounts
from auditor.adversarial.objectives import Objective, delta_objective, flip_objective
from auditor.adversarial.registry import Found, Group, Scorer, SearchLevel, Tally, search
from auditor.adversarial.square import pixel_steps
from auditor.errors import ConfigError
from auditor.perturbations.epsilon import EPS_LADDER

FGSM, PGD, APGD, CW = "fgsm", "pgd_linf", "apgd_linf", "cw_l2"
DEFAULT_STEPS = {FGSM: 1, PGD: 10, APGD: 20, CW: 50}
DEFAULT_TOLERANCE = 1e-3
SOURCE = "auditor's ONNX-to-PyTorch converter"
_LINF = ("twin_tolerance", "attack_steps", "restarts")
SETTINGS = {FGSM: ("twin_tolerance",), PGD: _LINF, APGD: _LINF, CW: _LINF[:2]}
METRICS = (
    "RA from the flip search; RR, delta quantiles from the delta search; each metric is "
    "the worst over the points both searches found"
)


def attack_settings(name: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings `name` runs with, as recorded in the results."""
    from auditor.adversarial import gradient as g

    steps = int(settings.get("attack_steps") or 0) or DEFAULT_STEPS[name]
    restarts = int(settings.get("restarts") or 1)
    if name == FGSM:
        return {"steps": 1, "step": "eps"}
    if name == PGD:
        return {"steps": steps, "restarts": restarts, "step": f"{g.PGD_STEP} eps / steps",
                "random_start": True, "loss": "cross-entropy"}  # fmt: skip
    if name == APGD:
        return {"steps": steps, "restarts": restarts, "initial_step": "2 eps",
                "momentum": g.APGD_MOMENTUM, "rho": g.APGD_RHO, "random_start": True,
                "checkpoints": g.apgd_checkpoints(steps), "loss": "cross-entropy"}  # fmt: skip
    return {"steps": steps, "binary_steps": g.CW_BINARY_STEPS, "c_initial": g.CW_C_INIT,
            "learning_rate": g.CW_LEARNING_RATE, "kappa": g.CW_KAPPA,
            "budget": "l2: RMS of the change on the 0..1 scale (an L-inf change of eps "
                      "everywhere has l2 = eps)"}  # fmt: skip


def gradient_source(source: str, clean: float, adversarial: float, tolerance: float) -> str:
    """What the level's gradient was: the model's own, or a transfer from an inexact twin."""
    worst = max(clean, adversarial)
    if worst <= tolerance:
        return (
            f"white-box: gradients of a PyTorch twin ({source}), whose probabilities "
            f"differ from onnxruntime's by at most {worst:.2g} (tolerance {tolerance:g})"
        )
    return (
        f"transfer attack from an inexact surrogate: the twin ({source}) differs from "
        f"onnxruntime by up to {worst:.2g}, above the tolerance {tolerance:g}, so its "
        f"gradients are not trusted to be the model's"
    )


def threat_model(name: str, worst: float, tolerance: float, untrusted: Sequence[int]) -> str:
    """The report's statement of what attack `name` searched, its gradient's source and fidelity."""
    if untrusted:
        levels = ", ".join(f"L{level}" for level in untrusted)
        trust = (
            f"at {levels} the twin differs from onnxruntime by more than the tolerance "
            f"{tolerance:g} (up to {worst:.2g}): those levels are transfer attacks from an "
            f"inexact surrogate, not white-box"
        )
    else:
        trust = (
            f"its probabilities stayed within {worst:.2g} of onnxruntime's on the clean and the "
            f"adversarial images (tolerance {tolerance:g}), so the gradients are the model's"
        )
    return (
        f"White-box gradient attack {name} on the raw image: gradients of a PyTorch twin of "
        f"the model and of auditor's preprocessing ({SOURCE}); {trust}. Each candidate was "
        f"rounded to uint8 and scored by the "
        f"real pipeline (OpenCV preprocessing and onnxruntime), which alone decides the "
        f"results. {_BALLS[name == CW]} A failed attack is not a proof of robustness: more "
        f"steps, restarts or other losses can find points it missed."
    )


_BALLS = (
    "It searches the L-inf ball of eps rounded down to whole pixel steps (k/255).",
    "Its budget is the level's L2 norm, as an RMS change on the 0..1 scale.",
)


def describe_for(name: str) -> Callable[[Mapping[str, Any], Sequence[Tally]], dict[str, Any]]:
    """The results' `adversarial` section of attack `name`."""

    def describe(settings: Mapping[str, Any], tallies: Sequence[Tally]) -> dict[str, Any]:
        tolerance = float(settings.get("twin_tolerance", DEFAULT_TOLERANCE))
        levels = [_level(name, t, tolerance) for t in tallies]
        fidelity = [lv["twin_fidelity"] for lv in levels]
        worst = max((max(f["clean"], f["adversarial"]) for f in fidelity), default=0.0)
        untrusted = [lv["level"] for lv in levels if not lv["twin_fidelity"]["trusted"]]
        return {
            "threat_model": threat_model(name, worst, tolerance, untrusted),
            "metrics": METRICS,
            "attacks": {name: attack_settings(name, settings)},
            "perturbations": {name: levels},
        }

    return describe


def _level(name: str, tally: Tally, tolerance: float) -> dict[str, Any]:
    counts = [c for c in (tally.counts.get(obj) for obj in OBJECTIVES) if c is not None]
    clean = max((getattr(c, "twin_clean", 0.0) for c in counts), default=0.0)
    adversarial = max((getattr(c, "twin_adversarial", 0.0) for c in counts), default=0.0)
    entry: dict[str, Any] = {
        "level": tally.level,
        "params": dict(tally.params),
        "gradient_source": gradient_source(SOURCE, clean, adversarial, tolerance),
        "twin_fidelity": {
            "clean": float(f"{clean:.2g}"),
            "adversarial": float(f"{adversarial:.2g}"),
            "tolerance": tolerance,
            "trusted": max(clean, adversarial) <= tolerance,
        },
        **{obj: tally.counts[obj].finish() for obj in OBJECTIVES if obj in tally.counts},
    }
    if name == CW:
        flip = tally.counts.get("flip")
        l2 = sorted(getattr(flip, "l2", []))
        entry["l2_median"] = round(float(np.median(l2)), 6) if l2 else None
        entry["l2_found"] = len(l2)
    return entry


def run_level(name: str, scorer: Scorer, group: Group, level: SearchLevel) -> Found:
    """One level of attack `name` on a group: both objectives, scored by the real pipeline."""
    from auditor.adversarial import gradient as g

    twin = scorer.twin
    if twin is None:
        raise ConfigError(f"{name} needs the model's gradient twin, which was not built")
    settings = attack_settings(name, level.settings)
    clean_fidelity = twin.fidelity(group.images, group.clean)
    probs, counts = [], {}
    for objective in OBJECTIVES:
        goal = _goal(objective, scorer, group)
        tracker = g.Tracker(scorer.predict, group.images, goal, group.clean, name != CW)
        samples = _samples(name, objective, twin, group, level)
        generators = {
            i: _attack(name, objective, twin, samples[i], group, i, level, settings, scorer)
            for i in tracker.searching()
        }
        g.run_attack(tracker, generators, samples)
        outcomes = tracker.outcomes()
        figures = AttackCounts()
        figures.add(outcomes)
        figures.twin_clean = clean_fidelity
        figures.twin_adversarial = twin.fidelity(
            [o.image for o in outcomes], np.stack([o.probs for o in outcomes])
        )
        figures.l2 = sorted(v for s in samples for v in s.l2)
        counts[objective] = figures
        probs.append(np.stack([o.probs for o in outcomes]))
    return Found(np.stack(probs), dict(counts))


def _goal(objective: str, scorer: Scorer, group: Group) -> Objective:
    if objective == "flip":
        return flip_objective(group.targets, scorer.threshold, scorer.positive)
    return delta_objective(group.clean)


def _samples(name: str, objective: str, twin: Any, group: Group, level: SearchLevel) -> list[Any]:
    """Each sample's clean pixels, ball and generator (its own: seeded by its key)."""
    from auditor.adversarial import gradient as g

    radius = 255 if name == CW else pixel_steps(float(level.params["eps"]))
    out = []
    for image, key in zip(group.images, group.keys):
        clean = twin.tensor(image)
        low, high = g.ball(clean, radius)
        rng = seeds.derive_rng(level.seed, key, f"{name}:{objective}", level.level, 0)
        out.append(g.Sample(clean, low, high, rng))
    return out


def _attack(
    name: str,
    objective: str,
    twin: Any,
    sample: Any,
    group: Group,
    i: int,
    level: SearchLevel,
    settings: Mapping[str, Any],
    scorer: Scorer,
) -> Iterator[Any]:
    """The candidate generator of one sample."""
    from auditor.adversarial import gradient as g
    from auditor.adversarial import torch_losses as losses

    clean = np.asarray(group.clean[i], np.float64)
    if objective == "flip":
        target = int(group.targets[i])
        loss = losses.flip_cross_entropy(target, scorer.threshold, scorer.positive)
    else:
        loss = losses.delta_surrogate(clean, g.DELTA_TIE_BREAK)
    if name == CW:
        budget = float(level.params["l2"]) * 255 * math.sqrt(sample.clean.numel())
        if objective == "flip":
            margin = losses.flip_margin(int(group.targets[i]), scorer.threshold, scorer.positive)
            return g.cw_l2(twin, sample, margin, budget, settings["steps"],
                           lambda lp: bool(margin(lp) > 0), noise=False)  # fmt: skip
        return g.cw_l2(twin, sample, loss, budget, settings["steps"], lambda lp: False, noise=True)
    radius = pixel_steps(float(level.params["eps"]))
    if radius == 0:
        return iter(())
    if name == FGSM:
        return g.fgsm(twin, sample, loss, radius)
    if name == PGD:
        return g.pgd(twin, sample, loss, radius, settings["steps"], settings["restarts"])
    return g.apgd(twin, sample, loss, radius, settings["steps"], settings["restarts"])


def _register(name: str, levels: Mapping[str, Sequence[float]], summary: str) -> None:
    def run(scorer: Scorer, group: Group, level: SearchLevel) -> Found:
        return run_level(name, scorer, group, level)

    run.__doc__ = summary
    search(
        name,
        levels=levels,
        points=len(OBJECTIVES),
        settings=SETTINGS[name],
        describe=describe_for(name),
        needs_twin=True,
    )(run)


_register(
    FGSM,
    {"eps": EPS_LADDER},
    "FGSM (white-box, whitebox extra): one signed gradient step of eps on the raw "
    "image; twin tolerance --twin-tolerance (1e-3).",
)
_register(
    PGD,
    {"eps": EPS_LADDER},
    "PGD (white-box, whitebox extra): random start, --attack-steps (10) signed steps "
    "of 2.5 eps / steps, projected; --restarts (1); cross-entropy loss.",
)
_register(
    APGD,
    {"eps": EPS_LADDER},
    "APGD-CE of AutoAttack (white-box, whitebox extra; Croce & Hein 2020): "
    "step-size-free, --attack-steps (20) with checkpoints, momentum 0.75, --restarts (1).",
)
_register(CW, {"l2": EPS_LADDER},
          "Carlini-Wagner L2 (white-box, whitebox extra): Adam, --attack-steps (50) x 5 "
          "binary steps over c; level: L2 budget as RMS change on the 0..1 scale.")  # fmt: skip
