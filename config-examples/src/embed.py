"""globex/embed: a toy text "embedding" (local runtime example, processor gpu).

Hashes each token into one of `dimensions` buckets and returns the normalized
vector. Runs on the CPU when no real GPU exists; no heavy dependencies.
The model file is JSON: {"dimensions": 16, "salt": "..."}.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any


def load(model_path: str) -> dict[str, Any]:
    with open(model_path, encoding="utf-8") as handle:
        return dict(json.load(handle))


def apply(input: Any, model: dict[str, Any]) -> dict[str, Any]:
    """Embed a text (a string, or {"text": ...}) as a unit vector."""
    text = input.get("text", "") if isinstance(input, dict) else str(input)
    size = int(model["dimensions"])
    vector = [0.0] * size
    for token in text.lower().split():
        digest = hashlib.sha256((model["salt"] + token).encode()).digest()
        bucket = int.from_bytes(digest[:4], "big") % size
        vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return {"vector": [round(x / norm, 4) for x in vector], "dimensions": size}
