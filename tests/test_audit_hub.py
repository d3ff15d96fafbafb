"""rootwatch audit checks the alert hub: pure verdicts, then the CLI against a hub built on moto.

The moto hub is built from the program's own policy functions (bus policy, hub key policy),
so the audit judges what `pulumi up` would deploy, then each piece is broken in turn.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any, Iterator

import pytest
from awsfixtures import MGMT, REGION, AccountSpec, aws_env, build_account, create_member_accounts, moto_server, \
    run_cli, session_for, write_snapshot

from rootwatch.commands import audit, audit_hub
from rootwatch.core.severity import Severity
from rootwatch.program import hub as hubmod
from rootwatch.program import realtime

HUB = "333333333333"
BUS_ARN = f"arn:aws:events:us-east-1:{HUB}:event-bus/rootwatch-alerts"
FN_ARN = f"arn:aws:lambda:us-east-1:{HUB}:function:{hubmod.FUNCTION_NAME}"
RULES = {hubmod.ROOT_RULE: audit.REALTIME_STATE, hubmod.OTHER_RULE: "ENABLED", hubmod.DRILL_RULE: "ENABLED"}


# ---------------------------------------------------------------- pure verdicts


def good_rules() -> dict[str, Any]:
    return {n: {"rule": {"Name": n, "State": st}, "targets": [{"Id": "f", "Arn": FN_ARN}]} for n, st in RULES.items()}


def test_the_audit_expects_the_rules_the_hub_deploys() -> None:
    # The names and states come from the program: the root rule must also see read-only calls.
    assert audit_hub._names()["rules"] == RULES
    assert RULES[hubmod.ROOT_RULE] == realtime.RULE_STATE


def test_the_bus_must_exist_and_not_be_public() -> None:
    org_only = hubmod.bus_policy(HUB, REGION, "o-abcdefghij", [HUB])
    assert audit_hub.evaluate_bus({"Arn": BUS_ARN, "Policy": json.dumps(org_only)})["ok"]
    assert "not found" in audit_hub.evaluate_bus(None)["reason"]
    assert "no policy" in audit_hub.evaluate_bus({"Arn": BUS_ARN})["reason"]
    public = {"Statement": [{"Sid": "Anyone", "Effect": "Allow", "Principal": "*", "Action": "events:PutEvents",
                             "Resource": BUS_ARN}]}
    v = audit_hub.evaluate_bus({"Arn": BUS_ARN, "Policy": json.dumps(public)})
    assert not v["ok"] and "public (Anyone)" in v["reason"] and "forge alerts" in v["reason"]


def test_each_rule_must_be_enabled_and_target_the_formatter() -> None:
    assert audit_hub.evaluate_rules(good_rules(), RULES, FN_ARN)["ok"]
    rules = good_rules()
    rules[hubmod.ROOT_RULE]["rule"]["State"] = "ENABLED"  # read-only root calls would be missed
    rules[hubmod.DRILL_RULE]["targets"] = [{"Id": "x", "Arn": "arn:aws:sqs:us-east-1:1:elsewhere"}]
    del rules[hubmod.OTHER_RULE]
    reason = audit_hub.evaluate_rules(rules, RULES, FN_ARN)["reason"]
    assert f"rule {hubmod.ROOT_RULE} is ENABLED (needs {audit.REALTIME_STATE})" in reason
    assert f"rule {hubmod.OTHER_RULE} missing" in reason
    assert f"rule {hubmod.DRILL_RULE} does not target the formatter (arn:aws:sqs:us-east-1:1:elsewhere)" in reason


def test_a_missing_or_failed_formatter_fails() -> None:
    assert audit_hub.evaluate_formatter({"FunctionArn": FN_ARN, "State": "Active"})["ok"]
    assert "missing" in audit_hub.evaluate_formatter(None)["reason"]
    failed = audit_hub.evaluate_formatter({"FunctionArn": FN_ARN, "State": "Failed", "StateReason": "bad zip"})
    assert not failed["ok"] and "is Failed: bad zip" in failed["reason"]


def test_the_intake_needs_an_enabled_mapping_to_the_formatter() -> None:
    intake = {"arn": "arn:aws:sqs:us-east-1:333333333333:rootwatch-alarm-intake"}
    live = [{"State": "Enabled", "FunctionArn": FN_ARN}]
    assert audit_hub.evaluate_intake(intake, live, FN_ARN)["ok"]
    assert "missing" in audit_hub.evaluate_intake(None, [], FN_ARN)["reason"]
    off = audit_hub.evaluate_intake(intake, [{"State": "Disabled", "FunctionArn": FN_ARN}], FN_ARN)
    assert not off["ok"] and "mappings: Disabled" in off["reason"] and "pile up unread" in off["reason"]


def test_tamper_alerts_need_a_path_without_the_formatter() -> None:
    critical = hubmod.topic_arn(HUB, REGION, Severity.CRITICAL)
    good = {k: {"rule": {"State": "ENABLED"}, "targets": [{"Arn": FN_ARN}, {"Arn": critical}]}
            for k in ("direct", "hubTamper")}
    beat = {"AlarmName": hubmod.HEARTBEAT_ALARM, "ActionsEnabled": True, "AlarmActions": [critical]}
    assert audit_hub.evaluate_tamper_path(good, beat, critical)["ok"]
    lost = {**good, "hubTamper": {"rule": {"State": "ENABLED"}, "targets": [{"Arn": FN_ARN}]}}
    v = audit_hub.evaluate_tamper_path(lost, None, critical)
    assert not v["ok"] and f"rule {hubmod.HUB_TAMPER_RULE_NAME} does not publish to {critical}" in v["reason"]
    assert f"alarm {hubmod.HEARTBEAT_ALARM} missing" in v["reason"]
    muted = audit_hub.evaluate_tamper_path(good, {**beat, "ActionsEnabled": False}, critical)
    assert not muted["ok"] and "does not page" in muted["reason"]
    # With realtime.tamper off the hub has no tamper rule of its own: only the direct bus rule is required.
    assert audit_hub.evaluate_tamper_path({"direct": good["direct"]}, beat, critical, hub_tamper=False)["ok"]


def test_a_hub_topic_is_judged_like_a_member_topic() -> None:
    pending = {"arn": "t", "attributes": {}, "subscriptions": [{"SubscriptionArn": "PendingConfirmation"}]}
    confirmed = {"arn": "t", "attributes": {}, "subscriptions": [{"SubscriptionArn": "arn:aws:sns:us-east-1:1:t:x"}]}
    v = audit_hub.evaluate_topics({"critical": pending, "high": confirmed}, audit.evaluate_topic)
    assert not v["ok"] and v["reason"].startswith("critical: topic t: no confirmed subscription (1 pending")
    assert "high" not in v["reason"]


def test_a_member_rule_that_does_not_send_to_the_hub_fails() -> None:
    rules = {"us-east-1": {"rule": {"State": audit.REALTIME_STATE}, "targets": [{"Arn": BUS_ARN}]},
             "eu-west-1": {"rule": {"State": audit.REALTIME_STATE}, "targets": [{"Arn": "arn:aws:sns:eu-west-1:1:old"}]}}
    v = audit.evaluate_realtime(rules, BUS_ARN)
    assert not v["ok"] and v["reason"] == f"eu-west-1: rule does not send to the alert hub's bus {BUS_ARN}"
    assert audit.evaluate_realtime({"us-east-1": rules["us-east-1"]}, BUS_ARN)["ok"]
    assert audit.evaluate_realtime(rules)["ok"]  # without a hub, any target will do


# ---------------------------------------------------------------- the CLI on moto


def build_hub(url: str, hub: str, organization_id: str) -> dict[str, Any]:
    """The hub as `pulumi up` makes it: bus + policy, three rules to the formatter, KMS topics, intake."""
    s = session_for(url, hub)

    def c(service: str) -> Any:
        return s.client(service, endpoint_url=url, region_name=REGION)

    role = c("iam").create_role(RoleName=hubmod.FORMATTER_ROLE_NAME, AssumeRolePolicyDocument=json.dumps(
        realtime.formatter_trust_policy(hub)))["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("formatter.py", "def handler(event, context):\n    return None\n")
    lam = c("lambda")
    fn = lam.create_function(FunctionName=hubmod.FUNCTION_NAME, Runtime="python3.12", Role=role,
                             Handler="formatter.handler", Code={"ZipFile": archive.getvalue()})["FunctionArn"]
    ev = c("events")
    ev.create_event_bus(Name=hubmod.BUS_NAME)
    ev.put_permission(EventBusName=hubmod.BUS_NAME,
                      Policy=json.dumps(hubmod.bus_policy(hub, REGION, organization_id, [hub])))
    for name, state in RULES.items():
        ev.put_rule(Name=name, EventBusName=hubmod.BUS_NAME, State=state,
                    EventPattern=json.dumps({"source": ["aws.signin"]}))
        ev.put_targets(Rule=name, EventBusName=hubmod.BUS_NAME, Targets=[{"Id": "formatter", "Arn": fn}])
    kms = c("kms")
    key = kms.create_key(Policy=json.dumps(hubmod.hub_key_policy(hub, REGION)))["KeyMetadata"]
    kms.enable_key_rotation(KeyId=key["KeyId"])
    sns = c("sns")
    topics = {}
    for level in (Severity.HIGH, Severity.CRITICAL):
        topics[level.value] = sns.create_topic(Name=hubmod.topic_name(level),
                                               Attributes={"KmsMasterKeyId": key["Arn"]})["TopicArn"]
        sns.subscribe(TopicArn=topics[level.value], Protocol="email", Endpoint="secops@example.com")
    # The formatter-free tamper path: both direct rules to the critical topic, the heartbeat alarm.
    for rule, bus in ((hubmod.DIRECT_RULE, hubmod.BUS_NAME), (hubmod.HUB_TAMPER_RULE_NAME, "default")):
        ev.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(hubmod.direct_pattern(hub)))
        ev.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": hubmod.DIRECT_TARGET_ID, "Arn": topics["critical"]}])
    c("cloudwatch").put_metric_alarm(
        AlarmName=hubmod.HEARTBEAT_ALARM, Namespace="rootwatch", MetricName="FormatterHeartbeat", Statistic="Sum",
        Period=300, EvaluationPeriods=2, Threshold=1, ComparisonOperator="LessThanThreshold",
        TreatMissingData="breaching", AlarmActions=[topics["critical"]])
    sqs = c("sqs")
    queue = sqs.create_queue(QueueName=hubmod.INTAKE_QUEUE_NAME)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mapping = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=fn)["UUID"]
    return {"client": c, "topics": topics, "mapping": mapping, "function": fn}


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import requests

    tmp = tmp_path_factory.mktemp("hub")
    with pytest.MonkeyPatch.context() as mp, moto_server() as url:
        aws_env(mp, tmp)
        requests.post(f"{url}/moto-api/reset", timeout=10)
        ids = create_member_accounts(url, ["security-tooling", "workload"])
        hub, member = ids["security-tooling"], ids["workload"]
        s = session_for(url, MGMT)
        org_id = s.client("organizations", endpoint_url=url).describe_organization()["Organization"]["Id"]
        # The member's real-time rule sends to the hub's bus, as the program deploys it.
        member_bus = realtime.hub_bus_arn(hub, REGION)
        build_account(url, member, AccountSpec(realtime={REGION: audit.REALTIME_STATE}))
        msess = session_for(url, member)
        msess.client("events", endpoint_url=url, region_name=REGION).put_targets(
            Rule=audit.RULE_NAME, Targets=[{"Id": "hub", "Arn": member_bus}])
        msess.client("events", endpoint_url=url, region_name=REGION).remove_targets(
            Rule=audit.RULE_NAME, Ids=["alerts"])
        built = build_hub(url, hub, org_id)
        snap = write_snapshot(tmp / "org.json", [(MGMT, "management", "ACTIVE"), (hub, "security-tooling", "ACTIVE"),
                                                 (member, "workload", "ACTIVE")])
        stack = tmp / "Pulumi.hubbed.yaml"
        stack.write_text(
            "config:\n"
            f"  rootwatch:hub: {{accountId: '{hub}', region: {REGION}}}\n"
            f"  rootwatch:accounts: {{source: organization, includeAccounts: ['{member}', '{hub}']}}\n"
            "  rootwatch:routes:\n"
            "    high: [{protocol: email, endpoint: secops@example.com}]\n"
            "    critical: [{protocol: email, endpoint: secops@example.com}]\n")
        yield {"url": url, "hub": hub, "member": member, "snapshot": snap, "stack": str(stack), **built}
        requests.post(f"{url}/moto-api/reset", timeout=10)


def audit_json(org: dict[str, Any], capsys: Any, monkeypatch: Any, *extra: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run_cli(["audit", "--org-snapshot", org["snapshot"], "--stack", org["stack"], "--endpoint-url",
                              org["url"], "--realtime", "--regions", REGION, "--format", "json", *extra],
                             capsys, monkeypatch)
    assert not err.strip() or "Traceback" not in err
    return code, json.loads(out)


def test_a_hub_as_deployed_passes_and_members_send_to_it(org: dict[str, Any], capsys: Any, monkeypatch: Any) -> None:
    _, report = audit_json(org, capsys, monkeypatch)
    hub = report["hub"]
    assert (hub["accountId"], hub["region"], hub["error"]) == (org["hub"], REGION, None)
    assert {k: c["ok"] for k, c in hub["checks"].items()} == dict.fromkeys(audit_hub.HUB_CHECKS, True), hub
    assert "2 level topic(s)" in hub["checks"]["topics"]["reason"]
    member = next(a for a in report["accounts"] if a["id"] == org["member"])
    assert member["checks"]["realtime"]["ok"] and realtime.hub_bus_arn(org["hub"], REGION) in \
        member["checks"]["realtime"]["reason"]


def test_a_disabled_intake_mapping_and_an_unsubscribed_level_fail_the_hub(org: dict[str, Any], capsys: Any,
                                                                           monkeypatch: Any) -> None:
    c = org["client"]
    c("lambda").update_event_source_mapping(UUID=org["mapping"], Enabled=False)
    sns = c("sns")
    subs = sns.list_subscriptions_by_topic(TopicArn=org["topics"]["critical"])["Subscriptions"]
    for sub in subs:
        sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    try:
        code, report = audit_json(org, capsys, monkeypatch)
        checks = report["hub"]["checks"]
        assert code == 1 and report["hub"]["compliant"] is False
        assert not checks["intake"]["ok"] and "pile up unread" in checks["intake"]["reason"]
        assert not checks["topics"]["ok"] and checks["topics"]["reason"].startswith("critical: ")
        assert checks["bus"]["ok"] and checks["rules"]["ok"] and checks["formatter"]["ok"]
        code, out, _ = run_cli(["audit", "--org-snapshot", org["snapshot"], "--stack", org["stack"],
                                "--endpoint-url", org["url"]], capsys, monkeypatch)
        assert f"Alert hub {org['hub']} ({REGION}): FAIL" in out and "    intake: FAIL: " in out
        code, report = audit_json(org, capsys, monkeypatch, "--no-hub")
        assert report["hub"] is None
    finally:
        c("lambda").update_event_source_mapping(UUID=org["mapping"], Enabled=True)
        for sub in subs:
            sns.subscribe(TopicArn=org["topics"]["critical"], Protocol="email", Endpoint=sub["Endpoint"])


def test_a_rule_that_lost_its_target_fails(org: dict[str, Any], capsys: Any, monkeypatch: Any) -> None:
    c = org["client"]
    c("events").remove_targets(Rule=hubmod.DRILL_RULE, EventBusName=hubmod.BUS_NAME, Ids=["formatter"])
    try:
        _, report = audit_json(org, capsys, monkeypatch)
        checks = report["hub"]["checks"]
        assert not checks["rules"]["ok"] and checks["rules"]["reason"] == \
            f"rule {hubmod.DRILL_RULE} does not target the formatter (no targets)"
    finally:
        c("events").put_targets(Rule=hubmod.DRILL_RULE, EventBusName=hubmod.BUS_NAME,
                                Targets=[{"Id": "formatter", "Arn": org["function"]}])


def test_a_hub_without_its_heartbeat_alarm_fails(org: dict[str, Any], capsys: Any, monkeypatch: Any) -> None:
    cw = org["client"]("cloudwatch")
    [alarm] = cw.describe_alarms(AlarmNames=[hubmod.HEARTBEAT_ALARM])["MetricAlarms"]
    cw.delete_alarms(AlarmNames=[hubmod.HEARTBEAT_ALARM])
    try:
        code, report = audit_json(org, capsys, monkeypatch)
        check = report["hub"]["checks"]["tamperPath"]
        assert code == 1 and not check["ok"] and "a silent formatter would go unnoticed" in check["reason"]
    finally:
        cw.put_metric_alarm(**{k: alarm[k] for k in ("AlarmName", "Namespace", "MetricName", "Statistic", "Period",
                                                     "EvaluationPeriods", "Threshold", "ComparisonOperator",
                                                     "TreatMissingData", "AlarmActions")})


def test_a_hub_that_is_not_there_fails_with_one_line_reasons(org: dict[str, Any], capsys: Any, monkeypatch: Any,
                                                              tmp_path: Any) -> None:
    # A stack whose hub account has nothing deployed (a typo'd accountId, or never deployed).
    other = tmp_path / "Pulumi.elsewhere.yaml"
    other.write_text(open(org["stack"]).read().replace(org["hub"], org["member"]))
    code, out, err = run_cli(["audit", "--stack", str(other), "--accounts", org["member"], "--endpoint-url",
                              org["url"], "--format", "json"], capsys, monkeypatch)
    hub = json.loads(out)["hub"]
    assert code == 1 and hub["accountId"] == org["member"] and hub["error"] is None
    assert {k: c["ok"] for k, c in hub["checks"].items()} == dict.fromkeys(audit_hub.HUB_CHECKS, False)
    assert "event bus rootwatch-alerts not found" in hub["checks"]["bus"]["reason"]
    assert "the formatter function is missing" in hub["checks"]["formatter"]["reason"]
    assert "topic not found" in hub["checks"]["topics"]["reason"]
    assert all("\n" not in c["reason"] for c in hub["checks"].values())
    assert "Traceback" not in err
