"""Where alerts go: the per-account KMS key, one SNS topic per reachable level, subscriptions.

Policy documents are pure functions of account, region and names, so tests can
assert them exactly and ARNs never wait on cloud outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pulumi
import pulumi_aws as aws

from rootwatch.core.arns import partition
from rootwatch.core.severity import Severity
from rootwatch.program.settings import Subscription

TOPIC_PREFIX = "rootwatch-alerts"
KEY_ALIAS = "alias/rootwatch-alerts"
# Services that publish to the alert topics and so must use its key. A topic on
# the AWS-managed alias/aws/sns key silently drops CloudWatch alarm notifications.
# Only CloudWatch alarms publish to them: every EventBridge rule sends to the hub's bus
# or its formatter, so events.amazonaws.com gets no use of the key. A rule that targets a
# topic needs it here too (the topic policy's EventBridgePublish alone is not enough: KMS
# refuses and the delivery fails silently), and without a source condition, which KMS does
# not receive for EventBridge deliveries.
KEY_USER_SERVICES = ("cloudwatch.amazonaws.com",)
# What SNS asks KMS for on a publisher's behalf (SNS Developer Guide, "Enable compatibility
# between event sources from AWS services and encrypted topics"): nothing broader.
KEY_USER_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")


def topic_name(level: Severity) -> str:
    return f"{TOPIC_PREFIX}-{level.value}"


def topic_arn(account_id: str, region: str, level: Severity) -> str:
    return f"arn:{partition(region)}:sns:{region}:{account_id}:{topic_name(level)}"


def alert_key_policy(account_id: str, region: str) -> dict[str, Any]:
    root = f"arn:{partition(region)}:iam::{account_id}:root"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # Lets IAM policies in the account govern the key (AWS's default statement).
                "Sid": "EnableAccountIamPolicies",
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                # Confused deputy: only this account's alarms may make CloudWatch use the key
                # (CloudWatch passes aws:SourceAccount/SourceArn to KMS when SNS encrypts its
                # notification; `rootwatch drill` proves the path live, alarm to inbox).
                "Sid": "AllowAlarmDelivery",
                "Effect": "Allow",
                "Principal": {"Service": list(KEY_USER_SERVICES)},
                "Action": list(KEY_USER_ACTIONS),
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnLike": {"aws:SourceArn": f"arn:{partition(region)}:cloudwatch:*:{account_id}:alarm:*"},
                },
            },
        ],
    }


def _service_publish(sid: str, service: str, topic: str, account_id: str) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sns:Publish",
        "Resource": topic,
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
    }


def hub_subscribe_statement(topic: str, region: str, hub_account_id: str, queue_arn: str) -> dict[str, Any]:
    """The hub account may subscribe its alarm intake queue, and nothing else, to a member topic.

    A cross-account SQS subscription is confirmed by AWS only when the queue's account creates it,
    so the hub creates it through its own provider and this statement allows exactly that.
    """
    return {
        "Sid": "HubIntakeSubscribes",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition(region)}:iam::{hub_account_id}:root"},
        "Action": "sns:Subscribe",
        "Resource": topic,
        "Condition": {"StringEquals": {"sns:Protocol": "sqs", "sns:Endpoint": queue_arn}},
    }


def topic_policy(account_id: str, region: str, level: Severity, hub: tuple[str, str] | None = None,
                 arn: str | None = None, event_rules: Sequence[str] = ()) -> dict[str, Any]:
    """``hub``: (hub account id, intake queue ARN) for a member's alarm topic.
    ``event_rules``: the EventBridge rules (ARNs, this account's) that may publish; none by default."""
    arn = arn or topic_arn(account_id, region, level)
    root = f"arn:{partition(region)}:iam::{account_id}:root"
    extra = [hub_subscribe_statement(arn, region, *hub)] if hub else []
    if event_rules:
        rules = _service_publish("EventBridgePublish", "events.amazonaws.com", arn, account_id)
        rules["Condition"]["ArnEquals"] = {"aws:SourceArn": sorted(event_rules)}
        extra.append(rules)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountOwnerManages",
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": [
                    "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:AddPermission", "sns:RemovePermission",
                    "sns:DeleteTopic", "sns:Subscribe", "sns:ListSubscriptionsByTopic", "sns:Publish",
                ],
                "Resource": arn,
            },
            # Confused-deputy guard: only this account's alarms may publish.
            _service_publish("CloudWatchAlarmsPublish", "cloudwatch.amazonaws.com", arn, account_id),
            *extra,
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sns:Publish",
                "Resource": arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


def route_summary(subscriptions: Sequence[Subscription]) -> dict[str, int]:
    """Protocol counts only: endpoints can be secrets and never leave the program."""
    counts: dict[str, int] = {}
    for s in subscriptions:
        counts[s.protocol] = counts.get(s.protocol, 0) + 1
    return dict(sorted(counts.items()))


@dataclass(frozen=True)
class AlertTopics:
    key: aws.kms.Key
    topics: Mapping[Severity, aws.sns.Topic]


def create_alert_topics(
    name: str,
    account_id: str,
    region: str,
    levels: Sequence[Severity],
    routes: Mapping[Severity, Sequence[Subscription]],
    secret_endpoints: bool,
    opts: pulumi.ResourceOptions,
    stateful_opts: pulumi.ResourceOptions,
    tags: Mapping[str, str],
    hub: tuple[str, str] | None = None,
) -> AlertTopics:
    """Key, topics and subscriptions for one member account. ``opts`` carries parent and provider.

    ``hub`` (hub account, intake queue ARN): the hub's queue may subscribe. Members get no
    human routes (``routes`` is empty); the hub's topics are in ``rootwatch.program.hub``.
    """
    key = aws.kms.Key(
        f"{name}-alerts-key",
        description="rootwatch: encrypts root-activity alert topics (usable by CloudWatch and EventBridge)",
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=json.dumps(alert_key_policy(account_id, region)),
        region=region,
        tags=dict(tags),
        opts=stateful_opts,
    )
    # No alias in members (one resource fewer per account; the key's description names it, and the
    # tamper rule still watches the alias name in case one is created to address it).
    topics: dict[Severity, aws.sns.Topic] = {}
    for level in levels:
        tname = f"{name}-topic-{level.value}"
        topic = aws.sns.Topic(
            tname,
            name=topic_name(level),
            display_name=f"rootwatch {level.value}",
            kms_master_key_id=key.arn,
            region=region,
            tags=dict(tags),
            opts=opts,
        )
        aws.sns.TopicPolicy(
            f"{tname}-policy",
            arn=topic.arn,
            policy=json.dumps(topic_policy(account_id, region, level, hub)),
            region=region,
            opts=opts,
        )
        for i, sub in enumerate(routes.get(level, ())):
            subscribe(f"{tname}-sub-{i}", topic.arn, sub, secret_endpoints, region, opts)
        topics[level] = topic
    return AlertTopics(key, topics)


def subscribe(name: str, topic: pulumi.Input[str], sub: Subscription, secret: bool, region: str,
              opts: pulumi.ResourceOptions) -> aws.sns.TopicSubscription:
    """One human route. E-mail stays pending until someone clicks (once per address and topic);
    https endpoints that confirm themselves are waited for, the others are not (the provider would time out)."""
    endpoint: pulumi.Input[str] = pulumi.Output.secret(sub.endpoint) if secret else sub.endpoint
    https = sub.protocol == "https"
    return aws.sns.TopicSubscription(
        name,
        topic=topic,
        protocol=sub.protocol,
        endpoint=endpoint,
        confirmation_timeout_in_minutes=5 if https and sub.auto_confirms else None,
        endpoint_auto_confirms=sub.auto_confirms if https else None,
        region=region,
        opts=opts,
    )
