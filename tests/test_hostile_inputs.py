"""Hostile files, manifests and reports through the real command line: never a traceback.

Every case of `tests/hostile.py` runs through `auditor.cli.main`: exit 0 with the hostile
file listed (and the same reason after `--resume`), 1 for an altered report, or 2 with
one line on stderr. Property tests then throw arbitrary text and JSON at the manifest
reader, which may only answer with rows or a `DataError`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_class_folders
from hostile import CASES, Case, comparable, interrupted, keep_journal, outcome, problems
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.cli import main
from auditor.data import Sample, decode, discover
from auditor.data.manifest import MAX_DEPTH, read_rows
from auditor.data.samples import portable
from auditor.errors import DataError, SampleError
from auditor.seeds import stable_id


def invoke(args: list[str]) -> tuple[int, str]:
    """Run the CLI in-process; an uncaught exception shows as a traceback on stderr."""
    result = CliRunner().invoke(main, args)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += f"\nTraceback: {result.exception!r}"
    return result.exit_code, stderr


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_input_never_crashes_the_cli(case: Case, tmp_path: Path, binary_model: Path):
    folder = tmp_path / "case"
    folder.mkdir()
    run = case.build(folder, binary_model)
    kept = keep_journal(run) if run.culprit else None
    code, stderr = invoke(run.args)
    assert problems(run, code, stderr) == [], stderr
    if kept is None:
        return
    first, fate = comparable(run), outcome(run)
    code, stderr = invoke(interrupted(run, kept))
    assert problems(run, code, stderr) == [], stderr
    assert outcome(run) == fate  # the same reason (or audited) after --resume
    assert comparable(run) == first


def test_the_corpus_covers_every_outcome():
    names = {c.name for c in CASES}
    assert {"zero_byte_png", "sparse_40gb_png", "non_utf8_name", "data_is_a_fifo"} <= names
    assert {"csv_in_latin1", "jsonl_5mb_path", "verify_two_results_blocks"} <= names


def bytes_read() -> int:
    """What this process has read so far (Linux: `rchar` of /proc/self/io)."""
    io = Path("/proc/self/io")
    if not io.is_file():
        pytest.skip("needs /proc/self/io")
    return int(re.search(r"rchar: (\d+)", io.read_text())[1])  # type: ignore[index]


def test_a_sparse_file_is_refused_after_reading_its_header_only(tmp_path: Path):
    path = tmp_path / "huge.png"
    path.write_bytes(b"")
    os.truncate(path, 40 * 2**30)
    before = bytes_read()
    with pytest.raises(SampleError, match=r"42,949,672,960 bytes, over the limit of 1,667"):
        decode(Sample("huge.png", path, None))
    assert bytes_read() - before < 1 << 20  # the header (64 KiB), not gigabytes


def test_decode_gives_the_same_reason_every_time(tmp_path: Path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    reasons = set()
    for _ in range(3):
        with pytest.raises(SampleError) as caught:
            decode(Sample("empty.png", path, None))
        reasons.add(str(caught.value))
    assert reasons == {"empty file (0 bytes)"}


def test_every_file_in_a_class_folder_is_listed_but_hidden_ones(tmp_path: Path):
    data = write_class_folders(tmp_path / "data", per_class=2)
    (data / "real" / ".DS_Store").write_bytes(b"\0")
    (data / "real" / ".thumbs").mkdir()
    (data / "real" / ".thumbs" / "r00.png").write_bytes((data / "real" / "r00.png").read_bytes())
    (data / "real" / "README").write_text("about these images")
    (data / "notes.txt").write_text("beside the class folders: not data")
    dataset = discover(data)
    assert len(dataset.samples) == 4 and dataset.media == "image"
    assert [(s.path, s.reason) for s in dataset.skipped] == [
        ("real/README", "not an image or video file (no suffix)")
    ]


def test_a_name_that_is_not_utf8_never_takes_another_files_id(tmp_path: Path):
    data = write_class_folders(tmp_path / "data", per_class=1)
    image = (data / "real" / "r00.png").read_bytes()
    (data / "real" / "a\\xff.png").write_bytes(image)  # valid UTF-8: a backslash, x, f, f
    Path(os.fsdecode(os.fsencode(data / "real") + b"/a\xff.png")).write_bytes(image)
    dataset = discover(data)
    assert [s.key for s in dataset.samples].count("real/a\\xff.png") == 1
    assert [(s.path, s.reason) for s in dataset.skipped] == [
        ("real/a\\xff.png", "its name is not UTF-8 and, escaped, reads as another file's name")
    ]
    kept = next(s for s in dataset.samples if s.key == "real/a\\xff.png")
    assert kept.path.name == "a\\xff.png"


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\0" not in b))
def test_a_file_name_key_is_valid_utf8_and_gives_the_name_back(name: bytes):
    key = portable(os.fsdecode(name))
    key.encode("utf-8")  # JSON, HTML and the journal can hold it
    assert stable_id(key) == stable_id(portable(os.fsdecode(name)))
    try:
        assert key == name.decode("utf-8")  # a UTF-8 name is its own key
    except UnicodeDecodeError:
        raw = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]), key.encode())
        assert raw == name


def test_stable_id_hashes_a_name_that_is_not_utf8_as_its_bytes():
    assert stable_id(os.fsdecode(b"caf\xe9")) == stable_id(os.fsdecode(b"caf\xe9"))
    assert stable_id("caf\udce9") != stable_id("cafe")
    assert stable_id("caf\ud800") == stable_id("caf\ud800")  # a lone surrogate hashes too


# ---------------------------------------------------------------- manifests, any input


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("manifests")


ANY_INPUT = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def rows_or_data_error(path: Path) -> list:
    try:
        return read_rows(path)
    except DataError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400
        return []


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(st.text(max_size=60), max_size=6))
def test_any_csv_text_gives_rows_or_a_data_error(scratch: Path, lines: list[str]):
    path = scratch / "m.csv"
    path.write_text("path,label\n" + "\n".join(lines), encoding="utf-8", errors="surrogatepass")
    for row in rows_or_data_error(path):
        assert "\x00" not in row.path and row.path == row.path.strip()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.one_of(json_values, st.fixed_dictionaries({"path": json_values})), max_size=4)
)
def test_any_json_lines_give_rows_or_a_data_error(scratch: Path, rows: list):
    path = scratch / "m.jsonl"
    path.write_text(
        "\n".join(json.dumps(r) for r in rows), encoding="utf-8", errors="surrogatepass"
    )
    for row in rows_or_data_error(path):
        assert isinstance(row.path, str) and (row.label is None or isinstance(row.label, str))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".csv", ".jsonl"]))
def test_any_bytes_give_rows_or_a_data_error(scratch: Path, data: bytes, suffix: str):
    path = scratch / f"m{suffix}"
    path.write_bytes(data)
    rows_or_data_error(path)


def test_nesting_is_checked_before_parsing(tmp_path: Path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"path": "a.png", "x": ' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "}")
    with pytest.raises(DataError, match=f"m.jsonl:1: JSON nested more than {MAX_DEPTH} deep"):
        read_rows(path)
    brackets_in_strings = '{"path": "' + "[" * 100 + '.png", "label": "real"}'
    path.write_text(brackets_in_strings)
    assert read_rows(path)[0].path == "[" * 100 + ".png"
