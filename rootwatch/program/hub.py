"""AlertHub: the one place where every root alert of the organization reaches a human.

In the hub account (``rootwatch:hub.accountId``, region ``hub.region``), through the hub's
own pinned provider, as children of one ``rootwatch:index:AlertHub`` component:

- the custom event bus ``rootwatch-alerts``; its policy lets only principals of this
  organization put events (``aws:PrincipalOrgID``). Every member rule, in every region,
  sends there. Rules on it for root activity, everything else CloudTrail-delivered
  (tamper, AssumeRoot openings, delivery alarms) and the drill invoke the formatter;
- ONE formatter Lambda; the account directory (id -> name, OU, baseline, tags; topics,
  severity matrix, break-glass windows) is a JSON file inside its archive;
- one KMS-encrypted topic per severity level with the human subscriptions (``routes``):
  an e-mail address confirms once for the whole organization; https endpoints that
  confirm themselves set ``autoConfirms``; sqs and lambda endpoints in the hub get their
  queue policy / invoke permission here;
- the alarm intake queue, subscribed to every member's local alarm topic *by the hub*
  (so AWS confirms it without a human; the member topic allows exactly that), consumed
  by the formatter (event source mapping) which turns alarm notifications into alerts;
- the DynamoDB table of AssumeRoot openers (TTL), for labelling centralized root sessions;
- dead-letter queues with alarms, Errors/Throttles alarms on the formatter and
  FailedInvocations on the bus rules. They page the critical topic directly, so a
  broken formatter still reaches people;
- a tamper rule on the hub account's default bus for the hub's own resources.

Tampering is the one alert that must not depend on the formatter, since the formatter
may be what is being tampered with. So it has a second path:
- the hub's tamper rule also targets the critical topic itself, and the bus rule
  ``rootwatch-tamper-direct`` does the same for every member's tamper event. Both use an
  input transformer that writes one readable line: account, event, caller, time;
- a heartbeat: every 5 minutes a schedule invokes the formatter, which answers with an
  EMF metric line (``rootwatch/FormatterHeartbeat``). The alarm on that metric counts
  missing data as breaching, so a formatter that is deleted, disabled, throttled or
  replaced by code that does nothing pages the critical topic within about 10 minutes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pulumi
import pulumi_aws as aws

from rootwatch.core.arns import partition
from rootwatch.core.severity import ORDERED, Severity
from rootwatch.lambdas.formatter import (
    DIR_ACCOUNTS,
    DIR_BREAK_GLASS,
    DIR_HUB,
    DIR_MATRIX,
    DIR_RUNBOOK,
    DIR_SESSIONS_TABLE,
    DIR_TOPICS,
    DIRECTORY_FILE,
    DRILL_SOURCE,
    HEARTBEAT_SOURCE,
    HUB_TOPIC_PREFIX,
)
from rootwatch.lambdas import ledger as ledger_items
from rootwatch.lambdas import metrics
from rootwatch.program import alerting, ledger, realtime, trailsecurity
from rootwatch.program.organization import Account, baseline_severity
from rootwatch.program.settings import SECRET_PLACEHOLDER, RootwatchSettings

COMPONENT_TYPE = "rootwatch:index:AlertHub"
RESOURCE_NAME = "rootwatch-hub"
BUS_NAME = realtime.HUB_BUS_NAME
TOPIC_PREFIX = HUB_TOPIC_PREFIX
KEY_ALIAS = "alias/rootwatch-hub"
INTAKE_QUEUE_NAME = realtime.HUB_QUEUE_NAME
INTAKE_DLQ_NAME = "rootwatch-alarm-intake-dlq"
EVENTS_DLQ_NAME = "rootwatch-hub-events-dlq"
TABLE_NAME = realtime.HUB_TABLE_NAME
FUNCTION_NAME = realtime.FUNCTION_NAME
FORMATTER_ROLE_NAME = realtime.FORMATTER_ROLE_NAME
HUB_FORWARDER_ROLE_NAME = "rootwatch-hub-forwarder"
HUB_TAMPER_RULE_NAME = "rootwatch-hub-tamper"
ROOT_RULE = realtime.RULE_NAME
OTHER_RULE = realtime.TAMPER_RULE_NAME
DRILL_RULE = "rootwatch-drill"
# The formatter-free path for tamper events (see the module docstring).
DIRECT_RULE = "rootwatch-tamper-direct"
DIRECT_TARGET_ID = "rootwatch-critical-topic"
BUS_RULES = (ROOT_RULE, OTHER_RULE, DRILL_RULE, DIRECT_RULE)  # the rules on the hub bus
HEARTBEAT_RULE = "rootwatch-formatter-heartbeat"
HEARTBEAT_ALARM = "rootwatch-formatter-heartbeat"
HEARTBEAT_MINUTES = 5
HEARTBEAT_MISSED_PERIODS = 2  # two silent periods in a row: about 10 minutes
FUNCTION_TIMEOUT = 30
# SQS: the visibility timeout must be at least the function's timeout (AWS recommends 6x).
INTAKE_VISIBILITY_SECONDS = 6 * FUNCTION_TIMEOUT
INTAKE_MAX_RECEIVES = 5


# -- names and ARNs (pure) -----------------------------------------------------------------------


def topic_name(level: Severity) -> str:
    return f"{TOPIC_PREFIX}-{level.value}"


def topic_arn(hub: str, region: str, level: Severity) -> str:
    return f"arn:{partition(region)}:sns:{region}:{hub}:{topic_name(level)}"


def queue_arn(hub: str, region: str, name: str) -> str:
    return f"arn:{partition(region)}:sqs:{region}:{hub}:{name}"


def queue_url_of(arn: str) -> str:
    """The URL of a queue from its ARN (arn:aws:sqs:<region>:<account>:<name>)."""
    _, part, _, region, acct, name = arn.split(":", 5)
    suffix = "amazonaws.com.cn" if part == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{suffix}/{acct}/{name}"


def hub_rule_arn(hub: str, region: str, name: str) -> str:
    return f"arn:{partition(region)}:events:{region}:{hub}:rule/{BUS_NAME}/{name}"


def member_topic_arn(account_id: str, home_region: str, level: Severity) -> str:
    return alerting.topic_arn(account_id, home_region, level)


def hub_levels(settings: RootwatchSettings) -> list[Severity]:
    """Every level with a route, and critical (tamper, malformed events, failures) always."""
    return [lvl for lvl in ORDERED if settings.routes.get(lvl) or lvl == Severity.CRITICAL]


# -- policies (pure) -----------------------------------------------------------------------------


def bus_policy(hub: str, region: str, organization_id: str | None, accounts: Sequence[str]) -> dict[str, Any]:
    """Only principals of this organization may put events (else, without an org id, the listed accounts)."""
    bus = realtime.hub_bus_arn(hub, region)
    stmt: dict[str, Any] = {"Sid": "OrganizationPutsEvents", "Effect": "Allow", "Action": "events:PutEvents", "Resource": bus}
    if organization_id:
        stmt.update({"Principal": "*", "Condition": {"StringEquals": {"aws:PrincipalOrgID": organization_id}}})
    else:
        stmt["Principal"] = {"AWS": sorted(f"arn:{partition(region)}:iam::{a}:root" for a in set(accounts))}
    return {"Version": "2012-10-17", "Statement": [stmt]}


def formatter_log_group_arn(hub: str, region: str) -> str:
    return f"arn:{partition(region)}:logs:{region}:{hub}:log-group:/aws/lambda/{FUNCTION_NAME}"


def hub_key_policy(hub: str, region: str) -> dict[str, Any]:
    """The alert-topic key (the hub's CloudWatch alarms and its two direct tamper rules encrypt to it),
    which also encrypts the formatter's log group: the alerts' text (callers, IP addresses) is in those logs."""
    policy = alerting.alert_key_policy(hub, region)
    policy["Statement"].append(trailsecurity.logs_key_statement(region, [formatter_log_group_arn(hub, region)]))
    policy["Statement"].append(events_key_statement(hub))
    return policy


def default_bus_rule_arn(hub: str, region: str, name: str) -> str:
    """A rule on the hub account's default bus (the hub's tamper rule, the heartbeat schedule)."""
    return f"arn:{partition(region)}:events:{region}:{hub}:rule/{name}"


def direct_rule_arns(hub: str, region: str) -> list[str]:
    """The two rules that publish tamper events to the critical topic themselves."""
    return [default_bus_rule_arn(hub, region, HUB_TAMPER_RULE_NAME), hub_rule_arn(hub, region, DIRECT_RULE)]


def hub_topic_policy(hub: str, region: str, level: Severity) -> dict[str, Any]:
    """The hub's alarms publish to every level; only the critical topic takes the two direct tamper rules.
    (The formatter publishes with its role's IAM policy, not through the topic policy.)"""
    arn = topic_arn(hub, region, level)
    rules = direct_rule_arns(hub, region) if level == Severity.CRITICAL else ()
    return alerting.topic_policy(hub, region, level, arn=arn, event_rules=rules)


def events_key_statement(hub: str) -> dict[str, Any]:
    """EventBridge rules of the hub account may encrypt to the key when they publish to the critical topic.

    The direct tamper targets need it: SNS encrypts the message with the topic's key on behalf of
    the publisher, here events.amazonaws.com. EventBridge documents aws:SourceAccount and
    aws:SourceArn as its confused-deputy keys for KMS; the account is the narrowest that is sure to
    hold, since SNS, not EventBridge, calls KMS. If it did not, the direct path would fail visibly:
    the rules' FailedInvocations alarm pages through CloudWatch, which this key already serves."""
    return {
        "Sid": "AllowTamperRuleDelivery",
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": list(alerting.KEY_USER_ACTIONS),
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceAccount": hub}},
    }


def intake_queue_policy(hub: str, region: str, member_topics: Sequence[str]) -> dict[str, Any]:
    """Member alarm topics may deliver (SNS -> SQS). Listed by ARN while the policy stays small,
    else by name pattern (SQS policies are capped at 8 KB)."""
    q = queue_arn(hub, region, INTAKE_QUEUE_NAME)
    topics: Any = sorted(set(member_topics))
    if len(json.dumps(topics)) > 6000:
        topics = f"arn:{partition(region)}:sns:*:*:{alerting.TOPIC_PREFIX}-*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "MemberAlarmTopicsDeliver", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
             "Action": "sqs:SendMessage", "Resource": q, "Condition": {"ArnLike": {"aws:SourceArn": topics}}},
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": q,
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ],
    }


def route_queue_policy(queue: str, topics: Sequence[str]) -> dict[str, Any]:
    """An sqs route in the hub: the hub's topics (and only they) may deliver."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "RootwatchHubTopicsDeliver", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
             "Action": "sqs:SendMessage", "Resource": queue,
             "Condition": {"ArnEquals": {"aws:SourceArn": sorted(set(topics))}}},
        ],
    }


def events_dlq_policy(hub: str, region: str) -> dict[str, Any]:
    q = queue_arn(hub, region, EVENTS_DLQ_NAME)
    rules = [*(hub_rule_arn(hub, region, n) for n in BUS_RULES),
             *(default_bus_rule_arn(hub, region, n) for n in (HUB_TAMPER_RULE_NAME, HEARTBEAT_RULE))]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "EventBridgeDeadLetters", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
             "Action": "sqs:SendMessage", "Resource": q, "Condition": {"ArnEquals": {"aws:SourceArn": rules}}},
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": q,
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ],
    }


def formatter_policy(hub: str, region: str, topics: Sequence[str], key_arn: str) -> dict[str, Any]:
    p = partition(region)
    group = realtime.formatter_log_group_arn(hub, region)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "PublishToRoutes", "Effect": "Allow", "Action": "sns:Publish", "Resource": sorted(topics)},
            {"Sid": "UseAlertKey", "Effect": "Allow", "Action": ["kms:GenerateDataKey*", "kms:Decrypt"], "Resource": key_arn},
            {"Sid": "WriteOwnLogs", "Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": [group, f"{group}:log-stream:*"]},
            {"Sid": "ReadAlarmIntake", "Effect": "Allow",
             "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
             "Resource": queue_arn(hub, region, INTAKE_QUEUE_NAME)},
            {"Sid": "RootSessions", "Effect": "Allow", "Action": ["dynamodb:PutItem", "dynamodb:GetItem"],
             "Resource": f"arn:{p}:dynamodb:{region}:{hub}:table/{TABLE_NAME}"},
            # The incident ledger: every alert opens or updates its account's incident (MTTR, incidents per quarter).
            ledger.formatter_ledger_statement(f"arn:{p}:dynamodb:{region}:{hub}:table/{ledger_items.DEFAULT_TABLE}"),
        ],
    }


def hub_forwarder_policy(hub: str, region: str) -> dict[str, Any]:
    return realtime.forwarder_policy(hub, region)


# -- patterns of the bus rules (pure) ----------------------------------------------------------


def other_pattern() -> dict[str, Any]:
    """Everything CloudTrail-delivered that is not root activity (member tamper rules, AssumeRoot openings):
    only rootwatch's member rules send such events here."""
    return {"source": [{"prefix": "aws."}], "detail-type": [realtime.TAMPER_DETAIL_TYPE],
            "detail": {"userIdentity": {"type": [{"anything-but": "Root"}]}}}


def direct_pattern(hub: str) -> dict[str, Any]:
    """Members' tamper events on the hub bus, for the formatter-free target: the OTHER_RULE events
    without AssumeRoot openings (those are not alerts), and without the hub's own (its tamper rule
    already publishes them directly from the default bus)."""
    pattern = other_pattern()
    pattern["account"] = [{"anything-but": hub}]
    pattern["detail"]["eventName"] = [{"anything-but": "AssumeRoot"}]
    return pattern


# One line a person can act on, made by EventBridge itself (no code runs). A quoted template makes
# the SNS message plain text; the fields are CloudTrail's, so a caller cannot inject a line break.
TAMPER_INPUT_PATHS = {
    "account": "$.account", "region": "$.region", "time": "$.time", "event": "$.detail.eventName",
    "service": "$.detail.eventSource", "caller": "$.detail.userIdentity.arn",
}
TAMPER_INPUT_TEMPLATE = (
    '"rootwatch CRITICAL: a rootwatch resource was changed in account <account> (<region>): <event> on '
    '<service> by <caller> at <time>. Sent by EventBridge directly, not by the alert formatter: '
    'check the formatter too, and the CloudTrail of that account."'
)


def tamper_input_transformer() -> aws.cloudwatch.EventTargetInputTransformerArgs:
    return aws.cloudwatch.EventTargetInputTransformerArgs(input_paths=dict(TAMPER_INPUT_PATHS),
                                                          input_template=TAMPER_INPUT_TEMPLATE)


def heartbeat_input() -> str:
    return json.dumps({"source": HEARTBEAT_SOURCE})


def drill_pattern(hub: str) -> dict[str, Any]:
    # Only the hub account itself may put a drill event: no member can fake one.
    return {"source": [DRILL_SOURCE], "account": [hub]}


# -- the account directory (pure) ------------------------------------------------------------------


def directory(settings: RootwatchSettings, accounts: Sequence[Account], hub: str, region: str) -> dict[str, Any]:
    """The formatter's directory document (the archive's JSON file): never an endpoint."""
    baselines = {*ORDERED}
    return {
        DIR_HUB: hub,
        DIR_TOPICS: {lvl.value: topic_arn(hub, region, lvl) for lvl in hub_levels(settings)},
        DIR_MATRIX: {b.value: {c.value: s.value for c, s in settings.realtime.matrix_row(b).items()}
                     for b in sorted(baselines, key=lambda x: x.rank)},
        DIR_ACCOUNTS: {
            a.id: {"name": a.name, "ou": a.ou, "ouName": a.ou_name, "baseline": baseline_severity(settings, a).value,
                   "tags": dict(sorted(a.tags.items()))}
            for a in sorted(accounts, key=lambda x: x.id)
        },
        DIR_BREAK_GLASS: [{**w.to_lambda(), "accounts": sorted(w.accounts)} for w in settings.break_glass.windows],
        DIR_RUNBOOK: settings.runbook_url,
        DIR_SESSIONS_TABLE: TABLE_NAME,
    }


def directory_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


# -- the component -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertHubArgs:
    settings: RootwatchSettings
    hub_account: Account
    # Accounts whose alarm topics the intake queue subscribes to (the stack's members).
    members: Sequence[Account]
    organization_id: str | None
    stack_tags: Mapping[str, str]
    secret_endpoints: bool = False
    # Member components: their topic policies must exist before the hub subscribes.
    member_resources: Sequence[pulumi.Resource] = ()


def _alarm(resource_name: str, opts: pulumi.ResourceOptions, region: str, topic: pulumi.Input[str], description: str,
           tags: Mapping[str, str], *, comparison: str = "GreaterThanOrEqualToThreshold", missing: str = "notBreaching",
           periods: int = 1, **metric: Any) -> aws.cloudwatch.MetricAlarm:
    return aws.cloudwatch.MetricAlarm(
        resource_name, alarm_description=description, evaluation_periods=periods, threshold=1,
        comparison_operator=comparison, treat_missing_data=missing,
        actions_enabled=True, alarm_actions=[topic], region=region, tags=dict(tags), opts=opts, **metric)


class AlertHub(pulumi.ComponentResource):
    """The organization's alert hub (see the module docstring)."""

    bus_arn: pulumi.Output[str]
    function_arn: pulumi.Output[str]
    topic_arns: dict[Severity, pulumi.Output[str]]
    intake_subscriptions: dict[str, aws.sns.TopicSubscription]

    def __init__(self, name: str, args: AlertHubArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        s = args.settings
        hub, region = args.hub_account.id, s.hub_region
        tags = dict(args.stack_tags)
        child = pulumi.ResourceOptions(parent=self)
        stateful = pulumi.ResourceOptions(parent=self, protect=s.protect, retain_on_delete=True)
        levels = hub_levels(s)

        # Topics and routes.
        key = aws.kms.Key(
            f"{name}-key", description="rootwatch hub: encrypts the alert topics (usable by CloudWatch alarms) and the formatter logs",
            enable_key_rotation=True, deletion_window_in_days=30,
            policy=json.dumps(hub_key_policy(hub, region)), region=region, tags=tags, opts=stateful)
        aws.kms.Alias(f"{name}-key-alias", name=KEY_ALIAS, target_key_id=key.key_id, region=region, opts=child)
        topics: dict[Severity, aws.sns.Topic] = {}
        for lvl in levels:
            tname = f"{name}-topic-{lvl.value}"
            topic = aws.sns.Topic(tname, name=topic_name(lvl), display_name=f"rootwatch {lvl.value}",
                                  kms_master_key_id=key.arn, region=region, tags=tags, opts=child)
            aws.sns.TopicPolicy(f"{tname}-policy", arn=topic.arn, policy=json.dumps(hub_topic_policy(hub, region, lvl)),
                                region=region, opts=child)
            for i, sub in enumerate(s.routes.get(lvl, ())):
                alerting.subscribe(f"{tname}-sub-{i}", topic.arn, sub, args.secret_endpoints, region, child)
            topics[lvl] = topic
        self._endpoint_policies(name, s, hub, region, child)
        critical = topics[Severity.CRITICAL].arn

        # Queues, table, logs.
        events_dlq = aws.sqs.Queue(
            f"{name}-events-dlq", name=EVENTS_DLQ_NAME, sqs_managed_sse_enabled=True,
            message_retention_seconds=realtime.DLQ_RETENTION_SECONDS, policy=json.dumps(events_dlq_policy(hub, region)),
            region=region, tags=tags, opts=child)
        intake_dlq = aws.sqs.Queue(
            f"{name}-intake-dlq", name=INTAKE_DLQ_NAME, sqs_managed_sse_enabled=True,
            message_retention_seconds=realtime.DLQ_RETENTION_SECONDS, region=region, tags=tags, opts=child)
        member_topics = [member_topic_arn(a.id, s.home_region, baseline_severity(s, a)) for a in args.members]
        intake = aws.sqs.Queue(
            f"{name}-intake", name=INTAKE_QUEUE_NAME, sqs_managed_sse_enabled=True,
            visibility_timeout_seconds=INTAKE_VISIBILITY_SECONDS,
            message_retention_seconds=realtime.DLQ_RETENTION_SECONDS,
            redrive_policy=intake_dlq.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": INTAKE_MAX_RECEIVES})),
            policy=json.dumps(intake_queue_policy(hub, region, member_topics)),
            region=region, tags=tags, opts=child)
        table = aws.dynamodb.Table(
            f"{name}-sessions", name=TABLE_NAME, billing_mode="PAY_PER_REQUEST", hash_key="accessKeyId",
            attributes=[aws.dynamodb.TableAttributeArgs(name="accessKeyId", type="S")],
            ttl=aws.dynamodb.TableTtlArgs(attribute_name="expiresAt", enabled=True),
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True),
            region=region, tags=tags, opts=child)
        # The incident ledger (protected, never expired): `rootwatch incidents` and `rootwatch report` read it.
        ledger.incident_table(ledger_items.DEFAULT_TABLE, pulumi.ResourceOptions(parent=self), region=region,
                              protect=s.protect, tags=tags)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-formatter-logs", name=f"/aws/lambda/{FUNCTION_NAME}", retention_in_days=s.trail.retention_days,
            kms_key_id=key.arn, region=region, tags=tags, opts=child)

        # The formatter.
        topic_list = [topic_arn(hub, region, lvl) for lvl in levels]
        role = aws.iam.Role(
            f"{name}-formatter-role", name=FORMATTER_ROLE_NAME,
            description="rootwatch hub: the alert formatter publishes to the hub's alert topics",
            assume_role_policy=json.dumps(realtime.formatter_trust_policy(hub)), tags=tags, opts=child)
        role_policy = aws.iam.RolePolicy(
            f"{name}-formatter-role-policy", name=FORMATTER_ROLE_NAME, role=role.id,
            policy=key.arn.apply(lambda k: json.dumps(formatter_policy(hub, region, topic_list, k))), opts=child)
        all_accounts = {a.id: a for a in [*args.members, args.hub_account]}
        doc = directory(s, list(all_accounts.values()), hub, region)
        # Expired windows still ship (harmless: they cover no new event) but the operator should prune them.
        for acct in all_accounts:
            for msg in realtime.expired_window_warnings(s, acct):
                pulumi.log.warn(msg)
        function = aws.lambda_.Function(
            f"{name}-formatter", name=FUNCTION_NAME,
            description="rootwatch hub: formats root-activity, tamper and alarm events and routes them by severity",
            runtime=realtime.RUNTIME, handler=realtime.HANDLER,
            code=realtime.formatter_archive({DIRECTORY_FILE: directory_json(doc)}),
            role=role.arn, architectures=["arm64"], memory_size=256, timeout=FUNCTION_TIMEOUT,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={ledger_items.ENV_TABLE: ledger_items.DEFAULT_TABLE}),
            region=region, tags=tags,
            # Its log group first (else Lambda creates it, and then ResourceAlreadyExists); the role's policy too.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, role_policy]))
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-formatter-invoke-config", function_name=function.name, maximum_retry_attempts=2,
            maximum_event_age_in_seconds=6 * 3600,
            # A failed invocation still reaches people: the raw event goes to the critical route.
            destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
                on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(destination=critical)),
            region=region, opts=child)
        aws.lambda_.EventSourceMapping(
            f"{name}-intake-mapping", event_source_arn=intake.arn, function_name=function.arn, batch_size=10,
            function_response_types=["ReportBatchItemFailures"], region=region,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]))

        # The bus and its rules.
        bus = aws.cloudwatch.EventBus(f"{name}-bus", name=BUS_NAME, region=region, tags=tags, opts=child)
        member_ids = [a.id for a in args.members]
        aws.cloudwatch.EventBusPolicy(
            f"{name}-bus-policy", event_bus_name=bus.name,
            policy=json.dumps(bus_policy(hub, region, args.organization_id, [*member_ids, hub])),
            region=region, opts=child)
        patterns = {
            "root": (ROOT_RULE, realtime.root_pattern(), realtime.RULE_STATE, "root-user activity from member accounts"),
            "other": (OTHER_RULE, other_pattern(), "ENABLED",
                      "tampering and AssumeRoot openings from member accounts"),
            "drill": (DRILL_RULE, drill_pattern(hub), "ENABLED", "rootwatch drill events of the hub account"),
        }
        for key_name, (rule_name, pattern, state, what) in patterns.items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-rule-{key_name}", name=rule_name, event_bus_name=bus.name, description=f"rootwatch hub: {what}",
                event_pattern=realtime.render(pattern), state=state, region=region, tags=tags, opts=child)
            permission = aws.lambda_.Permission(
                f"{name}-permission-{key_name}", function=function.name, action="lambda:InvokeFunction",
                principal="events.amazonaws.com", source_arn=rule.arn, region=region, opts=child)
            aws.cloudwatch.EventTarget(
                f"{name}-target-{key_name}", rule=rule.name, event_bus_name=bus.name, target_id=FUNCTION_NAME,
                arn=function.arn, dead_letter_config=aws.cloudwatch.EventTargetDeadLetterConfigArgs(arn=events_dlq.arn),
                retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                    maximum_event_age_in_seconds=realtime.RETRY_MAX_AGE_SECONDS,
                    maximum_retry_attempts=realtime.RETRY_MAX_ATTEMPTS),
                region=region, opts=pulumi.ResourceOptions(parent=self, depends_on=[permission]))

        # Tamper events of members, also straight to the critical topic: no formatter code runs on this path.
        direct = aws.cloudwatch.EventRule(
            f"{name}-rule-direct", name=DIRECT_RULE, event_bus_name=bus.name,
            description="rootwatch hub: member tamper events, straight to the critical topic (no formatter)",
            event_pattern=realtime.render(direct_pattern(hub)), state="ENABLED", region=region, tags=tags, opts=child)
        self._direct_target(f"{name}-target-direct", direct, critical, events_dlq.arn, region, bus.name)

        # The heartbeat: the formatter answers a schedule with a metric; silence pages (see the module docstring).
        beat = aws.cloudwatch.EventRule(
            f"{name}-heartbeat-rule", name=HEARTBEAT_RULE,
            description="rootwatch hub: invokes the alert formatter every 5 minutes; its answer feeds the heartbeat alarm",
            schedule_expression=f"rate({HEARTBEAT_MINUTES} minutes)", state="ENABLED", region=region, tags=tags,
            opts=child)
        beat_permission = aws.lambda_.Permission(
            f"{name}-heartbeat-permission", function=function.name, action="lambda:InvokeFunction",
            principal="events.amazonaws.com", source_arn=beat.arn, region=region, opts=child)
        aws.cloudwatch.EventTarget(
            f"{name}-heartbeat-target", rule=beat.name, target_id=FUNCTION_NAME, arn=function.arn,
            input=heartbeat_input(), dead_letter_config=aws.cloudwatch.EventTargetDeadLetterConfigArgs(arn=events_dlq.arn),
            region=region, opts=pulumi.ResourceOptions(parent=self, depends_on=[beat_permission]))
        _alarm(f"{name}-heartbeat-alarm", child, region, critical,
               "rootwatch hub: the alert formatter missed its heartbeats: it is deleted, disabled, throttled or "
               "not rootwatch's code; root alerts may be lost; check the function and CloudTrail", tags,
               name=HEARTBEAT_ALARM, namespace=metrics.NAMESPACE, metric_name=metrics.HEARTBEAT_METRIC,
               statistic="Sum", period=HEARTBEAT_MINUTES * 60,
               comparison="LessThanThreshold", missing="breaching", periods=HEARTBEAT_MISSED_PERIODS)

        # Nothing is lost silently: every failure pages the critical topic directly (not via the formatter).
        for qname, label in ((EVENTS_DLQ_NAME, "events the hub's rules could not hand to the formatter"),
                             (INTAKE_DLQ_NAME, "alarm notifications the formatter could not process")):
            _alarm(f"{name}-{qname.removeprefix('rootwatch-')}-alarm", child, region, critical,
                   f"rootwatch hub: {label}; read them from the SQS queue {qname}", tags,
                   name=qname, namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible",
                   dimensions={"QueueName": qname}, statistic="Maximum", period=300)
        for metric in ("Errors", "Throttles"):
            _alarm(f"{name}-formatter-{metric.lower()}-alarm", child, region, critical,
                   f"rootwatch hub: the alert formatter reports {metric}: alerts may be delayed or lost; check its logs",
                   tags, name=f"rootwatch-alert-formatter-{metric.lower()}", namespace="AWS/Lambda", metric_name=metric,
                   dimensions={"FunctionName": FUNCTION_NAME}, statistic="Sum", period=60)
        _alarm(f"{name}-rules-failed-alarm", child, region, critical,
               "rootwatch hub: the hub bus rules failed to invoke the formatter or publish to the critical topic "
               "(FailedInvocations)", tags,
               name="rootwatch-hub-failed-invocations",
               metric_queries=[
                   *[aws.cloudwatch.MetricAlarmMetricQueryArgs(
                       id=f"f{i}", return_data=False,
                       metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                           namespace="AWS/Events", metric_name="FailedInvocations", period=60, stat="Sum",
                           dimensions={"EventBusName": BUS_NAME, "RuleName": r}))
                     for i, r in enumerate(BUS_RULES)],
                   aws.cloudwatch.MetricAlarmMetricQueryArgs(
                       id="failed", expression=" + ".join(f"FILL(f{i}, 0)" for i in range(len(BUS_RULES))),
                       label="FailedInvocations", return_data=True),
               ])

        self._hub_tamper(name, s, args.hub_account, region, key.key_id, tags, child, critical, events_dlq.arn)

        # The intake queue subscribes to every member's alarm topic, through the HUB's provider: the
        # endpoint's account creates a cross-account SQS subscription, so AWS confirms it at once.
        self.intake_subscriptions = {}
        for a in args.members:
            self.intake_subscriptions[a.id] = aws.sns.TopicSubscription(
                f"{name}-intake-{a.id}", topic=member_topic_arn(a.id, s.home_region, baseline_severity(s, a)),
                protocol="sqs", endpoint=intake.arn, region=s.home_region,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.member_resources]))

        self.account_id, self.region, self.settings = hub, region, s
        self.bus_arn = bus.arn
        self.function_arn = function.arn
        self.topic_arns = {lvl: t.arn for lvl, t in topics.items()}
        self.table_name = table.name
        self.register_outputs({"busArn": bus.arn, "functionArn": function.arn,
                               "topicArns": {lvl.value: arn for lvl, arn in self.topic_arns.items()}})

    def summary(self) -> dict[str, Any]:
        """The hub as the ``hub`` stack output and the plan show it (ARNs from names: known in preview)."""
        s, hub, region = self.settings, self.account_id, self.region
        return {
            "accountId": hub,
            "region": region,
            "busArn": realtime.hub_bus_arn(hub, region),
            "intakeQueueArn": queue_arn(hub, region, INTAKE_QUEUE_NAME),
            "topicArns": {lvl.value: topic_arn(hub, region, lvl) for lvl in hub_levels(s)},
            # Protocol counts only (endpoints may be secrets); e-mail stays pending until clicked once.
            "routes": route_summary(s),
            "pendingConfirmation": {lvl.value: sum(1 for x in s.routes.get(lvl, ()) if pending_until_confirmed(x))
                                    for lvl in hub_levels(s)},
            "members": sorted(self.intake_subscriptions),
        }

    def _endpoint_policies(self, name: str, s: RootwatchSettings, hub: str, region: str,
                           opts: pulumi.ResourceOptions) -> None:
        """sqs routes get a queue policy for the hub's topics; lambda routes an invoke permission."""
        queues: dict[str, list[str]] = {}
        for lvl in hub_levels(s):
            for i, sub in enumerate(s.routes.get(lvl, ())):
                if sub.endpoint == SECRET_PLACEHOLDER:
                    continue
                if sub.protocol == "sqs":
                    queues.setdefault(sub.endpoint, []).append(topic_arn(hub, region, lvl))
                elif sub.protocol == "lambda":
                    aws.lambda_.Permission(
                        f"{name}-route-permission-{lvl.value}-{i}", function=sub.endpoint, action="lambda:InvokeFunction",
                        principal="sns.amazonaws.com", source_arn=topic_arn(hub, region, lvl),
                        region=sub.endpoint.split(":")[3], opts=opts)
        for j, (queue, topics) in enumerate(sorted(queues.items())):
            # Note: a QueuePolicy owns the queue's whole policy; the queue is rootwatch's route.
            aws.sqs.QueuePolicy(f"{name}-route-queue-policy-{j}", queue_url=queue_url_of(queue),
                                policy=json.dumps(route_queue_policy(queue, topics)), region=queue.split(":")[3], opts=opts)

    def _direct_target(self, resource_name: str, rule: aws.cloudwatch.EventRule, critical: pulumi.Input[str],
                       dlq: pulumi.Input[str], region: str, bus: pulumi.Input[str] | None = None) -> None:
        """A rule's formatter-free target: the critical topic, with the one-line input transformer.
        No role (SNS authorizes EventBridge by the topic policy; a role breaks KMS-encrypted topics)."""
        aws.cloudwatch.EventTarget(
            resource_name, rule=rule.name, event_bus_name=bus, target_id=DIRECT_TARGET_ID, arn=critical,
            input_transformer=tamper_input_transformer(),
            dead_letter_config=aws.cloudwatch.EventTargetDeadLetterConfigArgs(arn=dlq),
            retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                maximum_event_age_in_seconds=realtime.RETRY_MAX_AGE_SECONDS,
                maximum_retry_attempts=realtime.RETRY_MAX_ATTEMPTS),
            region=region, opts=pulumi.ResourceOptions(parent=self))

    def _hub_tamper(self, name: str, s: RootwatchSettings, hub: Account, region: str, key_id: pulumi.Output[str],
                    tags: Mapping[str, str], opts: pulumi.ResourceOptions, critical: pulumi.Input[str],
                    dlq: pulumi.Input[str]) -> None:
        """Changes to the hub's own resources (on the hub account's default bus), to the hub bus and,
        without the formatter, to the critical topic."""
        if not s.realtime.tamper:
            return
        exempt = realtime.deployer_caller_prefix(hub, s)
        names = realtime.tamper_names(s, "-")
        role = aws.iam.Role(
            f"{name}-forwarder-role", name=HUB_FORWARDER_ROLE_NAME,
            description="rootwatch hub: sends tamper events of the hub's own resources to the alert bus",
            assume_role_policy=json.dumps(realtime.forwarder_trust_policy(hub.id)), tags=dict(tags), opts=opts)
        policy = aws.iam.RolePolicy(f"{name}-forwarder-role-policy", name=HUB_FORWARDER_ROLE_NAME, role=role.id,
                                    policy=json.dumps(hub_forwarder_policy(hub.id, region)), opts=opts)
        rule = aws.cloudwatch.EventRule(
            f"{name}-tamper-rule", name=HUB_TAMPER_RULE_NAME,
            description="rootwatch hub: changes to the hub's own resources by anyone but the deployer",
            event_pattern=key_id.apply(
                lambda k: realtime.render(realtime.tamper_pattern(names, exempt, realtime.hub_branches(names, k)))),
            state=realtime.TAMPER_RULE_STATE, region=region, tags=dict(tags), opts=opts)
        aws.cloudwatch.EventTarget(
            f"{name}-tamper-target", rule=rule.name, target_id=realtime.HUB_TARGET_ID,
            arn=realtime.hub_bus_arn(hub.id, region), role_arn=role.arn,
            retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                maximum_event_age_in_seconds=realtime.RETRY_MAX_AGE_SECONDS,
                maximum_retry_attempts=realtime.RETRY_MAX_ATTEMPTS),
            region=region, opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]))
        self._direct_target(f"{name}-tamper-target-direct", rule, critical, dlq, region)


def pending_until_confirmed(sub: Any) -> bool:
    """E-mail (a person clicks) and https endpoints that do not confirm themselves stay pending after deploy."""
    return sub.protocol == "email" or (sub.protocol == "https" and not sub.auto_confirms)


def route_summary(settings: RootwatchSettings) -> dict[str, dict[str, int]]:
    return {lvl.value: alerting.route_summary(settings.routes.get(lvl, ())) for lvl in hub_levels(settings)}

