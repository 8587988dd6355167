"""Draw the paper's figure for the README: RA and RR vs eps under fgsm and pgd_linf (SVG).

Runs one audit per sample detector (`auditor check -p fgsm:... -p pgd_linf:...
-p linf_noise:...` at the paper's eps 0.01, 0.05, 0.1, 0.2, --limit 100, seed 0) and
draws, per detector, RA and RR at tolerance b (0.1) against eps for each attack, as
one standalone SVG written with the standard library only (no plotting package).
With --results A.json B.json it draws from audits already made instead.

    PYTHONPATH=. python bench/figure.py [--limit 100] [--out docs/paper-figure.svg]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "deepfake"
PAPER = (0.01, 0.05, 0.1, 0.2)
ATTACKS = {"linf_noise": "#8c8c8c", "fgsm": "#d95f02", "pgd_linf": "#1b5fa8"}
PANEL_W, PANEL_H, MARGIN, TOP = 330, 230, 48, 40


def audit(detector: str, limit: int) -> dict:
    """Results JSON of one audit of `detector` under the three attacks at the paper's eps."""
    from click.testing import CliRunner

    from auditor.cli import main

    ladder = "eps=" + ",".join(str(e) for e in PAPER)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.html"
        args = ["check", str(SAMPLES / f"{detector}.onnx"), "--data", str(SAMPLES / "data"),
                "--limit", str(limit), "-o", str(out)]  # fmt: skip
        for name in ATTACKS:
            args += ["-p", f"{name}:{ladder}"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        return json.loads(out.with_suffix(".json").read_text())


def series(data: dict, b: str) -> dict[str, dict[str, list[float]]]:
    """Per attack: RA and RR at tolerance `b`, one value per paper eps."""
    out: dict[str, dict[str, list[float]]] = {}
    for name in ATTACKS:
        rows = {r["params"]["eps"]: r for r in data["results"] if r["perturbation"] == name}
        out[name] = {
            "RA": [rows[e]["ra"] for e in PAPER],
            "RR": [rows[e]["rr"][b] for e in PAPER],
        }
    return out


def panel(x0: float, title: str, lines: dict[str, dict[str, list[float]]]) -> list[str]:
    """One detector's axes, grid, and RA (solid) and RR (dashed) lines per attack."""
    w, h = PANEL_W - MARGIN - 10, PANEL_H - TOP - 36
    left, top = x0 + MARGIN, TOP

    def x(i: int) -> float:
        return left + w * i / (len(PAPER) - 1)

    def y(v: float) -> float:
        return top + h * (1 - v)

    parts = [f'<text x="{left + w / 2}" y="{top - 14}" text-anchor="middle" '
             f'font-weight="bold">{escape(title)}</text>']  # fmt: skip
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     f'stroke="#e3e3e3"/>')  # fmt: skip
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">'
                     f"{tick:g}</text>")  # fmt: skip
    for i, eps in enumerate(PAPER):
        parts.append(f'<text x="{x(i):.1f}" y="{top + h + 16}" text-anchor="middle">{eps:g}</text>')
    parts.append(f'<text x="{left + w / 2}" y="{top + h + 32}" text-anchor="middle">eps</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" '
                 f'stroke="#999"/>')  # fmt: skip
    for name, colour in ATTACKS.items():
        for metric, dash in (("RA", ""), ("RR", ' stroke-dasharray="5 3"')):
            values = lines[name][metric]
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                         f'stroke-width="2"{dash}/>')  # fmt: skip
            for i, v in enumerate(values):
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}">'
                             f"<title>{name} {metric} at eps {PAPER[i]:g}: {v:.3f}</title>"
                             "</circle>")  # fmt: skip
    return parts


def svg(panels: dict[str, dict[str, dict[str, list[float]]]], b: str) -> str:
    """The whole figure: one panel per detector and a legend below."""
    width = PANEL_W * len(panels) + 10
    height = PANEL_H + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="white"/>']  # fmt: skip
    for k, (title, lines) in enumerate(panels.items()):
        parts += panel(5 + k * PANEL_W, title, lines)
    legend_y, x = PANEL_H + 10, 20.0
    for name, colour in ATTACKS.items():
        parts.append(f'<line x1="{x}" x2="{x + 22}" y1="{legend_y}" y2="{legend_y}" '
                     f'stroke="{colour}" stroke-width="2"/>')  # fmt: skip
        parts.append(f'<text x="{x + 26}" y="{legend_y + 4}">{name}</text>')
        x += 110
    parts.append(f'<text x="{x}" y="{legend_y + 4}">solid: RA; dashed: RR at b = {b}</text>')
    parts.append(
        f'<text x="20" y="{legend_y + 22}" fill="#555">100 images, 50 per class, seed 0; '
        "RA: accuracy under attack; RR: share of samples whose probabilities move by at "
        "most b</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--b", default="0.1", help="the RR tolerance drawn")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "paper-figure.svg")
    parser.add_argument("--results", nargs=2, type=Path, help="detector a's and b's JSON")
    args = parser.parse_args()
    detectors = ("detector_a", "detector_b")
    if args.results:
        data = [json.loads(p.read_text()) for p in args.results]
    else:
        data = [audit(d, args.limit) for d in detectors]
    panels = {d.replace("_", " "): series(r, args.b) for d, r in zip(detectors, data)}
    args.out.write_text(svg(panels, args.b))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
