"""The CloudWatch Logs JSON filter-pattern evaluator: grammar, semantics, errors."""

from __future__ import annotations

from typing import Any

import pytest

from rootwatch.detection.filterpattern import (
    MAX_PATTERN_LENGTH,
    PatternError,
    compile_pattern,
)
from rootwatch.detection.rule import CIS_PATTERN

EVENT: dict[str, Any] = {
    "eventType": "AwsApiCall",
    "eventName": "StopLogging",
    "userIdentity": {"type": "Root", "accountId": "222222222222", "sessionContext": {"attributes": {"mfaAuthenticated": "false"}}},
    "sourceIPAddress": "123.123.10.20",
    "latency": 250,
    "ratio": 0.5,
    "errorFlag": True,
    "okFlag": False,
    "nothing": None,
    "tags": ["a", "b"],
    "users": [{"id": 1, "email": "John.Doe@example.com"}, {"id": 2}],
    "label": "with space",
    "quoted": 'say "hi"',
}


def m(pattern: str, event: dict[str, Any] = EVENT) -> bool:
    return compile_pattern(pattern)(event)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ('{ $.eventType = "AwsApiCall" }', True),
        ('{$.eventType="AwsApiCall"}', True),
        ('{ $.eventType = "awsapicall" }', False),  # case-sensitive
        ("{ $.eventType = AwsApiCall }", True),  # bare word value
        ('{ $.eventType != "AwsServiceEvent" }', True),
        ('{ $.eventType != "AwsApiCall" }', False),
        ('{ $.userIdentity.type = "Root" }', True),
        ('{ $.userIdentity.sessionContext.attributes.mfaAuthenticated = "false" }', True),
        ("{ $.sourceIPAddress = 123.123.* }", True),  # AWS's own example
        ("{ $.sourceIPAddress != 123.123.* }", False),
        ('{ $.eventName = "*Logging" }', True),
        ('{ $.eventName = "Stop*ing" }', True),
        ('{ $.eventName = "Start*" }', False),
        ('{ $.label = "with space" }', True),
        ('{ $.quoted = "say \\"hi\\"" }', True),
        ("{ $.latency = 250 }", True),
        ("{ $.latency = 250.0 }", True),
        ("{ $.latency != 250 }", False),
        ("{ $.latency > 75 }", True),
        ("{ $.latency >= 250 }", True),
        ("{ $.latency < 250 }", False),
        ("{ $.latency <= 1e3 }", True),
        ("{ $.ratio < .75 }", True),
        ("{ $.latency > -1 }", True),
        ('{ $.latency = "25*" }', True),  # string pattern vs number: JSON text
        ("{ $.eventName > 5 }", False),  # numeric op on a string field
        ("{ $.errorFlag IS TRUE }", True),
        ("{ $.okFlag IS FALSE }", True),
        ("{ $.okFlag IS TRUE }", False),
        ("{ $.nothing IS NULL }", True),
        ("{ $.missing IS NULL }", False),
        ("{ $.missing NOT EXISTS }", True),
        ("{ $.nothing NOT EXISTS }", False),  # present with null
        ("{ $.userIdentity.invokedBy NOT EXISTS }", True),
        ("{ $.eventName.deeper NOT EXISTS }", True),  # path through a string
        ('{ $.tags[0] = "a" }', True),
        ('{ $.tags[1] = "a" }', False),
        ("{ $.tags[5] NOT EXISTS }", True),
        ('{ $.users[0].email = "John.*" }', True),
        ("{ $.users[1].id = 2 }", True),
        ('{ $.missing != "x" }', False),  # a comparison needs a value
    ],
)
def test_comparisons_and_tests(pattern: str, expected: bool) -> None:
    assert m(pattern) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        '{ $.userIdentity = "*" }',
        '{ $.userIdentity != "x" }',
        "{ $.userIdentity NOT EXISTS }",
        "{ $.userIdentity IS NULL }",
        '{ $.tags = "a" }',
        '{ $.tags != "zzz" }',
        "{ $.users > 0 }",
    ],
)
def test_selector_on_object_or_array_never_matches(pattern: str) -> None:
    assert m(pattern) is False


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # && binds tighter than ||: true || (false && false)
        ('{ $.eventType = "AwsApiCall" || $.latency = 1 && $.latency = 2 }', True),
        # (true || false) && false
        ('{ ($.eventType = "AwsApiCall" || $.latency = 1) && $.latency = 2 }', False),
        ('{ $.latency = 1 && $.latency = 2 || $.okFlag IS FALSE }', True),
        ('{ (($.latency = 250)) }', True),
        ('{ ($.latency = 250 && ($.tags[0] = "x" || $.tags[1] = "b")) }', True),
        ('{ $.a NOT EXISTS && $.b NOT EXISTS && $.c NOT EXISTS && $.latency = 250 }', True),
        ('{ $.latency = 1 || $.latency = 2 || $.latency = 3 }', False),
    ],
)
def test_precedence_and_parentheses(pattern: str, expected: bool) -> None:
    assert m(pattern) is expected


def test_cis_pattern_verbatim() -> None:
    match = compile_pattern(CIS_PATTERN)
    root = {"userIdentity": {"type": "Root"}, "eventType": "AwsApiCall"}
    assert match(root)
    assert not match({**root, "userIdentity": {"type": "Root", "invokedBy": "support.amazonaws.com"}})
    assert not match({**root, "eventType": "AwsServiceEvent"})
    assert not match({**root, "userIdentity": {"type": "IAMUser"}})
    assert not match({"eventType": "AwsApiCall"})
    assert not match({"userIdentity": {"type": "Root"}})  # no eventType: != needs a value


def test_accepts_any_mapping_and_non_objects() -> None:
    from types import MappingProxyType

    match = compile_pattern('{ $.userIdentity.type = "Root" }')
    assert match(MappingProxyType({"userIdentity": MappingProxyType({"type": "Root"})}))
    assert not match([])  # type: ignore[arg-type]  # a JSON array event never matches an object selector
    assert not match("Root")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("", "empty pattern"),
        ("ERROR", "only JSON filter patterns"),
        ("[ip, user, ...]", "only JSON filter patterns"),
        ('{ $.eventName = %Stop.*% }', "regular expressions"),
        ("{ $.a EXISTS }", "EXISTS' is not in CloudWatch Logs' grammar"),
        ("{ $.a IS NOT NULL }", "unsupported test 'IS NOT'"),
        ('{ $.a[*].b = "x" }', "unsupported selector"),
        ('{ $..a = "x" }', "unsupported selector"),
        ('{ $ = "x" }', "whole event"),
        ('{ $.a = "x" ', "expected '}'"),
        ('{ ($.a = "x" }', "expected ')'"),
        ('{ $.a = "x" }}', "after the closing brace"),
        ('{ $.a = "x" && }', "expected a selector"),
        ('{ $.a "x" }', "expected an operator"),
        ("{ $.a = }", "expected a value"),
        ('{ $.a > "x" }', "needs a number"),
        ('{ $.a = "x" & $.b = "y" }', "unexpected character '&'"),
        ('{ a = "x" }', "expected a selector"),
        ('{ $.a = "x }', "unterminated string starting at column 9"),
    ],
)
def test_unsupported_or_invalid_patterns_raise(pattern: str, fragment: str) -> None:
    with pytest.raises(PatternError) as err:
        compile_pattern(pattern)
    assert fragment in str(err.value)


def test_error_says_where() -> None:
    with pytest.raises(PatternError, match="column 20"):
        compile_pattern('{ $.a = "x" && $.b $.c }')


def test_pattern_error_is_a_value_error() -> None:
    assert issubclass(PatternError, ValueError)


def test_length_limit() -> None:
    body = '{ $.a = "' + "x" * 100 + '" }'
    padded = body[:-1] + " " * (MAX_PATTERN_LENGTH - len(body)) + "}"
    assert len(padded) == MAX_PATTERN_LENGTH
    assert compile_pattern(padded)({"a": "x" * 100})
    with pytest.raises(PatternError, match="1025 characters"):
        compile_pattern(padded + " ")
