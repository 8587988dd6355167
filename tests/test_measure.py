"""What a level applied and changed: applied parameters, pixel change, no-effect levels,
per-sample outcome bitsets (merged across shards), and the gates and summary that skip
levels which measured nothing."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import colour_image, reference_probs, write_image

from auditor import AuditConfig, run_audit
from auditor.data import decode, discover
from auditor.engine.pipeline import perturb
from auditor.engine.plan import Draw
from auditor.engine.run import merge, run_shard
from auditor.metrics.paired import pack_bits, unpack_bits
from auditor.perturbations.registry import REFERENCE_SIZE, applied_params
from auditor.report.html import render_html, summary_line
from auditor.results import AuditResults, from_json, load_json, to_json
from auditor.verdict import policy

SAMPLES = Path(__file__).parents[1] / "samples" / "deepfake"
GOLD = Path(__file__).parent / "gold" / "results.json"


def level(results: AuditResults, name: str, number: int):
    return next(r for r in results.results if r.perturbation == name and r.level == number)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Path:
    """Eight real 48 px samples of the quickstart, four per class."""
    root = tmp_path_factory.mktemp("quickstart")
    for cls in ("real", "fake"):
        for path in sorted((SAMPLES / "data" / cls).glob("*.png"))[:4]:
            (root / cls).mkdir(exist_ok=True)
            shutil.copy(path, root / cls / path.name)
    return root


@pytest.fixture(scope="module")
def blurred(quickstart) -> AuditResults:
    config = AuditConfig(
        model_path=SAMPLES / "detector_a.onnx",
        data_path=quickstart,
        perturbations=("gaussian_blur:sigma=1,4",),
    )
    return run_audit(config)


def test_blur_sigma_1_on_48px_samples_applies_0_21_and_changes_nothing(blurred):
    factor = 48 / REFERENCE_SIZE
    first, fourth = level(blurred, "gaussian_blur", 1), level(blurred, "gaussian_blur", 2)
    scale = {"min": round(factor, 6), "median": round(factor, 6), "max": round(factor, 6)}
    assert first.params == {"sigma": 1.0}
    assert first.applied == {"params": {"sigma": round(factor, 6)}, "scale": scale}
    assert (first.changed_share, first.psnr_median, first.no_effect) == (0.0, None, True)
    assert first.rr == {k: 1.0 for k in first.rr}  # RR 1 by construction: it measured nothing
    assert fourth.applied["params"] == {"sigma": round(4 * factor, 6)}
    assert fourth.changed_share == 1.0 and not fourth.no_effect
    assert fourth.psnr_median is not None and 20 < fourth.psnr_median < 80


def test_the_report_shows_applied_parameters_and_marks_the_level(blurred):
    html = render_html(blurred)
    assert '<span class="applied">applied sigma=0.2143 (×0.2143)</span>' in html
    cell = html.index("gaussian_blur </span>L1")
    row = html[html.rfind("<tr", 0, cell) :]
    assert row.startswith('<tr id="lvl-gaussian_blur-L1" class="no-effect">')
    assert 'L1 <strong class="no-effect-mark">no effect</strong>' in html
    assert ">Pixels changed</th>" in html and ">PSNR (dB)</th>" in html
    # Older results have no such columns (the golden report covers their exact form).
    assert "Pixels changed" not in render_html(load_json(GOLD))


def test_results_round_trip_and_older_results_keep_their_form(blurred):
    again = from_json(to_json(blurred))
    assert again.results == blurred.results
    old = json.loads(to_json(load_json(GOLD)))["results"][0]
    assert "applied" not in old and "outcomes" not in old and "no_effect" not in old


def test_applied_parameters_vary_with_the_image_size(tmp_path, binary_model):
    rng = np.random.default_rng(3)
    for i in range(6):  # three images with a 48 px short side, three with 64 px
        size = (48, 80) if i % 2 else (96, 64)
        write_image(tmp_path / "d" / ("real" if i < 3 else "fake") / f"{i}.png",
                    colour_image(rng, 0.2 if i < 3 else 0.8, size))  # fmt: skip
    config = AuditConfig(
        model_path=binary_model, data_path=tmp_path / "d", perturbations=("gaussian_blur:sigma=2",)
    )
    applied = run_audit(config).results[0].applied
    low, mid, high = 48 / 224, 56 / 224, 64 / 224  # the median of 3 x 48 and 3 x 64 is 56
    assert applied["params"]["sigma"] == {
        "min": round(2 * low, 6),
        "median": round(2 * mid, 6),
        "max": round(2 * high, 6),
    }
    assert applied["scale"] == {
        "min": round(low, 6),
        "median": round(mid, 6),
        "max": round(high, 6),
    }
    unscaled = run_audit(dataclasses.replace(config, scale_to_input=False)).results[0]
    assert unscaled.applied == {"params": {"sigma": 2.0}, "scale": None}


def test_applied_params_keep_unscaled_parameters_as_stated():
    stated = {"radius": 4.0, "quality": 30}
    assert applied_params(("radius",), stated, {112: 1}) == {
        "params": {"radius": 2.0, "quality": 30},
        "scale": {"min": 0.5, "median": 0.5, "max": 0.5},
    }
    assert applied_params((), stated, {112: 1}) == {"params": stated, "scale": None}


@pytest.fixture(scope="module")
def changed(tmp_path_factory) -> tuple[AuditConfig, AuditResults]:
    """Noise that changes every image, and a blur too small to change any pixel."""
    from conftest import build_model, write_class_folders

    root = tmp_path_factory.mktemp("changed")
    model = build_model(root / "m.onnx", metadata={"classes": ["real", "fake"], "size": [16, 16]})
    data = write_class_folders(root / "data", per_class=5)
    # A fake that looks real: the model gets it wrong, so not every outcome bit is 1.
    write_image(data / "fake" / "f99.png", colour_image(np.random.default_rng(1), 0.1))
    config = AuditConfig(
        model_path=model,
        data_path=data,
        perturbations=("gaussian_noise:sigma=0.08", "gaussian_blur:sigma=0.01"),
        repeats=2,
    )
    return config, run_audit(config)


def expected_psnr_median(config: AuditConfig, name: str, params: dict) -> float:
    """The median PSNR over samples and draws, recomputed from the perturbed pixels."""
    values = []
    for sample in discover(config.data_path).samples:
        image = decode(sample, config.max_pixels).image
        for repeat in range(config.repeats):
            draw = Draw(name, 1, params, repeat)
            out = perturb(image, draw, sample.key, config.seed, config.scale_to_input)
            mse = np.mean((image.astype(np.float64) - out) ** 2)
            values.append(10 * np.log10(255.0**2 / mse))
    return float(np.median(values))


def test_changed_share_and_psnr_of_a_perturbation_that_changes_pixels(changed):
    config, results = changed
    noise = level(results, "gaussian_noise", 1)
    assert (noise.changed_share, noise.no_effect) == (1.0, False)
    expected = expected_psnr_median(config, "gaussian_noise", {"sigma": 0.08})
    assert noise.psnr_median == pytest.approx(expected, abs=0.011)  # counted in 0.01 dB steps
    assert noise.applied == {"params": {"sigma": 0.08}, "scale": None}  # not pixel-sized


def test_a_perturbation_that_changes_no_pixel_has_no_effect(changed):
    _, results = changed
    blur = level(results, "gaussian_blur", 1)
    assert (blur.changed_share, blur.psnr_median, blur.no_effect) == (0.0, None, True)
    assert blur.flip_rate == 0.0 and blur.rr == {k: 1.0 for k in blur.rr}


def popcount(text: str, n: int) -> int:
    return int(unpack_bits(text, n).sum())


def test_outcome_bitsets_count_what_the_rates_count(changed):
    _, results = changed
    for lv in results.results:
        out, n = lv.outcomes, lv.n
        assert popcount(out["correct"], n) == round(lv.ra * n)
        assert popcount(out["flipped"], n) == round(lv.flip_rate * n)
        assert {k: popcount(v, n) for k, v in out["robust"].items()} == {
            k: round(v * n) for k, v in lv.rr.items()
        }


def test_outcome_bits_follow_the_manifest_order(changed):
    config, results = changed
    manifest = results.data["manifest"]
    assert [row["path"] for row in manifest] == sorted(row["path"] for row in manifest)
    blur = level(results, "gaussian_blur", 1)  # no pixel changed: correct = correct when clean
    samples = {s.key: s for s in discover(config.data_path).samples}
    images = [decode(samples[row["path"]], config.max_pixels).image for row in manifest]
    probs = reference_probs(images, size=(16, 16))
    truth = np.array([row["label"] == "fake" for row in manifest])
    clean_correct = (probs[:, 1] >= 0.5) == truth
    assert not clean_correct.all(), "the fixture should have some wrong clean decisions"
    assert unpack_bits(blur.outcomes["correct"], blur.n).tolist() == clean_correct.tolist()


def test_outcome_bitsets_merge_across_shards_to_one_run(changed):
    config, one = changed
    sharded = merge([run_shard(config, (i, 3)) for i in (2, 0, 1)])
    for mine, theirs in zip(sharded.results, one.results):
        assert mine.outcomes == theirs.outcomes
        assert (mine.changed_share, mine.psnr_median, mine.applied) == (
            theirs.changed_share,
            theirs.psnr_median,
            theirs.applied,
        )


def test_bitset_encoding_is_little_endian_base64():
    bits = np.array([1, 0, 0, 0, 0, 0, 0, 0, 1, 1], bool)
    assert pack_bits(bits) == "AQM="  # bytes 0b00000001, 0b00000011
    assert unpack_bits("AQM=", 10).tolist() == bits.tolist()
    with pytest.raises(ValueError, match="has 1 bytes, found 2"):
        unpack_bits("AQM=", 5)


def test_quick_gates_skip_a_level_with_no_effect_and_say_so(changed):
    config, _ = changed
    results = run_audit(dataclasses.replace(config, fail_under_rr=0.0, repeats=1))
    gate = results.verdict.gates[0]
    assert gate.gate.endswith("(skipped, no pixel changed: gaussian_blur L1)")
    assert gate.where == "gaussian_noise L1" and gate.checked == 1


def test_a_policy_gate_naming_a_level_with_no_effect_is_inconclusive(changed, tmp_path):
    _, results = changed
    path = tmp_path / "policy.toml"
    path.write_text('[[gate]]\nmetric = "rr"\nlevels = [1]\nmin = 0.0\n')
    named = policy.apply(results, policy.load_policy(path))
    assert named.verdict.result == "INCONCLUSIVE"
    assert named.verdict.gates[0].where.startswith("gaussian_blur L1: no effect: no pixel changed")
    path.write_text('[[gate]]\nmetric = "rr"\nmin = 0.0\n')  # every level: skipped, said so
    every = policy.apply(results, policy.load_policy(path))
    assert every.verdict.result == "PASS"
    assert "(skipped, no pixel changed: gaussian_blur L1)" in every.verdict.gates[0].gate


def test_the_summary_line_leaves_out_levels_with_no_effect(changed):
    config, _ = changed
    inert = run_audit(dataclasses.replace(config, perturbations=("gaussian_blur:sigma=0.01",)))
    assert inert.results[0].no_effect
    assert "worst" not in summary_line(inert)
