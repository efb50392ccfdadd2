"""compile_config: version types, access rules, aggregation, owner pools, quotas."""

from __future__ import annotations

import pytest
from plan.builders import (
    account,
    account_limit,
    algo,
    commit_of,
    digest_of,
    make_config,
    resv,
    ver,
    version_limit,
)

from reconciler.desired import compile_config
from reconciler.states import Quota, Tenant, pool_id

VERSIONS = (
    ver("1.2.0", compiled="2026-11-01T10:00:00Z"),
    ver("1.10.0", compiled="2026-11-02T10:00:00Z"),  # semver beats string order
    ver("2.0.0-rc.1", compiled="2026-11-03T10:00:00Z"),  # a pre-release sorts below 2.0.0 only
    ver("1.11.0", visibility="private", compiled="2026-11-04T10:00:00Z"),
    ver("1.9.0", visibility="private", compiled="2026-11-05T10:00:00Z"),
    ver(None, visibility="unpublished", compiled="2026-11-06T10:00:00Z"),
)
BASE = (account("acme", "alice"), account("alice"), account("bob"),
        algo("acme/sentiment", *VERSIONS))


def pools_for(*objects):
    return compile_config(make_config(*BASE, *objects)).pools


def only_version(*objects):
    pools = pools_for(*objects)
    assert len(pools) == 1, pools
    return pools[0]


@pytest.mark.parametrize(("vtype", "selector", "expected"), [
    ("latest-public", "", "2.0.0-rc.1"),
    ("latest-private", "", "1.11.0"),
    ("latest-compiled", "", None),
    ("semantic", "/1.10.0", "1.10.0"),
    ("semantic", "/1.9.0", "1.9.0"),
])
def test_each_version_type_resolves_per_the_spec_table(vtype, selector, expected):
    pool = only_version(resv("r", "alice", f"acme/sentiment{selector}", vtype))
    assert pool.version == expected
    if expected is None:
        assert pool.commit == commit_of("2026-11-06T10:00:00Z")  # the latest compiledAt


def test_hash_resolves_to_the_version_with_that_commit_even_unpublished():
    commit = commit_of("2026-11-06T10:00:00Z")
    pool = only_version(resv("r", "alice", f"acme/sentiment/{commit}", "hash"))
    assert pool.commit == commit and pool.version is None and pool.visibility == "unpublished"


def test_latest_public_prefers_release_over_its_prerelease():
    config = make_config(account("acme"), algo("acme/a", ver("2.0.0-rc.1"), ver("2.0.0")),
                         resv("r", "acme", "acme/a"))
    assert compile_config(config).pools[0].version == "2.0.0"


@pytest.mark.parametrize(("caller", "vtype", "selector", "allowed"), [
    ("bob", "latest-public", "", True),            # anyone: public
    ("bob", "semantic", "/1.2.0", True),
    ("bob", "semantic", "/1.11.0", False),         # private version: owner and members only
    ("bob", "latest-private", "", False),          # restricted version types
    ("bob", "latest-compiled", "", False),
    ("bob", "hash", f"/{commit_of('2026-11-06T10:00:00Z')}", False),  # unpublished
    ("alice", "latest-private", "", True),         # a member of the owning organization
    ("alice", "hash", f"/{commit_of('2026-11-06T10:00:00Z')}", True),
    ("acme", "latest-compiled", "", True),         # the organization itself
])
def test_access_rules(caller, vtype, selector, allowed):
    pools = pools_for(resv("r", caller, f"acme/sentiment{selector}", vtype))
    assert bool(pools) is allowed


def test_reservations_resolving_to_one_pool_add_up_and_list_their_sources():
    pools = pools_for(resv("a", "alice", "acme/sentiment", "latest-public", 2),
                      resv("b", "alice", "acme/sentiment/2.0.0-rc.1", "semantic", 3))
    assert len(pools) == 1
    pool = pools[0]
    assert pool.replicas == 5
    assert pool.sources == ("a", "b")
    assert pool.reason == ("reservation a (latest-public -> 2.0.0-rc.1); "
                           "reservation b (semantic -> 2.0.0-rc.1)")


def test_callers_never_share_a_pool():
    pools = pools_for(resv("a", "alice", "acme/sentiment"), resv("b", "bob", "acme/sentiment"))
    assert [p.caller for p in pools] == ["alice", "bob"]
    assert pools[0].commit == pools[1].commit and pools[0].id != pools[1].id


def test_minimum_parallel_capacity_adds_an_owner_pool():
    pools = pools_for(version_limit("min", "acme/sentiment/1.2.0", minimum=2, maximum=5))
    assert len(pools) == 1
    pool = pools[0]
    assert (pool.caller, pool.version, pool.replicas) == ("acme", "1.2.0", 2)
    assert pool.sources == ("CapacityLimit/min",)
    assert "minimumParallelCapacity 2" in pool.reason


def test_minimum_raises_an_existing_owner_pool_but_never_lowers_it():
    low = pools_for(resv("r", "acme", "acme/sentiment/1.2.0", "semantic", 1),
                    version_limit("min", "acme/sentiment/1.2.0", minimum=3))
    high = pools_for(resv("r", "acme", "acme/sentiment/1.2.0", "semantic", 5),
                     version_limit("min", "acme/sentiment/1.2.0", minimum=3))
    assert low[0].replicas == 3 and high[0].replicas == 5


def test_pool_carries_everything_the_runtime_needs():
    config = make_config(account("acme"), algo("acme/vision", ver("1.0.0", model="v1"),
                                               processor="gpu", cpu="2", memory="4Gi", gpu=1,
                                               image="reg/vision", entrypoint="vision:run"),
                         resv("r", "acme", "acme/vision", replicas=2))
    pool = compile_config(config).pools[0]
    assert pool.id == pool_id("acme", "acme", "vision", commit_of("1.0.0"))
    assert (pool.processor, pool.cpu, pool.memory, pool.gpu) == ("gpu", "2", "4Gi", 1)
    assert (pool.image, pool.entrypoint) == ("reg/vision", "vision:run")
    assert pool.model_path == "data://x/models/v1.json"
    assert pool.model_digest == digest_of("v1")
    assert pool.reason == "reservation r (latest-public -> 1.0.0)"


def test_tenants_one_per_caller_including_owner_pools_with_the_account_type():
    desired = compile_config(make_config(
        *BASE, resv("r", "bob", "acme/sentiment"),
        version_limit("min", "acme/sentiment/1.2.0", minimum=1)))
    assert desired.tenants == (Tenant("acme", "organization"), Tenant("bob", "user"))


def test_quotas_one_per_account_limit_sorted_by_account():
    # the rules allow one account-scope limit per account (tests/config: "already has a
    # capacity limit"), so each limit maps to one quota; version limits make none
    desired = compile_config(make_config(
        *BASE, account_limit("z-bob", "bob", 3), account_limit("acme-cap", "acme", 20, 4),
        version_limit("v", "acme/sentiment/1.2.0", maximum=3)))
    assert desired.quotas == (Quota("acme", 20, 4, "acme-cap"), Quota("bob", 3, None, "z-bob"))


def test_compile_is_deterministic_and_sorted_by_id():
    objects = [resv(f"r{i}", caller, "acme/sentiment", "latest-public", i + 1)
               for i, caller in enumerate(["bob", "alice", "acme"])]
    first = compile_config(make_config(*BASE, *objects))
    second = compile_config(make_config(*BASE, *reversed(objects)))
    assert first == second
    assert [p.id for p in first.pools] == sorted(p.id for p in first.pools)


def test_unresolvable_reservations_are_left_to_the_rules():
    pools = pools_for(resv("r", "alice", "acme/sentiment/9.9.9", "semantic"),
                      resv("s", "ghost", "acme/sentiment"),
                      resv("t", "alice", "acme/missing"))
    assert pools == ()
