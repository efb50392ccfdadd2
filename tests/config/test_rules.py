"""Cross-document and structural rules, in process, one small repo per rule."""

from __future__ import annotations

import pytest

from config.conftest import C1, C4, HEAD, D
from reconciler.config import check_config
from reconciler.errors import Severity


def res(name: str, caller: str, algorithm: str, vtype: str, replicas: int = 1,
        extra: str = "") -> str:
    return (f"{HEAD}kind: Reservation\nmetadata: {{name: {name}}}\nspec:\n  caller: {caller}\n"
            f"  algorithm: {algorithm}\n  versionType: {vtype}\n  replicas: {replicas}\n{extra}")


def limit(name: str, body: str) -> str:
    return f"{HEAD}kind: CapacityLimit\nmetadata: {{name: {name}}}\nspec:\n{body}"


def account(name: str, body: str) -> str:
    return f"{HEAD}kind: Account\nmetadata: {{name: {name}}}\nspec:\n{body}"


def algorithm(name: str, owner: str = "acme", processor: str = "cpu", gpu: int = 0,
              versions: str | None = None) -> str:
    versions = versions or (f"    - {{commit: {'5e' * 20}, version: 0.1.0, visibility: public, "
                            f"compiledAt: '2026-01-01T00:00:00Z', "
                            f"model: {{path: data://{owner}/{name}/m, digest: {D}}}}}\n")
    return (f"{HEAD}kind: Algorithm\nmetadata: {{name: {name}}}\nspec:\n  owner: {owner}\n"
            f"  processor: {processor}\n  resources: {{gpu: {gpu}}}\n  image: img\n"
            f"  entrypoint: m:apply\n  versions:\n{versions}")


def version(commit: str, semver: str | None, visibility: str = "public") -> str:
    v = f"version: {semver}, " if semver else ""
    return (f"    - {{commit: {commit}, {v}visibility: {visibility}, compiledAt: "
            f"'2026-01-01T00:00:00Z', model: {{path: data://acme/x/m, digest: {D}}}}}\n")


TWENTY = {
    "extra/r01.yaml": res("r01", "alice", "acme/sentiment", "latest-public", 0),
    "extra/r02.yaml": res("r02", "alice", "acme/sentiment", "latest-public", 1, "  color: red\n"),
    "extra/r03.yaml": res("r03", "nobody", "acme/sentiment", "latest-public"),
    "extra/r04.yaml": res("r04", "alice", "acme/nothing", "latest-public"),
    "extra/r05.yaml": res("r05", "alice", "acme/sentiment/zzz", "hash"),
    "extra/r06.yaml": res("r06", "carol", "acme/sentiment", "latest-compiled"),
    "extra/r07.yaml": res("r07", "alice", "acme/sentiment/1.0.0", "latest-public"),
    "extra/r08.yaml": res("R_08", "alice", "acme/sentiment", "latest-public"),
    "extra/a01.yaml": account("a01", "  type: robot\n"),
    "extra/a02.yaml": account("a02", "  type: user\n  members: [alice]\n"),
    "extra/a03.yaml": account("a03", "  type: organization\n  members: [ghost]\n"),
    "extra/l01.yaml": limit("l01", "  account: alice\n  maxEngines: 9\n"
                                   "  algorithm: acme/sentiment/1.0.0\n"
                                   "  maximumParallelCapacity: 9\n"),
    "extra/l02.yaml": limit("l02", "  {}\n"),
    "extra/l03.yaml": limit("l03", "  algorithm: acme/sentiment/9.9.9\n"
                                   "  maximumParallelCapacity: 3\n"),
    "extra/l04.yaml": limit("l04", "  account: ghost\n  maxEngines: 3\n"),
    "extra/g01.yaml": algorithm("g01", owner="ghost"),
    "extra/g02.yaml": algorithm("g02", processor="gpu", gpu=0),
    "extra/g03.yaml": algorithm("g03", versions=version("6f" * 20, "1.0.0")
                                + version("6f" * 20, "1.0.1")),
    "extra/s01.yaml": account("s01", "  type: user\n").replace("reconciler/v1", "reconciler/v2"),
    "extra/s02.yaml": account("s02", "  type: user\n").replace("kind: Account", "kind: Robot"),
}


def test_twenty_independent_errors_are_all_reported(write_repo, base_files) -> None:
    config, diags = check_config(write_repo({**base_files, **TWENTY}))
    errors = [d for d in diags if d.severity is Severity.ERROR]
    assert config is None
    assert sorted({d.file for d in errors}) == sorted(TWENTY), [str(d) for d in errors]
    assert len(errors) == 20, "\n".join(map(str, errors))
    assert all(d.line >= 1 and d.col >= 1 for d in errors)


RULES = [
    ("members-must-be-users", {"x.yaml": account("org2", "  type: organization\n"
                                                          "  members: [acme]\n")},
     "member 'acme' must be a user account"),
    ("only-one-settings", {"s1.yaml": f"{HEAD}kind: Settings\nmetadata: {{name: a}}\nspec: {{}}\n",
                           "s2.yaml": f"{HEAD}kind: Settings\nmetadata: {{name: b}}\nspec: {{}}\n"},
     "only one Settings document"),
    ("duplicate-algorithm", {"x.yaml": algorithm("sentiment")}, "duplicate algorithm"),
    ("duplicate-semver", {"x.yaml": algorithm("x", versions=version("7a" * 20, "1.0.0")
                                              + version("7b" * 20, "1.0.0"))},
     "version 1.0.0 is already used"),
    ("version-required-when-published", {"x.yaml": algorithm("x", versions=version(
        "7a" * 20, None, "private"))}, "spec.versions[0].version: missing required field"),
    ("hash-needs-40-hex", {"x.yaml": res("x", "alice", "acme/sentiment/abc", "hash")},
     "needs a 40-hex commit"),
    ("latest-takes-no-version", {"x.yaml": res("x", "alice", f"acme/sentiment/{C1}",
                                               "latest-public")}, "takes no VERSION"),
    ("unpublished-by-hash-is-owner-only",
     {"x.yaml": res("x", "carol", f"acme/sentiment/{'3c' * 20}", "hash")},
     "may not reserve unpublished"),
    ("max-gpus", {"x.yaml": res("x", "bob", f"acme/embed/{C4}", "hash", 1)},
     "reserves 2 GPUs, over its maxGpus 1"),
    ("max-parallel", {"x.yaml": res("x", "bob", "acme/sentiment/1.0.0", "semantic", 2)},
     "has 6 warm replicas across callers, over its maximumParallelCapacity 4"),
    ("account-scope-needs-max-engines", {"x.yaml": limit("x", "  account: carol\n")},
     "needs maxEngines as well"),
    ("version-scope-fields-only", {"x.yaml": limit("x", "  algorithm: acme/sentiment/1.0.0\n"
                                                        "  maxEngines: 3\n")},
     "needs account as well"),
    ("unknown-kind", {"x.yaml": account("x", "  type: user\n").replace("Account", "Acount")},
     "must be one of Account, Algorithm"),
    ("not-a-mapping", {"x.yaml": "- just\n- a list\n"}, "a document must be a mapping"),
    ("python-tag-refused", {"x.yaml": "a: !!python/object/apply:os.system [echo hi]\n"},
     "unsupported tag"),
    ("gpu-node-needs-gpu", {"s.yaml": f"{HEAD}kind: Settings\nmetadata: {{name: s}}\nspec:\n"
                                      "  local:\n    nodes:\n      - {name: g, processor: gpu, "
                                      "cpu: '2', memory: 1Gi}\n"}, "must be >= 1 on a gpu node"),
    ("dot-segment", {"x.yaml": algorithm("x", versions=version("7a" * 20, "1.0.0").replace(
        "data://acme/x/m", "data://acme/./m"))}, "'.' or '..' segments"),
    ("empty-segment", {"x.yaml": algorithm("x", versions=version("7a" * 20, "1.0.0").replace(
        "data://acme/x/m", "data://acme//x/m"))}, "must be data://OWNER/COLLECTION/FILE"),
    ("trailing-empty-segment", {"x.yaml": algorithm("x", versions=version("7a" * 20, "1.0.0")
                                                    .replace("data://acme/x/m", "data://acme/x/m/"))},
     "empty, '.' or '..' segments"),
]


@pytest.mark.parametrize("files, message", [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_rule(files, message, write_repo, base_files) -> None:
    config, diags = check_config(write_repo({**base_files, **files}))
    errors = [str(d) for d in diags if d.severity is Severity.ERROR]
    assert config is None
    assert any(message in e for e in errors), errors


def test_model_under_another_owner_is_an_error(write_repo, base_files) -> None:
    extra = algorithm("x", versions=version("7a" * 20, "1.0.0").replace(
        "data://acme/x/m", "data://globex/x/m"))
    config, diags = check_config(write_repo({**base_files, "x.yaml": extra}))
    assert config is None
    assert [d.severity for d in diags] == [Severity.ERROR]
    assert "under the data of globex, not of the algorithm's owner acme" in diags[0].message


def test_broken_account_is_not_reported_again_as_dangling(write_repo, base_files) -> None:
    files = {**base_files, "accounts.yaml": base_files["accounts.yaml"].replace(  # type: ignore[union-attr]
        "spec: {type: user}", "spec: {type: user, colour: blue}", 1)}
    _, diags = check_config(write_repo(files))
    assert len(diags) == 1 and "unknown field" in diags[0].message, [str(d) for d in diags]
