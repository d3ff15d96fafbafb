"""The alert formatter: a small Lambda between EventBridge and the SNS routes.

EventBridge (root-activity and tamper rules) -> this function -> the account's
topic for the alert's level. It ships as this module plus the detection and
severity modules it imports (the program packages the same files; see
``rootwatch.program.realtime.lambda_modules``), so it may import only the standard
library, boto3 and those modules.

What it decides, at alert time:
- the level: the severity matrix row of the account's baseline (passed in the
  environment; by default the higher of class default and baseline), raised
  when the record itself is worse than its class (a root sign-in without MFA);
- break-glass: windows are evaluated against the event's own time (start
  inclusive, end exclusive). A window never suppresses an alert: it marks it
  ``AUTHORIZED BREAK-GLASS <ticket> (approved by ...)`` and, if it sets a level,
  root alerts use that level. Tamper alerts stay critical;
- tamper (a non-root change to rootwatch's resources) and anything unreadable
  are critical, and the unreadable ones carry the raw event. So are events
  whose source is not ``aws.*``: only PutEvents can produce those, so they are
  reported as possibly forged rather than as root activity.

Failure: formatting errors still publish a critical alert with the raw event;
a publish that fails raises, so Lambda retries and then hands the raw event
to the on-failure destination (the critical topic). Nothing is dropped quietly.

The environment holds topic ARNs, account facts, the matrix row and the
account's windows: never a route endpoint.
"""

from __future__ import annotations

import json
import logging
import os
import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from rootwatch.core.arns import partition
from rootwatch.core.severity import Severity, highest
from rootwatch.detection.rule import (
    DEFAULT_CLASS_SEVERITY,
    EventClass,
    Finding,
    classify,
)
from rootwatch.lambdas import ledger, metrics

ENV_ACCOUNT = "ROOTWATCH_ACCOUNT"  # {"id", "name", "ou", "ouName", "baseline"}
ENV_TOPICS = "ROOTWATCH_TOPICS"  # {level: topic ARN}
ENV_SEVERITY = "ROOTWATCH_SEVERITY"  # {event class: level}, the matrix row of the baseline
ENV_BREAK_GLASS = "ROOTWATCH_BREAK_GLASS"  # [{"ticket", "approvers", "start", "end", "reason", "level"}]
ENV_RUNBOOK = "ROOTWATCH_RUNBOOK_URL"
DRILL_SOURCE = "rootwatch.drill"  # `rootwatch drill` invokes the function directly with this source

SUBJECT_MAX = 100  # SNS rejects longer subjects
FIELD_MAX = 300  # caller-controlled text (user agent) is cut to this
RAW_EVENT_MAX = 60_000  # the raw event appears in three protocol bodies; SNS allows 256 KB in all

log = logging.getLogger("rootwatch.lambdas.formatter")
log.setLevel(logging.INFO)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class ConfigurationError(RuntimeError):
    """The environment names no topic to publish to: fail the invocation (on-failure destination)."""


# -- tamper calls ----------------------------------------------------------------------------

# (eventSource, event-name prefix) of calls that change or delete a monitored resource.
# The tamper rule (rootwatch.program.realtime.tamper_pattern) matches them on rootwatch's own
# resources; here they only decide the wording of what that rule delivers.
TAMPER_CALLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cloudtrail.amazonaws.com", ("StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors")),
    ("logs.amazonaws.com", ("DeleteLogGroup", "DeleteMetricFilter", "PutRetentionPolicy")),
    ("monitoring.amazonaws.com", ("DeleteAlarms", "DisableAlarmActions", "PutMetricAlarm")),
    ("sns.amazonaws.com", ("DeleteTopic", "Unsubscribe", "SetTopicAttributes")),
    ("kms.amazonaws.com", ("DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy")),
    ("events.amazonaws.com", ("DeleteRule", "DisableRule", "RemoveTargets", "PutRule")),
    ("lambda.amazonaws.com", ("DeleteFunction", "UpdateFunctionCode", "UpdateFunctionConfiguration", "PutFunctionConcurrency")),
)
# Calls that weaken organization-level root prevention (management account), matched by
# rootwatch.program.prevention's rule: disabling the IAM root features or the trusted access they
# need; editing, detaching or deleting the root-deny SCP, or switching SCPs off; and the caller
# side of a root task that re-creates a member's root password.
PREVENTION_TAMPER_CALLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("iam.amazonaws.com", ("DisableOrganizationsRootCredentialsManagement", "DisableOrganizationsRootSessions")),
    ("organizations.amazonaws.com", ("DetachPolicy", "UpdatePolicy", "DeletePolicy", "DisableAWSServiceAccess",
                                     "DisablePolicyType")),
    ("sts.amazonaws.com", ("AssumeRoot",)),
)


def is_tamper_call(record: Mapping[str, Any]) -> bool:
    """True for the (source, event name) pairs the tamper rule watches (names aside)."""
    source, name = record.get("eventSource"), record.get("eventName")
    if not isinstance(name, str):
        return False
    return any(source == src and name.startswith(prefixes)
               for src, prefixes in (*TAMPER_CALLS, *PREVENTION_TAMPER_CALLS))


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    ticket: str
    approvers: tuple[str, ...]
    start: datetime
    end: datetime
    reason: str
    level: Severity | None

    def covers(self, when: datetime) -> bool:
        return self.start <= when < self.end

    def marking(self) -> str:
        return f"AUTHORIZED BREAK-GLASS {self.ticket} (approved by {', '.join(self.approvers)})"


@dataclass(frozen=True)
class Config:
    account_id: str
    account_name: str
    ou: str
    ou_name: str
    baseline: Severity
    topics: Mapping[Severity, str]
    matrix: Mapping[EventClass, Severity]
    windows: tuple[Window, ...]
    runbook_url: str | None
    # Parts of the environment that could not be read: the alert goes out critical, saying so.
    problems: tuple[str, ...] = ()


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _window(raw: Mapping[str, Any]) -> Window:
    start, end = parse_time(raw["start"]), parse_time(raw["end"])
    if start is None or end is None:
        raise ValueError(f"window {raw.get('ticket')!r} has an unreadable start or end")
    return Window(
        ticket=str(raw["ticket"]),
        approvers=tuple(str(a) for a in raw["approvers"]),
        start=start,
        end=end,
        reason=str(raw.get("reason") or ""),
        level=Severity(raw["level"]) if raw.get("level") else None,
    )


def load_config(env: Mapping[str, str]) -> Config:
    """Read the environment. Only unreadable topics are fatal; other gaps are reported in the alert."""
    try:
        topics = {Severity(k): str(v) for k, v in json.loads(env[ENV_TOPICS]).items() if v}
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"{ENV_TOPICS} is missing or unreadable ({type(exc).__name__})") from None
    if Severity.CRITICAL not in topics:
        raise ConfigurationError(f"{ENV_TOPICS} has no critical topic")
    problems: list[str] = []

    def read(name: str, default: Any) -> Any:
        try:
            return json.loads(env[name])
        except (KeyError, ValueError) as exc:
            problems.append(f"{name} is missing or unreadable ({type(exc).__name__})")
            return default

    account = read(ENV_ACCOUNT, {})
    account = account if isinstance(account, Mapping) else {}
    try:
        baseline = Severity(account.get("baseline"))
    except ValueError:
        problems.append("the account's baseline level is unknown")
        baseline = Severity.CRITICAL
    matrix: dict[EventClass, Severity] = {}
    raw_matrix = read(ENV_SEVERITY, {})
    try:
        matrix = {EventClass(k): Severity(v) for k, v in raw_matrix.items()}
    except (ValueError, AttributeError) as exc:
        problems.append(f"{ENV_SEVERITY} is unreadable ({type(exc).__name__})")
    windows: list[Window] = []
    for raw in read(ENV_BREAK_GLASS, []) or []:
        try:
            windows.append(_window(raw))
        except (KeyError, ValueError, TypeError) as exc:
            problems.append(f"a break-glass window is unreadable ({type(exc).__name__}: {exc})")
    return Config(
        account_id=str(account.get("id") or "unknown"),
        account_name=str(account.get("name") or "unknown account"),
        ou=str(account.get("ou") or ""),
        ou_name=str(account.get("ouName") or ""),
        baseline=baseline,
        topics=topics,
        matrix=matrix,
        windows=tuple(windows),
        runbook_url=env.get(ENV_RUNBOOK) or None,
        problems=tuple(problems),
    )


# -- decisions (pure) ------------------------------------------------------------------------


def class_severity(finding: Finding, cfg: Config) -> Severity:
    """Matrix cell of the class; raised when the record is worse than its class (no MFA)."""
    cls = finding.event_class
    level = cfg.matrix.get(cls) or highest(DEFAULT_CLASS_SEVERITY[cls], cfg.baseline)
    if finding.severity.rank > DEFAULT_CLASS_SEVERITY[cls].rank:
        level = highest(level, finding.severity)
    return level


def matching_windows(cfg: Config, event_time: datetime | None) -> list[Window]:
    """Windows of this account open at the event's own time (not at delivery time)."""
    if event_time is None:
        return []
    return [w for w in cfg.windows if w.covers(event_time)]


_CONSOLE_HOST = {"aws": "{r}.console.aws.amazon.com", "aws-cn": "console.amazonaws.cn", "aws-us-gov": "console.amazonaws-us-gov.com"}


def console_url(region: str | None, event_id: str | None) -> str | None:
    """CloudTrail event history, opened on the event (sign in to the event's account first)."""
    if not region or not event_id or not re.fullmatch(r"[a-z0-9-]{1,30}", region):
        return None
    host = _CONSOLE_HOST[partition(region)].format(r=region)
    return f"https://{host}/cloudtrailv2/home?region={region}#/events/{quote(event_id, safe='')}"


def clean(value: Any, limit: int = FIELD_MAX) -> str:
    """One printable line: event fields can be caller-controlled (user agent)."""
    if value is None or value == "":
        return "-"
    text = _CONTROL.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def subject_line(text: str) -> str:
    text = clean(text, SUBJECT_MAX)
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 3] + "..."


# -- the alert -------------------------------------------------------------------------------


@dataclass
class Alert:
    kind: str  # root | tamper | unrecognized | untrusted | malformed
    severity: Severity
    subject: str
    text: str
    doc: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _raw(event: Any) -> str:
    try:
        text = json.dumps(event, default=str, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(event)
    return text if len(text) <= RAW_EVENT_MAX else text[:RAW_EVENT_MAX] + "...(truncated)"


def _account_lines(cfg: Config) -> list[str]:
    ou = f"{cfg.ou_name} ({cfg.ou})" if cfg.ou_name and cfg.ou else (cfg.ou or "-")
    return [f"Account: {clean(cfg.account_name)} ({cfg.account_id})", f"OU: {clean(ou)}"]


def _window_lines(windows: list[Window]) -> list[str]:
    if not windows:
        return ["Break-glass window: none"]
    return [
        f"Break-glass window: {w.ticket}, {w.start:%Y-%m-%dT%H:%M:%SZ} to {w.end:%Y-%m-%dT%H:%M:%SZ}, "
        f"approved by {', '.join(w.approvers)}; reason: {clean(w.reason, 500)}"
        + (f"; level {w.level.value}" if w.level else "")
        for w in windows
    ]


def _window_docs(windows: list[Window]) -> list[dict[str, Any]]:
    return [
        {"ticket": w.ticket, "approvers": list(w.approvers), "start": f"{w.start:%Y-%m-%dT%H:%M:%SZ}",
         "end": f"{w.end:%Y-%m-%dT%H:%M:%SZ}", "reason": w.reason, "level": w.level.value if w.level else None}
        for w in windows
    ]


def _account_doc(cfg: Config) -> dict[str, Any]:
    return {"id": cfg.account_id, "name": cfg.account_name, "ou": cfg.ou, "ouName": cfg.ou_name, "baseline": cfg.baseline.value}


def _detail_of(event: Any) -> Mapping[str, Any] | None:
    detail = event.get("detail") if isinstance(event, Mapping) else None
    return detail if isinstance(detail, Mapping) else None


def build_alert(event: Any, cfg: Config) -> Alert:
    """Decide kind, level and wording for one EventBridge event."""
    detail = _detail_of(event)
    if detail is None:
        return fallback_alert(event, cfg, "the event carries no CloudTrail record (no detail object)")
    source = event.get("source")
    if source == DRILL_SOURCE:
        return _drill_alert(detail, cfg)
    if not (isinstance(source, str) and source.startswith("aws.")):
        # PutEvents cannot use an aws.* source, so this was not delivered by CloudTrail.
        # Still alerted (never dropped), but not dressed up as genuine root activity.
        return fallback_alert(event, cfg, f"the event source {clean(source, 80)!r} is not an AWS service: someone put "
                              "this event on the bus with PutEvents (possibly forged)", kind="untrusted")
    finding = classify(detail)
    if finding is not None:
        return _root_alert(event, detail, finding, cfg)
    if is_tamper_call(detail):
        return _tamper_alert(event, detail, cfg)
    # Only rootwatch's rules target this function: an event neither rule explains means
    # the rules and the classifier disagree. Alert loudly with the whole event.
    return fallback_alert(event, cfg, "the classifier does not recognise this event as root activity or tampering",
                          kind="unrecognized")


def _common_event_lines(detail: Mapping[str, Any], event: Mapping[str, Any]) -> list[str]:
    region = detail.get("awsRegion") or event.get("region")
    ident = detail.get("userIdentity")
    return [
        f"Time: {clean(detail.get('eventTime'))}",
        f"Region: {clean(region)}",
        f"Source IP: {clean(detail.get('sourceIPAddress'))}",
        f"User agent: {clean(detail.get('userAgent'))}",
        f"Caller: {clean(_get(ident, 'arn'))} ({clean(_get(ident, 'type'))})",
        f"Access key: {clean(_get(ident, 'accessKeyId'))}",
        f"Error code: {clean(detail.get('errorCode'))}",
        f"Event ID: {clean(detail.get('eventID'))}",
    ]


def _tail_lines(cfg: Config, url: str | None, windows: list[Window], notes: list[str]) -> list[str]:
    lines = [f"Console: {url or '-'}", f"Runbook: {cfg.runbook_url or '-'}", *_window_lines(windows)]
    return lines + [f"Note: {n}" for n in notes]


def _root_alert(event: Mapping[str, Any], detail: Mapping[str, Any], finding: Finding, cfg: Config) -> Alert:
    notes = list(cfg.problems)
    level = class_severity(finding, cfg)
    windows = matching_windows(cfg, parse_time(finding.event_time))
    if finding.event_time is not None and parse_time(finding.event_time) is None:
        notes.append("the event time is unreadable: break-glass windows were not evaluated")
    window_levels = [w.level for w in windows if w.level]
    if window_levels:
        level = highest(*window_levels)
    if notes:
        level = Severity.CRITICAL
    event_name = finding.event_name or "unknown event"
    region = finding.region or _str(event.get("region"))
    url = console_url(region, finding.event_id)
    marking = [w.marking() for w in windows]
    prefix = f"[{level.value.upper()}] " + (f"BREAK-GLASS {windows[0].ticket}: " if windows else "")
    subject = subject_line(f"{prefix}Root {event_name} in {cfg.account_name} ({cfg.account_id})")
    lines = [
        *marking,
        f"Root user activity: {clean(event_name)}",
        f"Severity: {level.value.upper()} (event class {finding.event_class.value}, account baseline {cfg.baseline.value})",
        *_account_lines(cfg),
        f"Event: {clean(event_name)} ({clean(finding.event_source)})",
        f"Class: {finding.event_class.value}",
        f"MFA used: {clean(finding.mfa_used)}",
        *(["Session: sts:AssumeRoot (centralized root access)"] if finding.assumed_root else []),
        *_common_event_lines(detail, event),
        *_tail_lines(cfg, url, windows, notes),
    ]
    doc = {
        "kind": "root", "severity": level.value, "subject": subject, "account": _account_doc(cfg),
        "finding": finding.to_dict(), "breakGlass": _window_docs(windows), "marking": marking,
        "consoleUrl": url, "runbookUrl": cfg.runbook_url, "notes": notes,
    }
    return Alert("root", level, subject, "\n".join(lines), doc, notes)


def _tamper_alert(event: Mapping[str, Any], detail: Mapping[str, Any], cfg: Config) -> Alert:
    notes = list(cfg.problems)
    name = str(detail.get("eventName") or "unknown call")
    windows = matching_windows(cfg, parse_time(detail.get("eventTime")))
    region = _str(detail.get("awsRegion")) or _str(event.get("region"))
    url = console_url(region, _str(detail.get("eventID")))
    marking = [w.marking() for w in windows]
    subject = subject_line(f"[CRITICAL] TAMPER: {name} on rootwatch in {cfg.account_name} ({cfg.account_id})")
    params = _raw(detail.get("requestParameters"))[:FIELD_MAX]
    lines = [
        *marking,
        f"Someone other than the rootwatch deployer changed rootwatch's own resources: {clean(name)}",
        "Severity: CRITICAL (tamper alarm)",
        *_account_lines(cfg),
        f"Event: {clean(name)} ({clean(detail.get('eventSource'))})",
        f"Request: {clean(params)}",
        *_common_event_lines(detail, event),
        *_tail_lines(cfg, url, windows, notes),
    ]
    doc = {
        "kind": "tamper", "severity": Severity.CRITICAL.value, "subject": subject, "account": _account_doc(cfg),
        "event": {"name": name, "source": detail.get("eventSource"), "time": detail.get("eventTime"),
                  "id": detail.get("eventID"), "region": region, "caller": _get(detail, "userIdentity", "arn"),
                  "sourceIp": detail.get("sourceIPAddress"), "requestParameters": detail.get("requestParameters")},
        "breakGlass": _window_docs(windows), "marking": marking, "consoleUrl": url, "runbookUrl": cfg.runbook_url,
        "notes": notes,
    }
    return Alert("tamper", Severity.CRITICAL, subject, "\n".join(lines), doc, notes)


def _drill_alert(detail: Mapping[str, Any], cfg: Config) -> Alert:
    """`rootwatch drill`: proves formatter -> KMS -> topic -> subscribers, clearly labelled.

    Only a direct, IAM-authorised Invoke can deliver it: the rules admit aws.* sources
    only, and PutEvents cannot use those, so nobody can inject a drill through the bus.
    """
    drill_id = clean(detail.get("drillId"), 32)
    try:
        level = Severity(str(detail.get("level") or cfg.baseline.value))
    except ValueError:
        level = cfg.baseline
    subject = subject_line(f"[DRILL] rootwatch: test of the real-time route for {cfg.account_name} ({cfg.account_id})")
    lines = [
        f"rootwatch drill {drill_id}: a test of the real-time root alert route. No action needed.",
        f"Severity route tested: {level.value.upper()}",
        *_account_lines(cfg),
    ]
    doc = {"kind": "drill", "severity": level.value, "subject": subject, "account": _account_doc(cfg),
           "source": DRILL_SOURCE, "detail": {"drillId": drill_id}}
    return Alert("drill", level, subject, "\n".join(lines), doc, [])


def fallback_alert(event: Any, cfg: Config, reason: str, kind: str = "malformed") -> Alert:
    """Critical, with the raw event: used for anything that cannot be formatted normally."""
    notes = [*cfg.problems, reason]
    subject = subject_line(f"[CRITICAL] rootwatch: unreadable event in {cfg.account_name} ({cfg.account_id})")
    raw = _raw(event)
    lines = [
        "rootwatch received an event it could not format. Treat it as root activity until shown otherwise.",
        "Severity: CRITICAL",
        *_account_lines(cfg),
        f"Runbook: {cfg.runbook_url or '-'}",
        *[f"Note: {n}" for n in notes],
        "Raw event:",
        raw,
    ]
    doc = {"kind": kind, "severity": Severity.CRITICAL.value, "subject": subject, "account": _account_doc(cfg),
           "notes": notes, "runbookUrl": cfg.runbook_url, "rawEvent": raw}
    return Alert(kind, Severity.CRITICAL, subject, "\n".join(lines), doc, notes)


# -- delivery --------------------------------------------------------------------------------


def route(alert: Alert, cfg: Config) -> str:
    """The topic of the alert's level; critical (with a note) if that level has no topic."""
    arn = cfg.topics.get(alert.severity)
    if arn:
        return arn
    alert.notes.append(f"no topic for level {alert.severity.value}: sent to the critical route")
    alert.text += f"\nNote: {alert.notes[-1]}"
    alert.doc.setdefault("notes", []).append(alert.notes[-1])
    return cfg.topics[Severity.CRITICAL]


def sns_request(alert: Alert, topic_arn: str) -> dict[str, Any]:
    """Publish arguments: text for people (email), the JSON document for machines (SQS, Lambda)."""
    doc = json.dumps(alert.doc, default=str, sort_keys=True)
    return {
        "TopicArn": topic_arn,
        "Subject": alert.subject,
        "MessageStructure": "json",
        "Message": json.dumps({"default": alert.text, "sqs": doc, "lambda": doc}),
        "MessageAttributes": {
            "severity": {"DataType": "String", "StringValue": alert.severity.value},
            "kind": {"DataType": "String", "StringValue": alert.kind},
            "account": {"DataType": "String", "StringValue": alert.doc["account"]["id"]},
        },
    }


def publish(alert: Alert, cfg: Config, client: Any = None) -> str:
    arn = route(alert, cfg)
    if client is None:
        import boto3  # in the Lambda runtime; imported late so the pure parts need nothing

        client = boto3.client("sns", region_name=arn.split(":")[3])
    response = client.publish(**sns_request(alert, arn))
    return str(response.get("MessageId", ""))


def _record_incident(alert: Alert, event: Any, env: Mapping[str, str], ttd: float | None, path: str,
                     now: datetime, client: Any) -> None:
    """Open or update the incident (when a ledger table is configured). Never fails the alert."""
    table = env.get(ledger.ENV_TABLE)
    facts = ledger.facts_from_alert(alert.doc, event, now=now, time_to_detect=ttd, path=path) if table else None
    if facts is None:
        return
    try:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        ledger.record(client, str(table), facts)
    except Exception:  # the alert is out already; the ledger is bookkeeping
        log.error("incident ledger update failed: %s", traceback.format_exc())


def handler(event: Any, context: Any = None, *, client: Any = None, env: Mapping[str, str] | None = None,
            clock: Any = None, ledger_client: Any = None) -> dict[str, Any]:
    """Lambda entry point. Raises only when nothing could be published (then Lambda's
    retries and the on-failure destination deliver the raw event to the critical route).

    ``clock`` (tests) returns the publish time; ``ledger_client`` is the DynamoDB client."""
    env = os.environ if env is None else env
    cfg = load_config(env)
    try:
        alert = build_alert(event, cfg)
    except Exception as exc:  # never lose the alert to a formatting bug
        log.error("formatting failed: %s", traceback.format_exc())
        alert = fallback_alert(event, cfg, f"formatting failed: {type(exc).__name__}: {clean(exc)}")
    now = clock() if clock else datetime.now(timezone.utc)  # time to detect: event -> this publish
    ttd, path = metrics.time_to_detect(event, now), metrics.path_of(event)
    if alert.kind != "drill":  # a drill's figure is measured end to end by `rootwatch drill`
        alert.text += "\n" + metrics.detect_line(ttd, path)
        alert.doc["timeToDetectSeconds"] = ttd
    message_id = publish(alert, cfg, client)
    if ttd is not None and alert.kind != "drill":  # EMF: CloudWatch Logs extracts the metric, no API call
        print(metrics.emf_line(ttd, path=path, level=alert.severity.value, now=now, kind=alert.kind,
                               account=cfg.account_id, eventId=_get(event, "detail", "eventID")), flush=True)
    _record_incident(alert, event, env, ttd, path, now, ledger_client)
    log.info(json.dumps({"kind": alert.kind, "severity": alert.severity.value, "messageId": message_id,
                         "eventId": _get(event, "detail", "eventID")}, default=str))
    return {"kind": alert.kind, "severity": alert.severity.value, "messageId": message_id}
