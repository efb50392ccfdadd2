"""Routing a call from the store: one query, no config, the same answers as the config.

The store records each algorithm's versions (the catalog) with every apply from a
config; a call by a caller with its own pool is routed from it alone. When the store
cannot decide (a catalog older than the pools), the config (else the pools) decides.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from configkit import ENV, add_public_version, reconciler, write_config
from conftest_local import Local

from reconciler.config.loader import load_config
from reconciler.errors import ReconcilerError
from reconciler.runtimes.local import catalog
from reconciler.runtimes.local.routing import Router
from reconciler.runtimes.local.runtime import LocalRuntime

pytestmark = pytest.mark.slow


def no_config() -> None:
    raise AssertionError("the route needed the config")


def applied(local: Local, root: Path, **kw: int) -> Path:
    config = write_config(root, **kw)
    done = reconciler("apply", str(config), "--state", str(local.site.state), "--auto-approve")
    assert done.returncode == 0, done.stderr
    return config


def test_a_callers_own_pool_is_routed_without_the_config(local: Local, tmp_path: Path) -> None:
    config = applied(local, tmp_path / "config")
    router = Router(local.site.state, load_config=no_config)
    try:
        for version in ("", "/1.0.0", "/aaaaaaa", "/" + "a" * 40):
            ref = "acme/adder" + version
            route = router.route("alice", ref)
            assert route.pool_id == "alice.acme.adder.aaaaaaaaaaaa" and route.label == "1.0.0"
        target = router.route("alice", "acme/adder").target
        assert target is not None and target.entrypoint == "adder:apply"
    finally:
        router.close()
    local.agent()
    local.runtime.wait_ready("alice.acme.adder.aaaaaaaaaaaa", 1, timeout=15)
    shutil.rmtree(config / "src")  # the warm replica has its code; the config is not read
    cache = tmp_path / "cache"
    call = subprocess.run([sys.executable, "-c", PROBE, "invoke", "--as", "alice",
                           "acme/adder", '{"values": [1]}', "--state", str(local.site.state)],
                          capture_output=True, text=True, timeout=60,
                          env={**ENV, "RECONCILER_CACHE_DIR": str(cache)})
    assert call.returncode == 0 and call.stderr.startswith("warm, "), call.stderr
    assert not cache.exists(), "invoke parsed the config"
    assert "LOADED=\n" in call.stderr, "the warm path imports no config, YAML or HTTP library"


HEAVY = ("yaml", "jsonschema", "reconciler.config.loader", "reconciler.config.model",
         "urllib.request", "http.client", "http.server")
PROBE = ("import atexit, sys\n"
         f"atexit.register(lambda: print('LOADED=' + ','.join(m for m in {HEAVY!r} "
         "if m in sys.modules), file=sys.stderr))\n"
         "from reconciler.cli import main\n"
         "main(sys.argv[1:])\n")


def test_an_ambiguous_prefix_is_refused_from_the_store(local: Local, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    algorithm = config / "algorithm.yaml"
    shared = "a" * 7 + "c" * 33  # 1.5.0's commit now starts like 1.0.0's
    algorithm.write_text(algorithm.read_text().replace("c" * 40, shared))
    assert reconciler("apply", str(config), "--state", str(local.site.state),
                      "--auto-approve").returncode == 0
    router = Router(local.site.state, load_config=no_config)
    try:
        with pytest.raises(ReconcilerError, match="commit prefix aaaaaaa of acme/adder is "
                                                  "ambiguous"):
            router.route("alice", "acme/adder/aaaaaaa")
    finally:
        router.close()


def test_after_a_plan_file_apply_the_stale_catalog_is_not_trusted(local: Local,
                                                                  tmp_path: Path) -> None:
    """`apply --plan` has no config at hand: the catalog (latest public: 1.0.0) is older
    than the pools it wrote (alice's 1.1.0 pool), so the route is not taken from it."""
    config = applied(local, tmp_path / "config")
    add_public_version(config)
    state = ["--state", str(local.site.state)]
    plan = tmp_path / "plan.json"
    assert reconciler("plan", str(config), *state, "--out", str(plan)).returncode == 0
    assert reconciler("apply", "--plan", str(plan), *state, "--wait-timeout", "0s"
                      ).returncode == 0
    router = Router(local.site.state, load_config=lambda: None)
    try:
        assert router.route("alice", "acme/adder").pool_id == "alice.acme.adder.bbbbbbbbbbbb"
    finally:
        router.close()


def test_the_catalog_follows_the_config_without_any_pool_change(tmp_path: Path) -> None:
    """A new version no reservation follows changes no pool, yet it is the latest public
    version now: every pass records the catalog (writing only when it changed)."""
    config = write_config(tmp_path / "config")
    state = tmp_path / "state"

    def record() -> list[tuple[object, ...]]:
        runtime = LocalRuntime(state, config=load_config(config), config_dir=config)
        try:
            runtime.save_roots()
            with runtime.store.read() as conn:
                assert catalog.is_fresh(conn)
                return [tuple(r) for r in conn.execute(
                    "SELECT version, latest_public FROM versions ORDER BY version")]
        finally:
            runtime.close()

    assert record() == [("1.0.0", 1), ("1.5.0", 0)]
    add_public_version(config)
    assert record() == [("1.0.0", 0), ("1.1.0", 1), ("1.5.0", 0)]
