"""`reconciler plan` end to end: real YAML repos, the real local runtime, a subprocess CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("reconciler.runtimes.local.runtime")

from reconciler.errors import StalePlan  # noqa: E402
from reconciler.pipeline import load_plan_file  # noqa: E402
from reconciler.plan import check_fresh  # noqa: E402

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40
DIGEST = "sha256:" + "0" * 64

ALGORITHM = """\
apiVersion: reconciler/v1
kind: Algorithm
metadata: {{name: sentiment}}
spec:
  owner: acme
  processor: cpu
  resources: {{cpu: "1", memory: 512Mi}}
  image: registry.example/acme/sentiment
  entrypoint: sentiment:apply
  versions:
    - commit: {a}
      version: 1.2.0
      visibility: public
      compiledAt: "2026-11-01T10:00:00Z"
      model: {{path: data://acme/sentiment/m.json, digest: "{digest}"}}
    - commit: {b}
      version: 1.3.0
      visibility: {visibility}
      compiledAt: "2026-11-02T10:00:00Z"
      model: {{path: data://acme/sentiment/m.json, digest: "{digest}"}}
"""


def reservation(name: str, caller: str, replicas: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: reconciler/v1
        kind: Reservation
        metadata: {{name: {name}}}
        spec: {{caller: {caller}, algorithm: acme/sentiment, versionType: latest-public,
                replicas: {replicas}}}
        """)


def write_repo(root: Path, *, replicas: int = 2, bob: bool = True, visibility: str = "private",
               cpu: str = "8") -> Path:
    (root / "accounts").mkdir(parents=True, exist_ok=True)
    (root / "accounts" / "all.yaml").write_text(textwrap.dedent("""\
        apiVersion: reconciler/v1
        kind: Account
        metadata: {name: acme}
        spec: {type: organization, members: [alice]}
        ---
        apiVersion: reconciler/v1
        kind: Account
        metadata: {name: alice}
        spec: {type: user}
        ---
        apiVersion: reconciler/v1
        kind: Account
        metadata: {name: bob}
        spec: {type: user}
        """))
    (root / "algorithm.yaml").write_text(ALGORITHM.format(a=COMMIT_A, b=COMMIT_B, digest=DIGEST,
                                                          visibility=visibility))
    docs = [reservation("alice-sentiment", "alice", replicas)]
    if bob:
        docs.append(reservation("bob-sentiment", "bob", 1))
    (root / "reservations.yaml").write_text("---\n".join(docs))
    (root / "settings.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: reconciler/v1
        kind: Settings
        metadata: {{name: settings}}
        spec:
          local:
            nodes:
              - {{name: local-cpu, processor: cpu, cpu: "{cpu}", memory: 16Gi, pods: 32}}
        """))
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_repo(tmp_path / "repo")


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", RECONCILER_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("RECONCILER_STATE", None)
    result = subprocess.run([sys.executable, "-m", "reconciler", "plan", *args],
                            capture_output=True, text=True, env=env, timeout=60)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def apply_in_process(state: Path, plan_file: Path) -> None:
    """Write a saved plan into the local store (what `apply --plan` does, minus waiting)."""
    from reconciler.runtimes.local.runtime import LocalRuntime

    runtime = LocalRuntime(state)
    try:
        for action in load_plan_file(plan_file).actions:
            runtime.apply(action)
    finally:
        runtime.close()


def test_plan_on_a_fresh_state_shows_creates(tmp_path, repo):
    state = tmp_path / "state"
    result = run(tmp_path, str(repo), "--state", str(state))
    assert result.returncode == 0, result.stderr
    assert "+ create WarmPool alice.acme.sentiment.aaaaaaaaaaaa  acme/sentiment 1.2.0  " \
           "replicas 2" in result.stdout
    assert "    reservation alice-sentiment (latest-public -> 1.2.0)" in result.stdout
    assert "Plan: 4 to create, 0 to scale, 0 to reload, 0 to update, 0 to delete." \
        in result.stdout
    assert "\x1b[" not in result.stdout
    assert run(tmp_path, str(repo), "--state", str(state),
               "--detailed-exitcode").returncode == 2


def test_json_format_and_out_file(tmp_path, repo):
    out = tmp_path / "plans" / "plan.json"
    result = run(tmp_path, str(repo), "--state", str(tmp_path / "s"), "--format", "json",
                 "--out", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["formatVersion"] == 1 and data["runtime"] == "local"
    assert data["summary"] == {"create": 4, "scale": 0, "reload": 0, "update": 0, "delete": 0}
    assert data["source"] == {"path": str(repo), "commit": None}
    action = next(a for a in data["actions"] if a["kind"] == "WarmPool")
    assert action["changes"] == [{"path": "replicas", "before": None, "after": 2}]
    assert json.loads(out.read_text()) == data


def test_markdown_format(tmp_path, repo):
    result = run(tmp_path, str(repo), "--state", str(tmp_path / "s"), "--format", "markdown")
    assert result.returncode == 0
    assert "| create | scale | reload | update | delete |" in result.stdout
    assert "<details><summary>alice: pools 0 → 1 · engines 0 → 2" in result.stdout
    assert "<!-- reconciler: part" not in result.stdout  # a single part has no marker


def test_invalid_config_exits_1_with_the_place(tmp_path, repo):
    (repo / "reservations.yaml").write_text(reservation("x", "alice", 0))
    result = run(tmp_path, str(repo), "--state", str(tmp_path / "s"))
    assert result.returncode == 1
    assert "reservations.yaml:" in result.stderr and "replicas" in result.stderr


def test_capacity_refusal_exits_1_and_names_the_pool(tmp_path):
    repo = write_repo(tmp_path / "repo", replicas=3, cpu="2")
    result = run(tmp_path, str(repo), "--state", str(tmp_path / "s"), "--detailed-exitcode")
    assert result.returncode == 1
    assert "Error: pool alice.acme.sentiment.aaaaaaaaaaaa needs 1 CPU per replica; " \
           "1 of 3 replicas does not fit: 2 CPU allocatable on cpu nodes, 4 needed" \
        in result.stdout
    json_run = run(tmp_path, str(repo), "--state", str(tmp_path / "s"), "--format", "json")
    assert json_run.returncode == 1 and json.loads(json_run.stdout)["applyable"] is False
    assert "error: pool alice" in json_run.stderr


def test_applied_plan_then_no_changes_then_moves_and_mass_delete(tmp_path, repo):
    state = tmp_path / "state"
    plan_file = tmp_path / "plan.json"
    assert run(tmp_path, str(repo), "--state", str(state), "--out", str(plan_file)).returncode == 0
    apply_in_process(state, plan_file)
    again = run(tmp_path, str(repo), "--state", str(state), "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes. The runtime matches the configuration." in again.stdout

    write_repo(repo, visibility="public")  # 1.3.0 published: latest-public moves
    moved = run(tmp_path, str(repo), "--state", str(state), "--detailed-exitcode")
    assert moved.returncode == 2
    assert "- delete WarmPool alice.acme.sentiment.aaaaaaaaaaaa" in moved.stdout
    assert "waits until pool alice.acme.sentiment.bbbbbbbbbbbb is ready" in moved.stdout
    assert moved.stdout.index("+ create WarmPool alice.acme.sentiment.bbbbbbbbbbbb") < \
        moved.stdout.index("- delete WarmPool alice.acme.sentiment.aaaaaaaaaaaa")

    write_repo(repo, bob=False)
    (repo / "reservations.yaml").unlink()
    refused = run(tmp_path, str(repo), "--state", str(state))
    assert refused.returncode == 1
    assert "the configuration has no warm pools: this plan would delete all 2 live pools; " \
           "pass --allow-mass-delete" in refused.stdout
    allowed = run(tmp_path, str(repo), "--state", str(state), "--allow-mass-delete")
    assert allowed.returncode == 0 and "Warning:" in allowed.stdout


def stale_plan(tmp_path, repo):
    """(state, plan file) where the plan file is stale: it was saved for replicas 3
    after replicas 2 were applied, then a plan for replicas 4 was applied over it."""
    state = tmp_path / "state"
    first, stale, newer = (tmp_path / f"{name}.json" for name in ("first", "stale", "newer"))
    assert run(tmp_path, str(repo), "--state", str(state), "--out", str(first)).returncode == 0
    apply_in_process(state, first)
    write_repo(repo, replicas=3)
    assert run(tmp_path, str(repo), "--state", str(state), "--out", str(stale)).returncode == 0
    write_repo(repo, replicas=4)
    assert run(tmp_path, str(repo), "--state", str(state), "--out", str(newer)).returncode == 0
    apply_in_process(state, newer)  # someone applied replicas 4 in between
    return state, stale


def test_saved_plan_goes_stale_when_the_live_state_moves(tmp_path, repo):
    state, second = stale_plan(tmp_path, repo)

    from reconciler.runtimes.local.runtime import LocalRuntime

    runtime = LocalRuntime(state)
    try:
        with pytest.raises(StalePlan) as caught:
            check_fresh(load_plan_file(second), runtime.observe())
    finally:
        runtime.close()
    assert "pool alice.acme.sentiment.aaaaaaaaaaaa: replicas 2 -> 4" in str(caught.value)
    assert "run `reconciler plan` again" in str(caught.value)


def test_help_lists_the_options(tmp_path):
    result = run(tmp_path, "--help")
    assert result.returncode == 0
    for option in ("--format", "--out", "--detailed-exitcode", "--allow-mass-delete",
                   "--allow-reduced-capacity", "--no-cache", "--runtime", "--state"):
        assert option in result.stdout


def test_apply_refuses_a_stale_plan_file(tmp_path, repo):
    import importlib.util

    if importlib.util.find_spec("reconciler.cli.apply") is None:
        pytest.skip("the apply command has not landed yet")
    state, stale = stale_plan(tmp_path, repo)
    env = dict(os.environ, NO_COLOR="1", RECONCILER_CACHE_DIR=str(tmp_path / "cache"))
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--plan", str(stale), "--state", str(state),
         "--auto-approve", "--wait-timeout", "1s"],
        capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "plan is stale" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
