"""A damaged local store (a family that already holds).

STATE/state.db truncated, overwritten in the middle, with a broken header or
not a database at all: status, plan and apply fail with a clear error (exit
1, no traceback), and the damaged file is left as it is for a human (never
replaced by a fresh store, which would look like an empty runtime).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from configkit import write_config
from relkit import clean, cli

pytestmark = pytest.mark.slow


def damaged(clean_db: bytes, kind: str) -> bytes:
    noise = random.Random(kind).randbytes
    if kind == "truncated":
        return clean_db[: len(clean_db) // 2]
    if kind == "middle":
        return clean_db[:4096] + noise(4096) + clean_db[8192:]
    if kind == "header":
        return noise(100) + clean_db[100:]
    return b"not a database\n" * 200


@pytest.mark.parametrize("kind", ["truncated", "middle", "header", "text"])
def test_a_damaged_store_is_a_clear_error_and_is_left_alone(tmp_path: Path, kind: str) -> None:
    config = write_config(tmp_path / "config", limits=40)
    state = tmp_path / "state"
    assert cli("apply", str(config), "--state", str(state), "--auto-approve").returncode == 0
    db = state / "state.db"
    bad = damaged(db.read_bytes(), kind)
    for leftover in state.glob("state.db-*"):
        leftover.unlink()
    db.write_bytes(bad)
    commands = [("status", "--state", str(state)),
                ("apply", str(config), "--state", str(state), "--auto-approve")]
    if kind == "middle":
        commands.append(("plan", str(config), "--state", str(state)))
    for args in commands:
        done = cli(*args)
        assert done.returncode == 1, (args, clean(done))
        assert "local store:" in clean(done), (args, done.stderr)
    assert db.read_bytes() == bad
    assert not any(p.name.startswith("state.db.") for p in state.iterdir())
