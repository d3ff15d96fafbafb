"""Time to detect: measured by the formatter with a fixed clock, carried in the message and as EMF."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest

from rootwatch.core.severity import Severity
from rootwatch.detection import rule as detection
from rootwatch.lambdas import metrics
from tests.test_formatter import CORPUS, LOGIN, Routes, case, directory_of, env_for, event, load
from tests.test_formatter import routes as routes  # noqa: F401 - the fixture

EVENT_TIME = datetime(2025, 3, 4, 10, 15, 0, tzinfo=timezone.utc)  # the corpus login's eventTime
ALARM = {"AlarmName": "rootwatch-root-activity", "NewStateValue": "ALARM", "OldStateValue": "OK",
         "StateChangeTime": "2025-03-04T10:16:30.000+0000", "Trigger": {"MetricName": "RootAccountUsage"}}


def clock(seconds: float) -> Any:
    return lambda: EVENT_TIME + timedelta(seconds=seconds)


# -- pure ---------------------------------------------------------------------------------------


def test_time_to_detect_starts_at_the_cloudtrail_event_time() -> None:
    event = detection.wrap_eventbridge(case(LOGIN))
    event["time"] = "2025-03-04T10:15:40Z"  # EventBridge's own time is later: the record's time wins
    assert metrics.occurred_at(event) == EVENT_TIME
    assert metrics.time_to_detect(event, EVENT_TIME + timedelta(seconds=72.5)) == 72.5
    assert metrics.path_of(event) == "realtime"


def test_time_to_detect_of_an_alarm_starts_at_its_state_change_bare_or_inside_sns() -> None:
    now = datetime(2025, 3, 4, 10, 17, 0, tzinfo=timezone.utc)
    sns = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(ALARM)}}]}
    for event in (ALARM, sns):
        assert metrics.path_of(event) == "alarm"
        assert metrics.time_to_detect(event, now) == 30.0


@pytest.mark.parametrize("event", [None, {}, {"detail": {"eventTime": "yesterday"}}, {"time": ""}, [1, 2],
                                   {"Records": [{"Sns": {"Message": "not json"}}]}])
def test_unknown_times_give_none_not_an_error(event: Any) -> None:
    assert metrics.time_to_detect(event, EVENT_TIME) is None
    assert metrics.detect_line(None, "realtime") == "Time to detect: unknown (the event carries no readable time)"


def test_a_clock_behind_cloudtrail_counts_as_zero() -> None:
    event = detection.wrap_eventbridge(case(LOGIN))
    assert metrics.time_to_detect(event, EVENT_TIME - timedelta(seconds=2)) == 0.0


@pytest.mark.parametrize(("seconds", "text"), [(4.25, "4.2 s"), (42, "42 s"), (72.4, "1 min 12 s"), (7260, "2 h 1 min")])
def test_durations_read_like_a_person_wrote_them(seconds: float, text: str) -> None:
    assert metrics.duration(seconds) == text


def test_the_line_judges_the_five_minute_target() -> None:
    assert metrics.detect_line(299, "realtime").endswith("(within the 5-minute target)")
    assert "OVER the 5-minute target" in metrics.detect_line(301, "alarm")
    assert "alarm's state change" in metrics.detect_line(301, "alarm")


def test_emf_document_follows_the_specification() -> None:
    line = metrics.emf_line(12.5, path="realtime", level="critical", now=EVENT_TIME, account="123456789012", eventId=None)
    doc = json.loads(line)
    assert "\n" not in line
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive == {"Namespace": "rootwatch", "Dimensions": [["path", "level"]],
                         "Metrics": [{"Name": "TimeToDetect", "Unit": "Seconds"}]}
    assert doc["_aws"]["Timestamp"] == int(EVENT_TIME.timestamp() * 1000)
    # Every dimension and metric the directive names is a root member (the spec's "target members").
    assert doc["path"] == "realtime" and doc["level"] == "critical" and doc["TimeToDetect"] == 12.5
    assert doc["account"] == "123456789012" and "eventId" not in doc


# -- the formatter, fixed clock ------------------------------------------------------------------


class Recorder:
    """An SNS client that keeps the publish requests (the email text is only in the request)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, str]:
        self.requests.append(kwargs)
        return {"MessageId": f"m-{len(self.requests)}"}

    def text(self) -> str:
        return str(json.loads(self.requests[-1]["Message"])["default"])


@pytest.fixture
def emf(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    def lines() -> list[dict[str, Any]]:
        out = capsys.readouterr().out.splitlines()
        return [d for d in map(json.loads, (x for x in out if x.startswith("{"))) if "_aws" in d]
    yield lines


def test_formatter_message_and_metric_carry_the_time_to_detect(routes: Routes, emf: Any) -> None:  # noqa: F811
    from rootwatch.lambdas import formatter

    directory = directory_of(env_for(load(), Severity.HIGH))
    sns = Recorder()
    formatter.handler(event(case(LOGIN)), None, directory=directory, clock=clock(83), client=sns)
    assert "Time to detect: 1 min 23 s from the CloudTrail event time to this alert (within the 5-minute target)" \
        in sns.text().splitlines()
    formatter.handler(event(case(LOGIN)), None, directory=directory, clock=clock(83))
    level, envelope = routes.only()
    assert json.loads(envelope["Message"])["timeToDetectSeconds"] == 83.0
    doc = emf()[-1]
    assert doc["TimeToDetect"] == 83.0 and doc["path"] == "realtime" and doc["level"] == level.value == "high"
    assert doc["_aws"]["Timestamp"] == int((EVENT_TIME + timedelta(seconds=83)).timestamp() * 1000)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "rootwatch"


def test_the_metric_level_is_the_published_level(emf: Any) -> None:
    from rootwatch.lambdas import formatter

    directory = directory_of(env_for(load(), Severity.LOW))
    no_mfa = next(c for c in CORPUS if c["name"] == "root-console-login-success-no-mfa")["record"]
    sns = Recorder()
    formatter.handler(event(no_mfa), None, directory=directory, clock=clock(400), client=sns)
    (doc,) = emf()
    assert sns.requests[0]["TopicArn"].endswith("rootwatch-hub-critical")
    assert doc["level"] == "critical" and doc["TimeToDetect"] == 399.0
    assert "OVER the 5-minute target" in sns.text()


def test_drills_and_timeless_events_publish_without_a_metric(emf: Any) -> None:
    from rootwatch.lambdas import formatter

    directory = directory_of(env_for(load(), Severity.HIGH))
    sns = Recorder()
    formatter.handler({"not": "an event"}, None, directory=directory, clock=clock(1), client=sns)
    assert "Time to detect: unknown" in sns.text()
    drill = {"source": formatter.DRILL_SOURCE, "time": "2025-03-04T10:15:00Z", "detail": {"drillId": "abc", "level": "high"}}
    formatter.handler(drill, None, directory=directory, clock=clock(2), client=sns)
    assert len(sns.requests) == 2 and "[DRILL]" in sns.requests[1]["Subject"]
    assert "Time to detect" not in sns.text()  # the drill measures itself, end to end
    assert emf() == []
