"""``rootwatch drill``: prove that a root-activity alert reaches a human, and time it.

The drill subscribes a temporary SQS queue to the account's alert topic(s),
triggers a path, waits for the notification, and records the seconds it took
(time-to-detect) as one JSON line per path in the drill log.

Alarm path
    ``set_alarm_state`` puts the alarm in ALARM with reason ``rootwatch drill
    <id>``; CloudWatch then notifies the alarm's SNS actions exactly as it would
    for real root use. The drill refuses to run when the alarm is already in
    ALARM (that may be real root activity, and setting ALARM again would notify
    nobody), or when its actions are disabled. While the drill holds the alarm
    in ALARM a real root event would not send a *new* notification; the drill
    restores OK as soon as its own notification arrives, and the alarm's next
    evaluation turns it back to ALARM if the metric shows real use, so a real
    alert is delayed by at most one period, never lost.

Real-time path
    As rootwatch deploys it, the rule ``rootwatch-root-activity`` targets the
    alert formatter Lambda, which publishes to the account's route. The rule
    admits only ``aws.*`` sources, which PutEvents cannot produce, so the drill
    hands its event to the formatter with a direct asynchronous Invoke (an
    IAM-authorised call, as EventBridge's own), the formatter labels it DRILL
    and publishes to the account's baseline topic, and the drill waits for it.
    That proves formatter -> KMS -> topic -> subscribers; `audit --realtime`
    checks the rule and its state. For rules that target SNS topics directly
    (not rootwatch's design):
    Real alerts come from the rule ``rootwatch-root-activity``, which matches
    CloudTrail events (source ``aws.*``). EventBridge does not let PutEvents
    publish events with an ``aws.`` source, so nobody, the drill included, can
    push a forged CloudTrail event through that rule. The drill therefore does
    not touch the real rule. It creates a temporary rule ``rootwatch-drill-<id>``
    matching only ``source = "rootwatch.drill"`` *and* ``detail.drillId = <id>``
    (a random 48-bit id of this run), points it at the real rule's SNS targets,
    sends one event with PutEvents, and deletes the rule afterwards. Why this
    is safe:

    * no standing rule admits custom events: outside a drill there is nothing
      for a forger's PutEvents to match, and during one the forger must guess
      the id; even then the result is one more message labelled as a drill;
    * a custom source can never be mistaken for a real ``aws.*`` CloudTrail
      event by the real rule or by consumers, and it cannot suppress a real
      alert: the real rule, its pattern and targets are unchanged, and the
      drill rule shares no state with it.

    What it proves: EventBridge can publish to the topic (topic policy, KMS key
    grant to events.amazonaws.com) and the topic delivers to subscribers. What
    it cannot prove: that the real rule's pattern matches real root events
    (no-one can inject those); ``rootwatch audit --realtime`` checks the rule's
    state and the pattern tests cover the pattern. The topic policy must let
    events.amazonaws.com publish by ``aws:SourceAccount``; a policy pinned to
    the real rule's ARN makes this path fail.

Cleanup (alarm back to OK, drill rule, subscriptions, queue) always runs, also
on failure and Ctrl-C; Ctrl-C during cleanup is deferred until it finishes.
Exit 0 when every path passed and cleanup succeeded, 1 otherwise, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import secrets
import sys
import time
from typing import Any, Callable, Sequence

from rootwatch.commands import audit
from rootwatch.commands.drill_steps import (  # noqa: F401 - matchers re-exported for callers
    DRILL_DETAIL_TYPE,
    Cleanup,
    DrillFailure,
    DrillQueue,
    PathResult,
    UndoStack,
    alarm_message_matches,
    drill_rule_pattern,
    realtime_message_matches,
)
from rootwatch.core.errors import RootwatchError
from rootwatch.lambdas.formatter import DRILL_SOURCE
from rootwatch.lambdas.formatter import HUB_TOPIC_PREFIX

ALARM_NAME = "rootwatch-root-activity"
RULE_NAME = audit.RULE_NAME
DEFAULT_LOG = "rootwatch-drill.jsonl"
PATHS = ("alarm", "realtime")
MAX_TIMEOUT = 3600.0


class Drill:
    """One drill run in one account: listen, trigger, wait, and always undo.

    Every change the drill makes is registered on its undo stack before it is made.
    """

    def __init__(self, clients: audit.Clients, account_id: str, *, region: str, timeout: float,
                 alarm_name: str = ALARM_NAME, rule_name: str = RULE_NAME, drill_id: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clients = clients
        self.account_id = account_id
        self.region = region
        self.timeout = timeout
        self.alarm_name = alarm_name
        self.rule_name = rule_name
        self.id = drill_id or secrets.token_hex(6)
        self.clock = clock
        self.undo = UndoStack()
        self.queue = DrillQueue(clients, region, self.id, self.undo, clock)

    # -- the procedure

    def execute(self, paths: Sequence[str]) -> tuple[list[PathResult], Cleanup, bool]:
        """(results, cleanup, interrupted). Cleanup runs whatever happens, Ctrl-C included."""
        results: list[PathResult] = []
        interrupted = False
        try:
            for path in paths:
                results.append(self.run_path(path))
        except KeyboardInterrupt:
            interrupted = True
            done = {r.path for r in results}
            results.extend(PathResult(p, False, "interrupted (Ctrl-C)") for p in paths if p not in done)
        finally:
            cleanup = self.cleanup()
        return results, cleanup, interrupted or cleanup.interrupted

    def run_path(self, path: str) -> PathResult:
        try:
            return self._alarm_path() if path == "alarm" else self._realtime_path()
        except DrillFailure as exc:
            return PathResult(path, False, str(exc))
        except Exception as exc:  # AWS errors end this path, not the drill (cleanup still runs)
            return PathResult(path, False, audit.describe_error(exc))

    def cleanup(self) -> Cleanup:
        return self.undo.run()

    # -- alarm path: find a drillable alarm, listen on its topics, set ALARM, wait

    def _alarm_path(self) -> PathResult:
        cw = self.clients("cloudwatch", self.region)
        topics = self._drillable_alarm_topics(cw)
        self.queue.listen(topics)
        start = self._set_alarm(cw)
        return self.queue.wait("alarm", topics, start, self.timeout,
                               lambda m: alarm_message_matches(m, self.alarm_name, self.id))

    def _drillable_alarm_topics(self, cw: Any) -> list[str]:
        alarms = cw.describe_alarms(AlarmNames=[self.alarm_name]).get("MetricAlarms", [])
        if not alarms:
            raise DrillFailure(f"alarm {self.alarm_name} not found in {self.region}")
        alarm = alarms[0]
        if not alarm.get("ActionsEnabled"):
            raise DrillFailure(f"alarm {self.alarm_name} has actions disabled; it notifies nobody")
        if alarm.get("StateValue") == "ALARM":
            raise DrillFailure(f"alarm {self.alarm_name} is already in ALARM (real root activity?); left untouched")
        topics = [a for a in alarm.get("AlarmActions", []) if audit.parse_arn(a)["service"] == "sns"]
        if not topics:
            raise DrillFailure(f"alarm {self.alarm_name} has no SNS action")
        return topics

    def _set_alarm(self, cw: Any) -> float:
        self.undo.register(f"set alarm {self.alarm_name} to OK", lambda: cw.set_alarm_state(
            AlarmName=self.alarm_name, StateValue="OK", StateReason=f"rootwatch drill {self.id} finished"))
        start = self.clock()
        try:
            cw.set_alarm_state(AlarmName=self.alarm_name, StateValue="ALARM", StateReason=f"rootwatch drill {self.id}")
        except Exception as exc:
            if audit.error_code(exc):  # refused by CloudWatch: the state never changed, nothing to restore
                self.undo.drop_last()
            raise
        return start

    # -- real-time path: through the rule's alert formatter, else a temporary drill rule

    def _realtime_path(self) -> PathResult:
        ev = self.clients("events", self.region)
        targets = self._rule_targets(ev)
        formatters = [t for t in targets if audit.parse_arn(t.get("Arn", ""))["service"] == "lambda"]
        if formatters:
            return self._formatter_path(formatters[0]["Arn"])
        sns_targets = [t for t in targets if audit.parse_arn(t.get("Arn", ""))["service"] == "sns"]
        if not sns_targets:
            raise DrillFailure(f"rule {self.rule_name} has no alert formatter or SNS target")
        return self._drill_rule_path(ev, sns_targets)

    def _rule_targets(self, ev: Any) -> list[dict[str, Any]]:
        try:
            ev.describe_rule(Name=self.rule_name)
        except Exception as exc:
            if audit.error_code(exc) == "ResourceNotFoundException":
                raise DrillFailure(f"rule {self.rule_name} not found in {self.region}") from None
            raise
        return audit._paginate(ev, "list_targets_by_rule", "Targets", Rule=self.rule_name)

    def _formatter_path(self, function_arn: str) -> PathResult:
        """The deployed design: the hub's alert formatter Lambda -> the hub's critical topic.

        The rules admit only aws.* sources, so the drill event is handed to the
        formatter with a direct Invoke (the same asynchronous invocation EventBridge
        makes); the formatter labels it DRILL and publishes to the hub topic of the
        level the event names (critical: the hub always has it), which the drill queue
        listens on. The topic's ARN follows from the function's (same account and region).
        """
        lam = self.clients("lambda", self.region)
        topic, level = self._formatter_route(function_arn)
        self.queue.listen([topic])
        event = {"version": "0", "id": f"rootwatch-drill-{self.id}", "source": DRILL_SOURCE,
                 "detail-type": DRILL_DETAIL_TYPE, "account": self.account_id, "region": self.region,
                 "detail": {"drillId": self.id, "level": level}}
        start = self.clock()
        resp = lam.invoke(FunctionName=function_arn, InvocationType="Event", Payload=json.dumps(event).encode())
        if resp.get("StatusCode") not in (200, 202):
            raise DrillFailure(f"invoking {function_arn} returned {resp.get('StatusCode')}")
        return self.queue.wait("realtime", [topic], start, self.timeout, lambda m: realtime_message_matches(m, self.id))

    @staticmethod
    def _formatter_route(function_arn: str) -> tuple[str, str]:
        """(hub topic, level) the drill listens on: the critical topic beside the formatter."""
        parts = function_arn.split(":")
        if len(parts) < 7 or parts[2] != "lambda":
            raise DrillFailure(f"{function_arn} is not a Lambda function ARN")
        level = "critical"
        return f"arn:{parts[1]}:sns:{parts[3]}:{parts[4]}:{HUB_TOPIC_PREFIX}-{level}", level

    def _drill_rule_path(self, ev: Any, sns_targets: Sequence[dict[str, Any]]) -> PathResult:
        """Rules that target SNS directly: a temporary rule for this drill's events only, same targets."""
        topics = [t["Arn"] for t in sns_targets]
        self.queue.listen(topics)
        self._put_drill_rule(ev, sns_targets)
        detail = {"drillId": self.id, "account": self.account_id,
                  "message": f"rootwatch drill {self.id}: test of the real-time root alert route, no action needed"}
        start = self.clock()
        resp = ev.put_events(Entries=[{"Source": DRILL_SOURCE, "DetailType": DRILL_DETAIL_TYPE,
                                       "Detail": json.dumps(detail)}])
        if resp.get("FailedEntryCount"):
            entry = (resp.get("Entries") or [{}])[0]
            raise DrillFailure(f"PutEvents rejected the drill event: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
        return self.queue.wait("realtime", topics, start, self.timeout, lambda m: realtime_message_matches(m, self.id))

    def _put_drill_rule(self, ev: Any, sns_targets: Sequence[dict[str, Any]]) -> None:
        drill_rule = f"rootwatch-drill-{self.id}"
        ids = [f"drill-{i}" for i in range(len(sns_targets))]

        def remove_rule() -> None:
            try:
                ev.remove_targets(Rule=drill_rule, Ids=ids)
            except Exception as exc:
                if audit.error_code(exc) != "ResourceNotFoundException":
                    raise
            ev.delete_rule(Name=drill_rule)

        self.undo.register(f"delete rule {drill_rule}", remove_rule)
        ev.put_rule(Name=drill_rule, EventPattern=json.dumps(drill_rule_pattern(self.id)), State="ENABLED",
                    Description=f"rootwatch drill {self.id}; temporary, deleted by the drill")
        ev.put_targets(Rule=drill_rule, Targets=[
            {"Id": i, "Arn": t["Arn"], **({"RoleArn": t["RoleArn"]} if t.get("RoleArn") else {})}
            for i, t in zip(ids, sns_targets)])


def log_lines(drill: Drill, results: Sequence[PathResult], cleanup: Cleanup, interrupted: bool) -> list[str]:
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return [json.dumps({"time": now, "drillId": drill.id, "account": drill.account_id, "region": drill.region,
                        **r.to_json(), "cleanupOk": cleanup.ok, "interrupted": interrupted}, sort_keys=True)
            for r in results]


def add_parser(subparsers: Any) -> None:
    from rootwatch.commands.options import add_format_option

    p = subparsers.add_parser("drill", help="prove an alert reaches a human, and measure time-to-detect",
                              description="Prove a root-activity alert reaches its subscribers end to end, "
                                          "measure the seconds it took, and clean up.")
    p.add_argument("--account", required=True, metavar="ID", help="account to drill")
    p.add_argument("--path", choices=("alarm", "realtime", "both"), default="alarm",
                   help="which route to prove (default: alarm)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                   help="seconds to wait for each notification (default: 120)")
    p.add_argument("--log", default=DEFAULT_LOG, metavar="FILE",
                   help=f"append one JSON line per path to this file (default: {DEFAULT_LOG})")
    p.add_argument("--role-name", default=audit.DEFAULT_ROLE,
                   help=f"role to assume in the account (default: {audit.DEFAULT_ROLE})")
    p.add_argument("--region", help="region of the alarm and rule (default: the AWS configuration, else us-east-1)")
    p.add_argument("--alarm-name", default=ALARM_NAME, help=f"alarm to drill (default: {ALARM_NAME})")
    p.add_argument("--rule-name", default=RULE_NAME, help=f"real-time rule whose targets to drill (default: {RULE_NAME})")
    p.add_argument("--endpoint-url", metavar="URL", help="send every AWS call to this AWS-compatible endpoint")
    add_format_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    account = audit.validate_account_id(args.account, "--account")
    audit.validate_role_name(args.role_name)
    if args.region:
        audit.validate_region(args.region)
    if not 0 < args.timeout <= MAX_TIMEOUT:
        raise RootwatchError(f"--timeout {args.timeout:g} must be more than 0 and at most {MAX_TIMEOUT:g} seconds")
    try:
        with open(args.log, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise RootwatchError(f"--log {args.log}: cannot append ({exc.strerror or type(exc).__name__})") from None
    paths = list(PATHS) if args.path == "both" else [args.path]
    base = audit.base_clients(args.region, args.endpoint_url)
    try:
        caller = base("sts").get_caller_identity()["Account"]
        clients = audit.account_clients(base, account, caller, args.role_name, session_name="rootwatch-drill")
    except audit.AccountError as exc:
        raise RootwatchError(str(exc)) from None
    except Exception as exc:
        raise RootwatchError(f"cannot reach account {account}: {audit.describe_error(exc)}") from None
    drill = Drill(clients, account, region=clients.region, timeout=args.timeout,
                  alarm_name=args.alarm_name, rule_name=args.rule_name)
    results, cleanup, interrupted = drill.execute(paths)
    log_ok = True
    try:
        with open(args.log, "a", encoding="utf-8") as fh:
            fh.writelines(line + "\n" for line in log_lines(drill, results, cleanup, interrupted))
    except OSError as exc:
        log_ok = False
        print(f"rootwatch: warning: could not append to drill log {args.log}: {exc.strerror}", file=sys.stderr)
    report_results(drill, results, cleanup, args.format)
    if interrupted:
        raise KeyboardInterrupt
    return 0 if all(r.ok for r in results) and cleanup.ok and log_ok else 1


SCHEMA = "rootwatch.drill/v1"


def report_results(drill: Drill, results: Sequence[PathResult], cleanup: Cleanup, fmt: str,
                   out: Any = None) -> None:
    out = out or sys.stdout
    if fmt == "json":
        print(json.dumps({"schema": SCHEMA, "drillId": drill.id, "account": drill.account_id, "region": drill.region,
                          "ok": all(r.ok for r in results) and cleanup.ok,
                          "paths": [r.to_json() for r in results],
                          "cleanup": {"ok": cleanup.ok, "done": cleanup.done, "problems": cleanup.problems}},
                         indent=2), file=out)
        return
    print(f"drill {drill.id} in account {drill.account_id} ({drill.region})", file=out)
    for r in results:
        latency = f"{r.latency:.1f}s" if r.latency is not None else "-"
        print(f"{'PASS' if r.ok else 'FAIL':<5} {r.path:<9} {latency:>7}  {r.reason}", file=out)
    if cleanup.ok:
        print(f"cleanup: ok ({len(cleanup.done)} step(s))", file=out)
    else:
        print("cleanup: INCOMPLETE, remove by hand:", file=out)
        for p in cleanup.problems:
            print(f"  {p}", file=out)
