#!/usr/bin/env python3
"""Write a deterministic synthetic config repository for benchmarks.

    python benchmarks/generate.py --reservations 10000 --out /tmp/bench10k

Shape for N reservations (same seed, same bytes):
- N/10 accounts in groups of ten: one organization with nine user members
  (accounts/accounts.yaml, one file);
- N/20 algorithms owned by the organizations, three CPU for one GPU, five
  versions each: 1.0.0 public, 1.1.0 public, 1.2.0 private, 2.0.0 public and
  an unpublished build (algorithms/part-NNN.yaml, 50 per file);
- N reservations over every version type, access-correct (restricted types
  only by the owner's members): half in one big file
  (reservations/bulk.yaml), half in files of 50 (reservations/part-NNN.yaml);
- an account CapacityLimit (maxEngines, and maxGpus for organizations) for
  every account that reserves, and version limits (maximumParallelCapacity,
  sometimes minimumParallelCapacity) for every tenth algorithm, all with
  headroom, so the repo validates cleanly (limits/);
- a Settings document with local nodes sized to fit every replica (about one
  cpu node per 250 reservations and one gpu node per 500), so the repo plans
  and applies as it is on the local runtime.
Model data files are not written: digests are checked by the runtime only.
With --git the directory is made a Git repository (branch main) with the
files committed, as the daemon and `reconciler diff` read it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
from collections import defaultdict
from pathlib import Path

HEADER = "apiVersion: reconciler/v1\n"
VERSIONS = [  # (semver or None, visibility, compiledAt)
    ("1.0.0", "public", "2026-01-10T10:00:00Z"),
    ("1.1.0", "public", "2026-03-10T10:00:00Z"),
    ("1.2.0", "private", "2026-05-10T10:00:00Z"),
    ("2.0.0", "public", "2026-07-10T10:00:00Z"),
    (None, "unpublished", "2026-09-10T10:00:00Z"),
]
LATEST = {"latest-public": 3, "latest-private": 2, "latest-compiled": 4}


def commit(algorithm: str, index: int) -> str:
    return hashlib.sha1(f"{algorithm}@{index}".encode()).hexdigest()


def digest(algorithm: str, index: int) -> str:
    return "sha256:" + hashlib.sha256(f"model {algorithm}@{index}".encode()).hexdigest()


def accounts(n: int) -> tuple[list[str], dict[str, list[str]]]:
    """Organization -> members, in groups of ten accounts."""
    orgs: dict[str, list[str]] = {}
    for group in range(max(1, n // 100)):
        orgs[f"org-{group:04d}"] = [f"user-{group:04d}-{i}" for i in range(9)]
    return list(orgs), orgs


def account_docs(orgs: dict[str, list[str]]) -> str:
    docs = []
    for org, members in orgs.items():
        docs.append(f"{HEADER}kind: Account\nmetadata:\n  name: {org}\nspec:\n"
                    f"  type: organization\n  members: [{', '.join(members)}]\n")
        docs += [f"{HEADER}kind: Account\nmetadata:\n  name: {user}\nspec:\n  type: user\n"
                 for user in members]
    return "---\n".join(docs)


def algorithm_doc(owner: str, name: str, gpu: bool) -> str:
    ref = f"{owner}/{name}"
    lines = [f"{HEADER}kind: Algorithm\nmetadata:\n  name: {name}\n"
             f"  description: synthetic {'gpu' if gpu else 'cpu'} model\nspec:\n"
             f"  owner: {owner}\n  processor: {'gpu' if gpu else 'cpu'}\n"
             f"  resources:\n    cpu: 500m\n    memory: 256Mi\n    gpu: {1 if gpu else 0}\n"
             f"  image: registry.example/{ref}\n  entrypoint: model:apply\n  versions:\n"]
    for index, (semver, visibility, compiled) in enumerate(VERSIONS):
        lines.append(f"    - commit: {commit(ref, index)}\n")
        if semver:
            lines.append(f"      version: {semver}\n")
        lines.append(f"      visibility: {visibility}\n      compiledAt: \"{compiled}\"\n"
                     f"      model:\n        path: data://{owner}/{name}/model-{index}.bin\n"
                     f"        digest: {digest(ref, index)}\n")
    return "".join(lines)


def pick(rng: random.Random, ref: str, member: bool) -> tuple[str, str, int]:
    """(algorithm field, versionType, index of the version it resolves to)."""
    choices = ["latest-public", "semantic", "hash"]
    if member:
        choices += ["latest-private", "latest-compiled", "semantic", "hash"]
    vtype = rng.choice(choices)
    if vtype in LATEST:
        return ref, vtype, LATEST[vtype]
    allowed = [i for i, v in enumerate(VERSIONS) if member or v[1] == "public"]
    if vtype == "semantic":
        index = rng.choice([i for i in allowed if VERSIONS[i][0]])
        return f"{ref}/{VERSIONS[index][0]}", vtype, index
    index = rng.choice(allowed)
    return f"{ref}/{commit(ref, index)}", vtype, index


def generate(n: int, out: Path, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    org_names, orgs = accounts(n)
    member_of = {user: org for org, users in orgs.items() for user in users}
    algorithms = []  # (owner, name, gpu)
    for i in range(max(1, n // 20)):
        algorithms.append((org_names[i % len(org_names)], f"model-{i:05d}", i % 4 == 3))
    per_caller: dict[str, int] = defaultdict(int)
    gpus: dict[str, int] = defaultdict(int)
    per_version: dict[tuple[str, int], int] = defaultdict(int)
    reservations = []
    for i in range(n):
        owner, name, gpu = algorithms[rng.randrange(len(algorithms))]
        ref = f"{owner}/{name}"
        members = orgs[owner]
        caller = rng.choice(members + [owner]) if i % 3 == 0 else rng.choice(list(member_of))
        member = caller == owner or member_of.get(caller) == owner
        field, vtype, index = pick(rng, ref, member)
        replicas = rng.randint(1, 3)
        per_caller[caller] += replicas
        gpus[caller] += replicas if gpu else 0
        per_version[(ref, index)] += replicas
        reservations.append(f"{HEADER}kind: Reservation\nmetadata:\n  name: r-{i:06d}\nspec:\n"
                            f"  caller: {caller}\n  algorithm: {field}\n"
                            f"  versionType: {vtype}\n  replicas: {replicas}\n")
    limits = []
    for number, (owner, name, _gpu) in enumerate(algorithms[::10]):
        ref = f"{owner}/{name}"
        total = per_version[(ref, 3)]
        minimum = 1 if number % 2 == 0 else 0
        per_caller[owner] += minimum
        line = f"  minimumParallelCapacity: {minimum}\n" if minimum else ""
        limits.append(f"{HEADER}kind: CapacityLimit\nmetadata:\n  name: v-{owner}-{name}\n"
                      f"spec:\n  algorithm: {ref}/2.0.0\n{line}"
                      f"  maximumParallelCapacity: {total + minimum + 5}\n")
    for caller in sorted(per_caller):
        gpu_line = f"  maxGpus: {gpus[caller] + 2}\n" if caller in orgs else ""
        limits.append(f"{HEADER}kind: CapacityLimit\nmetadata:\n  name: a-{caller}\nspec:\n"
                      f"  account: {caller}\n  maxEngines: {per_caller[caller] + 5}\n{gpu_line}")
    write_repo(out, orgs, algorithms, reservations, limits)
    return {"accounts": len(orgs) * 10, "algorithms": len(algorithms),
            "reservations": n, "limits": len(limits)}


def write_repo(out: Path, orgs: dict[str, list[str]], algorithms: list[tuple[str, str, bool]],
               reservations: list[str], limits: list[str]) -> None:
    for sub in ("accounts", "algorithms", "reservations", "limits"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for old in (out / sub).glob("*.yaml"):
            old.unlink()
    (out / "accounts" / "accounts.yaml").write_text(account_docs(orgs))
    docs = [algorithm_doc(*a) for a in algorithms]
    for part, start in enumerate(range(0, len(docs), 50)):
        (out / "algorithms" / f"part-{part:03d}.yaml").write_text(
            "---\n".join(docs[start:start + 50]))
    half = len(reservations) // 2
    (out / "reservations" / "bulk.yaml").write_text("---\n".join(reservations[:half]))
    rest = reservations[half:]
    for part, start in enumerate(range(0, len(rest), 50)):
        (out / "reservations" / f"part-{part:03d}.yaml").write_text(
            "---\n".join(rest[start:start + 50]))
    (out / "limits" / "limits.yaml").write_text("---\n".join(limits))
    (out / "settings.yaml").write_text(
        f"{HEADER}kind: Settings\nmetadata:\n  name: settings\nspec:\n"
        "  safety:\n    maxDeletions: 100\n    maxDeletePercent: 50\n"
        + local_nodes(len(reservations)))


# Roomy local nodes for the generated repo (at most 3 replicas of 500m CPU / 256Mi per
# reservation): a cpu node per 250 reservations, a gpu node per 500.
CPU_NODE = '      - {{name: cpu-{i:03d}, processor: cpu, cpu: "256", memory: 1Ti, pods: 1000}}\n'
GPU_NODE = ('      - {{name: gpu-{i:03d}, processor: gpu, cpu: "256", memory: 1Ti, gpu: 1000, '
            'pods: 1000}}\n')


def local_nodes(reservations: int) -> str:
    """Settings.spec.local with nodes that fit every replica of the generated repo."""
    nodes = [CPU_NODE.format(i=i) for i in range(max(2, reservations // 250))]
    nodes += [GPU_NODE.format(i=i) for i in range(max(2, reservations // 500))]
    return "  local:\n    nodes:\n" + "".join(nodes)


GIT_IDENTITY = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
                "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}


def git(out: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    done = subprocess.run(["git", "-C", str(out), *args], check=True, capture_output=True,
                          text=True, env=env)
    return done.stdout.strip()


def commit_all(out: Path, message: str) -> str:
    """Commit every file of `out` (a Git repository made here if it is none); the commit id."""
    if not (out / ".git").exists():
        git(out, "init", "--quiet", "--initial-branch=main")
    git(out, "add", "--all")
    git(out, "commit", "--quiet", "--allow-empty", "-m", message)
    return git(out, "rev-parse", "HEAD")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reservations", type=int, default=10_000, help="N (default 10000)")
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--git", action="store_true",
                        help="make DIR a Git repository (branch main) and commit the files")
    args = parser.parse_args()
    counts = generate(args.reservations, args.out, args.seed)
    where = str(args.out)
    if args.git:
        where += f" (commit {commit_all(args.out, f'{args.reservations} reservations')[:12]})"
    print(" ".join(f"{k}={v}" for k, v in counts.items()), f"-> {where}")


if __name__ == "__main__":
    main()
