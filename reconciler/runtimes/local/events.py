"""Reading the local runtime's events table: what the agent did, newest first.

The agent records every state change of a replica (started, ready, failed,
stopped, restarted) in STATE/state.db's `events` table (store.add_event, trimmed
to the last store.MAX_EVENTS). `reconciler status --events` and the daemon's
dashboard show them. Read-only: a missing store has no events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.runtimes.local.store import Store

MAX_LIMIT = 2000


def recent_events(store: Store, limit: int = 50, *, pool: str | None = None,
                  caller: str | None = None) -> list[dict[str, Any]]:
    """The newest `limit` events (of one pool, or of one caller's pools), newest first."""
    if not Store.exists(store.state_dir):
        return []
    limit = max(1, min(int(limit), MAX_LIMIT))
    query = "SELECT id, time, pool_id, replica_id, message FROM events"
    args: list[Any] = []
    if pool:
        query += " WHERE pool_id = ?"
        args.append(pool)
    elif caller:
        query += " WHERE pool_id LIKE ? ESCAPE '\\'"
        escaped = caller.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        args.append(f"{escaped}.%")
    query += " ORDER BY id DESC LIMIT ?"
    args.append(limit)
    with store.read() as conn:
        rows = conn.execute(query, args).fetchall()
    return [{"id": r["id"], "time": r["time"], "pool": r["pool_id"], "replica": r["replica_id"],
             "message": r["message"]} for r in rows]


def read_events(state_dir: Path, limit: int = 50, **filters: Any) -> list[dict[str, Any]]:
    """recent_events on a store opened (and closed) for this one read."""
    store = Store(state_dir)
    try:
        return recent_events(store, limit, **filters)
    finally:
        store.close()
