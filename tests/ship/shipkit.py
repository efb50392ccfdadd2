"""Helpers for the shipping tests: the Dockerfile's own commands, a fresh venv, the CLI.

A fresh venv that sees the project's already installed dependencies but not the
project itself: `python -m venv --without-pip`, plus one `.pth` line naming a folder of
symlinks to every entry of this venv's site-packages except reconciler's own (its
dist-info and the editable-install finder). Nothing reconciler is importable there until
the wheel is installed, the source tree is never on its path, and pip (one of those
dependencies) runs offline: every requirement is already satisfied.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
OWN = re.compile(r"^(reconciler|__editable__|__editable___reconciler)", re.IGNORECASE)


def dockerfile_instructions(text: str | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments out."""
    text = DOCKERFILE.read_text() if text is None else text
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
        pending = ""
    return out


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (a stage starts at FROM)."""
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def pip_command(stage: list[tuple[str, str]], verb: str) -> str:
    """The one `python -m pip VERB ...` command of a stage's RUN instructions."""
    found = [part.strip() for word, args in stage if word == "RUN"
             for part in args.split("&&") if f"-m pip {verb} " in part]
    assert len(found) == 1, f"expected one `pip {verb}` in the stage, got {found}"
    return found[0]


def build_context(dest: Path) -> Path:
    """Copy what the build stage COPYs (and only that) from the repository to `dest`."""
    import shutil

    for word, args in stages()[0]:
        if word != "COPY" or args.startswith("--from"):
            continue
        *sources, _ = shlex.split(args)
        for source in sources:
            path = ROOT / source.rstrip("/")
            target = dest / source.rstrip("/")
            if path.is_dir():
                shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
    return dest


@dataclass
class FreshVenv:
    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def env(self, home: Path) -> dict[str, str]:
        """The environment of a user of this venv: its bin first, no PYTHONPATH, our HOME."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTHON", "VIRTUAL_ENV", "RECONCILER_", "PIP_REQUIRE"))}
        env.update(PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}", HOME=str(home),
                   VIRTUAL_ENV=str(self.root), NO_COLOR="1", PYTHONUNBUFFERED="1",
                   RECONCILER_CACHE_DIR=str(home / "cache"),
                   PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        return env


def fresh_venv(root: Path) -> FreshVenv:
    """A venv without reconciler that sees this environment's dependencies (see above)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                   timeout=120)
    deps = root.parent / f"{root.name}-deps"
    deps.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if not OWN.match(entry.name) and not entry.name.endswith(".pth"):
            (deps / entry.name).symlink_to(entry)
    venv = FreshVenv(root)
    purelib = subprocess.run([str(venv.python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "_reconciler_test_deps.pth").write_text(f"{deps}\n")
    return venv


def run(argv: list[str] | str, *, env: dict[str, str], cwd: Path, timeout: float = 120,
        stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, shell=isinstance(argv, str), executable="/bin/bash"
                          if isinstance(argv, str) else None, capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout, input=stdin)
