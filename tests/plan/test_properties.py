"""Property tests over random configs: convergence and ordering invariants."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from plan.builders import (
    account,
    account_limit,
    algo,
    apply_plan,
    big_nodes,
    make_config,
    resv,
    ver,
    version_limit,
)
from reconciler.desired import compile_config
from reconciler.plan import Op, make_plan
from reconciler.plan.order import phase
from reconciler.plan.plans import Plan
from reconciler.states import LiveState, ResourceKind

ACCOUNTS = (account("acme", "alice"), account("globex", "bob"), account("alice"),
            account("bob"), account("carol"))
CALLERS = [a.name for a in ACCOUNTS]
LABELS = ["1.0.0", "1.1.0", "1.10.0", "2.0.0-rc.1", "2.0.0", None]
VTYPES = ["latest-public", "latest-private", "latest-compiled", "semantic", "hash"]


@st.composite
def versions(draw):
    labels = draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=4, unique=True))
    out = []
    for index, label in enumerate(labels):
        visibility = "unpublished" if label is None else draw(
            st.sampled_from(["public", "public", "private"]))
        out.append(ver(label, visibility=visibility, compiled=f"2026-11-0{index + 1}T00:00:00Z",
                       model=draw(st.sampled_from(["m1", "m2"]))))
    return out


@st.composite
def algorithms(draw, ref):
    processor = draw(st.sampled_from(["cpu", "gpu"]))
    return algo(ref, *draw(versions()), processor=processor,
                gpu=draw(st.integers(1, 2)) if processor == "gpu" else 0,
                cpu=draw(st.sampled_from(["500m", "1", "2"])),
                image=draw(st.sampled_from(["img:1", "img:2"])))


@st.composite
def configs(draw):
    algos = [draw(algorithms(ref)) for ref in
             draw(st.lists(st.sampled_from(["acme/sentiment", "acme/vision", "globex/ocr"]),
                           min_size=1, max_size=3, unique=True))]
    objects = list(ACCOUNTS) + algos
    for index in range(draw(st.integers(0, 8))):
        algorithm = draw(st.sampled_from(algos))
        vtype = draw(st.sampled_from(VTYPES))
        version = draw(st.sampled_from(algorithm.versions))
        selector = {"semantic": f"/{version.version}", "hash": f"/{version.commit}"}.get(vtype, "")
        objects.append(resv(f"r{index}", draw(st.sampled_from(CALLERS)),
                            f"{algorithm.ref}{selector}", vtype, draw(st.integers(1, 3))))
    if draw(st.booleans()):
        algorithm = draw(st.sampled_from(algos))
        version = draw(st.sampled_from(algorithm.versions))
        objects.append(version_limit("min", f"{algorithm.ref}/{version.commit}",
                                     minimum=draw(st.integers(1, 2))))
    if draw(st.booleans()):
        objects.append(account_limit("cap", draw(st.sampled_from(CALLERS)), 1000))
    return make_config(*objects)


def live_from(config, revision="r1") -> LiveState:
    desired = compile_config(config)
    return LiveState(desired.tenants, desired.quotas, desired.pools, revision=revision)


def plan(desired, live) -> Plan:
    return make_plan(desired, live, big_nodes(), runtime="t", allow_mass_delete=True)


@settings(max_examples=100, deadline=None)
@given(before=configs(), after=configs())
def test_applying_a_plan_converges(before, after):
    desired = compile_config(after)
    first = plan(desired, live_from(before))
    assert first.applyable, first.errors
    converged = apply_plan(live_from(before), first)
    second = plan(desired, converged)
    assert second.empty, [(a.op, a.id, a.changes) for a in second.actions]
    # The plan file form applies the same way.
    replayed = apply_plan(live_from(before), Plan.from_json(first.to_json()))
    assert plan(desired, replayed).empty


@settings(max_examples=100, deadline=None)
@given(before=configs(), after=configs())
def test_ordering_invariants(before, after):
    actions = plan(compile_config(after), live_from(before)).actions
    index = {(a.kind, a.id, a.op): i for i, a in enumerate(actions)}
    assert [phase(a) for a in actions] == sorted(phase(a) for a in actions)
    for i, action in enumerate(actions):
        if action.wait_for:
            create = index.get((ResourceKind.WARM_POOL, action.wait_for, Op.CREATE))
            assert create is None or create < i, "a moved pool is deleted before its replacement"
            assert action.before.caller == action.obj.caller
        if action.kind is ResourceKind.WARM_POOL and action.op is not Op.DELETE:
            tenant = index.get((ResourceKind.TENANT, action.obj.caller, Op.CREATE))
            assert tenant is None or tenant < i
        if action.kind is ResourceKind.TENANT and action.op is Op.DELETE:
            assert all(a.obj.caller != action.id for a in actions[i + 1:]
                       if a.kind is ResourceKind.WARM_POOL)
    downs = [i for i, a in enumerate(actions) if a.op is Op.SCALE
             and a.after.replicas < a.before.replicas]
    ups = [i for i, a in enumerate(actions) if a.op is Op.SCALE
           and a.after.replicas > a.before.replicas]
    assert not downs or not ups or max(downs) < min(ups)


@settings(max_examples=50, deadline=None)
@given(config=configs())
def test_same_state_is_a_no_op_and_deterministic(config):
    desired = compile_config(config)
    live = live_from(config)
    assert plan(desired, live).empty
    shuffled = dataclasses.replace(live, pools=tuple(reversed(live.pools)))
    assert plan(desired, shuffled).fingerprint == plan(desired, live).fingerprint
