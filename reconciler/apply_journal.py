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
        self.warnings: list[str] = []  # damage found and set aside; a failing journal

    def last_run(self, *, unfinished: bool = False) -> Run | None:
        """The latest run recorded. A damaged journal (bytes that are not UTF-8, a line that
        is not an event, a torn line) never blocks: it is moved aside (to
        journal.jsonl.damaged-TIME, kept for a human) with a warning, and what its good
        lines say is returned (a report only: nothing is decided on it).

        `unfinished`: only a run that did not finish is wanted (what the next apply
        reports). A journal whose first line begins a run and whose last line ends it is
        then not read further: it returns None (an apply writes two lines an action, and
        the next one overwrites them all)."""
        try:
            if not self.path.exists() and not self.path.is_symlink():
                return None
            if self.path.is_symlink() or not self.path.is_file():
                self._set_aside("it is not a regular file")
                return None
            raw = self.path.read_bytes()
            if unfinished and _finished(raw):
                return None
            run, damage = _parse(raw)
            if damage:
                self._set_aside(damage)
            return run
        except OSError as exc:
            self.warnings.append(f"cannot read the apply journal {self.path}: "
                                 f"{exc.strerror or exc}; the last run is not reported")
        return None

    def _set_aside(self, why: str) -> None:
        aside = self.path.with_name(f"{JOURNAL_NAME}.damaged-{_stamp()}")
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            self.warnings.append(f"the apply journal {self.path} is damaged ({why}) and could "
                                 f"not be moved aside ({exc.strerror or exc}); it is not used")
            return
        self.warnings.append(f"the apply journal {self.path} was damaged ({why}); moved aside "
                             f"to {aside.name} and not used (a record only: nothing else "
                             f"depends on it)")

    def begin(self, fingerprint: str, total: int) -> None:
        """Start a new run: the file keeps only the latest run. A journal that cannot be
        written never stops the apply: a warning, and this run goes unrecorded."""
        self.close()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - for the run
            self._write({"event": "begin", "fingerprint": fingerprint, "actions": total,
                         "pid": os.getpid()}, sync=True)
        except OSError as exc:
            self._broken(exc)

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
        if self._failed:
            return
        try:
            handle = self._handle
            if handle is None:  # an event outside begin(): append to what is there
                self.path.parent.mkdir(parents=True, exist_ok=True)
                handle = self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            handle.write(json.dumps({"time": now(), **event}, sort_keys=True) + "\n")
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        except OSError as exc:
            self._broken(exc)

    _failed = False

    def _broken(self, exc: OSError) -> None:
        """Stop writing the journal for this run, with a warning (once)."""
        self._failed = True
        self.warnings.append(f"cannot write the apply journal {self.path}: "
                             f"{exc.strerror or exc}; this run is not recorded there")
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                handle.close()
            except OSError:
                pass


def _stamp() -> str:
    return now().replace(":", "").replace("-", "")


def _parse(raw: bytes) -> tuple[Run | None, str | None]:
    """(the latest run in the journal's good lines, what is wrong with the others). Good
    lines are JSON objects of the shapes this module writes, each ending in a newline."""
    text = raw.decode("utf-8", "replace")
    problems: list[str] = []
    if "\ufffd" in text:
        problems.append("bytes that are not UTF-8")
    lines = text.split("\n")
    if lines[-1]:
        problems.append("its last line is cut short")
    run: Run | None = None
    for number, line in enumerate(lines[:-1], start=1):
        why = _take(line, run)
        if isinstance(why, Run):
            run = why
        elif why:
            problems.append(f"line {number} {why}")
    if not problems:
        return run, None
    shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3
                                       else "")
    return run, shown


def _finished(raw: bytes) -> bool:
    """Whether the journal's first line is a begin event and its last line an end event."""
    first_end, last_start = raw.find(b"\n"), raw.rfind(b"\n", 0, len(raw) - 1) + 1
    if not raw.endswith(b"\n") or first_end + 1 >= last_start:
        return False
    try:
        first, last = raw[:first_end].decode(), raw[last_start:-1].decode()
    except UnicodeDecodeError:
        return False
    run = _take(first, None)
    return isinstance(run, Run) and _take(last, run) is None and run.finished


def _take(line: str, run: Run | None) -> Run | str | None:
    """Fold one line into `run`: a new Run for a begin event, else None; or why the line
    is not an event this module writes."""
    try:
        event = json.loads(line)
    except ValueError:
        return "is not JSON"
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        return "is not an event"
    kind = event["event"]
    if kind == "begin":
        fingerprint, total, began = (event.get("fingerprint"), event.get("actions"),
                                     event.get("time", ""))
        if not isinstance(fingerprint, str) or not isinstance(total, int) or \
                isinstance(total, bool) or not isinstance(began, str):
            return "is a malformed begin event"
        return Run(fingerprint, total, started_at=began)
    if run is not None and kind == "done":
        if not isinstance(event.get("action"), str):
            return "is a malformed done event"
        run.done.append(event["action"])
    elif run is not None and kind == "end":
        run.finished = True
    return None
