"""`reconciler validate` through the real CLI, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from config.badrepos import CASES, Case, make_repo

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "config-examples"


def run(*args: str | Path, cache: Path | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RECONCILER_NO_CACHE": "1"}
    if cache is not None:
        env = {**os.environ, "RECONCILER_CACHE_DIR": str(cache)}
        env.pop("RECONCILER_NO_CACHE", None)
    env.pop("GITHUB_WORKSPACE", None)  # github annotations are relative to the cwd here
    return subprocess.run([sys.executable, "-m", "reconciler", "validate", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=60, cwd=cwd)


def test_config_examples_are_valid(tmp_path: Path) -> None:
    result = run(EXAMPLES, cache=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("✓")
    again = run(EXAMPLES, cache=tmp_path)
    assert again.returncode == 0 and again.stdout == result.stdout


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_1_and_names_file_and_line(case: Case, write_repo) -> None:
    result = run(make_repo(case, write_repo))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert f"{case.file}:{case.expected_line()}:" in result.stdout, output
    assert case.message in result.stdout


def test_json_and_github_formats(write_repo) -> None:
    root = make_repo(CASES[3], write_repo)  # wrong type
    result = run(root, "--format", "json")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["valid"] is False
    error = report["errors"][0]
    assert (error["file"], error["path"]) == ("reservations/reservations.yaml", "spec.replicas")
    assert error["line"] == CASES[3].expected_line() and error["severity"] == "error"
    github = run(".", "--format", "github", cwd=root)  # Actions runs at the checkout's root
    assert github.returncode == 1
    assert github.stdout.startswith(
        f"::error file=reservations/reservations.yaml,line={CASES[3].expected_line()},col=13::"
        "spec.replicas: must be an integer")


def test_valid_json_report() -> None:
    report = json.loads(run(EXAMPLES, "--format", "json", "--no-cache").stdout)
    assert report["valid"] is True and report["documents"] > 10 and report["errors"] == []


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    result = run(tmp_path / "nope")
    assert result.returncode == 1
    assert "does not exist" in result.stdout and "Traceback" not in result.stderr
    empty = run(tmp_path)
    assert empty.returncode == 1 and "no YAML documents" in empty.stdout


def test_github_annotations_name_files_from_the_workspace(write_repo, tmp_path: Path) -> None:
    """A config in a subdirectory: GitHub resolves `file=` against the checkout,
    so the path must include the subdirectory, not be relative to CONFIG_DIR."""
    case = CASES[3]  # wrong type
    make_repo(case, lambda files, name: write_repo(files, name=f"checkout/{name}"))
    checkout = tmp_path / "checkout"
    platform = checkout / "platform"
    (checkout / case.id).rename(platform)
    expected = f"::error file=platform/{case.file},line={case.expected_line()},col=13::"
    env = {**os.environ, "RECONCILER_NO_CACHE": "1"}
    env.pop("GITHUB_WORKSPACE", None)
    command = [sys.executable, "-m", "reconciler", "validate", "platform", "--format", "github"]
    at_root = subprocess.run(command, capture_output=True, text=True, env=env, cwd=checkout,
                             timeout=60)
    assert at_root.returncode == 1 and at_root.stdout.startswith(expected), at_root.stdout
    elsewhere = subprocess.run([*command[:4], str(platform), *command[5:]], capture_output=True,
                               text=True, env={**env, "GITHUB_WORKSPACE": str(checkout)},
                               cwd=tmp_path, timeout=60)
    assert elsewhere.stdout.startswith(expected), elsewhere.stdout
