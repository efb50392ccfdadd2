"""The daemon's incremental pass always gives what a full pass gives.

A real Git repository (benchmarks/generate.py, 100 reservations) is edited by
random sequences of commits: reservations scaled, moved, added, deleted,
renamed into a duplicate or made invalid; accounts, algorithms and limits
edited; a YAML syntax error; a change to code under src/. After every commit
the incremental loader's config, diagnostics, desired state and plan (against
a real local store that the previous plans were applied to) must equal those
of a full load and plan from scratch.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.config.loader import check_config
from reconciler.daemon.incremental import Incremental
from reconciler.desired import compile_config
from reconciler.errors import ConfigError
from reconciler.pipeline import plan_config
from reconciler.runtimes.local.runtime import LocalRuntime

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import generate  # noqa: E402  (benchmarks/generate.py)

FILES = ["reservations/part-000.yaml", "reservations/bulk.yaml"]


@pytest.fixture(scope="module")
def base_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("incremental") / "repo"
    generate.generate(100, repo, seed=7)
    (repo / "src").mkdir()
    (repo / "src" / "model.py").write_text("def apply(x):\n    return x\n")
    generate.commit_all(repo, "base")
    return repo


SYNTAX_ERROR = "\n  - : [\n"


def docs_of(path: Path) -> list[dict[str, Any]]:
    """The documents of a file (a syntax error an earlier edit added is taken out first)."""
    return [d for d in yaml.safe_load_all(path.read_text().split(SYNTAX_ERROR)[0]) if d]


def write_docs(path: Path, docs: list[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def edit(repo: Path, what: str, pick: int) -> None:
    """One edit of the repository; `pick` chooses the file and document."""
    path = repo / FILES[pick % len(FILES)]
    docs = docs_of(path)
    doc = docs[pick % len(docs)]
    spec = doc["spec"]
    if what == "scale":
        spec["replicas"] = pick % 4 + 1
    elif what == "retype":  # public versions stay allowed to anyone
        spec["versionType"] = "latest-public"
        spec["algorithm"] = "/".join(spec["algorithm"].split("/")[:2])
    elif what == "caller":  # may become an access error: the config is then invalid
        spec["caller"] = docs[(pick + 1) % len(docs)]["spec"]["caller"]
    elif what == "delete":
        docs.remove(doc)
    elif what == "add":
        docs.append({**doc, "metadata": {"name": f"new-{pick}"}, "spec": dict(spec)})
    elif what == "duplicate":
        other = docs_of(repo / FILES[(pick + 1) % len(FILES)])[0]
        doc["metadata"] = {"name": other["metadata"]["name"]}
    elif what == "unknown-field":
        spec["replicsa"] = 2
    elif what == "syntax":
        path.write_text(path.read_text() + SYNTAX_ERROR)
        return
    elif what == "limit":
        limits = repo / "limits" / "limits.yaml"
        text = limits.read_text()
        limits.write_text(text.replace("maxEngines: ", "maxEngines: 1", 1) if pick % 2
                          else text.replace("maxEngines: 1", "maxEngines: ", 1))
        return
    elif what == "account":
        accounts = repo / "accounts" / "accounts.yaml"
        adocs = docs_of(accounts)
        adocs[pick % len(adocs)]["metadata"]["description"] = f"edited {pick}"
        write_docs(accounts, adocs)
        return
    elif what == "code":
        (repo / "src" / "model.py").write_text(f"def apply(x):\n    return x * {pick}\n")
        return
    elif what == "revert":
        subprocess.run(["git", "-C", str(repo), "checkout", "HEAD~1", "--", "."],
                       check=True, capture_output=True)
        return
    write_docs(path, docs)


EDITS = ["scale", "scale", "scale", "retype", "caller", "delete", "add", "duplicate",
         "unknown-field", "syntax", "limit", "account", "code", "revert"]


def full(repo: Path, commit: str) -> tuple[Any, Any, Any]:
    config, diags = check_config(repo, commit=commit)
    return config, diags, compile_config(config) if config is not None else None


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.sampled_from(EDITS), st.integers(0, 1000)),
                      min_size=1, max_size=4))
def test_incremental_equals_full(base_repo: Path, tmp_path: Path, steps: list[Any]) -> None:
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    repo, state = work / "repo", work / "state"
    shutil.copytree(base_repo, repo)
    incremental = Incremental(cache_dir=None)
    hows = []
    for number, (what, pick) in enumerate([("none", 0), *steps]):
        if number:
            edit(repo, what, pick)
        commit = generate.commit_all(repo, f"{number}: {what} {pick}")
        config, diags, desired = full(repo, commit)
        try:
            loaded = incremental.load(repo, commit, full=number == 0)
        except ConfigError as exc:
            assert config is None, f"{what}: incremental refused a valid config"
            assert exc.diagnostics == [d for d in diags if d.severity.value == "error"]
            continue
        assert config is not None, f"{what}: incremental accepted an invalid config"
        hows.append(loaded.how)
        assert loaded.config == config and loaded.diags == diags
        assert loaded.desired == desired
        runtime = LocalRuntime(state, settings=config.settings)
        try:
            live = incremental.live(runtime)
            fast = plan_config(repo, runtime, config=loaded.config, desired=loaded.desired,
                               live=live, candidates=loaded.candidates if live else None,
                               rows=incremental.rows, sums=loaded.sums,
                               live_sums=incremental.live_sums)
            slow = plan_config(repo, runtime, config=config)
            assert fast.plan.to_json() == slow.plan.to_json()
            assert fast.plan.applyable, fast.plan.errors
            for action in fast.plan.actions:
                runtime.apply(action)
            incremental.applied(loaded.desired, runtime, loaded.sums)
        finally:
            runtime.close()
    shutil.rmtree(work)
    assert hows  # the first commit is always valid


def test_one_reservation_edit_takes_the_reservations_path(base_repo: Path,
                                                          tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(base_repo, repo)
    incremental = Incremental(cache_dir=None)
    incremental.load(repo, generate.commit_all(repo, "first"), full=True)
    edit(repo, "scale", 3)
    loaded = incremental.load(repo, generate.commit_all(repo, "scaled"))
    assert loaded.how == "reservations" and loaded.candidates
    edit(repo, "code", 3)
    assert incremental.load(repo, generate.commit_all(repo, "code")).how == "full"
    edit(repo, "account", 3)
    assert incremental.load(repo, generate.commit_all(repo, "account")).how == "files"
    assert incremental.load(repo, generate.commit_all(repo, "empty")).how == "unchanged"
