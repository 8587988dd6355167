"""The stderr progress bar draws on a terminal and stays silent otherwise."""

from __future__ import annotations

import io

from auditor.cli.progress import ProgressBar


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
