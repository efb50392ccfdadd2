"""Structural validation with the JSON Schemas in `schemas/`, in human words.

The schema files are the single source of the structural rules (editors use
the same files). jsonschema's own messages ("Additional properties are not
allowed ('replicsa' was unexpected)") are translated here into one line per
problem naming the field path and what was expected versus what was written.
jsonschema is imported only when a file actually needs validating, so a
cached run never pays for it.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib.resources
import json
import re
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import reconciler
from reconciler.config import fastschema
from reconciler.config.documents import ParsedDoc, Pos, RawDiag, nearest
from reconciler.errors import ReconcilerError


def _schema_dir() -> Traversable:
    """The schemas shipped inside the package (reconciler/schemas/, put there by the build
    from the top-level schemas/); in a source checkout, that top-level folder itself."""
    packaged = importlib.resources.files(reconciler) / "schemas"
    if packaged.is_dir():
        return packaged
    return Path(reconciler.__file__).resolve().parent.parent / "schemas"


SCHEMA_DIR = _schema_dir()
KIND_FILES = {
    "Account": "account.json", "Algorithm": "algorithm.json", "Reservation": "reservation.json",
    "CapacityLimit": "capacitylimit.json", "Settings": "settings.json",
}
ENVELOPE = "envelope.json"


@functools.cache
def schema_fingerprint() -> str:
    """Hash of every schema file: part of the cache salt, so editing a schema
    invalidates every cached validation."""
    digest = hashlib.sha256()
    for name, data in schema_sources().items():
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()


@functools.cache
def schema_sources() -> dict[str, bytes]:
    """file name -> bytes of every schema file; a ReconcilerError (not a KeyError later)
    when the installation lacks them."""
    try:
        found = {item.name: item.read_bytes() for item in SCHEMA_DIR.iterdir()
                 if item.name.endswith(".json")}
    except OSError:
        found = {}
    missing = sorted({*KIND_FILES.values(), ENVELOPE} - set(found))
    if missing:
        raise ReconcilerError(f"this installation of reconciler has no JSON Schemas in "
                              f"{SCHEMA_DIR} (missing {', '.join(missing)}): reinstall it")
    return dict(sorted(found.items()))


def load_schemas() -> dict[str, dict[str, Any]]:
    """file name -> parsed schema, as shipped (with their relative $refs)."""
    return {name: json.loads(data) for name, data in schema_sources().items()}


def inline_refs(node: Any, file: str, schemas: dict[str, dict[str, Any]]) -> Any:
    """A copy of a schema with every $ref replaced by its target.

    Resolving references through jsonschema's registry costs more than half
    of validation time; our schemas are not recursive, so they can be
    flattened once. Only "FILE#/$defs/NAME" and "#/$defs/NAME" refs are used."""
    if isinstance(node, list):
        return [inline_refs(item, file, schemas) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: inline_refs(value, file, schemas) for key, value in node.items() if key != "$ref"}
    if "$ref" in node:
        target_file, _, pointer = node["$ref"].partition("#")
        target_file = target_file or file
        target: Any = schemas[target_file]
        for part in filter(None, pointer.split("/")):
            target = target[part]
        resolved = inline_refs(target, target_file, schemas)
        out = {**resolved, **out} if out else resolved
    return out


@functools.cache
def _flat_schemas() -> dict[str, dict[str, Any]]:
    schemas = load_schemas()
    flat = {name: inline_refs(schema, name, schemas) for name, schema in schemas.items()}
    for schema in flat.values():
        schema.pop("$defs", None)
    return flat


@functools.cache
def _validators() -> dict[str, Any]:
    from jsonschema import Draft202012Validator, ValidationError, validators

    def pattern(validator: Any, pattern: str, instance: Any, _: Any) -> Any:
        """"pattern" with ECMA-262 semantics, as JSON Schema specifies (jsonschema
        uses Python's re as is: "^[a-z]+$" would accept "bob\\n")."""
        if validator.is_type(instance, "string") and not fastschema.ecma_regex(
                pattern).search(instance):
            yield ValidationError(f"{instance!r} does not match {pattern!r}")

    ecma = validators.extend(Draft202012Validator, {"pattern": pattern})
    return {name: ecma(schema) for name, schema in _flat_schemas().items()}


@functools.cache
def _fast_checks() -> dict[str, fastschema.Check | None]:
    return {name: fastschema.compile_schema(schema) for name, schema in _flat_schemas().items()}


def validate(doc: ParsedDoc) -> list[RawDiag]:
    """Every structural problem of one document, located at its field."""
    data = doc.data
    if not isinstance(data, dict):
        return [(doc.line, doc.col, "", f"a document must be a mapping with apiVersion, kind, "
                                        f"metadata and spec, got {describe(data)}", "error")]
    kind = data.get("kind")
    name = (KIND_FILES.get(kind) if isinstance(kind, str) else None) or ENVELOPE
    fast = _fast_checks()[name]
    if fast is not None and fast(data):
        return []  # certainly valid: no need for jsonschema
    validator = _validators()[name]
    seen: set[tuple[str, str]] = set()
    diags: list[RawDiag] = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
        for path, message, pos in _translate(error, doc):
            if (path, message) not in seen:
                seen.add((path, message))
                diags.append((pos[0], pos[1], path, message, "error"))
    return diags


def dotted(parts: Any) -> str:
    """["spec", "versions", 1, "commit"] -> "spec.versions[1].commit"."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(value: Any) -> str:
    """What was written, for "expected vs got" messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"{'integer' if isinstance(value, int) else 'number'} {value}"
    if isinstance(value, str):
        return f"{value!r}" if len(value) <= 80 else f"{value[:77]!r}..."
    if isinstance(value, dict):
        return "a mapping"
    return "a list"


_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string",
               "integer": "an integer", "number": "a number", "boolean": "true or false",
               "null": "null"}


def _where(doc: ParsedDoc, path: str) -> Pos:
    return nearest(doc.locs, path, (doc.line, doc.col))


def _translate(error: Any, doc: ParsedDoc) -> list[tuple[str, str, Pos]]:
    path = dotted(error.absolute_path)
    keyword, expected, got = error.validator, error.validator_value, error.instance
    custom = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    if custom:
        return [(path, custom, _where(doc, path))]
    if keyword == "additionalProperties":
        return _unknown_fields(error, doc, path)
    if keyword == "required":
        missing = re.match(r"'(.+)' is a required property", error.message)
        field = missing.group(1) if missing else "?"
        return [(_join(path, field), "missing required field", _where(doc, path))]
    if keyword == "dependentRequired":
        match = re.match(r"'(.+)' is a dependency of '(.+)'", error.message)
        dep, prop = match.groups() if match else ("?", "?")
        child = _join(path, prop)
        return [(child, f"needs {dep} as well (set {dep}, or remove {prop})", _where(doc, child))]
    return [(path, _message(keyword, expected, got, error), _where(doc, path))]


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def _message(keyword: str, expected: Any, got: Any, error: Any) -> str:
    if keyword == "type":
        kinds = [expected] if isinstance(expected, str) else list(expected)
        words = " or ".join(_TYPE_WORDS.get(kind, kind) for kind in kinds)
        hint = ""
        if "string" in kinds and isinstance(got, int | float) and not isinstance(got, bool):
            hint = " (YAML read it as a number: quote it)"
        return f"must be {words}, got {describe(got)}{hint}"
    if keyword == "enum":
        hint = _suggest(got, [str(v) for v in expected])
        return f"must be one of {', '.join(map(str, expected))}, got {describe(got)}{hint}"
    if keyword == "const":
        return f"must be {expected}, got {describe(got)}"
    if keyword == "pattern":
        message = error.schema.get("patternErrorMessage") or f"must match {expected}"
        return f"{message}, got {describe(got)}"
    if keyword in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=",
              "exclusiveMaximum": "<"}[keyword]
        return f"must be {op} {expected}, got {got}"
    if keyword == "maxLength":
        return f"must be at most {expected} characters, got {len(got)}"
    if keyword == "minLength":
        return "must not be empty" if expected == 1 else f"must be at least {expected} characters"
    if keyword == "minItems":
        return f"must have at least {expected} item{'s' if expected != 1 else ''}, got {len(got)}"
    if keyword == "uniqueItems":
        dups = sorted({str(x) for x in got if got.count(x) > 1})
        return f"items must be unique, got {', '.join(dups)} more than once"
    return error.message  # type: ignore[no-any-return]


def _suggest(got: Any, choices: list[str]) -> str:
    if not isinstance(got, str):
        return ""
    close = difflib.get_close_matches(got, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _unknown_fields(error: Any, doc: ParsedDoc, path: str) -> list[tuple[str, str, Pos]]:
    known = list(error.schema.get("properties", {}))
    out = []
    for key in error.instance:
        if key in known:
            continue
        child = _join(path, str(key))
        hint = _suggest(str(key), known)
        if not hint:
            hint = f" (expected one of {', '.join(known)})" if known else ""
        pos = doc.keys.get(child) or _where(doc, path)
        out.append((child, f"unknown field{hint}", pos))
    return out
