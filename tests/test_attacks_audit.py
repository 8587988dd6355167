"""`square_linf` in the audit: CLI, results, report, determinism and its sanity bars."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_class_folders
from test_attacks import constant_model

from auditor import AuditConfig, perturbations, run_audit
from auditor.adversarial.registry import SEARCHES
from auditor.cli import main
from auditor.engine.run import merge, run_shard
from auditor.errors import ConfigError
from auditor.results import AuditResults, from_json, to_json

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "deepfake"
TIMES = ("created_at", "started_at", "finished_at")


def audit(tmp_path: Path, name: str, *args: str) -> dict:
    out = tmp_path / f"{name}.html"
    result = CliRunner().invoke(
        main,
        ["check", str(SAMPLES / "detector_a.onnx"), "--data", str(SAMPLES / "data"),
         "--limit", "20", "-o", str(out), *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return {"json": json.loads(out.with_suffix(".json").read_text()), "html": out.read_text()}


@pytest.fixture(scope="module")
def audits(tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("square")
    ladder = "eps=0,4/255,16/255"
    return {
        "square": audit(tmp, "square", "-p", f"square_linf:{ladder}", "--queries", "50"),
        "noise": audit(tmp, "noise", "-p", f"linf_noise:{ladder}"),
    }


def by_level(results: dict) -> dict[int, dict]:
    return {r["level"]: r for r in results["results"]}


def test_search_is_at_least_as_strong_as_random_noise(audits):
    square, noise = by_level(audits["square"]["json"]), by_level(audits["noise"]["json"])
    for level in (2, 3):
        assert square[level]["ra"] <= noise[level]["ra"]
        assert square[level]["rr"]["0.1"] <= noise[level]["rr"]["0.1"]
    assert square[3]["ra"] < noise[3]["ra"]  # at 16/255 the search finds flips noise misses


def test_eps_zero_changes_nothing(audits):
    zero = by_level(audits["square"]["json"])[1]
    clean = audits["square"]["json"]["clean"]["accuracy"]
    assert zero["ra"] == clean and zero["flip_rate"] == 0
    assert all(v == 1 for v in zero["rr"].values())


def test_results_record_queries_and_both_objectives(audits):
    data = audits["square"]["json"]
    assert data["config"]["queries"] == 50
    assert "queries" not in audits["noise"]["json"]["config"]
    assert "adversarial" not in audits["noise"]["json"]
    search = data["adversarial"]
    assert search["queries"] == 50 and "50 queries" in search["threat_model"]
    levels = search["perturbations"]["square_linf"]
    assert [lv["level"] for lv in levels] == [1, 2, 3]
    assert [lv["p_init"] for lv in levels] == [0.05, 0.05, 0.8]  # eps 0, 4/255, 16/255
    assert "p_init" in search["threat_model"]
    for lv in levels:
        for objective in ("flip", "delta"):
            figures = lv[objective]
            assert figures["n"] == 20 and 0 <= figures["success_fraction"] <= 1
            assert 0 <= figures["queries_median"] <= figures["queries_p90"] <= 50
    assert levels[0]["delta"]["queries_median"] == 1  # eps 0: the clean image, scored once
    assert levels[2]["flip"]["success_fraction"] > levels[1]["flip"]["success_fraction"]
    assert from_json(json.dumps(data)).adversarial == search  # round trip


def test_report_shows_search_figures_and_threat_model(audits):
    html = audits["square"]["html"]
    assert 'id="search-figures"' in html and "budget 50 queries" in html
    assert "Square Attack" in html and "white-box attacker with gradients" in html
    assert "RA from the flip search" in html
    assert 'id="search-figures"' not in audits["noise"]["html"]


def test_a_model_that_ignores_its_input_is_reported_unaffected(tmp_path):
    model = constant_model(tmp_path / "constant.onnx")
    data = write_class_folders(tmp_path / "data", per_class=3)
    config = AuditConfig(
        model_path=model, data_path=data, perturbations=("square_linf:eps=16/255",), queries=20
    )
    results = run_audit(config)
    level = results.results[0]
    assert level.flip_rate == 0 and all(v == 1 for v in level.rr.values())
    assert level.ra == results.clean["accuracy"]
    figures = results.adversarial["perturbations"]["square_linf"][0]
    assert figures["flip"]["unaffected"] and figures["delta"]["unaffected"]


def comparable(results: AuditResults) -> dict:
    data = json.loads(to_json(results))
    for key in TIMES:
        data.pop(key)
    data["config"].pop("batch_size")
    return data


def test_results_do_not_depend_on_batch_size_or_shards(tmp_path):
    config = AuditConfig(
        model_path=SAMPLES / "detector_b.onnx",
        data_path=SAMPLES / "data",
        perturbations=("square_linf:eps=4/255,16/255",),
        limit=6,
        queries=15,
        batch_size=8,
    )
    one = comparable(run_audit(replace(config, batch_size=1)))
    eight = comparable(run_audit(config))
    sharded = comparable(merge([run_shard(config, (i, 2)) for i in range(2)]))
    assert one == eight == sharded
    assert one["adversarial"]["perturbations"]["square_linf"][1]["flip"]["queries_total"] > 0


def test_a_search_is_not_a_perturbation_and_all_leaves_it_out(tmp_path):
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ConfigError, match="unknown perturbation 'square_linf'"):
        perturbations.apply("square_linf", image, 1, np.random.default_rng(0))
    assert "square_linf" not in perturbations.SUITES["all"]
    assert "square_linf" in SEARCHES and "square_linf" not in perturbations.REGISTRY


@pytest.mark.parametrize(
    ("change", "message"),
    [({"resume": True}, "--resume does not support square_linf"), ({"queries": 0}, "--queries")],
)
def test_unsupported_settings_are_refused(tmp_path, change, message):
    config = AuditConfig(
        model_path=SAMPLES / "detector_a.onnx",
        data_path=SAMPLES / "data",
        perturbations=("square_linf",),
        journal_path=tmp_path / "j",
        limit=2,
    )
    with pytest.raises(ConfigError, match=message):
        run_audit(replace(config, **change))


def test_listing_shows_the_searches_in_a_section_of_their_own():
    text = CliRunner().invoke(main, ["perturbations"]).stdout
    perturbations_part, heading, searches_part = text.partition("\nsearches (")
    assert heading and "square_linf" not in perturbations_part
    # the gradient attacks are searches too, so square_linf is one row among them
    rows = [line.split()[:2] for line in searches_part.splitlines()[1:]]
    assert ["square_linf", "adversarial"] in rows
    tsv = CliRunner().invoke(main, ["perturbations", "--tsv"]).stdout
    assert "\nsquare_linf\tadversarial\teps=1/255,2/255,4/255,8/255,16/255\tSquare Attack" in tsv
    assert "square_linf" not in CliRunner().invoke(main, ["perturbations", "--suite", "all"]).stdout
