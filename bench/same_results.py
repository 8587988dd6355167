"""Are two results JSON files the same audit? Compare them without what differs per run.

Drops the keys that change between two runs of one audit (timestamps, the machine, the
report identity), makes the output paths in the recorded command line relative, drops
any further keys named with --ignore (KEY for top-level or config keys, level.KEY for a
key of every level, SECTION.KEY for a key of another section such as data), and
prints "identical" or the differing keys. Exit 0 when identical.

    python bench/same_results.py before/a.json after/a.json \\
        --ignore findings,output_kind,output_name,input_name,face,level.applied
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RUN_SPECIFIC = ("created_at", "started_at", "finished_at", "environment", "identification")


def comparable(path: Path, ignore: set[str]) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in (*RUN_SPECIFIC, *ignore):
        data.pop(key, None)
        data.get("config", {}).pop(key, None)
    for key in ignore:
        section, _, name = key.partition(".")
        if section == "level":
            for level in data.get("results", []):
                level.pop(name, None)
        elif name and isinstance(data.get(section), dict):
            data[section].pop(name, None)
    line = data.get("config", {}).get("command_line", [])
    data.get("config", {})["command_line"] = [
        Path(a).name if a.endswith((".html", ".json")) else a for a in line
    ]
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--ignore", default="", help="comma-separated keys to leave out")
    args = parser.parse_args()
    ignore = {k for k in args.ignore.split(",") if k}
    a, b = comparable(args.before, ignore), comparable(args.after, ignore)
    differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    print("identical" if not differing else f"different: {', '.join(differing)}")
    return 0 if not differing else 1


if __name__ == "__main__":
    sys.exit(main())
