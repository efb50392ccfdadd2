"""The loop with a real Git repository and an injected reconcile function.

The reconcile function stands in for the pipeline: it reads `state.yaml` from
the checked-out commit and behaves as the file says (ok, invalid config,
runtime error, or some plan actions), which lets every branch of the loop be
driven by real commits.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from gitops_harness import GitRepo, wait_for

from reconciler.daemon.loop import Loop
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.state import DaemonState, Outcome
from reconciler.errors import ConfigError, Diagnostic, RuntimeFault
from reconciler.sources.base import Snapshot
from reconciler.sources.git import GitSource


class Pipeline:
    """Behaves as the commit's state.yaml says; remembers what it was asked to apply."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.calls: list[str] = []
        self.drift = 0
        self.pending_move = 0

    def __call__(self, snapshot: Snapshot) -> Outcome:
        text = (snapshot.config_dir / "state.yaml").read_text().strip()
        self.calls.append(snapshot.revision)
        if text == "invalid":
            raise ConfigError([Diagnostic("must be >= 1, got 0", "r.yaml", 7, 14,
                                          "spec.replicas")])
        if text == "broken-runtime":
            raise RuntimeFault("database is locked", retryable=True)
        if self.pending_move:  # only the delete of an earlier move, still waiting
            self.pending_move -= 1
            self.applied.append(snapshot.revision)
            return Outcome("deferred", {"delete": 1}, deferred=1, moves=1)
        if self.drift:
            self.drift -= 1
            self.applied.append(snapshot.revision)
            return Outcome("applied", {"create": 1})
        self.applied.append(snapshot.revision)
        return Outcome("unchanged", {"create": 0}, pools={"desired": 2, "ready": 1, "items": []})


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "origin")
    repo.write("state.yaml", "ok 1\n")
    repo.commit("first")
    return repo


@contextmanager
def looping(source: GitSource, pipeline: Pipeline, interval: float) -> Iterator[Loop]:
    """A loop running in a thread, stopped (and joined) at the end of the block."""
    state = DaemonState(repo=source.location, branch="main", path="", mode="git")
    loop = Loop(source, pipeline, state, Metrics(), interval=interval, resync=3600,
                backoff_max=0.4)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.stop()
        thread.join(5)
    assert not thread.is_alive()


@pytest.fixture
def running(repo: GitRepo, tmp_path: Path) -> Iterator[tuple[Loop, Pipeline, GitRepo]]:
    pipeline = Pipeline()
    with looping(GitSource(str(repo.remote), cache_root=tmp_path / "cache"), pipeline,
                 0.2) as loop:
        yield loop, pipeline, repo


def status(loop: Loop) -> dict:
    return loop.state.to_json()


def test_a_new_commit_is_applied_within_an_interval(running) -> None:
    loop, pipeline, repo = running
    wait_for(lambda: status(loop)["ready"], 5, "first pass")
    repo.write("state.yaml", "ok 2\n")
    sha = repo.commit("second")
    wait_for(lambda: status(loop)["lastAppliedCommit"] == sha, 2, "new commit applied")
    doc = status(loop)
    assert doc["lastSeenCommit"] == sha and doc["pools"]["desired"] == 2
    assert doc["history"][0]["commit"] == sha and doc["history"][0]["result"] == "unchanged"


def test_an_invalid_commit_is_never_applied_and_not_retried(running, tmp_path: Path) -> None:
    loop, pipeline, repo = running
    good = wait_for(lambda: status(loop)["lastAppliedCommit"], 5, "first pass")
    repo.write("state.yaml", "invalid\n")
    bad = repo.commit("bad")
    failed = wait_for(lambda: status(loop)["lastFailedCommit"], 3, "failure recorded")
    assert failed["commit"] == bad and failed["result"] == "invalid"
    assert failed["reason"] == "r.yaml:7:14: spec.replicas: must be >= 1, got 0"
    calls = len(pipeline.calls)
    wait_for(lambda: sum(h["result"] == "skipped" for h in status(loop)["history"]) >= 3, 5,
             "skipped passes")
    assert len(pipeline.calls) == calls, "a known-bad commit is not reconciled again"
    assert status(loop)["lastAppliedCommit"] == good
    worktree = loop.source.config_dir  # type: ignore[attr-defined]
    assert (worktree / "state.yaml").read_text() == "ok 1\n", "last good files restored"

    repo.write("state.yaml", "ok 3\n")
    fixed = repo.commit("fix")
    wait_for(lambda: status(loop)["lastAppliedCommit"] == fixed, 3, "fixed commit applied")


def test_runtime_errors_back_off_and_a_newer_commit_wins(running) -> None:
    loop, pipeline, repo = running
    wait_for(lambda: status(loop)["ready"], 5, "first pass")
    repo.write("state.yaml", "broken-runtime\n")
    broken = repo.commit("runtime trouble")
    wait_for(lambda: [h["result"] for h in status(loop)["history"][:3]] == ["error"] * 3, 5,
             "three retries")
    assert status(loop)["lastFailedCommit"]["reason"] == "database is locked"
    assert status(loop)["lastFailedCommit"]["commit"] == broken
    repo.write("state.yaml", "ok 4\n")
    newer = repo.commit("newer")
    wait_for(lambda: status(loop)["lastAppliedCommit"] == newer, 3, "newer commit on retry")
    wait_for(lambda: loop.backoff.failures == 0, 2, "the backoff reset after the good pass")


def test_trigger_runs_a_pass_at_once_and_drift_is_counted(repo: GitRepo, tmp_path: Path) -> None:
    source = GitSource(str(repo.remote), cache_root=tmp_path / "cache")
    pipeline = Pipeline()
    state = DaemonState(repo="r", branch="main", path="", mode="git")
    metrics = Metrics()
    metrics.bind_state(state.to_json)
    loop = Loop(source, pipeline, state, metrics, interval=3600, resync=3600)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: state.to_json()["ready"], 5, "first pass")
        pipeline.drift = 1
        loop.trigger("webhook")
        wait_for(lambda: len(state.to_json()["history"]) == 2, 2, "triggered pass")
        entry = state.to_json()["history"][0]
        assert entry["trigger"] == "webhook" and entry["drift"] is True
        text = metrics.render().decode()
        assert "reconciler_drift_detected_total 1.0" in text
        assert 'reconciler_plan_actions_total{op="create"} 1.0' in text
        assert 'reconciler_passes_total{result="applied"} 1.0' in text
        assert "reconciler_warm_replicas_reserved 2.0" in text
    finally:
        loop.stop()
        thread.join(5)


def test_a_pass_that_only_waits_for_a_move_is_deferred_not_drift(repo: GitRepo,
                                                                 tmp_path: Path) -> None:
    source = GitSource(str(repo.remote), cache_root=tmp_path / "cache")
    pipeline = Pipeline()
    state = DaemonState(repo="r", branch="main", path="", mode="git")
    metrics = Metrics()
    loop = Loop(source, pipeline, state, metrics, interval=3600, resync=3600)
    good = loop.run_pass("start").commit
    pipeline.pending_move = 1
    record = loop.run_pass("poll")
    assert (record.result, record.commit, record.drift) == ("deferred", good, False)
    assert state.to_json()["lastAppliedCommit"] == good
    text = metrics.render().decode()
    assert "reconciler_drift_detected_total 0.0" in text
    assert 'reconciler_passes_total{result="deferred"} 1.0' in text
    assert re.findall(r"^reconciler_plan_actions_total\{.*\} (\S+)$", text, re.M) == \
        ["0.0"] * 5  # nothing was done


def test_resync_reapplies_the_last_good_commit_while_head_is_bad(repo: GitRepo,
                                                                tmp_path: Path) -> None:
    source = GitSource(str(repo.remote), cache_root=tmp_path / "cache")
    pipeline = Pipeline()
    state = DaemonState(repo="r", branch="main", path="", mode="git")
    loop = Loop(source, pipeline, state, Metrics(), interval=3600, resync=3600)
    good = loop.run_pass("start").commit
    repo.write("state.yaml", "invalid\n")
    repo.commit("bad")
    assert loop.run_pass("poll").result == "invalid"
    assert loop.run_pass("poll").result == "skipped"
    record = loop.run_pass("resync")
    assert (record.result, record.commit) == ("unchanged", good)
    assert pipeline.applied[-1] == good


def test_an_unreachable_remote_keeps_the_loop_alive(tmp_path: Path) -> None:
    source = GitSource(str(tmp_path / "gone.git"), cache_root=tmp_path / "cache")
    state = DaemonState(repo="r", branch="main", path="", mode="git")
    loop = Loop(source, Pipeline(), state, Metrics(), interval=3600, resync=3600)
    record = loop.run_pass("start")
    assert record.result == "error" and "cannot fetch" in (record.error or "")
    assert state.to_json()["ready"] is True


def test_backoff_doubles_from_one_second_up_to_the_cap(tmp_path: Path) -> None:
    source = GitSource(str(tmp_path / "gone.git"), cache_root=tmp_path / "cache")
    state = DaemonState(repo="r", branch="main", path="", mode="git")
    loop = Loop(source, Pipeline(), state, Metrics(), backoff_max=5.0)
    assert [loop.backoff.next() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    loop.backoff.reset()
    assert loop.backoff.next() == 1.0


def test_the_source_settles_after_every_pass(repo: GitRepo, tmp_path: Path) -> None:
    class Settling(GitSource):
        settled: list[int] = []

        def settle(self) -> None:
            self.settled.append(len(pipeline.calls))
            super().settle()

    source = Settling(str(repo.remote), cache_root=tmp_path / "cache")
    pipeline = Pipeline()
    with looping(source, pipeline, 0.1):
        wait_for(lambda: len(Settling.settled) >= 2, 5, "two passes settled")
    assert Settling.settled[:2] == [1, 2], "settled after each pass, before the next"
