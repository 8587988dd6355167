"""Run the hostile-input corpus (tests/hostile.py) through `auditor` in subprocesses.

Each case builds its files in a fresh temporary folder and runs `python -m auditor ...`
there, as a user would; a case that leaves the audit running is then resumed from a
journal that lacks the hostile file's record. One line per case, then the count:

    python bench/hostile.py                          # this checkout, the bundled detector
    python bench/hostile.py --checkout /tmp/old      # another checkout's auditor, same cases
    python bench/hostile.py -k jsonl                 # only the cases whose name has "jsonl"

A case passes when the exit code is the expected one (0: audit goes on, hostile file
listed with its reason; 1: `verify` says ALTERED; 2: one `auditor: error:` line), with
no traceback, within --timeout seconds (a blocked read fails the case; it never hangs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the corpus and its image helpers

from hostile import CASES, Case, Run, interrupted, keep_journal, outcome, problems  # noqa: E402


def invoke(args: list[str], checkout: Path, timeout: float) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [sys.executable, "-m", "auditor", *args]
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, cwd=checkout
        )
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:g} s (blocked?)"
    return done.returncode, done.stderr


def describe(run: Run, code: int, stderr: str) -> str:
    """The outcome in a few words: exit code, then the error line or the culprit's fate."""
    if code == -1:
        return stderr
    if "Traceback" in stderr:
        last = stderr.strip().splitlines()[-1]
        return f"exit {code}, traceback ({len(stderr):,} chars): {last[:120]}"
    if code == 0 and run.culprit is not None and run.results and run.results.is_file():
        return f"exit 0, {run.culprit!r} {outcome(run)}"[:200]
    lines = stderr.strip().splitlines()
    first = lines[0][:160] if lines else ""
    return f"exit {code}, {len(lines)} line(s): {first}"


def attempt(case: Case, model: Path, checkout: Path, timeout: float) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix=f"hostile-{case.name}-") as scratch:
        folder = Path(scratch)
        run = case.build(folder, model)
        kept = keep_journal(run) if run.culprit else None
        code, stderr = invoke(run.args, checkout, timeout)
        found = problems(run, code, stderr) if code != -1 else ["timed out"]
        said = describe(run, code, stderr)
        if found or kept is None:
            return not found, said if not found else f"{said} -- {'; '.join(found)}"
        fate = outcome(run)
        code, stderr = invoke(interrupted(run, kept), checkout, timeout)
        found = problems(run, code, stderr) if code != -1 else ["timed out"]
        if not found and outcome(run) != fate:
            found = [f"after --resume: {outcome(run)}"]
        resumed = "; --resume: same" if not found else f"; --resume: {'; '.join(found)}"
        return not found, said + resumed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "samples/deepfake/detector_a.onnx")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="whose `auditor` to run")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per command")
    parser.add_argument("-k", default="", help="only cases whose name contains this")
    options = parser.parse_args()
    passed = failed = 0
    for case in CASES:
        if options.k not in case.name:
            continue
        model, checkout = options.model.resolve(), options.checkout.resolve()
        ok, said = attempt(case, model, checkout, options.timeout)
        print(f"{'PASS' if ok else 'FAIL'} {case.name}: {said}", flush=True)
        passed, failed = passed + ok, failed + (not ok)
    print(f"{passed} passed, {failed} failed")


if __name__ == "__main__":
    main()
