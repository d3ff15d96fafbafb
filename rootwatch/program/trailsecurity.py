"""What makes a trail CIS-clean beyond the root filter: its KMS key and the bucket's access logs.

CIS 3.x / Security Hub CloudTrail.2 and CloudTrail.7 (and Prowler) fail a trail whose
logs are not KMS-encrypted, whose key does not rotate, or whose bucket does not log
access. Policy documents are pure functions (asserted exactly by the tests); the
resource builders at the end are the Pulumi edge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import pulumi
import pulumi_aws as aws

from rootwatch.core.arns import partition

TRAIL_KEY_ALIAS = "alias/rootwatch-trail"
ACCESS_LOG_PREFIX = "access-logs/"
LOGGING_PRINCIPAL = "logging.s3.amazonaws.com"
# What a CIS-clean trail adds to an account beyond the alert chain (the resource name suffixes of
# create_trail_key and create_access_logging), so plan can count the chain and the hardening apart.
HARDENING_SUFFIXES = (
    "-trail-key", "-trail-key-alias", "-access-log-bucket", "-access-log-bucket-versioning",
    "-access-log-bucket-public-access", "-access-log-bucket-ownership", "-access-log-bucket-encryption",
    "-access-log-bucket-policy", "-trail-bucket-logging",
    # Immutable logs (rootwatch.program.archive): the in-account lock, or replication into the archive.
    "-trail-bucket-lock", "-trail-bucket-replication", "-replication-role", "-replication-role-policy",
)


def is_hardening(resource_name: str) -> bool:
    return resource_name.endswith(HARDENING_SUFFIXES)


def access_log_bucket_name(account_id: str, region: str) -> str:
    return f"rootwatch-access-logs-{account_id}-{region}"


def logs_principal(region: str) -> str:
    # CloudWatch Logs uses a regional service principal for KMS (China: logs.<region>.amazonaws.com.cn).
    suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
    return f"logs.{region}{suffix}"


def trail_key_policy(account_id: str, region: str, trail_arn: str, log_group_arns: Sequence[str]) -> dict[str, Any]:
    """The key policy CloudTrail and CloudWatch Logs need (AWS CloudTrail User Guide, "Configure AWS
    KMS key policies for CloudTrail"; CloudWatch Logs User Guide, "Encrypt log data using AWS KMS").

    AWS's console default also has a ``Principal: *`` decrypt statement limited by
    ``kms:CallerAccount``; it is left out: the account-root statement already lets IAM
    policies in this account grant kms:Decrypt, and a ``*`` principal reads as public to scanners.
    """
    p = partition(region)
    root = f"arn:{p}:iam::{account_id}:root"
    trail_context = f"arn:{p}:cloudtrail:*:{account_id}:trail/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EnableAccountIamPolicies",
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "AllowCloudTrailEncryptLogs",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "kms:GenerateDataKey*",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"aws:SourceArn": trail_arn},
                    "StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn": trail_context},
                },
            },
            {
                "Sid": "AllowCloudTrailDescribeKey",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "kms:DescribeKey",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceArn": trail_arn}},
            },
            logs_key_statement(region, log_group_arns),
        ],
    }


def logs_key_statement(region: str, log_group_arns: Sequence[str]) -> dict[str, Any]:
    """CloudWatch Logs may use the key for these log groups only (CloudWatch Logs User Guide)."""
    return {
        "Sid": "AllowCloudWatchLogsEncryptLogGroups",
        "Effect": "Allow",
        "Principal": {"Service": logs_principal(region)},
        "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
        "Resource": "*",
        "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": list(log_group_arns)}},
    }


def access_log_bucket_policy(log_bucket: str, source_bucket: str, account_id: str, region: str) -> dict[str, Any]:
    """S3 server access logging into a BucketOwnerEnforced bucket: a policy, not ACLs (S3 User Guide)."""
    p = partition(region)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "S3ServerAccessLogsPolicy",
                "Effect": "Allow",
                "Principal": {"Service": LOGGING_PRINCIPAL},
                "Action": "s3:PutObject",
                "Resource": f"arn:{p}:s3:::{log_bucket}/{ACCESS_LOG_PREFIX}*",
                "Condition": {
                    "ArnLike": {"aws:SourceArn": f"arn:{p}:s3:::{source_bucket}"},
                    "StringEquals": {"aws:SourceAccount": account_id},
                },
            },
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:{p}:s3:::{log_bucket}", f"arn:{p}:s3:::{log_bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


# --- resources -----------------------------------------------------------------------


@dataclass(frozen=True)
class TrailKey:
    # The key ARN for the trail and the log groups; the Key resource when rootwatch manages it.
    arn: pulumi.Input[str]
    key: aws.kms.Key | None


def create_trail_key(
    name: str,
    account_id: str,
    region: str,
    configured: str | None,
    trail_arn: str,
    log_group_arns: Sequence[str],
    child: pulumi.ResourceOptions,
    stateful: pulumi.ResourceOptions,
    tags: dict[str, str],
) -> TrailKey:
    """The account's trail key: the configured one (an alias is resolved to its key: log groups need
    a key ARN), else a rootwatch-managed key with rotation on."""
    if configured:
        if ":alias/" not in configured:
            return TrailKey(configured, None)
        alias = aws.kms.get_alias_output(
            name="alias/" + configured.split(":alias/", 1)[1], region=region,
            opts=pulumi.InvokeOutputOptions(parent=child.parent, provider=child.provider),
        )
        return TrailKey(alias.target_key_arn, None)
    key = aws.kms.Key(
        f"{name}-trail-key",
        description="rootwatch: encrypts the CloudTrail logs and log groups of this account",
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=json.dumps(trail_key_policy(account_id, region, trail_arn, log_group_arns)),
        region=region,
        tags=tags,
        opts=stateful,
    )
    aws.kms.Alias(f"{name}-trail-key-alias", name=TRAIL_KEY_ALIAS, target_key_id=key.key_id, region=region, opts=child)
    return TrailKey(key.arn, key)


def create_access_logging(
    name: str,
    bucket: aws.s3.Bucket,
    source_bucket: str,
    account_id: str,
    region: str,
    stateful: pulumi.ResourceOptions,
    retained: pulumi.ResourceOptions,
    tags: dict[str, str],
) -> aws.s3.BucketLogging:
    """A log bucket in the same account (versioned, SSE-S3, public access blocked, retained) and the
    trail bucket's server access logging into it.

    Server access logs can be delivered only to a bucket whose default encryption is SSE-S3.
    """
    lname = access_log_bucket_name(account_id, region)
    logs = aws.s3.Bucket(f"{name}-access-log-bucket", bucket=lname, force_destroy=False, region=region, tags=tags,
                         opts=stateful)
    aws.s3.BucketVersioning(
        f"{name}-access-log-bucket-versioning",
        bucket=logs.id,
        versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
        region=region,
        opts=retained,
    )
    block = aws.s3.BucketPublicAccessBlock(
        f"{name}-access-log-bucket-public-access",
        bucket=logs.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        region=region,
        opts=retained,
    )
    aws.s3.BucketOwnershipControls(
        f"{name}-access-log-bucket-ownership",
        bucket=logs.id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        region=region,
        opts=retained,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-access-log-bucket-encryption",
        bucket=logs.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"
                ),
            )
        ],
        region=region,
        opts=retained,
    )
    policy = aws.s3.BucketPolicy(
        f"{name}-access-log-bucket-policy",
        bucket=logs.id,
        policy=json.dumps(access_log_bucket_policy(lname, source_bucket, account_id, region)),
        region=region,
        opts=pulumi.ResourceOptions.merge(retained, pulumi.ResourceOptions(depends_on=[block])),
    )
    return aws.s3.BucketLogging(
        f"{name}-trail-bucket-logging",
        bucket=bucket.id,
        target_bucket=logs.id,
        target_prefix=ACCESS_LOG_PREFIX,
        region=region,
        # S3 checks the target bucket's policy when logging is enabled.
        opts=pulumi.ResourceOptions.merge(retained, pulumi.ResourceOptions(depends_on=[policy])),
    )
