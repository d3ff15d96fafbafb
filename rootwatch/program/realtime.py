"""The real-time path, member side: EventBridge in every region -> the hub's event bus.

Per member account (all through the account's one provider, per-resource ``region=``):

- in every region the account can use, the rule ``rootwatch-root-activity`` (the
  detection model's extended pattern, plus the AssumeRoot caller side and changes
  to rootwatch's own rules; state ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS so
  read-only root calls match) with ONE target: the hub's event bus
  ``rootwatch-alerts`` (cross-account), through one forwarding role per account
  allowed only events:PutEvents on that bus;
- the tamper rule ``rootwatch-tamper`` in the home region, and in the global-events
  region (us-east-1: IAM changes to rootwatch's roles arrive only there), targeting
  the hub bus the same way;
- one alarm on the home region rules' ``FailedInvocations``: a hop to the hub that
  fails pages through the account's alarm topic (and so the hub's intake queue).

No Lambda, dead-letter queue or human endpoint in members: the formatter, routes,
windows and queues live in the hub (``rootwatch.program.hub``).

Why us-east-1 is always in the list: IAM and Organizations events (global
services) are delivered only there; sign-in and STS events arrive in the
region of the endpoint used, hence every enabled region (minus the ones an
account cannot use: ``realtime.regionOverrides``).
"""

from __future__ import annotations

import ast
import functools
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pulumi
import pulumi_aws as aws

from rootwatch.core.arns import partition
from rootwatch.detection import rule as detection
from rootwatch.lambdas.formatter import TAMPER_CALLS
from rootwatch.program.alerting import KEY_ALIAS
from rootwatch.program.chain import (
    LOG_GROUP_NAME,
    METRIC_FILTER_NAME,
    HubRef,
    RootActivityMonitorArgs,
)
from rootwatch.program.organization import Account, matches
from rootwatch.program.settings import RootwatchSettings

if TYPE_CHECKING:
    pass

# The 17 regions enabled by default in every account (those launched before
# March 2019); opt-in regions go in realtime.extraRegions.
STANDARD_REGIONS: tuple[str, ...] = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2",
    "ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2",
    "ca-central-1", "eu-central-1", "eu-west-1", "eu-west-2", "eu-west-3", "eu-north-1", "sa-east-1",
)
_PARTITION_REGIONS = {
    "aws": STANDARD_REGIONS,
    "aws-cn": ("cn-north-1", "cn-northwest-1"),
    "aws-us-gov": ("us-gov-west-1", "us-gov-east-1"),
}
# Where global services (IAM, Organizations) deliver their events, per partition.
GLOBAL_EVENTS_REGION = {"aws": "us-east-1", "aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}

RULE_NAME = "rootwatch-root-activity"
TAMPER_RULE_NAME = "rootwatch-tamper"
RULE_STATE = detection.EVENTBRIDGE_RULE_STATE
# Tamper calls are all writes: they reach a plain ENABLED rule.
TAMPER_RULE_STATE = "ENABLED"
FUNCTION_NAME = "rootwatch-alert-formatter"
FORMATTER_ROLE_NAME = "rootwatch-alert-formatter"
FORWARDER_ROLE_NAME = "rootwatch-event-forwarder"
DLQ_NAME = "rootwatch-realtime-dlq"
DLQ_ALARM_NAME = "rootwatch-realtime-dlq"
# The hub's custom event bus: every member rule sends there.
HUB_BUS_NAME = "rootwatch-alerts"
HUB_TARGET_ID = "rootwatch-hub"
DELIVERY_ALARM_NAME = "rootwatch-event-delivery"
# Names of the hub's resources: the tamper rule watches them too (in the hub account).
HUB_QUEUE_NAME = "rootwatch-alarm-intake"
HUB_TABLE_NAME = "rootwatch-root-sessions"
RUNTIME = "python3.12"
HANDLER = "rootwatch.lambdas.formatter.handler"
FORMATTER_ENTRY = "rootwatch.lambdas.formatter"
NAME_PREFIX = "rootwatch-"
# EventBridge's own maximum: retry for a day before the dead-letter queue.
RETRY_MAX_AGE_SECONDS = 86_400
RETRY_MAX_ATTEMPTS = 185
DLQ_RETENTION_SECONDS = 1_209_600  # 14 days, SQS's maximum
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


# -- regions ------------------------------------------------------------------------------


def regions_for(settings: RootwatchSettings) -> list[str]:
    """Rule regions: home first, then the global-events region (us-east-1), then the rest.

    ``realtime.regions`` replaces the standard list, ``realtime.extraRegions`` adds to it.
    """
    home = settings.home_region
    part = partition(home)
    rt = settings.realtime
    wanted = [home, GLOBAL_EVENTS_REGION[part], *(rt.regions or _PARTITION_REGIONS[part]), *rt.extra_regions]
    return list(dict.fromkeys(wanted))


def account_regions(settings: RootwatchSettings, account: Account) -> tuple[list[str], list[str]]:
    """(regions with rules, regions left out) for one account: ``realtime.regionOverrides`` removes
    the regions an account cannot use (an SCP denies them, an opt-in region it has not enabled)."""
    regions = regions_for(settings)
    for override in settings.realtime.region_overrides:
        if matches(override.match, account):
            left_out = [r for r in regions if r in override.exclude]
            return [r for r in regions if r not in override.exclude], left_out
    return regions, []


# -- patterns -------------------------------------------------------------------------------


def combine_patterns(patterns: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One EventBridge pattern matching what any of ``patterns`` matches.

    A rule has one pattern; detection renders alternatives as separate patterns.
    Shared keys are kept once and the differences go under ``$or``, descending
    into the one differing object where there is one (keeps the pattern small).
    """
    if not patterns:
        raise ValueError("no patterns to combine")
    if len(patterns) == 1:
        return json.loads(json.dumps(patterns[0]))
    first = patterns[0]
    common = {k: v for k, v in first.items() if all(k in p and p[k] == v for p in patterns[1:])}
    rest = [{k: v for k, v in p.items() if k not in common} for p in patterns]
    if any(not r for r in rest):  # one alternative is just the shared part: it covers the others
        return json.loads(json.dumps(common))
    unique = [r for i, r in enumerate(rest) if r not in rest[:i]]
    if len(unique) == 1:
        return json.loads(json.dumps({**common, **unique[0]}))
    differing = set().union(*unique)
    if len(differing) == 1:
        (key,) = differing
        if all(isinstance(r[key], Mapping) for r in unique):
            return {**json.loads(json.dumps(common)), key: combine_patterns([r[key] for r in unique])}
    return json.loads(json.dumps({**common, "$or": unique}))


def root_pattern() -> dict[str, Any]:
    """The root-activity rule's pattern: detection's extended rule, as one pattern."""
    return combine_patterns(detection.eventbridge_patterns())


# -- ARNs and policies (pure) -------------------------------------------------------------------


def event_bus_arn(account_id: str, region: str) -> str:
    return f"arn:{partition(region)}:events:{region}:{account_id}:event-bus/default"


def hub_bus_arn(hub_account_id: str, hub_region: str) -> str:
    return f"arn:{partition(hub_region)}:events:{hub_region}:{hub_account_id}:event-bus/{HUB_BUS_NAME}"


def rule_arn(account_id: str, region: str, name: str) -> str:
    return f"arn:{partition(region)}:events:{region}:{account_id}:rule/{name}"


def queue_arn(account_id: str, region: str, name: str = DLQ_NAME) -> str:
    return f"arn:{partition(region)}:sqs:{region}:{account_id}:{name}"


def formatter_log_group_arn(account_id: str, region: str) -> str:
    return f"arn:{partition(region)}:logs:{region}:{account_id}:log-group:/aws/lambda/{FUNCTION_NAME}"


def deployer_caller_prefix(account: Account, settings: RootwatchSettings) -> str | None:
    """Caller ARN of the identity that deploys rootwatch into this account (matched exactly, never as a prefix:
    a prefix ``.../rootwatch`` would also exempt a session named ``rootwatch-anything``).

    Members: the provider's assumed-role session (role and session name), as
    CloudTrail shows it. Management: the configured deployer session, if any.
    """
    if account.is_management:
        return settings.realtime.management_deployer_arn
    access = settings.access
    return f"arn:{partition(settings.home_region)}:sts::{account.id}:assumed-role/{access.role_name}/{access.session_name}"


def _service_trust(service: str, account_id: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
                # Confused-deputy guard: only this account's rules or functions.
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        ],
    }


def forwarder_trust_policy(account_id: str) -> dict[str, Any]:
    return _service_trust("events.amazonaws.com", account_id)


def forwarder_policy(hub_account_id: str, hub_region: str) -> dict[str, Any]:
    # Only PutEvents, only on the hub's alert bus.
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ForwardToHubBus", "Effect": "Allow", "Action": "events:PutEvents",
             "Resource": hub_bus_arn(hub_account_id, hub_region)}
        ],
    }


def formatter_trust_policy(account_id: str) -> dict[str, Any]:
    return _service_trust("lambda.amazonaws.com", account_id)


def formatter_policy(account_id: str, region: str, topic_arns: Sequence[str], key_arn: str) -> dict[str, Any]:
    group = formatter_log_group_arn(account_id, region)
    return {
        "Version": "2012-10-17",
        "Statement": [
            # The routes, and the on-failure destination (the critical topic).
            {"Sid": "PublishToRoutes", "Effect": "Allow", "Action": "sns:Publish", "Resource": list(topic_arns)},
            # The topics are encrypted with the alert key.
            {"Sid": "UseAlertKey", "Effect": "Allow", "Action": ["kms:GenerateDataKey*", "kms:Decrypt"], "Resource": key_arn},
            {"Sid": "WriteOwnLogs", "Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": [group, f"{group}:log-stream:*"]},
        ],
    }


def dlq_policy(account_id: str, region: str, rule_names: Sequence[str]) -> dict[str, Any]:
    q = queue_arn(account_id, region)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EventBridgeDeadLetters",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": q,
                "Condition": {"ArnEquals": {"aws:SourceArn": [rule_arn(account_id, region, n) for n in rule_names]}},
            },
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:*",
                "Resource": q,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


# -- tamper rule ------------------------------------------------------------------------------
#
# - EventBridge patterns are capped at 2,048 characters by default, so branches that
#   test the same request parameter are merged, and eventSource is left out: each
#   branch pairs event names with rootwatch's resource names, specific enough alone.
# - Lambda's CloudTrail event names carry API versions (DeleteFunction20150331): prefixes.
# - Root is excluded: every root call already reaches the root-activity rule, and the
#   formatter tells the two rules' deliveries apart by that (classify() is None here).
# - The deployer is excluded with anything-but a caller-ARN prefix, which also requires
#   the ARN to exist (AWS service principals have none).

TAMPER_DETAIL_TYPE = "AWS API Call via CloudTrail"
# EventBridge's default pattern-size quota (adjustable to 4,096).
MAX_PATTERN_CHARS = 2048


@dataclass(frozen=True)
class TamperNames:
    """rootwatch's resource names in one account, as CloudTrail request parameters show them."""

    trail: str | None  # None when the account's trail is not rootwatch's (trail mode "existing")
    log_group: str
    metric_filter: str
    alarm_prefix: str  # alarms are named rootwatch-*
    topic_prefix: str  # topic names, e.g. rootwatch-alerts-
    key_id: str
    key_alias: str
    rule_prefix: str  # rules are named rootwatch-*
    function: str
    # Roles, queues, bus and table (the last three exist in the hub account only).
    role_prefix: str = NAME_PREFIX
    queue_prefix: str = NAME_PREFIX
    bus: str = HUB_BUS_NAME
    table: str = HUB_TABLE_NAME


def _trail_values(trail: str) -> list[Any]:
    # Trails are addressed by name or by ARN (…:trail/<name>).
    return [trail, {"suffix": f":trail/{trail}"}]


def _calls(source: str) -> list[str]:
    return list(next(names for src, names in TAMPER_CALLS if src == source))


def _rule_branches(n: TamperNames) -> list[tuple[list[Any], str, list[Any]]]:
    """Changes to rootwatch's rules and targets (these exist in every region)."""
    return [
        (["DeleteRule", "DisableRule", "PutRule"], "name", [{"prefix": n.rule_prefix}]),
        (["RemoveTargets", "PutTargets"], "rule", [{"prefix": n.rule_prefix}]),
    ]


def _branches(n: TamperNames) -> list[dict[str, Any]]:
    """Member resources, one branch per request parameter: {eventName: [...], requestParameters: {param: [...]}}."""
    name_events: list[str] = ["DeleteRule", "DisableRule", "PutRule"]
    name_values: list[Any] = [{"prefix": n.rule_prefix}]
    if n.trail:
        name_events = ["StopLogging", "DeleteTrail", "UpdateTrail", *name_events]
        name_values = [*_trail_values(n.trail), *name_values]
    topic = {"wildcard": f"*:{n.topic_prefix}*"}
    spec: list[tuple[list[Any], str, list[Any]]] = [
        (name_events, "name", name_values),
        (["DeleteLogGroup", "PutRetentionPolicy"], "logGroupName", [n.log_group]),
        (["DeleteMetricFilter", "PutMetricFilter"], "filterName", [n.metric_filter]),
        (["DeleteAlarms", "DisableAlarmActions"], "alarmNames", [{"prefix": n.alarm_prefix}]),
        (["PutMetricAlarm"], "alarmName", [{"prefix": n.alarm_prefix}]),
        (["DeleteTopic", "SetTopicAttributes"], "topicArn", [topic]),
        (["Unsubscribe", "SetSubscriptionAttributes"], "subscriptionArn", [topic]),
        # Keys are addressed by id, key ARN (ends in the id), alias or alias ARN.
        (["DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy"], "keyId",
         [n.key_id, {"suffix": f"/{n.key_id}"}, n.key_alias, {"suffix": f":{n.key_alias}"}]),
        (["RemoveTargets", "PutTargets"], "rule", [{"prefix": n.rule_prefix}]),
        # rootwatch's roles (trail delivery, event forwarding); IAM events arrive in us-east-1 only.
        (_calls("iam.amazonaws.com"), "roleName", [{"prefix": n.role_prefix}]),
    ]
    if n.trail:
        spec.insert(1, (["PutEventSelectors"], "trailName", _trail_values(n.trail)))
    return [{"eventName": events, "requestParameters": {param: values}} for events, param, values in spec]


def hub_branches(n: TamperNames, key_id: str) -> list[dict[str, Any]]:
    """The hub's own resources: formatter, queues, bus, sessions table, topics, key, roles, rules."""
    topic = {"wildcard": f"*:{n.topic_prefix}*"}
    spec: list[tuple[list[Any], str, list[Any]]] = [
        (["DeleteRule", "DisableRule", "PutRule", "DeleteEventBus"], "name", [{"prefix": n.rule_prefix}]),
        (["RemoveTargets", "PutTargets"], "rule", [{"prefix": n.rule_prefix}]),
        (["PutPermission", "RemovePermission"], "eventBusName", [n.bus]),
        # Lambda's CloudTrail event names carry API versions (DeleteFunction20150331): prefixes.
        ([{"prefix": e} for e in _calls("lambda.amazonaws.com")], "functionName", [{"wildcard": f"*{n.function}"}]),
        (_calls("sqs.amazonaws.com"), "queueUrl", [{"wildcard": f"*/{n.queue_prefix}*"}]),
        (_calls("dynamodb.amazonaws.com"), "tableName", [n.table]),
        (["DeleteTopic", "SetTopicAttributes"], "topicArn", [topic]),
        (["Unsubscribe", "SetSubscriptionAttributes"], "subscriptionArn", [topic]),
        (["DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy"], "keyId", [key_id, {"suffix": f"/{key_id}"}]),
        (["DeleteAlarms", "DisableAlarmActions"], "alarmNames", [{"prefix": n.alarm_prefix}]),
        (["PutMetricAlarm"], "alarmName", [{"prefix": n.alarm_prefix}]),
        (_calls("iam.amazonaws.com"), "roleName", [{"prefix": n.role_prefix}]),
    ]
    return [{"eventName": events, "requestParameters": {param: values}} for events, param, values in spec]


def _non_root_call(exempt_caller: str | None) -> dict[str, Any]:
    identity: dict[str, Any] = {"type": [{"anything-but": "Root"}]}
    if exempt_caller:
        # Exact session ARN; anything-but also requires the ARN to exist (AWS service principals have none).
        identity["arn"] = [{"anything-but": exempt_caller}]
    return identity


def tamper_pattern(names: TamperNames, exempt_caller_prefix: str | None,
                   branches: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The EventBridge pattern of a tamper rule (CloudTrail-delivered events only: aws.*)."""
    return {"source": [{"prefix": "aws."}], "detail-type": [TAMPER_DETAIL_TYPE],
            "detail": {"userIdentity": _non_root_call(exempt_caller_prefix),
                       "$or": branches if branches is not None else _branches(names)}}


def assume_root_pattern() -> dict[str, Any]:
    """The caller side of sts:AssumeRoot (any region): the hub keeps it to label the member-side session."""
    return {"source": ["aws.sts"], "detail-type": [TAMPER_DETAIL_TYPE], "detail": {"eventName": ["AssumeRoot"]}}


def member_pattern(names: TamperNames | None, exempt_caller: str | None) -> dict[str, Any]:
    """The member rule ``rootwatch-root-activity`` in one region: root activity, AssumeRoot openings, and
    where no tamper rule runs (``names`` given) changes to rootwatch's own rules in that region."""
    branches = [root_pattern(), assume_root_pattern()]
    if names is not None:
        for events, param, values in _rule_branches(names):
            branches.append({"source": [{"prefix": "aws."}], "detail-type": [TAMPER_DETAIL_TYPE],
                             "detail": {"userIdentity": _non_root_call(exempt_caller), "eventName": events,
                                        "requestParameters": {param: values}}})
    return {"$or": branches}


def render(pattern: Mapping[str, Any]) -> str:
    """Compact JSON: the pattern-size quota counts characters."""
    return json.dumps(pattern, separators=(",", ":"))


def tamper_names(settings: RootwatchSettings, key_id: str) -> TamperNames:
    managed = settings.trail.mode == "managed"
    return TamperNames(
        trail=settings.trail.name if managed else None,
        log_group=LOG_GROUP_NAME if managed else (settings.trail.log_group_name or LOG_GROUP_NAME),
        metric_filter=METRIC_FILTER_NAME,
        alarm_prefix=NAME_PREFIX,
        topic_prefix=NAME_PREFIX,
        key_id=key_id,
        key_alias=KEY_ALIAS,
        rule_prefix=NAME_PREFIX,
        function=FUNCTION_NAME,
    )


# -- the formatter's package and environment ----------------------------------------------------


def _module_file(module: str, root: Path = PACKAGE_ROOT) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path, module: str, root: Path) -> set[str]:
    """rootwatch.* modules imported anywhere in one file (function-level imports too)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..y import z
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    return {m for m in found if m.split(".")[0] == "rootwatch" and _module_file(m, root)}


def lambda_modules(entry: str = FORMATTER_ENTRY, root: Path = PACKAGE_ROOT) -> dict[str, Path]:
    """Archive path -> source file: the entry module, its packages and every rootwatch module it imports."""
    out: dict[str, Path] = {}
    seen: set[str] = set()
    pending = [entry]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module, root)
        if path is None:
            raise FileNotFoundError(f"{module}: no such module under {root}")
        out[path.relative_to(root).as_posix()] = path
        parent = module.rpartition(".")[0]
        if parent:  # importing a.b runs a/__init__.py first
            pending.append(parent)
        pending.extend(_imported_modules(path, module, root))
    return dict(sorted(out.items()))


@functools.lru_cache(maxsize=1)
def _formatter_files() -> tuple[tuple[str, str], ...]:
    # Parsed once per program run, not once per account (it walks the imports with ast).
    return tuple((arc, str(path)) for arc, path in lambda_modules().items())


def formatter_archive(extra: Mapping[str, str] | None = None) -> pulumi.AssetArchive:
    """The formatter's code: the package's own files, not a copy; ``extra`` adds generated files
    (archive path -> text), e.g. the account directory."""
    assets: dict[str, Any] = {arc: pulumi.FileAsset(path) for arc, path in _formatter_files()}
    assets.update({arc: pulumi.StringAsset(text) for arc, text in (extra or {}).items()})
    return pulumi.AssetArchive(assets)


# -- warnings -------------------------------------------------------------------------------------


def expired_window_warnings(settings: RootwatchSettings, account_id: str, now: datetime | None = None) -> list[str]:
    now = now or datetime.now(timezone.utc)
    return [
        f"break-glass window {w.ticket} for account {account_id} ended {w.end:%Y-%m-%dT%H:%M:%SZ}: "
        "remove it from rootwatch:breakGlass.windows"
        for w in settings.break_glass.windows_for(account_id)
        if w.end <= now
    ]


# -- resources ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealtimeResources:
    regions: list[str]
    rules: Mapping[str, aws.cloudwatch.EventRule]
    tamper_rules: Mapping[str, aws.cloudwatch.EventRule]
    forwarder_role: aws.iam.Role
    skipped_regions: list[str]

    @property
    def tamper_rule(self) -> aws.cloudwatch.EventRule | None:
        return next(iter(self.tamper_rules.values()), None)

    def outputs(self) -> dict[str, Any]:
        return {
            "regions": self.regions,
            "ruleArns": {r: rule.arn for r, rule in self.rules.items()},
            "tamperRuleArns": {r: rule.arn for r, rule in self.tamper_rules.items()},
            "skippedRegions": self.skipped_regions,
        }


def _retry() -> aws.cloudwatch.EventTargetRetryPolicyArgs:
    return aws.cloudwatch.EventTargetRetryPolicyArgs(
        maximum_event_age_in_seconds=RETRY_MAX_AGE_SECONDS, maximum_retry_attempts=RETRY_MAX_ATTEMPTS
    )


def tamper_regions(settings: RootwatchSettings, regions: Sequence[str]) -> list[str]:
    """The home region (rootwatch's resources) and the global-events region (IAM), if the account uses it."""
    home = settings.home_region
    return [r for r in dict.fromkeys([home, GLOBAL_EVENTS_REGION[partition(home)]]) if r in regions]


def tamper_rule_resource_name(name: str, region: str, home: str) -> str:
    # The home region's rule keeps its name from before the hub (URNs are forever).
    return f"{name}-tamper-rule" if region == home else f"{name}-tamper-rule-{region}"


def create_realtime(
    monitor: pulumi.ComponentResource,
    name: str,
    args: "RootActivityMonitorArgs",
    alarm_topic: pulumi.Input[str],
    hub: HubRef,
    key_id: pulumi.Output[str],
    opts: pulumi.ResourceOptions,
) -> RealtimeResources:
    """The real-time children of one member account's monitor.

    ``opts`` already carries parent=monitor, so every child inherits the account's provider.
    ``alarm_topic`` is the account's local alarm topic: its only subscriber is the hub's queue.
    """
    s, account = args.settings, args.account
    acct, home = account.id, s.home_region
    tags = dict(args.tags)
    regions, skipped = account_regions(s, account)
    if skipped:
        pulumi.log.warn(f"account {acct}: no real-time rules in {', '.join(skipped)} "
                        "(rootwatch:realtime.regionOverrides: the account cannot use these regions)")
    exempt = deployer_caller_prefix(account, s)
    if exempt is None and s.realtime.tamper:
        pulumi.log.warn(
            f"account {acct}: realtime.managementDeployerArn is not set, so deploying rootwatch into the "
            "management account raises tamper alerts")

    role = aws.iam.Role(
        f"{name}-forwarder-role",
        name=FORWARDER_ROLE_NAME,
        description="rootwatch: sends root-activity and tamper events to the hub's alert bus",
        assume_role_policy=json.dumps(forwarder_trust_policy(acct)),
        tags=tags,
        opts=opts,
    )
    role_policy = aws.iam.RolePolicy(
        f"{name}-forwarder-role-policy",
        name=FORWARDER_ROLE_NAME,
        role=role.id,
        policy=json.dumps(forwarder_policy(hub.account_id, hub.region)),
        opts=opts,
    )
    # EventBridge checks the role when the target is created.
    target_opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[role_policy]))

    def send_to_hub(target_name: str, rule: aws.cloudwatch.EventRule, region: str) -> None:
        aws.cloudwatch.EventTarget(
            target_name,
            rule=rule.name,
            target_id=HUB_TARGET_ID,
            arn=hub_bus_arn(hub.account_id, hub.region),
            role_arn=role.arn,
            retry_policy=_retry(),
            region=region,
            opts=target_opts,
        )

    with_tamper = tamper_regions(s, regions) if s.realtime.tamper else []
    names = key_id.apply(lambda k: tamper_names(s, k))
    rules: dict[str, aws.cloudwatch.EventRule] = {}
    tamper_rules: dict[str, aws.cloudwatch.EventRule] = {}
    for region in regions:
        # Where no tamper rule runs, the root rule also watches rootwatch's rules of that region.
        covers_rules = s.realtime.tamper and region not in with_tamper
        pattern = names.apply(lambda n, c=covers_rules: render(member_pattern(n if c else None, exempt)))
        rule = aws.cloudwatch.EventRule(
            f"{name}-rule-{region}",
            name=RULE_NAME,
            description="rootwatch: root-user activity (extended detection rule), to the alert hub",
            event_pattern=pattern,
            state=RULE_STATE,
            region=region,
            tags=tags,
            opts=opts,
        )
        send_to_hub(f"{name}-target-{region}", rule, region)
        rules[region] = rule
        if region in with_tamper:
            tamper_rules[region] = _tamper(name, args, names, exempt, region, opts, tags)
            send_to_hub("-".join([tamper_rule_resource_name(name, region, home).replace("-rule", "-target")]),
                        tamper_rules[region], region)
    # CloudWatch alarm actions reach topics of the alarm's own region only, so the home region's
    # alarm (both rules there) is the one that can page; see docs/realtime.md for the other regions.
    _delivery_alarm(name, args, home, [RULE_NAME, *([TAMPER_RULE_NAME] if home in with_tamper else [])],
                    alarm_topic, opts, tags)
    return RealtimeResources(regions, rules, tamper_rules, role, skipped)


def delivery_alarm_metrics(rule_names: Sequence[str]) -> list[dict[str, Any]]:
    """Metric math: the sum of the rules' FailedInvocations (one alarm per region)."""
    queries: list[dict[str, Any]] = [
        {"id": f"f{i}", "return_data": False,
         "metric": {"namespace": "AWS/Events", "metric_name": "FailedInvocations", "dimensions": {"RuleName": n},
                    "period": 300, "stat": "Sum"}}
        for i, n in enumerate(rule_names)
    ]
    expr = " + ".join(f"FILL(f{i}, 0)" for i in range(len(rule_names)))
    queries.append({"id": "failed", "expression": expr, "label": "FailedInvocations", "return_data": True})
    return queries


def _delivery_alarm(
    name: str, args: "RootActivityMonitorArgs", region: str, rule_names: Sequence[str], topic: pulumi.Input[str],
    opts: pulumi.ResourceOptions, tags: dict[str, str],
) -> aws.cloudwatch.MetricAlarm:
    """A hop to the hub that failed (after EventBridge's 24 h of retries, or at once when denied) pages."""
    return aws.cloudwatch.MetricAlarm(
        f"{name}-delivery-alarm",
        name=DELIVERY_ALARM_NAME,
        alarm_description=f"rootwatch: events of account {args.account.name} ({args.account.id}) in {region} could not "
        f"be delivered to the alert hub (EventBridge FailedInvocations of {', '.join(rule_names)})",
        metric_queries=[
            aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id=q["id"], expression=q.get("expression"), label=q.get("label"), return_data=q["return_data"],
                metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(**q["metric"]) if "metric" in q else None,
            )
            for q in delivery_alarm_metrics(rule_names)
        ],
        evaluation_periods=1,
        threshold=1,
        comparison_operator="GreaterThanOrEqualToThreshold",
        treat_missing_data="notBreaching",
        actions_enabled=True,
        # The account's alarm topic (home region): its subscriber is the hub's queue.
        alarm_actions=[topic],
        region=region,
        tags=tags,
        opts=opts,
    )


def _tamper(
    name: str,
    args: "RootActivityMonitorArgs",
    names: pulumi.Output[TamperNames],
    exempt: str | None,
    region: str,
    opts: pulumi.ResourceOptions,
    tags: dict[str, str],
) -> aws.cloudwatch.EventRule:
    account = args.account

    def pattern(n: TamperNames) -> str:
        text = render(tamper_pattern(n, exempt))
        if len(text) > MAX_PATTERN_CHARS:
            pulumi.log.warn(f"account {account.id}: the tamper pattern has {len(text)} characters; EventBridge "
                            f"accepts {MAX_PATTERN_CHARS} unless the quota is raised")
        return text

    return aws.cloudwatch.EventRule(
        tamper_rule_resource_name(name, region, args.settings.home_region),
        name=TAMPER_RULE_NAME,
        description="rootwatch: changes to rootwatch's own resources by anyone but the deployer, to the alert hub",
        event_pattern=names.apply(pattern),
        state=TAMPER_RULE_STATE,
        region=region,
        tags=tags,
        opts=opts,
    )
