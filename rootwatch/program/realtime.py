"""The real-time path: EventBridge in every region -> alert formatter -> the severity's route.

Per account (all through the account's one provider, per-resource ``region=``):

- in every configured region, the rule ``rootwatch-root-activity`` (the detection
  model's extended pattern, state ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS so
  read-only root calls match) and one target. Outside the home region the target
  is the home region's default event bus, through one forwarding role per
  account allowed only events:PutEvents on that bus; the home rule then matches
  the forwarded event again. So per region: a rule and a target, nothing more;
- in the home region: the formatter Lambda (``rootwatch.lambdas.formatter`` plus the
  detection code it uses: the package's own files), its role, an on-failure
  destination to the critical topic, an encrypted SQS dead-letter queue for
  EventBridge deliveries, and the tamper rule ``rootwatch-tamper`` (critical,
  through the formatter).

Why us-east-1 is always in the list: IAM and Organizations events (global
services) are delivered only there; sign-in and STS events arrive in the
region of the endpoint used, hence every enabled region.
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
from rootwatch.core.severity import Severity
from rootwatch.detection import rule as detection
from rootwatch.lambdas.formatter import (
    ENV_ACCOUNT,
    ENV_BREAK_GLASS,
    ENV_RUNBOOK,
    ENV_SEVERITY,
    ENV_TOPICS,
    TAMPER_CALLS,
)
from rootwatch.program.alerting import KEY_ALIAS, TOPIC_PREFIX, topic_arn
from rootwatch.program.chain import (
    LOG_GROUP_NAME,
    METRIC_FILTER_NAME,
    RootActivityMonitorArgs,
)
from rootwatch.program.organization import Account
from rootwatch.program.settings import RootwatchSettings, windows_json

if TYPE_CHECKING:
    from rootwatch.program.alerting import AlertTopics

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


def rule_arn(account_id: str, region: str, name: str) -> str:
    return f"arn:{partition(region)}:events:{region}:{account_id}:rule/{name}"


def queue_arn(account_id: str, region: str, name: str = DLQ_NAME) -> str:
    return f"arn:{partition(region)}:sqs:{region}:{account_id}:{name}"


def formatter_log_group_arn(account_id: str, region: str) -> str:
    return f"arn:{partition(region)}:logs:{region}:{account_id}:log-group:/aws/lambda/{FUNCTION_NAME}"


def deployer_caller_prefix(account: Account, settings: RootwatchSettings) -> str | None:
    """Caller-ARN prefix of the identity that deploys rootwatch into this account.

    Members: the provider's assumed-role session (role and session name), as
    CloudTrail shows it. Management: the configured deployer, if any.
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


def forwarder_policy(account_id: str, home_region: str) -> dict[str, Any]:
    # Only PutEvents, only on the home region's default bus.
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ForwardToHomeBus", "Effect": "Allow", "Action": "events:PutEvents",
             "Resource": event_bus_arn(account_id, home_region)}
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


def _trail_values(trail: str) -> list[Any]:
    # Trails are addressed by name or by ARN (…:trail/<name>).
    return [trail, {"suffix": f":trail/{trail}"}]


def _branches(n: TamperNames) -> list[dict[str, Any]]:
    """One branch per request parameter: {eventName: [...], requestParameters: {param: [...]}}."""
    name_events: list[str] = ["DeleteRule", "DisableRule", "PutRule"]
    name_values: list[Any] = [{"prefix": n.rule_prefix}]
    if n.trail:
        name_events = ["StopLogging", "DeleteTrail", "UpdateTrail", *name_events]
        name_values = [*_trail_values(n.trail), *name_values]
    topic = {"wildcard": f"*:{n.topic_prefix}*"}
    lambda_events = next(names for src, names in TAMPER_CALLS if src == "lambda.amazonaws.com")
    spec: list[tuple[list[Any], str, list[Any]]] = [
        (name_events, "name", name_values),
        (["DeleteLogGroup", "PutRetentionPolicy"], "logGroupName", [n.log_group]),
        (["DeleteMetricFilter"], "filterName", [n.metric_filter]),
        (["DeleteAlarms", "DisableAlarmActions"], "alarmNames", [{"prefix": n.alarm_prefix}]),
        (["PutMetricAlarm"], "alarmName", [{"prefix": n.alarm_prefix}]),
        (["DeleteTopic", "SetTopicAttributes"], "topicArn", [topic]),
        (["Unsubscribe"], "subscriptionArn", [topic]),
        # Keys are addressed by id, key ARN (ends in the id), alias or alias ARN.
        (["DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy"], "keyId",
         [n.key_id, {"suffix": f"/{n.key_id}"}, n.key_alias, {"suffix": f":{n.key_alias}"}]),
        (["RemoveTargets"], "rule", [{"prefix": n.rule_prefix}]),
        ([{"prefix": e} for e in lambda_events], "functionName", [n.function, {"suffix": f":function:{n.function}"}]),
    ]
    if n.trail:
        spec.insert(1, (["PutEventSelectors"], "trailName", _trail_values(n.trail)))
    return [{"eventName": events, "requestParameters": {param: values}} for events, param, values in spec]


def tamper_pattern(names: TamperNames, exempt_caller_prefix: str | None) -> dict[str, Any]:
    """The EventBridge pattern of the tamper rule for one account."""
    identity: dict[str, Any] = {"type": [{"anything-but": "Root"}]}
    if exempt_caller_prefix:
        identity["arn"] = [{"anything-but": {"prefix": exempt_caller_prefix}}]
    return {"detail-type": [TAMPER_DETAIL_TYPE], "detail": {"userIdentity": identity, "$or": _branches(names)}}


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
        topic_prefix=f"{TOPIC_PREFIX}-",
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


def formatter_archive() -> pulumi.AssetArchive:
    """The formatter's code: the package's own files, not a copy."""
    return pulumi.AssetArchive({arc: pulumi.FileAsset(path) for arc, path in _formatter_files()})


def formatter_environment(
    account: Account, settings: RootwatchSettings, baseline: Severity, levels: Sequence[Severity]
) -> dict[str, str]:
    """Everything the formatter needs, as strings: topic ARNs only, never an endpoint."""
    region = settings.home_region
    env = {
        ENV_ACCOUNT: json.dumps({"id": account.id, "name": account.name, "ou": account.ou, "ouName": account.ou_name,
                                 "baseline": baseline.value}, separators=(",", ":")),
        ENV_TOPICS: json.dumps({lvl.value: topic_arn(account.id, region, lvl) for lvl in levels}, separators=(",", ":")),
        ENV_SEVERITY: json.dumps({c.value: s.value for c, s in settings.realtime.matrix_row(baseline).items()},
                                 separators=(",", ":")),
        ENV_BREAK_GLASS: windows_json(settings.break_glass.windows_for(account.id)),
    }
    if settings.runbook_url:
        env[ENV_RUNBOOK] = settings.runbook_url
    return env


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
    function: aws.lambda_.Function
    dead_letter_queue: aws.sqs.Queue
    tamper_rule: aws.cloudwatch.EventRule | None
    forwarder_role: aws.iam.Role | None

    def outputs(self) -> dict[str, Any]:
        return {
            "regions": self.regions,
            "ruleArns": {r: rule.arn for r, rule in self.rules.items()},
            "functionArn": self.function.arn,
            "deadLetterQueueArn": self.dead_letter_queue.arn,
            "tamperRuleArn": self.tamper_rule.arn if self.tamper_rule else None,
        }


def _retry() -> aws.cloudwatch.EventTargetRetryPolicyArgs:
    return aws.cloudwatch.EventTargetRetryPolicyArgs(
        maximum_event_age_in_seconds=RETRY_MAX_AGE_SECONDS, maximum_retry_attempts=RETRY_MAX_ATTEMPTS
    )


def create_realtime(
    monitor: pulumi.ComponentResource,
    name: str,
    args: "RootActivityMonitorArgs",
    alerts: "AlertTopics",
    opts: pulumi.ResourceOptions,
) -> RealtimeResources:
    """The real-time children of one account's monitor.

    ``monitor`` is the parent component; ``opts`` already carries parent=monitor,
    so every child inherits the account's provider.
    """
    s, account = args.settings, args.account
    acct, home = account.id, s.home_region
    tags = dict(args.tags)
    regions = regions_for(s)
    # Logged without a resource: a resource-bound log waits for the URN and can be lost at exit.
    for msg in expired_window_warnings(s, acct):
        pulumi.log.warn(msg)

    rule_names = [RULE_NAME, *([TAMPER_RULE_NAME] if s.realtime.tamper else [])]
    queue = aws.sqs.Queue(
        f"{name}-dlq",
        name=DLQ_NAME,
        sqs_managed_sse_enabled=True,
        message_retention_seconds=DLQ_RETENTION_SECONDS,
        policy=json.dumps(dlq_policy(acct, home, rule_names)),
        region=home,
        tags=tags,
        opts=opts,
    )
    # The function depends on its log group: a function that runs first creates it (ResourceAlreadyExists).
    logs = _delivery_watch(name, args, alerts, opts, tags)
    function = _formatter(name, args, alerts, pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[logs])), tags)

    forwarder = None
    if any(r != home for r in regions):
        forwarder = aws.iam.Role(
            f"{name}-forwarder-role",
            name=FORWARDER_ROLE_NAME,
            description="rootwatch: forwards root-activity events to the home region's event bus",
            assume_role_policy=json.dumps(forwarder_trust_policy(acct)),
            inline_policies=[aws.iam.RoleInlinePolicyArgs(name=FORWARDER_ROLE_NAME, policy=json.dumps(forwarder_policy(acct, home)))],
            tags=tags,
            opts=opts,
        )

    pattern = json.dumps(root_pattern(), separators=(",", ":"))
    rules: dict[str, aws.cloudwatch.EventRule] = {}
    for region in regions:
        rule = aws.cloudwatch.EventRule(
            f"{name}-rule-{region}",
            name=RULE_NAME,
            description="rootwatch: root-user activity (extended detection rule)",
            event_pattern=pattern,
            state=RULE_STATE,
            region=region,
            tags=tags,
            opts=opts,
        )
        if region == home:
            _invoke_formatter(f"{name}-target-{region}", f"{name}-permission-{region}", rule, function, queue, home, opts)
        else:
            aws.cloudwatch.EventTarget(
                f"{name}-target-{region}",
                rule=rule.name,
                target_id="rootwatch-forward-home",
                arn=event_bus_arn(acct, home),
                role_arn=forwarder.arn,  # type: ignore[union-attr]
                retry_policy=_retry(),
                region=region,
                opts=opts,
            )
        rules[region] = rule

    tamper_rule = _tamper(name, args, alerts, function, queue, opts, tags) if s.realtime.tamper else None
    return RealtimeResources(regions, rules, function, queue, tamper_rule, forwarder)


def _delivery_watch(
    name: str, args: "RootActivityMonitorArgs", alerts: "AlertTopics", opts: pulumi.ResourceOptions, tags: dict[str, str]
) -> aws.cloudwatch.LogGroup:
    """Alerts that could not be delivered must page someone, and the formatter's logs must not pile up forever."""
    s, home = args.settings, args.settings.home_region
    logs = aws.cloudwatch.LogGroup(
        f"{name}-formatter-logs",
        name=f"/aws/lambda/{FUNCTION_NAME}",
        retention_in_days=s.trail.retention_days,
        kms_key_id=args.logs_key_arn,  # the trail key (monitor.py), whose policy names this group
        region=home,
        tags=tags,
        opts=opts,
    )
    # Anything in the DLQ is an alert EventBridge gave up on after 24 h of retries.
    aws.cloudwatch.MetricAlarm(
        f"{name}-dlq-alarm",
        name=DLQ_ALARM_NAME,
        alarm_description=f"rootwatch: real-time root alerts for account {args.account.name} ({args.account.id}) "
        f"could not be delivered; read them from the SQS queue {DLQ_NAME}",
        namespace="AWS/SQS",
        metric_name="ApproximateNumberOfMessagesVisible",
        dimensions={"QueueName": DLQ_NAME},
        statistic="Maximum",
        period=300,
        evaluation_periods=1,
        threshold=1,
        comparison_operator="GreaterThanOrEqualToThreshold",
        treat_missing_data="notBreaching",
        actions_enabled=True,
        alarm_actions=[alerts.topics[Severity.CRITICAL].arn],
        region=home,
        tags=tags,
        opts=opts,
    )
    return logs


def _formatter(
    name: str, args: "RootActivityMonitorArgs", alerts: "AlertTopics", opts: pulumi.ResourceOptions, tags: dict[str, str]
) -> aws.lambda_.Function:
    s, acct, home = args.settings, args.account.id, args.settings.home_region
    topics = [topic_arn(acct, home, lvl) for lvl in args.levels]
    role = aws.iam.Role(
        f"{name}-formatter-role",
        name=FORMATTER_ROLE_NAME,
        description="rootwatch: the alert formatter publishes to the alert topics",
        assume_role_policy=json.dumps(formatter_trust_policy(acct)),
        inline_policies=[
            aws.iam.RoleInlinePolicyArgs(
                name=FORMATTER_ROLE_NAME,
                policy=alerts.key.arn.apply(lambda key: json.dumps(formatter_policy(acct, home, topics, key))),
            )
        ],
        tags=tags,
        opts=opts,
    )
    function = aws.lambda_.Function(
        f"{name}-formatter",
        name=FUNCTION_NAME,
        description="rootwatch: formats root-activity and tamper events and routes them by severity",
        runtime=RUNTIME,
        handler=HANDLER,
        code=formatter_archive(),
        role=role.arn,
        architectures=["arm64"],
        memory_size=256,
        timeout=30,
        environment=aws.lambda_.FunctionEnvironmentArgs(
            variables=formatter_environment(args.account, s, args.severity, args.levels)
        ),
        region=home,
        tags=tags,
        opts=opts,
    )
    aws.lambda_.FunctionEventInvokeConfig(
        f"{name}-formatter-invoke-config",
        function_name=function.name,
        maximum_retry_attempts=2,
        maximum_event_age_in_seconds=6 * 3600,
        # A failed invocation still reaches people: the raw event goes to the critical route.
        destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
            on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(
                destination=alerts.topics[Severity.CRITICAL].arn
            )
        ),
        region=home,
        opts=opts,
    )
    return function


def _invoke_formatter(
    target_name: str,
    permission_name: str,
    rule: aws.cloudwatch.EventRule,
    function: aws.lambda_.Function,
    queue: aws.sqs.Queue,
    region: str,
    opts: pulumi.ResourceOptions,
) -> None:
    permission = aws.lambda_.Permission(
        permission_name,
        function=function.name,
        action="lambda:InvokeFunction",
        principal="events.amazonaws.com",
        source_arn=rule.arn,
        region=region,
        opts=opts,
    )
    aws.cloudwatch.EventTarget(
        target_name,
        rule=rule.name,
        target_id=FUNCTION_NAME,
        arn=function.arn,
        dead_letter_config=aws.cloudwatch.EventTargetDeadLetterConfigArgs(arn=queue.arn),
        retry_policy=_retry(),
        region=region,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[permission])),
    )


def _tamper(
    name: str,
    args: "RootActivityMonitorArgs",
    alerts: "AlertTopics",
    function: aws.lambda_.Function,
    queue: aws.sqs.Queue,
    opts: pulumi.ResourceOptions,
    tags: dict[str, str],
) -> aws.cloudwatch.EventRule:
    s, account, home = args.settings, args.account, args.settings.home_region
    exempt = deployer_caller_prefix(account, s)
    if exempt is None:
        pulumi.log.warn(
            f"account {account.id}: realtime.managementDeployerArn is not set, so deploying rootwatch into the "
            "management account raises tamper alerts")

    def pattern(key_id: str) -> str:
        text = render(tamper_pattern(tamper_names(s, key_id), exempt))
        if len(text) > MAX_PATTERN_CHARS:
            pulumi.log.warn(f"account {account.id}: the tamper pattern has {len(text)} characters; EventBridge "
                            f"accepts {MAX_PATTERN_CHARS} unless the quota is raised")
        return text

    rule = aws.cloudwatch.EventRule(
        f"{name}-tamper-rule",
        name=TAMPER_RULE_NAME,
        description="rootwatch: changes to rootwatch's own resources by anyone but the deployer",
        event_pattern=alerts.key.key_id.apply(pattern),
        state=TAMPER_RULE_STATE,
        region=home,
        tags=tags,
        opts=opts,
    )
    _invoke_formatter(f"{name}-tamper-target", f"{name}-tamper-permission", rule, function, queue, home, opts)
    return rule
