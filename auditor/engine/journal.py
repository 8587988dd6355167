"""The crash journal: per-sample results appended as they are computed, for `--resume`.

One record per line, `CRC32 JSON`: a line cut short by a crash fails its checksum and
is ignored along with anything after it. The first record names the journal format
and the digest of what was audited (settings, model sha256, data listing); a resume
with another digest is refused, because its records would answer another question.
Floats are written with `repr` precision, so a resumed run computes the same figures.

Each scored record carries its file's sha256: on resume a file whose content changed
since is scored again (`ShardRun` compares), and a record that cannot describe a sample
of this audit (an index out of range or not a number, another sample's key, another
width or number of draws) is refused: the checksum only catches accidents.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any, TypeGuard

import numpy as np

from auditor import data
from auditor.engine.facecrop import faces_from_record
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

    def rewrite(self, digest: str, records: Iterable[dict[str, Any]]) -> None:
        """Replace the journal by its header and `records` (atomically), then append after."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(encode({"journal": FORMAT, "digest": digest}))
            handle.write(b"".join(encode(r) for r in records))
            handle.flush()
            os.fsync(handle.fileno())
        self._handle.close()
        os.replace(tmp, self.path)
        self._handle = open(self.path, "ab")  # noqa: SIM115 (closed by `close`)

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
    record: dict[str, Any],
    samples: Sequence[data.Sample],
    plan: AuditPlan,
    width: int | None = None,
) -> Scored | Failed:
    """The finished sample a `journal_record` describes, with a row per draw of `plan`.

    `width`: the number of classes each probability vector must have (None: any, the
    same in every vector). A record that does not fit raises `ConfigError` saying why.
    """
    index = record.get("i")
    if not isinstance(index, int) or isinstance(index, bool):
        raise ConfigError(f"a journal record has the index {_shown(index)}, not a whole number")
    if not 0 <= index < len(samples):
        raise ConfigError(
            f"journal record {index} is out of range: the audit has {len(samples)} samples"
        )
    sample = samples[index]
    if sample.key != record.get("k"):  # the digest covers the listing; this is a safety net
        raise ConfigError(
            f"journal record {index} is for {_shown(record.get('k'))}, not '{sample.key}'"
        )
    if "skip" in record:
        return Failed(index, sample, _text(record, "skip", index))
    draws = record.get("p")
    if not isinstance(draws, list) or len(draws) != len(plan.draws):  # the digest covers the plan
        count = len(draws) if isinstance(draws, list) else _shown(draws)
        raise ConfigError(
            f"journal record {index} has {count} draws; the plan has {len(plan.draws)}"
        )
    clean = _floats(record.get("c"), 1, index, "clean probabilities")
    perturbed = _floats(draws, 2, index, "probabilities")
    frames = None
    if "f" in record:  # a video: (1 + draws) x frames x classes, and the frames' numbers
        frames = _floats(record["f"], 3, index, "frame probabilities")
        numbers = record.get("fi")
        count = len(numbers) if _whole(numbers) else -1
        if frames.shape[:2] != (1 + len(plan.draws), count):
            raise ConfigError(f"journal record {index}: its frames do not match its frame list")
    width = width or clean.shape[-1]
    for array in (clean, perturbed, *([] if frames is None else [frames])):
        if array.shape[-1] != width:
            raise ConfigError(
                f"journal record {index} has probability vectors of {array.shape[-1]} "
                f"classes; the model gives {width}"
            )
    return Scored(
        index,
        sample,
        _text(record, "sha", index),
        None if record.get("cv") is None else _text(record, "cv", index),
        clean,
        perturbed,
        frames,
        tuple(record.get("fi", ())),
        _change(record.get("px")),
        faces_from_record(record["fc"]) if "fc" in record else None,
    )


def _change(values: Any) -> PixelChange | None:
    """The `PixelChange` of a record's `px` entry: [side, values, [sse per draw]]."""
    if values is None:
        return None
    side, count, sse = values
    return PixelChange(int(side), int(count), tuple(int(v) for v in sse))


def _floats(value: Any, ndim: int, index: int, what: str) -> np.ndarray:
    """`value` as a float array of `ndim` dimensions, every entry finite, or `ConfigError`."""
    try:
        array = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        array = np.empty(0)
    if array.ndim != ndim or array.size == 0 or not np.isfinite(array).all():
        raise ConfigError(f"journal record {index}: its {what} are not a table of numbers")
    return array


def _text(record: dict[str, Any], key: str, index: int) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise ConfigError(f"journal record {index}: '{key}' is {_shown(value)}, not text")
    return value


def _whole(values: Any) -> TypeGuard[list[int]]:
    return isinstance(values, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    )


def _shown(value: Any) -> str:
    """A value from a journal, short enough for a one-line message."""
    text = json.dumps(value, allow_nan=True, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def load_records(
    path: Path,
    records: Sequence[dict[str, Any]],
    samples: Sequence[data.Sample],
    plan: AuditPlan,
    width: int | None,
    mine: set[int],
) -> list[Scored | Failed]:
    """The finished samples of a resumed journal's `records` (after its header line).

    A record that cannot belong to this shard of this audit is refused, naming its line.
    """
    finished: list[Scored | Failed] = []
    seen: set[int] = set()
    for line, record in enumerate(records, start=2):
        try:
            item = from_journal_record(record, samples, plan, width)
            if item.index not in mine:
                raise ConfigError(f"journal record {item.index} belongs to another shard")
            if item.index in seen:
                raise ConfigError(f"journal record {item.index} appears twice")
        except ConfigError as exc:
            raise ConfigError(
                f"{path}: cannot resume: line {line}: {exc}; the journal was altered or "
                "damaged: start over without --resume"
            ) from None
        seen.add(item.index)
        finished.append(item)
    return finished
