"""Bench the gradient attacks on the sample detectors (needs the whitebox extra).

Prints, for each detector:
1. the twin's fidelity: largest |twin - onnxruntime| probability difference on the
   clean images and on each attack's final points;
2. seconds per image of each attack at one level (both objectives, CPU time of this
   process, so a busy machine inflates it less than wall time);
3. a reference check: our `fgsm` equals a plain FGSM computed by hand on the converted
   graph (torch autograd on the pipeline's input tensor, one signed step of eps);
4. RA and RR (b = 0.01, 0.05, 0.1, 0.2) under fgsm, pgd_linf and linf_noise at the
   paper's eps 0.01, 0.05, 0.1, 0.2, from full audits (`auditor check`, --limit);
5. where adversarial-robustness-toolbox is installed (it needs no torch of its own):
   our pgd_linf (flip objective) against ART's ProjectedGradientDescent on the same
   twin, images and eps, same steps, step and random start; both rounded to uint8
   and scored by onnxruntime; RA and CPU ms per image.

    PYTHONPATH=. python bench/whitebox.py [--limit 100] [--no-audits]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from attacks import load_samples
from click.testing import CliRunner

from auditor.adversarial import gradient, torch_losses
from auditor.adversarial.registry import SEARCHES, Group, Scorer, SearchLevel
from auditor.adversarial.twin import GradientTwin
from auditor.cli import main
from auditor.config import ModelOptions
from auditor.model.adapter import load_model
from auditor.seeds import derive_rng

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "deepfake"
PAPER = (0.01, 0.05, 0.1, 0.2)
SETTINGS = {"twin_tolerance": 1e-3, "attack_steps": 0, "restarts": 1}
TIMED = {"fgsm": 8 / 255, "pgd_linf": 8 / 255, "apgd_linf": 8 / 255, "cw_l2": 8 / 255}


def timings(detector: str, limit: int) -> None:
    """Fidelity and seconds per image of each attack at one level."""
    model = load_model(SAMPLES / f"{detector}.onnx", ModelOptions())
    keys, images, labels = load_samples(limit)
    clean = model.predict(images)
    twin = GradientTwin(model)
    scorer = Scorer(model.predict, model.positive_index(), 0.5, twin)
    group = Group(images, keys, clean, labels.astype(np.int64))
    print(f"{detector}: {len(images)} images; twin vs onnxruntime on the clean images: "
          f"{twin.fidelity(images, clean):.2g}")  # fmt: skip
    for name, value in TIMED.items():
        search = SEARCHES[name]
        level = SearchLevel(4, {search.param_names[0]: value}, 0, SETTINGS)
        start = time.process_time()
        found = search.run(scorer, group, level)
        spent = time.process_time() - start
        flip = found.counts["flip"]
        print(f"  {name:10s} {search.param_names[0]}=8/255: {spent / len(images) * 1000:7.1f} "
              f"ms/image (CPU, both objectives); flip success {flip.success / flip.n:.2f}; "
              f"twin vs onnxruntime on its points: "
              f"{max(c.twin_adversarial for c in found.counts.values()):.2g}")  # fmt: skip
    print(f"  fgsm against FGSM by hand: {hand_fgsm_mismatches(model, twin, group)} "
          f"of {len(images)} images differ")  # fmt: skip


def hand_fgsm_mismatches(model, twin: GradientTwin, group: Group) -> int:
    """Images where our fgsm's step differs from FGSM written out on the converted graph."""
    assert model.prep.resize == "stretch" and model.prep.scale == 1 / 255  # the detectors'
    radius, differ = 8, 0
    logits_name = "logits_input"
    for node in twin.graph.nodes:
        if node[0] == "Softmax":
            logits_name = node[1][0]
    for i, image in enumerate(group.images):
        # The pipeline's own input tensor: the detectors' input is pixels / 255, 48 x 48,
        # so d loss / d pixel is d loss / d input over 255, of the same sign.
        tensor = torch.tensor(model.to_tensor([image]), requires_grad=True)
        logits = twin.graph(tensor, [logits_name])[0].double()
        y = int(group.targets[i])
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor([y]))
        loss.backward()
        sign = np.sign(tensor.grad.numpy()[0].transpose(1, 2, 0))
        by_hand = np.clip(image + radius * sign, 0, 255)
        clean = twin.tensor(image)
        sample = gradient.Sample(clean, *gradient.ball(clean, radius), np.random.default_rng(0))
        loss_fn = torch_losses.flip_cross_entropy(y, 0.5, model.positive_index())
        ours = next(gradient.fgsm(twin, sample, loss_fn, radius)).numpy()
        differ += int(not np.array_equal(ours, by_hand))
    return differ


def audits(detector: str, limit: int) -> None:
    """RA and RR per paper eps under fgsm, pgd_linf and linf_noise, from one audit."""
    ladder = "eps=" + ",".join(str(e) for e in PAPER)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.html"
        args = ["check", str(SAMPLES / f"{detector}.onnx"), "--data", str(SAMPLES / "data"),
                "--limit", str(limit), "-o", str(out), "-p", f"fgsm:{ladder}",
                "-p", f"pgd_linf:{ladder}", "-p", f"linf_noise:{ladder}"]  # fmt: skip
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        data = json.loads(out.with_suffix(".json").read_text())
    print(f"{detector}: clean accuracy {data['clean']['accuracy']:.3f} on {limit} images")
    print("  attack      eps    RA     RR@0.01 RR@0.05 RR@0.1  RR@0.2")
    for row in data["results"]:
        rr = row["rr"]
        cells = "  ".join(f"{rr.get(b, float('nan')):.3f} " for b in ("0.01", "0.05", "0.1", "0.2"))
        print(f"  {row['perturbation']:10s} {row['params']['eps']:5.2f}  {row['ra']:.3f}  {cells}")


def against_art(detector: str, limit: int) -> None:
    """RA and CPU time per image: our pgd_linf (flip) against ART's PGD on the same twin."""
    try:
        from art.attacks.evasion import ProjectedGradientDescent
        from art.estimators.classification import PyTorchClassifier
    except ImportError:
        print("  (adversarial-robustness-toolbox is not installed: no ART comparison)")
        return
    from auditor.adversarial.objectives import flip_objective
    from auditor.adversarial.square import pixel_steps

    model = load_model(SAMPLES / f"{detector}.onnx", ModelOptions())
    keys, images, labels = load_samples(limit)
    twin = GradientTwin(model)
    positive = model.positive_index()

    class Whole(torch.nn.Module):  # N x 3 x H x W pixels -> log-probabilities
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([twin.log_probs(im.permute(1, 2, 0)) for im in x])

    shape = (3, *images[0].shape[:2])
    classifier = PyTorchClassifier(Whole(), torch.nn.NLLLoss(), shape, 2, clip_values=(0, 255))
    batch = np.stack([im.transpose(2, 0, 1) for im in images]).astype(np.float32)
    print(f"{detector}: pgd_linf against ART ProjectedGradientDescent ({len(images)} images, "
          f"10 steps of 2.5 eps / 10, one random start, flip objective)")  # fmt: skip
    for eps in PAPER:
        radius = pixel_steps(eps)
        start = time.process_time()
        art = ProjectedGradientDescent(
            classifier, norm=np.inf, eps=float(radius), eps_step=2.5 * radius / 10,
            max_iter=10, num_random_init=1, batch_size=len(images), verbose=False,
        ).generate(batch, y=labels)  # fmt: skip
        art_time = time.process_time() - start
        low = np.clip(batch - radius, 0, 255)
        high = np.clip(batch + radius, 0, 255)
        points = np.clip(np.rint(art), low, high).astype(np.uint8).transpose(0, 2, 3, 1)
        art_ra = float(np.mean(model.predict(list(points)).argmax(axis=1) == labels))
        clean = model.predict(images)
        goal = flip_objective(labels, 0.5, positive)
        tracker = gradient.Tracker(model.predict, images, goal, clean, True)
        samples = []
        start = time.process_time()
        for key, image in zip(keys, images):
            tensor = twin.tensor(image)
            rng = derive_rng(0, key, "pgd_linf:flip", PAPER.index(eps) + 1, 0)
            samples.append(gradient.Sample(tensor, *gradient.ball(tensor, radius), rng))
        generators = {
            i: gradient.pgd(
                twin,
                samples[i],
                torch_losses.flip_cross_entropy(int(labels[i]), 0.5, positive),
                radius,
                10,
                1,
            )  # fmt: skip
            for i in tracker.searching()
        }
        gradient.run_attack(tracker, generators, samples)
        ours_time = time.process_time() - start
        ours_ra = 1 - float(np.mean([o.success for o in tracker.outcomes()]))
        print(f"  eps {eps:4.2f} ({radius:2d}/255): RA ours {ours_ra:.3f}, ART {art_ra:.3f}; "
              f"ms/image ours {ours_time / len(images) * 1000:6.1f}, "
              f"ART {art_time / len(images) * 1000:6.1f}")  # fmt: skip


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--no-audits", action="store_true", help="skip part 4")
    args = parser.parse_args()
    for detector in ("detector_a", "detector_b"):
        timings(detector, args.limit)
    for detector in ("detector_a", "detector_b"):
        against_art(detector, args.limit)
    for detector in () if args.no_audits else ("detector_a", "detector_b"):
        audits(detector, args.limit)


if __name__ == "__main__":
    main_bench()
