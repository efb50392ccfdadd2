"""The apply journal: journal_dir/journal.jsonl, one JSON event per line, fsynced.

It records the latest apply run (begin, each action started/done/failed, end)
so that a run killed mid-way is reported by the next one ("resuming: ...")
and, when the same plan is applied again, the actions it completed are not
repeated. Correctness after a crash does not depend on it: actions are
idempotent and a fresh plan starts from the observed state.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

JOURNAL_NAME = "journal.jsonl"


@dataclass
class Run:
    """What the journal says about one apply run."""

    fingerprint: str
    total: int
    done: list[str] = field(default_factory=list)  # action keys, in order
    finished: bool = False
    started_at: str = ""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Journal:
    def __init__(self, journal_dir: Path) -> None:
        self.path = Path(journal_dir) / JOURNAL_NAME

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

    def begin(self, fingerprint: str, total: int, carried: list[str]) -> None:
        """Start a new run (the file keeps only the latest run), carrying forward the
        actions an interrupted run of the same plan completed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.write(_line({"event": "begin", "fingerprint": fingerprint, "actions": total,
                                "pid": os.getpid()}))
            for key in carried:
                handle.write(_line({"event": "done", "action": key, "carried": True}))
            handle.flush()
            os.fsync(handle.fileno())

    def event(self, event: str, **fields: Any) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(_line({"event": event, **fields}))
            handle.flush()
            os.fsync(handle.fileno())


def _line(event: dict[str, Any]) -> str:
    return json.dumps({"time": now(), **event}, sort_keys=True) + "\n"
