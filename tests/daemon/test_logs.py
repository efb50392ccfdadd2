"""Log lines name the pass and the commit; secrets never reach them."""

from __future__ import annotations

import json
import logging

import pytest

from reconciler.daemon.logs import (
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    pass_context,
    set_commit,
)
from reconciler.sources.credentials import register_secret


def emit(formatter: logging.Formatter, message: str, **extra: object) -> str:
    record = logging.makeLogRecord({"name": "reconciler.daemon", "levelno": logging.INFO,
                                    "levelname": "INFO", "msg": message, **extra})
    ContextFilter().filter(record)
    return formatter.format(record)


def test_json_lines_carry_pass_commit_and_fields() -> None:
    with pass_context(7):
        set_commit("0123456789ab")
        line = json.loads(emit(JsonFormatter(), "pass applied", result="applied"))
    assert line["pass"] == 7 and line["commit"] == "0123456789ab"
    assert line["msg"] == "pass applied" and line["result"] == "applied"
    assert line["level"] == "info" and line["ts"].endswith("+00:00")
    outside = json.loads(emit(JsonFormatter(), "idle"))
    assert outside["pass"] is None and outside["commit"] is None


def test_text_lines_name_the_pass() -> None:
    with pass_context(3):
        set_commit("abcdef012345")
        assert "[pass 3 @ abcdef012345] hello  n=1" in emit(TextFormatter(), "hello", n=1)


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_secrets_are_masked(formatter: logging.Formatter) -> None:
    register_secret("hunter2-webhook")
    text = emit(formatter, "fetch https://bot:pat123@host/r.git: hunter2-webhook",
                detail="hunter2-webhook")
    assert "hunter2" not in text and "pat123" not in text
