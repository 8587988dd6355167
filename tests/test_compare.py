"""`auditor compare`: the same data and configuration checked, paired McNemar tests on the
per-sample outcomes, RA/RR side by side with charts, CE."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import build_model

from auditor.cli import main
from auditor.errors import EXIT_CANNOT_RUN, EXIT_OK, ConfigError
from auditor.metrics.paired import mcnemar_p, pack_bits, unpack_bits
from auditor.report.compare import (
    compare_results,
    corruption_error,
    render_compare,
    summary_lines,
)
from auditor.results import AuditResults, load_json

GOLD = Path(__file__).parent / "gold" / "results.json"
SAMPLES = Path(__file__).parents[1] / "samples" / "deepfake"


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def ref() -> AuditResults:
    return load_json(GOLD)


def first_n(count: int, n: int) -> str:
    """A bitset of `n` samples whose first `count` bits are set."""
    return pack_bits(np.arange(n) < count)


def with_outcomes(results: AuditResults, robust_all: bool = False) -> AuditResults:
    """Per-sample outcomes that agree with each level's rates: the first samples count.

    `robust_all`: every sample robust at every tolerance (outputs that never move).
    """
    rows = []
    for r in results.results:
        n = r.n
        outcomes = {
            "correct": first_n(round(r.ra * n), n),  # type: ignore[operator]
            "robust": {k: first_n(n if robust_all else round(v * n), n) for k, v in r.rr.items()},
            "flipped": first_n(round(r.flip_rate * n), n),
        }
        rows.append(dataclasses.replace(r, outcomes=outcomes))
    return dataclasses.replace(results, results=rows)


def steadier(results: AuditResults) -> AuditResults:
    """The same RA everywhere, but outputs that never move: RR(b) 1 at every level."""
    rows = [
        dataclasses.replace(
            r,
            rr={k: 1.0 for k in r.rr},
            rr_ci={k: [0.987, 1.0] for k in r.rr},
        )
        for r in with_outcomes(results, robust_all=True).results
    ]
    model = {**results.model, "file_name": "detector_b.onnx", "sha256": "b" * 64}
    return dataclasses.replace(results, results=rows, model=model)


def test_ra_not_different_but_rr_different_is_flagged(ref):
    comparison = compare_results(
        [(Path("a.json"), with_outcomes(ref)), (Path("b.json"), steadier(ref))]
    )
    headline = ref.headline_key
    # Same correct samples: RA p = 1. The reference's k non-robust samples are robust for
    # B only: RR p = 2 / 2**k, below 0.05 from k = 6 on.
    expected = [
        (r.perturbation, r.level) for r in ref.results if r.n - round(r.rr[headline] * r.n) >= 6
    ]
    assert expected and len(expected) < len(ref.results), "the fixture should have both kinds"
    assert [(row.perturbation, row.level) for row in comparison.rows if row.flagged] == expected
    assert [(row.perturbation, row.level) for row, _ in comparison.disagreements()] == expected
    first = comparison.rows[0].tests[0]
    assert first is not None and first.ra is not None and first.ra.p == 1.0
    k = ref.results[0].n - round(ref.results[0].rr[headline] * ref.results[0].n)
    assert (first.rr[headline].only_a, first.rr[headline].only_b) == (0, k)
    assert first.rr[headline].p == min(1.0, 2 / 2**k)
    assert comparison.names == ["detector_a.onnx", "detector_b.onnx"]


def test_older_results_get_no_paired_test(ref):
    comparison = compare_results([(Path("a.json"), ref), (Path("b.json"), steadier(ref))])
    assert not any(row.flagged for row in comparison.rows)
    assert comparison.tally(1).untested == len(ref.results)
    assert "no paired test" in summary_lines(comparison)[0]
    assert "audit both models again with this version" in render_compare(comparison)


@pytest.mark.parametrize(
    ("only_a", "only_b", "p"),
    [
        (0, 0, 1.0),  # nothing discordant
        (0, 5, 2 / 2**5),  # 2 P(X <= 0), X ~ B(5, 1/2)
        (1, 6, 2 * (1 + 7) / 2**7),  # 2 (C(7,0) + C(7,1)) / 2**7 = 0.125
        (9, 2, 2 * (1 + 11 + 55) / 2**11),  # 0.0654296875: the smaller count is the tail
        (3, 3, 1.0),  # 2 P(X <= 3) > 1 for B(6, 1/2): capped at 1
        (10, 0, 2 / 2**10),
        (12, 3, 2 * (1 + 15 + 105 + 455) / 2**15),  # 0.03515625
    ],
)
def test_mcnemar_p_is_the_exact_two_sided_binomial_tail(only_a, only_b, p):
    assert mcnemar_p(only_a, only_b) == p
    assert mcnemar_p(only_b, only_a) == p


def test_mcnemar_p_of_many_discordant_samples_is_a_small_float():
    assert 0 < mcnemar_p(0, 1000) == 2.0**-999  # exact integers, no float overflow
    assert mcnemar_p(5000, 5000) == 1.0


def test_ce_is_relative_to_the_first_model(ref):
    worse_rows = [dataclasses.replace(r, ra=r.ra - 0.05) for r in ref.results]  # type: ignore[operator]
    worse = dataclasses.replace(ref, results=worse_rows)
    ce, mce = corruption_error([ref, worse])
    for name, (mine, other) in ce.items():
        levels = [r for r in ref.results if r.perturbation == name]
        errors = sum(1 - r.ra for r in levels)  # type: ignore[operator]
        assert mine == 1.0
        assert other == pytest.approx((errors + 0.05 * len(levels)) / errors, abs=1e-6)
    assert mce[0] == 1.0 and mce[1] == pytest.approx(sum(v[1] for v in ce.values()) / len(ce))


def test_different_data_or_configuration_is_refused(ref):
    other_data = dataclasses.replace(ref, data={**ref.data, "manifest_sha256": "0" * 64})
    with pytest.raises(ConfigError, match="same data"):
        compare_results([(Path("a.json"), ref), (Path("b.json"), other_data)])
    other_seed = dataclasses.replace(ref, config={**ref.config, "seed": 1})
    with pytest.raises(ConfigError, match="seed differs"):
        compare_results([(Path("a.json"), ref), (Path("b.json"), other_seed)])
    with pytest.raises(ConfigError, match="at least two"):
        compare_results([(Path("a.json"), ref)])


def test_compare_cli_writes_a_self_contained_page(ref, tmp_path):
    b = tmp_path / "b.json"
    b.write_text(json.dumps(steadier(ref).to_dict()))
    out = tmp_path / "compare.html"
    result = run("compare", GOLD, b, "-o", out)
    assert result.exit_code == EXIT_OK, result.stderr
    html = out.read_text()
    assert "no paired test" in result.stderr and "not tested" in html and "mCE" in html
    assert "<script" not in html and 'lang="en"' in html
    assert 'xmlns="http://www.w3.org/2000/svg"' in html  # the charts' namespace, not a link
    local = html.replace("http-equiv", "").replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "Content-Security-Policy" in html and "http" not in local


def test_compare_cli_mismatch_is_one_line_exit_2(ref, tmp_path):
    b = tmp_path / "b.json"
    b.write_text(
        json.dumps(dataclasses.replace(ref, config={**ref.config, "repeats": 3}).to_dict())
    )
    result = run("compare", GOLD, b, "-o", tmp_path / "c.html")
    assert result.exit_code == EXIT_CANNOT_RUN
    assert result.stderr.count("\n") == 1 and "repeats differs" in result.stderr
    assert not (tmp_path / "c.html").exists()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = run("compare", GOLD, bad, "-o", tmp_path / "c.html")
    assert result.exit_code == EXIT_CANNOT_RUN and "not JSON" in result.stderr


def test_compare_two_real_audits(data_dir, tmp_path):
    models = [
        build_model(tmp_path / "soft.onnx", metadata={"classes": ["real", "fake"]}),
        build_model(
            tmp_path / "sig.onnx", head="sigmoid", classes=1, metadata={"classes": ["real", "fake"]}
        ),
    ]
    jsons = []
    for model in models:
        out = tmp_path / f"{model.stem}.html"
        result = run("check", model, "--data", data_dir, "-o", out, "-p", "contrast")
        assert result.exit_code == EXIT_OK, result.stderr
        jsons.append(out.with_suffix(".json"))
    result = run("compare", *jsons, "-o", tmp_path / "compare.html")
    assert result.exit_code == EXIT_OK, result.stderr
    assert "soft.onnx" in (tmp_path / "compare.html").read_text()


@pytest.fixture(scope="module")
def detectors(tmp_path_factory) -> tuple[list[Path], Path]:
    """The two sample detectors audited on 120 quickstart samples under `contrast`."""
    root = tmp_path_factory.mktemp("detectors")
    jsons = []
    for name in ("detector_a", "detector_b"):
        out = root / f"{name}.html"
        model, data = SAMPLES / f"{name}.onnx", SAMPLES / "data"
        result = run("check", model, "--data", data, "-p", "contrast", "--limit", 120, "-o", out)
        assert result.exit_code == EXIT_OK, result.stderr
        jsons.append(out.with_suffix(".json"))
    return jsons, root


def test_compare_the_two_sample_detectors(detectors):
    jsons, root = detectors
    out = root / "compare.html"
    result = run("compare", *jsons, "-o", out)
    assert result.exit_code == EXIT_OK, result.stderr
    a, b = (load_json(path) for path in jsons)
    n, key = a.clean["n"], a.headline_key
    ra = rr = 0
    for x, y in zip(a.results, b.results):  # the tests, recomputed from the bitsets
        bits = [unpack_bits(lv.outcomes["correct"], n) for lv in (x, y)]
        ra += mcnemar_p(int((bits[0] & ~bits[1]).sum()), int((bits[1] & ~bits[0]).sum())) < 0.05
        bits = [unpack_bits(lv.outcomes["robust"][key], n) for lv in (x, y)]
        rr += mcnemar_p(int((bits[0] & ~bits[1]).sum()), int((bits[1] & ~bits[0]).sum())) < 0.05
    line = (
        f"auditor: detector_b.onnx against detector_a.onnx: RA different at {ra} of 5 levels, "
        f"RR(b={key}) at {rr} of 5 (McNemar, p < 0.05)\n"
    )
    assert line in result.stderr and rr > 0
    html = out.read_text()
    assert html.index('id="paired-h"') < html.index('id="charts-h"') < html.index('id="ce-h"')
    assert 'id="chart-ra-0"' in html and 'id="chart-rr-0"' in html
    assert html.count('class="band"') == 4  # one band per model in each of the two charts
    header = html[html.index('<table id="compare-table">') : html.index("</thead>")]
    columns = [
        "RA detector_a.onnx",
        "RA detector_b.onnx",
        "RA: detector_b.onnx vs detector_a.onnx",
        "RR detector_a.onnx",
        "RR detector_b.onnx",
        "RR: detector_b.onnx vs detector_a.onnx",
    ]
    positions = [header.index(f">{c}</th>") for c in columns]
    assert positions == sorted(positions)  # grouped by metric, tests after each group
