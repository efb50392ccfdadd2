"""A checkout owned by another user, as the image meets it: `docker run -v "$PWD:/repo"`
mounts the user's checkout (their uid) into a container that runs as 10001, and Git
refuses such a repository (safe.directory). `diff` said "unknown Git ref 'HEAD'" and
`daemon --repo /repo` died with a traceback of a git usage dump; both now name the cause
and the commands that fix it, and follow that advice once taken.

Real processes on a real repository; chown needs root (the tests run as root here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from shipkit import ROOT

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: to give the repository to another uid")
OTHER_UID = 4242


def env(home: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("RECONCILER_", "GIT_"))}
    return {**clean, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "NO_COLOR": "1",
            "RECONCILER_NO_CACHE": "1"}


def reconciler(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True,
                          text=True, env=env(home), cwd=home, timeout=120)


def someone_elses_checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "checkout"
    shutil.copytree(ROOT / "config-examples", repo)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@example.test", "commit", "-qm", "c"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                       env=env(tmp_path))
    for directory, dirs, files in os.walk(repo):
        for name in [directory, *(os.path.join(directory, n) for n in dirs + files)]:
            os.lchown(name, OTHER_UID, OTHER_UID)
    return repo


def trust(home: Path, path: str) -> None:
    subprocess.run(["git", "config", "--global", "--add", "safe.directory", path],
                   check=True, env=env(home))


def test_diff_and_daemon_name_gits_ownership_check_and_its_fix(tmp_path: Path) -> None:
    repo = someone_elses_checkout(tmp_path)
    home = tmp_path / "home"
    home.mkdir()

    diff = reconciler(home, "diff", "main", "HEAD", "--repo", str(repo))
    text = diff.stdout + diff.stderr
    assert diff.returncode == 1 and "Traceback" not in text, text
    assert "owned by another user" in text and "unknown Git ref" not in text, text
    assert f"git config --global --add safe.directory {repo}" in text, text

    daemon = reconciler(home, "daemon", "--repo", str(repo), "--state", str(home / "state"),
                        "--listen", "127.0.0.1:0", "--once")
    text = daemon.stdout + daemon.stderr
    assert daemon.returncode == 1 and "Traceback" not in text, text
    assert "owned by another user" in text, text
    # a fetch from it checks the .git directory too: the advice names both
    assert f"safe.directory {repo} && git config --global --add safe.directory {repo}/.git" \
        in text, text

    trust(home, str(repo))
    diff = reconciler(home, "diff", "main", "HEAD", "--repo", str(repo))
    assert diff.returncode == 0 and "no changes" in diff.stdout.lower(), diff.stderr
    trust(home, f"{repo}/.git")
    daemon = reconciler(home, "daemon", "--repo", str(repo), "--state", str(home / "state"),
                        "--listen", "127.0.0.1:0", "--once")
    assert daemon.returncode == 0, daemon.stdout + daemon.stderr


def test_a_subdirectory_of_such_a_checkout_is_still_watched(tmp_path: Path) -> None:
    """Watch mode reads files only: Git's ownership check does not concern it."""
    from reconciler.sources import DirectorySource, open_source

    repo = someone_elses_checkout(tmp_path)
    source, why = open_source(str(repo / "accounts"), branch="main", path="",
                              cache_root=tmp_path / "cache")
    assert isinstance(source, DirectorySource) and "not its top level" in why
