"""The stderr progress bar draws on a terminal and stays silent otherwise."""

from __future__ import annotations

import io

import pytest

from auditor.cli.progress import ProgressBar, audit_bar, unit_name


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_draws_fraction_counts_and_finishes_with_a_newline():
    stream = Terminal()
    bar = ProgressBar("auditing", stream)
    bar(0, 10)
    bar(10, 10)
    text = stream.getvalue()
    assert "auditing [" in text and "100% 10/10" in text and "left" in text
    assert text.endswith("\n")


def test_silent_when_not_a_terminal():
    stream = io.StringIO()
    bar = ProgressBar("auditing", stream)
    bar(5, 10)
    bar(10, 10)
    assert stream.getvalue() == ""


def test_names_its_unit_and_fits_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    stream = Terminal()
    bar = ProgressBar("auditing", stream, unit=unit_name("image"))
    bar(3, 12_345)
    line = stream.getvalue().lstrip("\r")
    assert "3/12345 images x levels, " in line and len(line) <= 80


@pytest.mark.parametrize(
    "media, repeats, unit",
    [
        ("image", 1, "images x levels"),
        ("video", 1, "videos x levels"),
        ("image", 3, "images x levels x repeats"),
    ],
)
def test_unit_name(media, repeats, unit):
    assert unit_name(media, repeats) == unit


def test_the_audit_bar_names_videos_when_the_data_holds_videos(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "clip.mp4").write_bytes(b"")
    assert audit_bar(tmp_path).unit == "videos x levels"
    assert audit_bar(tmp_path / "missing", repeats=2).unit == "images x levels x repeats"
