"""What the evaluation reads and returns: resource types, check names and statuses, the input
resource (``PolicyInput``), the thresholds (``Requirements``) and the verdicts.
"""


from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

SCHEMA = "rootwatch.compliance/v1"

# Check names, in chain order (also the keys of the `checks` object in outputs).
TRAIL, METRIC_FILTER, ALARM, TOPIC, REALTIME = "trail", "metricFilter", "alarm", "topic", "realtime"
# Keys rotate; no topic, key or queue policy is public (Prowler / CIS beyond the chain).
HARDENING = "hardening"
CHECKS: tuple[str, ...] = (TRAIL, METRIC_FILTER, ALARM, TOPIC, REALTIME, HARDENING)
# Reported beside the checks, not counted in "compliant" (CIS does not require it): can the account erase its logs?
IMMUTABLE_LOGS = "immutableLogs"

PASS, FAIL, PENDING, SKIPPED = "pass", "fail", "pending", "skipped"
# trail.mode "organization", member account: the organization trail records it and the CIS filter and alarm
# are in the trail's owner account, so Security Hub evaluates CloudWatch.1 here as NO_DATA. Not compliant.
ORGANIZATION_TRAIL = "organization-trail"
# Outside what the stack can see (trail.mode existing: the trail is not in the stack);
# not a failure, but never reported as `pass`: `rootwatch audit` verifies it live.
UNVERIFIED = "unverified"

PROVIDER_TYPE = "pulumi:providers:aws"
TRAIL_TYPE = "aws:cloudtrail/trail:Trail"
LOG_GROUP_TYPE = "aws:cloudwatch/logGroup:LogGroup"
METRIC_FILTER_TYPE = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
ALARM_TYPE = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC_TYPE = "aws:sns/topic:Topic"
SUBSCRIPTION_TYPE = "aws:sns/topicSubscription:TopicSubscription"
KEY_TYPE = "aws:kms/key:Key"
ALIAS_TYPE = "aws:kms/alias:Alias"
EVENT_RULE_TYPE = "aws:cloudwatch/eventRule:EventRule"
BUCKET_TYPE = "aws:s3/bucket:Bucket"
BUCKET_LOGGING_TYPE = "aws:s3/bucketLogging:BucketLogging"
TOPIC_POLICY_TYPE = "aws:sns/topicPolicy:TopicPolicy"
QUEUE_TYPE = "aws:sqs/queue:Queue"
QUEUE_POLICY_TYPE = "aws:sqs/queuePolicy:QueuePolicy"
OBJECT_LOCK_TYPE = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
REPLICATION_TYPE = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"

# Every type evaluate() reads; anything else is irrelevant to the verdict.
EVIDENCE_TYPES = frozenset({
    PROVIDER_TYPE, TRAIL_TYPE, LOG_GROUP_TYPE, METRIC_FILTER_TYPE, ALARM_TYPE, TOPIC_TYPE,
    SUBSCRIPTION_TYPE, KEY_TYPE, ALIAS_TYPE, EVENT_RULE_TYPE,
    BUCKET_TYPE, BUCKET_LOGGING_TYPE, TOPIC_POLICY_TYPE, QUEUE_TYPE, QUEUE_POLICY_TYPE,
    OBJECT_LOCK_TYPE, REPLICATION_TYPE,
    # Subscription endpoints: their provider tells whose account a not-yet-known ARN is in.
    "aws:sqs/queue:Queue", "aws:lambda/function:Function",
})

AWS_MANAGED_SNS_KEY = "alias/aws/sns"
CLOUDWATCH_PRINCIPAL = "cloudwatch.amazonaws.com"
# What SNS asks KMS for when CloudWatch publishes to an encrypted topic.
KEY_ACTIONS_NEEDED = ("kms:Decrypt", "kms:GenerateDataKey")

DEFAULT_MIN_RETENTION_DAYS = 365
DEFAULT_MAX_ALARM_PERIOD_SECONDS = 300
DEFAULT_ACCOUNT = "default"

# Wire-format markers (Pulumi's protocol constants, stable across SDKs). The
# engine's unknown string, and pulumi-policy's per-type unknown sentinels.
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
UNKNOWN_SENTINELS = frozenset(
    {
        UNKNOWN,
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
        "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
        "e48ece36-62e2-4504-bad9-02848725956a",  # archive
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
    }
)
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
# An encrypted secret (stack export without --show-secrets): present, value hidden.
SECRET = "[secret]"

ARN_ACCOUNT_RE = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")
LOG_GROUP_ARN_RE = re.compile(r"^arn:aws[a-z-]*:logs:[a-z0-9-]*:\d*:log-group:(.+?)(?::\*)?$")


# --- input model ---------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyInput:
    """One resource as the engine sees it: camelCase properties, provider by URN.

    ``provider`` is the provider resource's URN ("" for the default provider when
    it is not a resource of its own, as under mocks). ``property_dependencies``
    maps a property to the URNs its value came from; when a source has only
    ``dependencies`` (mock registrations), those stand in for every property.
    """

    type: str
    urn: str
    props: Mapping[str, Any]
    provider: str = ""
    name: str = ""
    parent: str = ""
    dependencies: tuple[str, ...] = ()
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Requirements:
    """What "compliant" means: the thresholds the pack and the program share."""

    min_retention_days: int = DEFAULT_MIN_RETENTION_DAYS
    max_alarm_period_seconds: int = DEFAULT_MAX_ALARM_PERIOD_SECONDS
    # Regions that need a real-time rule; None: check 5 is skipped (see realtime_note).
    required_regions: tuple[str, ...] | None = None
    realtime_note: str = "no real-time regions are required (requiredRegions is empty)"
    # trail.mode "existing": the log group the account's own trail delivers to.
    existing_log_group: str | None = None
    # trail.mode "organization": the organization trail's log group (in its owner account).
    organization_log_group: str | None = None


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: str
    reason: str
    # The resource the verdict rests on (or should be fixed on); None when absent.
    urn: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in (PASS, SKIPPED, UNVERIFIED)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "status": self.status, "reason": self.reason, "resource": self.urn}


@dataclass(frozen=True)
class AccountVerdict:
    account_id: str
    # The provider that deploys into the account ("" for the default provider).
    provider_urn: str
    checks: Mapping[str, CheckResult]
    # Informational (see IMMUTABLE_LOGS): None where the account has no trail of its own in the stack.
    immutable_logs: CheckResult | None = None

    @property
    def compliant(self) -> bool:
        return all(c.ok for c in self.checks.values())

    @property
    def status(self) -> str:
        if self.compliant:
            return "compliant"
        if any(c.status == FAIL for c in self.checks.values()):
            return "noncompliant"
        if any(c.status == ORGANIZATION_TRAIL for c in self.checks.values()):
            return ORGANIZATION_TRAIL
        return "pending"

    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks.values() if c.status == FAIL]

    def pending(self) -> list[CheckResult]:
        return [c for c in self.checks.values() if c.status == PENDING]


