"""The version catalog: what the store records so a call can be routed without the config.

`invoke` must resolve OWNER/NAME[/VERSION] exactly as a reservation would
(latest public version; a published semantic version; a commit, or a unique
prefix of one) and apply the access rules. The pools alone cannot say which
version is the latest public one, nor whether a commit prefix is ambiguous,
so every apply (and every daemon pass) that writes the store from a config
also records each algorithm's versions here: one row per version (algorithm,
commit, version, visibility, whether it is the latest public one).

Access needs no more than that: a call goes only to the CALLER's own pool,
and a pool of a private or unpublished version exists only where the config
let its caller reserve it (the rules refuse anything else), so the caller's
own pool is the proof of access. Anything the store cannot decide alone (no
pool of the caller, a catalog older than the pools) is left to the config.

The catalog is fresh when it was written at the store's current generation:
an apply from a saved plan file (no config at hand) moves the generation
without it, and routing then goes back to the config until the next apply or
daemon pass records it again.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable

from reconciler.config.model import Config, Visibility
from reconciler.config.resolve import semver_key
from reconciler.runtimes.local import store as db

Row = tuple[str, str, str | None, str, int]  # algorithm, commit, version, visibility, latest


_last: tuple[object, list[Row]] | None = None  # the daemon passes the same algorithms again


def rows_of(config: Config) -> list[Row]:
    """One row per version of every algorithm, sorted (so equal configs hash equal)."""
    global _last
    if _last is not None and _last[0] is config.algorithms:
        return _last[1]
    rows: list[Row] = []
    for ref in sorted(config.algorithms):
        algorithm = config.algorithms[ref]
        public = [v for v in algorithm.versions
                  if v.visibility is Visibility.PUBLIC and v.version]
        latest = max(public, key=lambda v: semver_key(v.version or "")).commit if public else None
        rows.extend((ref, v.commit, v.version, str(v.visibility), int(v.commit == latest))
                    for v in sorted(algorithm.versions, key=lambda v: v.commit))
    _last = (config.algorithms, rows)
    return rows


def digest(rows: Iterable[Row]) -> str:
    sha = hashlib.sha256()
    for row in rows:
        sha.update(repr(row).encode())
    return sha.hexdigest()


def record(conn: sqlite3.Connection, rows: list[Row]) -> None:
    """Replace the catalog when it changed, and mark it fresh at this generation."""
    new = digest(rows)
    if db.get_meta(conn, "catalog_hash") != new:
        conn.execute("DELETE FROM versions")
        conn.executemany("INSERT INTO versions (algorithm, sha, version, visibility, "
                         "latest_public) VALUES (?, ?, ?, ?, ?)", rows)
        db.set_meta(conn, "catalog_hash", new)
    mark_fresh(conn)


def mark_fresh(conn: sqlite3.Connection) -> None:
    """The catalog describes the pools of this generation (call after a bump, same
    transaction, when the writes came from the config the catalog was made from)."""
    db.set_meta(conn, "catalog_generation", str(db.generation(conn)))


def is_fresh(conn: sqlite3.Connection) -> bool:
    """In one statement: written at the current generation (and written at all)."""
    row = conn.execute(
        "SELECT (SELECT value FROM meta WHERE key = 'catalog_generation') = "
        "COALESCE((SELECT value FROM meta WHERE key = 'generation'), '0')").fetchone()
    return bool(row and row[0])
