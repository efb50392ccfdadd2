"""A plain directory as a config source, watched for changes.

A directory has no commit, so its identity is a content hash: YAML files by
their bytes (they are small and are the config), other files (models, code)
by size and modification time, which is enough to notice an edit without
reading large model files on every poll. Hidden directories and Python
caches are skipped: the config loader ignores them, and the local runtime's
workers write __pycache__ into the code root, which must not look like a change.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import watchfiles

from reconciler.errors import SourceError
from reconciler.sources.base import Snapshot, inside_path

log = logging.getLogger("reconciler.sources.watch")

SKIPPED_DIRS = {"__pycache__", "node_modules"}
YAML_SUFFIXES = (".yaml", ".yml")
DEBOUNCE_MS = 400


def _files(root: Path) -> Iterator[Path]:
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.name in SKIPPED_DIRS:
            continue
        if entry.is_dir() and not entry.is_symlink():
            yield from _files(entry)
        elif entry.is_file():
            yield entry


def content_hash(root: Path) -> str:
    """A short hash that changes whenever the config's files change."""
    digest = hashlib.sha256()
    for file in _files(root):
        rel = file.relative_to(root).as_posix()
        digest.update(rel.encode() + b"\0")
        if file.suffix in YAML_SUFFIXES:
            digest.update(file.read_bytes())
        else:
            stat = file.stat()
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


class DirectorySource:
    """A directory read in place; `start_watch` calls back when its files change."""

    kind = "directory"
    branch: str | None = None

    def __init__(self, directory: Path, *, path: str = "") -> None:
        self.directory = directory.resolve()
        self.path = inside_path(path)
        self.location = str(self.directory)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def config_dir(self) -> Path:
        return self.directory / self.path if self.path else self.directory

    def fetch(self) -> Snapshot:
        if not self.config_dir.is_dir():
            raise SourceError(f"config directory {self.config_dir} does not exist")
        try:
            revision = "dir:" + content_hash(self.config_dir)
        except OSError as exc:
            raise SourceError(f"cannot read {self.config_dir}: {exc}") from None
        return Snapshot(config_dir=self.config_dir, revision=revision, commit=None)

    def checkout(self, revision: str) -> Snapshot | None:
        """The files are already in place; only the current content can be had."""
        current = self.fetch()
        return current if current.revision == revision else None

    def start_watch(self, on_change: Callable[[str], None], debounce_ms: int = DEBOUNCE_MS) -> None:
        """Call `on_change(description)` after each debounced burst of file changes."""
        self._thread = threading.Thread(
            target=self._watch, args=(on_change, debounce_ms), name="watch", daemon=True
        )
        self._thread.start()

    def settle(self) -> None:
        """Nothing to do: the directory is the user's."""

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _watch(self, on_change: Callable[[str], None], debounce_ms: int) -> None:
        try:
            for changes in watchfiles.watch(
                self.config_dir, watch_filter=_Relevant(self.config_dir), debounce=debounce_ms,
                stop_event=self._stop, raise_interrupt=False,
            ):
                names = sorted({Path(p).name for _, p in changes})
                on_change(", ".join(names[:5]) + (" ..." if len(names) > 5 else ""))
        except Exception:  # the poll still picks changes up; say why watching stopped
            if not self._stop.is_set():
                log.exception("watching %s stopped; falling back to polling", self.config_dir)


class _Relevant:
    """Ignore changes below hidden or cache directories (relative to the watched root)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        try:
            parts = Path(path).relative_to(self.root).parts
        except ValueError:
            return False
        hidden = any(p.startswith(".") or p in SKIPPED_DIRS for p in parts)
        return not hidden and not path.endswith((".pyc", ".swp", "~"))
