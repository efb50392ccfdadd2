"""Error and diagnostic types.

A `Diagnostic` is one problem with a place (file, line, column) and a field
path. Validation collects every diagnostic instead of raising at the first.
Exceptions carry their exit code; only the CLI edge turns them into an exit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem: `file:line:col: path: message`."""

    message: str
    file: str = ""
    line: int = 0
    col: int = 0
    path: str = ""  # dotted field path, e.g. "spec.replicas" or "spec.versions[1].commit"
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        where = self.file
        if self.file and self.line:
            where = f"{self.file}:{self.line}:{self.col}"
        head = ": ".join(part for part in (where, self.path) if part)
        return f"{head}: {self.message}" if head else self.message

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": str(self.severity),
            "file": self.file or None,
            "line": self.line or None,
            "col": self.col or None,
            "path": self.path or None,
            "message": self.message,
        }

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.file, self.line, self.col, self.path, self.message)


class ReconcilerError(Exception):
    """Base of every error a user can cause or fix. Never shown with a traceback."""

    exit_code = 1


class ConfigError(ReconcilerError):
    """The config repository is invalid; carries every diagnostic found."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        count = len(self.diagnostics)
        super().__init__(f"config is invalid: {count} error{'s' if count != 1 else ''}")


class PlanRefused(ReconcilerError):
    """The plan is not applyable (capacity, safety) or is stale."""


class StalePlan(PlanRefused):
    """`apply --plan FILE`: the live state no longer matches the plan's fingerprint."""


class ApplyFailed(ReconcilerError):
    """One or more actions failed; the result says which."""


class LockHeld(ReconcilerError):
    """Another applier or daemon holds the state's lock."""


class RuntimeFault(ReconcilerError):
    """An error raised by a runtime while observing or applying.

    `retryable` tells the apply executor whether trying again may help
    (a busy database, a conflict, a timeout) or not (a forbidden request)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class SourceError(ReconcilerError):
    """The config source (a Git remote, a directory) could not be read."""
