"""The daemon's memory between passes: a commit costs what it changed.

The daemon keeps the last valid config in memory: each file's parsed,
validated and built documents (by Git blob id), the config, its compiled
desired state, an index of which reservations make which pool, and the live
state it left behind (with the runtime's revision). On a new commit it asks
Git which files changed (`git ls-tree`, blob ids: reconciler.daemon.gittree) and:

- nothing changed: the config and desired state are reused;
- only YAML files under the config directory changed, and every document in
  them (before and after) is a Reservation that validates, resolves and is
  allowed: only those files are read again, only the pools their
  reservations count into are recounted and recompiled, only the limits of
  those callers and versions are checked, and the plan compares only those
  pools with the live state (reconciler.daemon.narrow);
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
from pathlib import Path
from typing import Any

from reconciler.config import code, loader
from reconciler.config.model import Config
from reconciler.daemon.gittree import Tree, changed_paths, git_tree, yaml_changes
from reconciler.daemon.narrow import Loaded, Memory, carry, index, reservations_only
from reconciler.desired import compile_config
from reconciler.errors import ConfigError, Diagnostic, Severity
from reconciler.plan.capacity import Totals, totals
from reconciler.plan.fingerprint import RowCache
from reconciler.states import DesiredState, LiveState

log = logging.getLogger("reconciler.daemon.incremental")


class Incremental:
    """Loads each commit into a config and desired state, reusing the last pass's."""

    def __init__(self, cache_dir: Path | None, *, code_root: Path | None = None,
                 code_digests: bool = True) -> None:
        """`code_root`, `code_digests`: as loader.check_config takes them."""
        self.cache_dir = cache_dir
        self.code_root, self.code_digests = code_root, code_digests
        self.rows = RowCache()
        self._memory: Memory | None = None
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
        changed = changed_paths(memory.tree, tree)
        if not changed and self._code_same(memory, config_dir):
            config = carry(memory.config, dataclasses.replace(memory.config, commit=commit))
            memory.config, memory.commit, memory.tree = config, commit or "", tree
            return Loaded(config, memory.diags, memory.desired, set(), "unchanged",
                          memory.sums)
        rels = yaml_changes(changed, prefix, tree) if changed else []
        if rels is None:  # code, data or anything unclassified changed: read everything
            files = loader.read_files(config_dir, self.cache_dir)
            return self._check_all(config_dir, commit, listing, files, "full")
        real_root = os.path.realpath(config_dir)
        fresh = {rel: loader.read_file(config_dir / rel, rel, real_root, None)
                 for rel in rels if (config_dir / rel).is_file()}
        try:
            loaded = reservations_only(memory, rels, fresh, commit) \
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
            memory = Memory(config_dir, commit or "", listing[0], listing[1], files, config,
                             diags, desired, sums)
            memory.code = self._code(config, config_dir)
            index(memory)
            self._memory = memory
        return Loaded(config, diags, desired, None, how, sums)

    def _code(self, config: Config, config_dir: Path) -> tuple[list[Diagnostic], dict[str, str]]:
        root = Path(self.code_root) if self.code_root else config_dir / "src"
        return code.check_code(config.algorithms.values(), root)

    def _code_same(self, memory: Memory, config_dir: Path) -> bool:
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



