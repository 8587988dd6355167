"""Build the sample deepfake data and two sample detectors, then verify the RA/RR claim.

Run from the repository root:  python samples/build.py

1. Cuts real photographs bundled with scikit-image into CROP x CROP tiles (real/).
2. Makes fakes from other tiles of the same photographs by simulating a GAN
   generator's upsampling: AutoGAN-style down/up-sampling (Zhang, Karaman & Chang
   2019) with a stride-2 transposed convolution, whose uneven kernel overlap leaves
   a checkerboard (Odena, Dumoulin & Olah 2016) (fake/).
3. Trains two small detectors with numpy only and writes them as ONNX graphs.
4. Audits both on the quick perturbation suite with the package's own perturbations
   and seeds, prints clean accuracy, RA and RR@0.1, and fails if the two detectors do
   not show "same accuracy, different robust ratio" (Lyu, Jin & Das, NLDL 2025).

Everything is seeded; two runs give byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import skimage
from numpy.typing import ArrayLike, NDArray
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # so a plain checkout works without installing `auditor`
from auditor.perturbations import SUITES, apply  # noqa: E402
from auditor.seeds import derive_rng  # noqa: E402

OUT = REPO / "samples" / "deepfake"
PHOTOS = Path(skimage.__file__).parent / "data"
CROP = 48
# Colour photographs shipped inside the scikit-image wheel (never fetched with pooch).
# The JPEGs are halved first so that their 8x8 compression blocks do not become a
# "real" cue that the detectors could learn.
SOURCES = ("astronaut.png", "chelsea.png", "coffee.png", "ihc.png")
HALVED_SOURCES = ("rocket.jpg", "hubble_deep_field.jpg", "retina.jpg")
MIN_STD, MEAN_RANGE = 10.0, (20.0, 235.0)  # skip flat, black or blown-out tiles
# Side taps of the transposed-convolution kernel [t, 1, t]; t = 0.5 is exact bilinear
# interpolation (no artefact), smaller t darkens the interpolated rows and columns.
TAP_RANGE = (0.46, 0.495)
CLASSES = ("real", "fake")
TOLERANCE = 0.1  # the headline b of RR(P, l, b)
RA_AGREEMENT = 0.03  # |RA_a - RA_b| up to which "RA agrees" at a level
SCALE = 1 / 255  # x = pixel * SCALE: mean 0 and std 1 below
PREPROCESS = {
    "size": [CROP, CROP],
    "resize": "stretch",
    "interpolation": "linear",
    "channel_order": "rgb",
    "scale": SCALE,
    "mean": [0.0, 0.0, 0.0],
    "std": [1.0, 1.0, 1.0],
    "layout": "nchw",
    "classes": list(CLASSES),
    "positive_class": "fake",
}

Image = NDArray[np.uint8]


@dataclass(frozen=True)
class Sample:
    """One image of the data set: its path relative to data/, pixels and label (1 = fake)."""

    key: str
    image: Image
    label: int


# ---------------------------------------------------------------- data


def load_photo(name: str, factor: int) -> Image:
    """Read one bundled photograph as RGB, area-downscaled by `factor`."""
    bgr = cv2.imread(str(PHOTOS / name), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {PHOTOS / name}: is scikit-image installed?")
    if factor > 1:
        h, w = bgr.shape[:2]
        bgr = cv2.resize(bgr, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def textured_tiles(photo: Image) -> list[tuple[int, int, Image]]:
    """Return the non-overlapping CROP-sized tiles (y, x, pixels) that have texture."""
    h, w = photo.shape[:2]
    tiles = []
    for y in range(0, h - CROP + 1, CROP):
        for x in range(0, w - CROP + 1, CROP):
            tile = photo[y : y + CROP, x : x + CROP]
            grey = tile.mean(axis=2)
            if grey.std() >= MIN_STD and MEAN_RANGE[0] <= grey.mean() <= MEAN_RANGE[1]:
                tiles.append((y, x, tile))
    return tiles


def simulate_gan_upsampling(tile: Image, tap: float) -> Image:
    """Re-generate `tile` through a 2x down/up autoencoder with a transposed-conv decoder."""
    h, w = tile.shape[:2]
    low = cv2.resize(tile, (w // 2, h // 2), interpolation=cv2.INTER_AREA).astype(np.float32)
    # A stride-2 transposed convolution = zero insertion followed by a convolution.
    zeros = np.zeros((h, w, 3), np.float32)
    zeros[::2, ::2] = low
    taps = np.array([tap, 1.0, tap], np.float32) * (2 / (1 + 2 * tap))  # mean gain 1
    kernel = np.outer(taps, taps)
    # Kernel 3 is not divisible by stride 2: even pixels copy one input, odd ones mix
    # two with gain 2 * tap, so a period-2 grid appears (Odena et al. 2016).
    out = cv2.filter2D(zeros, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def build_dataset(rng: np.random.Generator) -> list[Sample]:
    """Split each photo's tiles in two disjoint halves: one kept real, one made fake."""
    samples = []
    for name in SOURCES + HALVED_SOURCES:
        tiles = textured_tiles(load_photo(name, 2 if name in HALVED_SOURCES else 1))
        order = rng.permutation(len(tiles))
        half = len(tiles) // 2  # the same count per photo and class: no source cue
        stem = Path(name).stem
        for rank, index in enumerate(order[: 2 * half]):
            y, x, tile = tiles[index]
            label = int(rank >= half)
            image = simulate_gan_upsampling(tile, rng.uniform(*TAP_RANGE)) if label else tile
            key = f"{CLASSES[label]}/{stem}_y{y:03d}_x{x:03d}.png"
            samples.append(Sample(key, image, label))
    return samples


def write_dataset(samples: list[Sample]) -> None:
    """Write the samples as PNG (lossless, so the artefacts survive), replacing old ones."""
    for cls in CLASSES:
        folder = OUT / "data" / cls
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
    for s in samples:
        path = str(OUT / "data" / s.key)
        cv2.imwrite(path, s.image[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])


def read_dataset() -> list[Sample]:
    """Decode the written PNGs exactly as an audit would: cv2, BGR converted to RGB."""
    samples = []
    for label, cls in enumerate(CLASSES):
        for path in sorted((OUT / "data" / cls).glob("*.png")):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise SystemExit(f"cannot decode {path}")
            samples.append(Sample(f"{cls}/{path.name}", bgr[:, :, ::-1].copy(), label))
    return samples


# ---------------------------------------------------------------- detectors

Graph = tuple[list[onnx.NodeProto], list[onnx.TensorProto]]


def constant(name: str, value: ArrayLike) -> onnx.TensorProto:
    """Return a float32 initializer."""
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def log_pooled(stats: str, eps: float) -> Graph:
    """Nodes mapping pooled statistics [N, F, 1, 1] to features log(eps + s), [N, F]."""
    nodes = [
        helper.make_node("Add", [stats, "eps"], ["stats_eps"]),
        helper.make_node("Log", ["stats_eps"], ["log_stats"]),
        helper.make_node("Flatten", ["log_stats"], ["features"]),
    ]
    return nodes, [constant("eps", eps)]


def periodic_features() -> Graph:
    """Detector A: phase-coherent period-2 amplitude from 2x2 stride-2 Haar filters."""
    patterns = [[[1, -1], [-1, 1]], [[1, 1], [-1, -1]], [[1, -1], [1, -1]]]  # grid, rows, cols
    # Each filter averages the three channels and its 2x2 block, signed by the pattern.
    weights = np.repeat(np.array(patterns, np.float32)[:, None] / 12, 3, axis=1)
    nodes = [
        helper.make_node("Conv", ["input", "haar"], ["haar_out"], strides=[2, 2]),
        # Averaging the signed responses before Abs keeps only a pattern that is in
        # phase over the whole tile: an upsampler's grid adds up, texture and noise cancel.
        helper.make_node("GlobalAveragePool", ["haar_out"], ["haar_mean"]),
        helper.make_node("Abs", ["haar_mean"], ["periodic"]),
    ]
    # eps = 3e-3 (0.77 grey levels) floors the amplitude, so real tiles' near-zero
    # values do not become large, noise-driven log features.
    tail, inits = log_pooled("periodic", 3e-3)
    return nodes + tail, [constant("haar", weights), *inits]


def residual_features() -> Graph:
    """Detector B: per-channel mean absolute high-pass residuals of four 3x3 filters."""
    laplacian = [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    horizontal = [[0, 0, 0], [1, -2, 1], [0, 0, 0]]
    vertical = [[0, 1, 0], [0, -2, 0], [0, 1, 0]]
    diagonal = [[1, 0, -1], [0, 0, 0], [-1, 0, 1]]
    bank = np.array([laplacian, horizontal, vertical, diagonal], np.float32)
    weights = np.tile(bank, (3, 1, 1))[:, None]  # group conv: four filters per channel
    nodes = [
        helper.make_node("Conv", ["input", "highpass"], ["residual"], group=3),
        helper.make_node("Abs", ["residual"], ["residual_abs"]),
        helper.make_node("GlobalAveragePool", ["residual_abs"], ["energy"]),
    ]
    tail, inits = log_pooled("energy", 1e-4)
    return nodes + tail, [constant("highpass", weights), *inits]


@dataclass(frozen=True)
class DetectorSpec:
    """How one detector is built: its feature graph and its L2 penalties to try."""

    name: str
    title: str
    features: Callable[[], Graph]
    penalties: tuple[float, ...]


DETECTORS = (
    # Nearly unregularised: confident, saturated probabilities.
    DetectorSpec("detector_a", "periodic-artefact detector", periodic_features, (1e-4,)),
    # Strongly regularised: probabilities near the boundary. The strongest penalty whose
    # accuracy is within 1 point of detector A's is kept: the paper compares detectors of
    # equal accuracy, so that condition is set by construction, not left to chance.
    DetectorSpec(
        "detector_b",
        "residual-energy detector",
        residual_features,
        (1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.002, 0.001),
    ),
)


def make_model(
    spec: DetectorSpec, weights: NDArray[np.float64] | None = None, bias: float = 0.0
) -> onnx.ModelProto:
    """The ONNX model: features only, or with weights the full [N, 2] probability model."""
    nodes, inits = spec.features()
    n_features = len(weights) if weights is not None else None
    output = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", n_features])
    if weights is not None:
        # Logits (-z/2, +z/2) for (real, fake): softmax gives p_fake = sigmoid(z).
        gemm = np.stack([-weights, weights], axis=1) / 2
        inits += [constant("gemm_w", gemm), constant("gemm_b", [-bias / 2, bias / 2])]
        nodes += [
            helper.make_node("Gemm", ["features", "gemm_w", "gemm_b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ]
        output = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, CROP, CROP])
    doc = f"Sample {spec.title}; classes real, fake."
    graph = helper.make_graph(nodes, spec.name, [inp], [output], inits, doc_string=doc)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="auditor-samples",
        producer_version="1",
    )
    # onnx writes its own newest IR version by default, which older onnxruntime releases
    # refuse; IR 8 is the lowest that carries opset 17, so any onnxruntime >= 1.13 loads it.
    model.ir_version = 8
    helper.set_model_props(model, {"auditor.preprocess": json.dumps(PREPROCESS)})
    onnx.checker.check_model(model, full_check=True)
    return model


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    """Return a CPU onnxruntime session for `model`."""
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, images: list[Image]) -> NDArray[np.float32]:
    """Run a model on CROP x CROP RGB uint8 images, preprocessed as PREPROCESS declares."""
    batch = np.stack(images).astype(np.float32).transpose(0, 3, 1, 2) * np.float32(SCALE)
    return sess.run(None, {"input": batch})[0]


def fit_logistic(
    features: NDArray[np.floating], labels: NDArray[np.int_], penalty: float
) -> tuple[NDArray[np.float64], float]:
    """L2-penalised logistic regression by Newton's method; returns raw-feature weights."""
    mu, sd = features.mean(axis=0), features.std(axis=0) + 1e-12
    # Standardising first makes one penalty mean the same for every feature.
    z = np.column_stack([(features - mu) / sd, np.ones(len(features))])
    reg = penalty * np.eye(z.shape[1])
    reg[-1, -1] = 0.0  # the intercept is not penalised
    coef = np.zeros(z.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-z @ coef))
        grad = z.T @ (p - labels) / len(labels) + reg @ coef
        hess = (z * (p * (1 - p))[:, None]).T @ z / len(labels) + reg
        step = np.linalg.solve(hess, grad)
        coef -= step
        if np.abs(step).max() < 1e-10:
            break
    weights = coef[:-1] / sd
    return weights, float(coef[-1] - weights @ mu)


def accuracy(p_fake: NDArray[np.floating], labels: NDArray[np.int_]) -> float:
    """Share of samples whose decision (fake iff p >= 0.5) matches the label."""
    return float(np.mean((p_fake >= 0.5) == labels))


def train(
    spec: DetectorSpec,
    images: list[Image],
    labels: NDArray[np.int_],
    train_mask: NDArray[np.bool_],
    target: float | None,
) -> onnx.ModelProto:
    """Fit `spec` on the training split; with `target`, match that accuracy on all samples."""
    features = run(session(make_model(spec)), images)
    tried = []
    for penalty in spec.penalties:  # strongest first
        weights, bias = fit_logistic(features[train_mask], labels[train_mask], penalty)
        acc = accuracy(1 / (1 + np.exp(-(features @ weights + bias))), labels)
        miss = 0.0 if target is None else abs(acc - target)
        tried.append((miss, penalty, weights, bias))
        if miss <= 0.01:  # the strongest penalty that matches
            break
    _, penalty, weights, bias = min(tried, key=lambda t: t[0])  # else the closest
    print(f"{spec.name}: L2 penalty {penalty:g}, fitted on {int(train_mask.sum())} samples")
    return make_model(spec, weights, bias)


def stratified_split(labels: NDArray[np.int_], rng: np.random.Generator) -> NDArray[np.bool_]:
    """Mark a random half of each class as the training split."""
    mask = np.zeros(len(labels), bool)
    for cls in (0, 1):
        members = rng.permutation(np.flatnonzero(labels == cls))
        mask[members[: len(members) // 2]] = True
    return mask


# ---------------------------------------------------------------- audit


def audit(
    models: dict[str, ort.InferenceSession], samples: list[Sample], seed: int
) -> dict[tuple[str, int], dict[str, tuple[float, float]]]:
    """RA and RR@TOLERANCE per (perturbation, level) of the quick suite, per model."""
    labels = np.array([s.label for s in samples])
    clean = {name: run(sess, [s.image for s in samples])[:, 1] for name, sess in models.items()}
    table = {}
    for pert in SUITES["quick"]:
        for level in range(1, 6):
            # The same per-sample generators as an audit with --seed `seed`, so the
            # figures printed here are the ones `auditor check` reports.
            perturbed = [
                apply(pert, s.image, level, derive_rng(seed, s.key, pert, level, 0))
                for s in samples
            ]
            row = {}
            for name, sess in models.items():
                p = run(sess, perturbed)[:, 1]
                rr = float(np.mean(np.abs(p - clean[name]) <= TOLERANCE))
                row[name] = (accuracy(p, labels), rr)
            table[(pert, level)] = row
    return table


def clean_accuracies(
    models: dict[str, ort.InferenceSession], samples: list[Sample], train_mask: NDArray[np.bool_]
) -> dict[str, float]:
    """Print and return each model's clean accuracy on all samples."""
    labels = np.array([s.label for s in samples])
    accs = {}
    for name, sess in models.items():
        p = run(sess, [s.image for s in samples])[:, 1]
        accs[name] = accuracy(p, labels)
        held_out = accuracy(p[~train_mask], labels[~train_mask])
        confidence = np.median(np.maximum(p, 1 - p))
        print(
            f"{name}: clean accuracy {accs[name]:.3f} on all {len(samples)} samples "
            f"({held_out:.3f} held out); median max(p, 1-p) {confidence:.3f}"
        )
    return accs


def print_table(table: dict[tuple[str, int], dict[str, tuple[float, float]]]) -> None:
    """Print RA and RR@TOLERANCE of both detectors, one line per level."""
    print(f"\n{'perturbation':18s} lvl   RA_a   RA_b   RR_a   RR_b  (RR at b = {TOLERANCE})")
    for (pert, level), row in table.items():
        (ra_a, rr_a), (ra_b, rr_b) = row.values()
        print(f"{pert:18s} {level:3d}  {ra_a:.3f}  {ra_b:.3f}  {rr_a:.3f}  {rr_b:.3f}")


def verify(
    accs: dict[str, float], table: dict[tuple[str, int], dict[str, tuple[float, float]]]
) -> None:
    """Print the widest RR gaps; exit non-zero unless the paper's pattern holds."""
    a, b = accs

    def gap(k: tuple[str, int]) -> float:
        return abs(table[k][a][1] - table[k][b][1])

    def show(label: str, k: tuple[str, int]) -> None:
        (ra_a, rr_a), (ra_b, rr_b) = table[k][a], table[k][b]
        print(
            f"{label}: {k[0]} level {k[1]}: RR_a {rr_a:.3f}, RR_b {rr_b:.3f} "
            f"(gap {gap(k):.3f}); RA_a {ra_a:.3f}, RA_b {ra_b:.3f}"
        )

    widest = max(table, key=gap)
    print()
    show(f"largest RR@{TOLERANCE} gap", widest)
    agreeing = [k for k in table if abs(table[k][a][0] - table[k][b][0]) <= RA_AGREEMENT]
    if agreeing:
        show(f"largest gap where RA agrees within {RA_AGREEMENT}", max(agreeing, key=gap))
    problems = []
    if abs(accs[a] - accs[b]) > 0.02:
        problems.append("clean accuracies differ by more than 2 points")
    if min(accs.values()) < 0.85:
        problems.append("a detector's clean accuracy is below 0.85")
    if gap(widest) < 0.2:
        problems.append(f"no perturbation level gives an RR@{TOLERANCE} gap of 0.2 or more")
    if problems:
        raise SystemExit("FAILED: " + "; ".join(problems))
    print(f"OK: clean accuracies within 2 points, RR@{TOLERANCE} differs by >= 0.2")


def main() -> None:
    """Build data and detectors, write them under samples/deepfake, verify the claim."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed for data, split and audit")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    write_dataset(build_dataset(rng))
    samples = read_dataset()
    labels = np.array([s.label for s in samples])
    print(f"{len(samples)} samples: {int(np.sum(labels == 0))} real, {int(labels.sum())} fake")
    train_mask = stratified_split(labels, rng)
    images = [s.image for s in samples]
    sessions: dict[str, ort.InferenceSession] = {}
    target = None  # detector B is matched to detector A's accuracy
    for spec in DETECTORS:
        model = train(spec, images, labels, train_mask, target)
        onnx.save(model, str(OUT / f"{spec.name}.onnx"))
        sessions[spec.name] = session(model)
        target = accuracy(run(sessions[spec.name], images)[:, 1], labels)
    accs = clean_accuracies(sessions, samples, train_mask)
    table = audit(sessions, samples, args.seed)
    print_table(table)
    verify(accs, table)


if __name__ == "__main__":
    main()
