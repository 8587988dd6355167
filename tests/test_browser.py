"""The report in a real browser (headless Chromium): no request, no console message.

Chromium's net log records every URL request with who started it; requests the page
starts carry its origin, the browser's own background traffic (updates, sign-in)
carries none. Console messages, CSP violations included, go to stderr as `CONSOLE`
lines. Each detector is first shown to fire on a page built to trip it. Skipped where
Chromium is not installed; CI installs Debian's `chromium` package.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from auditor.report.compare import compare_results, render_compare
from auditor.report.html import render_html
from auditor.results import load_json

GOLD = Path(__file__).parent / "gold" / "results.json"
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(BROWSER is None, reason="chromium is not installed")
CSP = (
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
    "img-src data:; style-src 'unsafe-inline'\">"
)


def browse(page: Path, out: Path, *mode: str) -> tuple[str, list[str]]:
    """Open `page` headless; return stderr and the URLs of requests the page started."""
    netlog = out / f"{page.stem}.netlog.json"
    command = [
        str(BROWSER),
        "--headless",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-extensions",
        f"--user-data-dir={out / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        f"--log-net-log={netlog}",
        *mode,
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr, page_requests(netlog)


def page_requests(netlog: Path) -> list[str]:
    """Return the URLs of requests started by a page (not by the browser itself)."""
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    found = []
    for event in log["events"]:
        params = event.get("params") or {}
        if (
            event["type"] == start
            and "url" in params
            and params.get("initiator") != "not an origin"
        ):
            found.append(str(params.get("url")))
    return found


def console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser")


def test_detectors_fire_on_a_page_built_to_trip_them(out):
    bad = out / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>bad</title></head>'
        '<body><img src="http://127.0.0.1:9/x.png" alt="x">'
        '<script>console.error("boom")</script></body></html>'
    )
    stderr, requests = browse(bad, out, "--screenshot=" + str(out / "bad.png"))
    assert requests == ["http://127.0.0.1:9/x.png"]
    assert any('"boom"' in line for line in console(stderr))
    blocked = out / "blocked.html"
    blocked.write_text(
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{CSP}<title>b</title>'
        '</head><body><img src="http://127.0.0.1:9/x.png" alt="x"></body></html>'
    )
    stderr, requests = browse(blocked, out, "--screenshot=" + str(out / "blocked.png"))
    assert requests == []  # the CSP stopped it, and said so on the console
    assert any("Content Security Policy" in line for line in console(stderr))


def screenshot_dir(out: Path) -> Path:
    """Where screenshots go: $AUDITOR_ARTIFACTS when set (CI keeps them), else a temp dir."""
    chosen = Path(os.environ.get("AUDITOR_ARTIFACTS") or out)
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen


def test_report_loads_nothing_logs_nothing_and_renders(out):
    report = out / "report.html"
    report.write_text(render_html(load_json(GOLD)))
    shot = screenshot_dir(out) / "report.png"
    stderr, requests = browse(report, out, f"--screenshot={shot}", "--window-size=1280,2400")
    assert requests == []
    assert console(stderr) == []
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2400, 1280)
    # text was drawn: dark ink on the white page, not a blank or error screen
    assert (image.min(axis=2) < 80).mean() > 0.01 and np.median(image) > 200


def test_comparison_loads_nothing_and_logs_nothing(out):
    results = load_json(GOLD)
    audits = [(Path("a.json"), results), (Path("b.json"), results)]
    page = out / "compare.html"
    page.write_text(render_compare(compare_results(audits)))
    shot = screenshot_dir(out) / "compare.png"
    stderr, requests = browse(page, out, f"--screenshot={shot}", "--window-size=1280,1600")
    assert requests == [] and console(stderr) == []
    assert shot.stat().st_size > 10_000


def test_the_first_screen_shows_the_headline_chart(out):
    """At 1280x1000 the verdict, findings and the RA/RR chart are all in view."""
    report = out / "first.html"
    report.write_text(render_html(load_json(GOLD)))
    shot = screenshot_dir(out) / "first-screen.png"
    _, requests = browse(report, out, f"--screenshot={shot}", "--window-size=1280,1000")
    assert requests == []
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (1000, 1280)
    # the RA line (#0072B2) and the RR line (#D55E00) of the headline chart, in BGR
    for bgr in ((178, 114, 0), (0, 94, 213)):
        near = np.abs(image.astype(int) - np.array(bgr)).sum(axis=2) < 40
        assert near.sum() > 200, bgr


def pdf_pages(pdf: Path) -> list[str]:
    """The text of each page of `pdf` as laid out (a table row on one line), by pdftotext."""
    done = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    )
    return done.stdout.split("\f")[:-1]  # a form feed ends each page


class Headings(HTMLParser):
    """The text of every heading and table caption of a page."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._open: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if re.fullmatch(r"h[1-6]|caption", tag):
            self._open = []

    def handle_endtag(self, tag: str) -> None:
        if re.fullmatch(r"h[1-6]|caption", tag) and self._open is not None:
            self.found.append(" ".join("".join(self._open).split()))
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.append(data)


# the running header and footer lines of a printed report
RUNNING = re.compile(r"Robustness audit of \S+ Report \S+|auditor \S+ Page \d+ of \d+")


def orphaned_headings(pdf: Path, html: str) -> list[tuple[int, str]]:
    """(page, heading) for each page but the last whose text ends with a heading or caption."""
    headings = set(Headings(html).found)
    orphans = []
    pages = pdf_pages(pdf)
    for number, text in enumerate(pages[:-1], start=1):
        lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
        lines = [line for line in lines if not RUNNING.fullmatch(line)]
        for k in range(1, 5):  # a long heading wraps over a few lines
            if " ".join(lines[-k:]) in headings:
                orphans.append((number, " ".join(lines[-k:])))
    return orphans


def print_pdf(page: Path, out: Path) -> Path:
    pdf = out / f"{page.stem}.pdf"
    browse(page, out, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    return pdf


def test_report_prints_on_a4(out):
    report = out / "print.html"
    report.write_text(render_html(load_json(GOLD)))
    pdf = print_pdf(report, out)
    data = pdf.read_bytes()
    boxes = {
        tuple(round(float(v)) for v in m.split())
        for m in re.findall(rb"/MediaBox\s*\[([^\]]*)\]", data)
    }
    assert boxes == {(0, 0, 595, 842)}  # A4 in points
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", data)) > 3


PDFTOTEXT = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")


@PDFTOTEXT
def test_every_printed_page_has_the_running_header_and_footer(out):
    results = load_json(GOLD)
    report = out / "running.html"
    report.write_text(render_html(results))
    pages = pdf_pages(print_pdf(report, out))
    count = len(pages)
    assert 8 <= count <= 30  # the golden report is about a dozen A4 pages
    report_id = results.identification["report_id"]
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {count}" in text
        assert "Robustness audit of detector_a.onnx" in text and f"Report {report_id}" in text


@PDFTOTEXT
def test_no_printed_page_ends_with_a_heading(out):
    lonely = out / "lonely.html"
    lonely.write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>t</title></head>'
        '<body><p>text</p><h2>A lonely heading</h2><p style="break-before: page">its body</p>'
        "</body></html>"
    )
    html = lonely.read_text()
    assert orphaned_headings(print_pdf(lonely, out), html) == [(1, "A lonely heading")]
    report = out / "headings.html"
    html = render_html(load_json(GOLD))
    report.write_text(html)
    assert orphaned_headings(print_pdf(report, out), html) == []
