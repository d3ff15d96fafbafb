"""RootActivityMonitor: the whole root-activity chain for one member account.

trail -> CloudWatch Logs -> CIS metric filter -> alarm -> local encrypted SNS topic, whose
only subscriber is the hub's alarm intake queue (``rootwatch.program.hub``); and, in every
region, EventBridge rules sending root activity and tampering straight to the hub's bus.
Every child is created through the account's own provider. No human endpoint here.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import pulumi
import pulumi_aws as aws

from rootwatch.core.arns import partition
from rootwatch.core.severity import Severity
from rootwatch.detection import rule as detection
from rootwatch.program import alerting, archive, realtime, trailsecurity
from rootwatch.program.chain import (
    ALARM_NAME,
    COMPONENT_TYPE,
    LOG_GROUP_NAME,
    METRIC_FILTER_NAME,
    TRAIL_ROLE_NAME,
    HubRef,
    RootActivityMonitorArgs,
)
from rootwatch.program.organization import Account
from rootwatch.program.settings import RootwatchSettings, Subscription


def intake_queue_arn(hub_account_id: str, hub_region: str) -> str:
    return f"arn:{partition(hub_region)}:sqs:{hub_region}:{hub_account_id}:{realtime.HUB_QUEUE_NAME}"


def trail_arn(account_id: str, region: str, trail_name: str) -> str:
    return f"arn:{partition(region)}:cloudtrail:{region}:{account_id}:trail/{trail_name}"


def log_group_arn(account_id: str, region: str, name: str) -> str:
    return f"arn:{partition(region)}:logs:{region}:{account_id}:log-group:{name}"


def bucket_name(account_id: str, region: str) -> str:
    return f"rootwatch-trail-{account_id}-{region}"


def bucket_policy(bucket: str, account_id: str, region: str, trail_name: str) -> dict[str, Any]:
    p = partition(region)
    source = {"aws:SourceArn": trail_arn(account_id, region, trail_name)}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CloudTrailAclCheck",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "s3:GetBucketAcl",
                "Resource": f"arn:{p}:s3:::{bucket}",
                "Condition": {"StringEquals": source},
            },
            {
                "Sid": "CloudTrailWrite",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": f"arn:{p}:s3:::{bucket}/AWSLogs/{account_id}/*",
                "Condition": {"StringEquals": {**source, "s3:x-amz-acl": "bucket-owner-full-control"}},
            },
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:{p}:s3:::{bucket}", f"arn:{p}:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


def trail_role_trust_policy(account_id: str, region: str, trail_name: str) -> dict[str, Any]:
    # Confused-deputy guard: only this account's rootwatch trail may assume the delivery role.
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnLike": {"aws:SourceArn": trail_arn(account_id, region, trail_name)},
                },
            }
        ],
    }


def trail_role_policy(account_id: str, region: str, group: str) -> dict[str, Any]:
    # Least privilege: write streams of this one log group, nothing else.
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DeliverTrailToLogGroup",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"{log_group_arn(account_id, region, group)}:log-stream:*",
            }
        ],
    }


def existing_log_group(account: Account, s: RootwatchSettings, opts: pulumi.InvokeOptions) -> str:
    """trail.mode existing: the account's log group, looked up through the account's own provider.

    Refuses (RootwatchError naming account and group) when it is not there: a metric filter on a
    missing group fails the deployment. Control Tower's organization trail delivers to a group in
    the management account only (landing zone 4.0: ``aws-controltower/CloudTrailLogs-<random>``,
    found with ``trail.logGroupPrefix``).
    """
    from rootwatch.core.errors import RootwatchError

    wanted = s.trail.log_group_name or s.trail.log_group_prefix or ""
    found = aws.cloudwatch.get_log_groups(log_group_name_prefix=wanted, region=s.home_region, opts=opts)
    names = sorted(found.log_group_names or [])
    if s.trail.log_group_name:
        names = [n for n in names if n == wanted]
    if not names:
        what = "log group" if s.trail.log_group_name else "log group with prefix"
        raise RootwatchError(
            f"account {account.id}: trail.mode existing: {what} {wanted!r} does not exist in {s.home_region}; an "
            "organization trail (Control Tower) delivers to the management account only: monitor that account, "
            "or use mode 'managed'")
    return names[0]


def alarm_description(account: Account, runbook_url: str | None, organization_group: str | None = None) -> str:
    if organization_group:
        # One alarm for the whole organization: the event names the account (recipientAccountId), and the
        # account's real-time alert says which one.
        text = (f"rootwatch: root user activity in an account of the organization (organization trail log group "
                f"{organization_group} in account {account.name} ({account.id})); the event's recipientAccountId "
                "and the real-time alert name the account.")
    else:
        text = f"rootwatch: root user activity in account {account.name} ({account.id})."
    if runbook_url:
        text += f" Runbook: {runbook_url}"
    return text


class RootActivityMonitor(pulumi.ComponentResource):
    """Root-activity detection and alerting for one account."""

    account: Account
    severity: Severity
    levels: tuple[Severity, ...]
    routes: Mapping[Severity, Sequence[Subscription]]
    trail_arn: pulumi.Output[str] | None
    log_group_name: pulumi.Output[str]
    metric_filter_name: pulumi.Output[str]
    alarm_arn: pulumi.Output[str]
    topic_arns: dict[Severity, pulumi.Output[str]]

    def __init__(self, name: str, args: RootActivityMonitorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        self.account = args.account
        self.severity = args.severity
        # Levels this account's alerts can reach and the hub's routes for them (the summary shows them;
        # the subscriptions themselves are the hub's). ``args.levels`` is the local topic's level.
        self.levels = tuple(args.settings.levels_for(args.severity, args.account.id))
        self.routes = args.settings.routes
        s = args.settings
        acct = args.account.id
        region = s.home_region
        tags = dict(args.tags)
        child = pulumi.ResourceOptions(parent=self)
        # Audit data and keys outlive the stack: never deleted by `pulumi destroy`.
        stateful = pulumi.ResourceOptions(parent=self, protect=s.protect, retain_on_delete=True)
        # What guards a retained bucket stays with it: deleting BucketVersioning would suspend versioning.
        retained = pulumi.ResourceOptions(parent=self, retain_on_delete=True)

        hub = args.hub or HubRef(acct, region)
        # One local topic, at the baseline level (the alarm's): the CIS chain needs it in the
        # account (Security Hub CloudWatch.1), and the hub's queue is its one (confirmed) subscriber.
        alerts = alerting.create_alert_topics(
            name, acct, region, [args.severity], {}, False, child, stateful, tags,
            hub=(hub.account_id, intake_queue_arn(hub.account_id, hub.region)),
        )

        if s.trail.mode == "managed":
            group_name = LOG_GROUP_NAME
            # One key for the trail's logs and both log groups (trail and alert formatter).
            key = trailsecurity.create_trail_key(
                name, acct, region, s.trail.key_arn_for(acct), trail_arn(acct, region, s.trail.name),
                [log_group_arn(acct, region, group_name), realtime.formatter_log_group_arn(acct, region)],
                child, stateful, tags,
            )
            self.trail_key = key
            log_group = aws.cloudwatch.LogGroup(
                f"{name}-log-group",
                name=group_name,
                retention_in_days=s.trail.retention_days,
                kms_key_id=key.arn,
                region=region,
                tags=tags,
                opts=stateful,
            )
            trail = self._trail(name, args, group_name, log_group, key, stateful, retained, tags)
            self.trail_arn = trail.arn
            self.log_group_name = log_group.name
        else:
            # "existing": the account's own trail's group, looked up through the account's provider;
            # "organization": the organization trail's group (in its owner account).
            if s.trail.mode == "existing":
                group_name = existing_log_group(
                    args.account, s, pulumi.InvokeOptions(parent=self, provider=opts.provider if opts else None))
            else:
                group_name = s.trail.log_group_name or ""
            self.trail_key = None
            self.trail_arn = None
            self.log_group_name = pulumi.Output.from_input(group_name)

        if s.trail.mode == "organization" and not s.trail.owns_organization_trail(acct, args.account.is_management):
            # A member: the organization trail records it, the CIS filter and alarm live in the owner account,
            # and its own events reach its real-time rules (which attribute them to the account).
            # No filter or alarm of its own: exported as null.
            self.metric_filter_name = pulumi.Output.from_input(None)  # type: ignore[arg-type]
            self.alarm_arn = pulumi.Output.from_input(None)  # type: ignore[arg-type]
            self._finish(name, args, alerts, child)
            return
        metric_filter = aws.cloudwatch.LogMetricFilter(
            f"{name}-metric-filter",
            name=METRIC_FILTER_NAME,
            log_group_name=self.log_group_name,
            # Byte-exact CIS / Security Hub CloudWatch.1 string; extra detection lives elsewhere.
            pattern=detection.CIS_PATTERN,
            metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                name=detection.CIS_METRIC_NAME, namespace=s.alarm.namespace, value="1"
            ),
            region=region,
            opts=child,
        )
        alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-alarm",
            name=ALARM_NAME,
            alarm_description=alarm_description(
                args.account, s.runbook_url, s.trail.log_group_name if s.trail.mode == "organization" else None),
            namespace=s.alarm.namespace,
            metric_name=detection.CIS_METRIC_NAME,
            statistic="Sum",
            period=s.alarm.period_seconds,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            actions_enabled=True,
            alarm_actions=[alerts.topics[args.severity].arn],
            region=region,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[metric_filter]),
        )
        self.metric_filter_name = metric_filter.name
        self.alarm_arn = alarm.arn
        self._finish(name, args, alerts, child)

    def _finish(self, name: str, args: RootActivityMonitorArgs, alerts: Any, child: pulumi.ResourceOptions) -> None:
        s = args.settings
        hub = args.hub or HubRef(args.account.id, s.home_region)
        # EventBridge in every region -> the hub's bus (rootwatch.program.realtime).
        self.realtime = (
            realtime.create_realtime(self, name, args, alerts.topics[args.severity].arn, hub, alerts.key.key_id, child)
            if s.realtime.enabled else None
        )
        self.topic_arns = {lvl: t.arn for lvl, t in alerts.topics.items()}
        self.register_outputs(
            {
                "trailArn": self.trail_arn,
                "logGroupName": self.log_group_name,
                "metricFilterName": self.metric_filter_name,
                "alarmArn": self.alarm_arn,
                "topicArns": {lvl.value: arn for lvl, arn in self.topic_arns.items()},
                "realtime": self.realtime.outputs() if self.realtime else None,
            }
        )

    def _trail(
        self,
        name: str,
        args: RootActivityMonitorArgs,
        group_name: str,
        log_group: aws.cloudwatch.LogGroup,
        key: trailsecurity.TrailKey,
        stateful: pulumi.ResourceOptions,
        child: pulumi.ResourceOptions,
        tags: dict[str, str],
    ) -> aws.cloudtrail.Trail:
        # ``child`` here retains on delete: every satellite of the retained bucket stays with it.
        s = args.settings
        acct, region, trail_name = args.account.id, s.home_region, s.trail.name
        bname = bucket_name(acct, region)
        bucket = aws.s3.Bucket(f"{name}-trail-bucket", bucket=bname, force_destroy=False, region=region, tags=tags, opts=stateful)
        versioning = aws.s3.BucketVersioning(
            f"{name}-trail-bucket-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            region=region,
            opts=child,
        )
        public_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-trail-bucket-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            region=region,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-trail-bucket-ownership",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            region=region,
            opts=child,
        )
        kms = s.trail.key_arn_for(acct)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-trail-bucket-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms" if kms else "AES256", kms_master_key_id=kms
                    ),
                    bucket_key_enabled=bool(kms),
                )
            ],
            region=region,
            opts=child,
        )
        self._lifecycle(name, bucket, s, region, child)
        # Immutable logs (rootwatch.program.archive): replicas in the locked log archive, else a lock here.
        if s.trail.archive is not None:
            archive.replicate_trail_bucket(name, acct, region, bucket, bname, key.arn,
                                           trail_arn(acct, region, trail_name), s.trail.archive.account_id,
                                           versioning, self, tags, args.archive_ready)
        elif s.trail.object_lock_days:
            archive.lock_trail_bucket(name, bucket, s.trail.object_lock_days, region, versioning, self)
        policy = aws.s3.BucketPolicy(
            f"{name}-trail-bucket-policy",
            bucket=bucket.id,
            policy=json.dumps(bucket_policy(bname, acct, region, trail_name)),
            region=region,
            # A policy applied before the public-access block can race it (409 conflicts).
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[public_block])),
        )
        trailsecurity.create_access_logging(name, bucket, bname, acct, region, stateful, child, tags)
        plain = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-trail-role",
            name=TRAIL_ROLE_NAME,
            description="rootwatch: lets CloudTrail deliver to its CloudWatch Logs group",
            assume_role_policy=json.dumps(trail_role_trust_policy(acct, region, trail_name)),
            tags=tags,
            opts=plain,
        )
        role_policy = aws.iam.RolePolicy(
            f"{name}-trail-role-policy",
            role=role.id,
            policy=json.dumps(trail_role_policy(acct, region, group_name)),
            opts=plain,
        )
        return aws.cloudtrail.Trail(
            f"{name}-trail",
            name=trail_name,
            s3_bucket_name=bucket.id,
            is_multi_region_trail=True,
            include_global_service_events=True,
            enable_log_file_validation=True,
            enable_logging=True,
            # CIS 3.x / CloudTrail.2: log files encrypted with the account's customer-managed key.
            kms_key_id=key.arn,
            # Read AND write, nothing excluded: a leaked root key listing buckets is read-only.
            event_selectors=[
                aws.cloudtrail.TrailEventSelectorArgs(
                    read_write_type="All", include_management_events=True, exclude_management_event_sources=[]
                )
            ],
            cloud_watch_logs_group_arn=log_group.arn.apply(lambda arn: f"{arn}:*"),
            cloud_watch_logs_role_arn=role.arn,
            region=region,
            tags=tags,
            # CloudTrail validates bucket access, role and key policy at creation time.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, role_policy, *([key.key] if key.key else [])]),
        )

    def _lifecycle(
        self, name: str, bucket: aws.s3.Bucket, s: RootwatchSettings, region: str, child: pulumi.ResourceOptions
    ) -> None:
        lc = s.trail.lifecycle
        if not (lc.glacier_after_days or lc.expire_after_days):
            return
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-trail-bucket-lifecycle",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="rootwatch-trail-retention",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    transitions=[
                        aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(days=lc.glacier_after_days, storage_class="GLACIER")
                    ]
                    if lc.glacier_after_days
                    else None,
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=lc.expire_after_days)
                    if lc.expire_after_days
                    else None,
                )
            ],
            region=region,
            opts=child,
        )


def deploy(account: Account, settings: RootwatchSettings, stack: str, secret_keys: set[str],
           provider: Any = None, hub: HubRef | None = None, archive_ready: Sequence[Any] = ()) -> RootActivityMonitor:
    """One monitor per account, through that account's own provider (``provider``, else made here)."""
    from rootwatch.program import organization

    baseline = organization.baseline_severity(settings, account)
    if provider is None:
        provider = organization.provider_for(account, settings, stack)
    args = RootActivityMonitorArgs(
        account=account,
        settings=settings,
        severity=baseline,
        # The local topic's level; the hub's topics cover every level the account can reach.
        levels=[baseline],
        routes={},
        secret_endpoints="routes" in secret_keys,
        tags=organization.managed_tags(stack),
        hub=hub,
        archive_ready=archive_ready,
    )
    return RootActivityMonitor(f"rootwatch-{account.id}", args, pulumi.ResourceOptions(provider=provider))
