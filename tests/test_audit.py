"""rootwatch audit: pure verdict logic, then the real CLI against a moto organization.

The moto tests build an organization of accounts in known states and run
``rootwatch audit --endpoint-url`` on it. Where moto cannot produce a state
(root MFA or a root access key, an unassumable role, throttling) see
tests/awsfixtures.py for how it is produced and why.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from awsfixtures import (
    EDITED_PATTERN,
    MGMT,
    AccountSpec,
    FaultInjector,
    aws_env,
    build_account,
    create_member_accounts,
    moto_server,
    run_cli,
    write_snapshot,
)
from botocore.exceptions import ClientError

from rootwatch.commands import audit
from rootwatch.detection.rule import CIS_PATTERN

ACCT = "222222222222"
TOPIC = f"arn:aws:sns:us-east-1:{ACCT}:rootwatch-alerts-critical"
GROUP_ARN = f"arn:aws:logs:us-east-1:{ACCT}:log-group:/org/trail:*"
ALL_STATE = audit.REALTIME_STATE


# ---------------------------------------------------------------- pure verdicts


def compliant_facts() -> dict[str, Any]:
    """What describe_*/get_* return for a compliant account."""
    return {
        "accountId": ACCT,
        "trails": [{
            "trail": {"Name": "rootwatch", "IsMultiRegionTrail": True, "LogFileValidationEnabled": True,
                      "HomeRegion": "us-east-1", "CloudWatchLogsLogGroupArn": GROUP_ARN,
                      "S3BucketName": "trail-bucket", "KmsKeyId": f"arn:aws:kms:us-east-1:{ACCT}:key/trail"},
            "bucketLogging": {"TargetBucket": "access-logs", "TargetPrefix": "access-logs/"},
            "keyRotation": True,
            "status": {"IsLogging": True},
            "selectors": {"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": True}]},
            "logGroup": audit.log_group_from_arn(GROUP_ARN),
            "metricFilters": [{"filterName": "root", "filterPattern": CIS_PATTERN, "metricTransformations": [
                {"metricName": "RootAccountUsage", "metricNamespace": "CISLogMetrics", "metricValue": "1"}]}],
            "alarms": {"CISLogMetrics": {"RootAccountUsage": [{
                "AlarmName": "rootwatch-root-activity", "Statistic": "Sum", "Threshold": 1.0, "Period": 300,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold", "ActionsEnabled": True,
                "AlarmActions": [TOPIC]}]}},
        }],
        "topics": {TOPIC: {"attributes": {"TopicArn": TOPIC}, "kmsKey": None, "error": None, "subscriptions": [
            {"SubscriptionArn": TOPIC + ":1b2c", "Protocol": "email", "TopicArn": TOPIC}]}},
        "accountSummary": {"AccountAccessKeysPresent": 0, "AccountMFAEnabled": 1},
        "isManagementAccount": False,
    }


def trail(f: dict[str, Any]) -> dict[str, Any]:
    return f["trails"][0]


def alarm(f: dict[str, Any]) -> dict[str, Any]:
    return trail(f)["alarms"]["CISLogMetrics"]["RootAccountUsage"][0]


def failed(checks: dict[str, Any]) -> dict[str, str]:
    return {k: v["reason"] for k, v in checks.items() if not v["ok"]}


def test_compliant_facts_pass_every_check() -> None:
    checks = audit.evaluate(compliant_facts())
    assert failed(checks) == {}
    assert set(checks) == {"trail", "filter", "alarm", "topic", "rootCredentials"}


@pytest.mark.parametrize("pattern", [
    EDITED_PATTERN,
    '{$.eventType !="AwsServiceEvent" && $.userIdentity.type="Root" && $.userIdentity.invokedBy NOT EXISTS}',
    '{ $.userIdentity.type = Root && $.userIdentity.invokedBy NOT EXISTS && $.eventType != AwsServiceEvent }',
])
def test_equivalent_but_edited_pattern_fails_security_hub(pattern: str) -> None:
    f = compliant_facts()
    trail(f)["metricFilters"][0]["filterPattern"] = pattern
    checks = audit.evaluate(f)
    assert failed(checks).keys() == {"filter"}
    assert "fails Security Hub" in checks["filter"]["reason"]


@pytest.mark.parametrize("pattern", [
    '{$.userIdentity.type="Root" && $.eventType !="AwsServiceEvent"}',  # invokedBy term dropped
    CIS_PATTERN[:-1] + ' && $.eventName="ConsoleLogin"}',  # extra term
    '{$.userIdentity.type="Root" || $.userIdentity.invokedBy NOT EXISTS || $.eventType !="AwsServiceEvent"}',
])
def test_different_pattern_is_no_cis_filter(pattern: str) -> None:
    assert not audit.equivalent_to_cis(pattern)
    f = compliant_facts()
    trail(f)["metricFilters"][0]["filterPattern"] = pattern
    checks = audit.evaluate(f)
    assert "no metric filter with the CIS pattern" in checks["filter"]["reason"]
    assert checks["alarm"]["reason"].startswith("not checked")


def test_exact_filter_wins_over_an_edited_one_on_the_same_group() -> None:
    f = compliant_facts()
    filters = trail(f)["metricFilters"]
    filters.insert(0, {**filters[0], "filterName": "old", "filterPattern": EDITED_PATTERN})
    assert failed(audit.evaluate(f)) == {}


@pytest.mark.parametrize("selectors, ok, words", [
    ({"EventSelectors": [{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}]}, False, "read-only"),
    ({"EventSelectors": [{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}]}, False, "write"),
    ({"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": False}]}, False, "no management"),
    ({"EventSelectors": [{"ReadWriteType": "ReadOnly"}, {"ReadWriteType": "WriteOnly"}]}, True, ""),
    ({"EventSelectors": [{"ReadWriteType": "All", "ExcludeManagementEventSources": ["kms.amazonaws.com"]}]}, True, ""),
    ({"EventSelectors": [], "AdvancedEventSelectors": []}, False, "no management"),
    ({"AdvancedEventSelectors": [{"Name": "m", "FieldSelectors": [
        {"Field": "eventCategory", "Equals": ["Management"]}]}]}, True, ""),
    ({"AdvancedEventSelectors": [{"Name": "m", "FieldSelectors": [
        {"Field": "eventCategory", "Equals": ["Management"]}, {"Field": "readOnly", "Equals": ["false"]}]}]},
     False, "read-only"),
    ({"AdvancedEventSelectors": [{"Name": "m", "FieldSelectors": [
        {"Field": "eventCategory", "Equals": ["Management"]}, {"Field": "readOnly", "NotEquals": ["false"]}]}]},
     False, "write"),
    ({"AdvancedEventSelectors": [{"Name": "m", "FieldSelectors": [
        {"Field": "eventCategory", "Equals": ["Management"]},
        {"Field": "eventSource", "NotEquals": ["signin.amazonaws.com"]}]}]}, False, "eventSource"),
    ({"AdvancedEventSelectors": [{"Name": "data", "FieldSelectors": [
        {"Field": "eventCategory", "Equals": ["Data"]}, {"Field": "resources.type", "Equals": ["AWS::S3::Object"]}]}]},
     False, "no management"),
])
def test_trail_selectors(selectors: dict[str, Any], ok: bool, words: str) -> None:
    f = compliant_facts()
    trail(f)["selectors"] = selectors
    check = audit.evaluate(f)["trail"]
    assert check["ok"] is ok, check
    assert words in check["reason"]


@pytest.mark.parametrize("change, words", [
    (lambda t: t["status"].update(IsLogging=False), "not logging"),
    (lambda t: t["trail"].update(LogFileValidationEnabled=False), "log file validation"),
])
def test_trail_state(change: Any, words: str) -> None:
    f = compliant_facts()
    change(trail(f))
    checks = audit.evaluate(f)
    assert failed(checks).keys() == {"trail"}
    assert words in checks["trail"]["reason"]


def test_no_multi_region_trail() -> None:
    f = compliant_facts()
    f["trails"] = []
    f["singleRegionTrails"] = ["local"]
    checks = audit.evaluate(f)
    assert "no multi-region trail (single-region only: local)" == checks["trail"]["reason"]
    assert not any(checks[c]["ok"] for c in ("filter", "alarm", "topic"))


def test_second_trail_can_satisfy_the_control() -> None:
    f = compliant_facts()
    broken = copy.deepcopy(trail(f))
    broken["trail"]["Name"] = "old"
    broken["status"]["IsLogging"] = False
    f["trails"].insert(0, broken)
    assert failed(audit.evaluate(f)) == {}


def test_organization_trail_log_group_in_another_account() -> None:
    f = compliant_facts()
    other = "arn:aws:logs:us-east-1:111111111111:log-group:org-trail:*"
    trail(f)["trail"]["CloudWatchLogsLogGroupArn"] = other
    trail(f)["logGroup"] = audit.log_group_from_arn(other)
    checks = audit.evaluate(f)
    assert "organization trail" in checks["filter"]["reason"]
    assert not checks["filter"]["ok"]


@pytest.mark.parametrize("change, words", [
    ({"Statistic": "Average"}, "statistic Average"),
    ({"Threshold": 2.0}, "threshold 2.0"),
    ({"ComparisonOperator": "GreaterThanThreshold"}, "comparison"),
    ({"ActionsEnabled": False}, "actions are disabled"),
    ({"Period": 86400}, "period 86400s"),
    ({"AlarmActions": ["arn:aws:lambda:us-east-1:222222222222:function:x"]}, "no SNS alarm action"),
])
def test_alarm_criteria(change: dict[str, Any], words: str) -> None:
    f = compliant_facts()
    alarm(f).update(change)
    checks = audit.evaluate(f)
    assert not checks["alarm"]["ok"]
    assert words in checks["alarm"]["reason"]


def test_alarm_threshold_below_one_and_short_period_pass() -> None:
    f = compliant_facts()
    alarm(f).update(Threshold=0.5, Period=60)
    assert audit.evaluate(f)["alarm"]["ok"]


def test_missing_alarm_found_by_metric_not_name() -> None:
    f = compliant_facts()
    trail(f)["metricFilters"][0]["metricTransformations"][0]["metricNamespace"] = "Custom"
    checks = audit.evaluate(f)
    assert checks["alarm"]["reason"] == "no alarm on metric Custom/RootAccountUsage"


def test_pending_subscription_is_not_confirmed() -> None:
    f = compliant_facts()
    f["topics"][TOPIC]["subscriptions"] = [{"SubscriptionArn": "PendingConfirmation", "Protocol": "email"}]
    checks = audit.evaluate(f)
    assert failed(checks).keys() == {"topic"}
    assert "no confirmed subscription (1 pending confirmation)" in checks["topic"]["reason"]


def _kms(f: dict[str, Any], key_id: str, policy: Any = None, manager: str = "CUSTOMER") -> None:
    t = f["topics"][TOPIC]
    t["attributes"]["KmsMasterKeyId"] = key_id
    t["kmsKey"] = {"metadata": {"KeyId": "k1", "KeyManager": manager}, "error": None,
                   "policy": json.dumps(policy) if policy is not None else None}


CW_STATEMENT = {"Effect": "Allow", "Principal": {"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"}
OWNER_STATEMENT = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCT}:root"}, "Action": "kms:*",
                   "Resource": "*"}


@pytest.mark.parametrize("key_id, policy, manager, ok, words", [
    ("alias/aws/sns", None, "AWS", False, "alias/aws/sns"),
    ("arn:aws:kms:us-east-1:222222222222:alias/aws/sns", None, "AWS", False, "alias/aws/sns"),
    ("k1", {"Statement": [OWNER_STATEMENT]}, "AWS", False, "AWS-managed"),
    ("k1", {"Statement": [OWNER_STATEMENT]}, "CUSTOMER", False, "does not let cloudwatch.amazonaws.com"),
    ("k1", {"Statement": [OWNER_STATEMENT, {**CW_STATEMENT, "Action": "kms:Decrypt"}]}, "CUSTOMER", False,
     "does not let"),
    ("k1", {"Statement": [OWNER_STATEMENT, {**CW_STATEMENT, "Effect": "Deny"}]}, "CUSTOMER", False, "does not let"),
    ("k1", {"Statement": [OWNER_STATEMENT, CW_STATEMENT]}, "CUSTOMER", True, "customer-managed"),
    ("k1", {"Statement": {**CW_STATEMENT, "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": "kms:*"}},
     "CUSTOMER", True, "customer-managed"),
])
def test_topic_encryption(key_id: str, policy: Any, manager: str, ok: bool, words: str) -> None:
    f = compliant_facts()
    _kms(f, key_id, policy, manager)
    check = audit.evaluate(f)["topic"]
    assert check["ok"] is ok, check
    assert words in check["reason"]


def test_unreadable_key_policy_fails_the_topic_check() -> None:
    f = compliant_facts()
    _kms(f, "arn:aws:kms:us-east-1:333333333333:key/k1")
    f["topics"][TOPIC]["kmsKey"]["error"] = "GetKeyPolicy: AccessDeniedException: no"
    assert "cannot verify KMS key" in audit.evaluate(f)["topic"]["reason"]


@pytest.mark.parametrize("summary, extra, ok, words", [
    ({"AccountAccessKeysPresent": 1, "AccountMFAEnabled": 1}, {}, False, "access keys"),
    ({"AccountMFAEnabled": 1}, {}, False, "did not report AccountAccessKeysPresent"),
    ({"AccountAccessKeysPresent": 0, "AccountMFAEnabled": 1}, {}, True, "root MFA enabled"),
    ({"AccountAccessKeysPresent": 0, "AccountMFAEnabled": 0}, {"rootCredentialsManagement": False}, False,
     "does not manage root credentials centrally"),
    ({"AccountAccessKeysPresent": 0, "AccountMFAEnabled": 0}, {"rootCredentialsManagement": None,
     "rootCredentialsManagementError": "ListOrganizationsFeatures: AccessDenied"}, False, "unknown"),
    ({"AccountAccessKeysPresent": 0, "AccountMFAEnabled": 0, "AccountPasswordPresent": 0},
     {"rootCredentialsManagement": True}, True, "centrally managed and no root password"),
    ({"AccountAccessKeysPresent": 0, "AccountMFAEnabled": 0, "AccountPasswordPresent": 1},
     {"rootCredentialsManagement": True}, False, "still has a password"),
    ({"AccountAccessKeysPresent": 0, "AccountMFAEnabled": 0},
     {"rootCredentialsManagement": True}, False, "cannot be ruled out"),
    ({"AccountAccessKeysPresent": 0, "AccountMFAEnabled": 0, "AccountPasswordPresent": 0},
     {"rootCredentialsManagement": True, "isManagementAccount": True}, False, "management account"),
])
def test_root_credentials(summary: dict[str, int], extra: dict[str, Any], ok: bool, words: str) -> None:
    f = compliant_facts()
    f["accountSummary"] = summary
    f.update(extra)
    check = audit.evaluate(f)["rootCredentials"]
    assert check["ok"] is ok, check
    assert words in check["reason"]


def test_realtime_rules() -> None:
    good = {"rule": {"Name": audit.RULE_NAME, "State": ALL_STATE}, "targets": [{"Id": "a", "Arn": TOPIC}]}
    f = compliant_facts()
    f["realtime"] = {"us-east-1": good, "eu-west-1": good}
    assert audit.evaluate(f, realtime=True)["realtime"]["ok"]
    assert "realtime" not in audit.evaluate(f)  # only checked when asked for
    f["realtime"] = {"us-east-1": good, "eu-west-1": {"rule": None, "targets": []},
                     "ap-south-1": {"rule": {"State": "ENABLED"}, "targets": [{"Id": "a"}]},
                     "sa-east-1": {"rule": {"State": ALL_STATE}, "targets": []}}
    reason = audit.evaluate(f, realtime=True)["realtime"]["reason"]
    assert "eu-west-1: rule rootwatch-root-activity missing" in reason
    assert "ap-south-1: state ENABLED" in reason
    assert "sa-east-1: rule has no targets" in reason
    assert "us-east-1" not in reason


def test_immutable_logs_are_judged_from_the_trail_buckets_lock_or_replication() -> None:
    def facts(**entry: Any) -> dict[str, Any]:
        return {"trails": [{"trail": {"S3BucketName": "b"}, **entry}]}

    lock = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 30}}}
    assert audit.evaluate_immutable_logs(facts(objectLock=lock, replication={})) == {
        "ok": True, "reason": "bucket b: S3 Object Lock COMPLIANCE, 30 days"}
    governance = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 30}}}
    assert "GOVERNANCE can be bypassed" in audit.evaluate_immutable_logs(facts(objectLock=governance))["reason"]
    rule = {"Status": "Enabled", "DeleteMarkerReplication": {"Status": "Disabled"},
            "Destination": {"Bucket": "arn:aws:s3:::vault"}}
    v = audit.evaluate_immutable_logs(facts(objectLock={}, replication={"Rules": [rule]}))
    assert v["ok"] and "replicates to arn:aws:s3:::vault without delete markers" in v["reason"]
    markers = {**rule, "DeleteMarkerReplication": {"Status": "Enabled"}}
    assert not audit.evaluate_immutable_logs(facts(objectLock={}, replication={"Rules": [markers]}))["ok"]
    bare = audit.evaluate_immutable_logs(facts(objectLock={}, replication={}))
    assert not bare["ok"] and "can delete every log file" in bare["reason"]
    denied = audit.evaluate_immutable_logs(facts(immutabilityError="AccessDenied: no"))
    assert not denied["ok"] and "cannot read" in denied["reason"]
    assert audit.evaluate_immutable_logs({"trails": []}) is None


def test_kpis() -> None:
    assert audit.kpis([{"compliant": True, "immutableLogs": {"ok": True}}, {"compliant": False},
                       {"compliant": True, "immutableLogs": {"ok": False}}]) == {
        "accountsInScope": 3, "accountsCompliant": 2, "policyComplianceScore": 66.7, "accountsWithImmutableLogs": 1}
    assert audit.kpis([])["policyComplianceScore"] is None


def test_clients_use_standard_retries_and_timeouts() -> None:
    cfg = audit.client_config()
    assert cfg.retries == {"mode": "standard"}  # attempts: AWS_MAX_ATTEMPTS, else botocore's default of 3
    assert cfg.connect_timeout == 5 and cfg.read_timeout == 30


def test_log_group_from_arn() -> None:
    assert audit.log_group_from_arn("arn:aws:logs:eu-west-1:222222222222:log-group:/a/b:*") == {
        "arn": "arn:aws:logs:eu-west-1:222222222222:log-group:/a/b:*", "name": "/a/b", "region": "eu-west-1",
        "account": "222222222222"}
    assert audit.log_group_from_arn("") is None


def test_describe_error_is_one_line_code_and_message() -> None:
    exc = ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized\nsecond line"}}, "AssumeRole")
    assert audit.describe_error(exc) == "AssumeRole: AccessDenied: not authorized second line"


# ---------------------------------------------------------------- the CLI against a moto organization

BROKEN = ("stopped", "readonly-excluded", "edited-pattern", "no-subscriber", "root-key")
MEMBERS = ("compliant",) + BROKEN + ("unassumable", "throttled")
SUSPENDED = "999999999999"


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import requests

    tmp = tmp_path_factory.mktemp("org")
    with pytest.MonkeyPatch.context() as mp, moto_server() as url:
        aws_env(mp, tmp)
        requests.post(f"{url}/moto-api/reset", timeout=10)  # moto state is per process, not per server
        ids = create_member_accounts(url, MEMBERS)
        build_account(url, MGMT, AccountSpec(realtime={"us-east-1": ALL_STATE, "us-west-2": ALL_STATE}))
        build_account(url, ids["compliant"], AccountSpec(selectors="advanced-all", kms="cmk",
                                                         realtime={"us-east-1": "ENABLED"}))
        build_account(url, ids["stopped"], AccountSpec(logging_on=False))
        build_account(url, ids["readonly-excluded"], AccountSpec(selectors="basic-writeonly"))
        build_account(url, ids["edited-pattern"], AccountSpec(pattern=EDITED_PATTERN, decoy_log_group=True))
        build_account(url, ids["no-subscriber"], AccountSpec(subscriber=False))
        build_account(url, ids["root-key"], AccountSpec(root_key=True))
        build_account(url, ids["unassumable"], AccountSpec())  # compliant, if only it could be reached
        build_account(url, ids["throttled"], AccountSpec())
        snap = write_snapshot(tmp / "org.json", [(MGMT, "management", "ACTIVE")]
                              + [(ids[n], n, "ACTIVE") for n in MEMBERS]
                              + [(SUSPENDED, "closed-one", "SUSPENDED")])
        # The stack whose scope is audited: every account of the organization.
        stack = tmp / "Pulumi.all.yaml"
        stack.write_text("config:\n  rootwatch:routes:\n" + "".join(
            f"    {lvl}: [{{protocol: email, endpoint: sec@example.com}}]\n" for lvl in ("low", "medium", "high", "critical")))
        yield {"url": url, "ids": ids, "snapshot": snap, "stack": str(stack)}
        requests.post(f"{url}/moto-api/reset", timeout=10)


def faults(org: Any, monkeypatch: pytest.MonkeyPatch) -> FaultInjector:
    ids = org["ids"]
    # moto cannot refuse AssumeRole or throttle: see tests/awsfixtures.py.
    injector = FaultInjector(deny_assume=[ids["unassumable"]], throttle={ids["throttled"]: ("cloudtrail", "DescribeTrails")})
    injector.install(monkeypatch)
    return injector


EXPECTED_FAILURE = {  # account -> (the one failing check, words in its reason)
    "stopped": ("trail", "not logging (IsLogging is false)"),
    "readonly-excluded": ("trail", "read-only management events are excluded"),
    "edited-pattern": ("filter", "fails Security Hub"),
    "no-subscriber": ("topic", "no subscriptions"),
    "root-key": ("rootCredentials", "access keys"),
}


def test_audit_org_json_verdicts_and_score(org: Any, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    injector = faults(org, monkeypatch)
    code, out, err = run_cli(["audit", "--org-snapshot", org["snapshot"], "--stack", org["stack"], "--endpoint-url", org["url"],
                              "--format", "json", "--parallel", "4"], capsys, monkeypatch)
    assert code == 1
    report = json.loads(out)
    ids = org["ids"]
    rows = {r["id"]: r for r in report["accounts"]}
    name = {v: k for k, v in ids.items()} | {MGMT: "management"}
    assert [name[r["id"]] for r in report["accounts"]] == ["management", *MEMBERS]  # snapshot order, all audited

    for acct in (MGMT, ids["compliant"]):
        assert rows[acct]["compliant"] is True, rows[acct]
        assert rows[acct]["error"] is None
        assert set(rows[acct]["checks"]) == {"trail", "filter", "alarm", "topic", "rootCredentials"}
    assert "customer-managed KMS key" in rows[ids["compliant"]]["checks"]["topic"]["reason"]

    for n, (check, words) in EXPECTED_FAILURE.items():
        row = rows[ids[n]]
        assert row["compliant"] is False and row["error"] is None, row
        assert failed(row["checks"]).keys() == {check}, (n, row["checks"])
        assert words in row["checks"][check]["reason"], (n, row["checks"][check])

    # The decoy log group carries the exact pattern but is not the trail's: it must not rescue the account.
    assert "/org/" in rows[ids["edited-pattern"]]["checks"]["filter"]["reason"]

    denied = rows[ids["unassumable"]]
    assert denied["compliant"] is False and denied["checks"] == {}
    assert denied["error"].startswith(f"cannot assume arn:aws:iam::{ids['unassumable']}:role/OrganizationAccountAccessRole")
    assert "AccessDenied" in denied["error"]
    assert injector.refused == [ids["unassumable"]]
    throttled = rows[ids["throttled"]]
    assert throttled["compliant"] is False and "ThrottlingException" in throttled["error"]

    assert report["schema"] == "rootwatch.audit/v1" and report["stack"] == "all"
    assert report["skipped"] == [{"id": SUSPENDED, "name": "closed-one", "reason": "account is SUSPENDED"}]
    # Immutable logs are reported beside compliance: the 7 accounts with a readable trail bucket lock it.
    assert report["kpis"] == {"accountsInScope": 9, "accountsCompliant": 2, "policyComplianceScore": 22.2,
                              "accountsWithImmutableLogs": 7}
    assert "auditing: 9/9" in err  # progress on stderr when auditing more than a few accounts
    assert "Traceback" not in out + err


def test_audit_org_text_rows(org: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    faults(org, monkeypatch)
    code, out, _ = run_cli(["audit", "--org-snapshot", org["snapshot"], "--stack", org["stack"], "--endpoint-url", org["url"]],
                           capsys, monkeypatch)
    assert code == 1
    ids = org["ids"]
    lines = out.splitlines()
    assert lines[0].split() == ["ACCOUNT", "NAME", "RESULT", "TRAIL", "FILTER", "ALARM", "TOPIC", "ROOT"]

    def row(acct: str) -> list[str]:
        return next(line.split() for line in lines if line.startswith(acct))

    assert row(MGMT) == [MGMT, "management", "PASS", "ok", "ok", "ok", "ok", "ok"]
    assert row(ids["stopped"]) == [ids["stopped"], "stopped", "FAIL", "FAIL", "ok", "ok", "ok", "ok"]
    assert row(ids["edited-pattern"])[2:] == ["FAIL", "ok", "FAIL", "ok", "ok", "ok"]
    assert row(ids["unassumable"])[2] == "ERROR"
    assert row(SUSPENDED)[2] == "SKIP"
    assert any("fails Security Hub" in line for line in lines)
    assert lines[-1] == "2/9 accounts compliant; policy compliance score 22.2%"


def test_audit_realtime_rules_in_every_region(org: Any, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    compliant = org["ids"]["compliant"]
    code, out, _ = run_cli(["audit", "--accounts", MGMT, compliant, "--realtime", "--regions", "us-east-1",
                            "us-west-2", "--endpoint-url", org["url"], "--format", "json"], capsys, monkeypatch)
    assert code == 1
    rows = {r["id"]: r for r in json.loads(out)["accounts"]}
    assert rows[MGMT]["compliant"] is True
    assert rows[MGMT]["checks"]["realtime"]["ok"] is True
    assert failed(rows[compliant]["checks"]).keys() == {"realtime"}
    reason = rows[compliant]["checks"]["realtime"]["reason"]
    assert "us-east-1: state ENABLED (needs ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS" in reason
    assert "us-west-2: rule rootwatch-root-activity missing" in reason


def test_audit_compliant_accounts_exit_zero(org: Any, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run_cli(["audit", "--accounts", MGMT, org["ids"]["compliant"], "--endpoint-url", org["url"],
                              "--format", "json"], capsys, monkeypatch)
    assert code == 0, out
    assert json.loads(out)["kpis"] == {"accountsInScope": 2, "accountsCompliant": 2, "policyComplianceScore": 100.0,
                                       "accountsWithImmutableLogs": 2}
    assert err == ""  # no progress bar for a couple of accounts


def test_audit_lists_the_live_organization_without_a_snapshot(org: Any, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    faults(org, monkeypatch)
    code, out, _ = run_cli(["audit", "--stack", org["stack"], "--endpoint-url", org["url"], "--format", "json"], capsys, monkeypatch)
    assert code == 1
    audited = {r["id"] for r in json.loads(out)["accounts"]}
    assert audited == {MGMT, *org["ids"].values()}


@pytest.mark.parametrize("argv, message", [
    (["--accounts", "12345"], "rootwatch: error: account id '12345' is not a 12-digit AWS account id"),
    (["--accounts", "123456789012", "12345678901x"], "'12345678901x' is not a 12-digit"),
    (["--regions", "mars-1"], "region 'mars-1' is not an AWS region name"),
    (["--parallel", "0"], "--parallel 0 must be between 1 and 64"),
    (["--role-name", "bad role"], "--role-name 'bad role' is not a valid IAM role name"),
    (["--org-snapshot", "/nonexistent/org.json"], "/nonexistent/org.json: org snapshot file not found"),
])
def test_audit_input_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    aws_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, out, err = run_cli(["audit", *argv, "--endpoint-url", "http://127.0.0.1:9"], capsys, monkeypatch)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and out == ""


# ---------------------------------------------------------------- CIS trail storage and public policies (issue 12)

HARDENING_CASES = {  # account -> (spec, the one failing check, words in its reason)
    "unencrypted-trail": (AccountSpec(trail_kms=False), "trail", "not KMS-encrypted (CloudTrail.2"),
    "key-not-rotating": (AccountSpec(trail_key_rotation=False), "trail", "does not rotate"),
    "bucket-not-logged": (AccountSpec(bucket_logging=False), "trail", "does not log access"),
    "public-topic": (AccountSpec(public_topic=True), "topic", "the topic policy is public (Everyone)"),
}


def test_audit_checks_trail_kms_rotation_access_logging_and_public_topics(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    with moto_server() as url:
        aws_env(monkeypatch, tmp_path)
        requests.post(f"{url}/moto-api/reset", timeout=10)
        ids = create_member_accounts(url, tuple(HARDENING_CASES))
        build_account(url, MGMT, AccountSpec())
        for n, (spec, _, _) in HARDENING_CASES.items():
            build_account(url, ids[n], spec)
        code, out, _ = run_cli(["audit", "--accounts", MGMT, *ids.values(), "--endpoint-url", url,
                                "--format", "json"], capsys, monkeypatch)
        requests.post(f"{url}/moto-api/reset", timeout=10)
    assert code == 1
    rows = {r["id"]: r for r in json.loads(out)["accounts"]}
    assert rows[MGMT]["compliant"] is True, rows[MGMT]
    assert "KMS-encrypted with a rotating key, bucket access logged" in rows[MGMT]["checks"]["trail"]["reason"]
    for n, (_, check, words) in HARDENING_CASES.items():
        checks = rows[ids[n]]["checks"]
        assert failed(checks).keys() == {check}, (n, checks)
        assert words in checks[check]["reason"], (n, checks[check])
