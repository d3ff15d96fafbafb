"""The cost model (rootwatch.program.cost) and its place in `rootwatch plan`."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from rootwatch.commands.cli import main
from rootwatch.core.errors import ConfigError
from rootwatch.program import cost, mockrun
from rootwatch.program import settings as rw_settings

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "plan.schema.json").read_text())


@pytest.fixture(scope="module")
def example() -> mockrun.Run:
    return mockrun.run("example")


def test_hand_computed_account_pins_the_arithmetic(example: mockrun.Run) -> None:
    """dev-sandbox-alice (222222222206) of the example stack, us-east-1 list prices.

    Volumes: 1,048,576 events of 1,024 bytes (exactly 1 GiB ingested), an existing trail, 10 alerts.
    Footprint counted from the plan: 1 trail, trail log group kept 365 days, bucket to Glacier after
    90 days and expired after 2,557; 1 metric filter; 2 standard alarms (root 60 s, delivery 300 s); 2 KMS
    keys (alerts, trail: the trail's log files are encrypted); 1 alarm topic (its only subscriber, the
    hub's intake queue, is the hub's resource); 5 rules in 4 regions, all 5 targets on the hub's bus;
    no formatter and no queue (both are the hub's); the trail bucket replicates into the log archive.

    CloudTrail    1,048,576 events x $2.00 / 100,000 (paid second copy)           = 20.97152
    Logs ingest   1 GiB x $0.50                                                    =  0.50
    Logs archive  1,048,576 x (1,024 + 26) B x 0.15 gzip / 2^30 = 0.153809 GiB/month,
                  x 365 / 30.4375 months kept = 1.844440 GiB x $0.03                =  0.055333
    S3 PUTs       min(1,048,576 events, 4 regions x 8,640 files) = 34,560 x $0.005/1000 =  0.1728
    S3 to Glacier 34,560 transitions x $0.03 / 1000                                =  1.0368
    S3 Standard   0.15 GiB/month x 90/30.4375 = 0.443532 GiB
                  + archived objects 34,560 x 2,467/30.4375 = 2,801,134 x 8 KiB = 21.370957 GiB
                  = 21.814489 GiB x $0.023                                         =  0.501733
    S3 Glacier    0.15 x 2,467/30.4375 = 12.157700 GiB + 2,801,134 x 32 KiB = 85.483830 GiB
                  = 97.641530 GiB x $0.0036                                        =  0.351510
    Metric        1 filter x 10 alert hours / 730 x $0.30                          =  0.004110
    Alarms        2 x $0.10                                                        =  0.20
    KMS           2 keys x $1.00 + (20 alert + 34,560 log-file) requests x $0.03/10,000 =  2.103740
    EventBridge   CloudTrail events free; 10 sent to the hub's bus x $1.00/1M     =  0.00001
    SNS           10 publishes x $0.50/1M (delivery to SQS is free)               =  0.000005
    Replication   34,560 replica PUTs x $0.005/1000                               =  0.1728
                  69,120 KMS requests (decrypt + encrypt) x $0.03/10,000          =  0.20736
                  archive copy 0.15 GiB/month x 365/30.4375 = 1.798768 GiB x $0.023 =  0.041372
    Total                                                                         = 26.319093
    """
    fp = cost.footprint(example.by_account()["222222222206"])
    assert (fp.trails, fp.trail_log_retention_days, fp.standard_alarms, fp.kms_keys, fp.topics) == (1, (365,), 2, 2, 1)
    assert fp.subscriptions == {} and (fp.functions, fp.queues, fp.tables) == (0, 0, 0)
    assert (fp.regions, fp.cross_region_targets, fp.glacier_after_days, fp.expire_after_days) == (4, 5, 90, 2557)

    c = cost.estimate(fp, cost.Volume(1_048_576, 1024, True, 10), "us-east-1")
    by = c.by_service()
    assert by["CloudTrail"] == pytest.approx(20.97152)
    assert by["CloudWatch Logs"] == pytest.approx(0.50 + 0.0553332, abs=1e-6)
    assert fp.replicated == 1
    assert by["S3"] == pytest.approx(0.1728 + 1.0368 + 0.5017333 + 0.3515095 + 0.1728 + 0.0413717, abs=1e-6)
    assert by["CloudWatch"] == pytest.approx(0.0041096 + 0.20, abs=1e-6)
    assert by["KMS"] == pytest.approx(2.0 + (20 + 34_560 + 69_120) * 0.03 / 10_000)
    assert by["EventBridge"] == pytest.approx(0.00001)
    assert by["SNS"] == pytest.approx(0.000005)
    assert "Lambda" not in by and "SQS" not in by
    assert c.total == pytest.approx(26.319093, abs=1e-6)


def test_hand_computed_hub_pins_the_arithmetic(example: mockrun.Run) -> None:
    """The example's alert hub at 90 alerts a month (9 accounts x 10), us-east-1 list prices.

    Footprint: 6 standard alarms (two dead-letter queues, formatter errors and throttles, failed
    rule deliveries, the heartbeat); 1 KMS key; 4 topics with 3 e-mail and 1 https route; the 256 MB
    formatter; 3 queues, 1 read by the formatter; 2 tables (AssumeRoot sessions, incidents); one
    schedule, rate(5 minutes): 12 x 730 = 8,760 heartbeats.

    Alarms        6 x $0.10                                                        =  0.60
    KMS           1 key x $1.00 + 180 requests x $0.03/10,000                      =  1.00054
    EventBridge   90 events x $1.00/1M                                              =  0.00009
    SNS           90 x $0.50/1M + 67.5 e-mails x $2.00/100k + 22.5 https x $0.60/1M =  0.0014085
    Lambda        90 x $0.20/1M + 90 x 1 s x 0.25 GB x $0.0000133334               =  0.000318
                  heartbeats 8,760 x $0.20/1M + 8,760 x 0.2 s x 0.25 GB x $0.0000133334
                                                                                   =  0.007592
    Logs          8,760 x 3 x 300 B = 0.0073425 GiB x $0.50                        =  0.003671
    Metric        FormatterHeartbeat, 1 x $0.30                                    =  0.30
    SQS           idle pollers 5 x 730 h x 3,600 / 20 s = 657,000 receives, + 180 sends and deletes,
                  657,180 x $0.40/1M                                               =  0.262872
    DynamoDB      180 writes x $0.625/1M                                           =  0.0001125
    Total                                                                         =  2.176604
    """
    fp = cost.footprint(example.by_account()[mockrun.HUB_GROUP])
    assert (fp.standard_alarms, fp.kms_keys, fp.topics, fp.functions, fp.queues, fp.queue_mappings, fp.tables) == \
        (6, 1, 4, 1, 3, 1, 2)
    assert (fp.subscriptions["email"], fp.subscriptions["https"], fp.trails) == (3, 1, 0)
    assert (fp.schedules, fp.scheduled_per_hour) == (1, 12.0)
    volume = cost.hub_volume([cost.Volume(300_000, 1500, True, 10)] * 9)
    assert (volume.alerts_per_month, volume.events_per_month) == (90, 0)
    c = cost.estimate(fp, volume, "us-east-1")
    by = c.by_service()
    assert by["SQS"] == pytest.approx(657_180 * 0.40 / 1e6)
    assert by["SNS"] == pytest.approx(0.0014085)
    assert by["DynamoDB"] == pytest.approx(180 * 0.625 / 1e6)
    assert by["Lambda"] == pytest.approx(0.000318 + 8_760 * 0.20 / 1e6 + 8_760 * 0.2 * 0.25 * 0.0000133334)
    assert by["CloudWatch"] == pytest.approx(0.60 + 0.30)
    assert c.total == pytest.approx(2.176604, abs=1e-6)


@pytest.mark.parametrize(("expression", "per_hour"), [("rate(5 minutes)", 12.0), ("rate(1 minute)", 60.0),
                                                      ("rate(2 hours)", 0.5), ("rate(1 day)", 1 / 24)])
def test_schedules_are_counted_per_hour(expression: str, per_hour: float) -> None:
    assert cost.schedule_per_hour(expression) == pytest.approx(per_hour)


def test_the_first_copy_is_free_when_no_other_trail_records_the_account(example: mockrun.Run) -> None:
    fp = cost.footprint(example.by_account()["222222222206"])
    paid = cost.estimate(fp, cost.Volume(300_000, 1500, True, 10), "us-east-1")
    free = cost.estimate(fp, cost.Volume(300_000, 1500, False, 10), "us-east-1")
    assert paid.by_service()["CloudTrail"] == pytest.approx(6.00)  # 300,000 x $2.00 / 100,000
    assert free.by_service()["CloudTrail"] == 0
    assert paid.total - free.total == pytest.approx(6.00)


def test_existing_mode_pays_no_trail_no_ingestion_and_no_bucket() -> None:
    run = mockrun.run("example", extra_config={"rootwatch:trail": json.dumps({"mode": "existing", "logGroupName": "org-trail"})})
    fp = cost.footprint(run.by_account()["222222222206"])
    assert (fp.trails, fp.trail_log_retention_days, fp.buckets, fp.metric_filters) == (0, (), 0, 1)
    c = cost.estimate(fp, cost.Volume(3_000_000, 1500, True, 10), "us-east-1")
    assert {"CloudTrail", "CloudWatch Logs", "S3"}.isdisjoint(c.by_service())
    # What is left: 2 alarms, the key and cents of alert path; volume no longer matters.
    assert c.total == pytest.approx(1.20, abs=0.01)


def test_a_ten_second_period_is_billed_as_a_high_resolution_alarm(example: mockrun.Run) -> None:
    # rootwatch refuses periods under 60 s (settings), but the model prices a stack that has one.
    resources = example.by_account()["222222222201"]
    alarm = next(r for r in resources if r.name == "rootwatch-222222222201-alarm")
    ten_seconds = [type(r)(**{**r.__dict__, "inputs": {**r.inputs, "period": 10}}) if r is alarm else r for r in resources]
    fp = cost.footprint(ten_seconds)
    assert (fp.standard_alarms, fp.high_resolution_alarms) == (1, 1)  # the DLQ alarm keeps 300 s
    c = cost.estimate(fp, cost.Volume(0, 1500, True, 0), "us-east-1")
    assert c.by_service()["CloudWatch"] == pytest.approx(0.10 + 0.30)


def test_every_price_names_its_aws_pricing_page_and_date() -> None:
    doc = json.loads((ROOT / "rootwatch" / "program" / "prices.json").read_text())
    assert doc["currency"] == "USD" and doc["checkedRegions"]
    for key, p in doc["prices"].items():
        assert p["url"].startswith("https://aws.amazon.com/") and p["url"].endswith("/pricing/") or "dynamodb" in key, key
        assert len(p["date"]) == 10 and p["per"] > 0 and p["default"] >= 0, key
    assert doc["prices"]["cloudtrail.paidManagementCopy"]["default"] == 2.00
    assert doc["prices"]["logs.ingestStandard"]["default"] == 0.50
    # Every figure the estimate uses is on file (a KeyError would otherwise surface at plan time).
    fp = cost.Footprint(trails=1, trail_log_retention_days=(30,), metric_filters=1, standard_alarms=1,
                        high_resolution_alarms=1, kms_keys=1, topics=1, subscriptions={"email": 1}, event_rules=1,
                        cross_region_targets=1, functions=1, function_memory_mb=128, queues=1, tables=1, buckets=1,
                        glacier_after_days=30)
    used = {i.price_key for i in cost.estimate(fp, cost.Volume(1, 1000, True, 1), "us-east-1").items}
    assert used <= set(doc["prices"])


def test_cost_settings_defaults_and_validation() -> None:
    base = mockrun.load_stack_config("example").values
    s = rw_settings.load(base)
    assert (s.cost.events_per_month, s.cost.bytes_per_event, s.cost.has_trail) == (300_000, 1500, True)
    with pytest.raises(ConfigError) as err:
        rw_settings.load({**base, "rootwatch:cost": json.dumps({"eventsPerMonth": -1, "overrides": [{"match": {}, "hasTrial": False}]})})
    text = str(err.value)
    assert "rootwatch:cost.eventsPerMonth" in text and "rootwatch:cost.overrides[0].hasTrial: unknown key" in text


def test_plan_json_carries_per_account_cost_total_and_assumptions(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Production measured at 3 million events; sandboxes have no other trail.
    monkeypatch.setenv("ROOTWATCH_COST", json.dumps({"overrides": [
        {"match": {"ous": ["ou-ex01-prod0001"]}, "eventsPerMonth": 3_000_000},
        {"match": {"nameGlob": "dev-sandbox-*"}, "hasTrail": False},
    ]}))
    assert main(["plan", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    jsonschema.validate(report, SCHEMA)
    by_id = {a["id"]: a["cost"] for a in report["accounts"]}
    assert by_id["222222222201"]["volume"] == {"eventsPerMonth": 3_000_000, "bytesPerEvent": 1500, "hasTrail": True,
                                               "alertsPerMonth": 10, "source": "override 0"}
    assert by_id["222222222201"]["byService"]["CloudTrail"] == pytest.approx(60.0)  # 3M x $2.00 / 100k
    assert by_id["222222222206"]["volume"]["source"] == "override 1"
    assert by_id["222222222206"]["byService"]["CloudTrail"] == 0
    assert by_id["222222222204"]["volume"]["source"] == "default"
    hub = report["cost"]["hub"]
    assert hub["volume"]["alertsPerMonth"] == 10 * len(by_id) and hub["byService"]["SQS"] == pytest.approx(0.2629, abs=1e-4)
    archive = report["cost"]["archive"]  # the log archive's key; members pay for their replicas
    assert {k: v for k, v in archive["byService"].items() if v} == {"KMS": 1.0} and report["archive"]["replicatingAccounts"] == len(by_id)
    assert report["totals"]["monthlyCostUsd"] == pytest.approx(
        sum(c["monthlyUsd"] for c in by_id.values()) + hub["monthlyUsd"] + archive["monthlyUsd"], abs=0.011)
    assert report["cost"]["trailMode"] == "managed" and report["cost"]["regionPricesChecked"] is True
    assert any("3,000,000" not in a and "300,000 management events" in a for a in report["cost"]["assumptions"])


def test_plan_text_shows_the_cost_column_total_and_assumptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("222222222201"))
    header = next(line for line in out.splitlines() if line.startswith("ACCOUNT"))
    assert row[header.index("COST/MONTH"):].split()[0] == "$10.97"
    # 9 x $10.97 (each account's monitor, replication into the archive included) + $2.18 (the hub, for
    # all of them) + $1.00 (the log archive's key) = $101.91.
    assert "Monthly cost: $101.91 USD for 9 accounts ($10.97 per account), the alert hub ($2.18) and the log archive ($1.00), " \
        "trail mode managed" in out
    assert "CloudTrail $54.00" in out and "SQS $0.26" in out and "assumptions:" in out


# --- trail.mode organization -----------------------------------------------------------

ORG_GROUP = "aws-controltower/CloudTrailLogs-a1b2c3"
ORG_TRAIL = {"rootwatch:trail": json.dumps({"mode": "organization", "logGroupName": ORG_GROUP})}


@pytest.fixture(scope="module")
def org_mode() -> mockrun.Run:
    return mockrun.run("example", extra_config=ORG_TRAIL)


def test_organization_mode_puts_the_cis_filter_once_on_the_owner_accounts_group(org_mode: mockrun.Run) -> None:
    from rootwatch.detection.rule import CIS_PATTERN

    grouped = org_mode.by_account()
    assert not org_mode.by_type("aws:cloudtrail/trail:Trail")
    assert not [g for g in org_mode.by_type("aws:cloudwatch/logGroup:LogGroup") if g.inputs["name"] == "/rootwatch/cloudtrail"]
    (f,) = org_mode.by_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")
    assert f.inputs["logGroupName"] == ORG_GROUP and f.inputs["pattern"] == CIS_PATTERN
    assert f in grouped["111111111111"]  # the management account owns the organization trail
    root_alarms = [a for a in org_mode.by_type("aws:cloudwatch/metricAlarm:MetricAlarm") if a.inputs["name"] == "rootwatch-root-activity"]
    assert len(root_alarms) == 1 and root_alarms[0] in grouped["111111111111"]
    assert "an account of the organization" in root_alarms[0].inputs["alarmDescription"]
    # Every account keeps its real-time rules (they name the account) and its alert topics.
    for acct in ("111111111111", "222222222201", "222222222210"):
        rules = [r for r in grouped[acct] if r.type == "aws:cloudwatch/eventRule:EventRule" and r.inputs["name"] == "rootwatch-root-activity"]
        assert {r.inputs["region"] for r in rules} == {"us-east-1", "us-east-2", "us-west-2", "eu-west-1"}


def test_organization_mode_members_get_their_own_status_not_compliant(org_mode: mockrun.Run) -> None:
    exported = org_mode.outputs["accounts"]
    assert exported["222222222201"]["alarmArn"] is None and exported["222222222201"]["metricFilterName"] is None
    assert exported["111111111111"]["metricFilterName"] == "rootwatch-root-usage"
    doc = org_mode.outputs["compliance"]
    member = doc["accounts"]["222222222201"]
    assert member["status"] == "organization-trail" and member["compliant"] is False
    assert {k: c["status"] for k, c in member["checks"].items()} == {
        "trail": "organization-trail", "metricFilter": "organization-trail", "alarm": "organization-trail",
        "topic": "organization-trail", "realtime": "pass", "hardening": "pass"}
    assert "NO_DATA" in member["checks"]["trail"]["reason"] and ORG_GROUP in member["checks"]["trail"]["reason"]
    owner = doc["accounts"]["111111111111"]
    assert owner["status"] == "compliant", owner
    assert doc["kpis"]["accountsOrganizationTrail"] == 8 and doc["kpis"]["accountsCompliant"] == 1
    assert doc["kpis"]["policyComplianceScore"] == 11.1


def test_organization_mode_costs_no_trail_and_no_ingestion(org_mode: mockrun.Run) -> None:
    grouped = org_mode.by_account()
    vol = cost.Volume(3_000_000, 1500, True, 10)
    member = cost.estimate(cost.footprint(grouped["222222222201"]), vol, "us-east-1")
    owner = cost.estimate(cost.footprint(grouped["111111111111"]), vol, "us-east-1")
    # Member: alert key $1.00 + delivery alarm $0.10 (+ alert path cents); owner: + the CIS alarm $0.10.
    assert member.total == pytest.approx(1.10, abs=0.005) and owner.total == pytest.approx(1.20, abs=0.01)
    assert {"CloudTrail", "CloudWatch Logs", "S3"}.isdisjoint(member.by_service())


def test_organization_mode_owner_can_be_another_account() -> None:
    config = {"rootwatch:trail": json.dumps({"mode": "organization", "logGroupName": ORG_GROUP,
                                             "ownerAccountId": "222222222202"})}
    run = mockrun.run("example", extra_config=config)
    (f,) = run.by_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")
    assert f in run.by_account()["222222222202"]
    assert run.outputs["compliance"]["accounts"]["111111111111"]["status"] == "organization-trail"


@pytest.mark.parametrize("trail, words", [
    ({"mode": "organization"}, "mode 'organization' needs trail.logGroupName"),
    ({"mode": "managed", "ownerAccountId": "222222222202"}, "trail.ownerAccountId is only used with mode 'organization'"),
])
def test_organization_mode_settings_are_validated(trail: dict[str, str], words: str) -> None:
    base = mockrun.load_stack_config("example").values
    with pytest.raises(ConfigError, match=words):
        rw_settings.load({**base, "rootwatch:trail": json.dumps(trail)})


def test_plan_in_organization_mode_states_the_trade_off(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOTWATCH_TRAIL", json.dumps({"mode": "organization", "logGroupName": ORG_GROUP}))
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("222222222201")).split()
    assert row[-4:-2] == ["org-trail", "$1.10"]  # then the POSTURE column (root:..., scp:...)
    assert "Monthly cost: $12.18 USD for 9 accounts ($1.11 per account) and the alert hub ($2.18)" in out
    assert "trail mode organization" in out
    assert "Security Hub evaluates CloudWatch.1 in member accounts as NO_DATA" in out
    assert main(["plan", "--format", "json", "--policy"]) == 0  # members are no violations
    report = json.loads(capsys.readouterr().out)
    jsonschema.validate(report, SCHEMA)
    assert report["cost"]["trailMode"] == "organization" and report["policy"]["violations"] == []
    assert any("NO_DATA" in t for t in report["cost"]["tradeOffs"])


def test_a_home_region_without_prices_on_file_says_so(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOTWATCH_HOME_REGION", "eu-west-1")
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    assert "trail mode managed, us-east-1 list prices (no eu-west-1 prices on file)" in out
