"""`reconciler init`: a new config repository that validates, applies and serves at once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from shipkit import ROOT

sys.path.insert(0, str(ROOT / "tests" / "runtime"))

from localkit import kill_all, wait_for, workers_of  # noqa: E402

from reconciler.runtimes.local.agent import Agent  # noqa: E402

pytestmark = pytest.mark.slow
ENV = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}


def reconciler(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd, env=ENV, input="")


@contextmanager
def agent(state: Path) -> Iterator[None]:
    """A real agent on the state; stopped afterwards, and no worker may outlive it."""
    running = Agent(state, poll_interval=0.1, grace=2.0)
    running.start()
    try:
        yield
    finally:
        running.stop()
        left = workers_of(state)
        kill_all(left)
        assert not left, f"worker processes left running: {left}"


def test_init_validates_applies_and_serves_at_once(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)  # a fresh `git init` is fine; DIR defaults to .
    done = reconciler("init", cwd=repo)
    assert done.returncode == 0, done.stderr
    done = reconciler("validate", cwd=repo)
    assert done.returncode == 0 and "5 documents valid" in done.stdout, done.stdout + done.stderr
    done = reconciler("apply", "--auto-approve", cwd=repo)
    assert done.returncode == 0 and "Apply complete: " in done.stdout, done.stdout + done.stderr

    def ready() -> bool:
        status = reconciler("status", "--format", "json", cwd=repo)
        pools = json.loads(status.stdout)["pools"]
        return len(pools) == 1 and pools[0]["ready"] == 1

    with agent(repo / ".reconciler"):
        wait_for(ready, timeout=30, interval=0.2, message="the warm replica of acme/hello")
        done = reconciler("invoke", "--as", "alice", "acme/hello", '{"name": "world"}',
                          cwd=repo)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"message": "Hello, world!"}
    assert done.stderr.startswith("warm, ")


def test_init_refuses_a_non_empty_directory_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    done = reconciler("init", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1 and "is not empty (mine.txt)" in done.stderr
    assert "Traceback" not in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
    done = reconciler("init", str(tmp_path / "mine.txt"), cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr


def test_the_scaffold_has_modelines_the_workflow_and_schemas(tmp_path: Path) -> None:
    repo = tmp_path / "new"
    assert reconciler("init", str(repo), cwd=tmp_path).returncode == 0
    for path in repo.rglob("*.yaml"):
        if ".github" in path.parts or path.name.startswith("."):
            continue
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        target = (path.parent / first.split("=", 1)[1]).resolve()
        assert target.parent == repo / ".schemas" and target.is_file(), (path, target)
    workflow = yaml.safe_load((repo / ".github" / "workflows" / "plan.yml").read_text())
    examples = (ROOT / "config-examples" / ".github" / "workflows" / "plan.yml").read_text()
    assert (repo / ".github" / "workflows" / "plan.yml").read_text() == examples
    uses = [s.get("uses", "") for s in workflow["jobs"]["plan"]["steps"]]
    [checkout] = [s for s in workflow["jobs"]["plan"]["steps"]
                  if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["persist-credentials"] is False  # the job runs on PR content
    assert any(u.endswith("/reconciler@v" + _version()) for u in uses)
    hooks = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text())
    assert [r["rev"] for r in hooks["repos"]] == ["v" + _version()], "pin this release"
    text = "".join(p.read_text() for p in repo.rglob("*") if p.is_file())
    assert not re.search(r"\{\{[A-Z]+\}\}", text), "a template placeholder was left"


def _version() -> str:
    import reconciler

    return reconciler.__version__
