"""Time to detect: from the moment of the root activity to the moment its alert is published.

The seed's first KPI is "time to detect root usage" (target: under five minutes).
The formatter measures it on every alert it publishes and reports it twice:

- in the message (one line for people: ``Time to detect: 1 min 12 s ...``) and
  the JSON document (``timeToDetectSeconds``);
- as a CloudWatch metric, written as one Embedded Metric Format (EMF) line in
  the function's log. CloudWatch Logs extracts the metric itself, so no
  PutMetricData call (which could fail, be throttled or need a VPC endpoint)
  stands between the root activity and the alert.

Where the start comes from:

- real-time path (EventBridge): the CloudTrail record's ``detail.eventTime``
  (when AWS recorded the call), else the EventBridge envelope's ``time``;
- alarm path (a CloudWatch alarm notification, bare or inside an SNS record):
  the alarm's ``StateChangeTime``. The metric filter counts the call in a
  period, so the alarm path's figure starts at the alarm's transition, not at
  the call: it understates by up to one period plus CloudTrail's delivery to
  CloudWatch Logs. That is stated wherever the figure is shown.

``rootwatch drill`` records the same figure (``TimeToDetect`` in seconds) in
its log; ``rootwatch report`` reads both. Standard library only (it runs in Lambda).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

NAMESPACE = "rootwatch"
METRIC = "TimeToDetect"  # seconds; the drill log and the incident ledger use the same name
DIMENSIONS = ("path", "level")
PATH_ALARM = "alarm"
PATH_REALTIME = "realtime"
HEARTBEAT_METRIC = "FormatterHeartbeat"  # 1 per scheduled heartbeat; no dimensions (one formatter)
TARGET_SECONDS = 300.0  # the seed's KPI: root usage detected within five minutes


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 from CloudTrail (``...Z``), EventBridge or an alarm (``...+0000``); None if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    # Alarm notifications write the offset without a colon (2026-11-24T10:00:00.000+0000).
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = text[:-2] + ":" + text[-2:]
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _alarm_notification(event: Any) -> Mapping[str, Any] | None:
    """The CloudWatch alarm notification in ``event``: bare, or the Message of an SNS record."""
    if isinstance(event, Mapping) and "AlarmName" in event and "StateChangeTime" in event:
        return event
    records = event.get("Records") if isinstance(event, Mapping) else None
    if isinstance(records, list) and records and isinstance(records[0], Mapping):
        message = (records[0].get("Sns") or {}).get("Message") if isinstance(records[0].get("Sns"), Mapping) else None
        try:
            body = json.loads(message) if isinstance(message, str) else None
        except ValueError:
            return None
        return _alarm_notification(body) if isinstance(body, Mapping) and "Records" not in body else None
    return None


def path_of(event: Any) -> str:
    """Which detection path delivered ``event``: the alarm's notification or the EventBridge rule."""
    return PATH_ALARM if _alarm_notification(event) is not None else PATH_REALTIME


def occurred_at(event: Any) -> datetime | None:
    """When the activity happened (real-time) or the alarm fired (alarm path); None if unknown."""
    alarm = _alarm_notification(event)
    if alarm is not None:
        return parse_time(alarm.get("StateChangeTime"))
    if not isinstance(event, Mapping):
        return None
    detail = event.get("detail")
    when = parse_time(detail.get("eventTime")) if isinstance(detail, Mapping) else None
    return when or parse_time(event.get("time"))


def time_to_detect(event: Any, now: datetime) -> float | None:
    """Seconds from the event (or alarm transition) to ``now``, the publish time; None when unknown.

    A clock a little behind CloudTrail's would give a negative figure: it counts as 0.
    """
    start = occurred_at(event)
    if start is None:
        return None
    return round(max(0.0, (now - start).total_seconds()), 3)


def duration(seconds: float) -> str:
    """42.0 -> '42 s', 72.4 -> '1 min 12 s', 7260 -> '2 h 1 min'."""
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def detect_line(seconds: float | None, path: str) -> str:
    """The message line: the figure, against the five-minute target, and what it measures."""
    if seconds is None:
        return "Time to detect: unknown (the event carries no readable time)"
    verdict = "within" if seconds <= TARGET_SECONDS else "OVER"
    start = "the alarm's state change" if path == PATH_ALARM else "the CloudTrail event time"
    return f"Time to detect: {duration(seconds)} from {start} to this alert ({verdict} the 5-minute target)"


def _emf(now: datetime, metric: str, unit: str, value: float, dimensions: Mapping[str, str],
         **properties: Any) -> dict[str, Any]:
    """One EMF document: ``metric`` in namespace ``rootwatch`` by ``dimensions`` (their values in the line)."""
    return {
        "_aws": {
            "Timestamp": int(now.timestamp() * 1000),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [list(dimensions)],
                "Metrics": [{"Name": metric, "Unit": unit}],
            }],
        },
        **dimensions,
        metric: value,
        **{k: v for k, v in properties.items() if v is not None},
    }


def emf_document(seconds: float, *, path: str, level: str, now: datetime, **properties: Any) -> dict[str, Any]:
    """One EMF document: metric ``TimeToDetect`` (Seconds) in namespace ``rootwatch`` by (path, level).

    ``properties`` (kind, account, event id) stay in the log line for Logs Insights; they are
    not dimensions, so the metric's cardinality stays (paths x levels).
    """
    return _emf(now, METRIC, "Seconds", seconds, dict(zip(DIMENSIONS, (path, level))), **properties)


def emf_line(seconds: float, *, path: str, level: str, now: datetime, **properties: Any) -> str:
    """The EMF document as the single line CloudWatch Logs parses (nothing before or after it)."""
    return json.dumps(emf_document(seconds, path=path, level=level, now=now, **properties),
                      separators=(",", ":"), sort_keys=True, default=str)


def heartbeat_line(now: datetime, accounts: int) -> str:
    """The heartbeat's EMF line: ``FormatterHeartbeat`` = 1 (Count), no dimensions.

    Only a formatter that loaded its directory writes it; the hub's alarm on the metric treats
    missing data as breaching, so silence (deleted, disabled, replaced code) is what pages.
    """
    doc = _emf(now, HEARTBEAT_METRIC, "Count", 1, {}, kind="heartbeat", accounts=accounts)
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)
