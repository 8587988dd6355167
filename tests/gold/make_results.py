"""Write `results.json`: the results of a made-up but coherent audit, for the report tests.

A binary real/fake detector, 300 samples (150 per class), two perturbations at five
levels. Every rate is a count over n with its Wilson interval, and each level's RR,
RR curve and delta quantiles come from one list of 300 output changes, so the numbers
agree with each other the way an engine's would. Run it from the repository root:

    python tests/gold/make_results.py
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

from auditor.results import AuditResults, Gate, LevelResult, PerturbationSummary, Verdict, to_json

N_PER_CLASS = 150
N = 2 * N_PER_CLASS
KEYS = ["0.01", "0.05", "0.1", "0.2"]
CLEAN = {"real": 144, "fake": 139}  # correct decisions per class on clean images


class Spec(NamedTuple):
    """One perturbation of the made-up audit and how the detector fares at each level."""

    name: str
    family: str
    description: str
    param: str
    values: list[float]
    kept: list[tuple[int, int]]  # (real kept real, fake caught) per level, out of 150
    scales: list[float]  # mean output change per level


PERTURBATIONS = [
    Spec(
        "gaussian_noise",
        "noise",
        "Additive Gaussian noise with standard deviation `sigma` on the [0, 1] scale.",
        "sigma",
        [0.08, 0.12, 0.18, 0.26, 0.38],
        [(141, 133), (138, 120), (133, 101), (126, 69), (118, 36)],
        [0.02, 0.045, 0.09, 0.17, 0.35],
    ),
    Spec(
        "jpeg_compression",
        "digital",
        "JPEG encode and decode at `quality` (0..100).",
        "quality",
        [25, 18, 15, 10, 7],
        [(143, 137), (142, 135), (142, 132), (140, 127), (138, 120)],
        [0.006, 0.009, 0.012, 0.02, 0.032],
    ),
]


def wilson(k: int, n: int, z: float = 1.959963984540054) -> list[float]:
    """Return the 95% Wilson score interval of k successes in n, rounded."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6)]


def png(rgb: tuple[int, int, int], size: int = 4) -> str:
    """Return a `size` x `size` PNG of a shaded square as a data URI."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    rows = b"".join(
        b"\x00" + bytes(max(0, c - 20 * ((x + y) % 3)) for x in range(size) for c in rgb)
        for y in range(size)
    )
    body = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(body).decode("ascii")


def deltas(scale: float) -> list[float]:
    """Return 300 output changes: exponential quantiles of mean `scale`, capped at 1."""
    return sorted(min(1.0, -scale * math.log(1 - (i + 0.5) / N)) for i in range(N))


def rr(values: list[float], b: float) -> float:
    return sum(v <= b + 1e-12 for v in values) / len(values)


def level_result(spec: Spec, index: int) -> LevelResult:
    name, family, _, param, values, kept, scales = spec
    real, fake = kept[index]
    d = deltas(scales[index])
    rr_counts = {k: sum(v <= float(k) + 1e-12 for v in d) for k in KEYS}
    flips = abs(CLEAN["real"] - real) + abs(CLEAN["fake"] - fake) + 2 * (index + 1)
    return LevelResult(
        perturbation=name,
        family=family,
        level=index + 1,
        params={param: values[index]},
        n=N,
        ra=round((real + fake) / N, 6),
        ra_ci=wilson(real + fake, N),
        rr={k: round(c / N, 6) for k, c in rr_counts.items()},
        rr_ci={k: wilson(c, N) for k, c in rr_counts.items()},
        flip_rate=round(flips / N, 6),
        flip_rate_ci=wilson(flips, N),
        delta_quantiles={
            "p50": round(d[N // 2], 6),
            "p90": round(d[int(N * 0.9)], 6),
            "max": round(d[-1], 6),
        },
        per_class={
            "real": {
                "n": N_PER_CLASS,
                "ra": round(real / N_PER_CLASS, 6),
                "ra_ci": wilson(real, N_PER_CLASS),
                "mean_shift": round(scales[index] / 4, 6),
            },
            "fake": {
                "n": N_PER_CLASS,
                "ra": round(fake / N_PER_CLASS, 6),
                "ra_ci": wilson(fake, N_PER_CLASS),
                "mean_shift": round(-scales[index], 6),
            },
        },
        auc=round(0.981 - 0.9 * scales[index], 6),
        ra_drop=round((real + fake - sum(CLEAN.values())) / N, 6),
        rr_curve=[[round(i / 100, 2), round(rr(d, i / 100), 6)] for i in range(51)],
    )


def area(values: list[float]) -> float:
    """Trapezoid area under level 0..L, normalized by L."""
    return sum((a + b) / 2 for a, b in zip(values, values[1:])) / (len(values) - 1)


def summary(rows: list[LevelResult], clean: float) -> PerturbationSummary:
    ras = [r.ra for r in rows if r.ra is not None]
    return PerturbationSummary(
        perturbation=rows[0].perturbation,
        family=rows[0].family,
        levels=len(rows),
        mean_ra=round(sum(ras) / len(ras), 6),
        area_ra=round(area([clean, *ras]), 6),
        mean_rr={k: round(sum(r.rr[k] for r in rows) / len(rows), 6) for k in KEYS},
        area_rr={k: round(area([1.0, *(r.rr[k] for r in rows)]), 6) for k in KEYS},
    )


def build() -> AuditResults:
    results = [level_result(spec, i) for spec in PERTURBATIONS for i in range(5)]
    clean = round(sum(CLEAN.values()) / N, 6)
    noise_l5 = results[4]
    return AuditResults(
        auditor_version="0.1.0",
        created_at="2025-03-14T09:26:53Z",
        started_at="2025-03-14T09:21:07Z",
        finished_at="2025-03-14T09:26:52Z",
        model={
            "path": "models/detector_a.onnx",
            "file_name": "detector_a.onnx",
            "sha256": hashlib.sha256(b"detector_a.onnx").hexdigest(),
            "size_bytes": 9412336,
            "opset": 17,
            "producer": "pytorch 2.3.0",
            "inputs": [{"name": "input", "shape": ["batch", 3, 224, 224], "dtype": "float32"}],
            "outputs": [{"name": "probs", "shape": ["batch", 2], "dtype": "float32"}],
            "input_name": "input",
            "output_name": "probs",
            "layout": "nchw",
            "batch": "dynamic",
            "output_kind": "probs",
            "output_kind_evidence": "8 probe outputs lie in [0, 1] and every row sums to 1 "
            "(largest error 2.4e-07)",
            "classes": ["real", "fake"],
            "task": "binary",
            "positive_class": "fake",
            "preprocess": {
                "size": [224, 224],
                "resize": "stretch",
                "crop_ratio": 0.875,
                "pad_value": 0.0,
                "pad_align": "center",
                "interpolation": "linear",
                "channel_order": "rgb",
                "scale": 1 / 255,
                "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225],
                "layout": "nchw",
            },
            "runtime": {
                "provider": "CPUExecutionProvider",
                "requested": "auto",
                "available": ["CPUExecutionProvider"],
                "fallback": True,
                "session_options": {
                    "intra_op_num_threads": 0,
                    "graph_optimization_level": "ORT_ENABLE_ALL",
                },
            },
            "external_data": [
                {
                    "path": "detector_a.onnx.data",
                    "sha256": hashlib.sha256(b"detector_a.onnx.data").hexdigest(),
                    "size": 9400000,
                }
            ],
            "preprocess_sources": {
                "size": "model",
                "resize": "default",
                "crop_ratio": "default",
                "pad_value": "default",
                "pad_align": "default",
                "interpolation": "flag",
                "channel_order": "metadata",
                "scale": "metadata",
                "mean": "metadata",
                "std": "metadata",
                "layout": "model",
            },
        },
        data={
            "path": "data/faces",
            "kind": "folders",
            "n_samples": N,
            "n_skipped": 2,
            "manifest_sha256": hashlib.sha256(b"data/faces manifest").hexdigest(),
            "class_counts": {"real": N_PER_CLASS, "fake": N_PER_CLASS},
            "skipped": [
                {"path": "fake/clip_0042.gif", "reason": "unsupported file type .gif"},
                {"path": "real/img_0197.png", "reason": "cannot decode image (truncated file)"},
            ],
            "manifest": [
                {
                    "path": f"{label}/img_{i:04d}.png",
                    "label": label,
                    "sha256": hashlib.sha256(f"{label}/{i}".encode()).hexdigest(),
                }
                for label in ("fake", "real")
                for i in range(1, 4)
            ],
        },
        config={
            "suite": "quick",
            "perturbations": [
                {
                    "name": s.name,
                    "family": s.family,
                    "description": s.description,
                    "levels": [{s.param: v} for v in s.values],
                    **(
                        {"implementation": {"codec": "OpenCV 4.10.0 libjpeg-turbo 3.0.3"}}
                        if s.family == "digital"
                        else {}
                    ),
                }
                for s in PERTURBATIONS
            ],
            "tolerances": [float(k) for k in KEYS],
            "tolerance_keys": KEYS,
            "headline_tolerance": 0.1,
            "headline_tolerance_key": "0.1",
            "delta_norm": "linf",
            "seed": 0,
            "repeats": 1,
            "threshold": 0.5,
            "limit": None,
            "batch_size": 32,
            "scale_to_input": True,
            "command_line": [
                "auditor",
                "check",
                "models/detector_a.onnx",
                "--data",
                "data/faces",
                "-p",
                "gaussian_noise",
                "-p",
                "jpeg_compression",
                "--interpolation",
                "linear",
                "--fail-under-ra",
                "0.6",
                "--fail-under-rr",
                "0.2",
            ],
        },
        environment={
            "auditor": "0.1.0",
            "python": "3.11.7",
            "onnxruntime": "1.18.0",
            "onnx": "1.16.1",
            "opencv": "4.10.0",
            "numpy": "1.26.4",
            "provider": "CPUExecutionProvider",
            "platform": "Linux-6.5.0-x86_64-with-glibc2.35",
            "machine": "x86_64",
            "os": "Ubuntu 22.04.4 LTS, kernel 6.5.0",
            "cpu": "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz (16 logical cores)",
            "gpu": None,
        },
        clean={
            "n": N,
            "accuracy": clean,
            "accuracy_ci": wilson(sum(CLEAN.values()), N),
            "per_class": {
                c: {
                    "n": N_PER_CLASS,
                    "accuracy": round(k / N_PER_CLASS, 6),
                    "accuracy_ci": wilson(k, N_PER_CLASS),
                }
                for c, k in CLEAN.items()
            },
            "auc": 0.981,
        },
        results=results,
        summary=[summary(results[i : i + 5], clean) for i in (0, 5)],
        thumbnails={
            "sample": "fake/img_0001.png",
            "clean": png((200, 160, 120)),
            "levels": {
                "gaussian_noise": [png((200 - 25 * i, 160, 120 + 25 * i)) for i in range(1, 6)],
                "jpeg_compression": [png((200, 160 - 20 * i, 120)) for i in range(1, 6)],
            },
        },
        moved={
            s.name: [
                {
                    "sample": f"fake/img_{k + 1:04d}.png",
                    "level": 5,
                    "label": "fake",
                    "delta": round(0.9 - 0.2 * k - 0.3 * j, 6),
                    "clean_probs": [0.05, 0.95],
                    "perturbed_probs": [
                        round(0.05 + 0.9 - 0.2 * k - 0.3 * j, 6),
                        round(0.95 - 0.9 + 0.2 * k + 0.3 * j, 6),
                    ],
                    "clean_thumbnail": png((200, 160 - 10 * k, 120)),
                    "perturbed_thumbnail": png((150 + 10 * k, 160, 140)),
                }
                for k in range(2)
            ]
            for j, s in enumerate(PERTURBATIONS)
        },
        determinism={"n_samples": 8, "n_evaluations": 88, "max_abs_diff": 0.0, "decision_flips": 0},
        status="complete",
        progress={"done": 3300, "total": 3300},
        identification={
            "report_id": "5f0c2a9e-3b1d-4c6e-9a7f-2d8e1b4c6a90",
            "issued_at": "2025-03-14T09:26:54+00:00",
            "auditor": "A. Reviewer",
            "organisation": "Example Test Lab",
            "statement": "The results relate only to the model file and the data identified "
            "in this report, tested with the method, configuration and environment stated here.",
        },
        verdict=Verdict(
            False,
            [
                Gate(
                    "ra >= 0.6 at every level", "ra", 0.6, noise_l5.ra, False, "gaussian_noise L5"
                ),
                Gate(
                    "rr(0.1) >= 0.2 at every level",
                    "rr",
                    0.2,
                    noise_l5.rr["0.1"],
                    True,
                    "gaussian_noise L5",
                ),
                Gate(
                    "RA >= 0.9 at jpeg_compression, levels 1, 2, 3",
                    "ra",
                    0.9,
                    results[7].ra,
                    False,
                    "jpeg_compression L3",
                    ci=results[7].ra_ci,
                    outcome="INCONCLUSIVE",
                    bound="min",
                    checked=3,
                ),
            ],
            outcome="FAIL",
            decision_rule="Each policy gate is decided on the 95% interval of its metric.",
            policy={
                "path": "policy.toml",
                "sha256": hashlib.sha256(b"policy.toml").hexdigest(),
                "audit": {"seed": 0},
                "gates": [
                    {
                        "metric": "ra",
                        "perturbation": "jpeg_compression",
                        "levels": [1, 2, 3],
                        "min": 0.9,
                        "max": None,
                        "tolerance": None,
                    }
                ],
            },
        ),
    )


if __name__ == "__main__":
    out = Path(__file__).with_name("results.json")
    out.write_text(to_json(build()), encoding="utf-8")
    print(f"wrote {out}")
