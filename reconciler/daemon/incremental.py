"""The daemon's memory between passes: a commit costs what it changed.

The daemon keeps the last valid config in memory: each file's parsed,
validated and built documents (by Git blob id), the config, its compiled
desired state, an index of which reservations make which pool, and the live
state it left behind (with the runtime's revision). On a new commit it asks
Git which files changed (`git ls-tree`, blob ids) and:

- nothing changed: the config and desired state are reused;
- only YAML files under the config directory changed, and every document in
  them (before and after) is a Reservation that validates, resolves and is
  allowed: only those files are read again, only the pools their
  reservations count into are recounted and recompiled, only the limits of
  those callers and versions are checked, and the plan compares only those
  pools with the live state;
- YAML files changed in another way (accounts, algorithms, limits, settings,
  a problem in a file): the unchanged files are reused and the
  cross-document stages run over the whole config;
- anything else (code under src/, data files, a symlink, a file outside the
  config directory, no Git, a change that cannot be classified), and every
  resync: a full pass, reading every file again.

The live state is observed again unless the runtime's revision is the one
the daemon recorded after its own last clean pass (nothing else wrote since);
then the live state is known exactly: what that pass applied.
tests/daemon/test_incremental.py checks that the result always equals a full
pass (hypothesis over random edit sequences on a real Git repository).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reconciler.config import capacity, code, loader
from reconciler.config.model import CapacityLimit, Config, PoolCount, PoolKey, Reservation
from reconciler.config.resolve import aggregate_pools, limit_target
from reconciler.desired import compile_config, scheduling_json, warm_pool
from reconciler.errors import ConfigError, Diagnostic, Severity
from reconciler.plan.capacity import Totals, totals
from reconciler.plan.fingerprint import RowCache
from reconciler.states import DesiredState, LiveState, Tenant

log = logging.getLogger("reconciler.daemon.incremental")
GIT_TIMEOUT = 60.0
REGULAR_MODES = ("100644", "100755")
Tree = dict[str, tuple[str, str]]  # repository path -> (mode, blob id)


@dataclass
class Loaded:
    """What a pass plans from. `candidates`: the only pool ids that can differ from
    the previous desired state (None: any may); `how`: full, files or reservations."""

    config: Config
    diags: list[Diagnostic]
    desired: DesiredState
    candidates: set[str] | None
    how: str
    sums: Totals | None = None  # capacity.totals(desired.pools), when kept


@dataclass
class _Memory:
    root: Path  # the config directory
    commit: str
    prefix: str  # the config directory inside the repository, "" or "sub/"
    tree: Tree
    files: dict[str, loader.FileDocs]  # by path relative to the config directory
    config: Config
    diags: list[Diagnostic]
    desired: DesiredState
    sums: Totals
    res_key: dict[str, PoolKey] = field(default_factory=dict)  # pooled reservation -> pool
    res_file: dict[str, str] = field(default_factory=dict)  # reservation -> file
    key_names: dict[PoolKey, set[str]] = field(default_factory=dict)
    by_caller: dict[str, set[PoolKey]] = field(default_factory=dict)
    by_version: dict[tuple[str, str], set[PoolKey]] = field(default_factory=dict)
    pool_ids: list[str] = field(default_factory=list)  # desired.pools' ids, sorted
    counts: dict[PoolKey, PoolCount] = field(default_factory=dict)  # config.pool_counts
    code: tuple[list[Diagnostic], dict[str, str]] = ([], {})  # code.check_code's answer
    # CapacityLimit names by the account, or the (OWNER/NAME, commit), they limit
    limits_of: dict[str | tuple[str, str], list[str]] = field(default_factory=dict)


class Incremental:
    """Loads each commit into a config and desired state, reusing the last pass's."""

    def __init__(self, cache_dir: Path | None, *, code_root: Path | None = None,
                 code_digests: bool = True) -> None:
        """`code_root`, `code_digests`: as loader.check_config takes them."""
        self.cache_dir = cache_dir
        self.code_root, self.code_digests = code_root, code_digests
        self.rows = RowCache()
        self._memory: _Memory | None = None
        self._live: LiveState | None = None  # what the runtime holds at _live.revision
        self._live_sums: Totals | None = None  # capacity.totals of _live.pools
        # capacity.totals of the live state `live()` last gave (None: it gave none)
        self.live_sums: Totals | None = None

    def forget(self) -> None:
        self._memory, self._live = None, None

    # --- config ---------------------------------------------------------------------------

    def load(self, config_dir: Path, commit: str | None, *, full: bool = False) -> Loaded:
        """The config of `commit` checked out at `config_dir`; ConfigError when invalid
        (the memory is then dropped: the next commit is a full pass)."""
        try:
            return self._load(config_dir, commit, full)
        except ConfigError:
            self._memory = None
            raise

    def _load(self, config_dir: Path, commit: str | None, full: bool) -> Loaded:
        memory = self._memory
        known = memory.prefix if memory is not None and memory.root == config_dir else None
        listing = git_tree(config_dir, commit, known) if commit else None
        if memory is None or listing is None or full or memory.root != config_dir:
            files = loader.read_files(config_dir, self.cache_dir)
            return self._check_all(config_dir, commit, listing, files, "full")
        prefix, tree = listing
        changed = _changed(memory.tree, tree)
        if not changed and self._code_same(memory, config_dir):
            config = _carry(memory.config, dataclasses.replace(memory.config, commit=commit))
            memory.config, memory.commit, memory.tree = config, commit or "", tree
            return Loaded(config, memory.diags, memory.desired, set(), "unchanged",
                          memory.sums)
        rels = _yaml_changes(changed, prefix, tree) if changed else []
        if rels is None:  # code, data or anything unclassified changed: read everything
            files = loader.read_files(config_dir, self.cache_dir)
            return self._check_all(config_dir, commit, listing, files, "full")
        real_root = os.path.realpath(config_dir)
        fresh = {rel: loader.read_file(config_dir / rel, rel, real_root, None)
                 for rel in rels if (config_dir / rel).is_file()}
        try:
            loaded = _reservations_only(memory, rels, fresh, commit) \
                if rels and self._code_same(memory, config_dir) else None
        except Exception:  # a bug here must cost a full pass, never a wrong result
            log.exception("the incremental load failed; reading the whole config")
            files = loader.read_files(config_dir, self.cache_dir)
            return self._check_all(config_dir, commit, listing, files, "full")
        if loaded is not None:
            memory.tree, memory.commit = tree, commit or ""
            return loaded
        files = dict(memory.files)
        for rel in rels:
            files.pop(rel, None)
        files.update(fresh)
        order = [path.relative_to(config_dir).as_posix() for path in loader.yaml_files(config_dir)]
        if set(order) != set(files):  # the walk disagrees with Git: trust neither
            files = loader.read_files(config_dir, self.cache_dir)
            return self._check_all(config_dir, commit, listing, files, "full")
        return self._check_all(config_dir, commit, listing, {rel: files[rel] for rel in order},
                               "files")

    def _check_all(self, config_dir: Path, commit: str | None, listing: tuple[str, Tree] | None,
                   files: dict[str, loader.FileDocs], how: str) -> Loaded:
        self._memory = None
        config, diags = loader.check_files(config_dir, files.values(), commit,
                                           code_root=self.code_root,
                                           code_digests=self.code_digests)
        if config is None:
            raise ConfigError([d for d in diags if d.severity is Severity.ERROR])
        desired = compile_config(config)
        sums = totals(desired.pools)
        if listing is not None and "" not in files:  # no cache warnings to carry along
            memory = _Memory(config_dir, commit or "", listing[0], listing[1], files, config,
                             diags, desired, sums)
            memory.code = self._code(config, config_dir)
            _index(memory)
            self._memory = memory
        return Loaded(config, diags, desired, None, how, sums)

    def _code(self, config: Config, config_dir: Path) -> tuple[list[Diagnostic], dict[str, str]]:
        root = Path(self.code_root) if self.code_root else config_dir / "src"
        return code.check_code(config.algorithms.values(), root)

    def _code_same(self, memory: _Memory, config_dir: Path) -> bool:
        """The entrypoints' code is what the config in memory was checked with (a code
        root outside the repository changes without Git saying so)."""
        return self._code(memory.config, config_dir) == memory.code

    # --- live state -----------------------------------------------------------------------

    def live(self, runtime: Any) -> LiveState | None:
        """The live state the last clean pass left, when the runtime's revision shows that
        nothing was written since; None: observe it. Taken, not kept: only `applied`
        (at the end of the next clean pass) remembers a live state again."""
        revision = getattr(runtime, "revision", None)
        known, self._live = self._live, None
        self.live_sums, self._live_sums = self._live_sums, None
        if known is None or revision is None:
            self.live_sums = None
            return None
        try:
            now = revision()
        except Exception:  # noqa: BLE001 - a failed read only costs a full observe
            self.live_sums = None
            return None
        if now != known.revision:
            self.live_sums = None
            return None
        return known

    def applied(self, desired: DesiredState, runtime: Any, sums: Totals | None = None) -> None:
        """Every action of the pass succeeded (or there were none): the runtime now holds
        exactly `desired`, at its current revision (`sums`: capacity.totals of its pools)."""
        revision = getattr(runtime, "revision", None)
        self._live, self._live_sums = None, None
        if revision is not None:
            self._live = LiveState(desired.tenants, desired.quotas, desired.pools,
                                   revision=revision())
            self._live_sums = sums



def git_tree(config_dir: Path, commit: str, prefix: str | None = None,
             ) -> tuple[str, Tree] | None:
    """(the config directory's prefix in the repository, every file of `commit`);
    None when config_dir is not in a Git worktree or Git cannot list it. `prefix`:
    the prefix when already known (one git process less)."""
    try:
        if prefix is None:
            prefix = _git(config_dir, "rev-parse", "--show-prefix").decode().strip()
        raw = _git(config_dir, "ls-tree", "-r", "-z", "--full-tree", commit)
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return None
    tree: Tree = {}
    for entry in raw.split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        parts = meta.split()
        if len(parts) != 3:
            return None
        tree[path.decode("utf-8", "surrogateescape")] = (parts[0].decode(), parts[2].decode())
    return prefix, tree


def _git(cwd: Path, *args: str) -> bytes:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=GIT_TIMEOUT,
                          check=True, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    return done.stdout


def _changed(old: Tree, new: Tree) -> set[str]:
    return {path for path in old.keys() | new.keys() if old.get(path) != new.get(path)}


def _yaml_changes(changed: set[str], prefix: str, tree: Tree) -> list[str] | None:
    """The changed paths relative to the config directory when every one is a regular
    YAML file the loader reads (outside hidden directories); None otherwise, and
    whenever the tree has a symbolic link or a submodule anywhere (a link's target
    may change without the link)."""
    if any(mode not in REGULAR_MODES for mode, _ in tree.values()):
        return None
    out = []
    for path in sorted(changed):
        if not path.startswith(prefix) or not path.endswith(loader.YAML_SUFFIXES):
            return None
        rel = path[len(prefix):]
        if any(part.startswith(".") for part in rel.split("/")[:-1]):
            return None
        out.append(rel)
    return out


# --- the reservations-only path -----------------------------------------------------------


def _index(memory: _Memory) -> None:
    counts = memory.counts = dict(memory.config.pool_counts or {})
    for key, count in counts.items():
        names = {s for s in count.sources if not s.startswith("CapacityLimit/")}
        memory.key_names[key] = names
        for name in names:
            memory.res_key[name] = key
        memory.by_caller.setdefault(key[0], set()).add(key)
        memory.by_version.setdefault((key[1], key[2]), set()).add(key)
    for rel, docs in memory.files.items():
        for item in docs.items:
            if isinstance(item, Reservation):
                memory.res_file[item.name] = rel
    memory.pool_ids = [pool.id for pool in memory.desired.pools]
    config = memory.config
    for name, limit in config.limits.items():
        scope = limit.account if limit.account is not None else _version_of(limit, config)
        if scope is not None:
            memory.limits_of.setdefault(scope, []).append(name)


def _carry(old: Config, new: Config) -> Config:
    """`new` (dataclasses.replace of `old`) with the loader's non-init fields of `old`."""
    object.__setattr__(new, "pool_counts", old.pool_counts)
    object.__setattr__(new, "code_digests", old.code_digests)
    return new


def _plain_reservations(docs: Iterable[loader.FileDocs]) -> list[Reservation] | None:
    out: list[Reservation] = []
    for file in docs:
        if file.diags or file.ghosts or len(file.items) != file.documents:
            return None
        for item in file.items:
            if not isinstance(item, Reservation):
                return None
            out.append(item)
    return out


def _reservations_only(memory: _Memory, rels: list[str], fresh: dict[str, loader.FileDocs],
                       commit: str | None) -> Loaded | None:
    """The new config when the changed files hold nothing but reservations that validate,
    resolve and are allowed, and no limit breaks; None: let the whole config be checked."""
    if any(d.file in rels for d in memory.diags):
        return None
    old = _plain_reservations(memory.files[rel] for rel in rels if rel in memory.files)
    new = _plain_reservations(fresh.values())
    if old is None or new is None:
        return None
    new_names = [r.name for r in new]
    if len(set(new_names)) != len(new_names) or any(
            memory.res_file.get(name, rels[0]) not in rels for name in new_names):
        return None  # a duplicate name: the whole config reports it, with both places
    config = memory.config
    reservations = dict(config.reservations)
    for reservation in old:
        reservations.pop(reservation.name, None)
    reservations.update((r.name, r) for r in new)
    base = _carry(config, dataclasses.replace(config, reservations=reservations, commit=commit))
    # where the new reservations count (all of them must: else a rule reports them)
    probe = aggregate_pools(dataclasses.replace(base, reservations={r.name: r for r in new},
                                                limits={}))
    new_keys = {name: key for key, count in probe.items() for name in count.sources
                if not name.startswith("CapacityLimit/")}
    if set(new_keys) != set(new_names):
        return None
    affected = {memory.res_key[r.name] for r in old if r.name in memory.res_key}
    affected |= set(new_keys.values())
    names = set().union(*(memory.key_names.get(key, set()) for key in affected))
    names -= {r.name for r in old}
    names |= set(new_names)
    minimums = {name: config.limits[name] for key in affected
                for name in memory.limits_of.get((key[1], key[2]), [])}
    recount = aggregate_pools(dataclasses.replace(
        base, reservations={name: reservations[name] for name in names}, limits=minimums))
    counts = dict(memory.counts)  # a dict copies fast; the config's read-only view does not
    for key in affected:
        counts.pop(key, None)
        if key in recount:
            counts[key] = recount[key]
    if not _limits_hold(memory, base, counts, affected):
        return None
    object.__setattr__(base, "pool_counts", MappingProxyType(counts))
    desired, candidates = _recompile(memory, base, affected, recount)
    _reindex(memory, old, new, new_keys, affected, recount, fresh, rels)
    memory.files = {**{rel: d for rel, d in memory.files.items() if rel not in rels}, **fresh}
    memory.config, memory.desired, memory.counts = base, desired, counts
    return Loaded(base, memory.diags, desired, candidates, "reservations", memory.sums)


def _limits_hold(memory: _Memory, config: Config, counts: dict[PoolKey, PoolCount],
                 affected: set[PoolKey]) -> bool:
    """No capacity limit of an affected caller or version is broken (else the whole config
    is checked, to report it exactly as a full pass does)."""
    callers = {key[0] for key in affected}
    versions = {(key[1], key[2]) for key in affected}
    keys = set().union(*(memory.by_caller.get(c, set()) for c in callers),
                       *(memory.by_version.get(v, set()) for v in versions), affected)
    pools = [counts[key] for key in keys if key in counts]
    scopes: list[str | tuple[str, str]] = [*callers, *versions]
    names = [name for scope in scopes for name in memory.limits_of.get(scope, [])]
    limits = {name: config.limits[name] for name in names}
    return not capacity.check(dataclasses.replace(config, limits=limits), pools)


def _version_of(limit: CapacityLimit, config: Config) -> tuple[str, str] | None:
    target = limit_target(limit, config.algorithms)
    return None if target is None else (target[0].ref, target[1].commit)


def _recompile(memory: _Memory, config: Config, affected: set[PoolKey],
               recount: dict[PoolKey, PoolCount]) -> tuple[DesiredState, set[str]]:
    old_counts = memory.config.pool_counts or {}
    scheduling = scheduling_json(config.settings.kubernetes)
    pools = list(memory.desired.pools)
    ids = list(memory.pool_ids)
    candidates: set[str] = set()
    removed, added = [], []
    for key in affected:
        if key in old_counts:
            gone = _pool_id(old_counts[key])
            at = bisect_left(ids, gone)
            if at < len(ids) and ids[at] == gone:
                removed.append(pools[at])
                del ids[at], pools[at]
            candidates.add(gone)
    for key in affected:
        if key in recount:
            pool = warm_pool(recount[key], scheduling, config.code_digests)
            at = bisect_left(ids, pool.id)
            ids.insert(at, pool.id)
            pools.insert(at, pool)
            added.append(pool)
            candidates.add(pool.id)
    memory.pool_ids = ids
    memory.sums = memory.sums.moved(removed, added)
    callers = {pool.caller for pool in pools} if _tenants_move(memory, affected, recount) \
        else None
    tenants = memory.desired.tenants if callers is None else tuple(
        Tenant(c, str(config.accounts[c].type)) for c in sorted(callers))
    return DesiredState(tenants, memory.desired.quotas, tuple(pools)), candidates


def _tenants_move(memory: _Memory, affected: set[PoolKey],
                  recount: dict[PoolKey, PoolCount]) -> bool:
    """Whether a caller may gain its first pool or lose its last one."""
    known = {tenant.account for tenant in memory.desired.tenants}
    for key in affected:
        if key[0] not in known or key not in recount:
            return True
    return False


def _pool_id(count: PoolCount) -> str:
    from reconciler.states import pool_id

    return pool_id(count.caller, count.algorithm.owner, count.algorithm.name,
                   count.version.commit)


def _reindex(memory: _Memory, old: list[Reservation], new: list[Reservation],
             new_keys: dict[str, PoolKey], affected: set[PoolKey],
             recount: dict[PoolKey, PoolCount], fresh: dict[str, loader.FileDocs],
             rels: list[str]) -> None:
    for reservation in old:
        memory.res_key.pop(reservation.name, None)
        memory.res_file.pop(reservation.name, None)
    for name, key in new_keys.items():
        memory.res_key[name] = key
    for rel, docs in fresh.items():
        for item in docs.items:
            if isinstance(item, Reservation):
                memory.res_file[item.name] = rel
    for key in affected:
        count = recount.get(key)
        if count is None:
            memory.key_names.pop(key, None)
            memory.by_caller.get(key[0], set()).discard(key)
            memory.by_version.get((key[1], key[2]), set()).discard(key)
            continue
        memory.key_names[key] = {s for s in count.sources if not s.startswith("CapacityLimit/")}
        memory.by_caller.setdefault(key[0], set()).add(key)
        memory.by_version.setdefault((key[1], key[2]), set()).add(key)
