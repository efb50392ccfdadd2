"""Plan files are untrusted (issue 10 item 1; SPEC.md section 7).

`apply --plan` refuses a file whose actions, errors or options were changed
after `plan` wrote it, and a plan `plan` refused; even a correctly signed
file is re-checked against the live state (capacity on the nodes of now,
access, safety) before any write. Hostile JSON is a clean error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from relkit import clean, cli, pools_in

pytestmark = pytest.mark.slow

BOB_PRIVATE = "bob.acme.sentiment."  # bob, a member of acme, reserves the private 1.2.0


def planned(examples: Path, state: Path, plan_file: Path, *extra: str) -> dict[str, Any]:
    done = cli("plan", str(examples), "--state", str(state), "--out", str(plan_file), *extra)
    clean(done)
    return json.loads(plan_file.read_text())


def resign(data: dict[str, Any], state: Path) -> dict[str, Any]:
    """What an attacker who could read STATE/plan.key would write."""
    from reconciler import planfiles

    key = planfiles.state_key(state, create=False)
    assert key is not None
    return planfiles.sign({k: v for k, v in data.items() if k != "signature"}, key)


def to_outsider(data: dict[str, Any], replicas: int = 500) -> dict[str, Any]:
    """Bob's pool of the private version moved to erin (not of acme) with 500 replicas."""
    action = next(a for a in data["actions"] if a["id"].startswith(BOB_PRIVATE))
    after = action["object"]["after"]
    new_id = "erin." + action["id"].split(".", 1)[1]
    after.update(id=new_id, caller="erin", replicas=replicas)
    action.update(id=new_id, caller="erin", replicas={"before": None, "after": replicas})
    return in_plan_order(data)


def in_plan_order(data: dict[str, Any]) -> dict[str, Any]:
    """The actions sorted as `plan` sorts them (a careful attacker does that too)."""
    from reconciler.plan.order import order
    from reconciler.plan.plans import Plan

    data["actions"] = [a.to_json() for a in order(Plan.from_json(data).actions)]
    return data


def apply_file(plan_file: Path, state: Path, **env: str) -> str:
    done = cli("apply", "--plan", str(plan_file), "--state", str(state), **env)
    text = clean(done)
    assert done.returncode == 1, text
    assert "nothing was applied" in text, text
    return text


def test_an_edited_plan_file_is_refused_and_nothing_is_written(examples: Path,
                                                               tmp_path: Path) -> None:
    state, plan_file = tmp_path / "state", tmp_path / "plan.json"
    data = to_outsider(planned(examples, state, plan_file))
    plan_file.write_text(json.dumps(data))
    text = apply_file(plan_file, state)
    assert "was changed after `plan` wrote it" in text
    assert pools_in(state) == {}


def test_a_refused_mass_delete_marked_applyable_is_refused(examples: Path,
                                                           tmp_path: Path) -> None:
    state, plan_file = tmp_path / "state", tmp_path / "plan.json"
    assert cli("apply", str(examples), "--state", str(state), "--auto-approve").returncode == 0
    before = pools_in(state)
    for name in ("acme.yaml", "globex.yaml"):
        (examples / "reservations" / name).unlink()
    data = planned(examples, state, plan_file)
    assert data["applyable"] is False and "allow-mass-delete" in data["errors"][0]["message"]
    data.update(applyable=True, errors=[])
    plan_file.write_text(json.dumps(data))
    assert "was changed after `plan` wrote it" in apply_file(plan_file, state)
    # an attacker holding the key: the safety limits are checked again all the same
    plan_file.write_text(json.dumps(resign(data, state)))
    assert "more than safety.maxDeletePercent" in apply_file(plan_file, state)
    assert pools_in(state) == before


def test_a_resigned_edit_still_fails_the_live_checks(examples: Path, tmp_path: Path) -> None:
    """Even with the key, the plan must hold: placement on the nodes and access."""
    state, plan_file = tmp_path / "state", tmp_path / "plan.json"
    data = to_outsider(planned(examples, state, plan_file))
    plan_file.write_text(json.dumps(resign(data, state)))
    text = apply_file(plan_file, state)
    assert "erin may not use private version 1.2.0 of acme/sentiment" in text
    assert "does not fit" in text
    assert pools_in(state) == {}


def test_a_signed_plan_is_checked_against_the_nodes_of_now(examples: Path,
                                                           tmp_path: Path) -> None:
    state, plan_file = tmp_path / "state", tmp_path / "plan.json"
    planned(examples, state, plan_file)
    settings = examples / "settings.yaml"
    settings.write_text(settings.read_text().replace('cpu: "4", memory: 8Gi',
                                                     'cpu: "1", memory: 1Gi'))
    text = apply_file(plan_file, state)
    assert "does not fit" in text and "1 CPU allocatable on cpu nodes" in text
    assert pools_in(state) == {}


def test_a_plan_from_another_state_directory_is_refused(examples: Path,
                                                        tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    planned(examples, tmp_path / "a", plan_file)
    cli("plan", str(examples), "--state", str(tmp_path / "b"), "--out",
        str(tmp_path / "other.json"))  # b gets a key of its own
    assert "another state directory's plan key" in apply_file(plan_file, tmp_path / "b")
    assert pools_in(tmp_path / "b") == {}


@pytest.mark.parametrize("content", [
    '{"formatVersion": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    '{"formatVersion": 1, "runtime": "local", "fingerprint": 5, "actions": "all"}',
    '{"formatVersion": 1, "runtime": "local", "fingerprint": "f", "applyable": true, '
    '"actions": [{"op": "create", "kind": "WarmPool", "id": 7, "object": {"after": '
    '{"replicas": "500"}}}]}',
    "[" * 5000,
    '{"formatVersion": 1, "liveRevision": NaN}',
    b"\xff\xfe{}".decode("latin-1"),
    '{"formatVersion": 1, "liveRevision": ' + "9" * 5000 + "}",
], ids=["nested-100k", "wrong-types", "wrong-pool-types", "unclosed", "nan", "not-utf8",
        "huge-int"])
def test_hostile_json_is_a_clean_error(tmp_path: Path, content: str) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_bytes(content.encode("latin-1"))
    done = cli("apply", "--plan", str(plan_file), "--state", str(tmp_path / "state"))
    assert done.returncode == 1 and done.stderr.startswith("error: plan file"), done.stderr
    assert "set_int_max_str_digits" not in clean(done)  # Python's advice, not the user's


def test_a_plan_file_over_the_size_limit_is_refused(examples: Path, tmp_path: Path) -> None:
    state, plan_file = tmp_path / "state", tmp_path / "plan.json"
    planned(examples, state, plan_file)
    done = cli("apply", "--plan", str(plan_file), "--state", str(state),
               RECONCILER_MAX_PLAN_BYTES="1000")
    assert done.returncode == 1 and "is over 1000 bytes" in clean(done)
    assert pools_in(state) == {}
