"""A fast, conservative yes-check compiled from the same JSON Schema files.

jsonschema is general and slow (about 1 s per 10,000 small documents here).
Almost every document of a real repo is valid, so we first ask a check
compiled into plain Python closures: "certainly valid?". Only a document it
does not vouch for is handed to jsonschema, which stays the reference and the
source of every message. The contract is one-sided: the check may doubt a
valid document (then jsonschema decides), but must never vouch for an invalid
one. Keywords it does not know make `compile_schema` return None, and
jsonschema then checks every document of that kind.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]
_ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "default", "examples",
                "patternErrorMessage", "errorMessage", "$defs", "deprecated"}


class Unsupported(Exception):
    """A keyword or shape the fast check does not model exactly."""


def compile_schema(schema: Any) -> Check | None:
    try:
        return _compile(schema)[0]
    except Unsupported:
        return None


def _compile(schema: Any) -> tuple[Check, bool]:
    """(check, exact): `exact` when a False from check means certainly invalid,
    which `not` and `if` need."""
    if schema is True:
        return (lambda _: True), True
    if schema is False:
        return (lambda _: False), True
    if not isinstance(schema, dict):
        raise Unsupported(repr(schema))
    checks: list[Check] = []
    exact = True
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS or keyword in ("then", "else", "properties",
                                                  "additionalProperties"):
            continue
        builder = _KEYWORDS.get(keyword)
        if builder is None:
            raise Unsupported(keyword)
        check, is_exact = builder(value, schema)
        checks.append(check)
        exact = exact and is_exact
    if "properties" in schema or "additionalProperties" in schema:
        check, is_exact = _object(schema)
        checks.append(check)
        exact = exact and is_exact
    if len(checks) == 1:
        return checks[0], exact
    return (lambda x: all(c(x) for c in checks)), exact


def _type(value: Any, _: dict[str, Any]) -> tuple[Check, bool]:
    names = [value] if isinstance(value, str) else list(value)
    tests = {
        "string": lambda x: isinstance(x, str),
        "object": lambda x: isinstance(x, dict),
        "array": lambda x: isinstance(x, list),
        "boolean": lambda x: isinstance(x, bool),
        "null": lambda x: x is None,
        # 2.0 is an integer to JSON Schema; doubting floats keeps this one-sided
        "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
        "number": lambda x: isinstance(x, int | float) and not isinstance(x, bool),
    }
    if any(name not in tests for name in names):
        raise Unsupported(f"type {names}")
    selected = [tests[name] for name in names]
    exact = "integer" not in names or "number" in names
    return (lambda x: any(t(x) for t in selected)), exact


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _enum(value: Any, _: dict[str, Any]) -> tuple[Check, bool]:
    if not all(isinstance(v, str) for v in value):
        raise Unsupported("enum of non-strings")
    allowed = frozenset(value)
    return (lambda x: isinstance(x, str) and x in allowed), True


def _const(value: Any, schema: dict[str, Any]) -> tuple[Check, bool]:
    return _enum([value], schema)


# ECMA-262 (which JSON Schema's "pattern" specifies) versus Python's re: `$`
# matches only at the very end (Python: also before a final "\n"); \d and \w
# are ASCII (Python: any Unicode digit / word character); \s is ECMA's own set;
# `.` matches no line terminator (Python: anything but "\n").
_SPACE = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_IN_CLASS = {r"\d": "0-9", r"\w": "A-Za-z0-9_", r"\s": _SPACE}
_OUTSIDE = {"$": r"\Z", ".": r"[^\n\r\u2028\u2029]",
            **{token: f"[{chars}]" for token, chars in _IN_CLASS.items()},
            **{token.upper(): f"[^{chars}]" for token, chars in _IN_CLASS.items()}}


@functools.cache
def ecma_regex(pattern: str) -> re.Pattern[str]:
    """A Python regex that matches as the ECMA-262 `pattern` does, for the
    syntax JSON Schemas use (no flags, no lookbehind). Both checkers search
    with it (jsonschema through schema.py's validator, and the fast check
    here), so they agree, and both refuse "bob\n" for "^[a-z]+$"."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        token = pattern[i:i + 2] if pattern[i] == "\\" else pattern[i]
        i += len(token)
        if in_class:
            in_class = token != "]"
            out.append(_IN_CLASS.get(token, token))
        elif token == "[" and pattern[i:i + 1] == "]":  # ECMA: [] matches nothing
            out.append("(?!)")
            i += 1
        elif token == "[" and pattern[i:i + 2] == "^]":  # ECMA: [^] matches anything
            out.append("[\\s\\S]")
            i += 2
        elif token == "[":
            in_class = True
            out.append(token)
        else:
            out.append(_OUTSIDE.get(token, token))
    return re.compile("".join(out))


def _pattern(value: str, _: dict[str, Any]) -> tuple[Check, bool]:
    search = ecma_regex(value).search
    return (lambda x: not isinstance(x, str) or search(x) is not None), True


def _bound(op: Callable[[Any, Any], bool]) -> Callable[[Any, dict[str, Any]], tuple[Check, bool]]:
    def build(limit: Any, _: dict[str, Any]) -> tuple[Check, bool]:
        return (lambda x: not _is_number(x) or op(x, limit)), True
    return build


def _length(op: Callable[[int, int], bool],
            kind: type[str] | type[list[Any]] | type[dict[str, Any]]) -> Any:
    def build(limit: int, _: dict[str, Any]) -> tuple[Check, bool]:
        def check(x: Any) -> bool:
            return not isinstance(x, kind) or op(len(x), limit)
        return check, True
    return build


def _required(names: list[str], _: dict[str, Any]) -> tuple[Check, bool]:
    return (lambda x: not isinstance(x, dict) or all(n in x for n in names)), True


def _dependent_required(deps: dict[str, list[str]], _: dict[str, Any]) -> tuple[Check, bool]:
    def check(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        return all(d in x for key, needed in deps.items() if key in x for d in needed)
    return check, True


def _items(value: Any, _: dict[str, Any]) -> tuple[Check, bool]:
    item, exact = _compile(value)
    return (lambda x: not isinstance(x, list) or all(item(i) for i in x)), exact


def _unique(value: bool, _: dict[str, Any]) -> tuple[Check, bool]:
    if not value:
        return (lambda _: True), True

    def check(x: Any) -> bool:
        if not isinstance(x, list):
            return True
        if not all(isinstance(i, str) for i in x):
            return False  # doubt: let jsonschema compare mixed items
        return len(set(x)) == len(x)
    return check, False


def _all_of(value: list[Any], _: dict[str, Any]) -> tuple[Check, bool]:
    compiled = [_compile(s) for s in value]
    checks = [c for c, _ in compiled]
    return (lambda x: all(c(x) for c in checks)), all(e for _, e in compiled)


def _any_of(value: list[Any], _: dict[str, Any]) -> tuple[Check, bool]:
    compiled = [_compile(s) for s in value]
    checks = [c for c, _ in compiled]
    return (lambda x: any(c(x) for c in checks)), all(e for _, e in compiled)


def _not(value: Any, _: dict[str, Any]) -> tuple[Check, bool]:
    inner, exact = _compile(value)
    if not exact:
        raise Unsupported("not over an inexact check")
    return (lambda x: not inner(x)), True


def _if(value: Any, schema: dict[str, Any]) -> tuple[Check, bool]:
    condition, exact = _compile(value)
    if not exact:
        raise Unsupported("if over an inexact check")
    then, then_exact = _compile(schema.get("then", True))
    other, else_exact = _compile(schema.get("else", True))
    return (lambda x: then(x) if condition(x) else other(x)), then_exact and else_exact


def _object(schema: dict[str, Any]) -> tuple[Check, bool]:
    compiled = {name: _compile(sub) for name, sub in schema.get("properties", {}).items()}
    props = {name: c for name, (c, _) in compiled.items()}
    exact = all(e for _, e in compiled.values())
    extra = schema.get("additionalProperties", True)
    extra_check, extra_exact = _compile(extra)

    def check(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        for key, value in x.items():
            sub = props.get(key)
            if sub is None:
                if extra is False or not extra_check(value):
                    return False
            elif not sub(value):
                return False
        return True
    return check, exact and extra_exact


_KEYWORDS: dict[str, Callable[[Any, dict[str, Any]], tuple[Check, bool]]] = {
    "type": _type, "enum": _enum, "const": _const, "pattern": _pattern,
    "minimum": _bound(lambda x, n: x >= n), "maximum": _bound(lambda x, n: x <= n),
    "exclusiveMinimum": _bound(lambda x, n: x > n), "exclusiveMaximum": _bound(lambda x, n: x < n),
    "minLength": _length(lambda n, m: n >= m, str), "maxLength": _length(lambda n, m: n <= m, str),
    "minItems": _length(lambda n, m: n >= m, list), "maxItems": _length(lambda n, m: n <= m, list),
    "minProperties": _length(lambda n, m: n >= m, dict),
    "maxProperties": _length(lambda n, m: n <= m, dict),
    "required": _required, "dependentRequired": _dependent_required, "items": _items,
    "uniqueItems": _unique, "allOf": _all_of, "anyOf": _any_of, "not": _not, "if": _if,
}
