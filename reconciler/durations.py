"""Durations ("300", "300s", "5m", "1h", "250ms", "1m30s"), parsed to seconds (pure).

Shared by the command line's options and the config's fields (warmupTimeout)."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | float | int) -> float:
    """Seconds in a duration ("300", "300s", "5m", "1h", "250ms", "1m30s"); plain numbers are
    seconds. ValueError when malformed or negative."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            parts = _PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"expected a duration like 300, 300s, 5m or 1h, "
                                 f"got {value!r}") from None
            seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds
