"""A small valid config repo that the rule tests break one way at a time."""

from __future__ import annotations

import pytest

C1 = "1a" * 20  # sentiment 1.0.0 public
C2 = "2b" * 20  # sentiment 1.1.0 private
C3 = "3c" * 20  # sentiment unpublished
C4 = "4d" * 20  # embed 2.0.0 public
D = "sha256:" + "a" * 64

HEAD = "apiVersion: reconciler/v1\n"

ACCOUNTS = f"""{HEAD}kind: Account
metadata: {{name: acme}}
spec:
  type: organization
  members: [alice, bob]
---
{HEAD}kind: Account
metadata: {{name: alice}}
spec: {{type: user}}
---
{HEAD}kind: Account
metadata: {{name: bob}}
spec: {{type: user}}
---
{HEAD}kind: Account
metadata: {{name: carol}}
spec: {{type: user}}
"""

ALGORITHMS = f"""{HEAD}kind: Algorithm
metadata: {{name: sentiment}}
spec:
  owner: acme
  processor: cpu
  resources: {{cpu: 500m, memory: 256Mi, gpu: 0}}
  image: registry.example/acme/sentiment
  entrypoint: sentiment:apply
  versions:
    - commit: {C1}
      version: 1.0.0
      visibility: public
      compiledAt: 2026-10-01T10:00:00Z
      model: {{path: data://acme/sentiment/m1.json, digest: {D}}}
    - commit: {C2}
      version: 1.1.0
      visibility: private
      compiledAt: 2026-10-02T10:00:00Z
      model: {{path: data://acme/sentiment/m2.json, digest: {D}}}
    - commit: {C3}
      visibility: unpublished
      compiledAt: 2026-10-03T10:00:00Z
      model: {{path: data://acme/sentiment/m3.json, digest: {D}}}
---
{HEAD}kind: Algorithm
metadata: {{name: embed}}
spec:
  owner: acme
  processor: gpu
  resources: {{cpu: "1", memory: 1Gi, gpu: 1}}
  image: registry.example/acme/embed
  entrypoint: embed:apply
  versions:
    - commit: {C4}
      version: 2.0.0
      visibility: public
      compiledAt: "2026-10-01T10:00:00Z"
      model: {{path: data://acme/embed/e.json, digest: {D}}}
"""

RESERVATIONS = f"""{HEAD}kind: Reservation
metadata: {{name: alice-sentiment}}
spec:
  caller: alice
  algorithm: acme/sentiment
  versionType: latest-public
  replicas: 2
---
{HEAD}kind: Reservation
metadata: {{name: carol-sentiment}}
spec:
  caller: carol
  algorithm: acme/sentiment/1.0.0
  versionType: semantic
  replicas: 1
---
{HEAD}kind: Reservation
metadata: {{name: bob-embed}}
spec:
  caller: bob
  algorithm: acme/embed
  versionType: latest-public
  replicas: 1
"""

LIMITS = f"""{HEAD}kind: CapacityLimit
metadata: {{name: alice-capacity}}
spec:
  account: alice
  maxEngines: 5
---
{HEAD}kind: CapacityLimit
metadata: {{name: bob-capacity}}
spec:
  account: bob
  maxEngines: 2
  maxGpus: 1
---
{HEAD}kind: CapacityLimit
metadata: {{name: sentiment-1-0-0}}
spec:
  algorithm: acme/sentiment/1.0.0
  minimumParallelCapacity: 1
  maximumParallelCapacity: 4
"""

BASE = {
    "accounts.yaml": ACCOUNTS,
    "algorithms/algorithms.yaml": ALGORITHMS,
    "reservations/reservations.yaml": RESERVATIONS,
    "limits.yaml": LIMITS,
}


@pytest.fixture
def base_files() -> dict[str, str | bytes]:
    return dict(BASE)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line containing needle (tests compute expected lines)."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[nth - 1]
