"""Inputs that used to pass validation and then break later stages, and the
config stage's single sources (limit targets, defaults, locations, pool counts).

Each test writes a real YAML repo and runs the loader in process.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from config.conftest import ALGORITHMS, C1, HEAD, RESERVATIONS, D, line_of
from reconciler.config import check_config, load_config
from reconciler.config.documents import nearest
from reconciler.config.model import (
    CapacityLimit,
    KubernetesSettings,
    Location,
    NodeSpec,
    Processor,
    Resources,
    Safety,
)
from reconciler.config.resolve import aggregate_pools, limit_target
from reconciler.desired import compile_config
from reconciler.errors import Diagnostic, Severity
from reconciler.quantities import cpu_millis, memory_bytes

ALG = "algorithms/algorithms.yaml"
RES = "reservations/reservations.yaml"


def errors(diags: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.severity is Severity.ERROR]


Files = dict[str, str | bytes]


def with_edit(base: Files, file: str, old: str, new: str) -> Files:
    text = base[file]
    assert isinstance(text, str) and old in text, (file, old)
    return {**base, file: text.replace(old, new, 1)}


# 1. quantities written as YAML numbers

def test_tiny_number_quantity_becomes_plain_decimal_text(write_repo, base_files) -> None:
    files = with_edit(base_files, ALG, "resources: {cpu: 500m, memory: 256Mi",
                      "resources: {cpu: 0.00001, memory: 1.0e+3")
    config = load_config(write_repo(files))
    resources = config.algorithms["acme/sentiment"].resources
    assert (resources.cpu, resources.memory) == ("0.00001", "1000.0")
    pool = next(p for p in compile_config(config).pools if p.name == "sentiment")
    assert pool.cpu == "0.00001" and cpu_millis(pool.cpu) == 1  # the planner's arithmetic works
    assert memory_bytes(pool.memory) == 1000


@pytest.mark.parametrize("written, shown", [(".inf", "'inf'"), (".nan", "'nan'"),
                                            (".NaN", "'nan'")])
def test_non_finite_quantity_is_a_located_error(written, shown, write_repo, base_files) -> None:
    files = with_edit(base_files, ALG, "memory: 256Mi", f"memory: {written}")
    config, diags = check_config(write_repo(files))
    assert config is None
    [error] = errors(diags)
    assert (error.file, error.line, error.path) == (
        ALG, line_of(ALGORITHMS, "memory: 256Mi"), "spec.resources.memory")
    assert error.col == ALGORITHMS.splitlines()[error.line - 1].index("256Mi") + 1
    assert error.message.startswith("must be a Kubernetes quantity like 500m")
    assert error.message.endswith(f"got {shown}")


def test_settings_node_quantities_are_checked(write_repo, base_files) -> None:
    settings = (f"{HEAD}kind: Settings\nmetadata: {{name: s}}\nspec:\n  local:\n    nodes:\n"
                "      - {name: n1, processor: cpu, cpu: .inf, memory: 0.5}\n"
                "      - {name: n2, processor: cpu, cpu: 4, memory: .nan}\n")
    config, diags = check_config(write_repo({**base_files, "settings.yaml": settings}))
    assert config is None
    assert [(d.file, d.line, d.path) for d in errors(diags)] == [
        ("settings.yaml", 7, "spec.local.nodes[0].cpu"),
        ("settings.yaml", 8, "spec.local.nodes[1].memory")]
    ok = settings.replace("cpu: .inf", "cpu: 0.0000005").replace("memory: .nan", "memory: 2.0e+9")
    config = load_config(write_repo({**base_files, "settings.yaml": ok}, name="ok"))
    assert config.settings.local_nodes is not None
    assert [(n.cpu, n.memory) for n in config.settings.local_nodes] == [
        ("0.0000005", "0.5"), ("4", "2000000000.0")]


# 2. latest-compiled compares instants, not text

def _two_versions(first: str, second: str) -> str:
    return (f"{HEAD}kind: Algorithm\nmetadata: {{name: clock}}\nspec:\n  owner: acme\n"
            "  processor: cpu\n  image: img\n  entrypoint: m:apply\n  versions:\n"
            f"    - {{commit: {'a1' * 20}, version: 1.0.0, visibility: public, "
            f"compiledAt: '{first}', model: {{path: data://acme/c/m, digest: {D}}}}}\n"
            f"    - {{commit: {'b2' * 20}, version: 1.0.1, visibility: public, "
            f"compiledAt: '{second}', model: {{path: data://acme/c/m, digest: {D}}}}}\n"
            f"---\n{HEAD}kind: Reservation\nmetadata: {{name: clock-latest}}\nspec:\n"
            "  caller: acme\n  algorithm: acme/clock\n  versionType: latest-compiled\n"
            "  replicas: 1\n")


@pytest.mark.parametrize("first, second, latest", [
    ("2026-11-01T10:00:00.5Z", "2026-11-01T10:00:00Z", "1.0.0"),      # text sorts "." < "Z"
    ("2026-11-01T10:00:00Z", "2026-11-01T11:00:00+02:00", "1.0.0"),   # 11:00+02:00 is 09:00Z
    ("2026-11-01T10:00:00-01:00", "2026-11-01T10:30:00Z", "1.0.0"),   # 11:00Z > 10:30Z
    ("2026-11-01t10:00:00.25z", "2026-11-01 10:00:00.3Z", "1.0.1"),  # every allowed form
    ("2026-11-01T10:00:00.1234567Z", "2026-11-01T10:00:00.1234568Z", "1.0.1"),  # > 6 digits
    ("2026-11-01T10:00:00Z", "2026-11-01T12:00:00+02:00", "1.0.1"),   # same instant: index
])
def test_latest_compiled_compares_instants(first, second, latest, write_repo,
                                           base_files) -> None:
    config = load_config(write_repo({**base_files, "clock.yaml": _two_versions(first, second)}))
    [pool] = [p for p in compile_config(config).pools if p.name == "clock"]
    assert pool.version == latest


def test_compiled_at_that_names_no_real_time_is_an_error(write_repo, base_files) -> None:
    text = _two_versions("2026-13-01T10:00:00Z", "2026-11-01T10:00:00Z")
    config, diags = check_config(write_repo({**base_files, "clock.yaml": text}))
    assert config is None
    [error] = errors(diags)
    assert (error.file, error.line, error.path) == ("clock.yaml", 10,
                                                    "spec.versions[0].compiledAt")
    assert "must be a real point in time" in error.message and "month" in error.message


# 3. two commits that share their first 12 hex digits

def test_commits_sharing_the_pool_id_prefix_are_rejected(write_repo, base_files) -> None:
    first, second = "0123456789ab" + "c" * 28, "0123456789ab" + "d" * 28
    text = _two_versions("2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z").replace(
        "a1" * 20, first).replace("b2" * 20, second)
    config, diags = check_config(write_repo({**base_files, "clock.yaml": text}))
    assert config is None
    [error] = errors(diags)
    assert (error.file, error.line, error.path) == ("clock.yaml", 11, "spec.versions[1].commit")
    assert error.col == text.splitlines()[10].index(second) + 1
    assert "first 12 hex digits (0123456789ab) with spec.versions[0]" in error.message
    assert "pool ids and runtime names use 12 digits" in error.message


# 4. patterns have ECMA-262 semantics

@pytest.mark.parametrize("file, old, new, path", [
    (RES, "metadata: {name: alice-sentiment}", "metadata:\n  name: |\n    alice-sentiment",
     "metadata.name"),
    (RES, "caller: alice", 'caller: "alice\\n"', "spec.caller"),
    (ALG, "version: 1.1.0", "version: 1.1\u0663.0", "spec.versions[1].version"),  # Arabic 3
    (ALG, "compiledAt: 2026-10-01T10:00:00Z", "compiledAt: 2026-10-01T10:00:0\u0660Z",
     "spec.versions[0].compiledAt"),
    (ALG, f"commit: {C1}", f'commit: "{C1}\\n"', "spec.versions[0].commit"),
])
def test_trailing_newline_and_non_ascii_digits_are_refused(file, old, new, path, write_repo,
                                                           base_files) -> None:
    config, diags = check_config(write_repo(with_edit(base_files, file, old, new)))
    assert config is None
    assert [d.path for d in errors(diags)] == [path], [str(d) for d in diags]
    assert errors(diags)[0].message.startswith("must be")  # the schema's pattern message


# 5. integer fields written as 2.0

def test_integer_fields_written_as_floats_become_ints(write_repo, base_files) -> None:
    files = with_edit(base_files, RES, "replicas: 2", "replicas: 2.0")
    files = with_edit(files, "limits.yaml", "maxEngines: 5", "maxEngines: 5.0")
    files = with_edit(files, "limits.yaml", "minimumParallelCapacity: 1",
                      "minimumParallelCapacity: 1.0")
    settings = (f"{HEAD}kind: Settings\nmetadata: {{name: s}}\nspec:\n"
                "  safety: {maxDeletions: 3.0, maxDeletePercent: 40.0}\n"
                "  local:\n    nodes:\n      - {name: n, processor: gpu, cpu: 8, memory: 8Gi, "
                "gpu: 2.0, pods: 3.0}\n  kubernetes:\n    gpuTolerations: "
                "[{key: k, operator: Exists, tolerationSeconds: 30.0}]\n")
    files["settings.yaml"] = settings
    config = load_config(write_repo(files))
    plain_settings = settings.replace(".0,", ",").replace(".0}", "}")
    assert ".0" not in plain_settings
    plain = compile_config(load_config(write_repo({**base_files, "settings.yaml": plain_settings},
                                                  name="plain")))
    values = [config.reservations["alice-sentiment"].replicas,
              config.limits["alice-capacity"].max_engines,
              config.limits["sentiment-1-0-0"].minimum_parallel_capacity,
              config.settings.safety.max_deletions, config.settings.safety.max_delete_percent,
              config.settings.kubernetes.gpu_tolerations[0]["tolerationSeconds"]]
    assert config.settings.local_nodes is not None
    node = config.settings.local_nodes[0]
    values += [node.gpu, node.pods]
    assert values == [2, 5, 1, 3, 40, 30, 2, 3]
    assert all(type(v) is int for v in values)
    desired = compile_config(config)
    assert all(type(p.replicas) is int for p in desired.pools)
    assert all(type(q.max_engines) is int for q in desired.quotas)
    assert repr(desired.pools) == repr(plain.pools)  # same values, same fingerprint


# 7. symlinks

def test_symlink_out_of_the_root_is_refused_and_never_read(write_repo, base_files,
                                                           tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("TOP-SECRET-CONTENT\n")
    root = write_repo(base_files)
    os.symlink(secret, root / "link.yaml")
    os.symlink("../../outside/secret.txt", root / "reservations" / "rel.yml")
    config, diags = check_config(root)
    assert config is None
    assert [(d.file, d.line, d.message) for d in diags] == [
        ("link.yaml", 1, "symlink to outside the config root is not read"),
        ("reservations/rel.yml", 1, "symlink to outside the config root is not read")]
    assert not any("SECRET" in str(d) for d in diags)


def test_symlink_inside_the_root_is_read(write_repo, base_files) -> None:
    extra = (f"{HEAD}kind: Reservation\nmetadata: {{name: linked}}\nspec:\n  caller: alice\n"
             "  algorithm: acme/sentiment/1.1.0\n  versionType: semantic\n  replicas: 1\n")
    root = write_repo({**base_files, ".shared/linked.txt": extra})
    os.symlink("../.shared/linked.txt", root / "reservations" / "linked.yaml")
    config, diags = check_config(root)
    assert config is not None and not diags, [str(d) for d in diags]
    assert config.reservations["linked"].doc.loc == Location("reservations/linked.yaml", 1, 1)


def test_symlinked_directory_out_of_the_root_is_not_followed(write_repo, base_files,
                                                             tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.yaml").write_text("not: [valid\n")
    root = write_repo(base_files)
    os.symlink(elsewhere, root / "more")
    config, diags = check_config(root)
    assert config is not None and not diags


# 12. pools are counted once per load

def test_loader_attaches_the_pool_counts_that_compile_uses(write_repo, base_files) -> None:
    config = load_config(write_repo(base_files))
    assert config.pool_counts is not None
    assert dict(config.pool_counts) == aggregate_pools(config)
    # not part of the value, and never carried over to a changed config
    changed = dataclasses.replace(config, commit="other")
    assert changed.pool_counts is None and "pool_counts" not in repr(config)
    assert dataclasses.replace(config) == config
    assert compile_config(changed) == compile_config(config)


# 14. one account-scope limit per account (what makes compile_quotas one-to-one)

def test_second_account_limit_for_one_account_is_an_error(write_repo, base_files) -> None:
    extra = (f"{HEAD}kind: CapacityLimit\nmetadata: {{name: alice-again}}\nspec:\n"
             "  account: alice\n  maxEngines: 3\n")
    config, diags = check_config(write_repo({**base_files, "again.yaml": extra}))
    assert config is None
    [error] = errors(diags)
    assert "account alice already has a capacity limit" in error.message


# 15. one helper finds a version-scope limit's target

def test_limit_target_by_semver_or_commit(write_repo, base_files) -> None:
    config = load_config(write_repo(base_files))
    by_semver = config.limits["sentiment-1-0-0"]
    assert (by_semver.algorithm_ref, by_semver.version_selector) == ("acme/sentiment", "1.0.0")
    target = limit_target(by_semver, config.algorithms)
    assert target is not None and (target[0].ref, target[1].commit) == ("acme/sentiment", C1)
    by_commit = dataclasses.replace(by_semver, algorithm=f"acme/sentiment/{C1}")
    assert limit_target(by_commit, config.algorithms) == target
    missing = dataclasses.replace(by_semver, algorithm="acme/sentiment/9.9.9")
    assert limit_target(missing, config.algorithms) is None
    account = config.limits["alice-capacity"]
    assert account.algorithm_ref is account.version_selector is None
    assert limit_target(account, config.algorithms) is None
    assert limit_target(CapacityLimit(by_semver.doc, algorithm="acme/nothing/1.0.0"),
                        config.algorithms) is None


# 17. defaults come from the model only

def test_absent_fields_take_the_model_defaults(write_repo, base_files) -> None:
    files = with_edit(base_files, ALG, "  resources: {cpu: 500m, memory: 256Mi, gpu: 0}\n", "")
    settings = (f"{HEAD}kind: Settings\nmetadata: {{name: s}}\nspec:\n  safety: {{}}\n"
                "  local:\n    nodes: [{name: n, processor: cpu, cpu: 2, memory: 1Gi}]\n"
                "  kubernetes: {}\n")
    config = load_config(write_repo({**files, "settings.yaml": settings}))
    assert config.algorithms["acme/sentiment"].resources == Resources()
    assert config.settings.safety == Safety()
    assert config.settings.kubernetes == KubernetesSettings()
    assert config.settings.local_nodes == (NodeSpec("n", Processor.CPU, "2", "1Gi"),)
    assert config.accounts["alice"].members == ()
    assert config.reservations["alice-sentiment"].doc.metadata.description == ""


# 18. one walk to the nearest located parent

def test_nearest_located_parent(write_repo, base_files) -> None:
    locs = {"spec": 1, "spec.versions[0]": 2}
    assert nearest(locs, "spec.versions[0].model.path", 0) == 2
    assert nearest(locs, "spec.other", 0) == 1
    assert nearest(locs, "metadata.name", 0) == 0
    config = load_config(write_repo(base_files))
    doc = config.reservations["alice-sentiment"].doc
    assert doc.at("spec.replicas.nothing") == doc.at("spec.replicas")
    assert doc.at("spec.replicas").line == line_of(RESERVATIONS, "replicas: 2")
    assert doc.at("nothing") == doc.loc
