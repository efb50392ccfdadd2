"""A worker's warm-up refuses what it must never serve (in-process: the same functions)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from localkit import make_site, sha256

from reconciler.runtimes.local import worker
from reconciler.runtimes.local.procs import WORKER_SCRIPT


def args_for(site_root: Path, **overrides: str) -> argparse.Namespace:
    site = make_site(site_root)
    values = {"model": "data://acme/models/m1.json", "data_root": str(site.data),
              "code_root": str(site.src), "entrypoint": "adder:apply",
              "digest": sha256(site.data / "acme" / "models" / "m1.json")}
    values.update(overrides)
    return argparse.Namespace(**values)


@pytest.mark.parametrize("url", ["data://acme/../../etc/passwd", "data://acme/./m/x.json",
                                 "data://acme/m", "file:///etc/passwd", "data://acme//x.json"])
def test_paths_outside_the_data_root_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(worker.WarmupError):
        worker.resolve_data_path(url, tmp_path)


def test_a_symlink_leaving_the_data_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data" / "acme" / "m").mkdir(parents=True)
    (tmp_path / "data" / "acme" / "m" / "x.json").symlink_to("/etc/hostname")
    with pytest.raises(worker.WarmupError, match="leaves the data root"):
        worker.resolve_data_path("data://acme/m/x.json", tmp_path / "data")


def test_digest_mismatch_fails_before_the_module_is_loaded(tmp_path: Path) -> None:
    args = args_for(tmp_path, digest="sha256:" + "0" * 64, entrypoint="missing:apply")
    with pytest.raises(worker.WarmupError, match="digest mismatch.*refusing to serve"):
        worker.warm_up(args)


@pytest.mark.parametrize(("entrypoint", "reason"), [
    ("nosuch:apply", "cannot import nosuch"), ("adder:nosuch", "has no function nosuch"),
    ("adder", "is not MODULE:FUNCTION")])
def test_bad_entrypoints_are_explained(tmp_path: Path, entrypoint: str, reason: str) -> None:
    with pytest.raises(worker.WarmupError, match=reason):
        worker.warm_up(args_for(tmp_path, entrypoint=entrypoint))


def test_missing_model_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(worker.WarmupError, match="does not exist"):
        worker.warm_up(args_for(tmp_path, model="data://acme/models/none.json"))


def test_worker_script_imports_no_heavy_modules(tmp_path: Path) -> None:
    """Run as the agent runs it (a script, stdlib only), so a replica warms up quickly."""
    probe = f"""
import runpy, sys
sys.argv = ["worker.py", "--help"]
try:
    runpy.run_path({str(WORKER_SCRIPT)!r}, run_name="__main__")
except SystemExit:
    pass
heavy = ("yaml", "jsonschema", "rich", "deepdiff", "kubernetes", "reconciler")
print("HEAVY=" + ",".join(name for name in heavy if name in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout
    assert out.strip().splitlines()[-1] == "HEAVY="
