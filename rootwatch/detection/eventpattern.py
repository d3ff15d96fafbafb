"""Offline matcher for Amazon EventBridge event patterns.

``matches(pattern, event)`` answers what a rule with that pattern would do with
that event, so the deployed rules can be replayed on stored CloudTrail records
(and checked against moto's EventBridge in the tests).

Semantics follow EventBridge's content filtering:
- a pattern is a JSON object; each key either nests (an object) or lists the
  allowed values of a leaf (a non-empty array, any one of which may match);
- all keys must match; ``"$or": [p1, p2, ...]`` matches if any sub-pattern does;
- arrays in the event are flattened: a leaf matches if any element does;
- exact values are type-sensitive ("5" is not 5, true is not 1); numbers
  compare numerically; ``null`` matches JSON null;
- a missing field matches only ``{"exists": false}``; every other filter,
  ``anything-but`` included, needs the field present. An object is not a leaf.

Supported filters: exact values, ``prefix``, ``suffix``, ``equals-ignore-case``,
``wildcard``, ``anything-but`` (value, list, or prefix/suffix/wildcard/
equals-ignore-case), ``numeric``, ``exists`` and ``cidr``. Anything else
raises ``EventPatternError`` rather than silently not matching.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

_MISSING: Any = object()


class EventPatternError(ValueError):
    """The pattern is malformed or uses a filter this matcher does not support."""


def matches(pattern: dict[str, Any], event: Mapping[str, Any]) -> bool:
    """True when an EventBridge rule with ``pattern`` would receive ``event``."""
    if not isinstance(pattern, Mapping):
        raise EventPatternError(f"event pattern must be a JSON object, not {type(pattern).__name__}")
    return _match_object(pattern, [event], "")


def _match_object(pattern: Mapping[str, Any], nodes: list[Any], where: str) -> bool:
    for key, sub in pattern.items():
        if key == "$or":
            if not _match_or(sub, nodes, where):
                return False
            continue
        path = f"{where}.{key}" if where else key
        children = _children(nodes, key)
        if isinstance(sub, Mapping):
            if not _match_object(sub, children, path):
                return False
        elif isinstance(sub, list):
            if not _match_leaf(sub, children, path):
                return False
        else:
            raise EventPatternError(f"{path}: must be an object or an array, not {type(sub).__name__}")
    return True


def _match_or(alternatives: Any, nodes: list[Any], where: str) -> bool:
    if not isinstance(alternatives, list) or len(alternatives) < 2 or not all(isinstance(a, Mapping) for a in alternatives):
        raise EventPatternError(f"{where or '<top>'}.$or: must be an array of at least two objects")
    return any(_match_object(alt, nodes, where) for alt in alternatives)


def _children(nodes: list[Any], key: str) -> list[Any]:
    """Values under ``key`` in every object node, with arrays flattened."""
    out: list[Any] = []
    for node in nodes:
        if isinstance(node, Mapping) and key in node:
            _flatten_into(node[key], out)
    return out


def _flatten_into(value: Any, out: list[Any]) -> None:
    if isinstance(value, list):
        for item in value:
            _flatten_into(item, out)
    else:
        out.append(value)


def _match_leaf(filters: list[Any], values: list[Any], path: str) -> bool:
    if not filters:
        raise EventPatternError(f"{path}: empty arrays are not allowed")
    leaves = [v for v in values if not isinstance(v, Mapping)]
    return any(_filter_matches(f, leaves, path) for f in filters)


def _filter_matches(f: Any, leaves: list[Any], path: str) -> bool:
    if not isinstance(f, Mapping):
        _check_scalar(f, path)
        return any(_same_value(f, v) for v in leaves)
    if len(f) != 1:
        raise EventPatternError(f"{path}: a filter object must have exactly one key, got {sorted(f)}")
    (name, arg), = f.items()
    if name == "exists":
        if not isinstance(arg, bool):
            raise EventPatternError(f"{path}: exists takes true or false")
        return bool(leaves) == arg
    test = _value_test(name, arg, path)
    return any(test(v) for v in leaves)


def _check_scalar(value: Any, path: str) -> None:
    if not (value is None or isinstance(value, (str, bool, int, float))):
        raise EventPatternError(f"{path}: unsupported value {value!r}")


def _same_value(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool) or expected is None or actual is None:
        return expected is actual or (type(expected) is type(actual) and expected == actual)
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return float(expected) == float(actual)
    return type(expected) is type(actual) and expected == actual


def _value_test(name: str, arg: Any, path: str) -> Callable[[Any], bool]:
    """Compile one named filter (other than exists) into a test of one leaf value."""
    if name == "prefix":
        return _affix_test(arg, path, str.startswith)
    if name == "suffix":
        return _affix_test(arg, path, str.endswith)
    if name == "equals-ignore-case":
        texts = _strings(arg, path, name)
        folded = {t.casefold() for t in texts}
        return lambda v: isinstance(v, str) and v.casefold() in folded
    if name == "wildcard":
        regexes = [_wildcard_regex(t) for t in _strings(arg, path, name)]
        return lambda v: isinstance(v, str) and any(rx.fullmatch(v) for rx in regexes)
    if name == "anything-but":
        return _anything_but(arg, path)
    if name == "numeric":
        return _numeric_test(arg, path)
    if name == "cidr":
        return _cidr_test(arg, path)
    raise EventPatternError(f"{path}: unsupported filter {name!r}")


def _strings(arg: Any, path: str, name: str) -> list[str]:
    items = arg if isinstance(arg, list) else [arg]
    if not items or not all(isinstance(i, str) for i in items):
        raise EventPatternError(f"{path}: {name} takes a string or a list of strings")
    return items


def _affix_test(arg: Any, path: str, method: Callable[[str, str], bool]) -> Callable[[Any], bool]:
    if isinstance(arg, Mapping) and set(arg) == {"equals-ignore-case"}:
        folded = [t.casefold() for t in _strings(arg["equals-ignore-case"], path, "equals-ignore-case")]
        return lambda v: isinstance(v, str) and any(method(v.casefold(), t) for t in folded)
    texts = _strings(arg, path, "prefix/suffix")
    return lambda v: isinstance(v, str) and any(method(v, t) for t in texts)


def _wildcard_regex(text: str) -> re.Pattern[str]:
    # "*" is any run of characters; "\*" is a literal star.
    parts = re.split(r"(\\\*|\*)", text)
    body = "".join(".*" if p == "*" else re.escape("*") if p == "\\*" else re.escape(p) for p in parts)
    return re.compile(body, re.DOTALL)


def _anything_but(arg: Any, path: str) -> Callable[[Any], bool]:
    if isinstance(arg, Mapping):
        if len(arg) != 1 or next(iter(arg)) not in ("prefix", "suffix", "wildcard", "equals-ignore-case"):
            raise EventPatternError(f"{path}: anything-but takes a value, a list, or prefix/suffix/wildcard/equals-ignore-case")
        (name, inner), = arg.items()
        test = _value_test(name, inner, path)
        return lambda v: not test(v)
    excluded = arg if isinstance(arg, list) else [arg]
    for e in excluded:
        _check_scalar(e, path)
    return lambda v: not any(_same_value(e, v) for e in excluded)


_NUMERIC_CMP: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _numeric_test(arg: Any, path: str) -> Callable[[Any], bool]:
    ok = isinstance(arg, list) and len(arg) in (2, 4)
    pairs = list(zip(arg[::2], arg[1::2])) if ok else []
    if not ok or not all(op in _NUMERIC_CMP and isinstance(n, (int, float)) and not isinstance(n, bool) for op, n in pairs):
        raise EventPatternError(f"{path}: numeric takes [op, number] or [op, number, op, number]")
    checks = [(_NUMERIC_CMP[op], float(n)) for op, n in pairs]
    return lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool)
                      and all(cmp(float(v), n) for cmp, n in checks))


def _cidr_test(arg: Any, path: str) -> Callable[[Any], bool]:
    try:
        network = ipaddress.ip_network(arg, strict=False)
    except (TypeError, ValueError) as exc:
        raise EventPatternError(f"{path}: cidr {arg!r} is not a network: {exc}") from None

    def test(v: Any) -> bool:
        try:
            return isinstance(v, str) and ipaddress.ip_address(v) in network
        except ValueError:
            return False
    return test
