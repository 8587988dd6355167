"""The audit plan: both kinds from one `-p` syntax, in results order, with the work units
actually done; and a search registered beside `square_linf` runs through the engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import write_class_folders

from auditor import AuditConfig, run_audit
from auditor.adversarial.counts import SearchCounts
from auditor.adversarial.registry import SEARCHES, Found, Search, search
from auditor.data import discover
from auditor.engine.journal import from_journal_record
from auditor.engine.plan import PERTURBATION, SEARCH, build_plan
from auditor.errors import ConfigError
from auditor.perturbations import SUITES
from auditor.seeds import derive_rng

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "deepfake"


def config(*specs: str, **changes) -> AuditConfig:
    return AuditConfig(
        SAMPLES / "detector_a.onnx", SAMPLES / "data", perturbations=specs, **changes
    )


def test_levels_of_both_kinds_in_results_order_with_their_draws():
    plan = build_plan(config("square_linf:eps=0.01,0.03", "gaussian_noise", repeats=2))
    assert [(lv.index, lv.kind, lv.name, lv.level) for lv in plan.levels[:3]] == [
        (0, SEARCH, "square_linf", 1),
        (1, SEARCH, "square_linf", 2),
        (2, PERTURBATION, "gaussian_noise", 1),
    ]
    assert [lv.index for lv in plan.levels] == list(range(7))
    assert plan.levels[1].params == {"eps": 0.03} and plan.levels[1].family == "adversarial"
    assert [lv.draws for lv in plan.levels] == [2, 2, 2, 2, 2, 2, 2]  # points; repeats
    # The sampled draws, in tensor-row order: level by level, repeats within a level.
    assert [(d.perturbation, d.level, d.repeat) for d in plan.draws[:3]] == [
        ("gaussian_noise", 1, 0),
        ("gaussian_noise", 1, 1),
        ("gaussian_noise", 2, 0),
    ]
    assert len(plan.draws) == 10 and plan.units_per_sample == 11  # searches add no rows
    assert plan.search_settings == ("queries",)
    assert plan.in_order(["a", "b", "c", "d", "e"], ["S1", "S2"]) == [
        "S1", "S2", "a", "b", "c", "d", "e",
    ]  # fmt: skip


def test_description_is_the_config_perturbations_list():
    described = build_plan(config("gaussian_noise:sigma=0.1", "square_linf:eps=8/255")).describe()
    assert [list(d) for d in described] == [
        ["name", "family", "description", "pixel_params", "levels", "implementation"]
    ] * 2
    assert described[0]["levels"] == [{"sigma": 0.1}] and described[0]["family"] == "noise"
    assert described[1]["family"] == "adversarial" and described[1]["pixel_params"] == []
    assert described[1]["description"].startswith("Square Attack")
    assert described[1]["levels"][0]["eps"] == pytest.approx(8 / 255)


def test_a_suite_plans_its_perturbations_and_no_search():
    plan = build_plan(AuditConfig(Path("m.onnx"), Path("d"), suite="quick"))
    assert [d["name"] for d in plan.describe()] == list(SUITES["quick"])
    assert not plan.searches and plan.search_settings == ()
    assert len(plan.draws) == 5 * len(SUITES["quick"])


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (
            ("nope",),
            r"unknown perturbation 'nope'; perturbations: .*gaussian_noise.*; "
            r"searches: .*square_linf",
        ),
        (("square_linf:size=3",), "PARAM one of eps"),
        (("square_linf", "square_linf:eps=0.1"), "given twice: square_linf"),
    ],
)
def test_bad_specs_of_either_kind_say_what_is_wrong(specs, message):
    with pytest.raises(ConfigError, match=message):
        build_plan(config(*specs))


def test_a_search_cannot_take_a_perturbations_name():
    register = search("contrast", {"eps": (0.1,)}, points=1, describe=describe_noise)
    with pytest.raises(ValueError, match="a perturbation of that name"):
        register(noise_points)
    assert "contrast" not in SEARCHES


def test_a_journal_record_must_match_the_plan(tmp_path):
    samples = discover(write_class_folders(tmp_path / "data", per_class=1), None).samples
    plan = build_plan(config("gaussian_noise:sigma=0.1"))
    record = {"i": 0, "k": samples[0].key, "sha": "x", "cv": None, "c": [0.5, 0.5]}
    scored = from_journal_record({**record, "p": [[0.4, 0.6]]}, samples, plan)
    assert scored.perturbed.shape == (1, 2)
    with pytest.raises(ConfigError, match="has 2 draws; the plan has 1"):
        from_journal_record({**record, "p": [[0.4, 0.6]] * 2}, samples, plan)


def noise_points(scorer, group, level):
    """Random corners of the L-inf ball, scored (a search for this test)."""
    steps = int(level.params["eps"] * 255)
    points = []
    for key, image in zip(group.keys, group.images):
        rng = derive_rng(level.seed, key, "noise_search", level.level, 0)
        signs = rng.choice(np.array([-steps, steps]), size=image.shape)
        points.append(np.clip(image.astype(int) + signs, 0, 255).astype(np.uint8))
    counts = SearchCounts(n=len(points))
    return Found(scorer.predict(points)[None], {"noise": counts})


def describe_noise(settings, tallies):
    return {"perturbations": {"noise_search": [[t.level, t.counts["noise"].n] for t in tallies]}}


def test_another_search_runs_beside_square_linf_and_progress_counts_units_done(monkeypatch):
    entry = Search("noise_search", "adversarial", noise_points, describe_noise,
                   ({"eps": 4 / 255},), points=1)  # fmt: skip
    monkeypatch.setitem(SEARCHES, "noise_search", entry)
    seen: list[tuple[int, int]] = []
    audit = config(
        "noise_search", "square_linf:eps=8/255", "brightness:delta=0.3", queries=5, limit=6
    )
    results = run_audit(audit, lambda done, total: seen.append((done, total)))
    assert [r.perturbation for r in results.results] == [
        "noise_search", "square_linf", "brightness",
    ]  # fmt: skip
    assert [r.n for r in results.results] == [6, 6, 6]
    assert results.adversarial["perturbations"]["noise_search"] == [[1, 6]]
    assert results.adversarial["perturbations"]["square_linf"][0]["flip"]["n"] == 6
    assert results.adversarial["queries"] == 5 and results.config["queries"] == 5
    # Progress counts the units done: each sample's clean row and its one sampled draw.
    total = 6 * build_plan(audit).units_per_sample
    assert total == 12 and {t for _, t in seen} == {total} and seen[-1][0] == total
    assert results.progress == {"done": total, "total": total}
