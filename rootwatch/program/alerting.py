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
KEY_USER_SERVICES = ("cloudwatch.amazonaws.com", "events.amazonaws.com")


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
                "Sid": "AllowAlarmAndEventDelivery",
                "Effect": "Allow",
                "Principal": {"Service": list(KEY_USER_SERVICES)},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
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


def topic_policy(account_id: str, region: str, level: Severity) -> dict[str, Any]:
    arn = topic_arn(account_id, region, level)
    root = f"arn:{partition(region)}:iam::{account_id}:root"
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
            # Confused-deputy guard: only this account's alarms and rules may publish.
            _service_publish("CloudWatchAlarmsPublish", "cloudwatch.amazonaws.com", arn, account_id),
            _service_publish("EventBridgePublish", "events.amazonaws.com", arn, account_id),
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
) -> AlertTopics:
    """Key, topics and subscriptions for one account. ``opts`` carries parent and provider."""
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
    aws.kms.Alias(f"{name}-alerts-key-alias", name=KEY_ALIAS, target_key_id=key.key_id, region=region, opts=opts)
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
            policy=json.dumps(topic_policy(account_id, region, level)),
            region=region,
            opts=opts,
        )
        for i, sub in enumerate(routes.get(level, ())):
            endpoint: pulumi.Input[str] = pulumi.Output.secret(sub.endpoint) if secret_endpoints else sub.endpoint
            aws.sns.TopicSubscription(
                f"{tname}-sub-{i}",
                topic=topic.arn,
                protocol=sub.protocol,
                endpoint=endpoint,
                # https endpoints must confirm; give them time before the provider gives up.
                confirmation_timeout_in_minutes=5 if sub.protocol == "https" else None,
                endpoint_auto_confirms=False if sub.protocol == "https" else None,
                region=region,
                opts=opts,
            )
        topics[level] = topic
    return AlertTopics(key, topics)
