"""Structured logs for the daemon: every line of a pass names the pass and the commit.

A pass runs in the loop's thread; `pass_context` puts its id and commit into
context variables, and a filter copies them onto every record, so code deep in
the pipeline logs with plain `logging` and still gets tagged. Messages go
through `redact` last, so a credential that slipped into an error text is
masked before it is written.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from reconciler.sources.credentials import redact

_pass_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("pass_id", default=None)
_commit: contextvars.ContextVar[str | None] = contextvars.ContextVar("commit", default=None)

# LogRecord attributes that are not user fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "pass_id", "commit"}


@contextmanager
def pass_context(pass_id: int) -> Iterator[None]:
    """Tag every log line inside the block with this pass id (commit set later)."""
    pass_token = _pass_id.set(pass_id)
    commit_token = _commit.set(None)
    try:
        yield
    finally:
        _commit.reset(commit_token)
        _pass_id.reset(pass_token)


def set_commit(commit: str | None) -> None:
    """Name the commit the current pass works on, once fetch has told us."""
    _commit.set(commit)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.pass_id = _pass_id.get()
        record.commit = _commit.get()
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, msg, pass, commit, then extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
            "pass": getattr(record, "pass_id", None),
            "commit": getattr(record, "commit", None),
        }
        for key, value in _fields(record).items():
            line[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            line["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL [pass 3 @ 1a2b3c4d5e6f] message key=value`."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        tag = ""
        pass_id = getattr(record, "pass_id", None)
        if pass_id is not None:
            commit = getattr(record, "commit", None)
            tag = f"[pass {pass_id} @ {(commit or '?')[:12]}] "
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        text = f"{ts} {record.levelname:<7} {tag}{record.getMessage()}"
        if extra:
            text += f"  {extra}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact(text)


def setup_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Send the `reconciler` loggers to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger("reconciler")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    # The HTTP server's library logs through its own logger: same handler, same format
    # (so --log-format json stays JSON), warnings and errors only.
    server = logging.getLogger("waitress")
    for old in list(server.handlers):
        server.removeHandler(old)
    server.addHandler(handler)
    server.setLevel(logging.WARNING)
    server.propagate = False
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" chatter
