"""The shipped examples, the schema files and the benchmark generator."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from reconciler.config import check_config, load_config
from reconciler.config.schema import SCHEMA_DIR

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "config-examples"


def test_schemas_are_valid_draft_2020_12_and_closed() -> None:
    names = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert {"envelope.json", "account.json", "algorithm.json", "reservation.json",
            "capacitylimit.json", "settings.json"} <= names
    for path in SCHEMA_DIR.glob("*.json"):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        for node in _objects(schema):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, (path.name, node)


def _objects(node: object):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


def test_examples_validate_cleanly_and_have_every_version_type() -> None:
    config, diags = check_config(EXAMPLES)
    assert config is not None and diags == [], [str(d) for d in diags]
    assert {r.version_type.value for r in config.reservations.values()} == {
        "latest-public", "latest-private", "latest-compiled", "semantic", "hash"}
    assert {v.visibility.value for a in config.algorithms.values() for v in a.versions} == {
        "public", "private", "unpublished"}
    assert config.settings.local_nodes is not None


def test_example_files_point_editors_at_existing_schemas() -> None:
    for path in EXAMPLES.rglob("*.yaml"):
        if ".github" in path.parts:
            continue
        match = re.search(r"# yaml-language-server: \$schema=(\S+)", path.read_text())
        assert match, path
        assert (path.parent / match.group(1)).resolve().is_file(), path


def test_example_models_match_their_digests_and_code_runs() -> None:
    config = load_config(EXAMPLES)
    for algorithm in config.algorithms.values():
        module_name, _, function = algorithm.entrypoint.partition(":")
        spec = importlib.util.spec_from_file_location(module_name,
                                                      EXAMPLES / "src" / f"{module_name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for version in algorithm.versions:
            file = EXAMPLES / "data" / version.model.path.removeprefix("data://")
            digest = "sha256:" + hashlib.sha256(file.read_bytes()).hexdigest()
            assert digest == version.model.digest, file
            model = module.load(str(file))
            json.dumps(getattr(module, function)({"text": "not a bad day at all"}, model))


def _generate(out: Path, n: int) -> None:
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate.py"),
                    "--reservations", str(n), "--out", str(out)], check=True,
                   capture_output=True)


@pytest.mark.parametrize("n", [200, 1000])
def test_generator_is_deterministic_and_valid(tmp_path: Path, n: int) -> None:
    _generate(tmp_path / "a", n)
    _generate(tmp_path / "b", n)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.yaml"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.yaml"))
    assert files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    config, diags = check_config(tmp_path / "a")
    assert config is not None, [str(d) for d in diags[:5]]
    assert len(config.reservations) == n and len(config.accounts) == max(10, n // 10)
    assert len(config.algorithms) == n // 20
    kinds = {r.version_type.value for r in config.reservations.values()}
    assert len(kinds) == 5
