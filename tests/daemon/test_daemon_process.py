"""The real daemon process against real Git repositories, over HTTP, stopped by signals.

Each test starts `python -m reconciler daemon` on a fresh state directory with
the local runtime (the agent runs in the daemon, warm replicas are real
worker processes), drives it with commits, pushes, webhooks and direct
writes to the store, and stops it with SIGTERM: exit 0 and no worker left.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gitops_harness import (
    WORDCOUNT,
    DaemonProcess,
    GitRepo,
    git,
    pools_ready,
    sign,
    write_config,
)

from reconciler.runtimes.local import store as db

pytestmark = pytest.mark.slow
SECRET = "s3cret-for-tests"


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "origin")
    write_config(repo.work)
    repo.commit("one warm replica for erin")
    return repo


def applied(sha: str):
    return lambda s: s["lastAppliedCommit"] == sha


def test_commits_invalid_configs_fixes_and_drift(repo: GitRepo, tmp_path: Path) -> None:
    first = repo.commit("noop", push=False)
    repo.commit("push", push=True)
    daemon = DaemonProcess(["--repo", str(repo.remote), "--interval", "1s", "--resync", "3s"],
                           tmp_path / "state").started()
    try:
        head = daemon.wait_status(lambda s: s["lastAppliedCommit"], 20, "first commit applied")
        assert head["lastAppliedCommit"] != first and head["mode"] == "git"
        daemon.wait_status(lambda s: pools_ready(s, 1), 20, "one warm replica")

        write_config(repo.work, replicas=2)
        scaled = repo.commit("two replicas")
        pushed_at = time.monotonic()
        daemon.wait_status(lambda s: s["lastSeenCommit"] == scaled, 3, "commit seen")
        daemon.wait_status(applied(scaled), 3, "commit applied within an interval")
        assert time.monotonic() - pushed_at < 3.0
        daemon.wait_status(lambda s: pools_ready(s, 2), 20, "two warm replicas")

        write_config(repo.work, replicas=0)
        bad = repo.commit("invalid: zero replicas")
        status = daemon.wait_status(lambda s: (s["lastFailedCommit"] or {}).get("commit") == bad,
                                    5, "failing commit named")
        assert status["lastAppliedCommit"] == scaled
        assert status["lastFailedCommit"]["result"] == "invalid"
        assert "replicas" in status["lastFailedCommit"]["reason"]
        seen = len(status["history"])
        status = daemon.wait_status(lambda s: len(s["history"]) >= seen + 2, 5,
                                    "two more polls of the bad commit")
        assert status["lastAppliedCommit"] == scaled and pools_ready(status, 2)

        write_config(repo.work, replicas=1)
        fixed = repo.commit("fix: one replica")
        daemon.wait_status(applied(fixed), 5, "fixed commit applied")
        daemon.wait_status(lambda s: pools_ready(s, 1), 20, "back to one replica")

        store = db.Store(tmp_path / "state")
        with store.write() as conn:
            conn.execute("DELETE FROM pools")
            db.bump_generation(conn)
        store.close()
        status = daemon.wait_status(lambda s: any(h["drift"] for h in s["history"]), 10,
                                    "drift detected")
        daemon.wait_status(lambda s: pools_ready(s, 1), 20, "drift corrected")
        code, metrics = daemon.get("/metrics")
        assert b"reconciler_drift_detected_total 1.0" in metrics
        assert b'reconciler_passes_total{result="invalid"}' in metrics
        assert b"reconciler_warm_replicas_ready 1.0" in metrics
        assert b"reconciler_warm_pools 1.0" in metrics
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert daemon.workers_seen, "the test saw worker processes"
    assert not (tmp_path / "state" / "daemon.json").exists()


def test_a_restarted_daemon_keeps_the_last_good_commit(repo: GitRepo, tmp_path: Path) -> None:
    """After a restart with a bad head, the last good commit's files are put back."""
    args = ["--repo", str(repo.remote), "--interval", "1s", "--resync", "1h"]
    daemon = DaemonProcess(args, tmp_path / "state").started()
    try:
        good = daemon.wait_status(lambda s: s["lastAppliedCommit"], 20, "first commit applied")
    finally:
        assert daemon.stop() == 0, daemon.output()
    good_model = (repo.work / "src" / "wc.py").read_text()
    write_config(repo.work, replicas=0)
    (repo.work / "src" / "wc.py").write_text("raise SystemExit('bad code')\n")
    bad = repo.commit("invalid: zero replicas, broken code")

    daemon = DaemonProcess(args, tmp_path / "state").started()
    try:
        status = daemon.wait_status(lambda s: (s["lastFailedCommit"] or {}).get("commit") == bad,
                                    20, "the bad head is named")
        assert status["lastAppliedCommit"] == good["lastAppliedCommit"]
        worktrees = list((tmp_path / "state" / "git").glob("*/worktree"))
        assert len(worktrees) == 1
        assert (worktrees[0] / "src" / "wc.py").read_text() == good_model
        daemon.wait_status(lambda s: pools_ready(s, 1), 20, "the good pool keeps serving")
    finally:
        assert daemon.stop() == 0, daemon.output()


def test_webhooks_and_force_pushes(repo: GitRepo, tmp_path: Path) -> None:
    daemon = DaemonProcess(["--repo", str(repo.remote), "--interval", "10m", "--resync", "1h"],
                           tmp_path / "state", env={"RECONCILER_WEBHOOK_SECRET": SECRET})
    daemon.started()
    try:
        first = daemon.wait_status(lambda s: s["lastAppliedCommit"], 20, "first pass")
        base = first["lastAppliedCommit"]
        write_config(repo.work, replicas=2)
        second = repo.commit("two replicas")
        body = json.dumps({"ref": "refs/heads/main", "after": second}).encode()
        headers = {"X-GitHub-Event": "push", "Content-Type": "application/json"}

        for signature in (None, sign("not the secret", body)):
            sent = dict(headers, **({"X-Hub-Signature-256": signature} if signature else {}))
            assert daemon.post_webhook(body, sent) == 401
        time.sleep(0.5)
        assert daemon.status()["lastSeenCommit"] == base, "a refused webhook does nothing"

        sent_at = time.monotonic()
        assert daemon.post_webhook(body, dict(headers, **{
            "X-Hub-Signature-256": sign(SECRET, body)})) == 202
        daemon.wait_status(applied(second), 2, "applied within 2 s of the webhook")
        assert time.monotonic() - sent_at < 2.0

        repo.reset_hard(base)
        write_config(repo.work, replicas=1, cpu="200m")
        rewritten = repo.commit("rewritten history", force=True)
        body = json.dumps({"ref": "refs/heads/main", "after": rewritten, "forced": True}).encode()
        assert daemon.post_webhook(body, dict(headers, **{
            "X-Hub-Signature-256": sign(SECRET, body)})) == 202
        status = daemon.wait_status(applied(rewritten), 5, "the force-push followed")
        assert status["history"][0]["summary"].get("update") or \
            status["history"][0]["summary"].get("scale")
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert SECRET not in daemon.output()


def test_unreachable_remote_backs_off_and_recovers(repo: GitRepo, tmp_path: Path) -> None:
    daemon = DaemonProcess(["--repo", str(repo.remote), "--interval", "1s"],
                           tmp_path / "state", env={"RECONCILER_BACKOFF_MAX": "2s"}).started()
    moved = tmp_path / "moved.git"
    try:
        daemon.wait_status(lambda s: s["lastAppliedCommit"], 20, "first pass")
        shutil.move(repo.remote, moved)
        status = daemon.wait_status(
            lambda s: [h["result"] for h in s["history"][:3]] == ["error"] * 3, 15,
            "three failed fetches")
        assert "cannot fetch" in status["lastFailedCommit"]["reason"]
        assert daemon.get("/healthz")[0] == 200
        shutil.move(moved, repo.remote)
        write_config(repo.work, replicas=2)
        newer = repo.commit("after the outage")
        daemon.wait_status(applied(newer), 10, "recovered")
        assert "retrying in" in daemon.output()
    finally:
        assert daemon.stop(signal.SIGINT) == 0, daemon.output()


def test_sigterm_during_a_pass_stops_cleanly(repo: GitRepo, tmp_path: Path) -> None:
    """A version move waits for the new pool; SIGTERM must not wait the whole timeout."""
    daemon = DaemonProcess(["--repo", str(repo.remote), "--interval", "1s",
                            "--wait-timeout", "5m"], tmp_path / "state").started()
    try:
        daemon.wait_status(lambda s: pools_ready(s, 1), 20, "one warm replica")
        write_config(repo.work, slow_version=True)
        moving = repo.commit("move to 0.2.0, whose replicas warm up slowly")
        daemon.wait_status(lambda s: s["lastSeenCommit"] == moving and s["pools"]["desired"] == 2,
                           10, "the move in progress")
        assert daemon.status()["lastAppliedCommit"] != moving, "the pass is still waiting"
        stopped_at = time.monotonic()
    finally:
        assert daemon.stop(timeout=25) == 0, daemon.output()
    assert time.monotonic() - stopped_at < 15
    assert "deferred" in daemon.output()


def test_a_restart_keeps_a_good_commit_that_changed_nothing(repo: GitRepo, tmp_path: Path) -> None:
    """A applied; B changes only a file no pool uses (its plan is empty: `unchanged`, no
    apply history; a change to an algorithm's code would be a reload); C is invalid.
    Restarted on C, the daemon restores B, not A (STATE/daemon-state.json)."""
    first = git("rev-parse", "HEAD", cwd=repo.work)
    args = ["--repo", str(repo.remote), "--interval", "1s", "--resync", "1h"]
    daemon = DaemonProcess(args, tmp_path / "state").started()
    try:
        daemon.wait_status(applied(first), 20, "A applied")
        notes_b = "# B: notes that no pool uses\n"
        repo.write("src/NOTES.md", notes_b)
        second = repo.commit("B: notes only")
        status = daemon.wait_status(applied(second), 10, "B applied")
        assert status["history"][0]["result"] == "unchanged"
    finally:
        assert daemon.stop() == 0, daemon.output()
    write_config(repo.work, replicas=0)
    repo.write("src/wc.py", "raise SystemExit('bad code')\n")
    bad = repo.commit("C: invalid, broken code")

    daemon = DaemonProcess(args, tmp_path / "state").started()
    try:
        status = daemon.wait_status(lambda s: (s["lastFailedCommit"] or {}).get("commit") == bad,
                                    20, "the bad head is named")
        assert status["lastAppliedCommit"] == second
        worktrees = list((tmp_path / "state" / "git").glob("*/worktree"))
        assert len(worktrees) == 1
        assert (worktrees[0] / "src" / "NOTES.md").read_text() == notes_b
        assert (worktrees[0] / "src" / "wc.py").read_text() == WORDCOUNT
    finally:
        assert daemon.stop() == 0, daemon.output()
    saved = json.loads((tmp_path / "state" / "daemon-state.json").read_text())
    assert saved["lastAppliedCommit"] == second


def test_a_pending_deferred_delete_is_deferred_not_drift(repo: GitRepo, tmp_path: Path) -> None:
    """A version move whose new pool never gets warm (its workers exit in `load`, so the
    daemon also stops quickly): the pass that makes the move is
    `applied`; each later pass only waits for it again: `deferred`, and not drift."""
    daemon = DaemonProcess(["--repo", str(repo.remote), "--interval", "1s", "--resync", "1h",
                            "--wait-timeout", "1s"], tmp_path / "state").started()
    try:
        daemon.wait_status(lambda s: s["lastAppliedCommit"], 20, "first commit applied")
        write_config(repo.work, slow_version=True)
        repo.write("src/wc.py", WORDCOUNT.replace("time.sleep(60)", "raise SystemExit(3)"))
        moving = repo.commit("move to 0.2.0, whose replicas never get warm")
        status = daemon.wait_status(
            lambda s: [h["result"] for h in s["history"] if h["commit"] == moving][:2]
            == ["deferred", "applied"], 20, "the move made, then deferred again")
        assert status["lastAppliedCommit"] == moving
        assert not any(h["drift"] for h in status["history"])
        assert status["history"][0]["summary"].get("delete") == 1
        code, metrics = daemon.get("/metrics")
        assert b"reconciler_drift_detected_total 0.0" in metrics
        assert b'reconciler_passes_total{result="deferred"}' in metrics
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert "drift detected" not in daemon.output()


@pytest.mark.parametrize("state", ["/proc/nope", "/proc"])
def test_an_unusable_state_directory_is_an_error_not_a_traceback(repo: GitRepo,
                                                                 state: str) -> None:
    done = subprocess.run([sys.executable, "-m", "reconciler", "daemon", "--repo",
                           str(repo.remote), "--state", state, "--once"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert state in done.stderr
