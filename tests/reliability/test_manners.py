"""Manners of the CLI (issue 10 item 12, the parts outside the worker and the agent).

apply without a terminal and without --auto-approve refuses, as Terraform
does; apply --plan FILE never prompts (the saved plan is the approval);
diff --path cannot leave the repository; plan and status work on a
read-only state directory; status on a missing state directory is an error.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from configkit import write_config
from relkit import EXAMPLES, clean, cli, env, pools_in, readable_by_all, unprivileged

pytestmark = pytest.mark.slow


def test_apply_without_a_terminal_asks_for_auto_approve(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    state = tmp_path / "state"
    done = cli("apply", str(config), "--state", str(state))
    assert done.returncode == 1
    assert "pass --auto-approve" in clean(done) and "nothing was applied" in done.stderr
    assert pools_in(state) == {}


def test_apply_of_a_saved_plan_never_prompts(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    state, plan_file = tmp_path / "state", tmp_path / "plan.json"
    assert cli("plan", str(config), "--state", str(state), "--out", str(plan_file)) \
        .returncode == 0
    controller, terminal = pty.openpty()  # stdin IS a terminal: nothing answers a prompt
    try:
        done = subprocess.run([sys.executable, "-m", "reconciler", "apply", "--plan",
                               str(plan_file), "--state", str(state)], stdin=terminal,
                              capture_output=True, text=True, timeout=30, env=env())
    finally:
        os.close(terminal)
        os.close(controller)
    assert done.returncode == 0, clean(done)
    assert "Apply these changes?" not in done.stdout + done.stderr
    assert list(pools_in(state)) == ["alice.acme.adder.aaaaaaaaaaaa"]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**env(), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"})


def test_diff_path_cannot_leave_the_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo / "platform")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    (repo / "platform" / "reservations" / "erin.yaml").unlink()
    git(repo, "commit", "-q", "-am", "head")
    inside = cli("diff", "HEAD~1", "HEAD", "--repo", str(repo), "--path", "platform")
    assert inside.returncode == 0 and "delete WarmPool erin" in clean(inside)
    for path in ("../base/platform", "platform/../../base/platform"):
        done = cli("diff", "HEAD~1", "HEAD", "--repo", str(repo), "--path", path)
        assert done.returncode == 1, clean(done)
        assert "must be a directory inside the repository" in clean(done)


def test_plan_and_status_work_on_a_read_only_state(open_tmp: Path) -> None:
    as_other = unprivileged()
    config = Path(shutil.copytree(EXAMPLES, open_tmp / "config"))
    state = open_tmp / "state"
    assert cli("apply", str(config), "--state", str(state), "--auto-approve").returncode == 0
    readable_by_all(open_tmp)
    before = {p.name: p.stat().st_mtime_ns for p in state.iterdir()}
    if not as_other:
        os.chmod(state, 0o555)
    try:
        status = cli("status", "--state", str(state), "--format", "json", prefix=as_other)
        # exit 1 only because no agent runs here: the pools are read, none is ready
        assert status.returncode == 1 and "agent is not running" in status.stderr, clean(status)
        assert '"pools"' in status.stdout and len(pools_in(state)) == 8
        planned = cli("plan", str(config), "--state", str(state), "--detailed-exitcode",
                      prefix=as_other)
        assert planned.returncode == 0, clean(planned)
        assert "No changes" in planned.stdout
    finally:
        os.chmod(state, 0o755)
    assert {p.name: p.stat().st_mtime_ns for p in state.iterdir()} == before


def test_status_of_a_missing_state_is_an_error(tmp_path: Path) -> None:
    done = cli("status", "--state", str(tmp_path / "typo"))
    assert done.returncode == 1
    assert "no such state directory" in clean(done) and "No warm pools" not in done.stdout
    assert not (tmp_path / "typo").exists()


def test_a_store_this_user_may_not_read_is_named_with_the_reason(open_tmp: Path) -> None:
    """It said "local store: unable to open database file"."""
    as_other = unprivileged()
    if not as_other:
        pytest.skip("needs root to make a store another user cannot read")
    config = write_config(open_tmp / "config")
    state = open_tmp / "state"
    assert cli("apply", str(config), "--state", str(state), "--auto-approve").returncode == 0
    readable_by_all(open_tmp)
    os.chmod(state / "state.db", 0o600)
    for args in (["status"], ["plan", str(config)]):
        done = cli(*args, "--state", str(state), prefix=as_other)
        assert done.returncode == 1, clean(done)
        assert f"cannot read the local store {state}/state.db: permission denied" in done.stderr
