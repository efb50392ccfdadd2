"""`reconciler schema --out DIR`: the schemas with $ids, their $refs resolvable from DIR."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from shipkit import ROOT

MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")
ENV = {"NO_COLOR": "1", "PATH": "/usr/bin:/bin"}


def reconciler(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd, env=ENV)


def folder_registry(folder: Path) -> Registry:
    """A registry that knows nothing but what it reads from `folder`, by relative name
    (the way an editor resolves `common.json` next to the schema it opened)."""
    def retrieve(uri: str) -> Resource:
        path = folder / uri
        if "/" in uri or not path.is_file():
            raise NoSuchResource(ref=uri)
        return Resource.from_contents(json.loads(path.read_text()))

    return Registry(retrieve=retrieve)


def validator(folder: Path, name: str, registry: Registry) -> Draft202012Validator:
    schema = json.loads((folder / name).read_text())
    return Draft202012Validator(schema, registry=registry)


def modeline_schema(path: Path) -> Path:
    first = path.read_text().splitlines()[0]
    match = MODELINE.match(first)
    assert match, f"{path}: the first line is not a yaml-language-server modeline"
    return (path.parent / match[1]).resolve()


def test_the_written_schemas_have_ids_and_validate_the_examples_from_their_folder(
        tmp_path: Path) -> None:
    out = tmp_path / "editor" / "schemas"
    done = reconciler("schema", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in out.glob("*.json"))
    assert written == sorted(p.name for p in (ROOT / "schemas").glob("*.json"))
    for name in written:
        schema = json.loads((out / name).read_text())
        assert schema["$id"] == name
        Draft202012Validator.check_schema(schema)
    registry = folder_registry(out)
    checked = 0
    for path in sorted((ROOT / "config-examples").rglob("*.yaml")):
        if any(part.startswith(".") for part in path.relative_to(ROOT).parts):
            continue
        name = modeline_schema(path).name  # the modeline names the schema of the file's kind
        for doc in yaml.safe_load_all(path.read_text()):
            errors = list(validator(out, name, registry).iter_errors(doc))
            assert not errors, (path, [e.message for e in errors])
            assert not list(validator(out, "envelope.json", registry).iter_errors(doc))
            checked += 1
    assert checked >= 20
    bad = {"apiVersion": "reconciler/v1", "kind": "Reservation", "metadata": {"name": "Bad!"},
           "spec": {"caller": "alice", "algorithm": "acme/x", "versionType": "latest-public",
                    "replicas": 0, "replicsa": 1}}
    messages = [e.message for e in validator(out, "envelope.json", registry).iter_errors(bad)]
    assert any("Bad!" in m for m in messages) and any("replicsa" in m for m in messages)


def test_a_base_uri_gives_absolute_ids_that_resolve_among_themselves(tmp_path: Path) -> None:
    out = tmp_path / "site"
    done = reconciler("schema", "--out", str(out), "--base-uri",
                      "https://schemas.example.test/reconciler/v1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    resources = [Resource.from_contents(json.loads(p.read_text())) for p in out.glob("*.json")]
    assert all(str(r.id()).startswith("https://schemas.example.test/reconciler/v1/")
               for r in resources)
    registry = Registry().with_resources((str(r.id()), r) for r in resources)
    envelope = json.loads((out / "envelope.json").read_text())
    doc = yaml.safe_load((ROOT / "config-examples" / "settings.yaml").read_text())
    assert not list(Draft202012Validator(envelope, registry=registry).iter_errors(doc))


@pytest.mark.parametrize("args", [["--base-uri", "not-absolute"], []])
def test_bad_usage_exits_1(tmp_path: Path, args: list[str]) -> None:
    extra = ["--out", str(tmp_path / "o")] if args else []
    done = reconciler("schema", *extra, *args, cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr


def test_the_examples_modelines_point_at_the_schema_of_their_kind() -> None:
    kinds = {"Account": "account.json", "Algorithm": "algorithm.json",
             "Reservation": "reservation.json", "CapacityLimit": "capacitylimit.json",
             "Settings": "settings.json"}
    for path in sorted((ROOT / "config-examples").rglob("*.yaml")):
        if ".github" in path.parts:
            continue
        target = modeline_schema(path)
        assert target.is_file(), (path, target)
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert {kinds[d["kind"]] for d in docs} == {target.name}, path


def test_a_symlink_among_the_schemas_is_refused_not_written_through(tmp_path: Path) -> None:
    """.schemas/ is committed to config repositories, so a pull request can plant a link
    there; `schema --out .schemas` overwrote its target."""
    out = tmp_path / ".schemas"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    (out / "account.json").symlink_to(victim)
    done = reconciler("schema", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "account.json is a symbolic link or not a regular file" in done.stderr
    assert victim.read_text() == "keep\n"
