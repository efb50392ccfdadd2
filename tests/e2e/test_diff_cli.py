"""`reconciler diff BASE HEAD` on real repositories: the pull-request comment's plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
from gitops_harness import GIT_ENV, GitRepo, git, write_config  # noqa: E402

pytestmark = pytest.mark.slow


def diff(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", "diff", *args],
                          cwd=repo, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV, "NO_COLOR": "1"}, timeout=60)


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "r")
    write_config(repo.work / "platform")
    repo.write("README.md", "monorepo\n")
    repo.commit("base", push=False)
    return repo


def test_a_change_is_planned_between_two_commits(repo: GitRepo) -> None:
    write_config(repo.work / "platform", replicas=3)
    repo.commit("three replicas", push=False)
    (repo.work / "platform" / "scratch.yaml").write_text("not: committed\n")
    before = git("status", "--porcelain", cwd=repo.work), git("worktree", "list", cwd=repo.work)

    done = diff(repo.work, "HEAD~1", "HEAD", "--path", "platform", "--format", "json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["summary"]["scale"] == 1 and plan["runtime"] == "diff"
    [action] = plan["actions"]
    assert action["replicas"] == {"before": 1, "after": 3}
    assert plan["source"]["commit"] == git("rev-parse", "HEAD", cwd=repo.work)
    assert (git("status", "--porcelain", cwd=repo.work),
            git("worktree", "list", cwd=repo.work)) == before, "the checkout is untouched"

    detailed = diff(repo.work, "HEAD~1", "HEAD", "--path", "platform", "--detailed-exitcode",
                    "--format", "markdown")
    assert detailed.returncode == 2, detailed.stderr
    assert "erin/wc" in detailed.stdout
    text = diff(repo.work, "HEAD", "HEAD", "--path", "platform", "--detailed-exitcode")
    assert text.returncode == 0 and "No changes" in text.stdout


def test_an_invalid_head_fails_with_its_diagnostics(repo: GitRepo) -> None:
    write_config(repo.work / "platform", replicas=0)
    repo.commit("zero replicas", push=False)
    done = diff(repo.work, "HEAD~1", "HEAD", "--path", "platform")
    assert done.returncode == 1
    assert "reservations/erin.yaml" in done.stderr and "replicas" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_invalid_base_is_planned_against_as_empty(repo: GitRepo) -> None:
    write_config(repo.work / "platform", replicas=0)
    repo.commit("broken", push=False)
    write_config(repo.work / "platform", replicas=1)
    repo.commit("fixed", push=False)
    done = diff(repo.work, "HEAD~1", "HEAD", "--path", "platform", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert "warning: base HEAD~1" in done.stderr
    assert json.loads(done.stdout)["summary"]["create"] >= 2  # tenant and pool


def test_unknown_refs_and_non_repositories_are_user_errors(repo: GitRepo, tmp_path: Path) -> None:
    done = diff(repo.work, "nope", "HEAD")
    assert done.returncode == 1 and "unknown Git ref 'nope'" in done.stderr
    plain = tmp_path / "plain"
    plain.mkdir()
    done = diff(plain, "HEAD~1", "HEAD")
    assert done.returncode == 1 and "not a Git repository" in done.stderr


def test_links_that_leave_the_tree_are_skipped_with_a_warning(repo: GitRepo) -> None:
    write_config(repo.work / "platform", replicas=3)
    (repo.work / "platform" / "passwd.yaml").symlink_to("/etc/passwd")
    (repo.work / "platform" / "up").symlink_to("../../../../../etc")
    (repo.work / "elsewhere").symlink_to("/etc")  # outside --path: skipped silently
    repo.commit("links", push=False)

    done = diff(repo.work, "HEAD~1", "HEAD", "--path", "platform", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: skipped the symbolic link platform/passwd.yaml -> /etc/passwd: it points "
        "outside the repository",
        "warning: skipped the symbolic link platform/up -> ../../../../../etc: it points "
        "outside the repository"]
    assert json.loads(done.stdout)["summary"]["scale"] == 1
