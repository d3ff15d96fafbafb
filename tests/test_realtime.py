"""The real-time path under the mock runtime, and its EventBridge patterns against moto's matcher."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from rootwatch.core.errors import ConfigError
from rootwatch.detection import eventpattern
from rootwatch.detection import rule as detection
from rootwatch.lambdas.formatter import (
    TAMPER_CALLS,
    is_tamper_call,
)
from rootwatch.program import mockrun, realtime
from rootwatch.program import settings as rw_settings
from rootwatch.program.realtime import (
    MAX_PATTERN_CHARS,
    TamperNames,
    render,
    tamper_pattern,
)

ROOT = Path(__file__).resolve().parent.parent
CORPUS = json.loads((ROOT / "tests" / "data" / "cloudtrail_corpus.json").read_text())["cases"]
MGMT = "111111111111"
IN_SCOPE = {MGMT, "222222222201", "222222222202", "222222222203", "222222222204", "222222222205", "222222222206", "222222222208", "222222222210"}
EXAMPLE_REGIONS = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1"]
ROUTES = {lvl: [{"protocol": "email", "endpoint": "oncall@example.com"}] for lvl in ("low", "medium", "high", "critical")}
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"


def settings(**config: Any) -> rw_settings.RootwatchSettings:
    values = {"rootwatch:routes": ROUTES, **config}
    return rw_settings.load({k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()})


@pytest.fixture(scope="module")
def run() -> mockrun.Run:
    return mockrun.run("example")


class View:
    """Registered resources by account (the RootActivityMonitor they sit under)."""

    def __init__(self, run: mockrun.Run) -> None:
        self.run = run
        self.by_urn = {r.urn: r for r in run.resources}

    def account(self, r: mockrun.Registered) -> str | None:
        node: mockrun.Registered | None = r
        while node is not None and node.type != "rootwatch:index:RootActivityMonitor":
            node = self.by_urn.get(node.parent)
        return node.name.removeprefix("rootwatch-") if node else None

    def of(self, typ: str, acct: str) -> list[mockrun.Registered]:
        return [r for r in self.run.by_type(typ) if self.account(r) == acct]

    def named(self, name: str) -> mockrun.Registered:
        (r,) = [r for r in self.run.resources if r.name == name]
        return r


@pytest.fixture(scope="module")
def view(run: mockrun.Run) -> View:
    return View(run)


def topic_arns(view: View, acct: str) -> set[str]:
    return {f"arn:aws:sns:us-east-1:{acct}:{t.inputs['name']}" for t in view.of("aws:sns/topic:Topic", acct)}


def env_of(view: View, acct: str) -> dict[str, str]:
    return view.named(f"rootwatch-{acct}-formatter").inputs["environment"]["variables"]


# -- regions ----------------------------------------------------------------------------------


def test_default_regions_are_the_17_standard_ones_home_first() -> None:
    assert len(realtime.STANDARD_REGIONS) == 17
    regions = realtime.regions_for(settings())
    assert regions[0] == "us-east-1" and sorted(regions) == sorted(realtime.STANDARD_REGIONS)
    eu = realtime.regions_for(settings(**{"rootwatch:homeRegion": "eu-west-1"}))
    assert eu[:2] == ["eu-west-1", "us-east-1"] and len(eu) == 17


def test_config_narrows_or_extends_regions_and_us_east_1_is_always_kept() -> None:
    narrow = settings(**{"rootwatch:homeRegion": "eu-central-1", "rootwatch:realtime": {"regions": ["eu-west-1", "eu-west-1"]}})
    assert realtime.regions_for(narrow) == ["eu-central-1", "us-east-1", "eu-west-1"]
    extended = settings(**{"rootwatch:realtime": {"extraRegions": ["ap-east-1", "me-south-1"]}})
    assert realtime.regions_for(extended)[-2:] == ["ap-east-1", "me-south-1"] and len(realtime.regions_for(extended)) == 19
    with pytest.raises(ConfigError, match="not in the home region's partition"):
        settings(**{"rootwatch:realtime": {"extraRegions": ["cn-north-1"]}})


def test_rules_in_every_configured_region_of_every_account(run: mockrun.Run, view: View) -> None:
    providers = {p.urn: json.loads(p.inputs["allowedAccountIds"])[0] for p in run.by_type("pulumi:providers:aws")}
    monitors = {m.name.removeprefix("rootwatch-"): m.urn for m in run.by_type("rootwatch:index:RootActivityMonitor")}
    assert set(monitors) == IN_SCOPE
    for acct in IN_SCOPE:
        rules = {r.inputs["region"]: r for r in view.of(RULE, acct) if r.inputs["name"] == realtime.RULE_NAME}
        assert sorted(rules) == sorted(EXAMPLE_REGIONS), acct
        for region, rule in rules.items():
            assert rule.name == f"rootwatch-{acct}-rule-{region}"
            assert rule.inputs["state"] == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS" and "isEnabled" not in rule.inputs
            # The root pattern, plus AssumeRoot openings (and, outside the tamper regions, rule changes).
            assert json.loads(rule.inputs["eventPattern"])["$or"][0] == realtime.root_pattern()
            # A child of the monitor, through the account's own pinned provider (management's too).
            assert rule.parent == monitors[acct]
            ref = rule.provider.rsplit("::", 1)[0]
            assert providers[ref] == acct


def test_the_rule_pattern_is_the_detection_models_extended_rule() -> None:
    pattern = realtime.root_pattern()
    alternatives = detection.eventbridge_patterns()
    assert pattern["detail-type"] == list(detection.EVENTBRIDGE_DETAIL_TYPES)
    for c in CORPUS:
        e = detection.wrap_eventbridge(c["record"])
        expected = c["expect"]["detected"]
        assert any(eventpattern.matches(p, e) for p in alternatives) == expected, c["name"]
        assert eventpattern.matches(pattern, e) == expected, c["name"]


def test_combine_patterns_keeps_what_is_shared_and_ors_the_rest() -> None:
    a = {"source": ["x"], "detail": {"k": ["1"], "m": ["z"]}}
    b = {"source": ["x"], "detail": {"k": ["2"], "m": ["z"]}}
    assert realtime.combine_patterns([a]) == a
    assert realtime.combine_patterns([a, b]) == {"source": ["x"], "detail": {"m": ["z"], "$or": [{"k": ["1"]}, {"k": ["2"]}]}}
    assert realtime.combine_patterns([a, a]) == a
    c = {"source": ["y"], "detail": {"k": ["1"]}}
    assert realtime.combine_patterns([a, c]) == {"$or": [{"source": ["x"], "detail": {"k": ["1"], "m": ["z"]}},
                                                         {"source": ["y"], "detail": {"k": ["1"]}}]}
    assert realtime.combine_patterns([{"source": ["x"]}, {"source": ["x"], "detail": {"k": ["1"]}}]) == {"source": ["x"]}


# -- moto's matcher -------------------------------------------------------------------------


class Bus:
    """A moto EventBridge rule with an SQS target: put_events in, read what matched."""

    def __init__(self, pattern: str, state: str) -> None:
        self.events = boto3.client("events", "us-east-1")
        self.sqs = boto3.client("sqs", "us-east-1")
        self.url = self.sqs.create_queue(QueueName="matched")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.events.put_rule(Name="under-test", EventPattern=pattern, State=state)
        self.events.put_targets(Rule="under-test", Targets=[{"Id": "queue", "Arn": arn}])

    def delivered(self, record: dict[str, Any]) -> bool:
        e = detection.wrap_eventbridge(record)
        out = self.events.put_events(Entries=[{"Source": e["source"], "DetailType": e["detail-type"], "Detail": json.dumps(e["detail"])}])
        assert out["FailedEntryCount"] == 0
        msgs = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        for m in msgs:
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        return bool(msgs)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        yield


def test_deployed_root_pattern_against_moto(aws_env: None, view: View) -> None:
    rule = view.named("rootwatch-222222222206-rule-eu-west-1")
    bus = Bus(rule.inputs["eventPattern"], rule.inputs["state"])
    # AssumeRoot openings travel to the hub too (to label their sessions), though they are not root use.
    from rootwatch.lambdas.formatter import assume_root_opening
    assert {c["name"]: bus.delivered(c["record"]) for c in CORPUS} == {
        c["name"]: c["expect"]["detected"] or assume_root_opening(c["record"]) is not None for c in CORPUS}


TAMPER_ACCT = "222222222201"
DEPLOYER = f"arn:aws:sts::{TAMPER_ACCT}:assumed-role/OrganizationAccountAccessRole/rootwatch"
ADMIN = f"arn:aws:sts::{TAMPER_ACCT}:assumed-role/AdminRole/alice@example.com"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:us-east-1:{TAMPER_ACCT}:key/{KEY_ID}"
TOPIC = f"arn:aws:sns:us-east-1:{TAMPER_ACCT}:rootwatch-alerts-critical"


def call(source: str, name: str, params: dict[str, Any], caller: str = ADMIN, kind: str = "AssumedRole") -> dict[str, Any]:
    return {
        "eventVersion": "1.08", "eventTime": "2026-11-24T10:00:00Z", "eventSource": source, "eventName": name,
        "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.9", "userAgent": "aws-cli/2.15",
        "userIdentity": {"type": kind, "arn": caller, "accountId": TAMPER_ACCT},
        "requestParameters": params, "eventType": "AwsApiCall", "eventID": "e-1", "recipientAccountId": TAMPER_ACCT,
    }


TAMPER_CASES = [
    ("admin stops the trail", call("cloudtrail.amazonaws.com", "StopLogging", {"name": "rootwatch"}), True),
    ("admin deletes the trail by ARN", call("cloudtrail.amazonaws.com", "DeleteTrail",
                                            {"name": f"arn:aws:cloudtrail:us-east-1:{TAMPER_ACCT}:trail/rootwatch"}), True),
    ("admin changes event selectors", call("cloudtrail.amazonaws.com", "PutEventSelectors", {"trailName": "rootwatch"}), True),
    ("admin stops another trail", call("cloudtrail.amazonaws.com", "StopLogging", {"name": "org-trail"}), False),
    ("deployer updates the trail", call("cloudtrail.amazonaws.com", "UpdateTrail", {"name": "rootwatch"}, DEPLOYER), False),
    ("root stops the trail (root rule's job)", call("cloudtrail.amazonaws.com", "StopLogging", {"name": "rootwatch"},
                                                    f"arn:aws:iam::{TAMPER_ACCT}:root", "Root"), False),
    ("admin deletes the log group", call("logs.amazonaws.com", "DeleteLogGroup", {"logGroupName": "/rootwatch/cloudtrail"}), True),
    ("admin shortens retention", call("logs.amazonaws.com", "PutRetentionPolicy",
                                      {"logGroupName": "/rootwatch/cloudtrail", "retentionInDays": 1}), True),
    ("admin deletes the metric filter", call("logs.amazonaws.com", "DeleteMetricFilter",
                                             {"logGroupName": "/rootwatch/cloudtrail", "filterName": "rootwatch-root-usage"}), True),
    ("admin deletes the alarm among others", call("monitoring.amazonaws.com", "DeleteAlarms",
                                                  {"alarmNames": ["cpu-high", "rootwatch-root-activity"]}), True),
    ("admin disables alarm actions", call("monitoring.amazonaws.com", "DisableAlarmActions",
                                          {"alarmNames": ["rootwatch-root-activity"]}), True),
    ("admin rewrites the alarm", call("monitoring.amazonaws.com", "PutMetricAlarm", {"alarmName": "rootwatch-root-activity"}), True),
    ("admin edits another alarm", call("monitoring.amazonaws.com", "PutMetricAlarm", {"alarmName": "cpu-high"}), False),
    ("admin deletes a topic", call("sns.amazonaws.com", "DeleteTopic", {"topicArn": TOPIC}), True),
    ("admin unsubscribes", call("sns.amazonaws.com", "Unsubscribe", {"subscriptionArn": f"{TOPIC}:0f1e2d3c"}), True),
    ("admin changes topic attributes", call("sns.amazonaws.com", "SetTopicAttributes", {"topicArn": TOPIC, "attributeName": "Policy"}), True),
    ("admin deletes another topic", call("sns.amazonaws.com", "DeleteTopic", {"topicArn": TOPIC.replace("rootwatch-alerts-critical", "builds")}), False),
    ("admin schedules key deletion by ARN", call("kms.amazonaws.com", "ScheduleKeyDeletion", {"keyId": KEY_ARN}), True),
    ("admin disables the key by id", call("kms.amazonaws.com", "DisableKey", {"keyId": KEY_ID}), True),
    ("admin replaces the key policy by alias", call("kms.amazonaws.com", "PutKeyPolicy", {"keyId": "alias/rootwatch-alerts"}), True),
    ("admin disables another key", call("kms.amazonaws.com", "DisableKey", {"keyId": "0000-other"}), False),
    ("admin deletes a rule", call("events.amazonaws.com", "DeleteRule", {"name": "rootwatch-root-activity"}), True),
    ("admin disables the tamper rule", call("events.amazonaws.com", "DisableRule", {"name": "rootwatch-tamper"}), True),
    ("admin removes targets", call("events.amazonaws.com", "RemoveTargets", {"rule": "rootwatch-root-activity", "ids": ["x"]}), True),
    # Members have no formatter any more: the hub's own tamper rule watches it (hub_branches).
    ("admin deletes the formatter", call("lambda.amazonaws.com", "DeleteFunction20150331", {"functionName": "rootwatch-alert-formatter"}), False),
    ("admin replaces its code by ARN", call("lambda.amazonaws.com", "UpdateFunctionCode20150331v2",
                                            {"functionName": f"arn:aws:lambda:us-east-1:{TAMPER_ACCT}:function:rootwatch-alert-formatter"}), False),
    ("admin writes a rootwatch role's policy", call("iam.amazonaws.com", "PutRolePolicy", {"roleName": "rootwatch-event-forwarder"}), True),
    ("admin rewrites the CIS filter", call("logs.amazonaws.com", "PutMetricFilter", {"filterName": "rootwatch-root-usage"}), True),
    ("admin adds a target to a rule", call("events.amazonaws.com", "PutTargets", {"rule": "rootwatch-root-activity"}), True),
    ("a session named like the deployer", call("cloudtrail.amazonaws.com", "StopLogging", {"name": "rootwatch"}, DEPLOYER + "-x"), True),
    ("admin updates another function", call("lambda.amazonaws.com", "UpdateFunctionCode20150331v2", {"functionName": "builds"}), False),
    ("admin reads the trail", call("cloudtrail.amazonaws.com", "GetTrailStatus", {"name": "rootwatch"}), False),
]


def tamper_names() -> TamperNames:
    return realtime.tamper_names(settings(), KEY_ID)


@pytest.mark.parametrize("what,record,expected", TAMPER_CASES, ids=[c[0] for c in TAMPER_CASES])
def test_tamper_pattern_offline(what: str, record: dict[str, Any], expected: bool) -> None:
    pattern = tamper_pattern(tamper_names(), DEPLOYER)
    assert eventpattern.matches(pattern, detection.wrap_eventbridge(record)) == expected


def test_tamper_pattern_against_moto(aws_env: None) -> None:
    bus = Bus(render(tamper_pattern(tamper_names(), DEPLOYER)), realtime.TAMPER_RULE_STATE)
    assert {w: bus.delivered(r) for w, r, _ in TAMPER_CASES} == {w: e for w, _, e in TAMPER_CASES}


def test_tamper_pattern_covers_every_listed_call_and_the_formatter_knows_them() -> None:
    # Members' resources in the member rule, the hub's own in the hub's tamper rule: together, every listed call.
    branches = [*tamper_pattern(tamper_names(), DEPLOYER)["detail"]["$or"], *realtime.hub_branches(tamper_names(), KEY_ID)]
    named = {n if isinstance(n, str) else n["prefix"] for b in branches for n in b["eventName"]}
    assert named == {n for _, names in TAMPER_CALLS for n in names}
    for _, record, expected in TAMPER_CASES:
        assert is_tamper_call(record) or not expected


def test_tamper_pattern_fits_eventbridges_default_size_even_with_long_names() -> None:
    long = settings(**{"rootwatch:access": {"roleName": "R" * 64, "sessionName": "s" * 64}})
    from rootwatch.program.organization import Account

    prefix = realtime.deployer_caller_prefix(Account("222222222201", "x"), long)
    assert prefix == f"arn:aws:sts::222222222201:assumed-role/{'R' * 64}/{'s' * 64}"
    assert len(render(tamper_pattern(realtime.tamper_names(long, KEY_ID), prefix))) <= MAX_PATTERN_CHARS


def test_tamper_rule_per_account_exempts_only_the_deployer(run: mockrun.Run, view: View) -> None:
    for acct in IN_SCOPE:
        (rule,) = [r for r in view.of(RULE, acct) if r.inputs["name"] == realtime.TAMPER_RULE_NAME]
        assert rule.name == f"rootwatch-{acct}-tamper-rule"
        assert (rule.inputs["region"], rule.inputs["state"]) == ("us-east-1", "ENABLED")
        identity = json.loads(rule.inputs["eventPattern"])["detail"]["userIdentity"]
        if acct == MGMT:  # deployed with default credentials: the example names its deployer
            assert identity == {"type": [{"anything-but": "Root"}],
                                "arn": [{"anything-but": "arn:aws:sts::111111111111:assumed-role/platform-deployer/rootwatch"}]}
        else:  # the exact session ARN, never a prefix
            assert identity["arn"] == [{"anything-but": f"arn:aws:sts::{acct}:assumed-role/OrganizationAccountAccessRole/rootwatch"}]
        assert json.loads(rule.inputs["eventPattern"])["source"] == [{"prefix": "aws."}]
        (target,) = [t for t in view.of(TARGET, acct) if t.name == f"rootwatch-{acct}-tamper-target"]
        assert target.inputs["arn"] == "arn:aws:events:us-east-1:222222222208:event-bus/rootwatch-alerts"
        assert target.inputs["roleArn"] == f"arn:aws:iam::{acct}:role/rootwatch-event-forwarder"


# -- targets, forwarding, formatter -----------------------------------------------------------------
















# -- other configurations -----------------------------------------------------------------------------


WINDOW = {"ticket": "SEC-7", "accounts": ["222222222206"], "approvers": ["alice", "bob"],
          "start": "2024-01-01T10:00:00Z", "end": "2024-01-01T12:00:00Z", "reason": "recover the account", "level": "high"}







