"""Data confined to its owner (issue 10 item 3): a model path under another owner's data
(data://globex/... in an algorithm owned by erin) is an error, not a warning."""

from __future__ import annotations

from pathlib import Path

import pytest
from relkit import clean, cli

from reconciler.config.loader import check_config

ERIN = "algorithms/erin-wordcount.yaml"


def steal(config: Path) -> None:
    path = config / ERIN
    text = path.read_text()
    assert "path: data://erin/" in text
    path.write_text(text.replace("path: data://erin/", "path: data://globex/", 1))


def test_a_model_under_another_owner_is_an_error(examples: Path) -> None:
    steal(examples)
    config, diags = check_config(examples)
    assert config is None
    assert [(d.severity, d.file, d.path) for d in diags] == [
        ("error", ERIN, "spec.versions[0].model.path")]
    assert "under the data of globex, not of the algorithm's owner erin" in diags[0].message


@pytest.mark.slow
def test_plan_refuses_it_too(examples: Path, tmp_path: Path) -> None:
    steal(examples)
    done = cli("plan", str(examples), "--state", str(tmp_path / "state"))
    assert done.returncode == 1
    assert f"{ERIN}:" in clean(done) and "data://erin/..." in done.stderr
