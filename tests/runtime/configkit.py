"""A small, real config repository for CLI tests (apply, status, invoke).

acme (organization, member alice) owns acme/adder with a public 1.0.0 and a
private 1.5.0; alice reserves the latest public version; bob and carol are
plain users. `add_public_version` publishes 1.1.0, which moves alice's
latest-public reservation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from localkit import ALGORITHM, sha256

COMMITS = {"1.0.0": "a" * 40, "1.1.0": "b" * 40, "1.5.0": "c" * 40}
ENV = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}

HEAD = "apiVersion: reconciler/v1\n"


def _doc(kind: str, name: str, spec: str) -> str:
    return f"{HEAD}kind: {kind}\nmetadata:\n  name: {name}\nspec:\n{spec}"


def write_config(root: Path, *, replicas: int = 1, extra_users: tuple[str, ...] = ("carol",),
                 settings: str = "", limits: int = 0) -> Path:
    """The config; `limits` adds that many users, each with an account CapacityLimit
    (many cheap actions, for tests that interrupt an apply mid-way)."""
    extra_users = (*extra_users, *(f"user{i}" for i in range(limits)))
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "src" / "adder.py").write_text(ALGORITHM)
    for version, factor in (("1.0.0", 1), ("1.1.0", 100), ("1.5.0", 10)):
        path = root / "data" / "acme" / "models" / f"m-{version}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'{{"name": "m-{version}", "factor": {factor}}}')
    users = ("alice", "bob", *extra_users)
    accounts = [_doc("Account", "acme", "  type: organization\n  members: [alice]\n")]
    accounts += [_doc("Account", user, "  type: user\n") for user in users]
    (root / "accounts.yaml").write_text("---\n".join(accounts))
    write_algorithm(root, ("1.0.0", "1.5.0"))
    (root / "reservations.yaml").write_text(_doc(
        "Reservation", "alice-adder",
        f"  caller: alice\n  algorithm: acme/adder\n  versionType: latest-public\n"
        f"  replicas: {replicas}\n"))
    (root / "limits.yaml").write_text("---\n".join(
        _doc("CapacityLimit", f"user{i}-capacity", f"  account: user{i}\n  maxEngines: 2\n")
        for i in range(limits)))
    if settings:
        (root / "settings.yaml").write_text(settings)
    return root


def write_algorithm(root: Path, versions: tuple[str, ...], digests: dict[str, str] | None = None
                    ) -> None:
    items = []
    for version in versions:
        visibility = "private" if version == "1.5.0" else "public"
        model = root / "data" / "acme" / "models" / f"m-{version}.json"
        digest = (digests or {}).get(version) or sha256(model)
        items.append(
            f"    - commit: {COMMITS[version]}\n      version: {version}\n"
            f"      visibility: {visibility}\n      compiledAt: \"2026-11-0{len(items) + 1}"
            f"T10:00:00Z\"\n      model:\n        path: data://acme/models/m-{version}.json\n"
            f"        digest: {digest}\n")
    spec = ("  owner: acme\n  processor: cpu\n  resources: {cpu: 100m, memory: 64Mi, gpu: 0}\n"
            "  image: registry.example/acme/adder\n  entrypoint: adder:apply\n  versions:\n"
            + "".join(items))
    (root / "algorithm.yaml").write_text(_doc("Algorithm", "adder", spec))


def add_public_version(root: Path) -> None:
    write_algorithm(root, ("1.0.0", "1.1.0", "1.5.0"))


def reconciler(*args: str, stdin: str | None = None, timeout: float = 60
               ) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process, as a user runs it (stdin is not a TTY)."""
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True,
                          text=True, input=stdin if stdin is not None else "", timeout=timeout,
                          env=ENV)
