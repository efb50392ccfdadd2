"""The parse cache is a trust boundary (issue 10, item 10).

Whoever can write the cache directory must not run code in `validate` (the
cache holds JSON, never pickle); the cache is created readable by its owner
only; a damaged or wrong-shaped entry is a warning, is moved aside and the
file parsed again: never a traceback, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.config.cache import content_key
from reconciler.config.loader import check_config
from reconciler.errors import Severity

EXAMPLES = Path(__file__).resolve().parents[2] / "config-examples"


class Boom:
    """Unpickling this runs a command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLES, root)
    return root


def entries(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.json"))


def rewrite_body(entry: Path, change: Callable[[dict[str, object]], object]) -> None:
    """Edit an entry's body and give it a matching checksum: damage a checksum misses."""
    head, _, body = entry.read_bytes().partition(b"\n")
    new_body = json.dumps(change(json.loads(body))).encode()
    header = json.loads(head)
    header["sha256"] = hashlib.sha256(new_body).hexdigest()
    entry.write_bytes(json.dumps(header).encode() + b"\n" + new_body)


def truncate(entry: Path) -> None:
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])


def flip_a_byte(entry: Path) -> None:
    data = bytearray(entry.read_bytes())
    data[-10] ^= 0x01
    entry.write_bytes(bytes(data))


def other_key(entry: Path) -> None:
    head, _, body = entry.read_bytes().partition(b"\n")
    header = json.loads(head)
    header["key"] = "0" * 64
    entry.write_bytes(json.dumps(header).encode() + b"\n" + body)


def wrong_shape(entry: Path) -> None:
    rewrite_body(entry, lambda body: {**body, "docs": [["x"]]})


def lies_valid(entry: Path) -> None:
    """A document that fails its schema, marked valid: it must not be trusted."""
    def change(body: dict[str, object]) -> object:
        docs = body["docs"]
        assert isinstance(docs, list)
        for row in docs:
            row[0] = {"kind": "Reservation", "metadata": {}}
            row[5] = True
        return body
    rewrite_body(entry, change)


DAMAGE = {"truncated": truncate, "a flipped byte": flip_a_byte, "another key": other_key,
          "wrong shape": wrong_shape, "a document marked valid that is not": lies_valid,
          "empty": lambda e: e.write_bytes(b""), "not UTF-8": lambda e: e.write_bytes(b"\xff\n")}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_entry_is_a_warning_and_is_set_aside(repo: Path, tmp_path: Path,
                                                       damage: str) -> None:
    cache = tmp_path / "cache"
    clean, clean_diags = check_config(repo, cache_dir=cache)
    assert clean is not None and not clean_diags
    for entry in entries(cache):
        DAMAGE[damage](entry)
    config, diags = check_config(repo, cache_dir=cache)
    assert config == clean  # the files were parsed again
    assert diags and all(d.severity is Severity.WARNING for d in diags)
    assert all("cache entry" in d.message and "damaged" in d.message for d in diags)
    assert len(list(cache.rglob("*.json.bad"))) == len(diags)
    again, again_diags = check_config(repo, cache_dir=cache)  # entries written afresh
    assert again == clean and not again_diags


def test_a_planted_pickle_never_runs(repo: Path, tmp_path: Path) -> None:
    """An attacker who can write the cache replaces every entry with a pickle that runs
    a command: validate reads none of it as code."""
    cache, marker = tmp_path / "cache", tmp_path / "pwned"
    check_config(repo, cache_dir=cache)
    payload = pickle.dumps(Boom(marker))
    planted = [path for path in cache.rglob("*") if path.is_file()]
    assert planted
    for entry in planted:
        entry.write_bytes(payload)
    env = dict(os.environ, RECONCILER_CACHE_DIR=str(cache), NO_COLOR="1")
    env.pop("RECONCILER_NO_CACHE", None)
    done = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(repo)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not marker.exists()
    assert "Traceback" not in done.stderr + done.stdout
    assert "warning: cache entry" in done.stdout and "damaged" in done.stdout


def test_the_cache_is_readable_by_its_owner_only(repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    old_umask = os.umask(0o022)
    try:
        check_config(repo, cache_dir=cache)
    finally:
        os.umask(old_umask)
    dirs = [cache, *(p for p in cache.rglob("*") if p.is_dir())]
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert files
    assert {stat.S_IMODE(d.stat().st_mode) for d in dirs} == {0o700}
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    for path in files:  # data only: every entry is a JSON header line and a JSON body
        head, _, body = path.read_bytes().partition(b"\n")
        assert json.loads(head)["key"] == path.stem
        json.loads(body)


def test_a_cache_dir_others_may_write_is_not_used(repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    config, diags = check_config(repo, cache_dir=cache)
    assert config is not None
    assert [d.severity for d in diags] == [Severity.WARNING]
    assert "writable by other users" in diags[0].message
    assert not entries(cache)


def test_a_narrow_old_cache_dir_is_narrowed(repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)
    cache.chmod(0o755)
    config, _ = check_config(repo, cache_dir=cache)
    assert config is not None and stat.S_IMODE(cache.stat().st_mode) == 0o700
    key = content_key((repo / "settings.yaml").read_bytes())
    assert (cache / "v2" / key[:2] / f"{key}.json").is_file()
