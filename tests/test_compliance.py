"""rootwatch.compliance: per-account verdicts, and the program's `compliance` output.

The example stack runs under mocks (mockrun.run calls set_mocks first, so the
Output that builds the `compliance` export does resolve). Weakened variants are
the example's registered resources with one property changed: the evaluator
sees what the engine would.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from rootwatch import compliance
from rootwatch.compliance import PolicyInput, Requirements, policy
from rootwatch.program import mockrun, outputs
from rootwatch.program import settings as rw_settings

MGMT = "111111111111"
MEMBER = "222222222201"
IN_SCOPE = {MGMT, MEMBER, "222222222202", "222222222203", "222222222204", "222222222205", "222222222206", "222222222208", "222222222210"}


@pytest.fixture(scope="module")
def example() -> mockrun.Run:
    return mockrun.run("example")


@pytest.fixture(scope="module")
def resources(example: mockrun.Run) -> list[PolicyInput]:
    return policy.from_registered(example.resources)


def changed(
    resources: list[PolicyInput], typ: str, account: str, edit: Callable[[dict[str, Any]], None], name_has: str = ""
) -> list[PolicyInput]:
    """The resources with one resource (of ``typ`` in ``account``'s monitor) edited."""
    out, done = [], False
    for r in resources:
        if not done and r.type == typ and f"rootwatch-{account}-" in r.name and name_has in r.name:
            props = json.loads(json.dumps(compliance.normalize(dict(r.props))))
            edit(props)
            r = dataclasses.replace(r, props=props)
            done = True
        out.append(r)
    assert done, (typ, account, name_has)
    return out


def without(resources: list[PolicyInput], typ: str, account: str) -> list[PolicyInput]:
    return [r for r in resources if not (r.type == typ and f"rootwatch-{account}-" in r.name)]


def verdict(resources: list[PolicyInput], account: str = MEMBER, req: Requirements = Requirements()) -> compliance.AccountVerdict:
    return compliance.evaluate(resources, req)[account]


def only_failure(v: compliance.AccountVerdict) -> compliance.CheckResult:
    failed = v.failures()
    assert [c.check for c in failed] == [failed[0].check], [c.reason for c in failed]
    return failed[0]


# --- the program's output ------------------------------------------------------------------


def test_example_stack_is_100_percent_compliant(example: mockrun.Run) -> None:
    doc = example.outputs["compliance"]
    assert doc["schema"] == "rootwatch.compliance/v1"
    assert set(doc["accounts"]) == IN_SCOPE
    kpis = doc["kpis"]
    assert kpis["accountsInScope"] == 9 and kpis["accountsCompliant"] == 9 and kpis["accountsPending"] == 0
    assert kpis["policyComplianceScore"] == 100.0
    assert {s["id"]: s["reason"] for s in kpis["skippedAccounts"]} == {
        "222222222207": "account is SUSPENDED",
        "222222222209": "account is CLOSED",
    }
    for acct in doc["accounts"].values():
        assert acct["compliant"] is True and acct["status"] == "compliant"
        assert list(acct["checks"]) == list(compliance.CHECKS)
        for check in acct["checks"].values():
            assert check["ok"] and check["status"] in ("pass", "skipped") and check["reason"]


def test_each_check_names_the_resource_it_rests_on(example: mockrun.Run) -> None:
    checks = example.outputs["compliance"]["accounts"][MEMBER]["checks"]
    assert checks["trail"]["resource"].endswith(f"::rootwatch-{MEMBER}-trail")
    assert checks["metricFilter"]["resource"].endswith(f"::rootwatch-{MEMBER}-metric-filter")
    assert checks["alarm"]["resource"].endswith(f"::rootwatch-{MEMBER}-alarm")
    # payments-prod is critical: the alarm publishes to the critical topic.
    assert checks["topic"]["resource"].endswith(f"::rootwatch-{MEMBER}-topic-critical")
    assert "'/rootwatch/cloudtrail'" in checks["metricFilter"]["reason"]


def test_realtime_check_covers_every_configured_region(example: mockrun.Run) -> None:
    # The realtime module is part of the program: check 5 is wired to regions_for(settings).
    realtime = example.outputs["compliance"]["accounts"][MEMBER]["checks"]["realtime"]
    assert realtime["status"] == "pass"
    for region in ("us-east-1", "us-east-2", "us-west-2", "eu-west-1"):
        assert region in realtime["reason"]


def test_severity_and_routes_are_protocol_counts_only(example: mockrun.Run) -> None:
    doc = example.outputs["compliance"]
    payments = doc["accounts"][MEMBER]
    assert payments["severity"] == "critical" and payments["name"] == "payments-prod"
    assert payments["routes"] == {"critical": {"email": 1, "https": 1}}
    assert doc["accounts"]["222222222206"]["routes"]["low"] == {"sqs": 1}
    text = json.dumps(doc)
    for endpoint in ("security-oncall@example.com", "rootwatch-siem-intake", "[secret]", "pagerduty"):
        assert endpoint not in text


def test_output_and_policy_pack_see_the_same_verdicts(example: mockrun.Run, resources: list[PolicyInput]) -> None:
    # The output is computed in-program from recorded props; the pack gets the engine's registrations.
    req = outputs.requirements_for(rw_settings.load(example.config.values))
    assert req.required_regions  # the example enables real-time alerting
    offline = compliance.evaluate(resources, req)
    for acct_id, doc in example.outputs["compliance"]["accounts"].items():
        assert {k: (c["status"], c["reason"]) for k, c in doc["checks"].items()} == {
            k: (c.status, c.reason) for k, c in offline[acct_id].checks.items()
        }


def test_recorded_view_is_what_the_engine_receives(tmp_path: Path) -> None:
    # Nested args, a name-colliding args class (BucketVersioningInitArgs), JSON-encoded
    # provider inputs and a secret: recorded props equal the mock monitor's registrations.
    program = tmp_path / "program.py"
    program.write_text(
        "import pulumi, pulumi_aws as aws\n"
        "from rootwatch.program import outputs\n"
        "rec = outputs.record_resources(types=None)\n"
        "p = aws.Provider('acct', region='eu-west-1', allowed_account_ids=['123456789012'])\n"
        "b = aws.s3.Bucket('b', bucket='bkt', opts=pulumi.ResourceOptions(provider=p))\n"
        "aws.s3.BucketVersioning('v', bucket=b.id, versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status='Enabled'), opts=pulumi.ResourceOptions(provider=p))\n"
        "aws.cloudtrail.Trail('t', s3_bucket_name=b.id, is_multi_region_trail=True, event_selectors=[aws.cloudtrail.TrailEventSelectorArgs(read_write_type='All')])\n"
        "aws.sns.TopicSubscription('s', topic='arn:aws:sns:us-east-1:123456789012:x', protocol='email', endpoint=pulumi.Output.secret('a@example.com'))\n"
        "pulumi.export('views', rec.views().apply(lambda vs: [dict(type=v.type, urn=v.urn, props=v.props, provider=v.provider) for v in vs]))\n"
    )
    run = mockrun.run("example", program=program)
    views = {v["urn"]: v for v in run.outputs["views"]}
    assert len(views) == len(run.resources) == 5
    for r in run.resources:
        seen = views[r.urn]
        assert seen["type"] == r.type
        assert compliance.normalize(seen["props"]) == compliance.normalize(r.inputs), r.type
        assert seen["provider"] == compliance.provider_urn(r.provider)
    versioning = next(v for v in views.values() if v["type"].endswith("BucketVersioning"))
    assert versioning["props"]["versioningConfiguration"] == {"status": "Enabled"}


def test_a_weakened_stack_shows_in_the_output() -> None:
    trail = {"mode": "managed", "retentionDays": 90, "lifecycle": {"glacierAfterDays": 90, "expireAfterDays": 2557}}
    run = mockrun.run("example", extra_config={"rootwatch:trail": json.dumps(trail)})
    doc = run.outputs["compliance"]
    assert doc["kpis"]["policyComplianceScore"] == 0.0 and doc["kpis"]["accountsCompliant"] == 0
    check = doc["accounts"][MEMBER]["checks"]["trail"]
    assert check["status"] == "fail" and not check["ok"]
    assert "keeps events 90 days; at least 365 are required" in check["reason"]


def test_unknown_values_in_a_first_preview_resolve_through_dependencies(monkeypatch: pytest.MonkeyPatch) -> None:
    class FirstPreview(mockrun.SnapshotMocks):
        """Computed outputs (ARNs, key ids) stay unknown, as before the first deploy."""

        def new_resource(self, args: Any) -> tuple[str | None, dict[str, Any]]:
            rid, state = super().new_resource(args)
            if args.typ != "pulumi:providers:aws":
                state = {k: v for k, v in state.items() if k not in ("arn", "keyId")}
            return rid, state

    monkeypatch.setattr(mockrun, "SnapshotMocks", FirstPreview)
    # The `accounts` output holds ARNs (unknown here), which would hold back every export.
    monkeypatch.setattr(outputs, "export", lambda *a, **k: None)
    run = mockrun.run("example")
    trail = next(r for r in run.by_type(compliance.TRAIL_TYPE) if MEMBER in r.name)
    assert compliance.is_unknown(compliance.normalize(trail.inputs["cloudWatchLogsGroupArn"]))
    doc = run.outputs["compliance"]
    assert doc["kpis"]["policyComplianceScore"] == 100.0, json.dumps(doc["accounts"][MEMBER], indent=1)


def test_explicit_stack_checks_the_declared_log_group() -> None:
    doc = mockrun.run("explicit").outputs["compliance"]
    assert doc["kpis"]["policyComplianceScore"] == 100.0
    checks = doc["accounts"]["333333333301"]["checks"]
    assert checks["trail"]["status"] == "unverified" and checks["trail"]["ok"] and "'/org/cloudtrail/account-trail'" in checks["trail"]["reason"]
    assert "'/org/cloudtrail/account-trail'" in checks["metricFilter"]["reason"]


# --- weakened variants ---------------------------------------------------------------------


def test_single_region_trail_fails_the_trail_check(resources: list[PolicyInput]) -> None:
    v = verdict(changed(resources, compliance.TRAIL_TYPE, MEMBER, lambda p: p.update(isMultiRegionTrail=False)))
    c = only_failure(v)
    assert c.check == "trail" and "single-region" in c.reason and "set isMultiRegionTrail: true" in c.reason
    assert c.urn.endswith(f"::rootwatch-{MEMBER}-trail")
    # Other accounts are untouched.
    assert verdict(changed(resources, compliance.TRAIL_TYPE, MEMBER, lambda p: p.update(isMultiRegionTrail=False)), MGMT).compliant


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda p: p["eventSelectors"][0].update(readWriteType="ReadOnly"), "log only ReadOnly management events"),
        (lambda p: p["eventSelectors"][0].update(readWriteType="WriteOnly"), "set readWriteType: All"),
        (lambda p: p["eventSelectors"][0].update(includeManagementEvents=False), "exclude management events"),
        (lambda p: p["eventSelectors"][0].update(excludeManagementEventSources=["kms.amazonaws.com"]),
         "management events from kms.amazonaws.com are excluded"),
        (lambda p: (p.pop("eventSelectors"), p.update(advancedEventSelectors=[{"fieldSelectors": [
            {"field": "eventCategory", "equals": ["Management"]}, {"field": "readOnly", "equals": ["true"]}]}])),
         "only read-only management events"),
        (lambda p: p.update(enableLogFileValidation=False), "log file validation is off"),
        (lambda p: p.update(enableLogging=False), "logging is stopped"),
        (lambda p: p.pop("cloudWatchLogsGroupArn"), "does not deliver to CloudWatch Logs"),
    ],
)
def test_trail_weaknesses_have_actionable_reasons(resources: list[PolicyInput], edit: Callable, expected: str) -> None:
    c = verdict(changed(resources, compliance.TRAIL_TYPE, MEMBER, edit)).checks["trail"]
    assert c.status == "fail" and expected in c.reason


def test_selectors_split_into_read_and_write_pass(resources: list[PolicyInput]) -> None:
    def split(p: dict[str, Any]) -> None:
        p["eventSelectors"] = [{"readWriteType": "ReadOnly"}, {"readWriteType": "WriteOnly"}]

    assert verdict(changed(resources, compliance.TRAIL_TYPE, MEMBER, split)).compliant


def test_short_log_retention_fails(resources: list[PolicyInput]) -> None:
    rs = changed(resources, compliance.LOG_GROUP_TYPE, MEMBER, lambda p: p.update(retentionInDays=90), f"{MEMBER}-log-group")
    assert "keeps events 90 days; at least 365" in only_failure(verdict(rs)).reason
    assert verdict(rs, req=Requirements(min_retention_days=30)).compliant


def test_edited_pattern_fails_with_the_exact_string_to_use(resources: list[PolicyInput]) -> None:
    edited = compliance.CIS_PATTERN.replace(' !="AwsServiceEvent"', ' != "AwsServiceEvent"')
    c = only_failure(verdict(changed(resources, compliance.METRIC_FILTER_TYPE, MEMBER, lambda p: p.update(pattern=edited))))
    assert c.check == "metricFilter" and "edited pattern" in c.reason and compliance.CIS_PATTERN in c.reason


def test_filter_on_another_log_group_fails(resources: list[PolicyInput]) -> None:
    rs = changed(resources, compliance.METRIC_FILTER_TYPE, MEMBER, lambda p: p.update(logGroupName="/app/logs"))
    c = only_failure(verdict(rs))
    assert c.check == "metricFilter"
    assert "is on log group '/app/logs', not on the trail's log group '/rootwatch/cloudtrail'" in c.reason


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda p: p.update(period=86400), "period is 86400 s; at most 300 s"),
        (lambda p: p.update(actionsEnabled=False), "actions disabled"),
        (lambda p: p.update(statistic="Average"), "statistic is 'Average'"),
        (lambda p: p.update(threshold=5), "threshold is 5"),
        (lambda p: p.update(comparisonOperator="GreaterThanThreshold"), "use GreaterThanOrEqualToThreshold"),
        (lambda p: p.update(alarmActions=[]), "no SNS topic in alarmActions"),
        (lambda p: p.update(namespace="Other"), "no alarm on the filter's metric CISLogMetrics/RootAccountUsage"),
    ],
)
def test_alarm_weaknesses_have_actionable_reasons(resources: list[PolicyInput], edit: Callable, expected: str) -> None:
    c = verdict(changed(resources, compliance.ALARM_TYPE, MEMBER, edit, f"{MEMBER}-alarm")).checks["alarm"]
    assert c.status == "fail" and expected in c.reason


def test_alarm_period_threshold_is_configurable(resources: list[PolicyInput]) -> None:
    assert "at most 30 s" in only_failure(verdict(resources, req=Requirements(max_alarm_period_seconds=30))).reason


def hub_intake_removed(resources: list[PolicyInput], account: str = MEMBER) -> list[PolicyInput]:
    """Without the member topic's one subscriber: the hub's intake queue subscription."""
    return [r for r in resources if not (r.type == compliance.SUBSCRIPTION_TYPE and r.name.endswith(f"-intake-{account}"))]


def test_topic_without_subscription_fails(resources: list[PolicyInput]) -> None:
    c = only_failure(verdict(hub_intake_removed(resources)))
    assert c.check == "topic" and "has no subscription" in c.reason
    assert c.urn.endswith(f"::rootwatch-{MEMBER}-topic-critical")


def test_only_confirmed_subscriptions_count(resources: list[PolicyInput]) -> None:
    member_provider = next(r.provider for r in resources if r.type == compliance.TOPIC_TYPE and MEMBER in r.name)
    intake = next(r for r in resources if r.type == compliance.SUBSCRIPTION_TYPE and r.name.endswith(f"-intake-{MEMBER}"))
    rest = [r for r in resources if r is not intake]

    def variant(provider: str, **props: Any) -> list[PolicyInput]:
        return [*rest, dataclasses.replace(intake, provider=provider, props={**intake.props, **props})]

    # The hub's queue, subscribed by the hub: confirmed (AWS confirms the endpoint account's own call).
    assert verdict(variant(intake.provider)).compliant
    # The same subscription created by the topic owner stays pending: it delivers nothing.
    c = only_failure(verdict(variant(member_provider)))
    assert c.check == "topic" and "1 subscription(s), none confirmed" in c.reason
    # E-mail is pending until someone clicks; after deploy the provider's pendingConfirmation decides.
    email = {"protocol": "email", "endpoint": "oncall@example.com"}
    assert only_failure(verdict(variant(member_provider, **email))).check == "topic"
    assert verdict(variant(member_provider, **email, pendingConfirmation=False)).compliant
    assert not verdict(variant(intake.provider, pendingConfirmation=True)).compliant
    # https: only an endpoint that confirms itself counts before deploy.
    https = {"protocol": "https", "endpoint": "https://events.pagerduty.com/integration/x/enqueue"}
    assert not verdict(variant(member_provider, **https)).compliant
    assert verdict(variant(member_provider, **https, endpointAutoConfirms=True)).compliant


def test_topic_on_aws_managed_key_fails(resources: list[PolicyInput]) -> None:
    rs = changed(resources, compliance.TOPIC_TYPE, MEMBER, lambda p: p.update(kmsMasterKeyId="alias/aws/sns"), "critical")
    c = only_failure(verdict(rs))
    assert c.check == "topic" and "AWS-managed key alias/aws/sns" in c.reason and "dropped silently" in c.reason


def test_key_policy_must_let_cloudwatch_use_the_key(resources: list[PolicyInput]) -> None:
    def no_services(p: dict[str, Any]) -> None:
        doc = json.loads(p["policy"])
        doc["Statement"] = [s for s in doc["Statement"] if s["Sid"] != "AllowAlarmDelivery"]
        p["policy"] = json.dumps(doc)

    c = only_failure(verdict(changed(resources, compliance.KEY_TYPE, MEMBER, no_services, "alerts-key")))
    assert c.check == "topic" and "does not let cloudwatch.amazonaws.com use it" in c.reason


def test_unencrypted_topic_fails(resources: list[PolicyInput]) -> None:
    rs = changed(resources, compliance.TOPIC_TYPE, MEMBER, lambda p: p.pop("kmsMasterKeyId"), "critical")
    assert "is not encrypted" in only_failure(verdict(rs)).reason


def test_realtime_rules_must_exist_in_every_required_region(resources: list[PolicyInput]) -> None:
    req = Requirements(required_regions=("us-east-1", "ap-south-1"))
    c = only_failure(verdict(resources, req=req))
    assert c.check == "realtime" and "no EventBridge root-activity rule in ap-south-1" in c.reason


def test_realtime_rule_without_management_events_state_fails(resources: list[PolicyInput]) -> None:
    rs = changed(resources, compliance.EVENT_RULE_TYPE, MEMBER, lambda p: p.update(state="ENABLED"), "rule-us-east-2")
    c = only_failure(verdict(rs, req=Requirements(required_regions=("us-east-1", "us-east-2"))))
    assert "has state 'ENABLED'" in c.reason and "(in us-east-2)" in c.reason


def test_realtime_is_skipped_with_the_reason_when_no_regions_are_required(resources: list[PolicyInput]) -> None:
    c = verdict(resources, req=Requirements(realtime_note="real-time alerting is off")).checks["realtime"]
    assert (c.status, c.ok, c.reason) == ("skipped", True, "real-time alerting is off")


def test_tamper_rules_that_exclude_root_are_not_root_rules() -> None:
    assert compliance.is_root_rule({"eventPattern": json.dumps({"detail": {"userIdentity": {"type": ["Root"]}}})})
    assert not compliance.is_root_rule({"eventPattern": json.dumps({"detail": {"userIdentity": {"type": [{"anything-but": "Root"}]}}})})


def test_unknown_values_are_pending_not_failing(resources: list[PolicyInput]) -> None:
    v = verdict(changed(resources, compliance.ALARM_TYPE, MEMBER, lambda p: p.update(period=compliance.UNKNOWN), f"{MEMBER}-alarm"))
    assert not v.compliant and v.status == "pending" and not v.failures()
    assert v.checks["alarm"].status == "pending" and "cannot verify until deploy: period" in v.checks["alarm"].reason
    doc = compliance.summarize({MEMBER: v})
    assert doc["kpis"]["accountsPending"] == 1 and doc["kpis"]["policyComplianceScore"] == 0.0


# --- accounts and the document -------------------------------------------------------------


def test_accounts_come_from_providers_json_encoded_or_not() -> None:
    prov = "urn:pulumi:s::p::pulumi:providers:aws::a"
    for allowed in ('["123456789012"]', ["123456789012"]):
        groups = compliance.group_by_account([
            PolicyInput(compliance.PROVIDER_TYPE, prov, {"allowedAccountIds": allowed, "region": "eu-west-1"}),
            PolicyInput(compliance.TOPIC_TYPE, "urn:pulumi:s::p::aws:sns/topic:Topic::t", {"name": "t"}, f"{prov}::id-1"),
        ])
        assert [(g.id, g.region, len(g.resources)) for g in groups] == [("123456789012", "eu-west-1", 1)]


def test_default_provider_account_comes_from_arns_else_the_hint() -> None:
    topic = PolicyInput(compliance.ALARM_TYPE, "urn:a", {"alarmActions": ["arn:aws:sns:us-east-1:999988887777:x"]})
    assert [g.id for g in compliance.group_by_account([topic])] == ["999988887777"]
    bare = PolicyInput(compliance.TOPIC_TYPE, "urn:t", {"name": "t"})
    assert [g.id for g in compliance.group_by_account([bare], "111111111111")] == ["111111111111"]
    assert [g.id for g in compliance.group_by_account([bare])] == ["default"]


def test_provider_references_become_urns() -> None:
    urn = "urn:pulumi:dev::proj::pulumi:providers:aws::default_7_51_1"
    assert compliance.provider_urn(f"{urn}::04da6b54-80e4-46f7-96ec-b56ff0331ba9") == urn
    assert compliance.provider_urn(urn) == urn
    assert compliance.provider_urn("") == ""


def test_an_account_in_scope_with_nothing_deployed_fails_every_check() -> None:
    doc = compliance.summarize({}, in_scope=["123456789012"], details={"123456789012": {"severity": "high"}})
    acct = doc["accounts"]["123456789012"]
    assert not acct["compliant"] and acct["severity"] == "high"
    assert {c["status"] for c in acct["checks"].values()} == {"fail"}
    assert doc["kpis"]["policyComplianceScore"] == 0.0
    assert compliance.summarize({})["kpis"]["policyComplianceScore"] is None


def test_normalize_reads_wire_markers() -> None:
    sig = "4dabf18193072939515e22adb298388d"
    secret = "1b47061264138c4ac30d75fd1eb44270"
    assert compliance.normalize({"e": {sig: secret, "value": "a@b.c"}}) == {"e": "a@b.c"}
    assert compliance.normalize({"e": {sig: secret, "ciphertext": "v1:x"}}) == {"e": compliance.SECRET}
    assert compliance.normalize({"e": {sig: secret, "plaintext": '"x"'}}) == {"e": "x"}
    assert compliance.normalize(["3eeb2bf0-c639-47a8-9e75-3b44932eb421"]) == [compliance.UNKNOWN]
