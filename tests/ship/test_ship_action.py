"""The reusable GitHub Action (action.yml) and its comment poster, run as far as a machine
without GitHub allows.

A small runner does what GitHub's does for a composite action: each step's `env:`
expressions are evaluated (inputs with their defaults, github context, earlier steps'
outputs), and its `run:` script runs as `bash --noprofile --norc -eo pipefail`, with
GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, RUNNER_TEMP, GITHUB_WORKSPACE and GITHUB_ACTION_PATH
set. The scripts run as they are written, against a real Git repository of several
commits, with a fresh venv's python on PATH (its install step installs the wheel) and
GITHUB_API_URL pointing at a stand-in for GitHub's comments API (githubstub).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from githubstub import GitHubStub
from shipkit import ROOT, FreshVenv, fresh_venv

from reconciler.cli.plan import PART_MARKER, markdown_text
from reconciler.plan.render import MARKDOWN_LIMIT

pytestmark = pytest.mark.slow
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
POSTER = ROOT / "action" / "post_comments.py"
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
TOKEN = "ghs_test_token"
GITHUB_LIMIT = 65_536


@dataclass
class Run:
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    log: str = ""
    failed: str | None = None  # the name of the step that failed


def evaluate(text: str, context: dict[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        node: Any = context
        for part in match[1].split("."):
            node = node.get(part, "") if isinstance(node, dict) else ""
        return "" if node is None else str(node)

    return EXPRESSION.sub(value, text)


def run_action(workspace: Path, temp: Path, venv: FreshVenv, api: str,
               inputs: dict[str, str], github: dict[str, Any]) -> Run:
    context: dict[str, Any] = {"github": github, "steps": {}}
    context["inputs"] = {name: evaluate(str(spec.get("default", "")), context)
                         for name, spec in ACTION["inputs"].items()}
    context["inputs"].update(inputs)
    base = {**venv.env(temp / "home"), "GITHUB_ACTION_PATH": str(ROOT),
            "GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(temp),
            "GITHUB_API_URL": api, "GITHUB_REPOSITORY": github["repository"],
            "GITHUB_STEP_SUMMARY": str(temp / "summary.md")}
    base.pop("PIP_NO_INDEX", None)
    base["PIP_NO_INDEX"] = "1"  # the install step must not need the network here
    result = Run()
    for number, step in enumerate(ACTION["runs"]["steps"]):
        output = temp / f"output-{number}"
        output.write_text("")
        env = {**base, "GITHUB_OUTPUT": str(output),
               **{k: evaluate(str(v), context) for k, v in step.get("env", {}).items()}}
        script = temp / f"step-{number}.sh"
        script.write_text(step["run"])
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail",
                               str(script)], cwd=workspace, env=env, capture_output=True,
                              text=True, timeout=120)
        result.log += f"--- {step['name']}\n{done.stdout}{done.stderr}"
        outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if line)
        if "id" in step:
            context["steps"][step["id"]] = {"outputs": outputs}
            result.outputs[step["id"]] = outputs
        if done.returncode != 0:
            result.failed = step["name"]
            break
    return result


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.test",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.test"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def set_replicas(repo: Path, value: int) -> None:
    path = repo / "platform" / "reservations" / "erin.yaml"
    path.write_text(re.sub(r"replicas: \d+", f"replicas: {value}", path.read_text()))


def test_every_step_is_bash_and_expressions_reach_scripts_only_through_env() -> None:
    assert ACTION["runs"]["using"] == "composite"
    for step in ACTION["runs"]["steps"]:
        assert step["shell"] == "bash" and "${{" not in step["run"], step["name"]
        assert set(step) <= {"name", "id", "shell", "env", "run"}, step["name"]


def test_the_action_validates_plans_and_keeps_one_comment_per_part_up_to_date(
        wheel: Path, tmp_path: Path) -> None:
    import shutil

    repo = tmp_path / "platform-config"
    shutil.copytree(ROOT / "config-examples", repo / "platform")
    git(repo, "init", "-q", "-b", "main")
    base = commit(repo, "the platform")
    set_replicas(repo, 2)
    commit(repo, "erin keeps two replicas")
    venv = fresh_venv(tmp_path / "venv")
    temp = tmp_path / "runner-temp"
    (temp / "home").mkdir(parents=True)
    inputs = {"install": str(wheel), "path": "platform", "github-token": TOKEN}
    github = {"repository": "acme/platform-config", "token": TOKEN,
              "event": {"pull_request": {"number": 7, "base": {"sha": base}}}}
    with GitHubStub(TOKEN, "acme/platform-config", 7) as stub:
        for n in range(3):
            stub.add(f"an unrelated comment {n}")  # the list has pages
        first = run_action(repo, temp, venv, stub.url, inputs, github)
        assert first.failed is None, first.log
        assert first.outputs["plan"]["exit-code"] == "2"
        assert first.outputs["validate"]["valid"] == "true"
        [ours] = [c for c in stub.comments if c["body"].startswith("<!-- reconciler:")]
        assert ours["body"].startswith(PART_MARKER.format(number=1, total=1) + "\n")
        assert "erin" in ours["body"] and "replicas" in ours["body"]
        assert [c for c in stub.calls if c[0] != "list"] == [("create", ours["id"])]
        assert ("list", 2) in stub.calls  # followed the Link header to the second page

        set_replicas(repo, 3)
        commit(repo, "three")  # the next push to the pull request
        stub.calls.clear()
        second = run_action(repo, temp, venv, stub.url, inputs, github)
        assert second.failed is None, second.log
        assert [c for c in stub.calls if c[0] != "list"] == [("update", ours["id"])]
        assert "3" in ours["body"] and len(stub.comments) == 4

        set_replicas(repo, 0)
        commit(repo, "an invalid push")
        third = run_action(repo, temp, venv, stub.url, inputs, github)
        assert third.failed == "Fail when the config is invalid or the plan is refused"
        assert third.outputs["validate"]["valid"] == "false"
        assert "::error file=platform/reservations/erin.yaml,line=" in third.log
        assert "cannot be planned" in ours["body"] and "replicas" in ours["body"]
        assert len(stub.comments) == 4


def poster(plan: str, stub: GitHubStub, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "plan.md").write_text(plan)
    env = {"PATH": os.environ["PATH"], "GITHUB_TOKEN": TOKEN, "PULL_REQUEST": "7",
           "GITHUB_REPOSITORY": "acme/platform-config", "GITHUB_API_URL": stub.url}
    return subprocess.run([sys.executable, str(POSTER), str(tmp_path / "plan.md")], env=env,
                          capture_output=True, text=True, timeout=60)


def parts_of(count: int, size: int = 0) -> list[str]:
    return [f"### part {n}\n\n```diff\n+ a\n```\n" + "x" * size for n in range(1, count + 1)]


def test_the_poster_splits_parts_takes_over_old_comments_and_deletes_stale_ones(
        tmp_path: Path) -> None:
    with GitHubStub(TOKEN, "acme/platform-config", 7) as stub:
        other = stub.add("LGTM")
        legacy = stub.add("<!-- reconciler-plan -->\nthe single comment of the old workflow",
                          login=stub.login)
        big = parts_of(3, size=60_000)
        done = poster(markdown_text(big) + "\n", stub, tmp_path)
        assert done.returncode == 0, done.stderr
        ours = [c for c in stub.comments if c is not other]
        assert [c["body"].split("\n", 1)[0] for c in ours] == [
            PART_MARKER.format(number=n, total=3) for n in (1, 2, 3)]
        assert ours[0] is legacy and ("update", legacy["id"]) in stub.calls
        assert all(len(c["body"]) < GITHUB_LIMIT for c in stub.comments)

        stub.calls.clear()
        done = poster(markdown_text(parts_of(1)) + "\n", stub, tmp_path)
        assert done.returncode == 0, done.stderr
        assert [c["body"] for c in stub.comments] == [
            "LGTM", PART_MARKER.format(number=1, total=1) + "\n" + parts_of(1)[0] + "\n"]
        assert sorted(c[0] for c in stub.calls if c[0] != "list") == [
            "delete", "delete", "update"]

        stub.calls.clear()
        assert poster(markdown_text(parts_of(1)) + "\n", stub, tmp_path).returncode == 0
        assert [c for c in stub.calls if c[0] != "list"] == [], "an unchanged plan is not posted"


def test_the_poster_never_takes_over_someone_elses_comment_with_the_marker(
        tmp_path: Path) -> None:
    """Anyone may comment `<!-- reconciler: part 1 of 1 -->`: taking that comment over
    would show the plan under their name, in a comment they can edit afterwards."""
    with GitHubStub(TOKEN, "acme/platform-config", 7) as stub:
        fake = stub.add(PART_MARKER.format(number=1, total=1) + "\nNo changes. LGTM")
        extra = stub.add(PART_MARKER.format(number=2, total=2) + "\nmore", login="mallory")
        done = poster(markdown_text(parts_of(1)) + "\n", stub, tmp_path)
        assert done.returncode == 0, done.stderr
        [ours] = [c for c in stub.comments if c["user"]["login"] == stub.login]
        assert ours["body"].startswith(PART_MARKER.format(number=1, total=1) + "\n")
        assert [c for c in stub.calls if c[0] != "list"] == [("create", ours["id"])]
        assert fake in stub.comments and extra in stub.comments
        assert fake["body"].endswith("LGTM")


def test_a_personal_tokens_own_comments_are_found_by_its_login(tmp_path: Path) -> None:
    """With a personal token the comments are that user's: found through GET /user, so
    the next push updates them instead of adding another; the bot's are not taken."""
    with GitHubStub(TOKEN, "acme/platform-config", 7, login="platform-ci") as stub:
        bots = stub.add(PART_MARKER.format(number=1, total=1) + "\nold", "github-actions[bot]")
        assert poster(markdown_text(parts_of(1)) + "\n", stub, tmp_path).returncode == 0
        [ours] = [c for c in stub.comments if c["user"]["login"] == "platform-ci"]
        assert poster(markdown_text(parts_of(2)) + "\n", stub, tmp_path).returncode == 0
        mine = [c for c in stub.comments if c["user"]["login"] == "platform-ci"]
        assert mine[0] is ours and len(mine) == 2 and bots in stub.comments
        assert ours["body"].startswith(PART_MARKER.format(number=1, total=2))


def test_a_read_only_token_is_a_warning_and_the_plan_stays_in_the_summary(
        wheel: Path, tmp_path: Path) -> None:
    """A pull request from a fork gets a read-only token: the job does not fail for it."""
    import shutil

    repo = tmp_path / "platform-config"
    shutil.copytree(ROOT / "config-examples", repo / "platform")
    git(repo, "init", "-q", "-b", "main")
    base = commit(repo, "the platform")
    set_replicas(repo, 2)
    commit(repo, "erin keeps two replicas")
    temp = tmp_path / "runner-temp"
    (temp / "home").mkdir(parents=True)
    inputs = {"install": str(wheel), "path": "platform", "github-token": TOKEN}
    github = {"repository": "acme/platform-config", "token": TOKEN,
              "event": {"pull_request": {"number": 7, "base": {"sha": base}}}}
    with GitHubStub(TOKEN, "acme/platform-config", 7, read_only=True) as stub:
        run = run_action(repo, temp, fresh_venv(tmp_path / "venv"), stub.url, inputs, github)
    assert run.failed is None, run.log
    assert run.outputs["plan"]["exit-code"] == "2"
    assert "::warning::cannot post the plan as comments" in run.log
    assert "Traceback" not in run.log and ("forbidden", None) in stub.calls
    assert "erin" in (temp / "summary.md").read_text()


def test_the_poster_fails_clearly_on_a_bad_token(tmp_path: Path) -> None:
    with GitHubStub("another-token", "acme/platform-config", 7) as stub:
        done = poster("plan\n", stub, tmp_path)
    assert done.returncode == 1 and "401" in done.stderr and "Traceback" not in done.stderr


def test_a_part_with_its_marker_stays_under_githubs_limit() -> None:
    assert MARKDOWN_LIMIT + len(PART_MARKER.format(number=999, total=999)) + 1 < GITHUB_LIMIT
