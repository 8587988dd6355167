"""Results read back are checked against their declared types before anything renders them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import main
from auditor.errors import EXIT_CANNOT_RUN, EXIT_OK
from auditor.results import LevelResult, from_json
from auditor.typecheck import check_fields

GOLD = Path(__file__).parent / "gold" / "results.json"


def gold() -> dict:
    return json.loads(GOLD.read_text())


def spoil(path: list, value: object) -> str:
    data = gold()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    "path, value, message",
    [
        (["results", 0, "ra"], "0.9", r"results\.results\[0\]\.ra must be a number or null, "),
        (["results", 1, "rr"], [0.5], r"results\[1\]\.rr must be an object, found a list"),
        (["results", 2, "rr", "0.1"], None, r"\.rr\['0\.1'\] must be a number, found null"),
        (["results", 0, "level"], True, r"\.level must be an integer, found a boolean"),
        (["clean"], 7, r"results\.clean must be an object, found the number 7"),
        (["verdict", "gates"], {"a": 1}, r"verdict\.gates must be a list"),
        (["results"], None, r"results\.results must be a list, found null"),
    ],
)
def test_a_mistyped_value_is_named(path: list, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_json(spoil(path, value))


def test_nan_and_infinity_are_refused() -> None:
    text = GOLD.read_text().replace('"ra": 0.9', '"ra": NaN', 1)
    assert "NaN" in text
    with pytest.raises(ValueError, match="NaN is not a number results may hold"):
        from_json(text)


def test_a_missing_required_field_is_named() -> None:
    data = gold()
    del data["results"][0]["rr"]
    with pytest.raises(ValueError, match=r"results\.results\[0\] lacks 'rr'"):
        from_json(json.dumps(data))


def test_the_checks_accept_every_real_results_file() -> None:
    from_json(GOLD.read_text())
    check_fields(LevelResult, gold()["results"][0], "level")


@pytest.mark.parametrize(
    "text",
    [
        spoil(["results", 0, "ra"], "high"),
        spoil(["config"], "none"),
        GOLD.read_text().replace('"ra": 0.9', '"ra": Infinity', 1),
        '{"schema": "auditor/results@1", "results": ' + "[" * 5000 + "]" * 5000 + "}",
    ],
)
def test_render_of_malformed_results_is_one_line_and_exit_2(tmp_path: Path, text: str) -> None:
    source = tmp_path / "bad.json"
    source.write_text(text)
    result = CliRunner().invoke(main, ["render", str(source), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == EXIT_CANNOT_RUN, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("auditor: error:")
    assert not (tmp_path / "r.html").exists()


def test_render_of_good_results_still_works(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["render", str(GOLD), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == EXIT_OK, result.output
