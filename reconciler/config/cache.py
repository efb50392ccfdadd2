"""Content-addressed cache of parsed and schema-validated files.

Config files rarely change between runs, and parsing plus schema validation
is most of the cost of loading a big repo (PERFORMANCE.md). The key is the
sha256 of the file's bytes salted with the schema files and the parser and
translator code, so a cache may be shared by any number of repos and is
invalidated by any change that could change the outcome. Entries are written
atomically; an unreadable or corrupt entry is a miss, never an error.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.config import schema

CACHE_FORMAT = "1"
_CODE_FILES = ("documents.py", "parse.py", "schema.py", "fastschema.py", "cache.py", "loader.py")


def default_cache_dir() -> Path | None:
    """$RECONCILER_CACHE_DIR, else $XDG_CACHE_HOME/reconciler, else ~/.cache/reconciler;
    None when RECONCILER_NO_CACHE=1."""
    if os.environ.get("RECONCILER_NO_CACHE") == "1":
        return None
    explicit = os.environ.get("RECONCILER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "reconciler"


@functools.cache
def salt() -> bytes:
    """What, besides a file's bytes, decides what parsing and validating it gives."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}\0{__version__}\0".encode())
    digest.update(schema.schema_fingerprint().encode())
    here = Path(__file__).resolve().parent
    for name in _CODE_FILES:
        digest.update((here / name).read_bytes())
    return digest.digest()


def content_key(raw: bytes) -> str:
    return hashlib.sha256(salt() + raw).hexdigest()


class FileCache:
    """One pickle per content key under DIR/v1/ab/abcdef....pickle."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory / f"v{CACHE_FORMAT}"

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.pickle"

    def get(self, key: str) -> Any | None:
        try:
            with open(self._path(key), "rb") as handle:
                return pickle.load(handle)
        except Exception:  # a miss, a truncated or foreign file: all just misses
            return None

    def put(self, key: str, value: Any) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            pass  # a read-only or full disk costs speed, not correctness
