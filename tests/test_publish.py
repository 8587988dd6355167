"""The publish layer: the writer registry, `--format` names, file placement, JSON first."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from auditor.errors import ConfigError, OutputError
from auditor.publish import WRITERS, Target, parse_formats, publish, targets
from auditor.report.html import render_html
from auditor.report.integrity import read_embedded
from auditor.results import AuditResults, load_json, to_json

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "tests" / "gold" / "results.json"


@pytest.fixture(scope="module")
def results() -> AuditResults:
    return load_json(GOLD)


def everything(folder: Path) -> list[Target]:
    return targets(["html", "json", "junit", "md"], folder / "audit.html")


def test_every_writer_is_named_placed_and_documented():
    readme = (ROOT / "README.md").read_text()
    assert sorted(WRITERS) == ["html", "json", "junit", "md"]
    suffixes = [writer.suffix for writer in WRITERS.values()]
    assert len(set(suffixes)) == len(suffixes)
    for name, writer in WRITERS.items():
        assert writer.name == name and writer.suffix.startswith(".") and writer.what
        assert f"| `{name}` |" in readme, f"README's Output formats table lacks {name}"


def test_format_names_are_parsed_in_order_once():
    assert parse_formats("md, JUnit,md") == ("md", "junit")
    with pytest.raises(ConfigError, match=r"unknown format 'pdf'; expected some of html, json"):
        parse_formats("html,pdf")
    with pytest.raises(ConfigError, match="an empty format name"):
        parse_formats("html,")
    with pytest.raises(ConfigError, match="expected some of html, junit, md$"):
        parse_formats("json", ["html", "junit", "md"])


def test_files_go_next_to_the_report(tmp_path):
    placed = {t.format: t.path for t in everything(tmp_path)}
    assert placed == {
        "html": tmp_path / "audit.html",
        "json": tmp_path / "audit.json",
        "junit": tmp_path / "audit.junit.xml",
        "md": tmp_path / "audit.md",
    }
    moved = targets(["json"], tmp_path / "audit.html", tmp_path / "elsewhere.json")
    assert moved == [Target("json", tmp_path / "elsewhere.json")]


def test_publish_writes_the_json_first_and_the_report_embeds_it(results, tmp_path):
    written = publish(results, everything(tmp_path))
    assert written[0] == tmp_path / "audit.json" and len(written) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)
    json_text = (tmp_path / "audit.json").read_text(encoding="utf-8")
    html = (tmp_path / "audit.html").read_text(encoding="utf-8")
    assert json_text == to_json(results)
    assert read_embedded(html, "audit.html").json_text == json_text
    assert html == render_html(results)


def test_a_failed_report_write_keeps_the_json_and_names_it(results, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where a folder should be")
    to = [Target("html", blocker / "audit.html"), Target("json", tmp_path / "r.json")]
    with pytest.raises(OutputError) as raised:
        publish(results, to)
    message = str(raised.value)
    assert message.startswith(f"cannot write the report to {blocker / 'audit.html'}: ")
    assert message.endswith(f"; the results were saved to {tmp_path / 'r.json'}")
    assert "\n" not in message
    assert (tmp_path / "r.json").read_text(encoding="utf-8") == to_json(results)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "r.json"]


def test_a_writer_that_breaks_leaves_the_json_intact(results, tmp_path):
    broken = dataclasses.replace(results, config={})  # no tolerance keys: cannot render
    with pytest.raises(KeyError):
        publish(broken, everything(tmp_path))
    assert (tmp_path / "audit.json").read_text(encoding="utf-8") == to_json(broken)
    assert [p.name for p in tmp_path.iterdir()] == ["audit.json"]  # no half-written file


def test_a_later_failure_names_every_file_written(results, tmp_path):
    (tmp_path / "audit.md").mkdir()  # a folder where the Markdown summary should go
    with pytest.raises(OutputError) as raised:
        publish(results, everything(tmp_path))
    message = str(raised.value)
    assert message.startswith(f"cannot write the Markdown summary to {tmp_path / 'audit.md'}")
    assert f"saved to {tmp_path / 'audit.json'} (also written: {tmp_path / 'audit.html'}" in (
        message
    )


def test_the_json_that_cannot_be_written_is_not_claimed(results, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    with pytest.raises(OutputError) as raised:
        publish(results, targets(["html", "json"], blocker / "audit.html"))
    assert str(raised.value).startswith("cannot write the results to ")
    assert "saved" not in str(raised.value)


def test_a_signed_report_verifies(results, tmp_path):
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization as s
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from auditor.report.verify import verify_report

    key = ed25519.Ed25519PrivateKey.generate()
    public = tmp_path / "pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo)
    )
    publish(results, targets(["json", "html"], tmp_path / "audit.html"), key)
    outcome = verify_report(tmp_path / "audit.html", public)
    assert outcome.intact, outcome.problems
