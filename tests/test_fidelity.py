"""Our ImageNet-C corruptions degrade images as strongly as the reference implementation.

The fixture holds, for each corruption and severity, the median PSNR against the clean
image that `imagecorruptions` 1.1.2 reaches on eight 224 px photographs (written by
bench/imagecorruptions_reference.py in its pinned environment). We compute ours on
the same pixels, with `scale_to_input` off, and ask for the same median within 1.5 dB.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from auditor.perturbations import SUITES, apply
from auditor.seeds import derive_rng

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "imagecorruptions_psnr.json"
TOLERANCE_DB = 1.5
ROUNDS = 4  # as the reference: each photograph corrupted this many times


def reference_module():
    """Import bench/imagecorruptions_reference.py, which builds the photographs."""
    path = ROOT / "bench" / "imagecorruptions_reference.py"
    spec = importlib.util.spec_from_file_location("imagecorruptions_reference", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@cache
def fixture() -> dict:
    return json.loads(FIXTURE.read_text())


@cache
def photos() -> tuple[np.ndarray, ...]:
    pytest.importorskip("skimage", reason="the photographs come from scikit-image's data")
    return tuple(reference_module().photos())


def our_median_psnr(name: str, severity: int) -> float:
    """Median PSNR of our `name` at `severity` over the photographs, ROUNDS seeds each."""
    ref = reference_module()
    values = [
        ref.psnr(im, apply(name, im, severity, derive_rng(r, str(i), name, severity, 0), False))
        for r in range(ROUNDS)
        for i, im in enumerate(photos())
    ]
    return float(np.median(values))


def test_the_photographs_are_the_ones_the_reference_saw():
    ref = reference_module()
    assert [ref.sha256(im) for im in photos()] == [p["sha256"] for p in fixture()["photos"]]


def test_the_fixture_covers_all_nineteen_corruptions():
    assert set(fixture()["median_psnr"]) == set(SUITES["imagenet-c-all"])
    assert len(SUITES["imagenet-c-all"]) == 19


@pytest.mark.parametrize("name", SUITES["imagenet-c-all"])
def test_median_psnr_matches_the_reference_within_tolerance(name):
    expected = fixture()["median_psnr"][name]
    ours = [our_median_psnr(name, severity) for severity in range(1, 6)]
    gaps = [round(o - e, 2) for o, e in zip(ours, expected)]
    assert all(abs(g) <= TOLERANCE_DB for g in gaps), f"ours {ours}, reference {expected}"


if __name__ == "__main__":  # print the comparison table: python tests/test_fidelity.py
    sys.path.insert(0, str(ROOT))
    print(f"{'corruption':18} " + "  ".join(f"{'L' + str(s):>17}" for s in range(1, 6)))
    worst = (0.0, "")
    for name in SUITES["imagenet-c-all"]:
        cells = []
        for severity in range(1, 6):
            ours = our_median_psnr(name, severity)
            reference = fixture()["median_psnr"][name][severity - 1]
            cells.append(f"{ours:5.1f}/{reference:5.1f} ({ours - reference:+.2f})")
            if abs(ours - reference) > abs(worst[0]):
                worst = (ours - reference, f"{name} L{severity}")
        print(f"{name:18} " + "  ".join(cells))
    print(f"worst gap: {worst[0]:+.2f} dB at {worst[1]}")
