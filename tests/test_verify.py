"""`auditor verify` and `--sign-key`: the embedded results, their digest and signature."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import main
from auditor.errors import EXIT_CANNOT_RUN, EXIT_GATE_FAILED, EXIT_OK
from auditor.report.integrity import read_embedded
from auditor.results import AuditResults, from_json, load_json

GOLD = Path(__file__).parent / "gold" / "results.json"
cryptography = pytest.importorskip("cryptography")


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def keypair(tmp_path: Path, name: str = "key") -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization as s
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private, public = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))
    public.write_bytes(
        key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


@pytest.fixture
def report(tmp_path: Path) -> Path:
    out = tmp_path / "report.html"
    result = run("render", GOLD, "-o", out, "--auditor", "A. Reviewer")
    assert result.exit_code == EXIT_OK, result.stderr
    return out


def test_embedded_json_round_trips_and_its_digest_is_in_the_header(report):
    text = report.read_text()
    found = read_embedded(text, "report")
    assert hashlib.sha256(found.json_text.encode()).hexdigest() == found.claimed_digest
    assert f"<code>{found.claimed_digest}</code>" in text
    embedded = from_json(found.json_text)
    original = load_json(GOLD)
    assert embedded.results == original.results and embedded.data == original.data
    assert embedded.identification["auditor"] == "A. Reviewer"
    assert len(embedded.identification["report_id"]) == 36


def embedded_block(text: str) -> str:
    start = text.index('<script type="application/json" id="auditor-results">\n') + 54
    return text[start : text.index("</script>", start)]


def test_intact_report_verifies(report):
    result = run("verify", report)
    assert result.exit_code == EXIT_OK
    assert result.stderr.endswith(
        ": intact, unsigned: the text matches the embedded results; anyone with the results "
        "file could have produced it\n"
    )


def test_thumbnails_are_stored_once_and_covered_by_the_digest(report):
    text = report.read_text()
    results = load_json(GOLD)
    clean = results.thumbnails["clean"]
    assert text.count(clean) == 1  # shown beside each perturbation, stored once
    block = embedded_block(text)
    assert "data:image/" not in block and '"\\u0070x:' in block
    tokens = re.findall(r'"\\u0070x:([0-9a-f]{64})"', block)
    assert hashlib.sha256(clean.encode()).hexdigest() in tokens
    # the restored JSON is the results file: the digest covers the pixels
    assert from_json(read_embedded(text, "r").json_text).thumbnails == results.thumbnails
    at = text.index(clean) + len(clean) - 8  # change one pixel byte of the stored image
    changed = text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]
    report.write_text(changed)
    result = run("verify", report)
    assert result.exit_code == EXIT_GATE_FAILED and "ALTERED" in result.stderr


@pytest.mark.parametrize("where", ["json", "visible", "digest"])
def test_a_one_character_change_is_detected(report, where):
    text = report.read_text()
    script = text.index('<script type="application/json"')
    if where == "json":  # a number inside the embedded results
        at = text.index('"n_samples": 300', script) + len('"n_samples": ')
    elif where == "visible":  # a digit of a rate in the level table
        at = text.index('<td class="num">0.', text.index('id="level-table"')) + 20
    else:  # the digest in the header
        at = text.index('name="auditor-results-sha256" content="') + 40
    changed = text[:at] + ("7" if text[at] != "7" else "8") + text[at + 1 :]
    assert len(changed) == len(text) and changed != text
    report.write_text(changed)
    result = run("verify", report)
    assert result.exit_code == EXIT_GATE_FAILED, result.stderr
    assert "ALTERED" in result.stderr


def test_no_string_can_close_the_script_block(tmp_path):
    results = load_json(GOLD)
    nasty = '</script><script>alert(1)</script><!-- & "quoted"'
    odd = dataclasses.replace(results, data={**results.data, "path": nasty})
    (tmp_path / "odd.json").write_text(json.dumps(odd.to_dict()))
    out = tmp_path / "odd.html"
    assert run("render", tmp_path / "odd.json", "-o", out).exit_code == EXIT_OK
    text = out.read_text()
    assert text.count("</script>") == 1 and "\\u003c/script\\u003e" in text
    assert from_json(read_embedded(text, "odd").json_text).data["path"] == nasty
    assert run("verify", out).exit_code == EXIT_OK


def test_unreadable_reports_exit_2(tmp_path):
    assert run("verify", tmp_path / "missing.html").exit_code == EXIT_CANNOT_RUN
    other = tmp_path / "other.html"
    other.write_text("<html><body>hello</body></html>")
    result = run("verify", other)
    assert result.exit_code == EXIT_CANNOT_RUN
    assert "not an auditor report" in result.stderr and result.stderr.count("\n") == 1


def test_signed_report_verifies_with_its_key_only(tmp_path):
    private, public = keypair(tmp_path)
    _, other_public = keypair(tmp_path, "other")
    out = tmp_path / "signed.html"
    assert run("render", GOLD, "-o", out, "--sign-key", private).exit_code == EXIT_OK
    text = out.read_text()
    assert 'name="auditor-signature"' in text and "Ed25519" in text
    result = run("verify", out, "--public-key", public)
    assert result.exit_code == EXIT_OK and "signature valid" in result.stderr
    wrong = run("verify", out, "--public-key", other_public)
    assert wrong.exit_code == EXIT_GATE_FAILED and "not by" in wrong.stderr


def test_a_forged_digest_fails_the_signature(tmp_path):
    """Changing the results and recomputing the header digest still breaks the signature."""
    private, public = keypair(tmp_path)
    out = tmp_path / "signed.html"
    run("render", GOLD, "-o", out, "--sign-key", private)
    text = out.read_text()
    found = read_embedded(text, "signed")
    forged_json = found.json_text.replace('"n_samples": 300', '"n_samples": 301', 1)
    forged_digest = hashlib.sha256(forged_json.encode()).hexdigest()
    block = embedded_block(text)  # the JSON as embedded: its images are in the pixel store
    forged_block = block.replace('"n_samples": 300', '"n_samples": 301', 1)
    text = text.replace(block, forged_block).replace(found.claimed_digest, forged_digest)
    out.write_text(text)
    result = run("verify", out, "--public-key", public)
    assert result.exit_code == EXIT_GATE_FAILED
    assert "signature does not match" in result.stderr


def test_unsigned_report_with_public_key_is_not_verified(report, tmp_path):
    _, public = keypair(tmp_path)
    result = run("verify", report, "--public-key", public)
    assert result.exit_code == EXIT_GATE_FAILED and "not signed" in result.stderr
    assert "ALTERED" not in result.stderr  # the text is intact; it is only unsigned


def test_a_signed_report_names_its_key_without_one_given(tmp_path):
    private, public = keypair(tmp_path)
    out = tmp_path / "signed.html"
    assert run("render", GOLD, "-o", out, "--sign-key", private).exit_code == EXIT_OK
    fingerprint = read_embedded(out.read_text(), "signed").signature["fingerprint"]
    result = run("verify", out)
    assert result.exit_code == EXIT_OK
    assert f": intact, signed by {fingerprint} (checked with the key the report carries)" in (
        result.stderr
    )
    assert "compare that fingerprint with the one you trust" in result.stderr
    given = run("verify", out, "--public-key", public)
    assert f"intact, signed by {fingerprint} (checked with --public-key)" in given.stderr


def test_a_rendered_report_says_it_came_from_a_results_file(report):
    text = report.read_text()
    digest = hashlib.sha256(GOLD.read_bytes()).hexdigest()
    ident = text[text.index('<section id="identification"') :]
    ident = ident[: ident.index("</section>")]
    assert f"auditor render, from the results file {GOLD} (sha256 {digest})" in ident
    assert "not produced by an audit run" in ident
    header = text[text.index("<header>") : text.index("</header>")]  # the first screen
    assert "re-rendered from a results file, not produced by an audit run" in header
    found = from_json(read_embedded(text, "r").json_text)
    assert found.identification["rendered_from"] == {"path": str(GOLD), "sha256": digest}


def test_bad_signing_keys_exit_2(tmp_path):
    not_a_key = tmp_path / "nokey.pem"
    not_a_key.write_text("hello")
    for key in (not_a_key, tmp_path / "missing.pem"):
        result = run("render", GOLD, "-o", tmp_path / "x.html", "--sign-key", key)
        assert result.exit_code == EXIT_CANNOT_RUN and result.stderr.count("\n") == 1
    assert not (tmp_path / "x.html").exists()


def test_check_signs_and_the_json_file_matches_the_header(binary_model, data_dir, tmp_path):
    private, public = keypair(tmp_path)
    report = tmp_path / "r.html"
    args = ["check", binary_model, "--data", data_dir, "-o", report, "-p", "contrast"]
    result = run(*args, "--sign-key", private, "--organisation", "Lab & Co")
    assert result.exit_code == EXIT_OK, result.stderr
    digest = hashlib.sha256(report.with_suffix(".json").read_bytes()).hexdigest()
    assert f'name="auditor-results-sha256" content="{digest}"' in report.read_text()
    assert run("verify", report, "--public-key", public).exit_code == EXIT_OK
    assert "Lab &amp; Co" in report.read_text()


def test_missing_cryptography_is_one_line(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_crypto(name: str, *args, **kwargs):
        if name.startswith("cryptography"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_crypto)
    private = tmp_path / "k.pem"
    private.write_text("x")
    result = run("render", GOLD, "-o", tmp_path / "x.html", "--sign-key", private)
    assert result.exit_code == EXIT_CANNOT_RUN
    assert 'pip install "auditor[sign]"' in result.stderr


def test_old_results_render_and_verify(tmp_path):
    """Results JSON from before identification, moved samples and interval gates."""
    data = json.loads(GOLD.read_text())
    for key in ("identification", "moved", "determinism", "status", "progress"):
        data.pop(key)
    data["verdict"] = {
        "passed": False,
        "gates": [
            {
                k: v
                for k, v in g.items()
                if k in ("gate", "metric", "threshold", "value", "passed", "where")
            }
            for g in data["verdict"]["gates"]
        ],
    }
    for key in ("runtime", "external_data"):
        data["model"].pop(key)
    for key in ("os", "cpu", "gpu"):
        data["environment"].pop(key)
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    results: AuditResults = load_json(old)
    assert results.verdict.result == "FAIL" and results.identification == {}
    out = tmp_path / "old.html"
    assert run("render", old, "-o", out).exit_code == EXIT_OK
    text = out.read_text()
    assert "These results record no per-sample changes" in text
    assert "No determinism probe was recorded" in text
    assert run("verify", out).exit_code == EXIT_OK


def test_render_refuses_unreadable_results_with_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something/else"}')
    for path in (bad, tmp_path / "missing.json"):
        result = run("render", path, "-o", tmp_path / "x.html")
        assert result.exit_code == EXIT_CANNOT_RUN, result.output
        assert result.stderr.startswith("auditor: error: ") and result.stderr.count("\n") == 1


def test_another_version_checks_the_digest_only_and_says_so(report):
    text = re.sub(
        r'<meta name="auditor-generator" content="[^"]*">',
        '<meta name="auditor-generator" content="0.0.9">',
        report.read_text(),
    )
    report.write_text(text)
    result = run("verify", report)
    assert result.exit_code == EXIT_OK
    assert "checked the digest and signature only" in result.stderr
