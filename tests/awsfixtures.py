"""Moto-server builders shared by the audit and drill tests.

The tests start a ThreadedMotoServer on 127.0.0.1 (free port) in-process and
drive the real CLI at it with --endpoint-url. What moto 5.2 cannot do, and how
each gap is handled here (test code only; the product code never fakes AWS):

* moto's IAM account summary always reports AccountMFAEnabled = 0 and
  AccountAccessKeysPresent = 0, and there is no API to enable root MFA or create
  a root access key. :func:`set_root_state` sets those two counters in moto's
  in-process backend, so GetAccountSummary then reports them through the API.
* moto's sts:AssumeRole never refuses ("the role does not need to exist"), so an
  unassumable role cannot be made in moto. :class:`FaultInjector` answers
  AssumeRole for chosen accounts with AccessDenied, and chosen calls inside an
  account with ThrottlingException, via botocore ``before-call`` event hooks
  on the sessions rootwatch creates (``rootwatch.commands.audit.new_session``, the one
  seam). The product's error handling sees ordinary ClientErrors.
* moto reports every SNS subscription as confirmed, so "no confirmed
  subscriber" is built as a topic with no subscriptions; the PendingConfirmation
  case is covered by the pure verdict tests.
* iam:ListOrganizationsFeatures is not implemented (HTTP 500), so centralized
  root credentials management is only covered by the pure verdict tests here;
  ``audit --root-credentials`` (tests/test_rootcreds.py) uses a stand-in with the
  documented response shapes for it and for sts:AssumeRoot, which moto lacks too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import boto3
from botocore.awsrequest import AWSResponse

from rootwatch.detection.rule import CIS_PATTERN

REGION = "us-east-1"
MGMT = "123456789012"  # moto's default account: the caller's own account
ROLE = "OrganizationAccountAccessRole"
TOPIC_NAME = "rootwatch-alerts-critical"
ALARM_NAME = "rootwatch-root-activity"
RULE_NAME = "rootwatch-root-activity"
# The CIS filter as older CIS benchmark texts print it: same meaning, different bytes.
EDITED_PATTERN = ('{ ($.userIdentity.type = "Root") && ($.userIdentity.invokedBy NOT EXISTS) '
                  '&& ($.eventType != "AwsServiceEvent") }')


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def aws_env(monkeypatch: Any, tmp_path: Any) -> None:
    """Fake credentials and an empty AWS config, so nothing on this machine leaks in."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))


def session_for(url: str, account: str) -> Any:
    from rootwatch.commands.audit import (
        new_session,  # shares parsed botocore models: faster set-up
    )

    base = new_session(region_name=REGION)
    if account == MGMT:
        return base
    creds = base.client("sts", endpoint_url=url).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{ROLE}", RoleSessionName="test-builder")["Credentials"]
    return new_session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"], region_name=REGION)


def create_member_accounts(url: str, names: Sequence[str]) -> dict[str, str]:
    org = boto3.client("organizations", endpoint_url=url, region_name=REGION)
    with contextlib.suppress(org.exceptions.AlreadyInOrganizationException):
        org.create_organization(FeatureSet="ALL")
    out = {}
    for name in names:
        status = org.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]
        out[name] = status["AccountId"]
    return out


@dataclass
class AccountSpec:
    """How one account's control is built; the defaults make a compliant account."""

    logging_on: bool = True
    selectors: str = "basic-all"  # basic-all | basic-writeonly | advanced-all
    pattern: str = CIS_PATTERN
    subscriber: bool = True
    kms: str | None = None  # None | "cmk" | "aws-managed"
    root_key: bool = False
    root_mfa: bool = True
    decoy_log_group: bool = False  # a CIS filter on a log group the trail does not use
    realtime: dict[str, str] = field(default_factory=dict)  # region -> rule state
    trail_kms: bool = True  # the trail's logs encrypted with a customer-managed key (CloudTrail.2)
    trail_key_rotation: bool = True
    bucket_logging: bool = True  # S3 server access logging on the trail bucket
    public_topic: bool = False  # a topic policy statement open to everyone
    lock_days: int = 365  # S3 Object Lock (COMPLIANCE) on the trail bucket, as trail.objectLockDays; 0: none


def build_account(url: str, account: str, spec: AccountSpec) -> dict[str, str]:
    """Deploy the control in one moto account; returns the ARNs the tests need."""
    s = session_for(url, account)

    def c(service: str, region: str = REGION) -> Any:
        return s.client(service, endpoint_url=url, region_name=region)

    bucket = f"trail-{account}"
    c("s3").create_bucket(Bucket=bucket)
    if spec.lock_days:
        c("s3").put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        c("s3").put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": spec.lock_days}}})
    logs = c("logs")
    # Deliberately not a conventional name: the audit must find it through the trail.
    group = f"/org/{account}/cloudtrail-events"
    logs.create_log_group(logGroupName=group)
    group_arn = next(g["arn"] for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"])
    if spec.bucket_logging:
        log_bucket = f"access-logs-{account}"
        c("s3").create_bucket(Bucket=log_bucket)
        c("s3").put_bucket_policy(Bucket=log_bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
             "Resource": f"arn:aws:s3:::{log_bucket}/*", "Condition": {"StringEquals": {"aws:SourceAccount": account}}}]}))
        c("s3").put_bucket_logging(Bucket=bucket, BucketLoggingStatus={
            "LoggingEnabled": {"TargetBucket": log_bucket, "TargetPrefix": "access-logs/"}})
    trail_key: dict[str, str] = {}
    if spec.trail_kms:
        key_id = c("kms").create_key(Description="trail")["KeyMetadata"]["KeyId"]
        if spec.trail_key_rotation:
            c("kms").enable_key_rotation(KeyId=key_id)
        trail_key["KmsKeyId"] = key_id
    ct = c("cloudtrail")
    trail = ct.create_trail(Name="rootwatch", S3BucketName=bucket, IsMultiRegionTrail=True,
                            EnableLogFileValidation=True, CloudWatchLogsLogGroupArn=group_arn,
                            CloudWatchLogsRoleArn=f"arn:aws:iam::{account}:role/rootwatch-trail", **trail_key)
    if spec.selectors == "advanced-all":
        ct.put_event_selectors(TrailName="rootwatch", AdvancedEventSelectors=[
            {"Name": "management", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}])
    else:
        rw = "WriteOnly" if spec.selectors == "basic-writeonly" else "All"
        ct.put_event_selectors(TrailName="rootwatch", EventSelectors=[
            {"ReadWriteType": rw, "IncludeManagementEvents": True}])
    if spec.logging_on:
        ct.start_logging(Name="rootwatch")
    transform = [{"metricName": "RootAccountUsage", "metricNamespace": "CISLogMetrics", "metricValue": "1"}]
    logs.put_metric_filter(logGroupName=group, filterName="rootwatch-root-activity", filterPattern=spec.pattern,
                           metricTransformations=transform)
    if spec.decoy_log_group:
        logs.create_log_group(logGroupName="rootwatch-cloudtrail")
        logs.put_metric_filter(logGroupName="rootwatch-cloudtrail", filterName="cis", filterPattern=CIS_PATTERN,
                               metricTransformations=[{"metricName": "Decoy", "metricNamespace": "Decoy",
                                                       "metricValue": "1"}])
    attrs: dict[str, str] = {}
    if spec.kms == "aws-managed":
        attrs["KmsMasterKeyId"] = "alias/aws/sns"
    elif spec.kms == "cmk":
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*",
             "Resource": "*"},
            {"Effect": "Allow", "Principal": {"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"}]}
        meta = c("kms").create_key(Policy=json.dumps(policy))["KeyMetadata"]
        c("kms").enable_key_rotation(KeyId=meta["KeyId"])
        attrs["KmsMasterKeyId"] = meta["Arn"]
    sns = c("sns")
    topic = sns.create_topic(Name=TOPIC_NAME, Attributes=attrs)["TopicArn"]
    if spec.public_topic:
        sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Sid": "Everyone", "Effect": "Allow", "Principal": {"AWS": "*"},
                                                   "Action": "sns:Publish", "Resource": topic}]}))
    if spec.subscriber:
        sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="oncall@example.com")
    c("cloudwatch").put_metric_alarm(
        AlarmName=ALARM_NAME, MetricName="RootAccountUsage", Namespace="CISLogMetrics", Statistic="Sum",
        Period=300, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
        ActionsEnabled=True, AlarmActions=[topic], TreatMissingData="notBreaching")
    for region, state in spec.realtime.items():
        ev = c("events", region)
        ev.put_rule(Name=RULE_NAME, State=state, EventPattern=json.dumps(
            {"detail-type": ["AWS API Call via CloudTrail", "AWS Console Sign In via CloudTrail"],
             "detail": {"userIdentity": {"type": ["Root"]}}}))
        ev.put_targets(Rule=RULE_NAME, Targets=[{"Id": "alerts", "Arn": topic}])
    set_root_state(account, access_key=spec.root_key, mfa=spec.root_mfa)
    return {"topic": topic, "trail": trail["TrailARN"], "logGroup": group_arn}


def set_root_state(account: str, *, access_key: bool, mfa: bool) -> None:
    """moto has no API for root MFA or root access keys: set its in-process account summary (see module doc)."""
    from moto.iam.models import iam_backends

    summary = iam_backends[account]["aws"].account_summary
    summary._account_access_keys_present = int(access_key)
    summary._account_mfa_enabled = int(mfa)


def write_snapshot(path: Any, accounts: Sequence[tuple[str, str, str]]) -> str:
    """accounts: (id, name, state); the first is the management account."""
    data = {"managementAccountId": accounts[0][0], "accounts": [
        {"id": i, "name": n, "email": f"{n}@example.com", "state": st, "ouPath": "r-ab12/ou-ab12-prod0001",
         "tags": {}} for i, n, st in accounts]}
    path.write_text(json.dumps(data))
    return str(path)


class FaultInjector:
    """Make chosen accounts fail the way AWS would, where moto cannot (see module doc).

    ``deny_assume``: AssumeRole into these accounts answers AccessDenied.
    ``throttle``: {account: (service, Operation)}: that call inside the account answers ThrottlingException.
    """

    def __init__(self, deny_assume: Sequence[str] = (), throttle: dict[str, tuple[str, str]] | None = None) -> None:
        self.deny_assume = set(deny_assume)
        self.throttle = dict(throttle or {})
        self.key_account: dict[str, str] = {}  # assumed-role access key -> account
        self.refused: list[str] = []

    def install(self, monkeypatch: Any) -> None:
        from rootwatch.commands import audit

        real = audit.new_session

        def new_session(**kwargs: Any) -> Any:
            session = real(**kwargs)
            session.events.register("before-call.sts.AssumeRole", self._before_assume)
            session.events.register("after-call.sts.AssumeRole", self._after_assume)
            account = self.key_account.get(kwargs.get("aws_access_key_id", ""))
            if account in self.throttle:
                service, op = self.throttle[account]
                session.events.register(f"before-call.{service}.{op}", self._throttled)
            return session

        monkeypatch.setattr(audit, "new_session", new_session)

    @staticmethod
    def _error(status: int, code: str, message: str) -> tuple[AWSResponse, dict[str, Any]]:
        http = AWSResponse("https://injected.invalid", status, {}, io.BytesIO(b""))
        return http, {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}

    def _before_assume(self, params: dict[str, Any], **_: Any) -> Any:
        role_arn = str((params.get("body") or {}).get("RoleArn", ""))
        account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
        if account in self.deny_assume:
            self.refused.append(account)
            return self._error(403, "AccessDenied", f"User: arn:aws:iam::{MGMT}:user/auditor is not authorized "
                                                    f"to perform: sts:AssumeRole on resource: {role_arn}")
        return None

    def _after_assume(self, parsed: dict[str, Any], **_: Any) -> None:
        creds = parsed.get("Credentials") or {}
        arn = (parsed.get("AssumedRoleUser") or {}).get("Arn", "")
        if creds and arn.count(":") >= 5:
            self.key_account[creds["AccessKeyId"]] = arn.split(":")[4]

    def _throttled(self, **_: Any) -> Any:
        return self._error(400, "ThrottlingException", "Rate exceeded")


def run_cli(argv: Sequence[str], capsys: Any, monkeypatch: Any) -> tuple[int, str, str]:
    """The real entry point. Command modules other engineers have not landed yet are left out of the registry."""
    from rootwatch.commands import cli

    present = tuple(m for m in cli.COMMAND_MODULES if importlib.util.find_spec(m) is not None)
    monkeypatch.setattr(cli, "COMMAND_MODULES", present)
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
