"""A corpus of hostile inputs: files, manifests and reports that must not crash `auditor`.

Each case builds its files in an empty folder and says what the command line must do:
exit 0 (the audit goes on, and the hostile file is listed: skipped with its reason, or
audited), 1 (`verify`: the report was altered) or 2 (one line on stderr, `auditor:
error: ...`), and never a traceback. `tests/test_hostile_inputs.py` runs every case
in-process; `bench/hostile.py` runs them in subprocesses and counts.

A case that leaves the audit running names its hostile file (`culprit`); it is also
resumed from a journal that lacks the culprit's record, which must give the same reason.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from conftest import colour_image, without_run_specifics, write_class_folders

SPARSE_BYTES = 40 * 2**30  # 40 GB of holes: no disk, but a whole read would take minutes
GOLD = Path(__file__).parent / "gold" / "results.json"
# A 1 x 1 GIF89a (GIF decoding depends on the OpenCV build: it is audited or skipped).
GIF = bytes.fromhex(
    "47494638396101000100800000ff000000000021f90401000000002c00000000010001000002024401003b"
)


@dataclass(frozen=True)
class Run:
    """What to run for a case, and what must come of it."""

    args: list[str]
    expect: int  # 0: the audit goes on; 1: `verify` finds the report altered; 2: refused
    message: str = ""  # in the one-line error (2), in stderr (1), in the skip reason (0)
    culprit: str | None = None  # results key of the hostile file (exit 0)
    results: Path | None = None  # the results JSON (exit 0)
    may_audit: bool = False  # the culprit may be audited instead of skipped


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path, Path], Run]  # (empty folder, ONNX model) -> Run


CASES: list[Case] = []


def case(build: Callable[[Path, Path], Run]) -> Callable[[Path, Path], Run]:
    CASES.append(Case(build.__name__, build))
    return build


# ---------------------------------------------------------------- builders


def audit(folder: Path, model: Path, data: Path, *extra: str) -> list[str]:
    """`auditor check` of `model` on `data` under one cheap perturbation."""
    report = folder / "out" / "report.html"
    return ["check", str(model), "--data", str(data), "-o", str(report), "-p", "brightness", *extra]


def results_of(folder: Path) -> Path:
    return folder / "out" / "report.json"


def per_file(folder: Path, model: Path, name: str | bytes, content: bytes, reason: str) -> Run:
    """Class folders with one hostile file, `real/name`, holding `content`."""
    data = write_class_folders(folder / "data", per_class=2)
    target = os.path.join(os.fsencode(data / "real"), os.fsencode(name))
    with open(target, "wb") as handle:
        handle.write(content)
    key = "real/" + (name if isinstance(name, str) else _escaped(name))
    return Run(audit(folder, model, data), 0, reason, key, results_of(folder))


def _escaped(name: bytes) -> str:
    """How `auditor` writes a name that is not UTF-8 (see README: non-UTF-8 names)."""
    return name.replace(b"\\", b"\\x5c").decode("utf-8", "backslashreplace")


def sparse(path: Path | bytes, size: int = SPARSE_BYTES) -> None:
    with open(path, "ab"):
        pass
    os.truncate(path, size)


def png_bytes(seed: int = 0) -> bytes:
    image = colour_image(np.random.default_rng(seed), 0.3)
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def jpeg_bytes() -> bytes:
    ok, encoded = cv2.imencode(".jpg", colour_image(np.random.default_rng(0), 0.3, (64, 64)))
    assert ok
    return encoded.tobytes()


def write_clip(path: Path | bytes, frames: int = 4, shade: int = 40) -> None:
    """A short MPEG-4 clip (written beside, then moved: OpenCV takes str names only)."""
    scratch = Path(os.fsdecode(path)).with_name("scratch.mp4")
    writer = cv2.VideoWriter(str(scratch), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (16, 16))
    for i in range(frames):
        writer.write(np.full((16, 16, 3), min(255, shade + 20 * i), np.uint8))
    writer.release()
    os.replace(scratch, path)


def video_folders(folder: Path) -> Path:
    data = folder / "data"
    for label, shade in (("real", 30), ("fake", 200)):
        (data / label).mkdir(parents=True)
        for i in range(2):
            write_clip(data / label / f"{label}{i}.mp4", shade=shade + 10 * i)
    return data


def video_case(folder: Path, model: Path, name: str | bytes, make: Callable, reason: str) -> Run:
    data = video_folders(folder)
    make(os.path.join(os.fsencode(data / "real"), os.fsencode(name)))
    key = "real/" + (name if isinstance(name, str) else _escaped(name))
    args = audit(folder, model, data, "--frames", "2")
    return Run(args, 0, reason, key, results_of(folder))


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def manifest(folder: Path, model: Path, name: str, content: bytes, message: str) -> Run:
    write_class_folders(folder / "data", per_class=2)
    path = folder / "data" / name
    path.write_bytes(content)
    return Run(audit(folder, model, path), 2, message)


def report(folder: Path) -> Path:
    """A genuine report, rendered from the gold results."""
    from auditor.report.html import render_html
    from auditor.results import from_json

    text = GOLD.read_text(encoding="utf-8")
    path = folder / "report.html"
    path.write_text(render_html(from_json(text), None, text), encoding="utf-8")
    return path


# ---------------------------------------------------------------- one bad file: exit 0


@case
def zero_byte_png(folder: Path, model: Path) -> Run:
    return per_file(folder, model, "empty.png", b"", "empty file")


@case
def truncated_jpeg(folder: Path, model: Path) -> Run:
    whole = jpeg_bytes()
    return per_file(folder, model, "cut.jpg", whole[: len(whole) // 2], "truncated JPEG")


@case
def sparse_40gb_png(folder: Path, model: Path) -> Run:
    run = per_file(folder, model, "huge.png", b"", "that --max-pixels allows")
    sparse(folder / "data" / "real" / "huge.png")
    return run


@case
def png_header_bomb(folder: Path, model: Path) -> Run:
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    bomb = b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 64
    return per_file(folder, model, "bomb.png", bomb, "pixels, over the limit")


@case
def garbage_png(folder: Path, model: Path) -> Run:
    junk = np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes()
    return per_file(folder, model, "junk.png", junk, "not a decodable image")


@case
def non_utf8_name(folder: Path, model: Path) -> Run:
    """Audited; its id is the escaped name, the same on every run."""
    return per_file(folder, model, b"caf\xe9 \\ \xff.png", png_bytes(3), "")


@case
def non_utf8_folder_and_empty_file(folder: Path, model: Path) -> Run:
    data = write_class_folders(folder / "data", per_class=2)
    inner = os.path.join(os.fsencode(data / "real"), b"sub\xe9")
    os.mkdir(inner)
    open(os.path.join(inner, b"\xfe.png"), "wb").close()
    culprit = "real/" + _escaped(b"sub\xe9/\xfe.png")
    return Run(audit(folder, model, data), 0, "empty file", culprit, results_of(folder))


@case
def gif_in_class_folder(folder: Path, model: Path) -> Run:
    run = per_file(folder, model, "anim.gif", GIF, "not a decodable image")
    return Run(run.args, 0, run.message, run.culprit, run.results, may_audit=True)


@case
def text_file_in_class_folder(folder: Path, model: Path) -> Run:
    return per_file(folder, model, "notes.txt", b"hello\n", "not an image or video file")


@case
def fifo_in_class_folder(folder: Path, model: Path) -> Run:
    run = per_file(folder, model, "pipe.png", b"", "not a regular file (a FIFO)")
    os.unlink(folder / "data" / "real" / "pipe.png")
    fifo(folder / "data" / "real" / "pipe.png")
    return run


@case
def symlink_loop_in_class_folder(folder: Path, model: Path) -> Run:
    run = per_file(folder, model, "loop.png", b"", "cannot read the file")
    os.unlink(folder / "data" / "real" / "loop.png")
    os.symlink("loop.png", folder / "data" / "real" / "loop.png")
    return run


@case
def zero_byte_video(folder: Path, model: Path) -> Run:
    return video_case(folder, model, "empty.mp4", lambda p: open(p, "wb").close(), "empty file")


@case
def sparse_40gb_video(folder: Path, model: Path) -> Run:
    return video_case(folder, model, "huge.mp4", sparse, "not a decodable video")


@case
def video_with_40gb_sparse_tail(folder: Path, model: Path) -> Run:
    """A real clip followed by 40 GB of holes: refused before it is read to be hashed."""

    def make(path: bytes) -> None:
        write_clip(path)
        sparse(path)

    return video_case(folder, model, "tail.mp4", make, "frames of 16x16 can take")


@case
def garbage_video(folder: Path, model: Path) -> Run:
    junk = np.random.default_rng(2).integers(0, 256, 8192, np.uint8).tobytes()
    return video_case(
        folder, model, "junk.mp4", lambda p: Path(os.fsdecode(p)).write_bytes(junk), "video"
    )


@case
def non_utf8_video_name(folder: Path, model: Path) -> Run:
    """Audited (OpenCV's video reader is given the name's bytes)."""
    return video_case(folder, model, b"clip\xff.mp4", write_clip, "")


# ---------------------------------------------------------------- the audit cannot run: exit 2


@case
def data_is_a_fifo(folder: Path, model: Path) -> Run:
    return Run(audit(folder, model, fifo(folder / "data")), 2, "not a regular file (a FIFO)")


@case
def data_is_a_socket(folder: Path, model: Path) -> Run:
    path = folder / "data.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
    return Run(audit(folder, model, path), 2, "a socket")


@case
def data_is_a_device(folder: Path, model: Path) -> Run:
    return Run(audit(folder, model, Path("/dev/null")), 2, "a character device")


@case
def manifest_is_a_fifo(folder: Path, model: Path) -> Run:
    write_class_folders(folder / "data", per_class=2)
    return Run(audit(folder, model, fifo(folder / "data" / "m.csv")), 2, "a FIFO")


@case
def csv_in_latin1(folder: Path, model: Path) -> Run:
    text = "path,label\nreal/r00.png,real\nréel/café.png,real\n"
    return manifest(folder, model, "m.csv", text.encode("latin-1"), "m.csv:3: not UTF-8")


@case
def csv_nul_in_path(folder: Path, model: Path) -> Run:
    text = b"path,label\nreal/r00.png,real\nreal/r01\x00.png,real\n"
    return manifest(folder, model, "m.csv", text, "m.csv:3: the path holds a control character")


@case
def csv_field_over_the_csv_limit(folder: Path, model: Path) -> Run:
    text = 'path,label\n"' + ("a" * 60_000 + "\n") * 3 + '",real\n'
    return manifest(folder, model, "m.csv", text.encode(), "not valid CSV")


@case
def jsonl_nul_in_path(folder: Path, model: Path) -> Run:
    line = json.dumps({"path": "real/r00\x00.png", "label": "real"})
    return manifest(folder, model, "m.jsonl", line.encode(), "m.jsonl:1: the path holds")


@case
def jsonl_terminal_escape_in_path(folder: Path, model: Path) -> Run:
    line = json.dumps({"path": "\x1b[2J\x1b[31mreal/r00.png", "label": "real"})
    return manifest(folder, model, "m.jsonl", line.encode(), "control character (U+001B)")


@case
def jsonl_lone_surrogate_in_path(folder: Path, model: Path) -> Run:
    line = '{"path": "real/\\ud800.png", "label": "real"}\n'
    return manifest(folder, model, "m.jsonl", line.encode(), "a lone surrogate (U+D800)")


@case
def jsonl_deeply_nested(folder: Path, model: Path) -> Run:
    line = '{"path": "real/r00.png", "x": ' + "[" * 30_000 + "]" * 30_000 + "}\n"
    return manifest(folder, model, "m.jsonl", line.encode(), "m.jsonl:1: JSON nested more than")


@case
def jsonl_5mb_path(folder: Path, model: Path) -> Run:
    line = json.dumps({"path": "a" * 5_000_000, "label": "real"})
    return manifest(folder, model, "m.jsonl", line.encode(), "m.jsonl:1: the line is 5,000,0")


@case
def jsonl_not_an_object(folder: Path, model: Path) -> Run:
    return manifest(folder, model, "m.jsonl", b"[1, 2]\n", "m.jsonl:1: expected a JSON object")


@case
def jsonl_number_of_5000_digits(folder: Path, model: Path) -> Run:
    line = '{"path": 1' + "0" * 5000 + "}\n"
    return manifest(folder, model, "m.jsonl", line.encode(), "m.jsonl:1: expected a JSON object")


@case
def jsonl_path_is_a_list(folder: Path, model: Path) -> Run:
    line = b'{"path": ["real/r00.png"], "label": "real"}\n'
    return manifest(folder, model, "m.jsonl", line, "must be strings or numbers")


# ---------------------------------------------------------------- reports and results


@case
def verify_a_fifo(folder: Path, model: Path) -> Run:
    return Run(["verify", str(fifo(folder / "report.html"))], 2, "not a regular file (a FIFO)")


@case
def verify_a_sparse_40gb_report(folder: Path, model: Path) -> Run:
    path = folder / "report.html"
    sparse(path)
    return Run(["verify", str(path)], 2, "over the limit")


@case
def verify_a_report_that_is_not_utf8(folder: Path, model: Path) -> Run:
    path = folder / "report.html"
    path.write_bytes(b"<html>\xff\xfe</html>")
    return Run(["verify", str(path)], 2, "cannot read")


@case
def verify_two_results_blocks(folder: Path, model: Path) -> Run:
    path = report(folder)
    text = path.read_text(encoding="utf-8")
    start = text.index('<script type="application/json" id="auditor-results">')
    end = text.index("</script>", start) + len("</script>")
    forged = text[start:end].replace('"n_samples": 300', '"n_samples": 301')
    path.write_text(text[:end] + "\n" + forged + text[end:], encoding="utf-8")
    return Run(["verify", str(path)], 1, "2 results blocks")


@case
def verify_with_a_fifo_public_key(folder: Path, model: Path) -> Run:
    path = report(folder)
    key = fifo(folder / "key.pem")
    return Run(["verify", str(path), "--public-key", str(key)], 2, "a FIFO")


@case
def render_a_fifo(folder: Path, model: Path) -> Run:
    results = fifo(folder / "results.json")
    return Run(["render", str(results), "-o", str(folder / "r.html")], 2, "a FIFO")


@case
def policy_is_a_fifo(folder: Path, model: Path) -> Run:
    data = write_class_folders(folder / "data", per_class=2)
    policy = fifo(folder / "policy.toml")
    return Run([*audit(folder, model, data), "--policy", str(policy)], 2, "a FIFO")


@case
def policy_deeply_nested(folder: Path, model: Path) -> Run:
    data = write_class_folders(folder / "data", per_class=2)
    policy = folder / "policy.toml"
    policy.write_text("x = " + "[" * 50_000 + "]" * 50_000 + "\n")
    return Run([*audit(folder, model, data), "--policy", str(policy)], 2, "nested too deeply")


# ---------------------------------------------------------------- checking an outcome


def problems(run: Run, code: int, stderr: str) -> list[str]:
    """What is wrong with an outcome of `run` (empty: it is right)."""
    found = []
    if "Traceback" in stderr:
        found.append("a traceback on stderr")
    if code != run.expect:
        found.append(f"exit {code}, expected {run.expect}")
    elif code == 2:
        lines = stderr.strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("auditor: error: "):
            found.append(f"not one 'auditor: error:' line: {stderr[:300]!r}")
        elif len(lines[0]) > 1000:
            found.append(f"an error line of {len(lines[0]):,} characters")
        elif run.message not in lines[0]:
            found.append(f"{run.message!r} not in {lines[0]!r}")
    elif code == 1 and run.message not in stderr:
        found.append(f"{run.message!r} not in {stderr[:300]!r}")
    elif code == 0 and run.culprit is not None:
        found += _listed(run)
    return found


def outcome(run: Run) -> str:
    """The culprit's fate in the results: `audited` or `skipped: <reason>`."""
    assert run.results is not None
    data = json.loads(run.results.read_text(encoding="utf-8"))["data"]
    for entry in data["skipped"]:
        if entry["path"] == run.culprit:
            return f"skipped: {entry['reason']}"
    if any(entry["path"] == run.culprit for entry in data["manifest"]):
        return "audited"
    return "not listed"


def _listed(run: Run) -> list[str]:
    fate = outcome(run)
    if fate == "audited" and (run.may_audit or not run.message):
        return []
    if fate.startswith("skipped: ") and run.message and run.message in fate:
        return []
    return [f"{run.culprit!r}: {fate} (expected {run.message or 'audited'!r})"]


# ---------------------------------------------------------------- resuming


def journal_of(run: Run) -> Path:
    assert run.results is not None
    return run.results.with_name(run.results.name + ".journal")


def keep_journal(run: Run) -> Path:
    """Keep what the audit of `run` journals: a hard link outlives the journal's removal."""
    journal = journal_of(run)
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.touch()
    kept = journal.with_name("kept.journal")
    os.link(journal, kept)
    return kept


def interrupted(run: Run, kept: Path) -> list[str]:
    """Leave the journal of an audit interrupted before the culprit; return `--resume`'s args.

    Every record but the culprit's is kept, so the resumed audit replays the others and
    meets the culprit afresh.
    """
    lines = kept.read_bytes().splitlines(keepends=True)
    others = [line for line in lines if json.loads(line[9:]).get("k") != run.culprit]
    journal_of(run).write_bytes(b"".join(others))
    return [*run.args, "--resume"]


def comparable(run: Run) -> dict:
    """The results of `run` without what differs between two runs of the same audit."""
    assert run.results is not None
    data = json.loads(run.results.read_text(encoding="utf-8"))
    return without_run_specifics(data, ("command_line",))
