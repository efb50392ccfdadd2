"""Walking, parsing, locations, the model and the content-hash cache."""

from __future__ import annotations

import os
from pathlib import Path

from config.conftest import ALGORITHMS, C4, HEAD, RESERVATIONS, line_of
from reconciler.config import check_config, load_config
from reconciler.config.cache import FileCache, default_cache_dir
from reconciler.config.model import Location, Processor, Settings, VersionType
from reconciler.errors import Severity

RES = "reservations/reservations.yaml"


def test_model_is_built_with_field_locations(write_repo, base_files) -> None:
    config = load_config(write_repo(base_files), commit="abc")
    assert config.commit == "abc"
    assert set(config.accounts) == {"acme", "alice", "bob", "carol"}
    assert set(config.algorithms) == {"acme/sentiment", "acme/embed"}
    reservation = config.reservations["alice-sentiment"]
    assert reservation.version_type is VersionType.LATEST_PUBLIC and reservation.replicas == 2
    line = line_of(RESERVATIONS, "replicas: 2")
    assert reservation.doc.at("spec.replicas") == Location(RES, line, 13)
    assert reservation.doc.loc == Location(RES, 1, 1)
    embed = config.algorithms["acme/embed"]
    assert embed.processor is Processor.GPU and embed.resources.gpu == 1
    assert embed.doc.at("spec.versions[0].commit").line == line_of(ALGORITHMS, f"commit: {C4}")
    assert embed.doc.at("spec.versions[0].nothing").line == embed.doc.at("spec.versions[0]").line
    assert config.settings == Settings()


def test_settings_defaults(write_repo, base_files) -> None:
    settings = (f"{HEAD}kind: Settings\nmetadata: {{name: s}}\n"
                "spec:\n  safety: {maxDeletions: 3}\n")
    config = load_config(write_repo({**base_files, "settings.yml": settings}))
    assert config.settings.safety.max_deletions == 3
    assert config.settings.safety.max_delete_percent == 50
    assert config.settings.local_nodes is None
    assert config.settings.kubernetes.namespace_prefix == "acct-"


def test_hidden_dirs_and_other_files_are_skipped(write_repo, base_files) -> None:
    files = {**base_files, ".github/workflows/x.yaml": "on: {push: {}}\n",
             "data/acme/x/model.json": "{}", "notes.txt": "a: b: c"}
    config, diags = check_config(write_repo(files))
    assert config is not None and not diags


def test_anchors_merge_keys_and_empty_documents(write_repo, base_files) -> None:
    more = (f"---\n---\n{HEAD}kind: Reservation\n"
            "metadata: {name: a2, labels: &l {team: nlp}, description: merged}\n"
            "spec:\n  <<: {caller: alice, algorithm: acme/embed, replicas: 9}\n"
            "  versionType: latest-public\n  replicas: 1\n---\n")
    config = load_config(write_repo({**base_files, "more.yaml": more}))
    merged = config.reservations["a2"]
    assert (merged.caller, merged.replicas) == ("alice", 1)  # explicit keys win over <<
    assert dict(merged.doc.metadata.labels) == {"team": "nlp"}
    assert merged.doc.loc.line == 3


def test_every_field_is_checked_even_through_merge_keys(write_repo, base_files) -> None:
    more = (f"{HEAD}kind: Reservation\nmetadata: {{name: a2}}\nx-base: &s {{caller: alice}}\n"
            "spec:\n  <<: *s\n  algorithm: acme/sentiment\n"
            "  versionType: latest-public\n  replicas: 2\n")
    config, diags = check_config(write_repo({**base_files, "more.yaml": more}))
    assert config is None and [(d.path, d.line) for d in diags] == [("x-base", 4)]


def test_unquoted_timestamp_and_numeric_quantities(write_repo, base_files) -> None:
    algorithms = base_files["algorithms/algorithms.yaml"]
    assert isinstance(algorithms, str)
    files = {**base_files, "algorithms/algorithms.yaml": algorithms.replace(
        'resources: {cpu: "1", memory: 1Gi, gpu: 1}', "resources: {cpu: 2, memory: 1Gi, gpu: 1}")}
    config = load_config(write_repo(files))
    embed = config.algorithms["acme/embed"]
    assert embed.resources.cpu == "2"
    assert config.algorithms["acme/sentiment"].versions[0].compiled_at == "2026-10-01T10:00:00Z"


def test_missing_and_empty_directories(tmp_path: Path) -> None:
    config, diags = check_config(tmp_path / "nope")
    assert config is None and "does not exist" in diags[0].message
    config, diags = check_config(tmp_path)
    assert config is None and "no YAML documents" in diags[0].message


def test_max_file_bytes_env(write_repo, base_files, monkeypatch) -> None:
    monkeypatch.setenv("RECONCILER_MAX_FILE_BYTES", "100")
    _, diags = check_config(write_repo(base_files))
    assert {d.file for d in diags} == set(base_files)
    assert all("over the limit of 100" in d.message for d in diags)


def test_cache_hit_skips_parsing_and_gives_the_same_result(write_repo, base_files,
                                                          tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    files = {**base_files,
             "bad.yaml": f"{HEAD}kind: Account\nmetadata: {{name: dan}}\nspec: {{type: robot}}\n"}
    root = write_repo(files)
    first = check_config(root, cache_dir=cache)
    entries = list(cache.rglob("*.json"))
    assert len(entries) == len(files)
    stamps = {p: p.stat().st_mtime_ns for p in entries}
    second = check_config(root, cache_dir=cache)
    assert second[1] == first[1] and len(second[1]) == 1
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.json")} == stamps
    # a changed file gets a new entry; the others are reused
    (root / "bad.yaml").write_text(str(files["bad.yaml"]).replace("robot", "user"))
    config, diags = check_config(root, cache_dir=cache)
    assert config is not None and not diags
    assert len(list(cache.rglob("*.json"))) == len(files) + 1


def test_corrupt_cache_entries_are_set_aside(write_repo, base_files, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    root = write_repo(base_files)
    check_config(root, cache_dir=cache)
    entries = list(cache.rglob("*.json"))
    for entry in entries:
        entry.write_bytes(b"\x80\x05garbage")
    config, diags = check_config(root, cache_dir=cache)
    assert config is not None
    assert len(diags) == len(entries) and all(d.severity is Severity.WARNING for d in diags)
    config, diags = check_config(root, cache_dir=cache)  # parsed again and cached again
    assert config is not None and not diags
    assert FileCache(tmp_path / "elsewhere").get("0" * 64) is None


def test_default_cache_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECONCILER_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RECONCILER_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "reconciler"
    monkeypatch.setenv("RECONCILER_NO_CACHE", "1")
    assert default_cache_dir() is None


def test_symlinked_dir_loops_do_not_hang(write_repo, base_files) -> None:
    root = write_repo(base_files)
    os.symlink(root, root / "loop")
    config, _ = check_config(root)
    assert config is not None
