"""Bench the gradient attacks on the sample detectors (needs the whitebox extra).

Prints, for each detector:
1. the twin's fidelity: largest |twin - onnxruntime| probability difference on the
   clean images and on each attack's final points;
2. seconds per image of each attack at one level (both objectives, CPU time of this
   process, so a busy machine inflates it less than wall time);
3. a reference check: our `fgsm` equals a plain FGSM computed by hand on the converted
   graph (torch autograd on the pipeline's input tensor, one signed step of eps);
4. RA and RR (b = 0.01, 0.05, 0.1, 0.2) under fgsm, pgd_linf and linf_noise at the
   paper's eps 0.01, 0.05, 0.1, 0.2, from full audits (`auditor check`, --limit).

    PYTHONPATH=. python bench/whitebox.py [--limit 100]
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


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--no-audits", action="store_true", help="skip part 4")
    args = parser.parse_args()
    for detector in ("detector_a", "detector_b"):
        timings(detector, args.limit)
    for detector in () if args.no_audits else ("detector_a", "detector_b"):
        audits(detector, args.limit)


if __name__ == "__main__":
    main_bench()
