"""Regenerate `docs/first-screen.png`: the first screen of the quickstart report.

Runs the README's quickstart audit (`auditor check samples/deepfake/detector_a.onnx
--data samples/deepfake/data`) into a temporary folder, opens the report in headless
Chromium at 1280x1000 and saves the screenshot, its colours reduced so that the PNG
stays small (under 150 KB) for the README. Run it from the repository root:

    python samples/screenshot.py [--out docs/first-screen.png]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIZE = (1280, 1000)
COLOURS = 24  # enough for text, the chart's lines and bands; PNG compresses the rest
LIMIT = 150_000  # bytes


def audit(folder: Path) -> Path:
    """Run the quickstart audit; return its HTML report."""
    report = folder / "auditor-report.html"
    command = [
        sys.executable, "-m", "auditor", "check", "samples/deepfake/detector_a.onnx",
        "--data", "samples/deepfake/data", "-o", str(report),
    ]  # fmt: skip
    subprocess.run(command, cwd=ROOT, check=True)
    return report


def screenshot(report: Path, shot: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("screenshot.py: needs chromium (apt-get install chromium)")
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--user-data-dir={shot.parent / 'profile'}", f"--window-size={SIZE[0]},{SIZE[1]}",
        f"--screenshot={shot}", report.resolve().as_uri(),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def reduce_colours(image: np.ndarray, colours: int = COLOURS) -> np.ndarray:
    """Map every pixel to the nearest of `colours` k-means centres (white stays white)."""
    pixels = image.reshape(-1, 3).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    cv2.setRNGSeed(0)
    _, labels, centres = cv2.kmeans(pixels, colours, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    centres = np.clip(np.round(centres), 0, 255).astype(np.uint8)
    centres[np.argmax(centres.astype(int).sum(axis=1))] = 255  # the page's background
    return centres[labels.ravel()].reshape(image.shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "first-screen.png")
    out = parser.parse_args().out
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shot = folder / "shot.png"
        screenshot(audit(folder), shot)
        image = cv2.imread(str(shot))
    if image is None or image.shape[:2] != (SIZE[1], SIZE[0]):
        sys.exit("screenshot.py: chromium wrote no screenshot of the expected size")
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), reduce_colours(image), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    size = out.stat().st_size
    print(f"screenshot.py: wrote {out} ({size} bytes)")
    if size > LIMIT:
        sys.exit(f"screenshot.py: {out} is over {LIMIT} bytes; lower COLOURS")


if __name__ == "__main__":
    main()
