"""The pre-commit hook `reconciler-validate`, through `pre-commit try-repo`.

The hook is `language: python`: pre-commit installs the hook repository (reconciler and
its pinned dependencies) into an environment of its own, from PyPI. The hook repository
here is a committed copy of what a clone would hold (the build's sources and
.pre-commit-hooks.yaml), so both runs use one environment. Installing it needs PyPI; if
this machine cannot reach it, the test is skipped and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from shipkit import ROOT, build_context

pytestmark = pytest.mark.slow
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"
NETWORK = ("Could not find a version", "No matching distribution", "NewConnectionError",
           "Temporary failure in name resolution", "Network is unreachable")


def git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.test",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.test"}
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def repo_of(path: Path) -> Path:
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def try_repo(hooks: Path, config: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "NO_COLOR": "1"}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run([str(PRE_COMMIT), "try-repo", str(hooks), "reconciler-validate",
                           "--all-files", "--color", "never"], cwd=config, env=env,
                          capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    if done.returncode != 0 and "An unexpected error has occurred" in output and any(
            word in output + _log(home) for word in NETWORK):
        pytest.skip("pre-commit could not install the hook's environment from PyPI "
                    f"(no network?):\n{output[-2000:]}")
    return done


def _log(home: Path) -> str:
    log = home / "pre-commit.log"
    return log.read_text(errors="replace") if log.exists() else ""


def test_the_hook_validates_the_whole_repository_and_reports_each_error(
        tmp_path: Path) -> None:
    """One run (each try-repo installs the hook's environment afresh, ~30 s): a config
    repository with one typo; the hook fails with exactly that error, so it checked the
    whole repository, found the rest valid and left the hidden files alone."""
    if not PRE_COMMIT.exists():
        pytest.skip("pre-commit is not installed (pip install -e '.[test]')")
    hooks = build_context(tmp_path / "reconciler")
    shutil.copy2(ROOT / ".pre-commit-hooks.yaml", hooks / ".pre-commit-hooks.yaml")
    repo_of(hooks)
    config = tmp_path / "platform-config"
    shutil.copytree(ROOT / "config-examples", config)
    (config / ".pre-commit-config.yaml").write_text(
        "repos:\n  - repo: https://example.test/reconciler\n    rev: v0\n"
        "    hooks: [{id: reconciler-validate}]\n")  # a hidden file: not read as config
    path = config / "reservations" / "erin.yaml"
    path.write_text(path.read_text().replace("replicas: 1", "replicsa: 1"))
    repo_of(config)

    done = try_repo(hooks, config, tmp_path / "pre-commit-home")
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"^reconciler validate\.+Failed$", done.stdout, re.MULTILINE)
    assert "reservations/erin.yaml:10:3: spec.replicsa: unknown field" in done.stdout
    assert "spec.replicas: missing required field" in done.stdout
    assert "✗ 2 errors in 1 file" in done.stdout, done.stdout
