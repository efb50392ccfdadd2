"""Choose how to follow `--repo`: track it with Git, or watch it as a directory.

`make run` points the daemon at config-examples/, a plain subdirectory of the
project's own checkout; tracking that checkout's branch would ignore the
files the user is editing. So a path is tracked with Git only when it is the
top of a clean work tree (or a bare repository); a subdirectory of a work
tree, or a work tree with uncommitted changes, is watched as a directory.
The reason is returned so the daemon can log which mode it chose and why.
"""

from __future__ import annotations

import re
from pathlib import Path

import git

from reconciler.errors import SourceError
from reconciler.sources.base import refuse_untrusted_repository
from reconciler.sources.git import GitSource
from reconciler.sources.watch import DirectorySource

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://|^[\w.-]+@[\w.-]+:")


def is_url(repo: str) -> bool:
    return bool(_URL.match(repo))


def open_source(
    repo: str, *, branch: str, path: str, cache_root: Path
) -> tuple[GitSource | DirectorySource, str]:
    """The source for `--repo`, and a sentence saying why that mode was chosen."""
    if is_url(repo):
        return GitSource(repo, branch=branch, path=path, cache_root=cache_root), "a URL"
    directory = Path(repo).expanduser()
    if not directory.is_dir():
        raise SourceError(f"--repo {repo}: no such directory (and not a URL)")
    directory = directory.resolve()
    try:
        found = git.Repo(directory, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return DirectorySource(directory, path=path), "a directory outside any Git repository"
    with found:
        top = Path(found.working_tree_dir or found.git_dir).resolve()
        if top == directory:  # tracked with Git (a subdirectory is only watched)
            refuse_untrusted_repository(directory, "--repo", fetch=True)
        if found.bare:
            return _git(directory, branch, path, cache_root), "a bare Git repository"
        if top != directory:
            why = f"a subdirectory of the Git work tree {top}, not its top level"
            return DirectorySource(directory, path=path), why
        if found.is_dirty(untracked_files=True):
            why = "a Git work tree with uncommitted changes"
            return DirectorySource(directory, path=path), why
    return _git(directory, branch, path, cache_root), "a clean Git work tree"


def _git(directory: Path, branch: str, path: str, cache_root: Path) -> GitSource:
    return GitSource(str(directory), branch=branch, path=path, cache_root=cache_root)
