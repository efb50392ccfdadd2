"""What the daemon knows and reports: last seen / applied / failed commit, history.

The loop thread writes it, HTTP threads read it; one lock guards it and
`to_json` hands out a copy, so /status never sees half an update.

The last good commit also outlives the process: every good pass (applied,
unchanged or deferred) writes it to STATE/daemon-state.json (atomically), and
a restarted daemon reads it back (LastGood), on any runtime.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.files import replace_file

log = logging.getLogger("reconciler.daemon")

HISTORY = 50
MAX_REASONS = 5  # reasons named on one line of /status and the log; the rest are counted
STATE_FILE = "daemon-state.json"

# Results of a pass. `deferred`: the commit is applied, and all the pass did was wait
# for new pools of an earlier version move, in vain (their old pools keep serving).
# `invalid` and `refused` are final for their commit (not retried until a new commit or
# a resync); `failed` and `error` back off and retry.
APPLIED, UNCHANGED, DEFERRED, SKIPPED = "applied", "unchanged", "deferred", "skipped"
INVALID, REFUSED, FAILED, ERROR = "invalid", "refused", "failed", "error"
GOOD = (APPLIED, UNCHANGED, DEFERRED)
FINAL_FAILURES = (INVALID, REFUSED)
RESULTS = (APPLIED, UNCHANGED, DEFERRED, SKIPPED, INVALID, REFUSED, FAILED, ERROR)


def reasons(items: Sequence[object], fallback: str = "") -> str:
    """The first MAX_REASONS items on one line, `; `-separated, then how many more."""
    lines = [str(item) for item in items[:MAX_REASONS]]
    if len(items) > MAX_REASONS:
        lines.append(f"... and {len(items) - MAX_REASONS} more")
    return "; ".join(lines) or fallback


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
    moves: int = 0  # actions of `summary` that complete earlier version moves (waitFor)

    @property
    def action_count(self) -> int:
        return sum(self.summary.values())

    @property
    def drift_count(self) -> int:
        """Actions that mean the live state moved away from the config: all of them but
        the pending completions of earlier moves (they are the plan, not drift)."""
        return self.action_count - self.moves


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


class LastGood:
    """STATE/daemon-state.json: the last good commit, kept across restarts.

    Written on every good pass whose commit differs from the one on file (a temporary
    file renamed over it, so a crash never leaves half a file); a write that fails is
    logged, never fatal: the daemon then only forgets it on a restart."""

    def __init__(self, state_dir: Path, repo: str, path: str) -> None:
        self.file = state_dir / STATE_FILE
        self.repo, self.path = repo, path
        self._saved: str | None = None

    def load(self) -> str | None:
        """The commit on file, if it was recorded for this repository and path."""
        try:
            data = json.loads(self.file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring %s: %s", self.file, exc)
            return None
        if not isinstance(data, dict) or data.get("repo") != self.repo or \
                data.get("path", "") != self.path:
            return None
        commit = data.get("lastAppliedCommit")
        self._saved = commit if isinstance(commit, str) and commit else None
        return self._saved

    def save(self, commit: str) -> None:
        if commit == self._saved:
            return
        data = {"repo": self.repo, "path": self.path, "lastAppliedCommit": commit,
                "at": now_iso()}
        try:
            replace_file(self.file, json.dumps(data, indent=2) + "\n")
        except OSError as exc:
            log.warning("cannot record the last good commit in %s: %s", self.file, exc)
            return
        self._saved = commit


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
        self.last_good: LastGood | None = None  # where good commits are kept, if anywhere
        # told of every recorded pass, after the state is updated (the notifier); each must
        # return at once: it runs in the loop's thread
        self.listeners: list[Callable[[PassRecord, Outcome], None]] = []

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
                if self.last_good is not None and record.commit:
                    self.last_good.save(record.commit)
            elif record.result != SKIPPED:
                self.last_failed = Failure(record.commit, outcome.error or record.result,
                                           now_iso(), record.result)
            if outcome.pools is not None:
                self.pools = outcome.pools
            self.ready = True
        for listener in list(self.listeners):
            try:
                listener(record, outcome)
            except Exception:  # a listener's bug must not stop the loop
                log.exception("a pass listener failed")

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
