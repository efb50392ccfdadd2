"""A damaged apply journal is contained (issue 10 item 10, journal half).

STATE/journal.jsonl with bytes that are not UTF-8, a line `42` or a torn
line blocked every apply and daemon pass. It is now a warning: the file is
moved aside (kept, not deleted) and the apply or pass goes on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from configkit import write_config
from relkit import clean, cli, pools_in

pytestmark = pytest.mark.slow

DAMAGE = {
    "bad-bytes": b'{"event": "begin", "fingerprint": "\xff\xfe", "actions": 1}\n',
    "a-number": b"42\n",
    "torn": b'{"event": "begin", "fingerprint": "sha256:ab", "actions": 3}\n{"event": "sta',
    "wrong-types": b'{"event": "begin", "fingerprint": 7, "actions": "many"}\n',
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_apply_sets_a_damaged_journal_aside(tmp_path: Path, damage: str) -> None:
    config = write_config(tmp_path / "config")
    state = tmp_path / "state"
    state.mkdir()
    (state / "journal.jsonl").write_bytes(DAMAGE[damage])
    done = cli("apply", str(config), "--state", str(state), "--auto-approve")
    assert done.returncode == 0, clean(done)
    assert "warning: the apply journal" in clean(done) and "moved aside" in done.stderr
    aside = list(state.glob("journal.jsonl.damaged-*"))
    assert [p.read_bytes() for p in aside] == [DAMAGE[damage]]
    assert (state / "journal.jsonl").read_text().splitlines()[-1].startswith('{"event": "end"')
    assert list(pools_in(state)) == ["alice.acme.adder.aaaaaaaaaaaa"]


def test_a_daemon_pass_is_not_blocked_by_it(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    state = tmp_path / "state"
    state.mkdir()
    (state / "journal.jsonl").write_bytes(DAMAGE["a-number"])
    done = cli("daemon", "--repo", str(config), "--state", str(state), "--once",
               "--listen", "127.0.0.1:0")
    assert done.returncode == 0, clean(done)
    assert "moved aside" in done.stderr and "pass applied" in done.stderr
    assert list(pools_in(state)) == ["alice.acme.adder.aaaaaaaaaaaa"]


def test_a_finished_run_is_read_from_its_first_and_last_lines(tmp_path: Path) -> None:
    """An apply of 100,000 creates leaves 200,000 lines; the next apply (a daemon pass a
    webhook waits for) reads only the begin and end lines of a finished run: nothing to
    report. A run that
    did not finish is read whole, damage and all."""
    from reconciler.apply_journal import Journal

    begin = b'{"event": "begin", "fingerprint": "sha256:ab", "actions": 2, "time": "T"}\n'
    middle = b'{"event": "done", "action": "create WarmPool a"}\n42\n'
    end = b'{"event": "end", "time": "T"}\n'
    (tmp_path / "journal.jsonl").write_bytes(begin + middle + end)
    journal = Journal(tmp_path)
    assert journal.last_run(unfinished=True) is None
    assert journal.warnings == [] and not list(tmp_path.glob("journal.jsonl.damaged-*"))

    (tmp_path / "journal.jsonl").write_bytes(begin + middle)
    journal = Journal(tmp_path)
    run = journal.last_run(unfinished=True)
    assert run is not None and not run.finished and run.done == ["create WarmPool a"]
    assert "line 3 is not an event" in journal.warnings[0]
    assert len(list(tmp_path.glob("journal.jsonl.damaged-*"))) == 1
