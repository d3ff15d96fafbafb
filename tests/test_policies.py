"""Every policy document the program writes, walked: no service principal acts without a source condition.

A service principal (cloudwatch, events, sns, cloudtrail, logs, lambda, s3 logging...) allowed
on a key, topic, queue, bucket, bus or role without ``aws:SourceAccount`` / ``aws:SourceArn``
(or the encryption context the service documents) can be used by that service on behalf of
another account: the confused deputy (issue 19). The walk covers the example, explicit and
prevention stacks, every resource input that holds a policy document, and Lambda permissions.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from rootwatch.program import mockrun

POLICY_INPUTS = ("policy", "assumeRolePolicy", "accessPolicy", "content")
SOURCE_KEYS = {"aws:sourceaccount", "aws:sourcearn", "aws:sourceorgid"}
# Services whose documented condition is on the encryption context, not on the source.
CONTEXT_PREFIX = "kms:encryptioncontext:"


def documents(run: mockrun.Run) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for r in run.resources:
        for key in POLICY_INPUTS:
            raw = r.inputs.get(key)
            if not isinstance(raw, str) or not raw.lstrip().startswith("{"):
                continue
            doc = json.loads(raw)
            if isinstance(doc, dict) and "Statement" in doc:
                yield r.name, key, doc


def unconditioned(doc: dict[str, Any]) -> list[str]:
    bad = []
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    for i, st in enumerate(statements):
        principal = st.get("Principal")
        services = principal.get("Service") if isinstance(principal, dict) else None
        if st.get("Effect") != "Allow" or not services:
            continue
        keys = {k.lower() for ops in (st.get("Condition") or {}).values() for k in ops}
        if not (keys & SOURCE_KEYS or any(k.startswith(CONTEXT_PREFIX) for k in keys)):
            bad.append(f"{st.get('Sid') or i}: {services}")
    return bad


@pytest.fixture(scope="module", params=["example", "explicit", "prevention"])
def run(request: pytest.FixtureRequest) -> mockrun.Run:
    return mockrun.run(request.param)


def test_every_service_principal_is_conditioned_on_its_source(run: mockrun.Run) -> None:
    found = {(name, key): unconditioned(doc) for name, key, doc in documents(run)}
    assert len(found) > 20  # the walk saw the keys, topics, queues, buckets, bus and roles
    assert {k: v for k, v in found.items() if v} == {}


def test_every_lambda_permission_names_its_source(run: mockrun.Run) -> None:
    permissions = run.by_type("aws:lambda/permission:Permission")
    assert permissions or run.stack != "example"
    for p in permissions:
        assert p.inputs.get("sourceArn") or p.inputs.get("sourceAccount"), p.name


def test_the_walk_would_catch_an_unconditioned_grant() -> None:
    doc = {"Statement": [{"Sid": "Open", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                          "Action": "sns:Publish", "Resource": "*"},
                         {"Sid": "Ok", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                          "Action": "sqs:SendMessage", "Resource": "*",
                          "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:1:t"}}}]}
    assert unconditioned(doc) == ["Open: events.amazonaws.com"]


def test_the_alert_key_grants_only_what_sns_asks_kms_for() -> None:
    from rootwatch.program.alerting import alert_key_policy

    (use,) = [s for s in alert_key_policy("111111111111", "us-east-1")["Statement"] if s["Sid"] == "AllowAlarmDelivery"]
    assert use["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]  # not GenerateDataKey*
