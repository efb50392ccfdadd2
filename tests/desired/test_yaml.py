"""compile_config on YAML repositories through the real loader."""

from __future__ import annotations

from pathlib import Path

from reconciler.config import check_config, load_config
from reconciler.desired import compile_config

EXAMPLES = Path(__file__).resolve().parents[2] / "config-examples"


def test_config_examples_compile_with_every_version_type():
    desired = compile_config(load_config(EXAMPLES))
    by_source = {source: pool for pool in desired.pools for source in pool.sources}
    reasons = " ".join(pool.reason for pool in desired.pools)
    for vtype in ("latest-public", "latest-private", "latest-compiled", "semantic", "hash"):
        assert f"({vtype} -> " in reasons, vtype
    assert "minimumParallelCapacity" in reasons
    alice = by_source["alice-sentiment"]
    assert (alice.caller, alice.algorithm, alice.replicas) == ("alice", "acme/sentiment", 2)
    assert alice.model_path.startswith("data://") and alice.model_digest.startswith("sha256:")
    assert {t.account for t in desired.tenants} == {p.caller for p in desired.pools}
    assert desired == compile_config(load_config(EXAMPLES))


RESERVATION = """\
apiVersion: reconciler/v1
kind: Reservation
metadata: {{name: {name}}}
spec: {{caller: {caller}, algorithm: {algorithm}, versionType: {vtype}, replicas: 1}}
"""


def test_access_rule_violations_are_config_errors_not_pools(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for part in ("accounts", "algorithms"):
        for source in (EXAMPLES / part).glob("*.yaml"):
            (repo / f"{part}-{source.name}").write_text(source.read_text())
    (repo / "reservation.yaml").write_text(RESERVATION.format(
        name="dave-private", caller="dave", algorithm="acme/sentiment", vtype="latest-private"))
    config, diagnostics = check_config(repo)
    assert config is None
    assert any("may not" in d.message for d in diagnostics), [str(d) for d in diagnostics]
