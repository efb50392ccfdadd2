"""A Git repository tracked by clone + fetch, checked out into a private worktree.

The daemon never touches the user's checkout: it keeps its own repository
under the state directory (state_dir/git/<hash of url>/worktree), fetches the
tracked branch with `--force` into a remote-tracking ref and checks out the
fetched commit detached, then `clean -ffdx`. Always using the fetched ref
(never merging) is what makes force-pushes and rewritten history harmless:
the worktree simply moves to whatever the remote branch points at now.
The worktree path stays the same across commits, so the local runtime's
data and code roots (worktree/<path>/data, /src) are stable for its workers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path

import git

from reconciler.errors import SourceError
from reconciler.sources.base import Snapshot, inside_path
from reconciler.sources.credentials import (
    git_environment,
    redact,
    redact_url,
    split_credentials,
)

log = logging.getLogger("reconciler.sources.git")
FETCH_TIMEOUT = 120.0  # seconds; a hung network fetch is killed and retried with backoff


class GitSource:
    """Tracks `branch` of `url` (a URL or a local repository path)."""

    kind = "git"

    def __init__(
        self,
        url: str,
        *,
        branch: str = "main",
        path: str = "",
        cache_root: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.fetch_url = split_credentials(url)[0]  # what git's argv shows: no user:password
        self.branch = branch
        self.path = inside_path(path)
        self.location = redact_url(url)
        self._proc: subprocess.Popen[bytes] | None = None
        self._proc_lock = threading.Lock()
        self._interrupted = False
        self.env = dict(os.environ if env is None else env)
        key = hashlib.sha256(redact_url(url).encode()).hexdigest()[:16]
        self.cache = cache_root / key
        self.worktree = self.cache / "worktree"
        self._repo: git.Repo | None = None
        self._checked_out = False  # since the last settle()

    def fetch(self) -> Snapshot:
        """Fetch the branch; the snapshot of its head (not checked out yet: the
        loop checks out only commits it is going to reconcile).

        git runs with the URL stripped of any user:password (they reach it through
        its environment: credentials.git_environment), in its own process group,
        so interrupt() (the daemon stopping) ends a hung fetch at once."""
        repo = self._open()
        refspec = f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}"
        args = ["git", "fetch", "--force", "--no-tags", "--quiet", self.fetch_url, refspec]
        env = {**os.environ, **git_environment(self.env, self.url)}
        with self._proc_lock:
            if self._interrupted:
                raise SourceError("fetch not started: the daemon is stopping")
            try:
                proc = subprocess.Popen(args, cwd=self.worktree, env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True)
            except OSError as exc:
                raise SourceError(f"cannot run git: {exc.strerror or exc}") from None
            self._proc = proc
        try:
            _, stderr = proc.communicate(timeout=FETCH_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise SourceError(f"fetching {self.location} timed out after "
                              f"{FETCH_TIMEOUT:.0f}s") from None
        finally:
            with self._proc_lock:
                self._proc = None
        if self._interrupted:
            raise SourceError("fetch stopped: the daemon is stopping")
        if proc.returncode != 0:
            raise SourceError(self._fetch_message(stderr.decode("utf-8", "replace"),
                                                  proc.returncode))
        commit = self._resolve(repo, f"refs/remotes/origin/{self.branch}")
        return Snapshot(config_dir=self.config_dir, revision=commit, commit=commit)

    def interrupt(self) -> None:
        """Kill a fetch in progress and refuse new ones (the daemon is stopping)."""
        with self._proc_lock:
            self._interrupted = True
            if self._proc is not None:
                _kill_group(self._proc)

    @property
    def config_dir(self) -> Path:
        return self.worktree / self.path if self.path else self.worktree

    def checkout(self, revision: str) -> Snapshot:
        """Make the worktree exactly `revision` (a fetched commit, the head or an
        earlier one): no local change, no stray file survives."""
        repo = self._open()
        try:
            repo.git.checkout("--detach", "--force", "--quiet", revision)
            repo.git.clean("-ffdxq")
            self._checked_out = True
        except git.GitCommandError as exc:
            raise SourceError(f"cannot check out {revision[:12]}: {_stderr(exc)}") from None
        return Snapshot(config_dir=self.config_dir, revision=revision, commit=revision)

    def settle(self) -> None:
        """Refresh the checkout's index after a checkout. Files written in the same second
        as the index are "racily clean" to Git, so the next checkout hashes every one of
        them again (a quarter of a second at 100,000 reservations, on the pass a webhook
        waits for); refreshed between passes, the index is trusted as it is."""
        if not self._checked_out or self._repo is None:
            return
        self._checked_out = False
        try:
            self._repo.git.update_index("-q", "--refresh")
        except git.GitCommandError as exc:  # only a lost speed-up: the next checkout hashes
            log.debug("could not refresh the index of %s: %s", self.worktree, _stderr(exc))

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    def _open(self) -> git.Repo:
        if self._repo is None:
            try:
                if (self.worktree / ".git").is_dir():
                    self._repo = git.Repo(self.worktree)
                else:
                    self.worktree.mkdir(parents=True, exist_ok=True)
                    self._repo = git.Repo.init(self.worktree)
            except (git.GitError, OSError) as exc:
                raise SourceError(f"cannot prepare the Git cache {self.cache}: {exc}") from None
        return self._repo

    def _resolve(self, repo: git.Repo, ref: str) -> str:
        try:
            return str(repo.git.rev_parse("--verify", f"{ref}^{{commit}}"))
        except git.GitCommandError as exc:
            raise SourceError(f"cannot resolve {ref}: {_stderr(exc)}") from None

    def _fetch_message(self, stderr: str, status: int) -> str:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        text = redact(" | ".join(lines)) or f"git exited with {status}"
        if "couldn't find remote ref" in text:
            return f"branch {self.branch!r} not found in {self.location}"
        return f"cannot fetch branch {self.branch!r} from {self.location}: {text}"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the fetch and every process it started (git-remote-https, ssh)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _stderr(exc: git.GitCommandError) -> str:
    """The useful part of a git failure, redacted, on one line."""
    text = str(exc.stderr or exc).strip()
    if text.startswith("stderr:"):
        text = text[len("stderr:"):].strip()
    lines = [line.strip().strip("'") for line in text.splitlines() if line.strip()]
    return redact(" | ".join(lines)) or f"git exited with {exc.status}"
