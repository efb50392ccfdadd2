"""Routing a call on the local runtime: which version, which replica, warm or cold.

Shared by `reconciler invoke` and any long-lived caller (`Router.invoke` is the
library call: route, then call, over kept-alive connections). The rules:

- OWNER/NAME[/VERSION] resolves as a reservation of it would (no VERSION: the
  latest public version; a published semantic version; a commit or a unique
  prefix of one), and the call goes only to the CALLER's own pool of that
  version: warm instances are never shared across accounts.
- The route comes from the store in one indexed query (the version catalog
  joined to the caller's pool and its ready replicas: catalog.py says why
  that is enough for the access rules). Only what the store cannot decide
  alone (the caller has no pool of that version; the catalog is older than
  the pools) loads the config, and without a config the pools decide.
- Replicas that are ready with the pool's current spec come first. While a
  reload cannot finish (a wrong digest, a crashing new model), the replicas
  of the previous spec keep serving: they are routed to rather than failing
  over to a cold start that would fail the same way.
- One call, one execution (calls.py): the next replica is tried only when the
  connection could not be made; with none, a cold worker serves the call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.errors import ReconcilerError
from reconciler.runtimes.local import store as db

if TYPE_CHECKING:
    from reconciler.config.model import Config
    from reconciler.runtimes.local.calls import Outcome

REF = re.compile(r"^([a-z0-9-]+)/([a-z0-9-]+)(?:/([^/]+))?$")
PREFIX = re.compile(r"^[0-9a-f]{7,40}$")

ConfigLoader = Callable[[], "Config | None"]


@dataclass(frozen=True, slots=True)
class Target:
    """The version a call selects, and what a worker needs to serve it."""

    owner: str
    name: str
    commit: str
    label: str  # version, or the commit's head when unpublished
    entrypoint: str
    model_path: str
    model_digest: str


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A ready replica: its row, pid and loopback port; `current`: runs the pool's spec."""

    replica: int
    pid: int | None
    port: int
    current: bool


@dataclass(frozen=True, slots=True)
class Route:
    caller: str
    pool_id: str
    label: str  # the version, for messages
    endpoints: tuple[Endpoint, ...]
    spec: str | None = None  # the caller's pool spec (JSON) when it has one
    resolved: Target | None = None  # from the config, when the store did not decide

    @property
    def target(self) -> Target | None:
        """What a cold worker for this call runs."""
        if self.resolved is not None:
            return self.resolved
        if self.spec is None:
            return None
        data = json.loads(self.spec)
        return Target(data["owner"], data["name"], data["commit"], self.label,
                      data["entrypoint"], data["model_path"], data["model_digest"])


def parse_ref(ref: str) -> tuple[str, str, str | None]:
    match = REF.match(ref)
    if not match:
        raise ReconcilerError(f"expected OWNER/NAME[/VERSION], got {ref!r}")
    owner, name, selector = match.groups()
    return owner, name, selector


def kind_of(selector: str | None) -> tuple[str, str | None]:
    """How the store looks a VERSION up, without validating it (what the store does not
    find, the config path resolves and explains): no VERSION is the latest public
    version; hex digits are a commit (fewer than 40: a prefix); anything else a semantic
    version (never hex: it has dots)."""
    if selector is None:
        return "latest-public", None
    if PREFIX.match(selector):
        return ("hash" if len(selector) == 40 else "prefix"), selector
    return "semantic", selector


# The route in one statement: the selected versions of the algorithm, the caller's pool of
# each, that pool's ready replicas, and whether the catalog is as fresh as the pools.
# A pool's id is CALLER.OWNER.NAME.<commit's first 12 hex> (states.pool_id).
ROUTE_SQL = """
SELECT v.sha, v.version, p.id AS pool, p.spec, r.id AS replica, r.pid, r.port,
       r.spec_hash = p.spec_hash AS current,
       (SELECT value FROM meta WHERE key = 'catalog_generation')
         = COALESCE((SELECT value FROM meta WHERE key = 'generation'), '0') AS fresh
FROM versions v
LEFT JOIN pools p ON p.id = :pool_prefix || substr(v.sha, 1, 12)
LEFT JOIN replicas r ON r.pool_id = p.id AND r.state = 'ready' AND r.port IS NOT NULL
WHERE v.algorithm = :algorithm AND {condition}
ORDER BY v.sha, r.id
"""
CONDITIONS = {
    "latest-public": "v.latest_public = 1",
    "semantic": "v.version = :selector AND v.visibility != 'unpublished'",
    "hash": "v.sha = :selector",
    "prefix": "v.sha >= :selector AND v.sha < :selector || 'g'",
}
ENDPOINTS_SQL = """
SELECT r.id AS replica, r.pid, r.port, r.spec_hash = p.spec_hash AS current
FROM replicas r JOIN pools p ON p.id = r.pool_id
WHERE r.pool_id = ? AND r.state = 'ready' AND r.port IS NOT NULL ORDER BY r.id
"""


class Router:
    """Routes and carries calls for one state directory. Thread-safe; close() when done.

    `load_config()` gives the config to resolve with when the store cannot decide alone
    (None: there is none; the pools then decide). `data_root` / `code_root` override the
    roots the last apply recorded (for cold workers)."""

    def __init__(self, state_dir: Path, *, load_config: ConfigLoader | None = None,
                 prefer_config: bool = False, config_dir: Path | None = None,
                 data_root: Path | None = None, code_root: Path | None = None) -> None:
        from reconciler.runtimes.local.calls import Calls

        self.state_dir = Path(state_dir)
        self.store = db.Store(self.state_dir)
        self.load_config = load_config
        self.prefer_config = prefer_config  # an explicit --config: resolve in it first
        self.config_dir, self.data_root, self.code_root = config_dir, data_root, code_root
        self.calls = Calls()

    def invoke(self, caller: str, ref: str, payload: bytes | Any, *,
               timeout: float = 30.0) -> Outcome:
        """The library call: route `ref` for `caller` and call it with `payload` (JSON
        bytes, or a value to encode). ReconcilerError when it cannot be served."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        route = self.route(caller, ref)
        outcome = self.calls.warm(route.endpoints, body, timeout)
        if outcome is not None:
            return outcome
        target = route.target
        if target is None:  # cannot happen: a route without the caller's pool is resolved
            raise ReconcilerError(f"no way to start {ref} for {caller}")
        data_root, code_root = self.roots()
        outcome = self.calls.cold(target, data_root, code_root, body, timeout)
        outcome.note = (f"no warm replica of {caller} for {target.owner}/{target.name} "
                        f"{target.label}; started a worker for this call")
        return outcome

    def route(self, caller: str, ref: str) -> Route:
        """Where a call of `ref` by `caller` goes (ReconcilerError when it may not)."""
        owner, name, selector = parse_ref(ref)
        if not self.prefer_config:
            route = self._from_store(caller, owner, name, selector)
            if route is not None:
                return route
        config = self.load_config() if self.load_config is not None else None
        if config is not None and f"{owner}/{name}" in config.algorithms:
            from reconciler.runtimes.local.resolving import resolve_in_config

            target = resolve_in_config(config, caller, owner, name, selector)
        else:
            from reconciler.runtimes.local.resolving import resolve_in_pools

            pools = []
            if db.Store.exists(self.state_dir):  # reading never creates a store
                with self.store.read() as conn:
                    pools = [pool for pool, _ in db.load_pools(conn)]
            target = resolve_in_pools(pools, caller, owner, name, selector)
        from reconciler.states import pool_id

        ident = pool_id(caller, owner, name, target.commit)
        return Route(caller, ident, target.label, self.endpoints(ident), resolved=target)

    def _from_store(self, caller: str, owner: str, name: str, selector: str | None
                    ) -> Route | None:
        """The route from the catalog and the caller's pool, or None to ask the config."""
        ref = f"{owner}/{name}"
        vtype, selected = kind_of(selector)
        if not db.Store.exists(self.state_dir):
            return None
        sql = ROUTE_SQL.format(condition=CONDITIONS[vtype])
        rows = self.store.query(sql, {"pool_prefix": f"{caller}.{owner}.{name}.",
                                      "algorithm": ref, "selector": selected})
        if not rows or not rows[0]["fresh"]:
            return None
        commits = sorted({row["sha"] for row in rows})
        if len(commits) > 1:  # a fresh catalog knows every commit: the prefix is ambiguous
            from reconciler.runtimes.local.resolving import selection

            selection(selector, commits, ref)
        first = rows[0]
        if first["spec"] is None:
            return None  # no pool of the caller: access and a cold start need the config
        label = first["version"] or first["sha"][:12]
        return Route(caller, first["pool"], label, _endpoints(rows), spec=first["spec"])

    def endpoints(self, pool_id: str) -> tuple[Endpoint, ...]:
        if not db.Store.exists(self.state_dir):
            return ()
        return _endpoints(self.store.query(ENDPOINTS_SQL, (pool_id,)))

    def roots(self) -> tuple[Path, Path]:
        """Where a cold worker finds data and code: the explicit roots, else those the last
        apply recorded, else the config dir's (explicit, else recorded) data/ and src/."""
        recorded: dict[str, str | None] = {}
        if db.Store.exists(self.state_dir):
            rows = self.store.query("SELECT key, value FROM meta WHERE key IN "
                                    "('data_root', 'code_root', 'config_dir')", ())
            recorded = {row["key"]: row["value"] for row in rows}
        home = self.config_dir or Path(recorded.get("config_dir") or ".")
        data = self.data_root or Path(recorded.get("data_root") or home / "data")
        code = self.code_root or Path(recorded.get("code_root") or home / "src")
        return data, code

    def close(self) -> None:
        self.calls.close()
        self.store.close()


def _endpoints(rows: Iterable[Any]) -> tuple[Endpoint, ...]:
    return tuple(Endpoint(row["replica"], row["pid"], row["port"], bool(row["current"]))
                 for row in rows if row["port"] is not None)
