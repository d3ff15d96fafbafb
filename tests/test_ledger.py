"""The incident ledger on moto DynamoDB: alerts open and update incidents; people ack and resolve them."""

from __future__ import annotations

import copy
import json
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from rootwatch.commands import cli
from rootwatch.core.severity import Severity
from rootwatch.detection import rule as detection
from rootwatch.lambdas import formatter, ledger
from rootwatch.program.organization import Account
from tests.test_formatter import CORPUS, LOGIN, case, directory_of, env_for, load

REGION = "us-east-1"
TABLE = "rootwatch-incidents"
T0 = datetime(2025, 3, 4, 10, 16, 0, tzinfo=timezone.utc)


class Sns:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, str]:
        self.requests.append(kwargs)
        return {"MessageId": str(len(self.requests))}


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # The formatter records incidents in the table its environment names (the hub sets it).
    monkeypatch.setenv(ledger.ENV_TABLE, TABLE)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        client = boto3.client("dynamodb", REGION)
        client.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
        yield client


def record(name: str, **changes: Any) -> dict[str, Any]:
    rec = copy.deepcopy(next(c for c in CORPUS if c["name"] == name)["record"])
    rec["recipientAccountId"] = "123456789012"  # the account the hub directory knows
    rec.update(changes)
    return rec


def alert(ddb: Any, rec: dict[str, Any], *, seconds: float = 60, baseline: Severity = Severity.HIGH,
          config: dict[str, Any] | None = None) -> Sns:
    directory = directory_of(env_for(load(**(config or {})), baseline))
    sns = Sns()
    when = (detection.wrap_eventbridge(rec)["detail"].get("eventTime"))
    start = datetime.fromisoformat(when.replace("Z", "+00:00")) if when else T0
    formatter.handler(detection.wrap_eventbridge(rec), None, directory=directory, client=sns, ledger_client=ddb,
                      clock=lambda: start + timedelta(seconds=seconds))
    return sns


def test_the_first_alert_opens_an_incident_and_later_ones_update_it(ddb: Any) -> None:
    alert(ddb, record(LOGIN), seconds=45)
    alert(ddb, record("root-key-create-access-key"), seconds=70)
    (inc,) = ledger.incidents(ddb, TABLE)
    assert inc["account"] == "123456789012" and inc["status"] == "open"
    assert inc["firstEvent"] == "2025-03-04T10:15:00Z" and inc["lastEvent"] == "2025-03-04T10:15:12Z"
    assert inc["classes"] == ["console-login", "credential-change"] and inc["alertCount"] == 2
    assert inc["level"] == "critical"  # the highest level of its alerts
    assert [d["seconds"] for d in inc["detections"]] == [45, 70]
    assert {d["path"] for d in inc["detections"]} == {"realtime"}
    assert inc["id"].startswith("123456789012-20250304T101500Z-") and inc["breakGlassAuthorized"] is False


def test_a_redelivered_alert_changes_nothing(ddb: Any) -> None:
    alert(ddb, record(LOGIN))
    alert(ddb, record(LOGIN))  # EventBridge and Lambda deliver at least once
    (inc,) = ledger.incidents(ddb, TABLE)
    assert inc["alertCount"] == 1 and inc["version"] == 1


def test_each_account_has_its_own_incident(ddb: Any) -> None:
    alert(ddb, record(LOGIN))
    dev = Account("222222222299", "dev", ou_path=("r-ex01",), ou_name="Root")
    other = directory_of(env_for(load(), Severity.HIGH, dev))
    formatter.handler(detection.wrap_eventbridge(record(LOGIN, recipientAccountId=dev.id)), None, directory=other,
                      client=Sns(), ledger_client=ddb)
    assert sorted(i["account"] for i in ledger.incidents(ddb, TABLE)) == ["123456789012", "222222222299"]


def test_break_glass_and_the_assume_root_session_are_recorded(ddb: Any) -> None:
    window = {"ticket": "SEC-42", "accounts": ["123456789012"], "approvers": ["alice@example.com", "bob@example.com"],
              "start": "2025-03-04T10:00:00Z", "end": "2025-03-04T12:00:00Z", "reason": "delete the root password"}
    rec = record("assume-root-session-delete-login-profile")
    alert(ddb, rec, config={"rootwatch:breakGlass": {"windows": [window]}})
    (inc,) = ledger.incidents(ddb, TABLE)
    assert inc["breakGlass"] == ["SEC-42"] and inc["breakGlassAuthorized"] is True
    assert inc["assumeRootSessions"] == [rec["userIdentity"]["accessKeyId"]]
    # An alert outside any window makes the incident no longer (wholly) authorised.
    alert(ddb, record(LOGIN, eventTime="2025-03-04T13:00:00Z", eventID="later-login"))
    (inc,) = ledger.incidents(ddb, TABLE)
    assert inc["breakGlass"] == ["SEC-42"] and inc["breakGlassAuthorized"] is False


def test_drills_open_no_incident(ddb: Any) -> None:
    directory = directory_of(env_for(load(), Severity.HIGH))
    formatter.handler({"source": formatter.DRILL_SOURCE, "detail": {"drillId": "x"}}, None, directory=directory,
                      client=Sns(),
                      ledger_client=ddb)
    assert ledger.incidents(ddb, TABLE) == []


def test_ack_and_resolve_record_who_when_and_why_and_the_next_alert_opens_a_new_incident(ddb: Any) -> None:
    alert(ddb, record(LOGIN))
    (inc,) = ledger.incidents(ddb, TABLE)
    t1, t2 = T0 + timedelta(minutes=5), T0 + timedelta(hours=2)
    acked = ledger.change(ddb, TABLE, inc["id"], ledger.ACKNOWLEDGED, by="alice", note="looking", now=t1)
    assert acked["acknowledgedBy"] == "alice" and acked["acknowledgedAt"] == "2025-03-04T10:21:00Z"
    with pytest.raises(ledger.LedgerError, match="already acknowledged by alice"):
        ledger.change(ddb, TABLE, inc["id"], ledger.ACKNOWLEDGED, by="bob", note="", now=t1)
    done = ledger.change(ddb, TABLE, inc["id"], ledger.RESOLVED, by="bob", note="password rotated", now=t2)
    assert (done["status"], done["resolvedBy"], done["resolvedAt"]) == ("resolved", "bob", "2025-03-04T12:16:00Z")
    assert [e["action"] for e in done["log"]] == ["acknowledged", "resolved"]
    with pytest.raises(ledger.LedgerError, match="already resolved"):
        ledger.change(ddb, TABLE, inc["id"], ledger.RESOLVED, by="bob", note="again", now=t2)
    alert(ddb, record("root-key-create-access-key", eventTime="2025-03-05T09:00:00Z"))
    incidents = ledger.incidents(ddb, TABLE)
    assert [i["status"] for i in incidents] == ["resolved", "open"]
    assert incidents[1]["classes"] == ["credential-change"]


def test_a_stale_pointer_to_a_resolved_incident_opens_a_new_one(ddb: Any) -> None:
    alert(ddb, record(LOGIN))
    (inc,) = ledger.incidents(ddb, TABLE)
    resolved = ledger.transition(inc, ledger.RESOLVED, by="x", note="y", now=T0)
    ddb.put_item(TableName=TABLE, Item=ledger._to_ddb(resolved))  # resolved, but the pointer was left behind
    alert(ddb, record(LOGIN, eventID="e2", eventTime="2025-03-06T00:00:00Z"))
    assert [i["status"] for i in ledger.incidents(ddb, TABLE)] == ["resolved", "open"]


def test_concurrent_alerts_of_one_account_make_one_incident(ddb: Any) -> None:
    facts = [ledger.AlertFacts(account="123456789012", account_name="a", kind="root", event_class="console-action",
                               level="high", event_id=f"e{i}", event_time=f"2025-03-04T10:15:{i:02d}Z",
                               published_at="2025-03-04T10:16:00Z") for i in range(8)]
    errors: list[BaseException] = []
    # moto applies a conditional write in several steps; DynamoDB applies each request atomically.
    # So each call is made atomic here, while the calls of the eight writers interleave freely.
    lock = threading.Lock()

    class Atomic:
        def __getattr__(self, name: str) -> Any:
            def call(**kwargs: Any) -> Any:
                with lock:
                    return getattr(ddb, name)(**kwargs)
            return call

    def go(f: ledger.AlertFacts) -> None:
        try:
            ledger.record(Atomic(), TABLE, f)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(f,)) for f in facts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    (inc,) = ledger.incidents(ddb, TABLE)
    assert inc["alertCount"] == 8 and sorted(inc["eventIds"]) == sorted(f.event_id for f in facts)
    assert inc["firstEvent"] == "2025-03-04T10:15:00Z" and inc["lastEvent"] == "2025-03-04T10:15:07Z"


def test_a_broken_ledger_never_costs_the_alert(ddb: Any, caplog: pytest.LogCaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ledger.ENV_TABLE, "no-such-table")
    directory = directory_of(env_for(load(), Severity.HIGH))
    sns = Sns()
    result = formatter.handler(detection.wrap_eventbridge(case(LOGIN)), None, directory=directory, client=sns,
                               ledger_client=ddb)
    assert len(sns.requests) == 1 and result["kind"] == "root"
    assert "incident ledger update failed" in caplog.text


# -- the CLI -----------------------------------------------------------------------------------


def cli_run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["incidents", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_lists_acks_and_resolves(ddb: Any, capsys: pytest.CaptureFixture[str]) -> None:
    alert(ddb, record(LOGIN))
    capsys.readouterr()  # the formatter's EMF line
    code, out, _ = cli_run(capsys, "list", "--format", "json")
    assert code == 1  # an unresolved incident
    (inc,) = json.loads(out)["incidents"]
    code, out, _ = cli_run(capsys, "ack", inc["id"], "--note", "on it", "--by", "alice")
    assert code == 0 and f"{inc['id']}: acknowledged by alice" in out
    code, out, err = cli_run(capsys, "resolve", inc["id"], "--note", "  ")
    assert code == 2 and "--note must say how" in err
    code, out, _ = cli_run(capsys, "resolve", inc["id"], "--note", "root password rotated")
    assert code == 0 and "resolved by arn:aws:sts::123456789012:" in out  # the caller's identity
    code, out, _ = cli_run(capsys, "list")
    assert code == 0 and "resolved" in out and "console-login" in out
    code, out, _ = cli_run(capsys, "list", "--status", "unresolved")
    assert code == 0 and out.strip() == "no incidents"


@pytest.mark.parametrize(("argv", "message"), [
    (["ack", "not-an-id"], "is not an incident id"),
    (["ack", "123456789012-20250304T101500Z-abcdef"], "no incident 123456789012-20250304T101500Z-abcdef"),
    (["list", "--table", "x"], "is not a DynamoDB table name"),
    (["list", "--table", "missing-table"], "table missing-table: "),
])
def test_cli_bad_input_is_one_line(ddb: Any, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, _, err = cli_run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_report_reads_the_ledger_table(ddb: Any, capsys: pytest.CaptureFixture[str]) -> None:
    alert(ddb, record(LOGIN), seconds=42)
    capsys.readouterr()
    code = cli.main(["report", "--table", TABLE, "--format", "json", "--as-of", "2025-03-10T00:00:00Z"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["kpis"]["incidentsThisQuarter"] == 1 and data["kpis"]["quarter"] == "2025-Q1"
    assert data["timeToDetect"]["realtime"]["alert"]["p50"] == 42.0
    assert data["sources"]["incidents"] == f"table {TABLE}"
