"""Pausing the cyclic garbage collector around the pipeline.

Loading, compiling and planning a big repo allocate hundreds of thousands of
small, long-lived, acyclic objects (documents, pools, actions), and CPython's
collector walks all of them again and again while they are being made: about
40 % of a 100,000-reservation no-op `plan`. The pipeline makes no reference
cycles worth collecting (frozen values; reference counting frees them), so the
CLI commands and the daemon's passes run it with the collector paused; it
resumes, as it was, when the block ends.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar


@contextmanager
def paused() -> Iterator[None]:
    """Run the block without cyclic garbage collection (re-entrant)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


F = TypeVar("F", bound=Callable[..., Any])


def while_running(func: F) -> F:
    """A command that runs the pipeline once and exits: the collector stays paused
    for the whole command (put it under the click decorators)."""
    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        with paused():
            return func(*args, **kwargs)
    return run  # type: ignore[return-value]
