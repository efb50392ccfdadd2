"""Every bad input of the issue's list: one repo each, one located error each."""

from __future__ import annotations

import time

import pytest

from config.badrepos import CASES, Case, make_repo
from reconciler.config import check_config, load_config
from reconciler.errors import ConfigError, Severity


def test_base_repo_is_valid(write_repo, base_files) -> None:
    config, diags = check_config(write_repo(base_files))
    assert config is not None, [str(d) for d in diags]
    assert not diags


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_reported_at_its_line(case: Case, write_repo) -> None:
    root = make_repo(case, write_repo)
    started = time.perf_counter()
    config, diags = check_config(root)
    elapsed = time.perf_counter() - started
    assert config is None
    errors = [d for d in diags if d.severity is Severity.ERROR]
    matching = [d for d in errors if case.message in d.message]
    assert matching, [str(d) for d in errors]
    assert (matching[0].file, matching[0].line) == (case.file, case.expected_line()), \
        str(matching[0])
    assert elapsed < 1.0  # alias bombs and huge files are refused quickly


def test_load_config_raises_with_every_error(write_repo) -> None:
    root = make_repo(CASES[2], write_repo)  # unknown field
    with pytest.raises(ConfigError) as info:
        load_config(root)
    assert any("unknown field" in str(d) for d in info.value.diagnostics)
    assert "2 errors" in str(info.value)  # the typo, and the field it leaves missing
