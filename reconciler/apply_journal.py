"""The apply journal: journal_dir/journal.jsonl, one JSON event per line.

It records the latest apply run (begin, each action started, its outcome,
end) so that a run killed mid-way is reported by the next one ("resuming:
the last apply of plan X stopped after N of M actions"). It is a record, not
a recovery log: the next run does not read it to decide anything. Correctness
after a crash rests on the store instead (every action is idempotent and one
transaction), and a fresh plan starts from the observed state, so the actions
the interrupted run completed are simply no longer in it.

An action's `done` event is written only when it changed something (created,
configured, deleted); a deferred, failed or skipped action gets an event
named after its outcome. Every event is flushed to the OS as it happens, so
it survives the apply being killed (kill -9 included); `begin` and `end` are
also fsynced. Per-action events are not: an OS crash may lose the last few,
as it may the store's last commits (SQLite synchronous=NORMAL), and the next
run then reports the interruption with a smaller count, nothing worse.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from reconciler.timestamps import now_rfc3339

JOURNAL_NAME = "journal.jsonl"
DONE_OUTCOMES = frozenset({"created", "configured", "deleted"})


@dataclass
class Run:
    """What the journal says about one apply run."""

    fingerprint: str
    total: int
    done: list[str] = field(default_factory=list)  # keys of actions that changed something
    finished: bool = False
    started_at: str = ""


def now() -> str:
    return now_rfc3339()


class Journal:
    def __init__(self, journal_dir: Path) -> None:
        self.path = Path(journal_dir) / JOURNAL_NAME
        self._handle: IO[str] | None = None

    def last_run(self) -> Run | None:
        """The latest run recorded; a torn last line (a crash mid-write) is ignored."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return None
        run: Run | None = None
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            if kind == "begin":
                run = Run(event.get("fingerprint", ""), int(event.get("actions", 0)),
                          started_at=event.get("time", ""))
            elif run is not None and kind == "done":
                run.done.append(event.get("action", ""))
            elif run is not None and kind == "end":
                run.finished = True
        return run

    def begin(self, fingerprint: str, total: int) -> None:
        """Start a new run: the file keeps only the latest run."""
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - kept for the run
        self._write({"event": "begin", "fingerprint": fingerprint, "actions": total,
                     "pid": os.getpid()}, sync=True)

    def started(self, action: str) -> None:
        self._write({"event": "started", "action": action})

    def finished(self, action: str, outcome: str, message: str = "") -> None:
        """An action's outcome: `done` when it changed something, else the outcome's name."""
        event: dict[str, Any] = {"event": "done" if outcome in DONE_OUTCOMES else outcome,
                                 "action": action, "outcome": outcome}
        if message and outcome not in DONE_OUTCOMES:
            event["message"] = message
        self._write(event)

    def event(self, event: str, **fields: Any) -> None:
        """Any other event (`end`): fsynced."""
        self._write({"event": event, **fields}, sync=True)

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()

    def _write(self, event: dict[str, Any], *, sync: bool = False) -> None:
        handle = self._handle
        if handle is None:  # an event outside begin(): append to what is there
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        handle.write(json.dumps({"time": now(), **event}, sort_keys=True) + "\n")
        handle.flush()
        if sync:
            os.fsync(handle.fileno())
