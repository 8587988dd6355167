"""`auditor compare`: the same data and configuration checked, RA/RR side by side, CE."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import build_model

from auditor.cli import main
from auditor.errors import EXIT_CANNOT_RUN, EXIT_OK, ConfigError
from auditor.report.compare import compare_results, corruption_error
from auditor.results import AuditResults, load_json

GOLD = Path(__file__).parent / "gold" / "results.json"


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def ref() -> AuditResults:
    return load_json(GOLD)


def steadier(results: AuditResults) -> AuditResults:
    """The same RA everywhere, but outputs that barely move: RR(b) near 1 at every level."""
    rows = [
        dataclasses.replace(
            r,
            rr={k: 0.99 for k in r.rr},
            rr_ci={k: [0.97, 0.997] for k in r.rr},
        )
        for r in results.results
    ]
    model = {**results.model, "file_name": "detector_b.onnx", "sha256": "b" * 64}
    return dataclasses.replace(results, results=rows, model=model)


def test_ra_agrees_rr_differs_is_flagged(ref):
    comparison = compare_results([(Path("a.json"), ref), (Path("b.json"), steadier(ref))])
    headline = ref.headline_key
    expected = [(r.perturbation, r.level) for r in ref.results if r.rr_ci[headline][1] < 0.97]
    assert expected, "the fixture should have levels whose RR is clearly below 0.97"
    assert [(row.perturbation, row.level) for row in comparison.rows if row.flagged] == expected
    assert comparison.names == ["detector_a.onnx", "detector_b.onnx"]


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
    assert "RA agrees, RR differs" in html and "mCE" in html
    assert "<script" not in html and 'lang="en"' in html
    assert "Content-Security-Policy" in html and "http" not in html.replace("http-equiv", "")


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
