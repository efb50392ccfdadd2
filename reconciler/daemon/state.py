"""What the daemon knows and reports: last seen / applied / failed commit, history.

The loop thread writes it, HTTP threads read it; one lock guards it and
`to_json` hands out a copy, so /status never sees half an update.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

HISTORY = 50

# Results of a pass. `invalid` and `refused` are final for their commit (not
# retried until a new commit or a resync); `failed` and `error` back off and retry.
APPLIED, UNCHANGED, SKIPPED = "applied", "unchanged", "skipped"
INVALID, REFUSED, FAILED, ERROR = "invalid", "refused", "failed", "error"
GOOD = (APPLIED, UNCHANGED)
FINAL_FAILURES = (INVALID, REFUSED)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Outcome:
    """What one pass came to. `pools` is the runtime's pools summary after it."""

    result: str
    summary: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    retry: bool = False
    deferred: int = 0
    pools: dict[str, Any] | None = None

    @property
    def action_count(self) -> int:
        return sum(self.summary.values())


@dataclass(frozen=True)
class PassRecord:
    pass_id: int
    trigger: str
    commit: str | None
    result: str
    started_at: str
    duration: float
    summary: dict[str, int]
    error: str | None = None
    drift: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "pass": self.pass_id,
            "trigger": self.trigger,
            "commit": self.commit,
            "result": self.result,
            "startedAt": self.started_at,
            "durationSeconds": round(self.duration, 3),
            "summary": self.summary,
            "error": self.error,
            "drift": self.drift,
        }


@dataclass
class Failure:
    commit: str | None
    reason: str
    at: str
    result: str

    def to_json(self) -> dict[str, Any]:
        return {"commit": self.commit, "reason": self.reason, "at": self.at,
                "result": self.result}


class DaemonState:
    """The daemon's memory of its passes, safe to read from other threads."""

    def __init__(self, *, repo: str, branch: str | None, path: str, mode: str) -> None:
        self.repo, self.branch, self.path, self.mode = repo, branch, path, mode
        self._lock = threading.Lock()
        self.last_seen: str | None = None
        self.last_applied: str | None = None
        self.last_applied_at: str | None = None
        self.last_failed: Failure | None = None
        self.last_result: str | None = None
        self.pools: dict[str, Any] = {"desired": 0, "ready": 0, "items": []}
        self.history: deque[PassRecord] = deque(maxlen=HISTORY)
        self.ready = False
        self.started_at = now_iso()
        # {"leader": bool, "lease": {...}} on a cluster (see daemon.leader); None: no Lease,
        # this daemon is the only one of its state directory and always leads.
        self.leadership: Callable[[], dict[str, Any]] | None = None

    def seen(self, revision: str) -> None:
        with self._lock:
            self.last_seen = revision

    def known_bad(self, revision: str) -> bool:
        """This revision already failed for good (invalid or refused)."""
        with self._lock:
            failed = self.last_failed
            return (failed is not None and failed.commit == revision
                    and failed.result in FINAL_FAILURES and self.last_applied != revision)

    def record(self, record: PassRecord, outcome: Outcome) -> None:
        with self._lock:
            self.history.append(record)
            self.last_result = record.result
            if record.result in GOOD:
                self.last_applied = record.commit
                self.last_applied_at = now_iso()
            elif record.result != SKIPPED:
                self.last_failed = Failure(record.commit, outcome.error or record.result,
                                           now_iso(), record.result)
            if outcome.pools is not None:
                self.pools = outcome.pools
            self.ready = True

    def set_pools(self, pools: dict[str, Any]) -> None:
        with self._lock:
            self.pools = pools

    def leader_json(self) -> dict[str, Any]:
        if self.leadership is None:
            return {"leader": True, "lease": None}
        return self.leadership()

    def to_json(self) -> dict[str, Any]:
        leader = self.leader_json()
        with self._lock:
            return {
                **leader,
                "repo": self.repo,
                "branch": self.branch,
                "path": self.path,
                "mode": self.mode,
                "ready": self.ready,
                "startedAt": self.started_at,
                "lastSeenCommit": self.last_seen,
                "lastAppliedCommit": self.last_applied,
                "lastAppliedAt": self.last_applied_at,
                "lastFailedCommit": self.last_failed.to_json() if self.last_failed else None,
                "lastResult": self.last_result,
                "pools": dict(self.pools),
                "history": [r.to_json() for r in reversed(self.history)],
            }
