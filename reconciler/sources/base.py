"""What a config source hands the daemon: a checked-out directory and its identity.

Two kinds of source exist (a Git repository tracked by clone + fetch, and a
plain directory watched for changes); the daemon loop treats them alike
through `Source.fetch()`, so the loop never knows where files come from.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reconciler.errors import ReconcilerError


def inside_path(path: str, option: str = "--path") -> str:
    """A subdirectory of a repository as a clean relative path (a leading / means the
    top). `..` is refused: its target would be outside the repository."""
    parts = [part for part in path.replace("\\", "/").split("/") if part not in ("", ".")]
    if ".." in parts or "\0" in path:
        raise ReconcilerError(f"{option} {path}: must be a directory inside the repository "
                              f"(without '..')")
    return "/".join(parts)


_UNTRUSTED = ("dubious ownership", "unsafe repository")
_SAFE_HINT = re.compile(r"git config --global --add safe\.directory (\S[^\n]*)")


def refuse_untrusted_repository(directory: Path, option: str, *, fetch: bool = False) -> None:
    """Raise when Git refuses the repository at `directory` because another user owns it
    (git's safe.directory check: a container that mounts a user's checkout runs as
    another uid). GitPython opens such a repository, and the first git command then
    fails with a misleading error ("unknown Git ref", a usage dump). `fetch`: also
    check what a fetch from it runs (upload-pack, which checks the .git directory)."""
    probes = [["git", "-C", str(directory), "rev-parse", "--git-dir"]]
    if fetch:
        probes.append(["git", "ls-remote", "--heads", str(directory)])
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    trust: list[str] = []
    for argv in probes:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL, env=env)
        except (OSError, subprocess.TimeoutExpired):
            return  # no git, or a hung one: the real command reports it
        if done.returncode and any(word in done.stderr for word in _UNTRUSTED):
            trust += [m[1].strip() for m in _SAFE_HINT.finditer(done.stderr)
                      if m[1].strip() not in trust] or [str(directory)]
    if trust:
        commands = " && ".join(f"git config --global --add safe.directory {shlex.quote(path)}"
                               for path in trust)
        raise ReconcilerError(
            f"{option} {directory}: Git refuses this repository: it is owned by another "
            f"user than the one running reconciler (uid {os.geteuid()}; git's "
            f"safe.directory check). Run reconciler as its owner (in a container: "
            f"docker run --user \"$(id -u):$(id -g)\" ...), or trust it: {commands}")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One version of the config, ready to load.

    `config_dir` is where the config's files are (the --path subdirectory of a
    checkout); `root` is the checkout's top (data/ and src/ default below
    `config_dir`). `commit` is the Git commit (None for a plain directory);
    `revision` always identifies the content: the commit, or a content hash."""

    config_dir: Path
    revision: str
    commit: str | None = None

    @property
    def short(self) -> str:
        """A short form for logs and status lines."""
        if self.commit:
            return self.commit[:12]
        return self.revision


class Source(Protocol):
    @property
    def kind(self) -> str:
        """"git" or "directory"."""
        ...

    @property
    def location(self) -> str:
        """The repository URL (credentials removed) or the directory."""
        ...

    @property
    def branch(self) -> str | None: ...

    @property
    def path(self) -> str:
        """The --path subdirectory, "" for the top."""
        ...

    def fetch(self) -> Snapshot:
        """Learn the newest revision (Git: fetch the branch) without changing the
        files the runtime uses. Raises SourceError when it cannot be read (the
        loop retries with backoff)."""
        ...

    def checkout(self, revision: str) -> Snapshot | None:
        """Put a revision's files in `config_dir` (Git: check the commit out), or
        None when the source cannot (a plain directory holds the user's files, and
        only its current content exists)."""
        ...

    def settle(self) -> None:
        """Idle work between passes, so that the next pass does not pay for it (Git:
        bring the checkout's index up to date). Never raises."""
        ...

    def close(self) -> None:
        """Stop any watcher; release resources."""
        ...
