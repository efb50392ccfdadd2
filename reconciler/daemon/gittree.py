"""What Git says a commit holds: every file's mode and blob id (`git ls-tree`).

The incremental daemon compares two commits' listings to learn which files
changed without reading any of them, and whether every change is a YAML file
the loader reads (anything else makes the next pass a full one).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from reconciler.config import loader

GIT_TIMEOUT = 60.0
REGULAR_MODES = ("100644", "100755")
Tree = dict[str, tuple[str, str]]  # repository path -> (mode, blob id)


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


def changed_paths(old: Tree, new: Tree) -> set[str]:
    return {path for path in old.keys() | new.keys() if old.get(path) != new.get(path)}


def yaml_changes(changed: set[str], prefix: str, tree: Tree) -> list[str] | None:
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
