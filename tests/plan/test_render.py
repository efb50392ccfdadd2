"""Golden tests of the three renderers, and the markdown split.

Regenerate the golden files after an intended change with
`UPDATE_GOLDEN=1 .venv/bin/pytest tests/plan/test_render.py` and review the diff.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from plan.builders import big_nodes, desired_of, digest_of, live_of, node, pool
from reconciler.plan import make_plan
from reconciler.plan.render import render_json, render_markdown, render_text
from reconciler.states import LiveState, Quota, Tenant

GOLDEN = Path(__file__).parent / "golden"


def empty_plan():
    desired = desired_of(pool("alice"))
    return make_plan(desired, live_of(desired), big_nodes(), runtime="local",
                     source_path="config", source_commit="0123456789abcdef0123")


def create_plan():
    desired = desired_of(pool("alice", replicas=2), pool("bob", "acme/vision", "2.0.0"),
                         quotas=(Quota("alice", 4, None, "alice-capacity"),))
    return make_plan(desired, LiveState(revision="7"), big_nodes(), runtime="local",
                     source_path="config")


def mixed_plan():
    live = live_of(desired_of(
        pool("alice", version="1.2.0", replicas=2), pool("bob", replicas=3),
        pool("carol", replicas=1), pool("dave", "acme/vision"), pool("erin", replicas=2),
        pool("frank"), quotas=(Quota("alice", 4, None, "alice-capacity"),)))
    desired = desired_of(
        pool("alice", version="1.3.0", replicas=2), pool("bob", replicas=1),
        pool("carol", replicas=4), pool("dave", "acme/vision", model_digest=digest_of("m2")),
        pool("erin", replicas=2, image="registry.example/img:2", memory="1Gi"), pool("frank"),
        quotas=(Quota("alice", 6, 2, "alice-capacity"),))
    desired = desired.__class__(desired.tenants + (Tenant("gina", "organization"),),
                                desired.quotas, desired.pools)
    return make_plan(desired, live, big_nodes(), runtime="kubernetes", source_path="repo",
                     source_commit="feedfacecafe00000000")


def refused_plan():
    live = live_of(desired_of(pool("alice", replicas=2), pool("bob", replicas=2),
                              pool("carol")))
    desired = desired_of(pool("alice", replicas=2, model_digest=digest_of("m2")),
                         pool("bob", "acme/vision", processor="gpu", gpu=2, replicas=3))
    return make_plan(desired, live, [node("cpu", cpu="2"), node("gpu", gpu=4)],
                     runtime="local", source_path="config")


PLANS = {"empty": empty_plan, "create": create_plan, "mixed": mixed_plan,
         "refused": refused_plan}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text()


@pytest.mark.parametrize("name", PLANS)
def test_text_golden(name):
    check_golden(f"{name}.txt", render_text(PLANS[name]().to_json(), color=False) + "\n")


@pytest.mark.parametrize("name", PLANS)
def test_markdown_golden(name):
    parts = render_markdown(PLANS[name]().to_json())
    assert len(parts) == 1
    check_golden(f"{name}.md", parts[0] + "\n")


@pytest.mark.parametrize("name", PLANS)
def test_json_golden(name):
    text = render_json(PLANS[name]().to_json())
    check_golden(f"{name}.json", text + "\n")
    assert json.loads(text)["formatVersion"] == 1


def test_text_colour_is_opt_in():
    data = mixed_plan().to_json()
    plain = render_text(data, color=False)
    coloured = render_text(data, color=True)
    assert "\x1b[" not in plain and "\x1b[" in coloured
    assert "\x1b[32m+ create WarmPool" in coloured and "\x1b[31m- delete" in coloured


def test_refused_plan_lists_errors_in_red():
    coloured = render_text(refused_plan().to_json(), color=True)
    assert "\x1b[1;31mError: pool" in coloured


def test_markdown_splits_into_parts_under_the_limit():
    pools = [pool(f"caller{i:04d}", replicas=2, reason="reservation " + "x" * 80)
             for i in range(2000)]
    data = make_plan(desired_of(*pools), LiveState(), big_nodes(), runtime="local").to_json()
    parts = render_markdown(data)
    assert len(parts) > 1
    assert all(len(part) < 65_000 for part in parts)
    assert "| create | scale | reload | update | delete |" in parts[0]
    assert parts[0].count("<details><summary>caller") > 1  # one section per account
    assert all("(continued)" in p for p in parts[1:])
    everything = "\n".join(parts)
    assert all(p.id in everything for p in pools)
    assert "**Capacity by processor**" in parts[-1]


def test_one_huge_account_is_cut_into_continued_sections():
    pools = [pool("alice", f"acme/algo{i:05d}", replicas=1, reason="reservation " + "y" * 60)
             for i in range(1500)]
    data = make_plan(desired_of(*pools), LiveState(), big_nodes(), runtime="local").to_json()
    parts = render_markdown(data, limit=20_000)
    assert len(parts) > 2 and all(len(part) < 20_000 for part in parts)
    assert "<details><summary>alice (continued)</summary>" in parts[2]
    everything = "\n".join(parts)
    assert all(p.id in everything for p in pools)


def test_review_view_names_moves_deletes_and_reduced_capacity():
    text = render_markdown(mixed_plan().to_json())[0]
    head = text.split("**Accounts**")[0]
    assert head.index("Applyable") < head.index("**Warnings**")
    assert "moves alice's acme/sentiment from 1.2.0 to 1.3.0" in head
    assert "reduces the warm capacity of account bob: 3 → 1" in head
    refused = render_markdown(refused_plan().to_json())[0]
    assert refused.splitlines()[2].startswith("**:x: Refused: pool bob.acme.vision")
    assert "deletes 2 warm pools (3 replicas)" in refused
    assert "| gpu | 0 → 3 of 32 | 0 → 6 of 4 |" in refused


def test_without_nodes_the_view_has_no_node_figures():
    desired = desired_of(pool("alice", replicas=2))
    data = make_plan(desired, LiveState(), None, runtime="local").to_json()
    text = render_markdown(data)[0]
    assert "| cpu | 0 → 2 | – |" in text and " of " not in text.split("| processor |")[1]


def test_markdown_split_with_a_tiny_limit_keeps_every_action():
    data = mixed_plan().to_json()
    parts = render_markdown(data, limit=1500)
    assert all(len(part) < 1500 for part in parts)
    for action in data["actions"]:
        assert any(action["id"] in part for part in parts)


def test_drift_is_said_in_words_without_an_empty_arrow():
    wanted = pool("alice")
    edited = dataclasses.replace(wanted, drift="Deployment spec.x is 1, reconciler sets 2")
    plan = make_plan(desired_of(wanted), LiveState(pools=(edited,), revision="r"),
                     big_nodes(), runtime="kubernetes")
    text = render_text(plan.to_json())
    assert "    drift: Deployment spec.x is 1, reconciler sets 2\n" in text
    assert " -> \n" not in text and not text.rstrip().endswith("->")
    assert "drift: Deployment spec.x" in render_markdown(plan.to_json())[0]
