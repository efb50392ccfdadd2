"""Entrypoints name algorithm code under the code root (issue 10 item 2).

`entrypoint: shutil:rmtree` or `os:system` validated, and any caller could
then run them through `invoke`. validate refuses a standard-library or
installed module (with or without a code root), a module that is not a file
under the code root where it exists, and a src/ file named like a standard
module (the worker never loads it in place of the standard one: rename it).
Where there is no code root (Kubernetes: the code is in the image) only the
first rule can be checked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from relkit import clean, cli

from reconciler.config.loader import check_config
from reconciler.errors import Severity

SENTIMENT = "algorithms/acme-sentiment.yaml"


def entrypoint(config: Path, value: str) -> None:
    path = config / SENTIMENT
    path.write_text(path.read_text().replace("entrypoint: sentiment:apply",
                                             f"entrypoint: {value}"))


def errors(config: Path, **kw: Path) -> list[str]:
    found, diags = check_config(config, **kw)  # type: ignore[arg-type]
    problems = [str(d) for d in diags if d.severity is Severity.ERROR]
    assert (found is None) == bool(problems)
    return problems


@pytest.mark.slow
def test_validate_refuses_os_system_with_file_and_line(examples: Path) -> None:
    entrypoint(examples, "os:system")
    done = cli("validate", str(examples))
    assert done.returncode == 1
    assert f"{SENTIMENT}:15:15: spec.entrypoint: module 'os' is a standard-library module" \
        in clean(done)


@pytest.mark.parametrize("value", ["shutil:rmtree", "subprocess:run", "builtins:exec",
                                   "os.path:join", "yaml:load", "reconciler.cli:main"])
def test_modules_of_the_installation_are_refused(examples: Path, value: str) -> None:
    entrypoint(examples, value)
    problems = errors(examples)
    assert len(problems) == 1 and "spec.entrypoint: module" in problems[0]
    assert "not algorithm code" in problems[0]


def test_without_a_code_root_the_installation_rule_still_holds(examples: Path) -> None:
    shutil.rmtree(examples / "src")  # Kubernetes: the code is in the image
    assert errors(examples) == []
    entrypoint(examples, "shutil:rmtree")
    assert len(errors(examples)) == 1


def test_a_module_that_is_not_under_the_code_root_is_refused(examples: Path) -> None:
    entrypoint(examples, "sentimental:apply")
    assert errors(examples) == [
        f"{SENTIMENT}:15:15: spec.entrypoint: module 'sentimental' is not under the code "
        "root: expected src/sentimental/__init__.py or src/sentimental.py"]


def test_an_explicit_code_root_is_the_one_checked(examples: Path, tmp_path: Path) -> None:
    other = tmp_path / "code"
    other.mkdir()
    assert len(errors(examples, code_root=other)) == 3  # none of the three modules is there
    for name in ("sentiment", "wordcount", "embed"):
        shutil.copy(examples / "src" / f"{name}.py", other)
    assert errors(examples, code_root=other) == []


def test_a_link_out_of_the_code_root_is_refused(examples: Path, tmp_path: Path) -> None:
    (examples / "src" / "sentiment.py").unlink()
    outside = tmp_path / "elsewhere.py"
    outside.write_text("def apply(input, model):\n    return input\n")
    (examples / "src" / "sentiment.py").symlink_to(outside)
    assert "is a link to outside the code root" in errors(examples)[0]


def test_a_code_root_module_named_like_a_standard_one_is_refused(examples: Path) -> None:
    shutil.copy(examples / "src" / "sentiment.py", examples / "src" / "signal.py")
    entrypoint(examples, "signal:apply")
    assert errors(examples) == [
        f"{SENTIMENT}:15:15: spec.entrypoint: src/signal.py is named like the "
        "standard-library module signal: rename it (an entrypoint never names a module of "
        "the Python installation)"]


def test_packages_under_the_code_root_are_algorithm_code(examples: Path) -> None:
    package = examples / "src" / "acme_nlp" / "models"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    shutil.copy(examples / "src" / "sentiment.py", package / "__init__.py")
    entrypoint(examples, "acme_nlp.models:apply")
    assert errors(examples) == []
    (package.parent / "__init__.py").unlink()
    assert "expected src/acme_nlp/__init__.py" in errors(examples)[0]
