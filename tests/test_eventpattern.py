"""The EventBridge pattern matcher: unit semantics, and agreement with moto's EventBridge."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from rootwatch.detection import rule as detection
from rootwatch.detection.eventpattern import EventPatternError, matches

CORPUS = json.loads((Path(__file__).parent / "data" / "cloudtrail_corpus.json").read_text())["cases"]

EVENT: dict[str, Any] = {
    "source": "aws.iam",
    "detail-type": "AWS API Call via CloudTrail",
    "detail": {
        "eventName": "CreateAccessKey",
        "eventType": "AwsApiCall",
        "userIdentity": {"type": "Root", "accountId": "222222222222"},
        "count": 5,
        "ratio": 0.5,
        "flag": True,
        "nothing": None,
        "tags": ["blue", "green"],
        "items": [{"name": "a", "size": 1}, {"name": "b", "size": 9}],
        "sourceIPAddress": "10.0.3.7",
        "empty": {},
    },
}


def d(detail: dict[str, Any]) -> dict[str, Any]:
    return {"detail": detail}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({}, True),
        ({"source": ["aws.iam"]}, True),
        ({"source": ["aws.s3", "aws.iam"]}, True),
        ({"source": ["aws.s3"]}, False),
        ({"source": ["AWS.IAM"]}, False),  # case-sensitive
        (d({"userIdentity": {"type": ["Root"]}}), True),
        (d({"userIdentity": {"type": ["IAMUser"]}}), False),
        (d({"userIdentity": {"invokedBy": [{"exists": False}]}}), True),
        (d({"userIdentity": {"invokedBy": [{"exists": True}]}}), False),
        (d({"eventName": [{"exists": True}]}), True),
        (d({"nothing": [{"exists": True}]}), True),  # present with null
        (d({"nothing": [None]}), True),
        (d({"eventName": [None]}), False),
        (d({"missing": [None]}), False),
        (d({"eventType": [{"anything-but": "AwsServiceEvent"}]}), True),
        (d({"eventType": [{"anything-but": ["AwsApiCall", "x"]}]}), False),
        (d({"missing": [{"anything-but": "x"}]}), False),  # needs the field present
        (d({"nothing": [{"anything-but": "x"}]}), True),  # null is a value
        (d({"eventName": [{"anything-but": {"prefix": "Create"}}]}), False),
        (d({"eventName": [{"anything-but": {"suffix": "Key"}}]}), False),
        (d({"eventName": [{"anything-but": {"equals-ignore-case": "createaccesskey"}}]}), False),
        (d({"eventName": [{"prefix": "Create"}]}), True),
        (d({"eventName": [{"prefix": {"equals-ignore-case": "create"}}]}), True),
        (d({"eventName": [{"suffix": "AccessKey"}]}), True),
        (d({"eventName": [{"suffix": "accesskey"}]}), False),
        (d({"eventName": [{"equals-ignore-case": "createaccesskey"}]}), True),
        (d({"eventName": [{"wildcard": "Create*Key"}]}), True),
        (d({"eventName": [{"wildcard": "Create*Role"}]}), False),
        (d({"eventName": [{"wildcard": "Create\\*Key"}]}), False),  # escaped star is literal
        (d({"count": [5]}), True),
        (d({"count": [5.0]}), True),
        (d({"count": ["5"]}), False),  # type-sensitive
        (d({"flag": [True]}), True),
        (d({"flag": [1]}), False),
        (d({"count": [True]}), False),
        (d({"count": [{"numeric": [">", 0, "<=", 5]}]}), True),
        (d({"count": [{"numeric": ["<", 5]}]}), False),
        (d({"ratio": [{"numeric": ["=", 0.5]}]}), True),
        (d({"eventName": [{"numeric": [">", 0]}]}), False),
        (d({"sourceIPAddress": [{"cidr": "10.0.0.0/16"}]}), True),
        (d({"sourceIPAddress": [{"cidr": "192.168.0.0/16"}]}), False),
        (d({"tags": ["green"]}), True),  # any array element
        (d({"tags": ["red"]}), False),
        (d({"tags": [{"anything-but": "blue"}]}), True),
        (d({"items": {"name": ["b"]}}), True),  # arrays of objects flatten
        (d({"items": {"size": [{"numeric": [">", 5]}]}}), True),
        (d({"userIdentity": [{"exists": False}]}), True),  # an object is not a leaf
        (d({"userIdentity": ["Root"]}), False),
        (d({"userIdentity": {"type": ["Root"]}, "eventName": ["Nope"]}), False),  # all keys must match
        ({"$or": [{"source": ["aws.s3"]}, d({"count": [5]})]}, True),
        ({"$or": [{"source": ["aws.s3"]}, d({"count": [6]})]}, False),
        (d({"$or": [{"eventName": ["x"]}, {"userIdentity": {"type": ["Root"]}}]}), True),
        ({"source": ["aws.iam"], "$or": [{"source": ["aws.s3"]}, {"detail-type": ["x"]}]}, False),
    ],
)
def test_semantics(pattern: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, EVENT) is expected


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ({"source": "aws.iam"}, "must be an object or an array"),
        ({"source": []}, "empty arrays"),
        ({"source": [{"cidr-ish": "x"}]}, "unsupported filter 'cidr-ish'"),
        ({"source": [{"prefix": "a", "suffix": "b"}]}, "exactly one key"),
        ({"source": [{"exists": "yes"}]}, "exists takes true or false"),
        ({"source": [{"numeric": [">"]}]}, "numeric takes"),
        ({"source": [{"anything-but": {"numeric": [">", 1]}}]}, "anything-but takes"),
        ({"source": [{"cidr": "not-a-net"}]}, "is not a network"),
        ({"source": [["nested"]]}, "unsupported value"),
        ({"$or": [{"source": ["a"]}]}, "at least two objects"),
    ],
)
def test_invalid_patterns_raise(pattern: dict[str, Any], fragment: str) -> None:
    with pytest.raises(EventPatternError) as err:
        matches(pattern, EVENT)
    assert fragment in str(err.value)


def test_pattern_must_be_an_object() -> None:
    with pytest.raises(EventPatternError):
        matches([{"source": ["x"]}], EVENT)  # type: ignore[arg-type]


# -- agreement with moto's EventBridge (rule -> SQS target) -----------------------

# Extra patterns beyond the deployed ones, to cross-check the operators we rely on.
CROSS_CHECK_PATTERNS: list[dict[str, Any]] = [
    *detection.eventbridge_patterns(),
    {"detail": {"userIdentity": {"invokedBy": [{"exists": True}]}}},
    {"detail": {"eventType": [{"anything-but": ["AwsApiCall", "AwsConsoleSignIn"]}]}},
    {"detail": {"eventName": [{"prefix": "Create"}], "userIdentity": {"type": ["Root"]}}},
    {"detail": {"errorCode": [{"exists": True}]}, "detail-type": ["AWS API Call via CloudTrail"]},
    {"source": ["aws.signin"], "detail": {"responseElements": {"ConsoleLogin": ["Failure"]}}},
]


def _drain(sqs: Any, url: str) -> set[str]:
    ids: set[str] = set()
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return ids
        for msg in got:
            ids.add(json.loads(msg["Body"])["detail"]["eventID"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])


def test_matcher_agrees_with_moto_eventbridge_on_every_corpus_record(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    import jsonpath_ng.ext
    import moto

    # moto re-parses the same JSONPath (rebuilding a parser, ~0.1 s) for every
    # delivered event; parsing is pure, so caching it only saves time.
    monkeypatch.setattr(jsonpath_ng.ext, "parse", functools.lru_cache(maxsize=None)(jsonpath_ng.ext.parse))
    records = [c["record"] for c in CORPUS]
    events = [detection.wrap_eventbridge(r) for r in records]
    with moto.mock_aws():
        ev = boto3.client("events", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        queues = []
        for i, pattern in enumerate(CROSS_CHECK_PATTERNS):
            url = sqs.create_queue(QueueName=f"q{i}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            ev.put_rule(Name=f"r{i}", EventPattern=json.dumps(pattern))
            ev.put_targets(Rule=f"r{i}", Targets=[{"Id": "q", "Arn": arn}])
            queues.append(url)
        for start in range(0, len(events), 10):  # PutEvents takes at most 10 entries
            entries = [{"Source": e["source"], "DetailType": e["detail-type"], "Detail": json.dumps(e["detail"])}
                       for e in events[start:start + 10]]
            assert ev.put_events(Entries=entries)["FailedEntryCount"] == 0
        for pattern, url in zip(CROSS_CHECK_PATTERNS, queues):
            delivered = _drain(sqs, url)
            ours = {e["detail"]["eventID"] for e in events if matches(pattern, e)}
            assert ours == delivered, f"pattern {json.dumps(pattern)}: only ours {ours - delivered}, only moto {delivered - ours}"
    deployed = {r["eventID"] for r in records if any(matches(p, detection.wrap_eventbridge(r)) for p in detection.eventbridge_patterns())}
    assert deployed == {c["record"]["eventID"] for c in CORPUS if c["expect"]["detected"]}
