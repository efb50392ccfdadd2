"""Durations on the command line: "300", "300s", "5m", "1h", "250ms", "1m30s"."""

from __future__ import annotations

from typing import Any

import click

from reconciler.durations import parse_duration

__all__ = ["DURATION", "Duration", "parse_duration"]


class Duration(click.ParamType):
    """A click option type giving seconds as a float."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()
