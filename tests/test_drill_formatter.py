"""The deployed real-time design: rule -> alert formatter Lambda -> topic. `drill` proves that route.

moto stores Lambda functions but cannot run them without Docker, so the one
AWS behaviour we stand in for is the Lambda runtime: the test's `invoke` runs
the real formatter handler (rootwatch.lambdas.formatter.handler) in-process with the
function's stored environment and an SNS client of the same account. Everything
else (rule, targets, function configuration, SNS -> SQS delivery, cleanup) is
moto's.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from awsfixtures import (
    REGION,
    RULE_NAME,
    AccountSpec,
    aws_env,
    build_account,
    create_member_accounts,
    moto_server,
    run_cli,
    session_for,
)

from rootwatch.commands import audit
from rootwatch.detection.eventpattern import matches
from rootwatch.lambdas import formatter
from rootwatch.program import realtime

ALL_STATE = audit.REALTIME_STATE


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import requests

    tmp = tmp_path_factory.mktemp("drill-formatter")
    with pytest.MonkeyPatch.context() as mp, moto_server() as url:
        aws_env(mp, tmp)
        requests.post(f"{url}/moto-api/reset", timeout=10)
        ids = create_member_accounts(url, ["formatted"])
        acct = ids["formatted"]
        arns = build_account(url, acct, AccountSpec(realtime={REGION: ALL_STATE}))
        s = session_for(url, acct)
        iam = s.client("iam", endpoint_url=url, region_name=REGION)
        role = iam.create_role(RoleName="rootwatch-formatter", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                   "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as z:
            z.writestr("rootwatch/formatter.py", "# stand-in archive; the test runs the real module\n")
        lam = s.client("lambda", endpoint_url=url, region_name=REGION)
        fn = lam.create_function(
            FunctionName="rootwatch-alert-formatter", Runtime="python3.12", Role=role,
            Handler="rootwatch.lambdas.formatter.handler", Code={"ZipFile": code.getvalue()},
        )["FunctionArn"]
        # The hub's critical topic (same account and region as the formatter), with a human route.
        sns = s.client("sns", endpoint_url=url, region_name=REGION)
        hub_topic = sns.create_topic(Name=f"{formatter.HUB_TOPIC_PREFIX}-critical")["TopicArn"]
        sns.subscribe(TopicArn=hub_topic, Protocol="email", Endpoint="oncall@example.com")
        directory = formatter.load_directory({
            "topics": {"high": hub_topic, "critical": hub_topic}, "hubAccountId": acct,
            "accounts": {acct: {"name": "formatted", "ou": "", "ouName": "", "baseline": "high"}}})
        events = s.client("events", endpoint_url=url, region_name=REGION)
        old = [t["Id"] for t in events.list_targets_by_rule(Rule=RULE_NAME)["Targets"]]
        if old:
            events.remove_targets(Rule=RULE_NAME, Ids=old)
        events.put_targets(Rule=RULE_NAME, Targets=[{"Id": "formatter", "Arn": fn}])
        yield {"url": url, "account": acct, "topic": hub_topic, "function": fn, "session": s, "directory": directory}
        requests.post(f"{url}/moto-api/reset", timeout=10)


class _LambdaRuntime:
    """A lambda client whose invoke runs the real formatter, as the Lambda service would."""

    def __init__(self, real: Any, sns: Any, directory: Any) -> None:
        self._real, self._sns, self._directory = real, sns, directory
        self.invocations: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803 - boto3 names
        event = json.loads(Payload)
        # The directory is the file in the function's archive (here: the one the fixture built).
        self._real.get_function_configuration(FunctionName=FunctionName)
        self.invocations.append({"type": InvocationType, "event": event})
        formatter.handler(event, directory=self._directory, client=self._sns)
        return {"StatusCode": 202}


def test_drill_reaches_the_topic_through_the_formatter_and_cleans_up(env: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    runtimes: list[_LambdaRuntime] = []
    original = audit.Clients.__call__

    def clients(self: audit.Clients, service: str, region: str | None = None) -> Any:
        client = original(self, service, region)
        if service == "lambda":
            runtimes.append(_LambdaRuntime(client, original(self, "sns", region), env["directory"]))
            return runtimes[-1]
        return client

    monkeypatch.setattr(audit.Clients, "__call__", clients)
    log = tmp_path / "drill.jsonl"
    code, out, _ = run_cli(["drill", "--account", env["account"], "--endpoint-url", env["url"], "--log", str(log),
                            "--path", "realtime", "--timeout", "10", "--format", "json"], capsys, monkeypatch)
    report = json.loads(out)
    assert code == 0, report
    [path] = report["paths"]
    assert path["ok"] is True and path["latencySeconds"] is not None and path["latencySeconds"] >= 0
    [invocation] = runtimes[0].invocations
    assert invocation["type"] == "Event"  # asynchronous, as EventBridge invokes it
    assert invocation["event"]["source"] == formatter.DRILL_SOURCE
    assert report["cleanup"]["ok"] is True
    s = env["session"]
    sns = s.client("sns", endpoint_url=env["url"], region_name=REGION)
    sqs = s.client("sqs", endpoint_url=env["url"], region_name=REGION)
    assert [x["Protocol"] for x in sns.list_subscriptions_by_topic(TopicArn=env["topic"])["Subscriptions"]] == ["email"]
    assert sqs.list_queues(QueueNamePrefix="rootwatch-drill").get("QueueUrls", []) == []
    assert json.loads(log.read_text().splitlines()[-1])["ok"] is True


def test_the_drill_event_is_labelled_and_cannot_arrive_through_the_rules() -> None:
    directory = formatter.load_directory({
        "topics": {lvl: f"arn:aws:sns:us-east-1:123456789012:rootwatch-hub-{lvl}" for lvl in ("high", "critical")},
        "accounts": {"123456789012": {"name": "web", "ou": "", "ouName": "", "baseline": "high"}}})
    event = {"source": formatter.DRILL_SOURCE, "detail-type": "rootwatch drill", "detail": {"drillId": "abc123", "level": "high"}}
    alert = formatter.build_alert(event, directory.config_for("123456789012"))
    assert (alert.kind, alert.severity.value) == ("drill", "high")
    assert alert.subject.startswith("[DRILL] rootwatch:") and "No action needed" in alert.text
    assert alert.doc["detail"] == {"drillId": "abc123"}
    # The rules admit only aws.* sources: a drill (or any PutEvents event) never matches them.
    assert not matches(realtime.root_pattern(), {**event, "account": "123456789012", "region": REGION})
