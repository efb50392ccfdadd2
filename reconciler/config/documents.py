"""Plain parsed documents: the values the parser produces and the cache stores.

Kept apart from the parser so that a fully cached run never imports yaml.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

Pos = tuple[int, int]  # 1-based (line, col)
# A diagnostic before it knows its file: (line, col, path, message, severity)
RawDiag = tuple[int, int, str, str, str]


@dataclass(slots=True)
class ParsedDoc:
    """One YAML document as plain values, with positions by dotted field path.

    `locs` holds the value's position for scalars and the key's (or the
    sequence item's) position for collections; `keys` holds every mapping
    key's own position, for "unknown field" diagnostics."""

    data: Any
    line: int
    col: int
    locs: dict[str, Pos] = field(default_factory=dict)
    keys: dict[str, Pos] = field(default_factory=dict)


# Packed positions, the cached form: the field paths (one tuple shared by every
# document of the same shape, so pickle stores it once per file) and their
# (line, col) pairs as the bytes of an unsigned-int array.
PackedLocs = tuple[tuple[str, ...], bytes]


def pack_locs(locs: dict[str, Pos], shapes: dict[tuple[str, ...], tuple[str, ...]]) -> PackedLocs:
    paths = tuple(locs)
    paths = shapes.setdefault(paths, paths)
    flat = array("I", [n for pos in locs.values() for n in pos])
    return paths, flat.tobytes()


LOC_BYTES = 2 * array("I").itemsize  # packed bytes per field path


def unpack_locs(packed: PackedLocs) -> dict[str, Pos]:
    paths, raw = packed
    flat = array("I")
    flat.frombytes(raw)
    return {path: (flat[2 * i], flat[2 * i + 1]) for i, path in enumerate(paths)}


def nearest(locs: Mapping[str, T], path: str, default: T) -> T:
    """The entry of a dotted field path, else of its nearest located parent
    ("spec.versions[0].x" -> "spec"), else `default`."""
    while path:
        if path in locs:
            return locs[path]
        path = path.rpartition(".")[0]
    return default
