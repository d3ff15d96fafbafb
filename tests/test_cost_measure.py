"""`rootwatch cost --measure` against a moto organization, and its pure parts.

moto gaps (see tests/awsfixtures.py and /work/shared/reference/aws-facts.md): CloudTrail never
delivers to CloudWatch Logs there, so the AWS/Logs IncomingLogEvents / IncomingBytes metrics a
real log group would have are put with put_metric_data; moto does not implement LookupEvents, so
the sampling path is tested with a stand-in client; a member account cannot see the organization
trail in moto (AWS shows it as a shadow trail), which the command covers by adding the caller's
organization trails to every account.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from awsfixtures import (
    MGMT,
    REGION,
    FaultInjector,
    aws_env,
    create_member_accounts,
    moto_server,
    run_cli,
    session_for,
)

from rootwatch.commands import cost as cost_cmd

MEMBERS = ("own-trail", "rootwatch-deployed", "org-only", "unassumable")
ORG_GROUP = "aws-controltower/CloudTrailLogs-a1b2c3"


def put_volume(url: str, account: str, group: str, per_day: int, bytes_per_event: int, days: int = 7) -> None:
    """What CloudWatch Logs would report for a trail's log group (moto never delivers trail events)."""
    cw = session_for(url, account).client("cloudwatch", endpoint_url=url, region_name=REGION)
    now = datetime.now(timezone.utc)
    for d in range(days):
        at = now - timedelta(days=d, hours=1)
        dims = [{"Name": "LogGroupName", "Value": group}]
        cw.put_metric_data(Namespace="AWS/Logs", MetricData=[
            {"MetricName": "IncomingLogEvents", "Dimensions": dims, "Timestamp": at, "Value": float(per_day)},
            {"MetricName": "IncomingBytes", "Dimensions": dims, "Timestamp": at, "Value": float(per_day * bytes_per_event)},
        ])


def make_trail(url: str, account: str, name: str, group: str, organization: bool = False) -> None:
    s = session_for(url, account)
    s.client("s3", endpoint_url=url, region_name=REGION).create_bucket(Bucket=f"{name}-{account}")
    logs = s.client("logs", endpoint_url=url, region_name=REGION)
    logs.create_log_group(logGroupName=group)
    arn = next(g["arn"] for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"])
    ct = s.client("cloudtrail", endpoint_url=url, region_name=REGION)
    ct.create_trail(Name=name, S3BucketName=f"{name}-{account}", IsMultiRegionTrail=True, IsOrganizationTrail=organization,
                    CloudWatchLogsLogGroupArn=arn, CloudWatchLogsRoleArn=f"arn:aws:iam::{account}:role/trail")
    ct.start_logging(Name=name)


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import requests

    tmp = tmp_path_factory.mktemp("cost-org")
    with pytest.MonkeyPatch.context() as mp, moto_server() as url:
        aws_env(mp, tmp)
        requests.post(f"{url}/moto-api/reset", timeout=10)
        ids = create_member_accounts(url, MEMBERS)
        # A Control Tower style organization trail in the management account (suffixed group name).
        make_trail(url, MGMT, "aws-controltower-BaselineCloudTrail", ORG_GROUP, organization=True)
        put_volume(url, MGMT, ORG_GROUP, per_day=500_000, bytes_per_event=1500)
        make_trail(url, ids["own-trail"], "legacy-audit", "/audit/cloudtrail")
        put_volume(url, ids["own-trail"], "/audit/cloudtrail", per_day=70_000, bytes_per_event=1400)
        make_trail(url, ids["rootwatch-deployed"], "rootwatch", "/rootwatch/cloudtrail")
        put_volume(url, ids["rootwatch-deployed"], "/rootwatch/cloudtrail", per_day=10_000, bytes_per_event=1200)
        snap = tmp / "org.json"
        snap.write_text(json.dumps({"managementAccountId": MGMT, "accounts": [
            {"id": MGMT, "name": "management", "state": "ACTIVE", "ouPath": "r-ab12", "tags": {}},
            *({"id": ids[n], "name": n, "state": "ACTIVE", "ouPath": "r-ab12/ou-ab12-prod0001", "tags": {}} for n in MEMBERS),
            {"id": "999999999999", "name": "gone", "state": "SUSPENDED", "ouPath": "r-ab12", "tags": {}},
        ]}))
        yield {"url": url, "ids": ids, "snapshot": str(snap)}
        requests.post(f"{url}/moto-api/reset", timeout=10)


def measure(org: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *extra: str) -> tuple[int, str, str]:
    FaultInjector(deny_assume=[org["ids"]["unassumable"]]).install(monkeypatch)
    return run_cli(["cost", "--measure", "--org-snapshot", org["snapshot"], "--endpoint-url", org["url"], *extra],
                   capsys, monkeypatch)


def test_measure_json_reports_volumes_trails_and_isolates_failures(org: Any, capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = measure(org, capsys, monkeypatch, "--format", "json")
    assert code == 1  # two accounts not fully measured
    report = json.loads(out)
    rows = {r["name"]: r for r in report["accounts"]}
    ids = org["ids"]

    own = rows["own-trail"]
    # 70,000 events a day for 7 days, scaled to 30.4375 days; 1,400 bytes each.
    assert own["volume"]["eventsPerMonth"] == round(490_000 * 30.4375 / 7) == 2_130_625
    assert own["volume"]["bytesPerEvent"] == 1400 and own["volume"]["method"] == "metrics"
    assert "/audit/cloudtrail" in own["volume"]["basis"]
    assert own["hasTrail"] is True and own["rootwatchTrail"] is False
    assert {t["name"] for t in own["trails"]} == {"legacy-audit", "aws-controltower-BaselineCloudTrail"}
    # A paid copy: 2,130,625 x $2.00/100k = 42.61 + ingestion 2.78 GiB x $0.50 + archive.
    assert own["rootwatchTrailMonthlyUsd"] == pytest.approx(42.61 + 1.39 + 0.13, abs=0.02)

    deployed = rows["rootwatch-deployed"]
    assert deployed["rootwatchTrail"] is True
    assert deployed["hasTrail"] is True  # the organization trail, not its own rootwatch trail
    assert deployed["volume"]["eventsPerMonth"] == round(70_000 * 30.4375 / 7)

    org_only = rows["org-only"]
    assert org_only["hasTrail"] is True and org_only["volume"] is None
    assert [t["organization"] for t in org_only["trails"]] == [True]
    assert org_only["trails"][0]["owner"] == MGMT and org_only["trails"][0]["logGroup"]["name"] == ORG_GROUP
    assert "no trail of this account delivers" in org_only["volumeNote"]

    # The organization trail's group mixes every account: not the management account's own volume.
    assert rows["management"]["volume"] is None and rows["management"]["hasTrail"] is True

    bad = rows["unassumable"]
    assert bad["error"].startswith(f"cannot assume arn:aws:iam::{ids['unassumable']}:role/OrganizationAccountAccessRole")
    assert "\n" not in bad["error"]
    assert report["skipped"] == [{"id": "999999999999", "name": "gone", "reason": "account is SUSPENDED"}]
    assert report["totals"]["measured"] == 2 and report["totals"]["withTrail"] == 4
    (org_trail,) = report["organizationTrails"]
    assert org_trail["name"] == "aws-controltower-BaselineCloudTrail" and org_trail["logging"] is True
    assert org_trail["wholeOrganizationVolume"]["eventsPerMonth"] == round(3_500_000 * 30.4375 / 7)
    assert {"match": {"accounts": [ids["own-trail"]]}, "eventsPerMonth": 2_130_625, "hasTrail": True,
            "bytesPerEvent": 1400} in report["costOverrides"]


def test_measure_text_says_already_has_a_trail(org: Any, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = measure(org, capsys, monkeypatch)
    assert code == 1 and "Traceback" not in out + err
    row = next(line for line in out.splitlines() if line.startswith(org["ids"]["own-trail"])).split()
    assert row[1:5] == ["own-trail", "ok", "yes", "2,130,625"]
    assert (f"already has a trail: legacy-audit (own), aws-controltower-BaselineCloudTrail (organization trail of {MGMT}): "
            "a rootwatch trail is a paid copy") in out
    assert "volume not measured: no trail of this account delivers to a CloudWatch Logs group in it" in out
    assert "    error: cannot assume" in out
    assert "rootwatch:cost.overrides" in out
    assert "organization trail aws-controltower-BaselineCloudTrail: 15,218,750 management events a month for the whole" in out


def test_a_stopped_organization_trail_does_not_count(org: Any, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ct = session_for(org["url"], MGMT).client("cloudtrail", endpoint_url=org["url"], region_name=REGION)
    ct.stop_logging(Name="aws-controltower-BaselineCloudTrail")
    try:
        code, out, _ = measure(org, capsys, monkeypatch, "--format", "json")
    finally:
        ct.start_logging(Name="aws-controltower-BaselineCloudTrail")
    assert code == 1
    rows = {r["name"]: r for r in json.loads(out)["accounts"]}
    assert rows["org-only"]["hasTrail"] is False  # a rootwatch trail there would be the free first copy
    assert rows["own-trail"]["hasTrail"] is True
    assert rows["rootwatch-deployed"]["hasTrail"] is False  # only its own rootwatch trail records it
    assert rows["rootwatch-deployed"]["rootwatchTrailMonthlyUsd"] < 1.0  # no paid copy: only logs


@pytest.mark.parametrize("argv, words", [
    (["cost"], "cost needs --measure"),
    (["cost", "--measure", "--days", "0"], "--days 0 must be between 1 and 455"),
    (["cost", "--measure", "--accounts", "12345"], "'12345' is not a 12-digit AWS account id"),
    (["cost", "--measure", "--role-name", "bad role"], "--role-name 'bad role' is not a valid IAM role name"),
])
def test_input_errors_exit_2_with_one_line(argv: list[str], words: str, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    aws_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, out, err = run_cli([*argv, "--endpoint-url", "http://127.0.0.1:9"], capsys, monkeypatch)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1 and not out


# ---------------------------------------------------------------- pure parts


def test_extrapolating_a_lookup_events_sample() -> None:
    end = datetime(2026, 12, 1, tzinfo=timezone.utc)
    start = end - timedelta(hours=24)
    # Everything in the day read: 1,000 events a day -> 30,437.5 a month.
    assert cost_cmd.extrapolate_sample(1000, start, end, end - timedelta(hours=23), complete=True) == 30438
    # Pages ran out after 500 events covering the last 2 hours: 250 an hour.
    assert cost_cmd.extrapolate_sample(500, start, end, end - timedelta(hours=2), complete=False) == round(250 * 24 * 30.4375)


def test_sampling_reads_pages_until_the_cap() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)

    class FakeCloudTrail:
        calls = 0

        def lookup_events(self, **kwargs: Any) -> dict[str, Any]:
            FakeCloudTrail.calls += 1
            n = FakeCloudTrail.calls
            events = [{"EventTime": now - timedelta(minutes=n * 50 + i), "CloudTrailEvent": "x" * 1000} for i in range(50)]
            return {"Events": events, "NextToken": "more"}

    class Clients:
        region = "us-east-1"

        def __call__(self, service: str, region: str | None = None) -> Any:
            assert service == "cloudtrail"
            return FakeCloudTrail()

    v = cost_cmd.measure_sample(Clients(), hours=24, pages=3, now=now)
    assert FakeCloudTrail.calls == 3
    # 150 events over the 199 minutes back to the oldest one read.
    assert v["eventsPerMonth"] == round(150 * 30.4375 * 86400 / (199 * 60))
    assert v["bytesPerEvent"] == 1000 and v["method"] == "lookupEvents" and "part of the last 24 h" in v["basis"]


def test_a_trail_that_is_not_logging_is_no_copy() -> None:
    trails = [
        {"name": "old", "owner": "111111111111", "logging": False, "organization": False},
        {"name": "rootwatch", "owner": "111111111111", "logging": True, "organization": False},
    ]
    assert cost_cmd.other_trails(trails, "111111111111", "rootwatch") == []
    trails.append({"name": "org", "owner": "222222222222", "logging": None, "organization": True})
    assert [t["name"] for t in cost_cmd.other_trails(trails, "111111111111", "rootwatch")] == ["org"]
