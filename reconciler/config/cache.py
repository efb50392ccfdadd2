"""Content-addressed cache of parsed and schema-validated files: data only.

Config files rarely change between runs, and parsing plus schema validation
is most of the cost of loading a big repo (PERFORMANCE.md). The key is the
sha256 of the file's bytes salted with the schema files and the parser and
translator code, so a cache may be shared by any number of repos and is
invalidated by any change that could change the outcome.

The cache is a trust boundary: it holds JSON only (never pickle: whoever can
write the cache directory must not be able to run code in `validate`), its
directories are created 0700 and its files 0600, and a directory that others
may write is not used. Each entry is one header line (format, key, sha256 of
the body) and the JSON body; an entry that is truncated, damaged, of another
format or wrongly shaped is moved aside (ENTRY.bad) and reported as a
warning, and the file is parsed again: never a traceback, never trusted.
Entries are written atomically.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.config import schema
from reconciler.config.documents import LOC_BYTES, RawDiag
from reconciler.ownership import untrusted

CACHE_FORMAT = "2"
_CODE_FILES = ("documents.py", "parse.py", "schema.py", "fastschema.py", "cache.py", "loader.py")
_MAGIC = "reconciler-cache"
_SEVERITIES = ("error", "warning")

# What one file yields: ([(data, line, col, locs, valid)], diagnostics), where locs is
# (field paths, their (line, col) pairs packed: see documents.pack_locs).
CachedDoc = tuple[Any, int, int, tuple[tuple[str, ...], bytes], bool]
FileResult = tuple[list[CachedDoc], list[RawDiag]]


class Damaged(ValueError):
    """A cache entry that cannot be trusted; the message says why."""


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
    """One JSON entry per content key under DIR/v2/ab/abcdef....json.

    `problems` collects one line per entry set aside (and per refusal to use
    the directory); the loader turns them into warnings."""

    def __init__(self, directory: Path) -> None:
        self.root = Path(directory)
        self.directory = self.root / f"v{CACHE_FORMAT}"
        self.problems: list[str] = []
        self._usable: bool | None = None

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def usable(self) -> bool:
        """False (with a problem noted, once) when the cache directory is not ours alone."""
        if self._usable is None:
            self._usable = True
            for directory in (self.root, self.directory):
                why = untrusted(directory, directory=True)
                if why:
                    self.problems.append(f"cache directory {directory} {why}: not used")
                    self._usable = False
                    break
        return self._usable

    def get(self, key: str) -> FileResult | None:
        """The entry of `key`, or None (a miss, or an entry set aside as damaged)."""
        if not self.usable():
            return None
        path = self._path(key)
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.problems.append(f"cache entry {path} cannot be read ({exc.strerror}): "
                                 "parsed again")
            return None
        try:
            return decode(raw, key)
        except Damaged as exc:
            self.set_aside(path, str(exc))
            return None

    def discard(self, key: str, why: str) -> None:
        """Set the entry of `key` aside: it decoded, but its content cannot be used."""
        self.set_aside(self._path(key), why)

    def set_aside(self, path: Path, why: str) -> None:
        bad = path.with_name(path.name + ".bad")
        try:
            os.replace(path, bad)
            where = f"moved to {bad}"
        except OSError:
            where = "left in place"
        self.problems.append(f"cache entry {path} is damaged ({why}); {where}, parsed again")

    def put(self, key: str, value: FileResult) -> None:
        if not self.usable():
            return
        path = self._path(key)
        try:
            for directory in (self.root, self.directory, path.parent):
                _make_private_dir(directory)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mode 0600
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(encode(value, key))
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            pass  # a read-only or full disk costs speed, not correctness


def _make_private_dir(directory: Path) -> None:
    """Make the directory 0700; one made by an older version is narrowed to 0700."""
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        if stat.S_IMODE(os.stat(directory).st_mode) & 0o077:
            os.chmod(directory, 0o700)


# --- the entry format ----------------------------------------------------------------------


def encode(value: FileResult, key: str) -> bytes:
    """Header line {"format", "key", "sha256"} then the JSON body. The body keeps each
    distinct field-path tuple once ("shapes") and positions as hex of the packed array."""
    docs, diags = value
    shapes: dict[tuple[str, ...], int] = {}
    rows = []
    for data, line, col, (paths, packed), valid in docs:
        index = shapes.setdefault(paths, len(shapes))
        rows.append([data, line, col, index, packed.hex(), valid])
    body = json.dumps({"shapes": [list(paths) for paths in shapes], "docs": rows,
                       "diags": [list(d) for d in diags]},
                      separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    header = json.dumps({"format": f"{_MAGIC}/{CACHE_FORMAT}", "key": key,
                         "sha256": hashlib.sha256(body).hexdigest()})
    return header.encode() + b"\n" + body


def decode(raw: bytes, key: str) -> FileResult:
    """The entry's value; Damaged when it is not exactly what `encode` wrote for `key`."""
    head, newline, body = raw.partition(b"\n")
    if not newline:
        raise Damaged("no header line (truncated?)")
    try:
        header = json.loads(head)
    except ValueError:
        raise Damaged("the header is not JSON") from None
    if not isinstance(header, dict) or header.get("format") != f"{_MAGIC}/{CACHE_FORMAT}":
        raise Damaged("not a cache entry of this format")
    if header.get("key") != key:
        raise Damaged("it is the entry of another content key")
    if header.get("sha256") != hashlib.sha256(body).hexdigest():
        raise Damaged("its checksum does not match (truncated or edited)")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise Damaged("the body is not JSON") from None
    try:
        return _shaped(data)
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise Damaged(f"wrong shape: {exc}") from None


def _shaped(data: Any) -> FileResult:
    """Check every part's type while turning the body back into the loader's values."""
    if not isinstance(data, dict):
        raise TypeError("the body is not an object")
    shapes = data["shapes"]
    if not isinstance(shapes, list) or not all(
            isinstance(s, list) and all(isinstance(p, str) for p in s) for s in shapes):
        raise TypeError("shapes")
    paths = [tuple(s) for s in shapes]
    docs: list[CachedDoc] = []
    for row in data["docs"]:
        if type(row) is not list or len(row) != 6:
            raise TypeError("a document row")
        doc, line, col, index, packed, valid = row
        if type(line) is not int or type(col) is not int or type(index) is not int \
                or type(valid) is not bool or type(packed) is not str:
            raise TypeError("a document row's fields")
        locs = bytes.fromhex(packed)
        shape = paths[index]
        if index < 0 or len(locs) != LOC_BYTES * len(shape):
            raise ValueError("positions do not match their field paths")
        docs.append((doc, line, col, (shape, locs), valid))
    diags: list[RawDiag] = []
    for item in data["diags"]:
        if type(item) is not list or len(item) != 5:
            raise TypeError("a diagnostic")
        line, col, path, message, severity = item
        if type(line) is not int or type(col) is not int or not isinstance(path, str) \
                or not isinstance(message, str) or severity not in _SEVERITIES:
            raise TypeError("a diagnostic's fields")
        diags.append((line, col, path, message, severity))
    return docs, diags
