"""The alert hub: under the mock runtime (wiring, policies, providers) and end to end on moto.

moto cannot run a Lambda function (no Docker) and does not deliver EventBridge events to SNS
targets, so the one AWS behaviour these tests stand in for is the Lambda runtime: each hop
that invokes the formatter is an SQS queue here (moto's EventBridge -> SQS works, with real
pattern matching), and the test hands what arrived there to the real formatter handler,
exactly as the Lambda service would. Everything else (bus rule patterns, SNS -> SQS delivery,
the severity topics, the DynamoDB sessions table, redrive to dead-letter queues) is moto's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from corpora import require_realworld_dir
from moto import mock_aws

from rootwatch.core.errors import ConfigError
from rootwatch.core.severity import Severity
from rootwatch.detection import rule as detection
from rootwatch.lambdas import formatter
from rootwatch.program import hub as hubmod
from rootwatch.program import mockrun, realtime, trailsecurity
from rootwatch.program import settings as rw_settings
from rootwatch.program.organization import Account

HUB = "222222222208"
MGMT = "111111111111"
MEMBERS = {MGMT, "222222222201", "222222222202", "222222222203", "222222222204", "222222222205", "222222222206",
           "222222222208", "222222222210"}
SUB = "aws:sns/topicSubscription:TopicSubscription"
ROUTES = {lvl: [{"protocol": "email", "endpoint": "oncall@example.com"}] for lvl in ("low", "medium", "high", "critical")}


@pytest.fixture(scope="module")
def run() -> mockrun.Run:
    return mockrun.run("example")


def under(run: mockrun.Run, typ: str) -> dict[str, str]:
    """urn -> name of every resource under the component of ``typ`` (ancestors followed)."""
    by_urn = {r.urn: r for r in run.resources}
    out = {}
    for r in run.resources:
        node = by_urn.get(r.parent)
        while node is not None and node.type != typ:
            node = by_urn.get(node.parent)
        if node is not None:
            out[r.urn] = node.name
    return out


def provider_account(run: mockrun.Run, r: mockrun.Registered) -> str:
    ref = r.provider.rsplit("::", 1)[0]
    if not ref:
        return MGMT  # the default provider (management credentials)
    (p,) = [p for p in run.by_type("pulumi:providers:aws") if p.urn == ref]
    return json.loads(p.inputs["allowedAccountIds"])[0]


def load(**config: Any) -> rw_settings.RootwatchSettings:
    values = {"rootwatch:routes": ROUTES, **config}
    return rw_settings.load({k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()})


# -- settings -------------------------------------------------------------------------------------


def test_sqs_and_lambda_routes_must_be_in_the_hub_account() -> None:
    routes = {**ROUTES, "high": [{"protocol": "sqs", "endpoint": "arn:aws:sqs:us-east-1:111111111111:siem"}]}
    with pytest.raises(ConfigError, match=r"routes\.high\[0\]: the sqs endpoint is in account 111111111111, not in the "
                                          r"hub account 222222222208 \(rootwatch:hub.accountId\)"):
        load(**{"rootwatch:routes": routes, "rootwatch:hub": {"accountId": HUB}})
    ok = load(**{"rootwatch:routes": {**ROUTES, "high": [{"protocol": "lambda", "endpoint":
              f"arn:aws:lambda:us-east-1:{HUB}:function:siem"}]}, "rootwatch:hub": {"accountId": HUB}})
    assert ok.hub_region == "us-east-1"
    with pytest.raises(ConfigError, match="autoConfirms applies to https endpoints only"):
        load(**{"rootwatch:routes": {**ROUTES, "low": [{"protocol": "email", "endpoint": "a@b.co", "autoConfirms": True}]}})


@pytest.mark.parametrize("hub,message", [
    (None, "rootwatch:hub.accountId: required"),
    ("999999999999", "rootwatch:hub.accountId: account 999999999999 is not in the organization"),
    ("222222222207", "rootwatch:hub.accountId: account 222222222207 is SUSPENDED, not ACTIVE"),
])
def test_a_hub_outside_the_organization_is_refused_in_one_line(hub: str | None, message: str) -> None:
    config = mockrun.load_stack_config("example")
    # E-mail routes only: the example's SQS route belongs to the example's hub.
    values = {**config.values, "rootwatch:routes": json.dumps(ROUTES)}
    if hub is None:
        values.pop("rootwatch:hub")
    else:
        values["rootwatch:hub"] = json.dumps({"accountId": hub})
    r = mockrun.run("example", config=mockrun.StackConfig(values, config.secret_keys, config.path), check=False)
    assert r.error is not None and message in str(r.error) and "\n" not in str(r.error)
    assert not [x for x in r.resources if x.custom and x.type != "pulumi:providers:aws"]


def test_the_explicit_list_hub_must_be_listed() -> None:
    r = mockrun.run("explicit", extra_config={"rootwatch:hub": json.dumps({"accountId": "333333333399"})}, check=False)
    assert r.error is not None and "account 333333333399 is not in accounts.list" in str(r.error)


# -- under the mock runtime -----------------------------------------------------------------------


def test_every_member_target_points_at_the_hub_bus_with_its_forwarding_role(run: mockrun.Run) -> None:
    monitors = under(run, "rootwatch:index:RootActivityMonitor")
    bus = f"arn:aws:events:us-east-1:{HUB}:event-bus/rootwatch-alerts"
    targets = [t for t in run.by_type("aws:cloudwatch/eventTarget:EventTarget") if t.urn in monitors]
    assert {monitors[t.urn].removeprefix("rootwatch-") for t in targets} == MEMBERS
    roles = {r.urn: r for r in run.by_type("aws:iam/role:Role")}
    for t in targets:
        acct = monitors[t.urn].removeprefix("rootwatch-")
        assert t.inputs["arn"] == bus and t.inputs["targetId"] == "rootwatch-hub", t.name
        assert t.inputs["roleArn"] == f"arn:aws:iam::{acct}:role/rootwatch-event-forwarder"
        assert provider_account(run, t) == acct
    # Each member: 4 regional rules plus the tamper rule (home = us-east-1 = the global-events region).
    assert len(targets) == len(MEMBERS) * 5
    for p in run.by_type("aws:iam/rolePolicy:RolePolicy"):
        if p.name.endswith("-forwarder-role-policy") and p.urn in monitors:
            doc = json.loads(p.inputs["policy"])
            assert doc["Statement"] == [{"Sid": "ForwardToHubBus", "Effect": "Allow", "Action": "events:PutEvents",
                                         "Resource": bus}]
    assert not [r for r in roles.values() if r.inputs.get("inlinePolicies")], "deprecated inline_policies"


def test_the_bus_policy_is_organization_scoped(run: mockrun.Run) -> None:
    (policy,) = run.by_type("aws:cloudwatch/eventBusPolicy:EventBusPolicy")
    assert provider_account(run, policy) == HUB
    doc = json.loads(policy.inputs["policy"])
    assert doc["Statement"] == [{
        "Sid": "OrganizationPutsEvents", "Effect": "Allow", "Action": "events:PutEvents", "Principal": "*",
        "Resource": f"arn:aws:events:us-east-1:{HUB}:event-bus/rootwatch-alerts",
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-snapshot"}},
    }]
    # Without the Organizations API (source list), the listed accounts, by name.
    explicit = mockrun.run("explicit")
    (p,) = explicit.by_type("aws:cloudwatch/eventBusPolicy:EventBusPolicy")
    assert json.loads(p.inputs["policy"])["Statement"][0]["Principal"] == {"AWS": [
        "arn:aws:iam::333333333301:root", "arn:aws:iam::333333333302:root", "arn:aws:iam::333333333310:root"]}


def test_the_hub_queue_subscribes_to_each_member_topic_through_the_hub_provider(run: mockrun.Run) -> None:
    hub = under(run, "rootwatch:index:AlertHub")
    intake = [s for s in run.by_type(SUB) if s.urn in hub and "-intake-" in s.name]
    assert {s.name.rsplit("-", 1)[-1] for s in intake} == MEMBERS
    topics = {t.urn: t for t in run.by_type("aws:sns/topicPolicy:TopicPolicy")}
    for s in intake:
        acct = s.name.rsplit("-", 1)[-1]
        assert provider_account(run, s) == HUB, "created by the endpoint's account, so AWS confirms it"
        assert s.inputs["protocol"] == "sqs"
        assert s.inputs["endpoint"] == f"arn:aws:sqs:us-east-1:{HUB}:rootwatch-alarm-intake"
        assert s.inputs["topic"].startswith(f"arn:aws:sns:us-east-1:{acct}:rootwatch-alerts-")
        # The member's topic policy lets exactly the hub's queue subscribe.
        (policy,) = [p for p in topics.values() if p.name == f"rootwatch-{acct}-topic-{s.inputs['topic'].rsplit('-', 1)[-1]}-policy"]
        stmt = next(x for x in json.loads(policy.inputs["policy"])["Statement"] if x["Sid"] == "HubIntakeSubscribes")
        assert stmt["Principal"] == {"AWS": f"arn:aws:iam::{HUB}:root"} and stmt["Action"] == "sns:Subscribe"
        assert stmt["Condition"] == {"StringEquals": {"sns:Protocol": "sqs", "sns:Endpoint": s.inputs["endpoint"]}}


def test_no_member_has_a_human_endpoint_a_lambda_or_a_queue(run: mockrun.Run) -> None:
    monitors = under(run, "rootwatch:index:RootActivityMonitor")
    in_members = [r for r in run.resources if r.urn in monitors]
    assert not [r for r in in_members if r.type == SUB]
    assert not [r for r in in_members if r.type.startswith(("aws:lambda/", "aws:sqs/"))]
    # Every route is a subscription of a hub topic, in the hub account.
    hub = under(run, "rootwatch:index:AlertHub")
    human = [s for s in run.by_type(SUB) if s.urn in hub and "-intake-" not in s.name]
    assert len(human) == 6
    assert all(s.inputs["topic"].startswith(f"arn:aws:sns:us-east-1:{HUB}:rootwatch-hub-") for s in human)
    assert all(provider_account(run, s) == HUB for s in human)
    https = [s for s in human if s.inputs["protocol"] == "https"]
    assert [s.inputs.get("endpointAutoConfirms") for s in https] == [True]


def test_the_plan_shows_the_hub_and_email_routes_pending(capsys: pytest.CaptureFixture[str]) -> None:
    from rootwatch.commands import cli

    assert cli.main(["plan", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    hub = report["hub"]
    assert hub["accountId"] == HUB
    assert hub["routes"] == {"low": {"sqs": 1}, "medium": {"email": 1}, "high": {"email": 1, "sqs": 1},
                             "critical": {"email": 1, "https": 1}}
    assert hub["pendingConfirmation"] == {"low": 0, "medium": 1, "high": 1, "critical": 1}
    # Resources per member account (provider included) with the example's 4 regions: the alert
    # chain dropped from 43 (a formatter, DLQ and subscriptions per account) to at most 30; the
    # CIS-clean trail (issue 12: trail key and alias, access-log bucket with its 5 settings and the
    # trail bucket's logging) adds 9 more, and immutable logs (issue 19: replication into the log
    # archive, its role and policy) 3 more, counted apart.
    assert hub["memberChainResourcesMax"] <= 30
    payments_names = {r["name"] for a in report["accounts"] if a["id"] == "222222222201" for r in a["resources"]}
    hardening = {n.removeprefix("rootwatch-222222222201") for n in payments_names
                 if n.endswith(trailsecurity.HARDENING_SUFFIXES)}
    assert hardening == {"-trail-key", "-trail-key-alias", "-trail-bucket-logging", "-access-log-bucket",
                         *(f"-access-log-bucket-{s}" for s in ("versioning", "public-access", "ownership",
                                                               "encryption", "policy")),
                         "-trail-bucket-replication", "-replication-role", "-replication-role-policy"}
    assert hub["memberResourcesMax"] == hub["memberChainResourcesMax"] + len(hardening)
    # A member's routes are the hub's routes of the levels it can reach (no member subscriptions).
    payments = next(a for a in report["accounts"] if a["id"] == "222222222201")
    assert payments["routes"] == {"critical": {"email": 1, "https": 1}}
    assert not [r for a in report["accounts"] for r in a["resources"] if r["type"] == SUB]


def test_sqs_and_lambda_routes_get_their_resource_policies(run: mockrun.Run) -> None:
    (qp,) = run.by_type("aws:sqs/queuePolicy:QueuePolicy")
    assert qp.inputs["queueUrl"] == f"https://sqs.us-east-1.amazonaws.com/{HUB}/rootwatch-siem-intake"
    stmt = json.loads(qp.inputs["policy"])["Statement"][0]
    assert stmt["Principal"] == {"Service": "sns.amazonaws.com"} and stmt["Action"] == "sqs:SendMessage"
    assert stmt["Condition"]["ArnEquals"]["aws:SourceArn"] == [
        f"arn:aws:sns:us-east-1:{HUB}:rootwatch-hub-high", f"arn:aws:sns:us-east-1:{HUB}:rootwatch-hub-low"]
    r = mockrun.run("example", extra_config={"rootwatch:routes": json.dumps({
        **ROUTES, "critical": [{"protocol": "lambda", "endpoint": f"arn:aws:lambda:us-east-1:{HUB}:function:pager"}]})})
    perms = [p for p in r.by_type("aws:lambda/permission:Permission") if "-route-permission-" in p.name]
    assert [(p.inputs["principal"], p.inputs["sourceArn"], p.inputs["function"]) for p in perms] == [
        ("sns.amazonaws.com", f"arn:aws:sns:us-east-1:{HUB}:rootwatch-hub-critical",
         f"arn:aws:lambda:us-east-1:{HUB}:function:pager")]


def test_failures_page_the_critical_topic_without_the_formatter(run: mockrun.Run) -> None:
    hub = under(run, "rootwatch:index:AlertHub")
    alarms = {a.inputs["name"]: a.inputs for a in run.by_type("aws:cloudwatch/metricAlarm:MetricAlarm") if a.urn in hub}
    critical = f"arn:aws:sns:us-east-1:{HUB}:rootwatch-hub-critical"
    assert set(alarms) == {"rootwatch-hub-events-dlq", "rootwatch-alarm-intake-dlq", "rootwatch-alert-formatter-errors",
                           "rootwatch-alert-formatter-throttles", "rootwatch-hub-failed-invocations",
                           "rootwatch-formatter-heartbeat"}
    beat = alarms.pop("rootwatch-formatter-heartbeat")
    for name, a in alarms.items():
        # The critical topic's subscribers are people: no formatter in between.
        assert a["alarmActions"] == [critical] and a["threshold"] == 1, name
        assert a["comparisonOperator"] == "GreaterThanOrEqualToThreshold" and a["actionsEnabled"] is True
    # The heartbeat pages on silence: fewer than one beat in each of two 5-minute periods, missing data breaching.
    assert (beat["namespace"], beat["metricName"], beat["statistic"], beat["period"]) == (
        "rootwatch", "FormatterHeartbeat", "Sum", 300)
    assert (beat["comparisonOperator"], beat["threshold"], beat["evaluationPeriods"], beat["treatMissingData"]) == (
        "LessThanThreshold", 1, 2, "breaching")
    assert beat["alarmActions"] == [critical] and "dimensions" not in beat
    failed = [q["metric"]["dimensions"]["RuleName"] for q in alarms["rootwatch-hub-failed-invocations"]["metricQueries"]
              if "metric" in q]
    assert failed == ["rootwatch-root-activity", "rootwatch-tamper", "rootwatch-drill", "rootwatch-tamper-direct"]
    assert (alarms["rootwatch-alert-formatter-errors"]["metricName"],
            alarms["rootwatch-alert-formatter-errors"]["dimensions"]) == ("Errors", {"FunctionName": "rootwatch-alert-formatter"})
    assert alarms["rootwatch-alarm-intake-dlq"]["dimensions"] == {"QueueName": "rootwatch-alarm-intake-dlq"}
    # Members: a failed hop to the hub (e.g. a broken forwarding role) raises the delivery alarm,
    # whose action is the member's topic, i.e. the hub's intake queue, not the hop that failed.
    monitors = under(run, "rootwatch:index:RootActivityMonitor")
    for a in run.by_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        if a.urn in monitors and a.inputs["name"] == "rootwatch-event-delivery":
            acct = monitors[a.urn].removeprefix("rootwatch-")
            metrics = [q["metric"] for q in a.inputs["metricQueries"] if "metric" in q]
            assert {(m["metricName"], m["dimensions"]["RuleName"]) for m in metrics} == {
                ("FailedInvocations", "rootwatch-root-activity"), ("FailedInvocations", "rootwatch-tamper")}
            assert a.inputs["alarmActions"][0].startswith(f"arn:aws:sns:us-east-1:{acct}:rootwatch-alerts-")


def test_the_formatter_ships_the_directory_as_a_file_not_in_its_environment(run: mockrun.Run) -> None:
    (fn,) = run.by_type("aws:lambda/function:Function")
    # Its environment holds only the incident ledger's table name, never the directory.
    env = (fn.inputs.get("environment") or {}).get("variables", {})
    assert provider_account(run, fn) == HUB and env == {"ROOTWATCH_INCIDENT_TABLE": "rootwatch-incidents"}
    s = rw_settings.load(run.config.values)
    doc = hubmod.directory(s, [Account("222222222201", "payments-prod", ou_path=("r-ex01", "ou-ex01-prod0001"),
                                       ou_name="production")], HUB, "us-east-1")
    assert doc["accounts"]["222222222201"]["name"] == "payments-prod"
    assert doc["topics"]["critical"] == f"arn:aws:sns:us-east-1:{HUB}:rootwatch-hub-critical"
    # 2,000 accounts fit: the file is not bound by Lambda's 4 KB environment.
    many = [Account(f"{i:012d}", f"account-{i}") for i in range(2000)]
    assert len(hubmod.directory_json(hubmod.directory(s, many, HUB, "us-east-1"))) > 4096
    # Its log group exists before it (else ResourceAlreadyExists when the function ran first).
    (group,) = [g for g in run.by_type("aws:cloudwatch/logGroup:LogGroup") if g.name == "rootwatch-hub-formatter-logs"]
    assert group.urn in fn.dependencies


# -- end to end on moto ---------------------------------------------------------------------------

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        yield


class HubOnMoto:
    """The hub as deployed (names, patterns, directory from the program's own functions), in moto."""

    def __init__(self, accounts: list[Account]) -> None:
        self.sns = boto3.client("sns", REGION)
        self.sqs = boto3.client("sqs", REGION)
        self.events = boto3.client("events", REGION)
        self.acct = boto3.client("sts", REGION).get_caller_identity()["Account"]
        self.settings = load(**{"rootwatch:hub": {"accountId": self.acct}})
        self.directory = formatter.load_directory(hubmod.directory(self.settings, accounts, self.acct, REGION))
        # The hub's severity topics, each with a queue standing for its human subscribers.
        self.routes: dict[Severity, str] = {}
        for lvl in hubmod.hub_levels(self.settings):
            topic = self.sns.create_topic(Name=hubmod.topic_name(lvl))["TopicArn"]
            assert topic == hubmod.topic_arn(self.acct, REGION, lvl)
            url, arn = self.queue(f"people-{lvl.value}")
            self.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
            self.routes[lvl] = url
        # The bus and its rules, with the program's patterns; an SQS queue stands in for the formatter.
        self.events.create_event_bus(Name=hubmod.BUS_NAME)
        self.formatter_url, fn_arn = self.queue("formatter-invocations")
        for name, pattern in ((hubmod.ROOT_RULE, realtime.root_pattern()), (hubmod.OTHER_RULE, hubmod.other_pattern())):
            self.events.put_rule(Name=name, EventBusName=hubmod.BUS_NAME, EventPattern=realtime.render(pattern))
            self.events.put_targets(Rule=name, EventBusName=hubmod.BUS_NAME, Targets=[{"Id": "formatter", "Arn": fn_arn}])
        # The alarm intake queue with its dead-letter queue, as the program configures them.
        dlq_url, dlq_arn = self.queue(hubmod.INTAKE_DLQ_NAME)
        self.intake_url, self.intake_arn = self.queue(hubmod.INTAKE_QUEUE_NAME, RedrivePolicy=json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": hubmod.INTAKE_MAX_RECEIVES}), VisibilityTimeout="0")
        self.dlq_url = dlq_url

    def queue(self, name: str, **attrs: str) -> tuple[str, str]:
        url = self.sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def take(self, url: str) -> list[dict[str, Any]]:
        out = []
        while msgs := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for m in msgs:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                out.append(m)
        return out

    def lambda_runtime(self, sessions: Any = None) -> list[dict[str, Any]]:
        """What the Lambda service does with the bus rules' invocations: run the real handler."""
        return [formatter.handler(json.loads(m["Body"]), client=self.sns, directory=self.directory, sessions=sessions)
                for m in self.take(self.formatter_url)]

    def delivered(self) -> dict[Severity, list[dict[str, Any]]]:
        got = {}
        for lvl, url in self.routes.items():
            msgs = [json.loads(m["Body"]) for m in self.take(url)]
            if msgs:
                got[lvl] = msgs
        return got


PAYMENTS = Account("222222222201", "payments-prod", ou_path=("r-ex01", "ou-ex01-prod0001"), ou_name="production")
SANDBOX = Account("222222222206", "dev-sandbox-alice", ou_path=("r-ex01", "ou-ex01-sand0001"), ou_name="sandbox")


def corpus_case(name: str) -> dict[str, Any]:
    cases = json.loads((Path(__file__).parent / "data" / "cloudtrail_corpus.json").read_text())["cases"]
    return next(c for c in cases if c["name"] == name)["record"]


def test_a_root_event_on_the_hub_bus_reaches_the_right_severity_topic_with_the_account_name(aws: None) -> None:
    hub = HubOnMoto([PAYMENTS, SANDBOX])
    record = {**corpus_case("root-console-login-success-mfa"), "recipientAccountId": PAYMENTS.id}
    e = detection.wrap_eventbridge(record)
    # What a member's rule delivers to the hub bus: the event itself, its account and source unchanged.
    out = hub.events.put_events(Entries=[{"Source": e["source"], "DetailType": e["detail-type"],
                                          "Detail": json.dumps(e["detail"]), "EventBusName": hubmod.BUS_NAME}])
    assert out["FailedEntryCount"] == 0
    [result] = hub.lambda_runtime()
    assert result["kind"] == "root"
    got = hub.delivered()
    # These settings have the default baseline (high) and matrix: a successful sign-in with MFA is high.
    assert list(got) == [Severity.HIGH]
    [envelope] = got[Severity.HIGH]
    assert "payments-prod (222222222201)" in envelope["Subject"]
    doc = json.loads(envelope["Message"])  # an SQS subscriber gets the JSON document (e-mail gets the text)
    assert doc["account"] == {"id": PAYMENTS.id, "name": "payments-prod", "ou": "ou-ex01-prod0001",
                              "ouName": "production", "baseline": "high"}
    assert doc["kind"] == "root" and doc["runbookUrl"] is None


def test_an_alarm_notification_on_a_member_topic_reaches_the_hub_topic_through_the_intake_queue(aws: None) -> None:
    hub = HubOnMoto([PAYMENTS, SANDBOX])
    member_topic = hub.sns.create_topic(Name="rootwatch-alerts-low")["TopicArn"]
    hub.sns.subscribe(TopicArn=member_topic, Protocol="sqs", Endpoint=hub.intake_arn)
    # What CloudWatch publishes when the CIS alarm of dev-sandbox-alice fires.
    alarm = {"AlarmName": "rootwatch-root-activity", "AWSAccountId": SANDBOX.id, "NewStateValue": "ALARM",
             "NewStateReason": "Threshold Crossed: 1 datapoint [1.0] >= 1.0", "StateChangeTime": "2026-11-24T10:01:00Z",
             "Region": "US East (N. Virginia)", "OldStateValue": "OK"}
    hub.sns.publish(TopicArn=member_topic, Message=json.dumps(alarm), Subject="ALARM: rootwatch-root-activity")
    messages = hub.sqs.receive_message(QueueUrl=hub.intake_url, MaxNumberOfMessages=10)["Messages"]
    batch = {"Records": [{"messageId": m["MessageId"], "eventSource": "aws:sqs", "body": m["Body"]} for m in messages]}
    result = formatter.handler(batch, client=hub.sns, directory=hub.directory)
    assert result["batchItemFailures"] == [] and result["results"][0]["kind"] == "alarm"
    got = hub.delivered()
    assert list(got) == [Severity.LOW]  # the member topic's level (dev-sandbox-* baseline low)
    [envelope] = got[Severity.LOW]
    assert "dev-sandbox-alice (222222222206)" in envelope["Subject"]
    doc = json.loads(envelope["Message"])
    assert (doc["kind"], doc["account"]["name"], doc["account"]["ouName"]) == ("alarm", "dev-sandbox-alice", "sandbox")
    assert doc["alarm"]["name"] == "rootwatch-root-activity" and doc["alarm"]["state"] == "ALARM"
    # An alarm returning to OK is not an alert.
    ok = formatter.handler({"Records": [{"messageId": "m2", "eventSource": "aws:sqs", "body": json.dumps(
        {"Type": "Notification", "TopicArn": member_topic, "Message": json.dumps({**alarm, "NewStateValue": "OK"})})}]},
        client=hub.sns, directory=hub.directory)
    assert ok["results"] == [{"kind": "alarm-state", "state": "OK"}] and hub.delivered() == {}


def test_a_broken_formatter_ends_in_the_dead_letter_queue_its_alarm_watches(aws: None) -> None:
    hub = HubOnMoto([SANDBOX])
    hub.sqs.send_message(QueueUrl=hub.intake_url, MessageBody=json.dumps(
        {"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:222222222206:rootwatch-alerts-low",
         "Message": json.dumps({"AlarmName": "rootwatch-root-activity", "AWSAccountId": SANDBOX.id,
                                "NewStateValue": "ALARM"})}))

    class Down:
        def publish(self, **_: Any) -> None:
            raise RuntimeError("SNS unavailable")

    for _ in range(hubmod.INTAKE_MAX_RECEIVES):
        msgs = hub.sqs.receive_message(QueueUrl=hub.intake_url, MaxNumberOfMessages=10).get("Messages", [])
        batch = {"Records": [{"messageId": m["MessageId"], "eventSource": "aws:sqs", "body": m["Body"]} for m in msgs]}
        result = formatter.handler(batch, client=Down(), directory=hub.directory)
        # Reported back, never acknowledged: SQS redelivers it.
        assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [m["MessageId"] for m in msgs]
    hub.sqs.receive_message(QueueUrl=hub.intake_url)  # one more receive moves it past maxReceiveCount
    visible = int(hub.sqs.get_queue_attributes(QueueUrl=hub.dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
                  ["Attributes"]["ApproximateNumberOfMessages"])
    # The hub's DLQ alarm (ApproximateNumberOfMessagesVisible >= 1, see the mock test above) is now in ALARM.
    assert visible >= 1
    # A formatter without its critical topic fails the invocation (Lambda Errors -> the Errors alarm).
    with pytest.raises(formatter.ConfigurationError):
        formatter.handler({"detail": {}}, client=hub.sns, directory=None if False else formatter.load_directory(
            {**hubmod.directory(hub.settings, [SANDBOX], hub.acct, REGION), "topics": {"low": "x"}}))


# -- AssumeRoot: AWS's documented pair -----------------------------------------------------------


def realworld(event_name: str, identity_type: str) -> dict[str, Any]:
    for line in (require_realworld_dir() / "records.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("eventName") == event_name and r.get("userIdentity", {}).get("type") == identity_type:
            return r
    raise LookupError(event_name)


def aws_pair() -> tuple[dict[str, Any], dict[str, Any]]:
    """The caller-side AssumeRoot record and the member-side record of that session (labels.json)."""
    corpus = require_realworld_dir()
    labels = json.loads((corpus / "labels.json").read_text())
    lines = (corpus / "records.jsonl").read_text().splitlines()
    caller = json.loads(lines[next(v["line"] for v in labels.values() if v["eventName"] == "AssumeRoot") - 1])
    key = caller["responseElements"]["credentials"]["accessKeyId"]
    member = next(json.loads(x) for x in lines if json.loads(x).get("userIdentity", {}).get("type") == "Root"
                  and json.loads(x)["userIdentity"].get("accessKeyId") == key)
    return caller, member


def sessions_table() -> formatter.SessionTable:
    db = boto3.client("dynamodb", REGION)
    db.create_table(TableName=hubmod.TABLE_NAME, BillingMode="PAY_PER_REQUEST",
                    AttributeDefinitions=[{"AttributeName": "accessKeyId", "AttributeType": "S"}],
                    KeySchema=[{"AttributeName": "accessKeyId", "KeyType": "HASH"}])
    return formatter.SessionTable(hubmod.TABLE_NAME, db)


def test_a_centralized_root_session_is_labelled_with_its_opener_and_still_alerts(aws: None) -> None:
    caller, member = aws_pair()
    assert caller["userIdentity"]["type"] == "AssumedRole" and member["userIdentity"]["type"] == "Root"
    member_acct = Account(member["recipientAccountId"], "storage-prod", ou_path=("r-ex01", "ou-ex01-prod0001"))
    hub = HubOnMoto([member_acct, Account(caller["recipientAccountId"] if "recipientAccountId" in caller
                                          else caller["userIdentity"]["accountId"], "management")])
    sessions = sessions_table()
    for record in (caller, member):
        e = detection.wrap_eventbridge(record)
        hub.events.put_events(Entries=[{"Source": e["source"], "DetailType": e["detail-type"],
                                        "Detail": json.dumps(e["detail"]), "EventBusName": hubmod.BUS_NAME}])
        # In order, as CloudTrail delivers them: the opener first.
        results = hub.lambda_runtime(sessions)
        assert len(results) == 1
    assert results[0]["kind"] == "root"
    item = boto3.client("dynamodb", REGION).get_item(TableName=hubmod.TABLE_NAME,
                                                    Key={"accessKeyId": {"S": "ASIAIOSFODNN7EXAMPLE"}})["Item"]
    assert int(item["expiresAt"]["N"]) > 0  # the TTL attribute the table's TTL setting names
    [(level, [envelope])] = hub.delivered().items()
    expected = ("centralized root session opened by arn:aws:sts::111111111111:assumed-role/JohnDoe/JohnRole1 "
                "with task arn:aws:iam::aws:policy/root-task/S3UnlockBucketPolicy")
    doc = json.loads(envelope["Message"])
    assert doc["session"] == expected + " (AssumeRoot at 2024-10-25T20:52:11Z, from account 111111111111)"
    assert "storage-prod" in envelope["Subject"] and doc["kind"] == "root"
    assert level == Severity.HIGH  # still an alert at its usual level (baseline high), never suppressed


def test_an_in_session_event_without_a_known_opener_says_so(aws: None) -> None:
    _, member = aws_pair()
    hub = HubOnMoto([Account(member["recipientAccountId"], "storage-prod")])
    sessions = sessions_table()
    result = formatter.handler(detection.wrap_eventbridge(member), client=hub.sns, directory=hub.directory,
                               sessions=sessions)
    assert result["kind"] == "root"
    [(_, [envelope])] = hub.delivered().items()
    doc = json.loads(envelope["Message"])
    assert "no known opener" in doc["session"] and "ASIAIOSFODNN7EXAMPLE" in doc["session"]


# -- message size ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw_cap", [formatter.RAW_EVENT_MAX, 400_000])
def test_a_huge_event_is_cut_to_fit_sns_never_dropped(raw_cap: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # At the default cap the raw event is cut to 60,000 characters; with a larger one the size budget cuts.
    monkeypatch.setattr(formatter, "RAW_EVENT_MAX", raw_cap)
    directory = formatter.load_directory(hubmod.directory(load(), [SANDBOX], HUB, REGION))
    record = {**corpus_case("root-console-login-success-mfa"), "recipientAccountId": SANDBOX.id,
              "requestParameters": {"blob": "x" * 400_000}, "userAgent": "y" * 100_000}
    sent: list[dict[str, Any]] = []

    class Client:
        def publish(self, **kw: Any) -> dict[str, str]:
            sent.append(kw)
            return {"MessageId": "1"}

    # Unreadable source -> the fallback alert carries the raw event: the largest body.
    formatter.handler({**detection.wrap_eventbridge(record), "source": "custom.forged"}, client=Client(),
                      directory=directory)
    [req] = sent
    size = len(req["Message"].encode()) + len(req["Subject"].encode())
    assert size <= 256 * 1024
    bodies = json.loads(req["Message"])
    assert SANDBOX.name in bodies["default"] and json.loads(bodies["sqs"])["kind"] == "untrusted"
    if raw_cap > 200_000:
        assert "cut to fit SNS's 256 KiB" in bodies["default"] and "characters omitted" in bodies["sqs"]
    else:
        assert "...(truncated)" in bodies["default"]


def test_the_hub_keeps_the_incident_ledger_and_its_formatter_records_into_it() -> None:
    """Every alert opens or updates an incident: the table exists in the hub, protected, and the
    formatter is told its name and may write only the per-item actions on it."""
    run = mockrun.run("example")
    (table,) = [r for r in run.by_type("aws:dynamodb/table:Table") if r.inputs["name"] == "rootwatch-incidents"]
    assert table.protect and table.inputs["deletionProtectionEnabled"] is True and "ttl" not in table.inputs
    assert table.parent.endswith("rootwatch:index:AlertHub::rootwatch-hub")
    fn = next(r for r in run.by_type("aws:lambda/function:Function") if r.name == "rootwatch-hub-formatter")
    assert fn.inputs["environment"]["variables"] == {"ROOTWATCH_INCIDENT_TABLE": "rootwatch-incidents"}
    policy = next(r for r in run.by_type("aws:iam/rolePolicy:RolePolicy") if r.name == "rootwatch-hub-formatter-role-policy")
    st = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    assert st["RecordIncidents"] == {"Sid": "RecordIncidents", "Effect": "Allow",
                                     "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"],
                                     "Resource": "arn:aws:dynamodb:us-east-1:222222222208:table/rootwatch-incidents"}


def test_the_offline_runner_groups_by_the_components_real_types() -> None:
    # mockrun keeps its own copies (it must not import program modules before set_mocks).
    from rootwatch.program import monitor

    assert mockrun.HUB_TYPE == hubmod.COMPONENT_TYPE
    assert mockrun.MONITOR_TYPE == monitor.COMPONENT_TYPE
    from rootwatch.program import archive

    assert mockrun.ARCHIVE_TYPE == archive.COMPONENT_TYPE


# -- tamper alerts without the formatter (issue 19) ---------------------------------------------


def test_tamper_rules_also_page_the_critical_topic_directly(run: mockrun.Run) -> None:
    hub = under(run, "rootwatch:index:AlertHub")
    critical = f"arn:aws:sns:us-east-1:{HUB}:rootwatch-hub-critical"
    rules = {r.name: r.inputs for r in run.by_type("aws:cloudwatch/eventRule:EventRule") if r.urn in hub}
    targets = [t.inputs for t in run.by_type("aws:cloudwatch/eventTarget:EventTarget") if t.urn in hub]
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for t in targets:
        by_rule.setdefault(t["rule"], []).append(t)
    # The hub's own tamper rule: the hub bus (hence the formatter) AND the critical topic.
    assert sorted(t["arn"] for t in by_rule["rootwatch-hub-tamper"]) == sorted(
        [critical, f"arn:aws:events:us-east-1:{HUB}:event-bus/rootwatch-alerts"])
    # Members' tamper events on the hub bus: a formatter rule and a direct rule.
    assert [t["targetId"] for t in by_rule["rootwatch-tamper"]] == ["rootwatch-alert-formatter"]
    [direct] = by_rule["rootwatch-tamper-direct"]
    assert direct["arn"] == critical and direct["eventBusName"] == "rootwatch-alerts"
    assert json.loads(rules["rootwatch-hub-rule-direct"]["eventPattern"]) == hubmod.direct_pattern(HUB)
    for t in (direct, next(t for t in by_rule["rootwatch-hub-tamper"] if t["arn"] == critical)):
        assert "roleArn" not in t  # a role on an SNS target breaks KMS-encrypted topics
        assert t["inputTransformer"] == {"inputPaths": hubmod.TAMPER_INPUT_PATHS,
                                         "inputTemplate": hubmod.TAMPER_INPUT_TEMPLATE}
        assert t["deadLetterConfig"]["arn"] == f"arn:aws:sqs:us-east-1:{HUB}:rootwatch-hub-events-dlq"
    # The hub key lets this account's EventBridge rules encrypt to the topic, and nothing else's.
    key = next(json.loads(k.inputs["policy"]) for k in run.by_type("aws:kms/key:Key") if k.urn in hub)
    [grant] = [s for s in key["Statement"] if s.get("Principal") == {"Service": "events.amazonaws.com"}]
    assert grant["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert grant["Condition"] == {"StringEquals": {"aws:SourceAccount": HUB}}
    # The dead-letter queue accepts the direct targets' and the heartbeat's failures.
    dlq = next(json.loads(q.inputs["policy"]) for q in run.by_type("aws:sqs/queue:Queue")
               if q.urn in hub and q.inputs["name"] == "rootwatch-hub-events-dlq")
    sources = dlq["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert {f"arn:aws:events:us-east-1:{HUB}:rule/rootwatch-hub-tamper",
            f"arn:aws:events:us-east-1:{HUB}:rule/rootwatch-alerts/rootwatch-tamper-direct",
            f"arn:aws:events:us-east-1:{HUB}:rule/rootwatch-formatter-heartbeat"} <= set(sources)


def test_the_heartbeat_schedule_invokes_the_formatter_with_its_constant_input(run: mockrun.Run) -> None:
    hub = under(run, "rootwatch:index:AlertHub")
    [rule] = [r.inputs for r in run.by_type("aws:cloudwatch/eventRule:EventRule")
              if r.urn in hub and r.inputs.get("name") == hubmod.HEARTBEAT_RULE]
    assert rule["scheduleExpression"] == "rate(5 minutes)" and rule["state"] == "ENABLED"
    [target] = [t.inputs for t in run.by_type("aws:cloudwatch/eventTarget:EventTarget")
                if t.urn in hub and t.inputs["rule"] == hubmod.HEARTBEAT_RULE]
    assert json.loads(target["input"]) == {"source": formatter.HEARTBEAT_SOURCE}
    [perm] = [p.inputs for p in run.by_type("aws:lambda/permission:Permission")
              if p.urn in hub and p.inputs["sourceArn"].endswith(f":rule/{hubmod.HEARTBEAT_RULE}")]
    assert perm["principal"] == "events.amazonaws.com"


def _directory(hub: str) -> formatter.Directory:
    return formatter.load_directory(hubmod.directory(load(**{"rootwatch:hub": {"accountId": hub}}), [SANDBOX], hub, REGION))


def test_the_real_formatter_answers_a_heartbeat_with_one_metric_line_and_no_alert(capsys: pytest.CaptureFixture[str]) -> None:
    class NoPublish:
        def publish(self, **_: Any) -> None:
            raise AssertionError("a heartbeat is not an alert")

    result = formatter.handler(json.loads(hubmod.heartbeat_input()), client=NoPublish(), directory=_directory(HUB))
    assert result == {"kind": "heartbeat"}
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if "FormatterHeartbeat" in ln]
    doc = json.loads(line)
    [spec] = doc["_aws"]["CloudWatchMetrics"]
    # Exactly what the heartbeat alarm reads: namespace rootwatch, metric FormatterHeartbeat, no dimensions.
    assert (spec["Namespace"], spec["Metrics"], spec["Dimensions"]) == (
        "rootwatch", [{"Name": "FormatterHeartbeat", "Unit": "Count"}], [[]])
    assert doc["FormatterHeartbeat"] == 1
    # A formatter that could not page writes no heartbeat (and fails: the alarm hears silence).
    import dataclasses

    broken = dataclasses.replace(_directory(HUB), topics={Severity.LOW: "x"})  # load_directory refuses this too
    with pytest.raises(formatter.ConfigurationError):
        formatter.handler(json.loads(hubmod.heartbeat_input()), directory=broken)
    assert "FormatterHeartbeat" not in capsys.readouterr().out


@pytest.fixture
def eventbridge_to_sns(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto 5.2 matches rules but drops SNS targets; do what EventBridge does: publish the
    (transformed) input to the topic. A quoted InputTemplate makes the message that plain string."""
    from moto.events import models as ev
    from moto.events.utils import EventTemplateParser
    from moto.sns.models import sns_backends

    original = ev.Rule.send_to_targets

    def send(self: Any, event: Any, transform_input: bool = True) -> None:
        every = self.targets
        self.targets = [t for t in every if t["Arn"].split(":")[2] != "sns"]  # moto raises on SNS targets
        try:
            original(self, event, transform_input)
        finally:
            self.targets = every
        if not self.event_pattern.matches_event(event):
            return
        for target in every:
            arn = target["Arn"]
            if arn.split(":")[2] != "sns":
                continue
            t = target.get("InputTransformer", {})
            body = EventTemplateParser.parse(input_template=t.get("InputTemplate"),
                                             input_paths_map=t.get("InputPathsMap", {}), event=event)
            message = body if isinstance(body, str) else json.dumps(body)
            sns_backends[arn.split(":")[4]][arn.split(":")[3]].publish(message=message, arn=arn)

    monkeypatch.setattr(ev.Rule, "send_to_targets", send)


def test_a_formatter_replaced_by_code_that_does_nothing_still_yields_a_page(aws: None, eventbridge_to_sns: None) -> None:
    """An admin of the hub account replaces the formatter's code with code that does nothing. The hub's
    tamper rule (its pattern and targets as the program declares them) still pages the critical route."""
    hub = HubOnMoto([PAYMENTS, SANDBOX])
    critical = hubmod.topic_arn(hub.acct, REGION, Severity.CRITICAL)
    names = realtime.tamper_names(hub.settings, "-")
    key_id = "0d3c4b1a-0000-4000-8000-000000000001"
    pattern = realtime.tamper_pattern(names, None, realtime.hub_branches(names, key_id))
    hub.events.put_rule(Name=hubmod.HUB_TAMPER_RULE_NAME, EventPattern=realtime.render(pattern))
    transformer = {"InputPathsMap": hubmod.TAMPER_INPUT_PATHS, "InputTemplate": hubmod.TAMPER_INPUT_TEMPLATE}
    hub.events.put_targets(Rule=hubmod.HUB_TAMPER_RULE_NAME, Targets=[
        {"Id": realtime.HUB_TARGET_ID, "Arn": realtime.hub_bus_arn(hub.acct, REGION)},
        {"Id": hubmod.DIRECT_TARGET_ID, "Arn": critical, "InputTransformer": transformer}])
    caller = f"arn:aws:sts::{hub.acct}:assumed-role/Admin/mallory"
    detail = {"eventVersion": "1.09", "eventSource": "lambda.amazonaws.com", "eventName": "UpdateFunctionCode20150331v2",
              "userIdentity": {"type": "AssumedRole", "arn": caller, "accountId": hub.acct},
              "eventTime": "2026-12-03T09:00:00Z", "awsRegion": REGION, "recipientAccountId": hub.acct,
              "requestParameters": {"functionName": "rootwatch-alert-formatter"}}
    # What CloudTrail puts on the hub account's default bus for that call.
    out = hub.events.put_events(Entries=[{"Source": "aws.lambda", "DetailType": realtime.TAMPER_DETAIL_TYPE,
                                          "Detail": json.dumps(detail)}])
    assert out["FailedEntryCount"] == 0
    # The formatter path is tried (the event reaches the hub bus and its formatter rule) and the
    # replaced code does nothing with it: no alert comes from there.
    assert len(hub.take(hub.formatter_url)) == 1
    got = hub.delivered()
    assert set(got) == {Severity.CRITICAL}
    [page] = got[Severity.CRITICAL]
    text = page["Message"]  # plain text: the transformer's quoted template
    assert text.startswith(f"rootwatch CRITICAL: a rootwatch resource was changed in account {hub.acct} ({REGION}): ")
    for part in ("UpdateFunctionCode20150331v2 on lambda.amazonaws.com", f"by {caller}", "not by the alert formatter"):
        assert part in text


def test_the_direct_rule_takes_members_tamper_events_only() -> None:
    """On the hub bus: a member's tamper event goes direct; an AssumeRoot opening, root activity and
    the hub's own events (already direct from its default bus) do not."""
    from rootwatch.detection import eventpattern

    pattern = hubmod.direct_pattern(HUB)
    tamper = {"source": "aws.cloudwatch", "detail-type": realtime.TAMPER_DETAIL_TYPE, "account": PAYMENTS.id,
              "detail": {"eventName": "DeleteAlarms", "userIdentity": {"type": "AssumedRole", "arn": "arn:x"}}}
    assert eventpattern.matches(pattern, tamper)
    assert not eventpattern.matches(pattern, {**tamper, "account": HUB})
    assert not eventpattern.matches(pattern, {**tamper, "source": "aws.sts",
                                              "detail": {**tamper["detail"], "eventName": "AssumeRoot"}})
    assert not eventpattern.matches(pattern, {**tamper, "detail": {**tamper["detail"], "userIdentity": {"type": "Root"}}})
    assert not eventpattern.matches(pattern, {**tamper, "source": "rootwatch.drill"})
