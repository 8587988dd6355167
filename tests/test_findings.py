"""The findings rules on the golden results, each made to fire (and not) by editing a figure."""

from __future__ import annotations

import json
from pathlib import Path

from auditor.results import AuditResults
from auditor.verdict.findings import RULES, SEVERITY, documented_rules, find, levels_text

GOLD = Path(__file__).parent / "gold" / "results.json"


def gold(edit=None) -> AuditResults:
    data = json.loads(GOLD.read_text())
    if edit is not None:
        edit(data)
    return AuditResults.from_dict(data)


def level(data: dict, name: str, number: int) -> dict:
    return next(r for r in data["results"] if r["perturbation"] == name and r["level"] == number)


def rules(results: AuditResults) -> list[str]:
    return [f.rule for f in find(results)]


def test_levels_are_written_as_runs() -> None:
    assert levels_text([3, 1, 2, 5]) == "L1-L3, L5"
    assert levels_text([4]) == "L4"


def test_the_golden_results_give_their_failing_gates_first() -> None:
    found = find(gold())
    assert [f.rule for f in found][:2] == ["gate", "gate"]
    assert found[0].text.startswith("FAIL: ra >= 0.6 at every level: 0.513")
    assert "INCONCLUSIVE: RA >= 0.9 at jpeg_compression" in found[1].text
    assert "[0.876, 0.940] at jpeg_compression L3, needs >= 0.9" in found[1].text
    assert (found[1].perturbation, found[1].level, found[1].ci) == (
        "jpeg_compression",
        3,
        [0.876044, 0.940171],
    )
    assert "class_collapse" not in rules(gold())


def test_a_class_never_recognised_is_a_finding_with_its_count() -> None:
    def collapse(data: dict) -> None:
        for n in (4, 5):
            fake = level(data, "gaussian_noise", n)["per_class"]["fake"]
            fake.update(ra=0.0 if n == 5 else 0.04, ra_ci=[0.0, 0.025])

    found = [f for f in find(gold(collapse)) if f.rule == "class_collapse"]
    assert len(found) == 1
    assert found[0].text.startswith(
        "gaussian_noise L4-L5: the detector calls almost every fake sample real "
        "(fake caught 0/150 [0.000, 0.025] at gaussian_noise L5)"
    )
    assert (found[0].level, found[0].value) == (5, 0.0)


def test_ra_at_chance() -> None:
    found = [f for f in find(gold()) if f.rule == "chance"]
    assert len(found) == 1  # gaussian_noise L5: 0.513 [0.457, 0.569] reaches 0.5
    assert "at 1 level(s): gaussian_noise L5" in found[0].text

    def better(data: dict) -> None:
        level(data, "gaussian_noise", 5)["ra_ci"] = [0.51, 0.56]

    assert "chance" not in rules(gold(better))


def inert(data: dict) -> None:
    """Mark gaussian_noise L5 as an engine does a level whose draws changed no pixel."""
    row = level(data, "gaussian_noise", 5)
    scale = {"min": 0.2, "median": 0.2, "max": 0.2}
    row.update(changed_share=0.0, psnr_median=None, no_effect=True)
    row["applied"] = {"params": {"sigma": 0.076}, "scale": scale}


def test_a_level_without_effect_is_reported_and_left_out_of_the_others() -> None:
    found = {f.rule: f for f in find(gold(inert))}
    text = found["no_effect"].text
    assert "no pixel changed on any sample at gaussian_noise L5" in text
    assert "(as applied to these images: gaussian_noise L5 at sigma=0.076 (stated sigma=" in text
    assert (found["no_effect"].metric, found["no_effect"].value) == ("changed_share", 0.0)
    assert "chance" not in found  # the inert level's RA is not evidence either way
    assert "no_effect" not in rules(gold())


def test_steady_ra_with_moved_probabilities() -> None:
    def moved(data: dict) -> None:
        row = level(data, "jpeg_compression", 2)
        row.update(ra=0.94)
        row["rr"]["0.1"], row["rr_ci"]["0.1"] = 0.4, [0.35, 0.46]

    found = [f for f in find(gold(moved)) if f.rule == "ra_hides_rr"]
    assert len(found) == 1 and "jpeg_compression L2" in found[0].text
    assert found[0].value == 0.4


def test_a_stronger_level_clearly_better_is_non_monotone() -> None:
    assert "non_monotone" not in rules(gold())

    def inverted(data: dict) -> None:
        row = level(data, "gaussian_noise", 5)
        row.update(ra=0.95, ra_ci=[0.92, 0.97])

    found = [f for f in find(gold(inverted)) if f.rule == "non_monotone"]
    assert len(found) == 1
    assert "gaussian_noise RA is 0.860 [0.816, 0.895] at L2" in found[0].text
    assert "0.950 [0.920, 0.970] at the stronger L5" in found[0].text


def test_every_rule_is_documented_in_the_module() -> None:
    import auditor.verdict.findings as module

    for name, _ in RULES:
        assert f"`{name}`" in (module.__doc__ or "")


def test_most_of_one_class_missed_is_a_bias_finding() -> None:
    found = [f for f in find(gold()) if f.rule == "class_bias"]
    assert len(found) == 1  # gaussian_noise L5 catches 36/150 fakes
    assert found[0].text == (
        "gaussian_noise L5: the detector calls most fake samples real "
        "(fake caught 36/150 [0.179, 0.314] at gaussian_noise L5)"
    )
    assert found[0].severity == "medium"

    def collapse(data: dict) -> None:
        level(data, "gaussian_noise", 5)["per_class"]["fake"].update(ra=0.02, ra_ci=[0.0, 0.06])

    rules_found = rules(gold(collapse))
    assert "class_collapse" in rules_found and "class_bias" not in rules_found


def test_outputs_that_moved_on_most_samples_are_unstable() -> None:
    assert "unstable" not in rules(gold())

    def unstable(data: dict) -> None:
        for n in (4, 5):
            row = level(data, "gaussian_noise", n)
            row["rr"]["0.1"], row["rr_ci"]["0.1"] = 0.15, [0.11, 0.2]

    found = [f for f in find(gold(unstable)) if f.rule == "unstable"]
    assert len(found) == 1
    assert "(RR at most 0.2) at 2 level(s): gaussian_noise L4-L5" in found[0].text

    def steady(data: dict) -> None:  # RA held: that is ra_hides_rr, not both
        row = level(data, "jpeg_compression", 2)
        row.update(ra=0.94)
        row["rr"]["0.1"], row["rr_ci"]["0.1"] = 0.1, [0.07, 0.14]

    assert "unstable" not in rules(gold(steady)) and "ra_hides_rr" in rules(gold(steady))


def test_a_quick_gate_finding_shows_its_levels_interval() -> None:
    from dataclasses import replace

    from auditor.results import Gate, Verdict

    results = gold()
    quick = Gate("RA >= 0.6 at every level", "ra", 0.6, 0.513, False, "gaussian_noise L5")
    found = find(replace(results, verdict=Verdict(False, [quick], "FAIL")))[0]
    assert found.ci == results.results[4].ra_ci
    assert found.text == (
        "FAIL: RA >= 0.6 at every level: 0.513 [0.457, 0.569] at gaussian_noise L5, needs >= 0.6"
    )


def test_the_rules_are_documented_with_their_thresholds() -> None:
    documented = dict(documented_rules())
    assert list(documented) == [name for name, _ in RULES] == list(SEVERITY)
    assert "its per-class rate at most 0.05" in documented["class_collapse"]
    assert not any("`" in text for text in documented.values())  # every threshold filled in
    assert all(text and not text.endswith((";", ".")) for text in documented.values())
