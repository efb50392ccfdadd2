"""Safe YAML parsing with a location for every field.

Why not `yaml.safe_load`: it forgets where values were written, silently keeps
the last of two duplicate keys, and expands aliases without bound. Here libyaml
(the C composer, when present) builds the node graph — aliases stay shared
nodes, so composing a "billion laughs" file is cheap — and a small walker turns
nodes into plain JSON-like values while it records line/column per field path,
rejects duplicate keys and stops after a fixed budget of nodes per document.
No tags are ever executed: only the YAML core schema's scalars are built.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import yaml

from reconciler.config.documents import ParsedDoc, Pos, RawDiag

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - libyaml is present on supported machines
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_NODES_PER_DOCUMENT = 100_000  # alias bombs stop here, in milliseconds
MAX_DEPTH = 64
# libyaml's C composer recurses once per nesting level on the C stack, with no
# limit: some 20,000 levels (`[[[[...` is one byte each) crash the process with
# SIGSEGV before the walker can count them. A document whose nesting could pass
# this bound is first measured from the parser's events (which keep no stack),
# and refused there when it is deeper than the walker would allow.
_SAFE_NESTING_BOUND = 1_000
_DOCUMENT_MARKER = re.compile(r"^(?:---|\.\.\.)(?=[ \t\r\n]|$)", re.MULTILINE)
_BREAKS = "\n\r\x85\u2028\u2029"  # PyYAML's line breaks
_DEEP_INDENT = re.compile(f"[{_BREAKS}] {{{_SAFE_NESTING_BOUND // 2}}}")

STR = "tag:yaml.org,2002:str"
MERGE = "tag:yaml.org,2002:merge"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = {
    "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
}

class YamlProblem(Exception):
    """A document cannot be turned into values; carries its position."""

    def __init__(self, message: str, pos: Pos, path: str = "") -> None:
        super().__init__(message)
        self.message, self.pos, self.path = message, pos, path


def _pos(node: yaml.Node) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


_constructor = yaml.constructor.SafeConstructor()


class _Walker:
    """Turns one composed document into values; a fresh one per document."""

    def __init__(self, doc: ParsedDoc) -> None:
        self.doc = doc
        self.budget = MAX_NODES_PER_DOCUMENT
        self.top = ""  # the top-level field being walked: where an alias bomb is reported

    def value(self, node: yaml.Node, path: str, depth: int) -> Any:
        self.budget -= 1
        if self.budget < 0:
            pos = self.doc.keys.get(self.top) or (self.doc.line, self.doc.col)
            raise YamlProblem(
                f"document expands to more than {MAX_NODES_PER_DOCUMENT} nodes "
                "(alias bomb?); refused", pos, self.top)
        if depth > MAX_DEPTH:
            raise YamlProblem(f"nested deeper than {MAX_DEPTH} levels; refused", _pos(node), path)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != SEQ:
                raise YamlProblem(f"unsupported tag {node.tag}", _pos(node), path)
            return [self.item(child, f"{path}[{i}]", depth) for i, child in enumerate(node.value)]
        if node.tag != MAP or not isinstance(node, yaml.MappingNode):
            raise YamlProblem(f"unsupported tag {node.tag}", _pos(node), path)
        return self.mapping(node, path, depth)

    def item(self, node: yaml.Node, path: str, depth: int) -> Any:
        self.doc.locs[path] = _pos(node)
        return self.value(node, path, depth + 1)

    def scalar(self, node: yaml.ScalarNode, path: str) -> Any:
        if node.tag == STR or node.tag == "tag:yaml.org,2002:timestamp":
            # timestamps stay as written (compiledAt is text); short strings are
            # interned so the cache pickles each distinct one once per file
            value: str = node.value
            return sys.intern(value) if len(value) <= 24 else value
        if node.tag in _SCALAR_TAGS:
            try:
                return _constructor.construct_object(node)
            except ValueError:  # an int past Python's 4,300-digit limit: a traceback before
                raise YamlProblem(f"a number of {len(node.value)} characters is too long to "
                                  "read; refused", _pos(node), path) from None
        raise YamlProblem(f"unsupported tag {node.tag} (only plain YAML is accepted)",
                          _pos(node), path)

    def mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
                merged.update(self.merge(value_node, path, depth))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlProblem("mapping keys must be plain strings", _pos(key_node), path)
            key = sys.intern(str(self.scalar(key_node, path)))
            child = f"{path}.{key}" if path else key
            if key in result:
                line, col = self.doc.keys[child]
                raise YamlProblem(f"duplicate key {key!r} (first at line {line}, column {col})",
                                  _pos(key_node), child)
            self.doc.keys[child] = _pos(key_node)
            if not path:
                self.top = child
            scalar = isinstance(value_node, yaml.ScalarNode)
            self.doc.locs[child] = _pos(value_node) if scalar else _pos(key_node)
            result[key] = self.value(value_node, child, depth + 1)
        for key, value in merged.items():
            result.setdefault(key, value)
        return result

    def merge(self, node: yaml.Node, path: str, depth: int) -> dict[str, Any]:
        """`<<: *anchor` (or a list of anchors): earlier sources win, explicit keys win."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in reversed(sources):
            if not isinstance(source, yaml.MappingNode):
                raise YamlProblem("merge key << needs a mapping", _pos(source), path)
            merged.update(self.mapping(source, path, depth + 1))
        return merged


def _mark_pos(exc: yaml.MarkedYAMLError) -> Pos:
    mark = exc.problem_mark or exc.context_mark
    return (mark.line + 1, mark.column + 1) if mark else (1, 1)


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    return "YAML syntax error: " + ("; ".join(parts) or "cannot parse")


def _may_nest_deeply(text: str) -> bool:
    """False when no document of `text` can nest past _SAFE_NESTING_BOUND levels.

    A cheap upper bound, never an underestimate: a nesting level opens only at a
    flow bracket, a block indicator (`-`, `?`; a `:` value at most once more per
    `?`) or a deeper indentation, and never across a document marker (`---` or
    `...` at the start of a line ends any scalar)."""
    half = _SAFE_NESTING_BOUND // 2
    if _DEEP_INDENT.search(text):
        return True
    return any(len(part) > half and 2 * sum(map(part.count, "[{-?")) > half
               for part in _DOCUMENT_MARKER.split(text))


def _too_deep(text: str) -> Pos | None:
    """Where a document first nests more collections than the walker allows, from the
    parser's events (no recursion); None when none does, or when the events stop at a
    syntax error (composing the file reports it)."""
    loader = _Loader(text)
    depth = 0
    try:
        while True:
            event = loader.get_event()
            if event is None:
                return None
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH + 1:
                    mark = event.start_mark
                    return (mark.line + 1, mark.column + 1) if mark else (1, 1)
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()


def parse_text(text: str) -> tuple[list[ParsedDoc], list[RawDiag]]:
    """Every non-empty document of a file, and the problems that stopped parsing.

    A syntax error ends the file (libyaml cannot resynchronise), but the
    documents before it are kept so that they still take part in the rules."""
    docs: list[ParsedDoc] = []
    if _may_nest_deeply(text):
        deep = _too_deep(text)
        if deep is not None:
            return docs, [(deep[0], deep[1], "", f"nested deeper than {MAX_DEPTH} levels; "
                           "refused", "error")]
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
                continue
            line, col = _pos(node)
            doc = ParsedDoc(None, line, col)
            doc.data = _Walker(doc).value(node, "", 0)
            docs.append(doc)
    except yaml.MarkedYAMLError as exc:
        line, col = _mark_pos(exc)
        return docs, [(line, col, "", _syntax_message(exc), "error")]
    except yaml.YAMLError as exc:
        return docs, [(1, 1, "", f"YAML error: {exc}", "error")]
    except YamlProblem as exc:
        return docs, [(exc.pos[0], exc.pos[1], exc.path, exc.message, "error")]
    except RecursionError:
        return docs, [(1, 1, "", f"nested deeper than {MAX_DEPTH} levels; refused", "error")]
    finally:
        loader.dispose()
    return docs, []


def decode(raw: bytes) -> tuple[str | None, list[RawDiag]]:
    """UTF-8 text of a file, or a diagnostic at the first byte that is not UTF-8."""
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        start = exc.start
        line = raw.count(b"\n", 0, start) + 1
        col = start - (raw.rfind(b"\n", 0, start) + 1) + 1
        bad = raw[start:start + 1].hex()
        return None, [(line, col, "", f"not UTF-8: byte 0x{bad} cannot be decoded "
                                      "(save the file as UTF-8)", "error")]
