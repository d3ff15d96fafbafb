"""rootwatch drill against a moto server: it measures, reports, logs, and always cleans up.

What moto 5.2 cannot do here, and how each test handles it:

* CloudWatch alarms never publish to their SNS actions in moto. The passing
  alarm-path test runs :class:`AlarmNotifier`, a test-side stand-in for that one
  AWS behaviour: it watches the alarm and, when it enters ALARM, publishes the
  JSON notification CloudWatch would send to the alarm's topic. Without it the
  alarm path times out, which the next test asserts (and that cleanup still ran).
* EventBridge cannot deliver to SNS targets in moto (PutEvents answers HTTP 500,
  "NotImplementedError"), so the real-time path can only be shown failing in
  moto; the test asserts the failure is reported and that the temporary drill
  rule, subscription and queue are removed and the real rule is untouched.
* moto's AssumeRole never refuses; the unassumable case uses the
  FaultInjector from tests/awsfixtures.py.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from awsfixtures import (
    ALARM_NAME,
    REGION,
    RULE_NAME,
    AccountSpec,
    FaultInjector,
    aws_env,
    build_account,
    create_member_accounts,
    moto_server,
    run_cli,
    session_for,
)

from rootwatch.commands import audit, drill

ALL_STATE = audit.REALTIME_STATE


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import requests

    tmp = tmp_path_factory.mktemp("drill")
    with pytest.MonkeyPatch.context() as mp, moto_server() as url:
        aws_env(mp, tmp)
        requests.post(f"{url}/moto-api/reset", timeout=10)  # moto state is per process, not per server
        ids = create_member_accounts(url, ["drilled", "unreachable"])
        arns = build_account(url, ids["drilled"], AccountSpec(realtime={REGION: ALL_STATE}))
        yield {"url": url, "account": ids["drilled"], "unreachable": ids["unreachable"], "topic": arns["topic"]}
        requests.post(f"{url}/moto-api/reset", timeout=10)


class Account:
    """Read-back helpers for asserting what the drill left behind."""

    def __init__(self, env: Any) -> None:
        s = session_for(env["url"], env["account"])
        self.cw = s.client("cloudwatch", endpoint_url=env["url"], region_name=REGION)
        self.sns = s.client("sns", endpoint_url=env["url"], region_name=REGION)
        self.sqs = s.client("sqs", endpoint_url=env["url"], region_name=REGION)
        self.events = s.client("events", endpoint_url=env["url"], region_name=REGION)
        self.topic = env["topic"]

    def alarm(self) -> dict[str, Any]:
        return self.cw.describe_alarms(AlarmNames=[ALARM_NAME])["MetricAlarms"][0]

    def subscriptions(self) -> list[str]:
        return sorted(s["Protocol"] for s in self.sns.list_subscriptions_by_topic(TopicArn=self.topic)["Subscriptions"])

    def drill_queues(self) -> list[str]:
        return self.sqs.list_queues(QueueNamePrefix="rootwatch-drill").get("QueueUrls", [])

    def drill_rules(self) -> list[str]:
        return [r["Name"] for r in self.events.list_rules(NamePrefix="rootwatch-drill")["Rules"]]

    def assert_clean(self) -> None:
        assert self.alarm()["StateValue"] == "OK"
        assert self.subscriptions() == ["email"]  # only the pre-existing subscriber
        assert self.drill_queues() == []
        assert self.drill_rules() == []


class AlarmNotifier(threading.Thread):
    """Stands in for CloudWatch publishing an alarm notification to SNS, which moto does not do."""

    def __init__(self, env: Any) -> None:
        super().__init__(daemon=True)
        s = session_for(env["url"], env["account"])
        self.cw = s.client("cloudwatch", endpoint_url=env["url"], region_name=REGION)
        self.sns = s.client("sns", endpoint_url=env["url"], region_name=REGION)
        self.account = env["account"]
        self.stop = threading.Event()
        self.sent: list[str] = []

    def run(self) -> None:
        last = None
        while not self.stop.is_set():
            a = self.cw.describe_alarms(AlarmNames=[ALARM_NAME])["MetricAlarms"][0]
            key = (a["StateValue"], a["StateUpdatedTimestamp"])
            if a["StateValue"] == "ALARM" and key != last:
                last = key
                message = {"AlarmName": a["AlarmName"], "AWSAccountId": self.account, "NewStateValue": "ALARM",
                           "OldStateValue": "OK", "NewStateReason": a["StateReason"], "Region": "US East (N. Virginia)",
                           "Trigger": {"MetricName": a["MetricName"], "Namespace": a["Namespace"]}}
                for topic in a["AlarmActions"]:
                    self.sns.publish(TopicArn=topic, Subject=f'ALARM: "{a["AlarmName"]}"', Message=json.dumps(message))
                self.sent.append(a["StateReason"])
            time.sleep(0.05)


def drill_argv(env: Any, log: Any, *extra: str) -> list[str]:
    return ["drill", "--account", env["account"], "--endpoint-url", env["url"], "--log", str(log), *extra]


def test_alarm_path_passes_measures_latency_and_cleans_up(env: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    acct = Account(env)
    notifier = AlarmNotifier(env)
    notifier.start()
    try:
        log = tmp_path / "drill.jsonl"
        code, out, err = run_cli(drill_argv(env, log, "--timeout", "15", "--format", "json"), capsys, monkeypatch)
    finally:
        notifier.stop.set()
        notifier.join()
    assert code == 0, out + err
    report = json.loads(out)
    assert report["ok"] is True and report["cleanup"]["ok"] is True
    [path] = report["paths"]
    assert path["path"] == "alarm" and path["ok"] is True
    assert 0 < path["latencySeconds"] < 15
    assert notifier.sent == [f"rootwatch drill {report['drillId']}"]  # the alarm went to ALARM with our reason
    [line] = log.read_text().splitlines()
    entry = json.loads(line)
    assert entry["drillId"] == report["drillId"] and entry["account"] == env["account"]
    assert entry["path"] == "alarm" and entry["ok"] is True and entry["cleanupOk"] is True
    assert entry["latencySeconds"] == path["latencySeconds"]
    assert entry["TimeToDetect"] == path["latencySeconds"]  # the figure the formatter emits as a metric
    assert entry["interrupted"] is False
    acct.assert_clean()


def test_alarm_path_without_notification_fails_and_cleans_up(env: Any, tmp_path: Any,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # No AlarmNotifier: moto's alarm never publishes, exactly like a broken route (e.g. a KMS key CloudWatch cannot use).
    log = tmp_path / "drill.jsonl"
    code, out, _ = run_cli(drill_argv(env, log, "--timeout", "1"), capsys, monkeypatch)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("drill ") and env["account"] in lines[0]
    assert lines[1].split()[:3] == ["FAIL", "alarm", "-"]
    assert f"no notification from {env['topic']} within 1s" in lines[1]
    assert lines[2].startswith("cleanup: ok")
    entry = json.loads(log.read_text())
    assert entry["ok"] is False and entry["latencySeconds"] is None and entry["cleanupOk"] is True
    Account(env).assert_clean()


def test_realtime_path_reports_failure_and_removes_its_rule(env: Any, tmp_path: Any,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # moto's HTTP 500 for PutEvents -> SNS: do not retry it
    acct = Account(env)
    rule_before = acct.events.describe_rule(Name=RULE_NAME)
    targets_before = acct.events.list_targets_by_rule(Rule=RULE_NAME)["Targets"]
    code, out, _ = run_cli(drill_argv(env, tmp_path / "d.jsonl", "--path", "realtime", "--timeout", "1",
                                      "--format", "json"), capsys, monkeypatch)
    assert code == 1
    report = json.loads(out)
    [path] = report["paths"]
    assert path["path"] == "realtime" and path["ok"] is False
    # moto cannot deliver EventBridge -> SNS; on AWS this path would wait for the drill event on the queue.
    assert "PutEvents" in path["reason"]
    assert report["cleanup"]["ok"] is True
    assert any(step.startswith("delete rule rootwatch-drill-") for step in report["cleanup"]["done"])
    acct.assert_clean()
    assert acct.events.describe_rule(Name=RULE_NAME)["State"] == rule_before["State"] == ALL_STATE
    assert acct.events.list_targets_by_rule(Rule=RULE_NAME)["Targets"] == targets_before


def test_both_paths_log_one_line_each(env: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    log = tmp_path / "d.jsonl"
    log.write_text('{"earlier": true}\n')
    notifier = AlarmNotifier(env)
    notifier.start()
    try:
        code, out, _ = run_cli(drill_argv(env, log, "--path", "both", "--timeout", "10", "--format", "json"),
                               capsys, monkeypatch)
    finally:
        notifier.stop.set()
        notifier.join()
    assert code == 1  # the real-time path cannot pass in moto (see module doc)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert lines[0] == {"earlier": True}  # appended, not overwritten
    assert [(x["path"], x["ok"]) for x in lines[1:]] == [("alarm", True), ("realtime", False)]
    assert lines[1]["latencySeconds"] > 0
    Account(env).assert_clean()


def test_ctrl_c_while_waiting_still_cleans_up(env: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted_wait(self: drill.DrillQueue, *args: Any, **kwargs: Any) -> Any:
        # By now the queue, subscription and ALARM state exist: the worst moment for Ctrl-C.
        assert Account(env).alarm()["StateValue"] == "ALARM"
        raise KeyboardInterrupt

    monkeypatch.setattr(drill.DrillQueue, "wait", interrupted_wait)
    log = tmp_path / "d.jsonl"
    code, _, err = run_cli(drill_argv(env, log), capsys, monkeypatch)
    assert code == 130 and "interrupted" in err
    entry = json.loads(log.read_text())
    assert entry["interrupted"] is True and entry["ok"] is False and entry["cleanupOk"] is True
    Account(env).assert_clean()


def test_refuses_an_alarm_already_in_alarm(env: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    acct = Account(env)
    acct.cw.set_alarm_state(AlarmName=ALARM_NAME, StateValue="ALARM", StateReason="real root activity")
    try:
        code, out, _ = run_cli(drill_argv(env, tmp_path / "d.jsonl"), capsys, monkeypatch)
        assert code == 1
        assert "already in ALARM" in out
        assert acct.alarm()["StateReason"] == "real root activity"  # left untouched
        assert acct.drill_queues() == [] and acct.subscriptions() == ["email"]
    finally:
        acct.cw.set_alarm_state(AlarmName=ALARM_NAME, StateValue="OK", StateReason="test reset")


def test_unassumable_account_is_a_one_line_error(env: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    FaultInjector(deny_assume=[env["unreachable"]]).install(monkeypatch)
    code, out, err = run_cli(["drill", "--account", env["unreachable"], "--endpoint-url", env["url"],
                              "--log", str(tmp_path / "d.jsonl")], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert err.startswith(f"rootwatch: error: cannot assume arn:aws:iam::{env['unreachable']}:role/")
    assert "AccessDenied" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["--account", "12345"], "rootwatch: error: --account '12345' is not a 12-digit AWS account id"),
    (["--account", "123456789012", "--timeout", "0"], "--timeout 0 must be more than 0"),
    (["--account", "123456789012", "--log", "/nonexistent/dir/d.jsonl"], "--log /nonexistent/dir/d.jsonl: cannot append"),
])
def test_drill_input_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    aws_env(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["drill", *argv, "--endpoint-url", "http://127.0.0.1:9"], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- pure parts


def test_message_matching() -> None:
    alarm = {"AlarmName": ALARM_NAME, "NewStateValue": "ALARM", "NewStateReason": "rootwatch drill abc123"}
    assert drill.alarm_message_matches(json.dumps(alarm), ALARM_NAME, "abc123")
    assert not drill.alarm_message_matches(json.dumps(alarm), ALARM_NAME, "other")
    assert not drill.alarm_message_matches(json.dumps({**alarm, "NewStateValue": "OK"}), ALARM_NAME, "abc123")
    assert not drill.alarm_message_matches("not json", ALARM_NAME, "abc123")
    event = {"source": "rootwatch.drill", "detail-type": "rootwatch drill", "detail": {"drillId": "abc123"}}
    assert drill.realtime_message_matches(json.dumps(event), "abc123")
    assert not drill.realtime_message_matches(json.dumps({**event, "source": "aws.signin"}), "abc123")
    assert not drill.realtime_message_matches(json.dumps(event), "zzz")


def test_drill_rule_admits_only_this_drill() -> None:
    pattern = drill.drill_rule_pattern("abc123")
    assert pattern == {"source": ["rootwatch.drill"], "detail-type": ["rootwatch drill"],
                       "detail": {"drillId": ["abc123"]}}
    assert not any(s.startswith("aws.") for s in pattern["source"])  # never looks like a real CloudTrail event


def test_cleanup_runs_every_step_and_reports_failures() -> None:
    from botocore.exceptions import ClientError

    d = drill.Drill(None, "222222222222", region=REGION, timeout=1)  # type: ignore[arg-type]
    ran: list[str] = []

    def fails() -> None:
        ran.append("subscription")
        raise ClientError({"Error": {"Code": "AuthorizationError", "Message": "denied"}}, "Unsubscribe")

    def gone() -> None:
        ran.append("rule")
        raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "gone"}}, "DeleteRule")

    d.undo.register("delete queue q", lambda: ran.append("queue"))
    d.undo.register("unsubscribe s", fails)
    d.undo.register("delete rule r", gone)
    result = d.cleanup()
    assert ran == ["rule", "subscription", "queue"]  # newest first, none skipped
    assert result.ok is False
    assert result.problems == ["could not unsubscribe s: Unsubscribe: AuthorizationError: denied"]
    assert result.done == ["delete rule r", "delete queue q"]


def test_ctrl_c_during_cleanup_is_deferred_until_cleanup_finishes() -> None:
    import os
    import signal

    before = signal.getsignal(signal.SIGINT)
    d = drill.Drill(None, "222222222222", region=REGION, timeout=1)  # type: ignore[arg-type]
    ran: list[str] = []

    def press_ctrl_c() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        ran.append("alarm")

    d.undo.register("delete queue q", lambda: ran.append("queue"))
    d.undo.register("set alarm to OK", press_ctrl_c)
    result = d.cleanup()
    assert ran == ["alarm", "queue"] and result.ok and result.interrupted
    assert signal.getsignal(signal.SIGINT) is before
