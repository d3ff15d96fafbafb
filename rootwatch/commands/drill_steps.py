"""The drill's building blocks: results, the undo stack, the listening queue, and message matching.

``rootwatch.commands.drill`` composes them into the procedure; each piece here does one step
and knows nothing of the paths.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from rootwatch.commands import audit
from rootwatch.lambdas.formatter import DRILL_SOURCE
from rootwatch.lambdas.metrics import METRIC

DRILL_DETAIL_TYPE = "rootwatch drill"


@dataclass
class PathResult:
    path: str
    ok: bool
    reason: str
    latency: float | None = None

    def to_json(self) -> dict[str, Any]:
        seconds = None if self.latency is None else round(self.latency, 3)
        # TimeToDetect: the formatter's metric name, so `rootwatch report` reads drills and alerts alike.
        return {"path": self.path, "ok": self.ok, "reason": self.reason, "latencySeconds": seconds, METRIC: seconds}


@dataclass
class Cleanup:
    ok: bool = True
    done: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C arrived during cleanup (deferred until it finished)


class DrillFailure(Exception):
    """A path cannot be drilled; the message is the one-line reason."""


# -- matching --------------------------------------------------------------------------------


def alarm_message_matches(message: str, alarm_name: str, drill_id: str) -> bool:
    """A CloudWatch alarm notification for this drill: our alarm, now ALARM, with our reason."""
    try:
        body = json.loads(message)
    except ValueError:
        return False
    return (isinstance(body, dict) and body.get("AlarmName") == alarm_name
            and body.get("NewStateValue") == "ALARM"
            and f"rootwatch drill {drill_id}" in str(body.get("NewStateReason", "")))


def realtime_message_matches(message: str, drill_id: str) -> bool:
    """The drill event as EventBridge delivers it to SNS (the whole event, as JSON)."""
    try:
        body = json.loads(message)
    except ValueError:
        return False
    return (isinstance(body, dict) and body.get("source") == DRILL_SOURCE
            and isinstance(body.get("detail"), dict) and body["detail"].get("drillId") == drill_id)


def drill_rule_pattern(drill_id: str) -> dict[str, Any]:
    return {"source": [DRILL_SOURCE], "detail-type": [DRILL_DETAIL_TYPE], "detail": {"drillId": [drill_id]}}


# -- undo ------------------------------------------------------------------------------------


class UndoStack:
    """What the drill changed, undone newest first; one failed step never skips the others."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], Any]]] = []

    def register(self, what: str, undo: Callable[[], Any]) -> None:
        self._steps.append((what, undo))

    def drop_last(self) -> None:
        self._steps.pop()

    def run(self) -> Cleanup:
        """Undo everything. Ctrl-C meanwhile is deferred until the last step has run."""
        result = Cleanup()
        deferred = _defer_sigint()
        try:
            while self._steps:
                what, undo = self._steps.pop()
                try:
                    undo()
                    result.done.append(what)
                except Exception as exc:
                    code = audit.error_code(exc)
                    if code in audit.NOT_FOUND_CODES or "NonExistentQueue" in code or code == "QueueDoesNotExist":
                        result.done.append(what)  # already gone
                    else:
                        result.ok = False
                        result.problems.append(f"could not {what}: {audit.describe_error(exc)}")
        finally:
            result.interrupted = deferred.restore()
        return result


class _Deferred:
    def __init__(self) -> None:
        self.hit = False
        self.previous: Any = None
        self.installed = False

    def restore(self) -> bool:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous)
        return self.hit


def _defer_sigint() -> _Deferred:
    d = _Deferred()
    if threading.current_thread() is threading.main_thread():
        def handler(signum: int, frame: Any) -> None:
            d.hit = True
            print("rootwatch: cleaning up, please wait", file=sys.stderr)

        d.previous = signal.signal(signal.SIGINT, handler)
        d.installed = True
    return d


# -- the listening queue ---------------------------------------------------------------------


def _unsubscribe_endpoint(sns: Any, topic: str, endpoint: str | None) -> None:
    """Remove every confirmed subscription of ``endpoint`` to ``topic`` (found, not remembered)."""
    for sub in audit._paginate(sns, "list_subscriptions_by_topic", "Subscriptions", TopicArn=topic):
        if sub.get("Endpoint") == endpoint and sub.get("SubscriptionArn", "").startswith("arn:"):
            sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])


class DrillQueue:
    """A temporary SQS queue subscribed to the topics under test: the drill's ear."""

    def __init__(self, clients: audit.Clients, region: str, drill_id: str, undo: UndoStack,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clients = clients
        self.region = region
        self.name = f"rootwatch-drill-{drill_id}"
        self.undo = undo
        self.clock = clock
        self.url: str | None = None
        self.arn: str | None = None
        self.subscribed: dict[str, str] = {}  # topic arn -> subscription arn

    def _create(self) -> None:
        sqs = self.clients("sqs", self.region)
        name = self.name
        # Registered before creating, and found by name, so a Ctrl-C between the two cannot leak it.
        self.undo.register(f"delete queue {name}",
                           lambda: sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"]))
        self.url = sqs.create_queue(QueueName=name, Attributes={"MessageRetentionPeriod": "900"})["QueueUrl"]
        self.arn = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def listen(self, topics: Sequence[str]) -> None:
        """Subscribe the queue to every topic not yet listened to (creating the queue first)."""
        if self.url is None:
            self._create()
        new = [t for t in dict.fromkeys(topics) if t not in self.subscribed]
        if not new:
            return
        policy = {"Version": "2012-10-17", "Statement": [{
            "Sid": "RootwatchDrillTopics", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": self.arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": list(self.subscribed) + new}}}]}
        self.clients("sqs", self.region).set_queue_attributes(QueueUrl=self.url, Attributes={"Policy": json.dumps(policy)})
        for topic in new:
            sns = self.clients("sns", audit.parse_arn(topic)["region"] or self.region)
            self.undo.register(f"unsubscribe the drill queue from {topic}",
                               lambda t=topic, c=sns, q=self.arn: _unsubscribe_endpoint(c, t, q))
            sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=self.arn,
                                ReturnSubscriptionArn=True)["SubscriptionArn"]
            self.subscribed[topic] = sub
            if not sub.startswith("arn:"):
                # Same-account SQS subscriptions are confirmed at once; a pending one would miss the alert.
                raise DrillFailure(f"subscription to {topic} is pending confirmation (topic in another account?)")

    def wait(self, path: str, topics: Sequence[str], start: float, timeout: float,
             matches: Callable[[str], bool]) -> PathResult:
        """Until every topic delivered a matching message, or ``timeout`` seconds after ``start``."""
        sqs = self.clients("sqs", self.region)
        pending = set(topics)
        latency = 0.0
        deadline = start + timeout
        while pending and self.clock() < deadline:
            wait = max(1, min(20, int(deadline - self.clock())))
            msgs = sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=wait).get("Messages", [])
            now = self.clock()
            for m in msgs:
                try:
                    envelope = json.loads(m.get("Body", ""))
                except ValueError:
                    envelope = {}
                topic = envelope.get("TopicArn") if isinstance(envelope, dict) else None
                if topic in pending and matches(str(envelope.get("Message", ""))):
                    pending.discard(topic)
                    latency = max(latency, now - start)
                try:
                    sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
                except Exception:
                    pass  # the queue is deleted at the end anyway
        if pending:
            return PathResult(path, False, f"no notification from {', '.join(sorted(pending))} within {timeout:g}s")
        return PathResult(path, True, f"notified via {', '.join(topics)}", latency)
