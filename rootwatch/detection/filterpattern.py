"""Offline evaluator for CloudWatch Logs JSON filter patterns.

``compile_pattern(text)`` parses a pattern once and returns a closure
``match(record) -> bool``; replaying millions of CloudTrail records then costs
one closure call per record instead of a parse.

The grammar follows AWS's FilterAndPatternSyntax page for JSON patterns:

    pattern    := "{" or_expr "}"
    or_expr    := and_expr ("||" and_expr)*        # && binds tighter than ||
    and_expr   := primary ("&&" primary)*
    primary    := "(" or_expr ")" | test
    test       := SELECTOR OP VALUE
                | SELECTOR "NOT EXISTS" | SELECTOR "IS NULL"
                | SELECTOR "IS TRUE"    | SELECTOR "IS FALSE"
    SELECTOR   := "$" ("." NAME | "[" INDEX "]")+
    OP         := "=" | "!=" | "<" | "<=" | ">" | ">="
    VALUE      := "quoted string" | bare-word | number

Semantics (where AWS's page is silent, the choice is noted):
- strings compare case-sensitively; ``*`` in a string value is a wildcard;
- a bare number after = or != compares numerically; < <= > >= need a number;
- a selector that resolves to an object or array never matches, not even
  ``NOT EXISTS`` or ``!=`` (it exists, and it is not a value);
- a missing field fails every comparison, ``!=`` included (use NOT EXISTS);
- a string value compared to a number or boolean field compares with its JSON
  text, so ``$.code = "2*"`` matches 200 (choice);
- ``IS NULL`` needs the field present with JSON null; ``NOT EXISTS`` needs it absent.

Anything outside this grammar raises ``PatternError`` naming what and where:
a pattern we cannot evaluate must never silently match nothing. That includes
term and space-delimited patterns, ``%regex%`` values, ``[*]`` selectors and a
bare ``EXISTS`` (not in AWS's grammar; ``$.x = "*"`` is the documented idiom).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_PATTERN_LENGTH = 1024  # CloudWatch Logs rejects longer filter patterns

Matcher = Callable[[Any], bool]


class PatternError(ValueError):
    """The pattern is invalid or uses syntax this evaluator does not support."""


_MISSING: Any = object()  # sentinel: the selector points at nothing

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<punct>&&|\|\||!=|<=|>=|[{}()=<>])
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<selector>\$[^\s=!<>(){}&|"]*)
  | (?P<regex>%[^%]*%)
  | (?P<word>[^\s=!<>(){}&|"]+)
    """,
    re.VERBOSE,
)
_SELECTOR_STEP_RE = re.compile(r"\.([A-Za-z0-9_\-@:]+)|\[(\d+)\]")
_NUMBER_RE = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_COMPARISON_OPS = ("=", "!=", "<", "<=", ">", ">=")


@dataclass(frozen=True)
class _Token:
    kind: str  # punct | string | selector | word | end
    text: str
    col: int  # 1-based column in the pattern, for error messages


def compile_pattern(text: str) -> Callable[[Mapping[str, Any]], bool]:
    """Parse a JSON filter pattern into ``match(record) -> bool``; raise PatternError."""
    if not isinstance(text, str):
        raise PatternError(f"pattern must be a string, not {type(text).__name__}")
    if len(text) > MAX_PATTERN_LENGTH:
        raise PatternError(f"pattern is {len(text)} characters; CloudWatch Logs allows at most {MAX_PATTERN_LENGTH}")
    return _Parser(text, _tokenize(text)).parse()


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None and text[pos] == '"':
            raise PatternError(f"unterminated string starting at column {pos + 1}")
        if m is None:
            raise PatternError(f"unexpected character {text[pos]!r} at column {pos + 1}")
        kind = m.lastgroup or ""
        if kind == "regex":
            raise PatternError(f"regular expressions (%...%) are not supported, at column {pos + 1}: {m.group()!r}")
        if kind != "ws":
            tokens.append(_Token(kind, m.group(), pos + 1))
        pos = m.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    """Recursive descent over the token list; each rule returns a compiled closure."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0

    def parse(self) -> Matcher:
        if not self.text.strip():
            raise PatternError("empty pattern: an empty metric filter matches every event; write { ... }")
        first = self._peek()
        if first.text != "{":
            raise PatternError(
                f"only JSON filter patterns {{ ... }} are supported; term and space-delimited patterns are not (column {first.col})"
            )
        self._next()
        matcher = self._or_expr()
        self._expect("}")
        end = self._peek()
        if end.kind != "end":
            raise PatternError(f"unexpected {end.text!r} after the closing brace, at column {end.col}")
        return matcher

    # -- token helpers ------------------------------------------------------

    def _peek(self) -> _Token:
        return self.tokens[self.i]

    def _next(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _expect(self, text: str) -> _Token:
        tok = self._next()
        if tok.text != text or tok.kind not in ("punct",):
            raise PatternError(f"expected {text!r} at column {tok.col}, found {_describe(tok)}")
        return tok

    # -- grammar ------------------------------------------------------------

    def _or_expr(self) -> Matcher:
        parts = [self._and_expr()]
        while self._peek().text == "||" and self._peek().kind == "punct":
            self._next()
            parts.append(self._and_expr())
        return parts[0] if len(parts) == 1 else _any_of(parts)

    def _and_expr(self) -> Matcher:
        parts = [self._primary()]
        while self._peek().text == "&&" and self._peek().kind == "punct":
            self._next()
            parts.append(self._primary())
        return parts[0] if len(parts) == 1 else _all_of(parts)

    def _primary(self) -> Matcher:
        tok = self._peek()
        if tok.kind == "punct" and tok.text == "(":
            self._next()
            inner = self._or_expr()
            self._expect(")")
            return inner
        if tok.kind == "selector":
            return self._test()
        raise PatternError(f"expected a selector like $.field or '(' at column {tok.col}, found {_describe(tok)}")

    def _test(self) -> Matcher:
        sel = self._next()
        path = _parse_selector(sel)
        tok = self._next()
        if tok.kind == "punct" and tok.text in _COMPARISON_OPS:
            return self._comparison(path, tok)
        if tok.kind == "word" and tok.text in ("NOT", "IS"):
            return self._keyword_test(path, tok)
        if tok.kind == "word" and tok.text == "EXISTS":
            raise PatternError(
                f"'{sel.text} EXISTS' is not in CloudWatch Logs' grammar (column {tok.col}); use {sel.text} = \"*\" or NOT EXISTS"
            )
        raise PatternError(f"expected an operator (= != < <= > >=), NOT EXISTS or IS ... after {sel.text} at column {tok.col}, found {_describe(tok)}")

    def _keyword_test(self, path: tuple[str | int, ...], first: _Token) -> Matcher:
        second = self._next()
        phrase = f"{first.text} {second.text}"
        get = _getter(path)
        if phrase == "NOT EXISTS":
            return lambda r: get(r) is _MISSING
        if phrase == "IS NULL":
            return lambda r: get(r) is None
        if phrase == "IS TRUE":
            return lambda r: get(r) is True
        if phrase == "IS FALSE":
            return lambda r: get(r) is False
        raise PatternError(f"unsupported test {phrase!r} at column {first.col}; expected NOT EXISTS, IS NULL, IS TRUE or IS FALSE")

    def _comparison(self, path: tuple[str | int, ...], op: _Token) -> Matcher:
        val = self._next()
        if val.kind == "string":
            literal: str | float = _unquote(val)
        elif val.kind == "word":
            literal = float(val.text) if _NUMBER_RE.fullmatch(val.text) else val.text
        else:
            raise PatternError(f"expected a value after {op.text!r} at column {val.col}, found {_describe(val)}")
        if op.text in ("=", "!="):
            positive = _numeric_equals(path, literal) if isinstance(literal, float) else _string_equals(path, literal)
            return positive if op.text == "=" else _differs(path, positive)
        if not isinstance(literal, float):
            raise PatternError(f"{op.text!r} needs a number at column {val.col}, found {val.text!r}")
        return _numeric_compare(path, op.text, literal)


# -- compiled building blocks ------------------------------------------------


def _describe(tok: _Token) -> str:
    return "end of pattern" if tok.kind == "end" else repr(tok.text)


def _parse_selector(tok: _Token) -> tuple[str | int, ...]:
    body = tok.text[1:]
    steps: list[str | int] = []
    pos = 0
    while pos < len(body):
        m = _SELECTOR_STEP_RE.match(body, pos)
        if m is None:
            raise PatternError(f"unsupported selector {tok.text!r} at column {tok.col}: only $.name and $.name[0] steps are supported")
        steps.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not steps:
        raise PatternError(f"selector '$' alone selects the whole event, which never matches (column {tok.col})")
    return tuple(steps)


def _unquote(tok: _Token) -> str:
    # Only \" and \\ are meaningful escapes; anything else keeps its backslash.
    return re.sub(r'\\(["\\])', r"\1", tok.text[1:-1])


def _getter(path: tuple[str | int, ...]) -> Callable[[Any], Any]:
    """Return a function resolving ``path`` in a record, or _MISSING."""
    if len(path) == 2 and all(isinstance(s, str) for s in path):
        a, b = path  # the common case ($.userIdentity.type): skip the loop

        def get2(r: Any) -> Any:
            # type() first: parsed JSON is dicts, and isinstance(x, Mapping) is an ABC check (slow).
            inner = r.get(a, _MISSING) if type(r) is dict or isinstance(r, Mapping) else _MISSING
            return inner.get(b, _MISSING) if type(inner) is dict or isinstance(inner, Mapping) else _MISSING

        return get2

    def get(r: Any) -> Any:
        cur = r
        for step in path:
            if isinstance(step, str):
                if type(cur) is not dict and not isinstance(cur, Mapping):
                    return _MISSING
                cur = cur.get(step, _MISSING)
            else:
                if not isinstance(cur, list) or step >= len(cur):
                    return _MISSING
                cur = cur[step]
            if cur is _MISSING:
                return _MISSING
        return cur

    return get


_SCALARS = (str, int, float, bool, type(None))


def _is_scalar(v: Any) -> bool:
    return type(v) in _SCALARS or (v is not _MISSING and not isinstance(v, (Mapping, list)))


def _json_text(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    return None  # null has no string form; IS NULL tests it


def _string_equals(path: tuple[str | int, ...], literal: str) -> Matcher:
    get = _getter(path)
    if "*" not in literal:
        def eq(r: Any) -> bool:
            v = get(r)
            return v == literal if isinstance(v, str) else _json_text(v) == literal if _is_scalar(v) else False
        return eq
    regex = re.compile(".*".join(re.escape(part) for part in literal.split("*")), re.DOTALL)

    def wild(r: Any) -> bool:
        v = get(r)
        if not _is_scalar(v):
            return False
        s = _json_text(v)
        return s is not None and regex.fullmatch(s) is not None
    return wild


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numeric_equals(path: tuple[str | int, ...], literal: float) -> Matcher:
    get = _getter(path)
    return lambda r: _is_number(v := get(r)) and v == literal


_NUMERIC_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _numeric_compare(path: tuple[str | int, ...], op: str, literal: float) -> Matcher:
    get = _getter(path)
    cmp = _NUMERIC_OPS[op]
    return lambda r: _is_number(v := get(r)) and cmp(v, literal)


def _differs(path: tuple[str | int, ...], positive: Matcher) -> Matcher:
    # != needs a scalar value to compare: missing fields and containers fail.
    get = _getter(path)
    return lambda r: _is_scalar(get(r)) and not positive(r)


def _all_of(parts: list[Matcher]) -> Matcher:
    if len(parts) == 2:
        a, b = parts
        return lambda r: a(r) and b(r)
    if len(parts) == 3:
        a, b, c = parts  # the CIS pattern's shape: unrolled for speed
        return lambda r: a(r) and b(r) and c(r)
    return lambda r: all(p(r) for p in parts)


def _any_of(parts: list[Matcher]) -> Matcher:
    if len(parts) == 2:
        a, b = parts
        return lambda r: a(r) or b(r)
    return lambda r: any(p(r) for p in parts)
