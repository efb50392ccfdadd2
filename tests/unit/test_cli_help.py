"""Every command's options are in its README synopsis, and the shared option lists agree."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import click
import pytest

from reconciler.cli import COMMANDS, options
from reconciler.runtimes import RUNTIMES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
SHARED = {"--help", "--kubeconfig", "--context"}  # README's "Shared options" paragraph


def synopsis(name: str) -> str:
    """The code block that opens README's `### name` section."""
    match = re.search(rf"^### {name}\b.*?\n```\n(.*?)```", README, re.MULTILINE | re.DOTALL)
    assert match, f"README has a `### {name}` section opening with its synopsis"
    return match[1]


# Commands whose module exists (COMMANDS may name one before it is written).
AVAILABLE = sorted(name for name, (module, _) in COMMANDS.items()
                   if importlib.util.find_spec(module) is not None)


@pytest.mark.parametrize("name", AVAILABLE)
def test_every_option_is_in_the_readme_synopsis(name: str) -> None:
    command: click.Command = importlib.import_module(COMMANDS[name][0]).command
    text = synopsis(name)
    assert re.match(rf"reconciler {name}(\s|$)", text)
    flags = {opt for param in command.params if isinstance(param, click.Option)
             for opt in param.opts if opt.startswith("--")}
    missing = sorted(flag for flag in flags - SHARED
                     if not re.search(rf"{re.escape(flag)}(?![-\w])", text))
    assert not missing, f"README's {name} synopsis lacks {missing}"


def test_the_runtime_choices_are_the_runtimes() -> None:
    assert options.RUNTIMES == RUNTIMES
