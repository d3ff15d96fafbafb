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
    ENV_BREAK_GLASS,
    ENV_SEVERITY,
    ENV_TOPICS,
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
            assert json.loads(rule.inputs["eventPattern"]) == realtime.root_pattern()
            # A child of the monitor, through the account's own provider (none for management).
            assert rule.parent == monitors[acct]
            ref = rule.provider.rsplit("::", 1)[0]
            assert (ref == "") if acct == MGMT else (providers[ref] == acct)


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
    assert {c["name"]: bus.delivered(c["record"]) for c in CORPUS} == {c["name"]: c["expect"]["detected"] for c in CORPUS}


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
    ("admin deletes the formatter", call("lambda.amazonaws.com", "DeleteFunction20150331", {"functionName": "rootwatch-alert-formatter"}), True),
    ("admin replaces its code by ARN", call("lambda.amazonaws.com", "UpdateFunctionCode20150331v2",
                                            {"functionName": f"arn:aws:lambda:us-east-1:{TAMPER_ACCT}:function:rootwatch-alert-formatter"}), True),
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
    branches = tamper_pattern(tamper_names(), DEPLOYER)["detail"]["$or"]
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
                                "arn": [{"anything-but": {"prefix": "arn:aws:sts::111111111111:assumed-role/platform-deployer/"}}]}
        else:
            assert identity["arn"] == [{"anything-but": {"prefix": f"arn:aws:sts::{acct}:assumed-role/OrganizationAccountAccessRole/rootwatch"}}]
        (target,) = [t for t in view.of(TARGET, acct) if t.name == f"rootwatch-{acct}-tamper-target"]
        assert target.inputs["arn"] == f"arn:aws:lambda:us-east-1:{acct}:function:rootwatch-alert-formatter"
        assert target.inputs["deadLetterConfig"] == {"arn": f"arn:aws:sqs:us-east-1:{acct}:rootwatch-realtime-dlq"}


# -- targets, forwarding, formatter -----------------------------------------------------------------


def test_home_target_is_the_formatter_and_others_forward_to_the_home_bus(view: View) -> None:
    for acct in IN_SCOPE:
        targets = {t.inputs["region"]: t for t in view.of(TARGET, acct) if "-target-" in t.name}
        assert sorted(targets) == sorted(EXAMPLE_REGIONS)
        home = targets["us-east-1"].inputs
        assert home["arn"] == f"arn:aws:lambda:us-east-1:{acct}:function:rootwatch-alert-formatter"
        assert home["rule"] == "rootwatch-root-activity" and "roleArn" not in home
        assert home["deadLetterConfig"] == {"arn": f"arn:aws:sqs:us-east-1:{acct}:rootwatch-realtime-dlq"}
        assert home["retryPolicy"] == {"maximumEventAgeInSeconds": 86400, "maximumRetryAttempts": 185}
        for region in EXAMPLE_REGIONS[1:]:
            t = targets[region].inputs
            assert t["arn"] == f"arn:aws:events:us-east-1:{acct}:event-bus/default"
            assert t["roleArn"] == f"arn:aws:iam::{acct}:role/rootwatch-event-forwarder"
            assert t["rule"] == "rootwatch-root-activity" and t["retryPolicy"]["maximumRetryAttempts"] == 185


def test_forwarding_role_may_only_put_events_on_the_home_bus(view: View) -> None:
    for acct in IN_SCOPE:
        role = view.named(f"rootwatch-{acct}-forwarder-role").inputs
        assert role["name"] == "rootwatch-event-forwarder"
        (trust,) = json.loads(role["assumeRolePolicy"])["Statement"]
        assert trust["Principal"] == {"Service": "events.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
        assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": acct}}
        (inline,) = role["inlinePolicies"]
        (st,) = json.loads(inline["policy"])["Statement"]
        assert (st["Effect"], st["Action"], st["Resource"]) == (
            "Allow", "events:PutEvents", f"arn:aws:events:us-east-1:{acct}:event-bus/default")


def test_formatter_ships_the_package_code_itself(view: View) -> None:
    modules = realtime.lambda_modules()
    # Exactly the formatter and what it imports: no program code (pulumi), no CLI.
    assert sorted(modules) == [
        "rootwatch/__init__.py",
        "rootwatch/core/__init__.py", "rootwatch/core/arns.py", "rootwatch/core/severity.py",
        "rootwatch/detection/__init__.py", "rootwatch/detection/filterpattern.py", "rootwatch/detection/rule.py",
        "rootwatch/lambdas/__init__.py", "rootwatch/lambdas/formatter.py",
    ]
    for acct in IN_SCOPE:
        fn = view.named(f"rootwatch-{acct}-formatter").inputs
        assert (fn["name"], fn["runtime"], fn["handler"], fn["region"]) == (
            "rootwatch-alert-formatter", "python3.12", "rootwatch.lambdas.formatter.handler", "us-east-1")
        assets = fn["code"].assets
        assert set(assets) == set(modules)
        # The same files the tests import, not copies.
        assert {arc: a.path for arc, a in assets.items()} == {arc: str(p) for arc, p in modules.items()}
        assert fn["role"] == f"arn:aws:iam::{acct}:role/rootwatch-alert-formatter"


def test_formatter_permissions_destinations_and_dead_letter_queue(view: View) -> None:
    for acct in IN_SCOPE:
        role = view.named(f"rootwatch-{acct}-formatter-role").inputs
        (trust,) = json.loads(role["assumeRolePolicy"])["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
        doc = json.loads(role["inlinePolicies"][0]["policy"])
        st = {s["Sid"]: s for s in doc["Statement"]}
        topics = sorted(topic_arns(view, acct))
        assert sorted(st["PublishToRoutes"]["Resource"]) == topics and st["PublishToRoutes"]["Action"] == "sns:Publish"
        (key,) = view.of("aws:kms/key:Key", acct)
        assert st["UseAlertKey"]["Resource"] == f"arn:aws:kms:us-east-1:{acct}:key/mock-key-{key.name}"

        perms = view.of("aws:lambda/permission:Permission", acct)
        assert sorted(p.inputs["sourceArn"] for p in perms) == [
            f"arn:aws:events:us-east-1:{acct}:rule/rootwatch-root-activity", f"arn:aws:events:us-east-1:{acct}:rule/rootwatch-tamper"]
        assert all((p.inputs["principal"], p.inputs["action"], p.inputs["function"]) ==
                   ("events.amazonaws.com", "lambda:InvokeFunction", "rootwatch-alert-formatter") for p in perms)

        (cfg,) = view.of("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig", acct)
        assert cfg.inputs["destinationConfig"] == {"onFailure": {"destination": f"arn:aws:sns:us-east-1:{acct}:rootwatch-alerts-critical"}}
        assert cfg.inputs["maximumRetryAttempts"] == 2

        (queue,) = view.of("aws:sqs/queue:Queue", acct)
        q = queue.inputs
        assert (q["name"], q["sqsManagedSseEnabled"], q["messageRetentionSeconds"]) == ("rootwatch-realtime-dlq", True, 1209600)
        allow = next(s for s in json.loads(q["policy"])["Statement"] if s["Sid"] == "EventBridgeDeadLetters")
        assert allow["Principal"] == {"Service": "events.amazonaws.com"} and allow["Action"] == "sqs:SendMessage"
        assert allow["Condition"]["ArnEquals"]["aws:SourceArn"] == [
            f"arn:aws:events:us-east-1:{acct}:rule/rootwatch-root-activity", f"arn:aws:events:us-east-1:{acct}:rule/rootwatch-tamper"]


def test_every_level_the_formatter_can_use_has_a_subscriber(view: View) -> None:
    for acct in IN_SCOPE:
        env = env_of(view, acct)
        topics = json.loads(env[ENV_TOPICS])
        usable = set(json.loads(env[ENV_SEVERITY]).values()) | {"critical"}
        assert usable <= set(topics), acct
        subscribed = {s.inputs["topic"] for s in view.of("aws:sns/topicSubscription:TopicSubscription", acct)}
        assert {topics[lvl] for lvl in usable} <= subscribed, acct
        assert set(topics.values()) == topic_arns(view, acct)


def test_the_formatter_environment_holds_no_endpoint_or_secret(run: mockrun.Run, view: View) -> None:
    for acct in IN_SCOPE:
        text = json.dumps(env_of(view, acct))
        for leaked in ("[secret]", "v1:cGFnZXJkdXR5", "security-oncall@example.com", "security-team@example.com",
                       "rootwatch-siem-intake", "https://events.pagerduty"):
            assert leaked not in text
        assert sum(len(k) + len(v) for k, v in env_of(view, acct).items()) < 4096


def test_resources_per_account_are_minimal_per_region(view: View) -> None:
    per_region = 2 * len(EXAMPLE_REGIONS)
    for acct in IN_SCOPE:
        mine = [r for r in view.run.resources if r.custom and view.account(r) == acct and r.type != "pulumi:providers:aws"
                and (r.type.startswith(("aws:cloudwatch/event", "aws:lambda/", "aws:sqs/")) or r.name.endswith("forwarder-role")
                     or r.name.endswith("formatter-role"))]
        assert len(mine) == per_region + 9, [r.name for r in mine]
        regional = [r for r in mine if r.inputs.get("region") not in (None, "us-east-1")]
        assert sorted(r.type for r in regional) == sorted([RULE, TARGET] * (len(EXAMPLE_REGIONS) - 1))


# -- other configurations -----------------------------------------------------------------------------


WINDOW = {"ticket": "SEC-7", "accounts": ["222222222206"], "approvers": ["alice", "bob"],
          "start": "2024-01-01T10:00:00Z", "end": "2024-01-01T12:00:00Z", "reason": "recover the account", "level": "high"}


def test_expired_windows_warn_at_plan_time_and_reach_only_their_account() -> None:
    r = mockrun.run("example", extra_config={"rootwatch:breakGlass": json.dumps({"windows": [WINDOW]})})
    assert [w for w in r.warnings if "break-glass window" in w] == [
        "break-glass window SEC-7 for account 222222222206 ended 2024-01-01T12:00:00Z: remove it from rootwatch:breakGlass.windows"]
    v = View(r)
    assert [w["ticket"] for w in json.loads(env_of(v, "222222222206")[ENV_BREAK_GLASS])] == ["SEC-7"]
    assert json.loads(env_of(v, "222222222210")[ENV_BREAK_GLASS]) == []


def test_management_account_without_a_deployer_arn_warns(run: mockrun.Run) -> None:
    assert not any("managementDeployerArn" in w for w in run.warnings)  # the example sets it
    unset = mockrun.run("example", extra_config={"rootwatch:realtime": json.dumps({"regions": EXAMPLE_REGIONS})})
    assert any("realtime.managementDeployerArn is not set" in w for w in unset.warnings)
    configured = f"arn:aws:sts::{MGMT}:assumed-role/ci-deployer/"
    r = mockrun.run("example", extra_config={"rootwatch:realtime": json.dumps(
        {"regions": EXAMPLE_REGIONS, "managementDeployerArn": configured})})
    assert not any("managementDeployerArn" in w for w in r.warnings)
    rule = View(r).named(f"rootwatch-{MGMT}-tamper-rule")
    assert json.loads(rule.inputs["eventPattern"])["detail"]["userIdentity"]["arn"] == [{"anything-but": {"prefix": configured}}]


def test_another_home_region_forwards_there_and_keeps_us_east_1() -> None:
    r = mockrun.run("example", extra_config={"rootwatch:homeRegion": "eu-west-1", "rootwatch:realtime": json.dumps({"regions": ["eu-west-1"]})})
    v = View(r)
    acct = "222222222203"
    rules = [x.inputs["region"] for x in v.of(RULE, acct) if x.inputs["name"] == realtime.RULE_NAME]
    assert sorted(rules) == ["eu-west-1", "us-east-1"]  # registration order may vary
    forward = v.named(f"rootwatch-{acct}-target-us-east-1").inputs
    assert forward["arn"] == f"arn:aws:events:eu-west-1:{acct}:event-bus/default" and forward["region"] == "us-east-1"
    assert v.named(f"rootwatch-{acct}-formatter").inputs["region"] == "eu-west-1"


def test_realtime_can_be_switched_off(view: View) -> None:
    r = mockrun.run("example", extra_config={"rootwatch:realtime": json.dumps({"enabled": False})})
    assert not r.by_type(RULE) and not r.by_type("aws:lambda/function:Function")
    assert r.by_type("aws:cloudwatch/metricAlarm:MetricAlarm")  # the alarm path stays
