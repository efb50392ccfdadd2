"""The fast schema check never vouches for a document jsonschema rejects.

Every field of every document of the base repo and config-examples is
mutated (removed, retyped, emptied, given a sibling typo) and both checks
are asked; the fast one may doubt a valid document, never the reverse.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.conftest import BASE
from reconciler.config import schema
from reconciler.config.parse import parse_text

EXAMPLES = Path(__file__).resolve().parents[2] / "config-examples"
VALUES: list[Any] = [None, True, 0, -1, 2.0, 1.5, "", "x", "x\n", "UPPER", "1.2.3", "1.2.3\n",
                     "data://a/b/c", "2026-01-01T00:00:00Z\n",
                     "sha256:" + "0" * 64, "0" * 40, [], ["x", "x"], {}, {"x": 1}]


def documents() -> list[dict[str, Any]]:
    texts = list(BASE.values()) + [p.read_text() for p in EXAMPLES.rglob("*.yaml")
                                   if ".github" not in p.parts]
    return [doc.data for text in texts for doc in parse_text(str(text))[0]]


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix + (key,)
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield prefix + (i,)
            yield from paths(value, prefix + (i,))


def mutations(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for path in list(paths(doc)):
        for value in VALUES + ["__delete__", "__sibling__"]:
            clone = copy.deepcopy(doc)
            parent = clone
            for part in path[:-1]:
                parent = parent[part]
            last = path[-1]
            if value == "__delete__":
                del parent[last]
            elif value == "__sibling__":
                if isinstance(parent, dict):
                    parent[f"{last}x"] = parent[last]
            else:
                parent[last] = value
            yield clone


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")
def test_fast_check_is_one_sided(doc: dict[str, Any]) -> None:
    name = schema.KIND_FILES[doc["kind"]]
    fast = schema._fast_checks()[name]
    validator = schema._validators()[name]
    envelope_fast = schema._fast_checks()[schema.ENVELOPE]
    envelope = schema._validators()[schema.ENVELOPE]
    assert fast is not None and fast(doc) and validator.is_valid(doc)
    for mutated in mutations(doc):
        if fast(mutated):
            assert validator.is_valid(mutated), mutated
        if envelope_fast and envelope_fast(mutated):
            assert envelope.is_valid(mutated), mutated
