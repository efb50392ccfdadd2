"""A single-holder lock on a state directory (flock on a lock file).

flock is released by the kernel when its holder dies, even by kill -9, so a
crashed `apply` never leaves a stale lock behind. The file also records who
holds it (pid, purpose, since) so that a second applier can say whom to wait for.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import time
from datetime import datetime
from pathlib import Path
from types import TracebackType

from reconciler.errors import LockHeld, ReconcilerError

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class StateLock:
    """`with StateLock(state_dir / "apply.lock", "reconciler apply"):` ..."""

    def __init__(self, path: Path, purpose: str) -> None:
        self.path = Path(path)
        self.purpose = purpose
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout: float = 0.0) -> StateLock:
        """Take the lock, waiting up to `timeout` seconds; LockHeld says who has it."""
        if self._fd is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # never through a symlink (a planted STATE/apply.lock -> ~/.bashrc would be
            # truncated), and never blocking on a FIFO
            fd = os.open(self.path, _OPEN_FLAGS, 0o644)
        except OSError as exc:
            why = ("it is a symbolic link; remove it" if exc.errno == errno.ELOOP
                   else exc.strerror or str(exc))
            raise ReconcilerError(f"cannot use state directory {self.path.parent}: "
                                  f"{self.path.name}: {why}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ReconcilerError(f"cannot use state directory {self.path.parent}: "
                                  f"{self.path.name} is not a regular file; remove it")
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockHeld(self._held_message()) from None
                time.sleep(0.1)
        self._fd = fd
        record = {"pid": os.getpid(), "purpose": self.purpose,
                  "since": datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def holder(self) -> dict[str, object]:
        """Who the file says holds the lock ({} when unknown)."""
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _held_message(self) -> str:
        info = self.holder()
        state = self.path.parent
        who = f"`{info.get('purpose', 'another process')}`"
        if info.get("pid"):
            who += f" (pid {info['pid']})"
        since = str(info.get("since", ""))
        when = f" since {since[11:19]}" if len(since) >= 19 else ""
        return f"state {state} is locked by {who}{when}; wait for it or stop it"

    def __enter__(self) -> StateLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def is_held(path: Path) -> bool:
    """Does some live process hold the lock at `path` right now? A non-blocking probe (the
    kernel releases a dead holder's flock at once, even after kill -9). The probe holds a
    shared lock for an instant, so an acquirer racing it should wait a moment, not fail."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False  # no lock file: nobody ever held it here
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
