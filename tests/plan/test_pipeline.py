"""plan_config with a runtime, and plan files."""

from __future__ import annotations

import json

import pytest

from plan.builders import account, algo, big_nodes, make_config, resv, ver
from plan.memory_runtime import MemoryRuntime
from reconciler.config.model import Safety
from reconciler.errors import ReconcilerError
from reconciler.pipeline import load_plan_file, plan_config, write_plan_file
from reconciler.plan import check_fresh
from reconciler.runtimes.base import Runtime

CONFIG = make_config(account("acme", "alice"), account("alice"),
                     algo("acme/sentiment", ver("1.2.0")),
                     resv("alice-sentiment", "alice", "acme/sentiment", replicas=2),
                     safety=Safety(max_deletions=3), commit="abc123")


def test_memory_runtime_is_a_runtime():
    assert isinstance(MemoryRuntime(), Runtime)


def test_plan_config_then_apply_converges():
    runtime = MemoryRuntime(nodes=big_nodes())
    planned = plan_config("/config", runtime, config=CONFIG)
    assert planned.config is CONFIG and planned.live == runtime.observe()
    assert planned.plan.runtime == "memory"
    assert planned.plan.source_path == "/config" and planned.plan.source_commit == "abc123"
    assert planned.plan.summary["create"] == 2
    check_fresh(planned.plan, runtime.observe())
    for action in planned.plan.actions:
        runtime.apply(action)
    again = plan_config("/config", runtime, config=CONFIG, commit="def456")
    assert again.plan.empty and again.plan.source_commit == "def456"


def test_plan_file_round_trip(tmp_path):
    planned = plan_config("/config", MemoryRuntime(nodes=big_nodes()), config=CONFIG)
    path = tmp_path / "sub" / "plan.json"
    write_plan_file(planned.plan, path)
    assert load_plan_file(path) == planned.plan
    assert json.loads(path.read_text())["formatVersion"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["plan.json"]  # no temp file left


@pytest.mark.parametrize(("content", "expected"), [
    (None, "does not exist"),
    ("not json", "is not JSON"),
    ('{"formatVersion": 2}', "has formatVersion 2, expected 1"),
    ("[1, 2]", "has formatVersion None"),
    ('{"formatVersion": 1}', "is malformed"),
])
def test_bad_plan_files_are_clear_errors(tmp_path, content, expected):
    path = tmp_path / "plan.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ReconcilerError, match=expected):
        load_plan_file(path)
