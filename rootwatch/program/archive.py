"""Logs the audited account cannot destroy: S3 Object Lock, in the account or in a log-archive account.

A trail bucket that is only versioned can be emptied by its account's root user or any admin,
record of that included. Two ways out, chosen by ``trail.archive``:

- **unset**: each managed trail's own bucket gets S3 Object Lock in COMPLIANCE mode with a default
  retention of ``trail.objectLockDays`` (365; 0 turns it off). No one, root included, can delete
  or overwrite a log file version before its retention ends. ``BucketObjectLockConfiguration``
  turns Object Lock on for new *and existing* versioned buckets (S3 has allowed that since
  2023; before, only a new bucket or AWS Support could), so an upgrade updates, never replaces.
  It cannot be turned off again.
- **set** (``accountId``, ``retentionDays``): the component ``rootwatch:index:LogArchive`` in that
  account holds one bucket, locked in COMPLIANCE mode, encrypted with the archive's own key.
  Each member's trail bucket replicates every new log file to it (S3 Replication, through the
  member's role ``rootwatch-trail-replication``), re-encrypted with the archive key: deleting or
  disabling the member's trail key cannot shred the copies. Delete markers are not replicated, so
  a deletion in the member account never reaches the archive.

Replication covers objects written after it is configured; S3 Batch Replication copies older ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pulumi
import pulumi_aws as aws

from rootwatch.core.arns import partition
from rootwatch.core.errors import ConfigError
from rootwatch.program import organization
from rootwatch.program.organization import Account, Scope
from rootwatch.program.settings import RootwatchSettings

COMPONENT_TYPE = "rootwatch:index:LogArchive"
RESOURCE_NAME = "rootwatch-archive"
KEY_ALIAS = "alias/rootwatch-archive"
REPLICATION_ROLE_NAME = "rootwatch-trail-replication"
LOCK_MODE = "COMPLIANCE"
# Only the AWSLogs/ tree: CloudTrail writes there (and its digest files), nothing else does.
REPLICATED_PREFIX = "AWSLogs/"


def bucket_name(account_id: str, region: str) -> str:
    return f"rootwatch-archive-{account_id}-{region}"


def bucket_arn(account_id: str, region: str) -> str:
    return f"arn:{partition(region)}:s3:::{bucket_name(account_id, region)}"


def key_alias_arn(account_id: str, region: str) -> str:
    """S3 Replication takes a key ARN or an alias ARN for the replicas: the alias is known in preview."""
    return f"arn:{partition(region)}:kms:{region}:{account_id}:{KEY_ALIAS}"


def replication_role_arn(account_id: str, region: str) -> str:
    return f"arn:{partition(region)}:iam::{account_id}:role/{REPLICATION_ROLE_NAME}"


def lock_rule(days: int) -> aws.s3.BucketObjectLockConfigurationRuleArgs:
    return aws.s3.BucketObjectLockConfigurationRuleArgs(
        default_retention=aws.s3.BucketObjectLockConfigurationRuleDefaultRetentionArgs(mode=LOCK_MODE, days=days))


def _s3_context(bucket: str) -> list[str]:
    """S3's KMS encryption context for the replicas: the object's ARN, or the bucket's when S3 Bucket
    Keys are on (the archive uses them)."""
    return [bucket, f"{bucket}/*"]


def _replicators(region: str, organization_id: str | None, members: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """(Principal, Condition) for the members' replication roles: by organization when its id is
    known (a policy naming 2,000 roles would pass S3's 20 KB limit), else by role ARN."""
    if organization_id:
        return "*", {"StringEquals": {"aws:PrincipalOrgID": organization_id},
                     "ArnLike": {"aws:PrincipalArn": f"arn:{partition(region)}:iam::*:role/{REPLICATION_ROLE_NAME}"}}
    return {"AWS": sorted(replication_role_arn(m, region) for m in set(members))}, {}


def archive_bucket_policy(archive: str, region: str, organization_id: str | None,
                          members: Sequence[str]) -> dict[str, Any]:
    """Members' replication roles may write replicas (each under its own AWSLogs/<account>/ only when
    listed by ARN); nothing may delete through replication, and nothing arrives over plain HTTP."""
    b = bucket_arn(archive, region)
    principal, condition = _replicators(region, organization_id, members)
    write: dict[str, Any] = {"Sid": "MemberTrailsReplicate", "Effect": "Allow", "Principal": principal,
                             "Action": ["s3:ReplicateObject", "s3:ReplicateTags"], "Resource": f"{b}/{REPLICATED_PREFIX}*"}
    check: dict[str, Any] = {"Sid": "MemberTrailsCheckVersioning", "Effect": "Allow", "Principal": principal,
                             "Action": ["s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration"], "Resource": b}
    if condition:
        write["Condition"] = check["Condition"] = condition
    return {
        "Version": "2012-10-17",
        "Statement": [
            write,
            check,
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [b, f"{b}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ],
    }


def archive_key_policy(archive: str, region: str, organization_id: str | None,
                       members: Sequence[str]) -> dict[str, Any]:
    """The archive account governs its key; members' replication roles may only encrypt replicas
    for this bucket, through S3."""
    p = partition(region)
    principal, condition = _replicators(region, organization_id, members)
    use: dict[str, Any] = {
        "Sid": "MemberReplicasEncrypt", "Effect": "Allow", "Principal": principal,
        "Action": ["kms:Encrypt", "kms:GenerateDataKey"], "Resource": "*",
        "Condition": {**condition,
                      "StringEquals": {**condition.get("StringEquals", {}), "kms:ViaService": f"s3.{region}.amazonaws.com"},
                      "StringLike": {"kms:EncryptionContext:aws:s3:arn": _s3_context(bucket_arn(archive, region))}},
    }
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "EnableAccountIamPolicies", "Effect": "Allow", "Principal": {"AWS": f"arn:{p}:iam::{archive}:root"},
             "Action": "kms:*", "Resource": "*"},
            use,
        ],
    }


def replication_trust_policy(account_id: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sts:AssumeRole",
                       "Condition": {"StringEquals": {"aws:SourceAccount": account_id}}}],
    }


def replication_role_policy(source_bucket: str, archive: str, region: str, trail_key_arn: str,
                            trail_arn: str) -> dict[str, Any]:
    """Read the member's log files (decrypting with its trail key through S3), write replicas.

    CloudTrail encrypts each log file with the encryption context ``aws:cloudtrail:arn`` (the trail):
    that is the context AWS's own CloudTrail key policy conditions decryption on, so it is the one here."""
    src = f"arn:{partition(region)}:s3:::{source_bucket}"
    dest = bucket_arn(archive, region)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadSourceConfiguration", "Effect": "Allow",
             "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"], "Resource": src},
            {"Sid": "ReadSourceVersions", "Effect": "Allow",
             "Action": ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging",
                        "s3:GetObjectRetention", "s3:GetObjectLegalHold"],
             "Resource": f"{src}/*"},
            {"Sid": "WriteReplicas", "Effect": "Allow", "Action": ["s3:ReplicateObject", "s3:ReplicateTags"],
             "Resource": f"{dest}/{REPLICATED_PREFIX}*"},
            {"Sid": "DecryptSource", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": trail_key_arn,
             "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com",
                                            "kms:EncryptionContext:aws:cloudtrail:arn": trail_arn}}},
            {"Sid": "EncryptReplicas", "Effect": "Allow", "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
             "Resource": f"arn:{partition(region)}:kms:{region}:{archive}:*",
             "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                           "StringLike": {"kms:EncryptionContext:aws:s3:arn": _s3_context(dest)}}},
        ],
    }


# -- the archive account ------------------------------------------------------------------------


@dataclass(frozen=True)
class LogArchiveArgs:
    account_id: str
    region: str
    retention_days: int
    organization_id: str | None
    members: Sequence[str]  # accounts whose trail buckets replicate here
    stack_tags: Mapping[str, str]
    protect: bool = True


class LogArchive(pulumi.ComponentResource):
    """The locked bucket of the log-archive account (see the module docstring)."""

    def __init__(self, name: str, args: LogArchiveArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        acct, region, tags = args.account_id, args.region, dict(args.stack_tags)
        child = pulumi.ResourceOptions(parent=self)
        # Locked logs outlive the stack: never deleted by `pulumi destroy` (S3 would refuse anyway).
        stateful = pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=True)
        retained = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        key = aws.kms.Key(
            f"{name}-key", description="rootwatch log archive: encrypts the replicas of every member's trail logs",
            enable_key_rotation=True, deletion_window_in_days=30,
            policy=json.dumps(archive_key_policy(acct, region, args.organization_id, args.members)),
            region=region, tags=tags, opts=stateful)
        aws.kms.Alias(f"{name}-key-alias", name=KEY_ALIAS, target_key_id=key.key_id, region=region, opts=child)
        bname = bucket_name(acct, region)
        bucket = aws.s3.Bucket(f"{name}-bucket", bucket=bname, force_destroy=False, object_lock_enabled=True,
                               region=region, tags=tags, opts=stateful)
        versioning = aws.s3.BucketVersioning(
            f"{name}-bucket-versioning", bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            region=region, opts=retained)
        lock = aws.s3.BucketObjectLockConfiguration(
            f"{name}-bucket-lock", bucket=bucket.id, rule=lock_rule(args.retention_days), region=region,
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, depends_on=[versioning]))
        public = aws.s3.BucketPublicAccessBlock(
            f"{name}-bucket-public-access", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, region=region, opts=retained)
        aws.s3.BucketOwnershipControls(
            f"{name}-bucket-ownership", bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            region=region, opts=retained)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-bucket-encryption", bucket=bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="aws:kms", kms_master_key_id=key.arn),
                bucket_key_enabled=True)],
            region=region, opts=retained)
        policy = aws.s3.BucketPolicy(
            f"{name}-bucket-policy", bucket=bucket.id,
            policy=json.dumps(archive_bucket_policy(acct, region, args.organization_id, args.members)),
            region=region, opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, depends_on=[public]))
        # Members' replication configurations need the bucket versioned, locked and open to them.
        self.ready: list[pulumi.Resource] = [versioning, lock, policy, key]
        self.account_id, self.region, self.retention_days = acct, region, args.retention_days
        self.bucket_arn = bucket.arn
        self.register_outputs({"bucketArn": bucket.arn, "keyArn": key.arn, "retentionDays": args.retention_days})

    def summary(self) -> dict[str, Any]:
        return {"accountId": self.account_id, "region": self.region, "bucket": bucket_name(self.account_id, self.region),
                "objectLock": {"mode": LOCK_MODE, "days": self.retention_days}}


# -- a member's side -------------------------------------------------------------------------------


def lock_trail_bucket(name: str, bucket: aws.s3.Bucket, days: int, region: str, versioning: pulumi.Resource,
                      parent: pulumi.Resource) -> aws.s3.BucketObjectLockConfiguration:
    """S3 Object Lock on the account's own trail bucket (new or existing, versioned first)."""
    return aws.s3.BucketObjectLockConfiguration(
        f"{name}-trail-bucket-lock", bucket=bucket.id, rule=lock_rule(days), region=region,
        opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=True, depends_on=[versioning]))


def replicate_trail_bucket(name: str, account_id: str, region: str, bucket: aws.s3.Bucket, source_bucket: str,
                           trail_key_arn: pulumi.Input[str], trail_arn: str, archive: str, versioning: pulumi.Resource,
                           parent: pulumi.Resource, tags: Mapping[str, str],
                           depends_on: Sequence[pulumi.Resource] = ()) -> aws.s3.BucketReplicationConfig:
    """Every new log file of this account's trail bucket, replicated into the locked archive."""
    plain = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        f"{name}-replication-role", name=REPLICATION_ROLE_NAME,
        description="rootwatch: replicates the trail's log files into the organization's locked log archive",
        assume_role_policy=json.dumps(replication_trust_policy(account_id)), tags=dict(tags), opts=plain)
    role_policy = aws.iam.RolePolicy(
        f"{name}-replication-role-policy", name=REPLICATION_ROLE_NAME, role=role.id,
        policy=pulumi.Output.from_input(trail_key_arn).apply(
            lambda k: json.dumps(replication_role_policy(source_bucket, archive, region, k, trail_arn))),
        opts=plain)
    return aws.s3.BucketReplicationConfig(
        f"{name}-trail-bucket-replication", bucket=bucket.id, role=role.arn,
        rules=[aws.s3.BucketReplicationConfigRuleArgs(
            id="rootwatch-archive", status="Enabled", priority=1,
            filter=aws.s3.BucketReplicationConfigRuleFilterArgs(prefix=REPLICATED_PREFIX),
            # A deletion in the audited account must not reach the archive.
            delete_marker_replication=aws.s3.BucketReplicationConfigRuleDeleteMarkerReplicationArgs(status="Disabled"),
            source_selection_criteria=aws.s3.BucketReplicationConfigRuleSourceSelectionCriteriaArgs(
                sse_kms_encrypted_objects=aws.s3.BucketReplicationConfigRuleSourceSelectionCriteriaSseKmsEncryptedObjectsArgs(
                    status="Enabled")),
            destination=aws.s3.BucketReplicationConfigRuleDestinationArgs(
                bucket=bucket_arn(archive, region), account=archive, storage_class="STANDARD",
                encryption_configuration=aws.s3.BucketReplicationConfigRuleDestinationEncryptionConfigurationArgs(
                    replica_kms_key_id=key_alias_arn(archive, region))),
        )],
        region=region,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[versioning, role_policy, *depends_on]))


def archive_account(settings: RootwatchSettings, scope: Scope) -> Account | None:
    """The log-archive account among the stack's accounts and the hub (None without trail.archive);
    refused in one line otherwise. Called before anything is registered."""
    if settings.trail.archive is None:
        return None
    wanted = settings.trail.archive.account_id
    found = next((a for a in (*scope.accounts, *([scope.hub] if scope.hub else ())) if a.id == wanted), None)
    if found is None:
        raise ConfigError([f"rootwatch:trail.archive.accountId: account {wanted} is not one of the stack's accounts "
                           f"or the hub: rootwatch needs a provider there to create the locked bucket"])
    return found


def deploy(settings: RootwatchSettings, scope: Scope, stack: str, providers: Mapping[str, Any]) -> LogArchive | None:
    """The log archive (trail.archive), through the archive account's provider; None when unset."""
    acct = archive_account(settings, scope)
    if acct is None or settings.trail.archive is None:
        return None
    return LogArchive(
        RESOURCE_NAME,
        LogArchiveArgs(account_id=acct.id, region=settings.home_region, retention_days=settings.trail.archive.retention_days,
                       # trail.archive requires trail.mode managed: every account's trail replicates here.
                       organization_id=scope.organization_id, members=[a.id for a in scope.accounts],
                       stack_tags=organization.managed_tags(stack), protect=settings.protect),
        pulumi.ResourceOptions(provider=providers[acct.id]))
