"""``rootwatch audit``: check the live root-activity control in every account.

For each account the audit assumes a role (the account it already runs in uses
its own credentials), reads what AWS reports, and evaluates six checks:

``trail``
    a multi-region trail that is logging, validates log files, records read and
    write management events and delivers to CloudWatch Logs;
``filter``
    a metric filter with the byte-exact CIS pattern on *that trail's* log group
    (found from ``CloudWatchLogsLogGroupArn``, never by name); an equivalent but
    edited pattern fails, because Security Hub compares the text;
``alarm``
    an alarm on the filter's metric (found from its metricTransformations):
    Sum, threshold <= 1, >=, actions enabled, period <= 300 s, an SNS action;
``topic``
    that SNS topic has a confirmed subscription (from ListSubscriptionsByTopic,
    not the topic's counters) and, when encrypted, a customer-managed key whose
    policy lets cloudwatch.amazonaws.com use it;
``rootCredentials``
    no root access keys, and root MFA or centrally managed root credentials with
    no root password;
``realtime`` (with ``--realtime``)
    the EventBridge rule in every region, in state
    ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS, sending to the alert hub's bus
    (or, without a hub, to some target).

The stack's alert hub is checked too (``rootwatch.commands.audit_hub``: bus, rules,
formatter, level topics, alarm intake) and reported as ``hub``; ``--no-hub`` skips it.

AWS calls stay in :func:`collect`; :func:`evaluate` is a pure function over the
plain dicts the describe/get calls returned, so the verdict logic is tested
without AWS. When an account has several candidate trails, filters, alarms or
topics, the verdict comes from the chain trail -> filter -> alarm -> topic that
gets furthest, as Security Hub passes an account if any chain is complete.

Output: one row per account plus the KPIs. ``policyComplianceScore`` is the
percentage (0-100, one decimal) of in-scope (ACTIVE) accounts that are
compliant; an account that could not be audited counts as not compliant.
Exit 0 when every account is compliant, 1 otherwise, 2 for bad input.

``--root-credentials`` / ``--delete-root-credentials`` report (or remove) the root
credentials themselves: ``rootwatch.commands.rootcreds``.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import functools
import json
import re
import sys
import threading
from typing import Any, Callable, Iterable, Mapping, Sequence

from rootwatch.compliance.rules import object_lock_problem, public_statements
from rootwatch.core.errors import RootwatchError
from rootwatch.detection.rule import CIS_PATTERN

CHECKS = ("trail", "filter", "alarm", "topic", "rootCredentials", "realtime")
SHORT = {"trail": "TRAIL", "filter": "FILTER", "alarm": "ALARM", "topic": "TOPIC",
         "rootCredentials": "ROOT", "realtime": "REALTIME"}
DEFAULT_ROLE = "OrganizationAccountAccessRole"
DEFAULT_REGION = "us-east-1"
RULE_NAME = "rootwatch-root-activity"
REALTIME_STATE = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
MAX_PERIOD = 300
MAX_THRESHOLD = 1.0
PROGRESS_MIN_ACCOUNTS = 4  # "more than a few"
# Management-event sources a trail may exclude without hiding root activity
# (the only two that basic selectors allow excluding).
HARMLESS_EXCLUSIONS = frozenset({"kms.amazonaws.com", "rdsdata.amazonaws.com"})
# Errors that mean "this resource is not there", reported as a failed check
# rather than as an account that could not be audited.
NOT_FOUND_CODES = frozenset({"NotFound", "NotFoundException", "ResourceNotFoundException",
                             "TrailNotFoundException", "InvalidParameter",
                             # SQS GetQueueUrl (query protocol, then JSON protocol)
                             "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})

ACCOUNT_RE = re.compile(r"^\d{12}$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
ROLE_NAME_RE = re.compile(r"^[\w+=,.@/-]{1,64}$")

Facts = Mapping[str, Any]
Check = dict[str, Any]


# ---------------------------------------------------------------- CLI input


def validate_account_id(value: str, what: str = "account id") -> str:
    if not ACCOUNT_RE.match(value or ""):
        raise RootwatchError(f"{what} {value!r} is not a 12-digit AWS account id")
    return value


def validate_region(value: str) -> str:
    if not REGION_RE.match(value or ""):
        raise RootwatchError(f"region {value!r} is not an AWS region name (e.g. us-east-1)")
    return value


def validate_role_name(value: str) -> str:
    if not ROLE_NAME_RE.match(value or ""):
        raise RootwatchError(f"--role-name {value!r} is not a valid IAM role name")
    return value


# ---------------------------------------------------------------- AWS edges


def client_config() -> Any:
    """Standard retries with backoff (max attempts from AWS_MAX_ATTEMPTS, default 3) and timeouts."""
    from botocore.config import Config

    return Config(retries={"mode": "standard"}, connect_timeout=5, read_timeout=30)


_LOADER_LOCK = threading.Lock()
_SHARED_LOADER: list[Any] = []


def new_session(**kwargs: Any) -> Any:
    """Every boto3 session is made here (also one seam for tests to add botocore event hooks).

    Sessions share one botocore data loader, so the service models and endpoint
    data are parsed once per run rather than once per account.
    """
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    with _LOADER_LOCK:
        if not _SHARED_LOADER:
            _SHARED_LOADER.append(core.get_component("data_loader"))
        loader = _SHARED_LOADER[0]
        core.register_component("data_loader", loader)
        session = boto3.session.Session(botocore_session=core, **kwargs)
        # boto3 appends its data path to the loader on every session: keep the shared list short.
        loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
    return session


class Clients:
    """Clients of one account's session, cached per (service, region), all pointed at ``endpoint_url``."""

    def __init__(self, session: Any, region: str, endpoint_url: str | None) -> None:
        self.session = session
        self.region = region
        self.endpoint_url = endpoint_url
        self._cache: dict[tuple[str, str], Any] = {}
        self._config = client_config()
        self._lock = threading.Lock()  # boto3 sessions are not thread-safe; the clients they make are

    def __call__(self, service: str, region: str | None = None) -> Any:
        key = (service, region or self.region)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self.session.client(service, region_name=key[1], endpoint_url=self.endpoint_url,
                                                       config=self._config)
            return self._cache[key]


def base_clients(region: str | None, endpoint_url: str | None) -> Clients:
    session = new_session(region_name=region) if region else new_session()
    return Clients(session, region or session.region_name or DEFAULT_REGION, endpoint_url)


def account_clients(base: Clients, account_id: str, caller_account: str | None, role_name: str,
                    session_name: str = "rootwatch-audit") -> Clients:
    """The caller's own account uses its own credentials; any other account is reached by AssumeRole."""
    if account_id == caller_account:
        return base
    from rootwatch.core.arns import partition

    role_arn = f"arn:{partition(base.region)}:iam::{account_id}:role/{role_name}"
    try:
        creds = base("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
    except Exception as exc:
        raise AccountError(f"cannot assume {role_arn}: {describe_error(exc)}") from None
    session = new_session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                          aws_session_token=creds["SessionToken"], region_name=base.region)
    return Clients(session, base.region, base.endpoint_url)


class AccountError(Exception):
    """An account could not be audited; the message is one line, safe to print."""


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def describe_error(exc: BaseException) -> str:
    """One line for a failed AWS call: 'Code: message' for service errors, never a traceback."""
    if isinstance(exc, AccountError):
        return str(exc)
    code = error_code(exc)
    if code:
        message = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())  # type: ignore[attr-defined]
        op = getattr(exc, "operation_name", "")
        text = f"{op}: {code}" if op else code
        return _clip(f"{text}: {message}" if message else text)
    return _clip(" ".join(f"{type(exc).__name__}: {exc}".split()))


def _clip(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _not_found(exc: BaseException) -> bool:
    return error_code(exc) in NOT_FOUND_CODES


def parse_arn(arn: str) -> dict[str, str]:
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return {"partition": "", "service": "", "region": "", "account": "", "resource": arn}
    return {"partition": parts[1], "service": parts[2], "region": parts[3], "account": parts[4], "resource": parts[5]}


def log_group_from_arn(arn: str) -> dict[str, str] | None:
    """arn:aws:logs:REGION:ACCOUNT:log-group:NAME[:*] -> {"name", "region", "account", "arn"}."""
    a = parse_arn(arn)
    if a["service"] != "logs" or not a["resource"].startswith("log-group:"):
        return None
    name = a["resource"][len("log-group:"):]
    if name.endswith(":*"):
        name = name[:-2]
    return {"arn": arn, "name": name, "region": a["region"], "account": a["account"]}


def _paginate(client: Any, op: str, key: str, **kwargs: Any) -> list[Any]:
    out: list[Any] = []
    for page in client.get_paginator(op).paginate(**kwargs):
        out.extend(page.get(key, []))
    return out


def enabled_regions(clients: Clients) -> list[str]:
    regions = clients("ec2").describe_regions(AllRegions=False)["Regions"]
    return sorted(r["RegionName"] for r in regions if r.get("OptInStatus", "opt-in-not-required") != "not-opted-in")


class OrgContext:
    """What is known about the organization, looked up once and lazily (thread-safe)."""

    def __init__(self, management_account_id: str | None, lookup: Callable[[], tuple[bool | None, str | None]]) -> None:
        self.management_account_id = management_account_id
        self._lookup = lookup
        self._lock = threading.Lock()
        self._result: tuple[bool | None, str | None] | None = None

    def root_credentials_management(self) -> tuple[bool | None, str | None]:
        """(enabled, error): IAM ListOrganizationsFeatures from the management account."""
        with self._lock:
            if self._result is None:
                self._result = self._lookup()
            return self._result


def org_features_lookup(base: Clients) -> Callable[[], tuple[bool | None, str | None]]:
    def lookup() -> tuple[bool | None, str | None]:
        try:
            features = base("iam").list_organizations_features().get("EnabledFeatures", [])
        except Exception as exc:
            return None, describe_error(exc)
        return "RootCredentialsManagement" in features, None

    return lookup


def collect(clients: Clients, account_id: str, *, org: OrgContext, realtime: bool,
            regions: Sequence[str] | None, hub_bus_arn: str | None = None) -> dict[str, Any]:
    """Read everything the checks need for one account. Plain dicts in, plain dicts out."""
    facts: dict[str, Any] = {"accountId": account_id, "trails": [], "topics": {}}
    home = clients.region
    trail_list = clients("cloudtrail").describe_trails(includeShadowTrails=True).get("trailList", [])
    facts["singleRegionTrails"] = [t.get("Name", "") for t in trail_list if not t.get("IsMultiRegionTrail")]
    topic_arns: list[str] = []
    for trail in trail_list:
        if not trail.get("IsMultiRegionTrail"):
            continue
        arn = trail.get("TrailARN") or trail.get("Name")
        ct = clients("cloudtrail", trail.get("HomeRegion") or home)
        entry: dict[str, Any] = {"trail": trail, "status": {}, "selectors": {},
                                 "logGroup": None, "metricFilters": [], "alarms": {}}
        facts["trails"].append(entry)
        try:
            entry["status"] = ct.get_trail_status(Name=arn)
            entry["selectors"] = ct.get_event_selectors(TrailName=arn)
        except Exception as exc:  # e.g. a trail deleted between the calls
            if not _not_found(exc):
                raise
            entry["trailError"] = describe_error(exc)
        entry.update(collect_trail_storage(clients, trail))
        lg = log_group_from_arn(trail.get("CloudWatchLogsLogGroupArn") or "")
        entry["logGroup"] = lg
        if not lg or lg["account"] != account_id:
            continue  # reported by the filter check; another account's log group is not ours to read
        try:
            entry["metricFilters"] = _paginate(clients("logs", lg["region"]), "describe_metric_filters",
                                               "metricFilters", logGroupName=lg["name"])
        except Exception as exc:
            if not _not_found(exc):
                raise
            entry["logGroupError"] = describe_error(exc)
        cw = clients("cloudwatch", lg["region"])
        for f in entry["metricFilters"]:
            for mt in f.get("metricTransformations", []):
                ns, name = mt.get("metricNamespace", ""), mt.get("metricName", "")
                if name in entry["alarms"].get(ns, {}):
                    continue
                alarms = cw.describe_alarms_for_metric(MetricName=name, Namespace=ns).get("MetricAlarms", [])
                entry["alarms"].setdefault(ns, {})[name] = alarms
                for a in alarms:
                    topic_arns.extend(x for x in a.get("AlarmActions", []) if parse_arn(x)["service"] == "sns")
    for arn in dict.fromkeys(topic_arns):
        facts["topics"][arn] = collect_topic(clients, arn)
    facts["accountSummary"] = clients("iam").get_account_summary().get("SummaryMap", {})
    facts["isManagementAccount"] = account_id == org.management_account_id
    if facts["accountSummary"].get("AccountMFAEnabled") != 1 and not facts["isManagementAccount"]:
        enabled, err = org.root_credentials_management()
        facts["rootCredentialsManagement"] = enabled
        facts["rootCredentialsManagementError"] = err
    if realtime:
        facts["realtime"] = collect_rules(clients, list(regions) if regions else enabled_regions(clients))
        facts["hubBusArn"] = hub_bus_arn
    return facts


def _readable(exc: BaseException) -> bool:
    """A resource we may not read (another account's, or no permission): reported, not raised."""
    return _not_found(exc) or error_code(exc) in ("AccessDeniedException", "AccessDenied")


def collect_trail_storage(clients: Clients, trail: Mapping[str, Any]) -> dict[str, Any]:
    """The trail bucket's access logging and the trail key's rotation (CIS 3.x, what Prowler checks)."""
    out: dict[str, Any] = {"bucketLogging": None, "bucketLoggingError": None,
                           "keyRotation": None, "keyRotationError": None}
    bucket = trail.get("S3BucketName")
    if bucket:
        try:
            out["bucketLogging"] = clients("s3").get_bucket_logging(Bucket=bucket).get("LoggingEnabled") or {}
        except Exception as exc:
            if not _readable(exc):
                raise
            out["bucketLoggingError"] = describe_error(exc)
        out.update(collect_immutability(clients, bucket))
    key = trail.get("KmsKeyId")
    if key:
        region = parse_arn(key)["region"] if key.startswith("arn:") else trail.get("HomeRegion") or clients.region
        try:
            out["keyRotation"] = bool(clients("kms", region).get_key_rotation_status(KeyId=key).get("KeyRotationEnabled"))
        except Exception as exc:
            if not _readable(exc):
                raise
            out["keyRotationError"] = describe_error(exc)
    return out


# S3's answers for a bucket without that configuration (not errors: facts).
NO_LOCK_CODES = frozenset({"ObjectLockConfigurationNotFoundError"})
NO_REPLICATION_CODES = frozenset({"ReplicationConfigurationNotFoundError"})


def collect_immutability(clients: Clients, bucket: str) -> dict[str, Any]:
    """The trail bucket's Object Lock and replication (trail.archive), for ``immutableLogs``."""
    out: dict[str, Any] = {"objectLock": None, "replication": None, "immutabilityError": None}
    s3 = clients("s3")
    for key, call, absent in (("objectLock", lambda: s3.get_object_lock_configuration(Bucket=bucket)
                               .get("ObjectLockConfiguration") or {}, NO_LOCK_CODES),
                              ("replication", lambda: s3.get_bucket_replication(Bucket=bucket)
                               .get("ReplicationConfiguration") or {}, NO_REPLICATION_CODES)):
        try:
            out[key] = call()
        except Exception as exc:
            if error_code(exc) in absent:
                out[key] = {}
            elif _readable(exc):
                out["immutabilityError"] = describe_error(exc)
            else:
                raise
    return out


def evaluate_immutable_logs(facts: Facts) -> Check | None:
    """Can the account erase its multi-region trails' log files? (beside the checks, not in "compliant").
    ok: the bucket has COMPLIANCE-mode Object Lock with a default retention, or replicates without
    delete markers (the destination's lock is the archive account's to show). None: no trail here."""
    verdicts: list[Check] = []
    for entry in facts.get("trails") or []:
        bucket = entry.get("trail", {}).get("S3BucketName")
        if not bucket:
            continue
        if entry.get("immutabilityError"):
            verdicts.append(_fail(f"bucket {bucket}: cannot read its Object Lock or replication "
                                  f"({entry['immutabilityError']})"))
            continue
        lock = entry.get("objectLock") or {}
        retention = (lock.get("Rule") or {}).get("DefaultRetention") or {}
        problem = object_lock_problem(retention.get("Mode"), retention.get("Days"), retention.get("Years")) \
            if lock.get("ObjectLockEnabled") == "Enabled" else "no Object Lock"
        if problem is None:
            span = f"{retention['Days']} days" if retention.get("Days") else f"{retention['Years']} years"
            verdicts.append(_ok(f"bucket {bucket}: S3 Object Lock COMPLIANCE, {span}"))
            continue
        rules = [r for r in (entry.get("replication") or {}).get("Rules", []) if r.get("Status") == "Enabled"]
        keeps = [r for r in rules if (r.get("DeleteMarkerReplication") or {}).get("Status") != "Enabled"]
        if keeps:
            dest = (keeps[0].get("Destination") or {}).get("Bucket", "?")
            verdicts.append(_ok(f"bucket {bucket}: replicates to {dest} without delete markers "
                                "(that bucket's lock is shown when its account is audited)"))
        elif rules:
            verdicts.append(_fail(f"bucket {bucket}: replication copies delete markers to the archive"))
        elif lock.get("ObjectLockEnabled") == "Enabled":
            verdicts.append(_fail(f"bucket {bucket}: {problem}"))
        else:
            verdicts.append(_fail(f"bucket {bucket}: versioned at most: the account's root user or an admin can "
                                  "delete every log file"))
    if not verdicts:
        return None
    return next((v for v in verdicts if v["ok"]), verdicts[0])


def collect_topic(clients: Clients, arn: str) -> dict[str, Any]:
    region = parse_arn(arn)["region"] or clients.region
    sns = clients("sns", region)
    out: dict[str, Any] = {"attributes": None, "subscriptions": [], "kmsKey": None, "error": None}
    try:
        out["attributes"] = sns.get_topic_attributes(TopicArn=arn).get("Attributes", {})
        out["subscriptions"] = _paginate(sns, "list_subscriptions_by_topic", "Subscriptions", TopicArn=arn)
    except Exception as exc:
        if not _not_found(exc):
            raise
        out["error"] = "topic not found"
        return out
    key_id = (out["attributes"] or {}).get("KmsMasterKeyId")
    if key_id and not is_aws_managed_sns_key(key_id):
        kms = clients("kms", region)
        key: dict[str, Any] = {"metadata": None, "policy": None, "error": None}
        try:
            key["metadata"] = kms.describe_key(KeyId=key_id)["KeyMetadata"]
            key["policy"] = kms.get_key_policy(KeyId=key["metadata"]["KeyId"], PolicyName="default")["Policy"]
            if key["metadata"].get("KeyManager") != "AWS":
                key["rotation"] = bool(kms.get_key_rotation_status(KeyId=key["metadata"]["KeyId"]).get("KeyRotationEnabled"))
        except Exception as exc:  # a key in another account or without kms:GetKeyPolicy for us
            if not (_not_found(exc) or error_code(exc) in ("AccessDeniedException", "AccessDenied")):
                raise
            key["error"] = describe_error(exc)
        out["kmsKey"] = key
    return out


def collect_rules(clients: Clients, regions: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for region in regions:
        ev = clients("events", region)
        try:
            rule = ev.describe_rule(Name=RULE_NAME)
        except Exception as exc:
            if not _not_found(exc):
                raise
            out[region] = {"rule": None, "targets": []}
            continue
        out[region] = {"rule": rule, "targets": _paginate(ev, "list_targets_by_rule", "Targets", Rule=RULE_NAME)}
    return out


# ---------------------------------------------------------------- pure verdicts


def _ok(reason: str) -> Check:
    return {"ok": True, "reason": reason}


def _fail(reason: str) -> Check:
    return {"ok": False, "reason": reason}


_QUOTED_SIMPLE = re.compile(r'"([A-Za-z0-9_.\-]*)"')


def _canonical(text: str) -> str:
    """Whitespace outside quotes removed, quotes around plain words dropped."""
    parts = re.split(r'("(?:[^"\\]|\\.)*")', text)
    out = "".join(p if p.startswith('"') else re.sub(r"\s+", "", p) for p in parts)
    return _QUOTED_SIMPLE.sub(r"\1", out)


def _strip_outer(text: str, open_: str, close: str) -> str:
    while text.startswith(open_) and text.endswith(close) and _balanced(text[1:-1]):
        text = text[1:-1]
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def _terms(pattern: str) -> frozenset[str] | str:
    body = _strip_outer(_strip_outer(_canonical(pattern), "{", "}"), "(", ")")
    if "||" in body:
        return body  # no reordering across ORs: compare the whole text
    return frozenset(_strip_outer(t, "(", ")") for t in body.split("&&"))


def equivalent_to_cis(pattern: str) -> bool:
    """Cheap semantic comparison: same && terms, ignoring whitespace, parentheses, order and quoting."""
    return _terms(pattern) == _terms(CIS_PATTERN)


def management_coverage(selectors: Mapping[str, Any]) -> tuple[bool, bool, list[str]]:
    """(read, write, problems): which management events the trail's basic or advanced selectors record."""
    read = write = False
    problems: list[str] = []
    advanced = selectors.get("AdvancedEventSelectors") or []
    if advanced:
        for sel in advanced:
            fields = {f.get("Field"): f for f in sel.get("FieldSelectors", [])}
            if "Management" not in (fields.get("eventCategory", {}).get("Equals") or []):
                continue
            src = fields.get("eventSource")
            if src and (set(src) - {"Field", "NotEquals"} or not set(src.get("NotEquals", [])) <= HARMLESS_EXCLUSIONS):
                problems.append(f"selector {sel.get('Name') or '(unnamed)'} filters management events by eventSource")
                continue
            r, w = _readonly_coverage(fields.get("readOnly"))
            read, write = read or r, write or w
        return read, write, problems
    for sel in selectors.get("EventSelectors") or []:
        if not sel.get("IncludeManagementEvents", True):
            continue
        excluded = set(sel.get("ExcludeManagementEventSources") or [])
        if not excluded <= HARMLESS_EXCLUSIONS:
            problems.append(f"management events from {', '.join(sorted(excluded - HARMLESS_EXCLUSIONS))} are excluded")
        rw = sel.get("ReadWriteType", "All")
        read = read or rw in ("All", "ReadOnly")
        write = write or rw in ("All", "WriteOnly")
    return read, write, problems


def _readonly_coverage(field: Mapping[str, Any] | None) -> tuple[bool, bool]:
    if not field:
        return True, True
    values = {"true", "false"}
    for op, vals in field.items():
        lowered = {str(v).lower() for v in vals} if isinstance(vals, list) else set()
        if op == "Equals":
            values &= lowered
        elif op == "NotEquals":
            values -= lowered
    return "true" in values, "false" in values


def evaluate_trail(entry: Mapping[str, Any]) -> Check:
    trail = entry.get("trail", {})
    name = trail.get("Name", "?")
    if entry.get("trailError"):
        return _fail(f"trail {name}: cannot read its status ({entry['trailError']})")
    problems: list[str] = []
    if not (entry.get("status") or {}).get("IsLogging"):
        problems.append("not logging (IsLogging is false)")
    if not trail.get("LogFileValidationEnabled"):
        problems.append("log file validation is off")
    read, write, selector_problems = management_coverage(entry.get("selectors") or {})
    problems.extend(selector_problems)
    if not (read or write):
        problems.append("records no management events")
    elif not read:
        problems.append("read-only management events are excluded (needs ReadWriteType All)")
    elif not write:
        problems.append("write management events are excluded (needs ReadWriteType All)")
    if not trail.get("CloudWatchLogsLogGroupArn"):
        problems.append("does not deliver to CloudWatch Logs")
    problems.extend(trail_storage_problems(entry))
    if problems:
        return _fail(f"trail {name}: " + "; ".join(problems))
    return _ok(f"trail {name}: multi-region, logging, log file validation, read+write management events, "
               "KMS-encrypted with a rotating key, bucket access logged")


def trail_storage_problems(entry: Mapping[str, Any]) -> list[str]:
    """KMS on the trail, its key's rotation and its bucket's access logging (as Prowler checks them)."""
    trail = entry.get("trail", {})
    problems: list[str] = []
    if not trail.get("KmsKeyId"):
        problems.append("logs are not KMS-encrypted (CloudTrail.2: set a customer-managed KmsKeyId)")
    elif entry.get("keyRotationError"):
        problems.append(f"cannot verify rotation of key {trail['KmsKeyId']}: {entry['keyRotationError']}")
    elif entry.get("keyRotation") is False:
        problems.append(f"key {trail['KmsKeyId']} does not rotate")
    if entry.get("bucketLoggingError"):
        problems.append(f"cannot read access logging of bucket {trail.get('S3BucketName')}: {entry['bucketLoggingError']}")
    elif entry.get("bucketLogging") is not None and not entry["bucketLogging"].get("TargetBucket"):
        problems.append(f"bucket {trail.get('S3BucketName')} does not log access (S3 server access logging)")
    return problems


def _filter_candidates(entry: Mapping[str, Any], account_id: str) -> list[tuple[Mapping[str, Any] | None, Check]]:
    name = entry.get("trail", {}).get("Name", "?")
    lg = entry.get("logGroup")
    if not lg:
        return [(None, _fail(f"trail {name} has no CloudWatch Logs log group"))]
    if lg.get("account") and lg["account"] != account_id:
        return [(None, _fail(f"trail {name} logs to {lg['name']} in account {lg['account']} (organization trail?); "
                             "Security Hub checks each account's own trail, filter and alarm"))]
    if entry.get("logGroupError"):
        return [(None, _fail(f"log group {lg['name']}: {entry['logGroupError']}"))]
    filters = entry.get("metricFilters") or []
    out: list[tuple[Mapping[str, Any] | None, Check]] = []
    for f in filters:
        pattern = f.get("filterPattern", "")
        if pattern == CIS_PATTERN:
            out.append((f, _ok(f"metric filter {f.get('filterName')} on {lg['name']} has the exact CIS pattern")))
    for f in filters:
        pattern = f.get("filterPattern", "")
        if pattern != CIS_PATTERN and equivalent_to_cis(pattern):
            out.append((f, _fail(f"metric filter {f.get('filterName')} on {lg['name']}: pattern is equivalent to the "
                                 "CIS pattern but not byte-identical, which fails Security Hub (CloudWatch.1)")))
    if not out:
        out.append((None, _fail(f"no metric filter with the CIS pattern on log group {lg['name']} "
                                f"({len(filters)} other filter(s))")))
    return out


def evaluate_alarm(alarm: Mapping[str, Any]) -> Check:
    name = alarm.get("AlarmName", "?")
    problems: list[str] = []
    if alarm.get("Statistic") != "Sum":
        problems.append(f"statistic {alarm.get('Statistic') or alarm.get('ExtendedStatistic')} (needs Sum)")
    threshold = alarm.get("Threshold")
    if threshold is None or float(threshold) > MAX_THRESHOLD:
        problems.append(f"threshold {threshold} (needs at most 1)")
    if alarm.get("ComparisonOperator") != "GreaterThanOrEqualToThreshold":
        problems.append(f"comparison {alarm.get('ComparisonOperator')} (needs GreaterThanOrEqualToThreshold)")
    if not alarm.get("ActionsEnabled"):
        problems.append("actions are disabled")
    period = alarm.get("Period")
    if period is None or int(period) > MAX_PERIOD:
        problems.append(f"period {period}s (needs at most {MAX_PERIOD}s, or repeated root use stays silent)")
    if not _sns_actions(alarm):
        problems.append("no SNS alarm action")
    if problems:
        return _fail(f"alarm {name}: " + "; ".join(problems))
    return _ok(f"alarm {name}: Sum >= {float(threshold):g} per {period}s, actions enabled, notifies SNS")


def _sns_actions(alarm: Mapping[str, Any]) -> list[str]:
    return [a for a in alarm.get("AlarmActions", []) if parse_arn(a)["service"] == "sns"]


def is_aws_managed_sns_key(key_id: str) -> bool:
    return key_id == "alias/aws/sns" or key_id.endswith(":alias/aws/sns")


def _confirmed(sub: Mapping[str, Any]) -> bool:
    arn = sub.get("SubscriptionArn", "")
    return arn.startswith("arn:") and arn not in ("PendingConfirmation", "Deleted")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value is not None else []


def key_policy_allows_cloudwatch(policy: Mapping[str, Any]) -> bool:
    """An Allow statement for the cloudwatch.amazonaws.com service covering kms:Decrypt and kms:GenerateDataKey."""
    needed = {"kms:decrypt", "kms:generatedatakey"}
    granted: set[str] = set()
    for st in _as_list(policy.get("Statement")):
        if st.get("Effect") != "Allow":
            continue
        principal = st.get("Principal")
        services = _as_list(principal.get("Service")) if isinstance(principal, dict) else []
        if "cloudwatch.amazonaws.com" not in services and not (principal == "*" and not st.get("Condition")):
            continue
        for action in _as_list(st.get("Action")):
            granted |= {n for n in needed if fnmatch.fnmatchcase(n, str(action).lower())}
    return needed <= granted


def evaluate_topic(arn: str, topic: Mapping[str, Any] | None) -> Check:
    if topic is None:
        return _fail(f"topic {arn} was not read")
    if topic.get("error"):
        return _fail(f"topic {arn}: {topic['error']}")
    problems: list[str] = []
    subs = topic.get("subscriptions") or []
    confirmed = [s for s in subs if _confirmed(s)]
    if not confirmed:
        pending = sum(1 for s in subs if s.get("SubscriptionArn") == "PendingConfirmation")
        problems.append(f"no confirmed subscription ({pending} pending confirmation)" if pending
                        else "no subscriptions")
    key_id = (topic.get("attributes") or {}).get("KmsMasterKeyId")
    if key_id:
        key = topic.get("kmsKey") or {}
        meta = key.get("metadata") or {}
        if is_aws_managed_sns_key(key_id) or meta.get("KeyManager") == "AWS":
            problems.append("encrypted with the AWS-managed key alias/aws/sns, which CloudWatch cannot use "
                            "(notifications are dropped silently)")
        elif key.get("error"):
            problems.append(f"cannot verify KMS key {key_id}: {key['error']}")
        else:
            try:
                policy = json.loads(key.get("policy") or "{}")
            except ValueError:
                policy = {}
            if not key_policy_allows_cloudwatch(policy):
                problems.append(f"KMS key {key_id} policy does not let cloudwatch.amazonaws.com use it "
                                "(kms:Decrypt, kms:GenerateDataKey*)")
            if public_statements(policy):
                problems.append(f"KMS key {key_id} policy is public ({', '.join(public_statements(policy))})")
            if key.get("rotation") is False:
                problems.append(f"KMS key {key_id} does not rotate")
    topic_policy = (topic.get("attributes") or {}).get("Policy")
    if topic_policy and public_statements(topic_policy):
        problems.append(f"the topic policy is public ({', '.join(public_statements(topic_policy))}): anyone may use it")
    if problems:
        return _fail(f"topic {arn}: " + "; ".join(problems))
    how = "customer-managed KMS key" if key_id else "unencrypted"
    return _ok(f"topic {arn}: {len(confirmed)} confirmed subscription(s), {how}")


def _not_checked(what: str) -> Check:
    return _fail(f"not checked: {what}")


def _chains(facts: Facts) -> Iterable[list[Check]]:
    """Every trail -> filter -> alarm -> topic chain, as four check results."""
    account_id = facts.get("accountId", "")
    for entry in facts.get("trails", []):
        trail = evaluate_trail(entry)
        for f, fcheck in _filter_candidates(entry, account_id):
            if f is None:
                yield [trail, fcheck, _not_checked("no CIS metric filter"), _not_checked("no alarm")]
                continue
            transforms = f.get("metricTransformations") or []
            if not transforms:
                yield [trail, fcheck, _fail(f"metric filter {f.get('filterName')} has no metric transformation"),
                       _not_checked("no alarm")]
                continue
            for mt in transforms:
                ns, metric = mt.get("metricNamespace", ""), mt.get("metricName", "")
                alarms = entry.get("alarms", {}).get(ns, {}).get(metric) or []
                if not alarms:
                    yield [trail, fcheck, _fail(f"no alarm on metric {ns}/{metric}"), _not_checked("no alarm")]
                    continue
                for alarm in alarms:
                    acheck = evaluate_alarm(alarm)
                    topics = _sns_actions(alarm)
                    if not topics:
                        yield [trail, fcheck, acheck, _not_checked(f"alarm {alarm.get('AlarmName')} has no SNS action")]
                    for arn in topics:
                        yield [trail, fcheck, acheck, evaluate_topic(arn, facts.get("topics", {}).get(arn))]


def _chain_rank(chain: list[Check]) -> tuple[int, int]:
    leading = 0
    for c in chain:
        if not c["ok"]:
            break
        leading += 1
    return leading, sum(c["ok"] for c in chain)


def evaluate_root_credentials(facts: Facts) -> Check:
    summary = facts.get("accountSummary") or {}
    keys = summary.get("AccountAccessKeysPresent")
    if keys is None:
        return _fail("IAM did not report AccountAccessKeysPresent")
    if keys:
        return _fail("the root user has access keys (AccountAccessKeysPresent = 1)")
    if summary.get("AccountMFAEnabled") == 1:
        return _ok("no root access keys; root MFA enabled")
    if facts.get("isManagementAccount"):
        return _fail("root MFA is not enabled (centralized root access does not cover the management account)")
    central = facts.get("rootCredentialsManagement")
    if central is None:
        err = facts.get("rootCredentialsManagementError")
        return _fail("root MFA is not enabled, and whether the organization manages root credentials centrally "
                     f"is unknown{f' ({err})' if err else ''}")
    if not central:
        return _fail("root MFA is not enabled and the organization does not manage root credentials centrally")
    password = summary.get("AccountPasswordPresent")
    if password is None:
        return _fail("root credentials are centrally managed but IAM did not report AccountPasswordPresent, "
                     "so a root password cannot be ruled out")
    if password:
        return _fail("root credentials are centrally managed but the root user still has a password and no MFA")
    return _ok("no root access keys; root credentials centrally managed and no root password")


def evaluate_realtime(rules: Mapping[str, Any], hub_bus_arn: str | None = None) -> Check:
    """Each region's rule enabled for read-only events too; with a hub, it sends to the hub's bus."""
    if not rules:
        return _fail("no regions to check")
    problems: list[str] = []
    for region in sorted(rules):
        r = rules[region] or {}
        rule = r.get("rule")
        if not rule:
            problems.append(f"{region}: rule {RULE_NAME} missing")
        elif rule.get("State") != REALTIME_STATE:
            problems.append(f"{region}: state {rule.get('State')} (needs {REALTIME_STATE}, "
                            "or read-only root calls never reach it)")
        elif not r.get("targets"):
            problems.append(f"{region}: rule has no targets")
        elif hub_bus_arn and hub_bus_arn not in [t.get("Arn") for t in r["targets"]]:
            problems.append(f"{region}: rule does not send to the alert hub's bus {hub_bus_arn}")
    if problems:
        return _fail("; ".join(problems))
    where = f", sending to {hub_bus_arn}" if hub_bus_arn else ""
    return _ok(f"rule {RULE_NAME} in {len(rules)} region(s), {REALTIME_STATE}{where}")


def evaluate(facts: Facts, *, realtime: bool = False) -> dict[str, Check]:
    """Verdict per check from the collected facts (pure)."""
    checks: dict[str, Check] = {}
    chains = list(_chains(facts))
    if chains:
        best = max(chains, key=_chain_rank)  # first of the furthest-reaching chains
        checks.update(zip(("trail", "filter", "alarm", "topic"), best))
    else:
        single = facts.get("singleRegionTrails") or []
        note = f" (single-region only: {', '.join(single)})" if single else ""
        checks["trail"] = _fail(f"no multi-region trail{note}")
        checks["filter"] = _not_checked("no multi-region trail")
        checks["alarm"] = _not_checked("no CIS metric filter")
        checks["topic"] = _not_checked("no alarm")
    checks["rootCredentials"] = evaluate_root_credentials(facts)
    if realtime:
        checks["realtime"] = evaluate_realtime(facts.get("realtime") or {}, facts.get("hubBusArn"))
    return checks


def kpis(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    in_scope = len(results)
    compliant = sum(1 for r in results if r.get("compliant"))
    score = round(100.0 * compliant / in_scope, 1) if in_scope else None
    immutable = sum(1 for r in results if (r.get("immutableLogs") or {}).get("ok"))
    return {"accountsInScope": in_scope, "accountsCompliant": compliant, "policyComplianceScore": score,
            "accountsWithImmutableLogs": immutable}


# ---------------------------------------------------------------- orchestration


class AuditContext:
    def __init__(self, base: Clients, caller_account: str | None, role_name: str, org: OrgContext,
                 realtime: bool, regions: Sequence[str] | None, hub_bus_arn: str | None = None) -> None:
        self.hub_bus_arn = hub_bus_arn  # where every member rule must send (None: no hub checked)
        self.base = base
        self.caller_account = caller_account
        self.role_name = role_name
        self.org = org
        self.realtime = realtime
        self.regions = regions


def audit_account(account_id: str, ctx: AuditContext, name: str = "") -> dict[str, Any]:
    """One account's row; any failure becomes that account's error, never the run's."""
    result: dict[str, Any] = {"id": account_id, "name": name, "compliant": False, "error": None, "checks": {},
                              "immutableLogs": None}
    try:
        clients = account_clients(ctx.base, account_id, ctx.caller_account, ctx.role_name)
        facts = collect(clients, account_id, org=ctx.org, realtime=ctx.realtime, regions=ctx.regions,
                        hub_bus_arn=ctx.hub_bus_arn)
        result["checks"] = evaluate(facts, realtime=ctx.realtime)
        result["compliant"] = all(c["ok"] for c in result["checks"].values())
        result["immutableLogs"] = evaluate_immutable_logs(facts)
    except Exception as exc:  # AccessDenied, throttling after retries, timeouts, ...
        result["error"] = describe_error(exc)
    return result


def audit_accounts(accounts: Sequence[tuple[str, str]], ctx: AuditContext, parallel: int,
                   stream: Any = None) -> list[dict[str, Any]]:
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from rootwatch.core.progress import Progress

    results: dict[str, dict[str, Any]] = {}
    show = len(accounts) >= PROGRESS_MIN_ACCOUNTS
    progress = Progress(len(accounts), "auditing", stream=stream) if show else contextlib.nullcontext()
    pool = ThreadPoolExecutor(max_workers=max(1, min(parallel, len(accounts) or 1)))
    try:
        with progress as bar:
            futures = {pool.submit(audit_account, acct, ctx, name): acct for acct, name in accounts}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                if bar is not None:
                    bar.advance(futures[fut])
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # on Ctrl-C, start nothing new
    return [results[acct] for acct, _ in accounts]


def _scope(args: argparse.Namespace, base: Clients) -> tuple[list[tuple[str, str]], list[dict[str, str]], str | None]:
    """(accounts to audit as (id, name), out of scope with a reason, management account id).

    The organization (a snapshot, or the live one) is narrowed by the stack's own
    filters (``--stack``, as `plan` does): an account the stack does not deploy to is
    reported out of scope, not audited (it would fail forever). ``--accounts`` audits
    exactly the ids given.
    """
    if args.accounts:
        ids = list(dict.fromkeys(validate_account_id(a) for a in args.accounts))
        try:
            mgmt = base("organizations").describe_organization()["Organization"].get("MasterAccountId")
        except Exception:
            mgmt = None  # not in an organization, or no permission: treat every account as a member
        return [(i, "") for i in ids], [], mgmt
    from rootwatch.core import snapshot

    if args.org_snapshot:
        snap = snapshot.load(args.org_snapshot)
    else:
        from rootwatch.commands.org import read_organization

        try:
            snap = read_organization(base("organizations"))
        except Exception as exc:
            raise RootwatchError(f"cannot list the organization's accounts ({describe_error(exc)}); "
                                 "pass --org-snapshot FILE or --accounts ID...") from None
    stack = getattr(args, "stack", None)
    if stack is None:  # the whole organization: every ACTIVE account (e.g. `cost --measure` without --stack)
        active = [(a.id, a.name) for a in snap.accounts if a.state == "ACTIVE"]
        others = [{"id": a.id, "name": a.name, "reason": f"account is {a.state}"} for a in snap.accounts if a.state != "ACTIVE"]
        return active, others, snap.management_account_id
    return stack_scope(stack, snap)


def stack_scope(stack: str, snap: Any) -> tuple[list[tuple[str, str]], list[dict[str, str]], str | None]:
    """The snapshot's accounts the stack deploys to (snapshot order), and the others with why."""
    from rootwatch.program import mockrun, organization

    name = mockrun.stack_name(stack)
    settings = stack_settings(stack)
    scope = organization.program_scope(settings, snap)
    if (problem := organization.empty_scope_problem(settings, scope)) is not None:
        raise RootwatchError(f"stack {name}: {problem}")
    chosen = {a.id for a in scope.accounts}
    reasons = {s.id: s.reason for s in scope.skipped}
    accounts = [(a.id, a.name) for a in snap.accounts if a.id in chosen]
    skipped = [{"id": a.id, "name": a.name, "reason": reasons[a.id]} for a in snap.accounts if a.id in reasons]
    return accounts, skipped, snap.management_account_id


def add_parser(subparsers: Any) -> None:
    from rootwatch.commands.options import add_format_option

    p = subparsers.add_parser("audit", help="check the live root-activity control in every account",
                              description="Check the live root-activity control (trail, CIS filter, alarm, topic, "
                                          "root credentials, real-time rules) in every account.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--org-snapshot", metavar="FILE", help="the organization as this org snapshot (default: the live organization)")
    src.add_argument("--accounts", nargs="+", metavar="ID", help="audit exactly these account ids (no stack scope)")
    p.add_argument("--stack",
                   help="audit the accounts this stack deploys to: stacks/Pulumi.<NAME>.yaml or a file (default: example; "
                        "--root-credentials: every account of the organization); the others are reported out of scope")
    p.add_argument("--role-name", default=DEFAULT_ROLE, help=f"role to assume in each account (default: {DEFAULT_ROLE})")
    p.add_argument("--regions", nargs="+", metavar="REGION",
                   help="regions for the real-time check (default: the account's enabled regions)")
    p.add_argument("--region", help="home region for API calls (default: the AWS configuration, else us-east-1)")
    p.add_argument("--realtime", action="store_true",
                   help=f"also check the EventBridge rule {RULE_NAME} in every region")
    p.add_argument("--endpoint-url", metavar="URL", help="send every AWS call to this AWS-compatible endpoint")
    p.add_argument("--parallel", type=int, default=8, metavar="N", help="accounts audited at once (default: 8)")
    p.add_argument("--no-hub", action="store_true", help="do not check the stack's alert hub")
    p.add_argument("--history", metavar="FILE", help="append this run's score and verdicts as one JSON line "
                                                     "(read by `rootwatch report` and `rootwatch playbook`)")
    add_format_option(p)
    from rootwatch.commands import rootcreds

    rootcreds.add_arguments(p)
    p.set_defaults(func=run)


SCHEMA = "rootwatch.audit/v1"


def _stack_name(stack: str) -> str:
    from pathlib import Path

    return Path(stack).stem.removeprefix("Pulumi.") if stack.endswith((".yaml", ".yml")) else stack


def run(args: argparse.Namespace) -> int:
    from rootwatch.commands import rootcreds

    if rootcreds.wanted(args):  # the root-credential posture; gets this module as its AWS edge
        return rootcreds.run(args, sys.modules[__name__])
    stack_settings.cache_clear()  # a stack file may change between runs in one process
    explicit_stack = args.stack is not None
    args.stack = args.stack or "example"  # like `plan`; the posture above covers the whole organization
    validate_role_name(args.role_name)
    if args.region:
        validate_region(args.region)
    regions = [validate_region(r) for r in args.regions] if args.regions else None
    if not 1 <= args.parallel <= 64:
        raise RootwatchError(f"--parallel {args.parallel} must be between 1 and 64")
    if args.history:
        _appendable(args.history)
    base = base_clients(args.region, args.endpoint_url)
    accounts, skipped, mgmt = _scope(args, base)
    if not accounts:
        raise RootwatchError("no accounts to audit")
    try:
        caller = base("sts").get_caller_identity()["Account"]
    except Exception as exc:
        raise RootwatchError(f"cannot identify the calling account: {describe_error(exc)}") from None
    # The stack's hub: with --accounts only when --stack names the stack.
    target = None if args.no_hub or (args.accounts and not explicit_stack) else hub_target(args.stack)
    hub_bus = None
    if target is not None:
        from rootwatch.program.realtime import hub_bus_arn

        hub_bus = hub_bus_arn(target.account_id, target.region)
    ctx = AuditContext(base, caller, args.role_name, OrgContext(mgmt, org_features_lookup(base)),
                       args.realtime, regions, hub_bus)
    results = audit_accounts(accounts, ctx, args.parallel)
    hub_result = None
    if target is not None:
        from rootwatch.commands import audit_hub

        hub_result = audit_hub.audit_hub(sys.modules[__name__], target, ctx)
    report = {"schema": SCHEMA, "stack": None if args.accounts else _stack_name(args.stack),
              "accounts": results, "skipped": skipped, "kpis": kpis(results), "hub": hub_result}
    if args.history:
        _append_history(args.history, report)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        print_text(report, realtime=args.realtime)
    hub_ok = hub_result is None or hub_result["compliant"]
    return 0 if hub_ok and all(r["compliant"] for r in results) else 1


@functools.lru_cache(maxsize=4)
def stack_settings(stack: str) -> Any:
    """The stack's validated settings, read once per run (scope and hub both need them)."""
    from rootwatch.program import mockrun
    from rootwatch.program import settings as rw_settings

    config = mockrun.load_stack_config(stack)  # its own one-line errors (missing file, bad YAML)
    try:
        return rw_settings.load(config.values)
    except RootwatchError as exc:
        raise RootwatchError(f"stack {mockrun.stack_name(stack)}: {exc}") from None


def hub_target(stack: str) -> Any:
    """The stack's alert hub (None when it has none), from the stack's own settings."""
    from rootwatch.commands.audit_hub import HubTarget

    return HubTarget.from_settings(stack_settings(stack))


def _appendable(path: str) -> None:
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise RootwatchError(f"--history {path}: cannot append ({exc.strerror or type(exc).__name__})") from None


def _append_history(path: str, report: Mapping[str, Any]) -> None:
    """One line per run: the compliance score over time (`rootwatch report`)."""
    from datetime import datetime, timezone

    from rootwatch.compliance.kpis import history_line

    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(history_line(report, datetime.now(timezone.utc)), sort_keys=True) + "\n")


def print_text(report: Mapping[str, Any], *, realtime: bool, out: Any = None) -> None:
    out = out or sys.stdout
    names = [c for c in CHECKS if realtime or c != "realtime"]
    header = f"{'ACCOUNT':<13} {'NAME':<20} {'RESULT':<6} " + " ".join(f"{SHORT[c]:<8}" for c in names)
    print(header.rstrip(), file=out)
    for r in report["accounts"]:
        result = "ERROR" if r["error"] else "PASS" if r["compliant"] else "FAIL"
        cells = " ".join(f"{('ok' if r['checks'][c]['ok'] else 'FAIL') if c in r['checks'] else '-':<8}"
                         for c in names)
        print(f"{r['id']:<13} {(r.get('name') or '')[:20]:<20} {result:<6} {cells}".rstrip(), file=out)
        if r["error"]:
            print(f"    error: {r['error']}", file=out)
        for c in names:
            check = r["checks"].get(c)
            if check and not check["ok"]:
                print(f"    {c}: {check['reason']}", file=out)
        logs = r.get("immutableLogs")
        if logs and not logs["ok"]:
            print(f"    logs erasable (not counted in compliance): {logs['reason']}", file=out)
    for s in report.get("skipped", []):
        print(f"{s['id']:<13} {(s.get('name') or '')[:20]:<20} {'SKIP':<6} {s['reason']}", file=out)
    if report.get("hub"):
        from rootwatch.commands.audit_hub import print_hub

        print_hub(report["hub"], out)
    k = report["kpis"]
    score = "n/a" if k["policyComplianceScore"] is None else f"{k['policyComplianceScore']}%"
    print(f"\n{k['accountsCompliant']}/{k['accountsInScope']} accounts compliant; policy compliance score {score}",
          file=out)
