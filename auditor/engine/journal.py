"""The crash journal: per-sample results appended as they are computed, for `--resume`.

One record per line, `CRC32 JSON`: a line cut short by a crash fails its checksum and
is ignored along with anything after it. The first record names the journal format
and the digest of what was audited (settings, model sha256, data listing); a resume
with another digest is refused, because its records would answer another question.
Floats are written with `repr` precision, so a resumed run computes the same figures.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from auditor import data
from auditor.engine.facecrop import FaceTrack
from auditor.engine.pipeline import Failed, PixelChange, Scored
from auditor.engine.plan import AuditPlan
from auditor.errors import ConfigError

FORMAT = "auditor/journal@2"  # @2: records carry the pixel change of each draw


def encode(record: dict[str, Any]) -> bytes:
    """Return one journal line for `record`: checksum, space, compact JSON, newline."""
    payload = json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def read(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Return the intact records of the journal at `path` and the byte length they span."""
    records: list[dict[str, Any]] = []
    good = 0
    with open(path, "rb") as handle:
        for line in handle:
            record = _decode(line)
            if record is None:
                break
            records.append(record)
            good += len(line)
    return records, good


def _decode(line: bytes) -> dict[str, Any] | None:
    if not line.endswith(b"\n") or len(line) < 10 or line[8:9] != b" ":
        return None
    payload = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        record = json.loads(payload)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


class Journal:
    """An open journal: `append` records, `flush` them in batches, `remove` when done."""

    def __init__(self, path: Path, handle: IO[bytes]) -> None:
        self.path = path
        self._handle = handle

    @classmethod
    def start(cls, path: Path, digest: str, resume: bool) -> tuple[Journal, list[dict[str, Any]]]:
        """Open the journal at `path`; with `resume`, return the records it already holds.

        Without `resume` an existing journal is replaced.
        """
        path = Path(path)
        records: list[dict[str, Any]] = []
        if resume and path.is_file():
            records, good = read(path)
            header = records[0] if records else {}
            if header.get("journal") != FORMAT or header.get("digest") != digest:
                raise ConfigError(
                    f"{path}: cannot resume: this journal was written by an audit of another "
                    "model, data or settings; run the same command as before with --resume, "
                    "or start over without --resume"
                )
            handle: IO[bytes] = open(path, "r+b")  # noqa: SIM115 (closed by `close`)
            handle.truncate(good)  # drop a torn last line before appending
            handle.seek(good)
            return cls(path, handle), records[1:]
        path.parent.mkdir(parents=True, exist_ok=True)
        journal = cls(path, open(path, "wb"))  # noqa: SIM115
        journal.append([{"journal": FORMAT, "digest": digest}])
        journal.flush()
        return journal, records

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        self._handle.write(b"".join(encode(r) for r in records))

    def flush(self) -> None:
        """Hand the records to the operating system: they survive the process being killed."""
        self._handle.flush()

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def journal_record(item: Scored | Failed) -> dict[str, Any]:
    """The journal record of one finished sample (floats kept exact by `repr`)."""
    if isinstance(item, Failed):
        return {"i": item.index, "k": item.sample.key, "skip": item.reason}
    return {
        "i": item.index,
        "k": item.sample.key,
        "sha": item.sha256,
        "cv": item.converted,
        "c": item.clean.tolist(),
        "p": item.perturbed.tolist(),
        # Videos: the frames' probabilities and numbers, for the per-frame figures.
        **(
            {"f": item.frames.tolist(), "fi": item.frame_indices} if item.frames is not None else {}
        ),
        # How each draw changed the pixels (`PixelChange`), for the applied-parameter figures.
        **(
            {"px": [item.change.side, item.change.values, list(item.change.sse)]}
            if item.change is not None
            else {}
        ),
        # --face-crop: the crop boxes, clean and per draw (None: no face found).
        **({"fc": item.faces.as_list()} if item.faces is not None else {}),
    }


def from_journal_record(
    record: dict[str, Any], samples: Sequence[data.Sample], plan: AuditPlan
) -> Scored | Failed:
    """The finished sample a `journal_record` describes, with a row per draw of `plan`."""
    index = int(record["i"])
    sample = samples[index]
    if sample.key != record["k"]:  # the digest covers the listing; this is a safety net
        raise ConfigError(f"journal record {index} is for '{record['k']}', not '{sample.key}'")
    if "skip" in record:
        return Failed(index, sample, record["skip"])
    if len(record["p"]) != len(plan.draws):  # the digest covers the plan; so is this
        raise ConfigError(
            f"journal record {index} has {len(record['p'])} draws; the plan has {len(plan.draws)}"
        )
    return Scored(
        index,
        sample,
        record["sha"],
        record["cv"],
        np.asarray(record["c"], np.float64),
        np.asarray(record["p"], np.float64),
        np.asarray(record["f"], np.float64) if "f" in record else None,
        tuple(record.get("fi", ())),
        _change(record.get("px")),
        FaceTrack.from_list(record["fc"]) if "fc" in record else None,
    )


def _change(values: Any) -> PixelChange | None:
    """The `PixelChange` of a record's `px` entry: [side, values, [sse per draw]]."""
    if values is None:
        return None
    side, count, sse = values
    return PixelChange(int(side), int(count), tuple(int(v) for v in sse))
