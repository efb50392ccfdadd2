from __future__ import annotations

import pytest

from reconciler.cli.durations import parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("300", 300.0), ("300s", 300.0), ("5m", 300.0), ("1h", 3600.0), ("250ms", 0.25),
    ("1m30s", 90.0), ("0s", 0.0), (" 2.5s ", 2.5), (7, 7.0)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "5 m", "5x", "-1s", "1h-2m", "m5"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
