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


@pytest.mark.parametrize("name", AVAILABLE)
def test_every_help_ends_with_examples_that_use_only_real_options(name: str) -> None:
    command: click.Command = importlib.import_module(COMMANDS[name][0]).command
    text = command.get_help(click.Context(command, info_name=name))
    assert "  Examples:\n" in text, f"`reconciler {name} --help` has no examples"
    examples = text.split("  Examples:\n", 1)[1]
    assert f"reconciler {name}" in examples
    flags = {opt for param in command.params for opt in getattr(param, "opts", ())}
    for line in examples.splitlines():
        if f"reconciler {name}" not in line:
            continue
        used = re.findall(r"(?<!\S)(--?[a-z][-a-z]*)", line.split(f"reconciler {name}", 1)[1])
        assert set(used) <= flags, f"{line.strip()!r}: {sorted(set(used) - flags)} unknown"
