"""The deploying identity's least-privilege IAM policies, generated from what the program registers.

Every resource type the program creates maps to the IAM actions the Pulumi AWS provider
(Terraform provider underneath) calls to create, read, update, tag and delete it; every
invoke maps to the actions of its data source. ``policies(run)`` groups them by the account
they are used in: the management account (discovery, its own monitor, assuming the member
role), a delegated-administrator account deploying on the management account's behalf, each
member account (the assumed role's permission policy and its trust policy), and what the alert
hub's account needs besides.

``docs/permissions.md`` is rendered from here (``python -m rootwatch.program.permissions``);
tests/test_permissions.py checks that it is current, that every registered type is mapped,
and that every action exists in botocore's service models (or in the vetted list of
IAM-only action names below).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    from rootwatch.program.mockrun import Run

_TAGS = {
    "cloudtrail": ["cloudtrail:AddTags", "cloudtrail:RemoveTags", "cloudtrail:ListTags"],
    "logs": ["logs:TagResource", "logs:UntagResource", "logs:ListTagsForResource"],
    "cloudwatch": ["cloudwatch:TagResource", "cloudwatch:UntagResource", "cloudwatch:ListTagsForResource"],
    "sns": ["sns:TagResource", "sns:UntagResource", "sns:ListTagsForResource"],
    "kms": ["kms:TagResource", "kms:UntagResource", "kms:ListResourceTags"],
    "iam": ["iam:TagRole", "iam:UntagRole", "iam:ListRoleTags"],
    "s3": ["s3:PutBucketTagging", "s3:GetBucketTagging"],
    "events": ["events:TagResource", "events:UntagResource", "events:ListTagsForResource"],
    "sqs": ["sqs:TagQueue", "sqs:UntagQueue", "sqs:ListQueueTags"],
    "lambda": ["lambda:TagResource", "lambda:UntagResource", "lambda:ListTags"],
    "dynamodb": ["dynamodb:TagResource", "dynamodb:UntagResource", "dynamodb:ListTagsOfResource"],
    "organizations": ["organizations:TagResource", "organizations:UntagResource", "organizations:ListTagsForResource"],
}

# Resource type -> actions for its whole lifecycle (create, read/refresh, update, delete).
RESOURCE_ACTIONS: dict[str, list[str]] = {
    "aws:cloudtrail/trail:Trail": [
        "cloudtrail:CreateTrail", "cloudtrail:UpdateTrail", "cloudtrail:DeleteTrail", "cloudtrail:DescribeTrails",
        "cloudtrail:GetTrail", "cloudtrail:GetTrailStatus", "cloudtrail:StartLogging", "cloudtrail:StopLogging",
        "cloudtrail:PutEventSelectors", "cloudtrail:GetEventSelectors", "cloudtrail:GetInsightSelectors",
        *_TAGS["cloudtrail"],
        # CloudTrail is handed the delivery role, and validates the bucket and key at creation.
        "iam:PassRole",
    ],
    "aws:cloudwatch/logGroup:LogGroup": [
        "logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:DescribeLogGroups", "logs:PutRetentionPolicy",
        "logs:DeleteRetentionPolicy", "logs:AssociateKmsKey", "logs:DisassociateKmsKey", *_TAGS["logs"],
    ],
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": [
        "logs:PutMetricFilter", "logs:DeleteMetricFilter", "logs:DescribeMetricFilters",
    ],
    "aws:cloudwatch/metricAlarm:MetricAlarm": [
        "cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms", *_TAGS["cloudwatch"],
    ],
    "aws:sns/topic:Topic": [
        "sns:CreateTopic", "sns:DeleteTopic", "sns:GetTopicAttributes", "sns:SetTopicAttributes",
        "sns:GetDataProtectionPolicy", *_TAGS["sns"],
    ],
    "aws:sns/topicPolicy:TopicPolicy": ["sns:GetTopicAttributes", "sns:SetTopicAttributes"],
    "aws:sns/topicSubscription:TopicSubscription": [
        "sns:Subscribe", "sns:Unsubscribe", "sns:GetSubscriptionAttributes", "sns:SetSubscriptionAttributes",
        "sns:ListSubscriptionsByTopic",
    ],
    "aws:kms/key:Key": [
        "kms:CreateKey", "kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:GetKeyRotationStatus",
        "kms:EnableKeyRotation", "kms:DisableKeyRotation", "kms:UpdateKeyDescription", "kms:ScheduleKeyDeletion",
        *_TAGS["kms"],
    ],
    "aws:kms/alias:Alias": ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias", "kms:ListAliases"],
    "aws:iam/role:Role": [
        "iam:CreateRole", "iam:GetRole", "iam:DeleteRole", "iam:UpdateRole", "iam:UpdateRoleDescription",
        "iam:UpdateAssumeRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
        "iam:ListInstanceProfilesForRole", "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy",
        *_TAGS["iam"],
    ],
    "aws:iam/rolePolicy:RolePolicy": ["iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy"],
    "aws:s3/bucket:Bucket": [
        "s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketAcl",
        "s3:GetBucketPolicy", "s3:GetBucketCORS", "s3:GetBucketWebsite", "s3:GetBucketVersioning",
        "s3:GetAccelerateConfiguration", "s3:GetBucketRequestPayment", "s3:GetBucketLogging",
        "s3:GetLifecycleConfiguration", "s3:GetReplicationConfiguration", "s3:GetEncryptionConfiguration",
        "s3:GetBucketObjectLockConfiguration", *_TAGS["s3"],
    ],
    "aws:s3/bucketVersioning:BucketVersioning": ["s3:PutBucketVersioning", "s3:GetBucketVersioning"],
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": [
        # DeletePublicAccessBlock is authorized by s3:PutBucketPublicAccessBlock (there is no Delete action).
        "s3:PutBucketPublicAccessBlock", "s3:GetBucketPublicAccessBlock",
    ],
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": [
        "s3:PutBucketOwnershipControls", "s3:GetBucketOwnershipControls", "s3:DeleteBucketOwnershipControls",
    ],
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": [
        "s3:PutEncryptionConfiguration", "s3:GetEncryptionConfiguration",
    ],
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": [
        "s3:PutLifecycleConfiguration", "s3:GetLifecycleConfiguration",
    ],
    "aws:s3/bucketPolicy:BucketPolicy": ["s3:PutBucketPolicy", "s3:GetBucketPolicy", "s3:DeleteBucketPolicy"],
    "aws:s3/bucketLogging:BucketLogging": ["s3:PutBucketLogging", "s3:GetBucketLogging"],
    # Immutable logs (rootwatch.program.archive); a lock cannot be removed, only its retention changed.
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration": [
        "s3:PutBucketObjectLockConfiguration", "s3:GetBucketObjectLockConfiguration",
    ],
    "aws:s3/bucketReplicationConfig:BucketReplicationConfig": [
        "s3:PutReplicationConfiguration", "s3:GetReplicationConfiguration", "iam:PassRole",
    ],
    "aws:cloudwatch/eventRule:EventRule": [
        "events:PutRule", "events:DescribeRule", "events:DeleteRule", "events:EnableRule", "events:DisableRule",
        "events:ListTargetsByRule", *_TAGS["events"],
    ],
    "aws:cloudwatch/eventTarget:EventTarget": [
        "events:PutTargets", "events:RemoveTargets", "events:ListTargetsByRule",
        # Targets carry the forwarder role (cross-region) and the dead-letter queue.
        "iam:PassRole",
    ],
    "aws:sqs/queue:Queue": [
        "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:GetQueueUrl",
        *_TAGS["sqs"],
    ],
    "aws:lambda/function:Function": [
        "lambda:CreateFunction", "lambda:DeleteFunction", "lambda:GetFunction", "lambda:GetFunctionConfiguration",
        "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:ListVersionsByFunction",
        "lambda:GetFunctionCodeSigningConfig", "lambda:GetRuntimeManagementConfig", *_TAGS["lambda"],
        "iam:PassRole",
    ],
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": [
        "lambda:PutFunctionEventInvokeConfig", "lambda:GetFunctionEventInvokeConfig",
        "lambda:UpdateFunctionEventInvokeConfig", "lambda:DeleteFunctionEventInvokeConfig",
    ],
    "aws:lambda/permission:Permission": ["lambda:AddPermission", "lambda:RemovePermission", "lambda:GetPolicy"],
    # The alert hub.
    "aws:cloudwatch/eventBus:EventBus": [
        "events:CreateEventBus", "events:DescribeEventBus", "events:UpdateEventBus", "events:DeleteEventBus",
        *_TAGS["events"],
    ],
    "aws:cloudwatch/eventBusPolicy:EventBusPolicy": [
        "events:PutPermission", "events:RemovePermission", "events:DescribeEventBus",
    ],
    "aws:sqs/queuePolicy:QueuePolicy": ["sqs:SetQueueAttributes", "sqs:GetQueueAttributes"],
    "aws:dynamodb/table:Table": [
        "dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:UpdateTable", "dynamodb:DeleteTable",
        "dynamodb:DescribeTimeToLive", "dynamodb:UpdateTimeToLive", "dynamodb:DescribeContinuousBackups",
        "dynamodb:UpdateContinuousBackups", "dynamodb:GetResourcePolicy", *_TAGS["dynamodb"],
    ],
    "aws:lambda/eventSourceMapping:EventSourceMapping": [
        "lambda:CreateEventSourceMapping", "lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping",
        "lambda:DeleteEventSourceMapping", "lambda:ListEventSourceMappings", *_TAGS["lambda"],
    ],
    # Prevention, in the management account.
    "aws:iam/organizationsFeatures:OrganizationsFeatures": [
        "iam:ListOrganizationsFeatures", "iam:EnableOrganizationsRootCredentialsManagement",
        "iam:EnableOrganizationsRootSessions", "iam:DisableOrganizationsRootCredentialsManagement",
        "iam:DisableOrganizationsRootSessions",
    ],
    "aws:organizations/awsServiceAccess:AwsServiceAccess": [
        "organizations:EnableAWSServiceAccess", "organizations:DisableAWSServiceAccess",
        "organizations:ListAWSServiceAccessForOrganization",
    ],
    "aws:organizations/policy:Policy": [
        "organizations:CreatePolicy", "organizations:DescribePolicy", "organizations:UpdatePolicy",
        "organizations:DeletePolicy", *_TAGS["organizations"],
    ],
    "aws:organizations/policyAttachment:PolicyAttachment": [
        "organizations:AttachPolicy", "organizations:DetachPolicy", "organizations:ListTargetsForPolicy",
        "organizations:ListPoliciesForTarget",
    ],
}

# Invoke token -> actions of the data source.
INVOKE_ACTIONS: dict[str, list[str]] = {
    "aws:organizations/getOrganization:getOrganization": [
        "organizations:DescribeOrganization", "organizations:ListAccounts", "organizations:ListRoots",
        "organizations:ListAWSServiceAccessForOrganization",
    ],
    "aws:organizations/getOrganizationalUnits:getOrganizationalUnits": ["organizations:ListOrganizationalUnitsForParent"],
    "aws:organizations/getOrganizationalUnitChildAccounts:getOrganizationalUnitChildAccounts": [
        "organizations:ListAccountsForParent"],
    "aws:organizations/getOrganizationalUnitDescendantAccounts:getOrganizationalUnitDescendantAccounts": [
        "organizations:ListAccountsForParent", "organizations:ListOrganizationalUnitsForParent"],
    "aws:organizations/getResourceTags:getResourceTags": ["organizations:ListTagsForResource"],
    "aws:organizations/getDelegatedAdministrators:getDelegatedAdministrators": [
        "organizations:ListDelegatedAdministrators"],
    "aws:index/getCallerIdentity:getCallerIdentity": ["sts:GetCallerIdentity"],
    "aws:kms/getAlias:getAlias": ["kms:ListAliases", "kms:DescribeKey"],
    "aws:cloudwatch/getLogGroup:getLogGroup": ["logs:DescribeLogGroups", "logs:ListTagsForResource"],
    "aws:cloudwatch/getLogGroups:getLogGroups": ["logs:DescribeLogGroups"],
}

IMMUTABLE_LOG_TYPES = frozenset({"aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
                                 "aws:s3/bucketReplicationConfig:BucketReplicationConfig"})

# IAM action names with no API operation of the same name (IAM Service Authorization Reference):
# permission-only actions and S3's historical names for bucket sub-resources.
IAM_ONLY_ACTIONS = frozenset({
    "iam:PassRole",
    "s3:ListBucket",  # ListObjects / ListObjectsV2 / HeadBucket
    "s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration",  # Get/PutBucketEncryption
    "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration",  # Get/PutBucketLifecycleConfiguration
    "s3:GetAccelerateConfiguration",  # GetBucketAccelerateConfiguration
    "s3:GetReplicationConfiguration",  # GetBucketReplication
    "s3:GetBucketObjectLockConfiguration", "s3:PutBucketObjectLockConfiguration",  # Get/PutObjectLockConfiguration
    "s3:PutReplicationConfiguration",  # PutBucketReplication, DeleteBucketReplication
    "s3:PutBucketPublicAccessBlock", "s3:GetBucketPublicAccessBlock",  # Put/Get/DeletePublicAccessBlock
})

# IAM service prefix -> botocore service model name.
BOTOCORE_SERVICE = {
    "cloudtrail": "cloudtrail", "logs": "logs", "cloudwatch": "cloudwatch", "sns": "sns", "sqs": "sqs",
    "kms": "kms", "iam": "iam", "s3": "s3", "events": "events", "lambda": "lambda",
    "organizations": "organizations", "sts": "sts", "dynamodb": "dynamodb",
}


def actions_for(types: Iterable[str], invokes: Iterable[str] = ()) -> list[str]:
    """The sorted, de-duplicated actions for these resource types and invokes (KeyError if unmapped)."""
    found: set[str] = set()
    for t in types:
        if t.startswith("pulumi:providers:") or not t.startswith("aws:"):
            continue  # providers and components call no AWS API of their own
        found.update(RESOURCE_ACTIONS[t])
    for token in invokes:
        found.update(INVOKE_ACTIONS[token])
    return sorted(found)


def _statement(sid: str, actions: list[str], resource: Any = "*", condition: Mapping[str, Any] | None = None) -> dict[str, Any]:
    st: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}
    if condition:
        st["Condition"] = dict(condition)
    return st


def _by_service(sid: str, actions: list[str]) -> list[dict[str, Any]]:
    services = sorted({a.split(":", 1)[0] for a in actions})
    return [_statement(f"{sid}{s.capitalize()}", [a for a in actions if a.startswith(s + ":")]) for s in services]


def policies(run: "Run", role_name: str = "OrganizationAccountAccessRole") -> dict[str, dict[str, Any]]:
    """The deployer's policies, generated from one mock run (its resources, per account, and invokes)."""
    from rootwatch.program.mockrun import ARCHIVE_GROUP, HUB_GROUP

    groups = run.by_account()
    mgmt = next((r.name.removeprefix("account-") for r in run.by_type("pulumi:providers:aws")
                 if not r.inputs.get("assumeRoles")), "")
    members = [a for a in groups if a and a not in (mgmt, HUB_GROUP, ARCHIVE_GROUP)]
    # Both immutable-log designs are one setting away (trail.archive or trail.objectLockDays): a member
    # policy covers the in-account lock and the replication whichever the run used.
    member_types = sorted({r.type for a in members for r in groups[a]} | IMMUTABLE_LOG_TYPES)
    # The management account's monitor, and the organization-level prevention (grouped under "").
    mgmt_types = sorted({r.type for r in [*groups.get(mgmt, []), *groups.get("", [])]})
    hub_types = sorted({r.type for r in groups.get(HUB_GROUP, [])})
    archive_types = sorted({r.type for r in groups.get(ARCHIVE_GROUP, [])})
    # What this run called, plus the look-ups other configurations make (a delegated admin caller,
    # trail.mode existing, a configured key alias).
    seen = [t for t in dict.fromkeys(run.invokes) if t.startswith("aws:organizations/")]
    discovery = actions_for((), [*seen, "aws:organizations/getDelegatedAdministrators:getDelegatedAdministrators",
                                 "aws:index/getCallerIdentity:getCallerIdentity"])
    lookups = actions_for((), ["aws:kms/getAlias:getAlias", "aws:cloudwatch/getLogGroup:getLogGroup",
                               "aws:cloudwatch/getLogGroups:getLogGroups"])
    assume = _statement("AssumeTheMemberRole", ["sts:AssumeRole", "sts:TagSession"],
                        f"arn:aws:iam::*:role/{role_name}")
    return {
        "management": {"Version": "2012-10-17", "Statement": [
            *_by_service("Discover", discovery), assume,
            *_by_service("Monitor", sorted({*actions_for(mgmt_types), *lookups}))]},
        "delegatedAdmin": {"Version": "2012-10-17", "Statement": [*_by_service("Discover", discovery), assume]},
        "member": {"Version": "2012-10-17", "Statement": _by_service("Monitor", sorted({*actions_for(member_types), *lookups}))},
        # Only what the hub adds to a member's monitor (the hub account is monitored like a member).
        "alertHub": {"Version": "2012-10-17", "Statement": _by_service(
            "AlertHub", sorted(set(actions_for(hub_types)) - set(actions_for(member_types)) - set(lookups)))},
        # Only what the log archive (trail.archive) adds to a member's monitor, in its account.
        "logArchive": {"Version": "2012-10-17", "Statement": _by_service(
            "LogArchive", sorted(set(actions_for(archive_types)) - set(actions_for(member_types)) - set(lookups)))},
        "memberTrust": {"Version": "2012-10-17", "Statement": [{
            "Sid": "TrustTheDeployer", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::<management-or-delegated-admin-account>:role/<deployer-role>"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {"sts:ExternalId": "<rootwatch:access.externalId, when set>"}},
        }]},
    }


def render_markdown(docs: Mapping[str, Mapping[str, Any]]) -> str:
    def block(doc: Mapping[str, Any]) -> str:
        return "```json\n" + json.dumps(doc, indent=2) + "\n```\n"

    return (
        "# Permissions of the deploying identity\n\n"
        "Generated by `python -m rootwatch.program.permissions` from the resources the example stack registers\n"
        "(`rootwatch/program/permissions.py` maps each resource type and data source to the IAM actions the\n"
        "provider calls). `tests/test_permissions.py` fails when a new resource type is not mapped, when this\n"
        "file is stale, or when an action does not exist in botocore's service models. Do not edit by hand.\n\n"
        "Resources are `*` where the provider needs account-wide calls (`Describe*`, `List*`, `Create*`);\n"
        "narrow them to `rootwatch-*` names if your policy style requires it: every name the program\n"
        "creates starts with `rootwatch` (`/rootwatch/cloudtrail`, `alias/rootwatch-*`, `rootwatch-trail-*`,\n"
        "`rootwatch-access-logs-*`), except the formatter's log group `/aws/lambda/rootwatch-alert-formatter`.\n\n"
        "## Management account\n\n"
        "The identity running `pulumi up` with the management account's credentials: organization\n"
        "discovery, assuming the member role, and the management account's own monitor (deployed through\n"
        "its pinned provider with these credentials, no role assumed).\n\n" + block(docs["management"]) +
        "\n## Delegated administrator\n\n"
        "When the stack runs from a delegated administrator account instead (registered with\n"
        "`organizations register-delegated-administrator`), that identity needs discovery and the member\n"
        "role only; the management account is then monitored through the member role like any account.\n\n"
        + block(docs["delegatedAdmin"]) +
        "\n## Member accounts: the assumed role's permissions\n\n"
        "Attach to `rootwatch:access.roleName` in every member account (instead of the broad\n"
        "`OrganizationAccountAccessRole`).\n\n" + block(docs["member"]) +
        "\n## Member accounts: the role's trust policy\n\n"
        "Trust exactly the deploying role; add the external id condition when `rootwatch:access.externalId`\n"
        "is set.\n\n" + block(docs["memberTrust"]) +
        "\n## The alert hub account: what it adds\n\n"
        "The hub account (`rootwatch:hub.accountId`) is monitored like a member and also hosts the\n"
        "organization's alert hub (event bus, formatter, topics, queues, tables). Attach this policy\n"
        "to the same role there, next to the member policy; when the hub is the management account, to\n"
        "the deploying identity.\n\n" + block(docs["alertHub"]) +
        "\n## The log-archive account: what it adds\n\n"
        "With `rootwatch:trail.archive`, the log-archive account holds the locked bucket every trail\n"
        "replicates into, and its key. The member policy covers all of it (bucket, lock, key, policy),\n"
        "so this adds nothing; it is generated so that a future archive resource cannot slip past it.\n\n"
        + block(docs["logArchive"])
    )


def main(argv: list[str] | None = None) -> int:
    from pathlib import Path

    from rootwatch.program import mockrun

    out = Path(argv[0]) if argv else mockrun.PROJECT_DIR / "docs" / "permissions.md"
    out.write_text(render_markdown(policies(mockrun.run("example"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
