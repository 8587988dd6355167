"""The crash journal: checksummed lines, torn tails ignored, other settings refused."""

from __future__ import annotations

import pytest

from auditor.engine import journal
from auditor.engine.journal import Journal
from auditor.errors import ConfigError


def test_records_round_trip_with_exact_floats(tmp_path):
    path = tmp_path / "j"
    j, old = Journal.start(path, "d1", resume=False)
    assert old == []
    j.append([{"k": "a", "c": [0.1, 1 / 3]}, {"k": "b", "skip": "bad"}])
    j.close()
    records, _ = journal.read(path)
    assert records[0] == {"journal": journal.FORMAT, "digest": "d1"}
    assert records[1]["c"] == [0.1, 1 / 3] and records[2]["skip"] == "bad"


def test_torn_or_corrupt_tail_is_ignored_and_truncated_on_resume(tmp_path):
    path = tmp_path / "j"
    j, _ = Journal.start(path, "d1", resume=False)
    j.append([{"k": "a"}, {"k": "b"}])
    j.close()
    intact = path.read_bytes()
    path.write_bytes(intact + journal.encode({"k": "c"})[:-5])  # killed mid-write
    j, records = Journal.start(path, "d1", resume=True)
    assert [r["k"] for r in records] == ["a", "b"]
    j.append([{"k": "c"}])
    j.close()
    assert [r.get("k") for r in journal.read(path)[0]] == [None, "a", "b", "c"]
    flipped = bytearray(path.read_bytes())
    flipped[-3] ^= 1  # a bit flip in the last record: its checksum fails
    path.write_bytes(bytes(flipped))
    assert [r.get("k") for r in journal.read(path)[0]] == [None, "a", "b"]


def test_resume_with_other_settings_is_refused(tmp_path):
    path = tmp_path / "j"
    Journal.start(path, "d1", resume=False)[0].close()
    with pytest.raises(ConfigError, match="another model, data or settings"):
        Journal.start(path, "d2", resume=True)


def test_start_without_resume_replaces_the_journal(tmp_path):
    path = tmp_path / "j"
    j, _ = Journal.start(path, "d1", resume=False)
    j.append([{"k": "a"}])
    j.close()
    j, records = Journal.start(path, "d2", resume=False)
    j.close()
    assert records == [] and len(journal.read(path)[0]) == 1
