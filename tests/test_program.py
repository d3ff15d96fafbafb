"""The real __main__.py, run under the Pulumi mock runtime against the example stacks.

mockrun.run() calls set_mocks before the program is imported, so apply
callbacks do run (the outputs assertions below would fail otherwise).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from rootwatch.detection.rule import CIS_PATTERN
from rootwatch.program import mockrun

MGMT = "111111111111"
MEMBERS_IN_SCOPE = {"222222222201", "222222222202", "222222222203", "222222222204", "222222222205", "222222222206", "222222222208", "222222222210"}
IN_SCOPE = MEMBERS_IN_SCOPE | {MGMT}
HUB = "222222222208"  # security-tooling: the alert hub, monitored like any member
CIS_EXACT = '{$.userIdentity.type="Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType !="AwsServiceEvent"}'


@pytest.fixture(scope="module")
def run() -> mockrun.Run:
    return mockrun.run("example")


@pytest.fixture(scope="module")
def explicit() -> mockrun.Run:
    return mockrun.run("explicit")


def component_of(run: mockrun.Run, r: mockrun.Registered) -> str:
    """The account id of the RootActivityMonitor a resource sits under (the hub's for the AlertHub)."""
    by_urn = {x.urn: x for x in run.resources}
    node = r
    while node.type != "rootwatch:index:RootActivityMonitor":
        if node.type == "rootwatch:index:AlertHub":
            return "hub"
        if node.type == "rootwatch:index:LogArchive":
            return "archive"
        node = by_urn[node.parent]
    return node.name.removeprefix("rootwatch-")


def policy(r: mockrun.Registered) -> dict[str, Any]:
    return json.loads(r.inputs["policy"])


def statement(doc: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in doc["Statement"] if s.get("Sid") == sid)


def of_account(run: mockrun.Run, typ: str, account: str) -> list[mockrun.Registered]:
    return [r for r in run.by_type(typ) if component_of(run, r) == account]


def test_every_account_in_scope_gets_the_whole_chain(run: mockrun.Run) -> None:
    monitors = run.by_type("rootwatch:index:RootActivityMonitor")
    assert {m.name for m in monitors} == {f"rootwatch-{a}" for a in IN_SCOPE}
    for typ, suffix in (
        ("aws:cloudtrail/trail:Trail", "-trail"),
        ("aws:cloudwatch/logGroup:LogGroup", "-log-group"),
        ("aws:cloudwatch/logMetricFilter:LogMetricFilter", "-metric-filter"),
        ("aws:cloudwatch/metricAlarm:MetricAlarm", "-alarm"),
        ("aws:s3/bucket:Bucket", "-trail-bucket"),
        ("aws:s3/bucketPolicy:BucketPolicy", "-trail-bucket-policy"),
        ("aws:kms/key:Key", "-alerts-key"),
    ):
        found = [r for r in run.by_type(typ) if r.name.endswith(suffix) and r.name.count("-") == 1 + suffix.count("-")]
        assert sorted(component_of(run, r) for r in found) == sorted(IN_SCOPE), typ
    assert set(run.outputs["accounts"]) == IN_SCOPE


def test_skipped_accounts_are_reported_with_reasons(run: mockrun.Run) -> None:
    skipped = {s["id"]: s["reason"] for s in run.outputs["skipped"]}
    assert skipped == {
        "222222222207": "account is SUSPENDED",
        "222222222209": "account is CLOSED",
    }


def test_metric_filter_is_the_byte_exact_cis_pattern(run: mockrun.Run) -> None:
    assert CIS_PATTERN == CIS_EXACT
    for f in run.by_type("aws:cloudwatch/logMetricFilter:LogMetricFilter"):
        assert f.inputs["pattern"] == CIS_EXACT
        assert f.inputs["logGroupName"] == "/rootwatch/cloudtrail"
        assert f.inputs["metricTransformation"] == {"name": "RootAccountUsage", "namespace": "CISLogMetrics", "value": "1"}


def test_alarm_fires_on_a_single_event_and_notifies_the_baseline_route(run: mockrun.Run) -> None:
    for a in (x for x in run.by_type("aws:cloudwatch/metricAlarm:MetricAlarm") if x.inputs["name"] == "rootwatch-root-activity"):
        i = a.inputs
        assert (i["metricName"], i["namespace"], i["statistic"]) == ("RootAccountUsage", "CISLogMetrics", "Sum")
        assert (i["threshold"], i["comparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        assert (i["period"], i["evaluationPeriods"], i["datapointsToAlarm"]) == (60, 1, 1)
        assert i["treatMissingData"] == "notBreaching"
        assert i["actionsEnabled"] is True
        acct = component_of(run, a)
        assert acct in i["alarmDescription"] and "https://wiki.example.com/security/runbooks/root-activity" in i["alarmDescription"]
    # payments-prod is in production: critical baseline; alice's sandbox is low.
    (prod, _delivery) = sorted(of_account(run, "aws:cloudwatch/metricAlarm:MetricAlarm", "222222222201"), key=lambda r: r.name)
    assert prod.inputs["alarmActions"] == ["arn:aws:sns:us-east-1:222222222201:rootwatch-alerts-critical"]
    (sandbox, _delivery) = sorted(of_account(run, "aws:cloudwatch/metricAlarm:MetricAlarm", "222222222206"), key=lambda r: r.name)
    assert sandbox.inputs["alarmActions"] == ["arn:aws:sns:us-east-1:222222222206:rootwatch-alerts-low"]


def test_trail_is_multi_region_validated_and_records_reads_and_writes(run: mockrun.Run) -> None:
    for t in run.by_type("aws:cloudtrail/trail:Trail"):
        acct = component_of(run, t)
        i = t.inputs
        assert i["name"] == "rootwatch"
        assert i["isMultiRegionTrail"] is True
        assert i["includeGlobalServiceEvents"] is True
        assert i["enableLogFileValidation"] is True
        assert i["eventSelectors"] == [{"readWriteType": "All", "includeManagementEvents": True, "excludeManagementEventSources": []}]
        assert i["cloudWatchLogsGroupArn"] == f"arn:aws:logs:us-east-1:{acct}:log-group:/rootwatch/cloudtrail:*"
        assert i["s3BucketName"] == f"rootwatch-trail-{acct}-us-east-1"
        # The trail waits for the bucket policy and the delivery role's policy.
        by_urn = {x.urn: x for x in run.resources}
        assert {by_urn[d].type for d in t.dependencies} >= {"aws:s3/bucketPolicy:BucketPolicy", "aws:iam/rolePolicy:RolePolicy"}


def test_member_providers_assume_the_role_into_their_own_account_only(run: mockrun.Run) -> None:
    providers = {p.name: p for p in run.by_type("pulumi:providers:aws")}
    assert set(providers) == {f"account-{a}" for a in IN_SCOPE}
    # The management account: pinned, tagged, in the home region, and no role assumed into itself.
    mgmt = providers[f"account-{MGMT}"].inputs
    assert json.loads(mgmt["allowedAccountIds"]) == [MGMT]
    assert not mgmt.get("assumeRoles") or json.loads(mgmt["assumeRoles"]) in (None, [])
    assert json.loads(mgmt["defaultTags"]) == {"tags": {"rootwatch:managed": "true", "rootwatch:stack": "example"}}
    assert mgmt["region"] == "us-east-1"
    for acct in MEMBERS_IN_SCOPE:
        i = providers[f"account-{acct}"].inputs
        roles = json.loads(i["assumeRoles"])
        assert roles == [{"roleArn": f"arn:aws:iam::{acct}:role/OrganizationAccountAccessRole", "sessionName": "rootwatch"}]
        assert json.loads(i["allowedAccountIds"]) == [acct]
        assert json.loads(i["defaultTags"]) == {"tags": {"rootwatch:managed": "true", "rootwatch:stack": "example"}}
        assert i["region"] == "us-east-1"


def test_every_child_is_created_through_its_own_accounts_provider(run: mockrun.Run) -> None:
    provider_urns = {p.urn: json.loads(p.inputs["allowedAccountIds"])[0] for p in run.by_type("pulumi:providers:aws")}
    custom = [r for r in run.resources if r.custom and r.type != "pulumi:providers:aws"]
    assert len(custom) > 10 * len(IN_SCOPE)
    for r in custom:
        acct = component_of(run, r)
        # The hub and the log archive (both security-tooling here) share that account's provider.
        acct = HUB if acct in ("hub", "archive") else acct
        ref = r.provider.rsplit("::", 1)[0]
        # The management account too: its pinned provider, never the default one.
        assert provider_urns.get(ref) == acct, r.name


def test_bucket_policy_lets_only_this_trail_write_and_denies_plain_http(run: mockrun.Run) -> None:
    for bp in run.by_type("aws:s3/bucketPolicy:BucketPolicy"):
        if not bp.name.endswith("-trail-bucket-policy"):
            continue  # the access-log bucket's policy: test_trailsecurity
        acct = component_of(run, bp)
        doc = policy(bp)
        trail = f"arn:aws:cloudtrail:us-east-1:{acct}:trail/rootwatch"
        bucket = f"arn:aws:s3:::rootwatch-trail-{acct}-us-east-1"
        acl = statement(doc, "CloudTrailAclCheck")
        assert acl["Principal"] == {"Service": "cloudtrail.amazonaws.com"} and acl["Action"] == "s3:GetBucketAcl"
        assert acl["Resource"] == bucket and acl["Condition"] == {"StringEquals": {"aws:SourceArn": trail}}
        write = statement(doc, "CloudTrailWrite")
        assert write["Action"] == "s3:PutObject" and write["Resource"] == f"{bucket}/AWSLogs/{acct}/*"
        assert write["Condition"]["StringEquals"]["aws:SourceArn"] == trail
        deny = statement(doc, "DenyInsecureTransport")
        assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny["Resource"] == [bucket, f"{bucket}/*"]


def test_bucket_is_versioned_private_owner_enforced_and_encrypted(run: mockrun.Run) -> None:
    assert all(v.inputs["versioningConfiguration"] == {"status": "Enabled"} for v in run.by_type("aws:s3/bucketVersioning:BucketVersioning"))
    for pab in run.by_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"):
        assert all(pab.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    assert all(o.inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"} for o in run.by_type("aws:s3/bucketOwnershipControls:BucketOwnershipControls"))
    for e in run.by_type("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"):
        # The log archive encrypts with its own key (the replicas are re-encrypted to it); the rest with S3's.
        want = "aws:kms" if component_of(run, e) == "archive" else "AES256"
        assert e.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == want, e.name
    for lc in run.by_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"):
        rule = lc.inputs["rules"][0]
        assert rule["transitions"] == [{"days": 90, "storageClass": "GLACIER"}] and rule["expiration"] == {"days": 2557}


def test_trail_role_may_only_write_to_its_log_group(run: mockrun.Run) -> None:
    for rp in (r for r in run.by_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("-trail-role-policy")):
        acct = component_of(run, rp)
        (st,) = policy(rp)["Statement"]
        assert st["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
        assert st["Resource"] == f"arn:aws:logs:us-east-1:{acct}:log-group:/rootwatch/cloudtrail:log-stream:*"
    for role in run.by_type("aws:iam/role:Role"):
        if role.name.endswith("-trail-role"):
            (st,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
            assert st["Principal"] == {"Service": "cloudtrail.amazonaws.com"}


def test_alert_key_lets_only_this_accounts_alarms_encrypt(run: mockrun.Run) -> None:
    for key in run.by_type("aws:kms/key:Key"):
        if not key.name.endswith("-alerts-key"):
            continue
        acct = component_of(run, key)
        doc = policy(key)
        admin = statement(doc, "EnableAccountIamPolicies")
        assert admin["Principal"] == {"AWS": f"arn:aws:iam::{acct}:root"}
        use = statement(doc, "AllowAlarmDelivery")
        assert use["Principal"] == {"Service": ["cloudwatch.amazonaws.com"]}
        assert use["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
        assert use["Condition"] == {"StringEquals": {"aws:SourceAccount": acct},
                                    "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:*:{acct}:alarm:*"}}
        assert key.inputs["enableKeyRotation"] is True


def test_topics_use_the_customer_key_and_only_this_accounts_alarms_publish(run: mockrun.Run) -> None:
    keys = {r.urn: r for r in run.by_type("aws:kms/key:Key")}
    for topic in run.by_type("aws:sns/topic:Topic"):
        acct = component_of(run, topic)
        key_arn = topic.inputs["kmsMasterKeyId"]
        acct = HUB if acct == "hub" else acct
        assert key_arn != "alias/aws/sns" and key_arn.startswith(f"arn:aws:kms:us-east-1:{acct}:key/")
        assert any(k for k in keys.values() if component_of(run, k) in (acct, "hub"))
    for tp in run.by_type("aws:sns/topicPolicy:TopicPolicy"):
        acct = component_of(run, tp)
        sids = [x["Sid"] for x in policy(tp)["Statement"]]
        if acct == "hub":  # the hub's topics: its own alarms publish; the formatter through its role
            if tp.inputs["arn"].endswith(":rootwatch-hub-critical"):
                # ... and the two formatter-free tamper rules, named, on the critical topic only.
                assert sids == ["AccountOwnerManages", "CloudWatchAlarmsPublish", "EventBridgePublish",
                                "DenyInsecureTransport"]
                events = statement(policy(tp), "EventBridgePublish")
                assert events["Principal"] == {"Service": "events.amazonaws.com"} and events["Action"] == "sns:Publish"
                assert events["Condition"] == {
                    "StringEquals": {"aws:SourceAccount": HUB},
                    "ArnEquals": {"aws:SourceArn": [f"arn:aws:events:us-east-1:{HUB}:rule/rootwatch-alerts/rootwatch-tamper-direct",
                                                    f"arn:aws:events:us-east-1:{HUB}:rule/rootwatch-hub-tamper"]}}
            else:
                assert sids == ["AccountOwnerManages", "CloudWatchAlarmsPublish", "DenyInsecureTransport"]
            continue
        pub = statement(policy(tp), "CloudWatchAlarmsPublish")
        assert pub["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and pub["Action"] == "sns:Publish"
        assert pub["Condition"] == {"StringEquals": {"aws:SourceAccount": acct}}
        assert pub["Resource"] == tp.inputs["arn"]
        # No rule of a member publishes to its topics (they all send to the hub bus): no EventBridge grant.
        assert "EventBridgePublish" not in sids, acct


def test_subscriptions_follow_the_routes_of_each_level(run: mockrun.Run) -> None:
    # Members have no human subscription: routes are subscriptions of the hub's topics.
    assert of_account(run, "aws:sns/topicSubscription:TopicSubscription", "222222222201") == []
    assert of_account(run, "aws:sns/topicSubscription:TopicSubscription", HUB) == []
    subs = [s for s in of_account(run, "aws:sns/topicSubscription:TopicSubscription", "hub") if "-intake-" not in s.name]
    by_topic: dict[str, list[str]] = {}
    for s in subs:
        by_topic.setdefault(s.inputs["topic"].rsplit(":", 1)[1], []).append(s.inputs["protocol"])
    # Registration order varies (the secret endpoint resolves later), so compare sorted.
    assert {t: sorted(p) for t, p in by_topic.items()} == {
        "rootwatch-hub-critical": ["email", "https"], "rootwatch-hub-high": ["email", "sqs"],
        "rootwatch-hub-medium": ["email"], "rootwatch-hub-low": ["sqs"],
    }
    assert {s.name for s in subs if s.inputs["topic"].endswith("-critical")} == {
        "rootwatch-hub-topic-critical-sub-0", "rootwatch-hub-topic-critical-sub-1"}


def test_stateful_resources_are_protected_and_retained(run: mockrun.Run) -> None:
    stateful = [r for r in run.resources if r.name.endswith(("-trail-bucket", "-log-group", "-alerts-key"))]
    assert len(stateful) == 3 * len(IN_SCOPE)
    for r in stateful:
        assert r.protect and r.retain_on_delete, r.name
    # The formatter's own logs are operational, not audit evidence: destroyed with the stack.
    for r in run.resources:
        if r.name.endswith("-formatter-logs"):
            assert not r.retain_on_delete and r.inputs["retentionInDays"] == 365
    for r in run.by_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        assert not r.retain_on_delete


def test_resource_names_are_unique_and_stable(run: mockrun.Run) -> None:
    urns = [r.urn for r in run.resources]
    assert len(urns) == len(set(urns))
    names = {r.name for r in run.resources}
    for acct in IN_SCOPE:
        for suffix in ("trail", "log-group", "metric-filter", "alarm", "trail-bucket", "alerts-key"):
            assert f"rootwatch-{acct}-{suffix}" in names


def test_existing_trail_mode_attaches_the_filter_to_the_declared_log_group(explicit: mockrun.Run) -> None:
    assert explicit.by_type("aws:cloudtrail/trail:Trail") == []
    assert explicit.by_type("aws:s3/bucket:Bucket") == []
    filters = explicit.by_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")
    assert len(filters) == 3  # two accounts and the hub (listed, so monitored too)
    assert all(f.inputs["logGroupName"] == "/org/cloudtrail/account-trail" and f.inputs["pattern"] == CIS_EXACT for f in filters)
    providers = explicit.by_type("pulumi:providers:aws")
    assert sorted(json.loads(p.inputs["assumeRoles"])[0]["roleArn"] for p in providers) == [
        "arn:aws:iam::333333333301:role/RootwatchDeployer",
        "arn:aws:iam::333333333302:role/RootwatchDeployer",
        "arn:aws:iam::333333333310:role/RootwatchDeployer",
    ]
    assert all(json.loads(p.inputs["allowedAccountIds"]) == [p.name.removeprefix("account-")] for p in providers)
    assert explicit.invokes == [] or all("organizations" not in t for t in explicit.invokes)


def test_secret_route_endpoints_stay_secret(tmp_path: Any) -> None:
    # A stack whose PagerDuty endpoint is a `secure:` value (the example ships a plain placeholder).
    import yaml

    doc = yaml.safe_load((mockrun.PROJECT_DIR / "stacks" / "Pulumi.example.yaml").read_text())
    doc["config"]["rootwatch:routes"]["critical"][0]["endpoint"] = {"secure": "v1:cGFnZXJkdXR5LWtleQ=="}
    path = tmp_path / "Pulumi.secret.yaml"
    path.write_text(yaml.safe_dump(doc))
    run = mockrun.run(str(path))
    assert "[secret]" not in json.dumps(run.outputs)
    assert "rootwatch:routes" in run.config.secret_keys
    secret_subs = [
        s for s in run.by_type("aws:sns/topicSubscription:TopicSubscription")
        if s.inputs["protocol"] == "https"
    ]
    assert secret_subs and all("endpoint" in s.secret_inputs for s in secret_subs)


def test_external_id_is_passed_as_a_secret() -> None:
    r = mockrun.run("example", extra_config={"rootwatch:access": json.dumps({"externalId": "vending-7f3a9c"})})
    (p, *_) = [x for x in r.by_type("pulumi:providers:aws") if x.name != f"account-{MGMT}"]
    assert "assumeRoles" in p.secret_inputs
    assert "vending-7f3a9c" not in json.dumps(r.outputs)


def test_undeliverable_realtime_alerts_page_the_critical_route(run: mockrun.Run) -> None:
    # The hub: undeliverable events land in its dead-letter queues, whose alarms page the critical topic.
    hub_alarms = {a.inputs["name"]: a.inputs for a in of_account(run, "aws:cloudwatch/metricAlarm:MetricAlarm", "hub")}
    for name in ("rootwatch-hub-events-dlq", "rootwatch-alarm-intake-dlq"):
        i = hub_alarms[name]
        assert (i["namespace"], i["metricName"], i["dimensions"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": name})
        assert (i["statistic"], i["threshold"], i["comparisonOperator"]) == ("Maximum", 1, "GreaterThanOrEqualToThreshold")
        assert i["alarmActions"] == [f"arn:aws:sns:us-east-1:{HUB}:rootwatch-hub-critical"] and i["actionsEnabled"] is True
    # Members: a hop to the hub that fails raises the delivery alarm on the account's own topic.
    for acct in IN_SCOPE:
        (delivery,) = [a for a in of_account(run, "aws:cloudwatch/metricAlarm:MetricAlarm", acct)
                       if a.name.endswith("-delivery-alarm")]
        assert delivery.inputs["alarmActions"][0].startswith(f"arn:aws:sns:us-east-1:{acct}:rootwatch-alerts-")
