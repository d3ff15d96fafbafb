"""The alert formatter: ONE Lambda in the hub account, between the alert sources and the hub's routes.

Sources (rootwatch.program.hub deploys them):

- the hub event bus ``rootwatch-alerts``: every member account's root-activity and
  tamper rules, in every region, send their CloudTrail events straight to it;
  rules on that bus invoke this function (the event's ``account`` names the member);
- the alarm intake queue: an SQS queue subscribed to every member's local alarm
  topic (the CIS chain). Its batches carry SNS notifications of CloudWatch alarms,
  turned into the same readable alert (account name, OU, severity, runbook);
- ``rootwatch drill``: a direct Invoke with source ``rootwatch.drill``;
- the heartbeat schedule (``{"source": "rootwatch.heartbeat"}`` every 5 minutes): no alert,
  one EMF metric line, so the hub's heartbeat alarm hears silence when this code is gone.

It ships as this module plus the detection and severity modules it imports (see
``rootwatch.program.realtime.lambda_modules``) and the **account directory**, a JSON
file in the same archive (``rootwatch_directory.json``): account id -> name, OU,
baseline and tags, the hub's topic per level, the severity matrix per baseline,
the break-glass windows and the runbook. A file, not environment variables: Lambda
caps all variables of a function at 4 KB, reached at about 40 accounts.

What it decides, at alert time:
- the level: the severity matrix row of the account's baseline (by default the
  higher of class default and baseline), raised when the record itself is worse
  than its class (a root sign-in without MFA);
- break-glass: windows are evaluated against the event's own time (start
  inclusive, end exclusive). A window never suppresses an alert: it marks it
  ``AUTHORIZED BREAK-GLASS <ticket> (approved by ...)`` and, if it sets a level,
  root alerts use that level. Tamper alerts stay critical;
- tamper (a non-root change to rootwatch's resources) and anything unreadable
  are critical, and the unreadable ones carry the raw event. So are events
  whose source is not ``aws.*``: only PutEvents can produce those, so they are
  reported as possibly forged rather than as root activity;
- centralized root sessions (sts:AssumeRoot): the caller-side ``AssumeRoot``
  record (management or delegated-admin account) is kept in a DynamoDB table
  with a TTL, keyed by the access key id it issued; every member-side root alert
  using that key is labelled "centralized root session opened by <caller> with
  task <policy>". Still an alert, never suppressed;
- size: SNS accepts 256 KiB per message and the raw event can appear in several
  protocol bodies, so a large alert is cut (with a note), never dropped.

Failure: formatting errors still publish a critical alert with the raw event;
a publish that fails raises, so Lambda retries and then hands the raw event to
the on-failure destination (the critical topic); a failed queue message is
reported back (batch item failure) and reaches the intake dead-letter queue.
Nothing is dropped quietly. The directory holds topic ARNs, never an endpoint.
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

# The account directory: a file shipped in the function's archive (see the module docstring).
DIRECTORY_FILE = "rootwatch_directory.json"
ENV_DIRECTORY_FILE = "ROOTWATCH_DIRECTORY_FILE"  # optional override of the file's path
# Keys of the directory document.
DIR_ACCOUNTS = "accounts"  # {id: {"name", "ou", "ouName", "baseline", "tags"}}
DIR_TOPICS = "topics"  # {level: topic ARN} (the hub's topics)
DIR_MATRIX = "matrix"  # {baseline: {event class: level}}
DIR_BREAK_GLASS = "breakGlass"  # [{"ticket", "accounts", "approvers", "start", "end", "reason", "level"}]
DIR_RUNBOOK = "runbookUrl"
DIR_SESSIONS_TABLE = "sessionsTable"  # DynamoDB table of AssumeRoot openers
DIR_HUB = "hubAccountId"
DRILL_SOURCE = "rootwatch.drill"
HEARTBEAT_SOURCE = "rootwatch.heartbeat"  # the hub's schedule: answered with a metric, never an alert
HUB_TOPIC_PREFIX = "rootwatch-hub"  # the hub's topics: rootwatch-hub-<level>  # `rootwatch drill` invokes the function directly with this source

SUBJECT_MAX = 100  # SNS rejects longer subjects
FIELD_MAX = 300  # caller-controlled text (user agent) is cut to this
RAW_EVENT_MAX = 60_000  # the raw event appears in three protocol bodies; SNS allows 256 KB in all
# SNS's limit is 262,144 bytes for message, subject and attributes together; keep a margin.
SNS_MESSAGE_BUDGET = 250_000
# How long the caller side of an AssumeRoot call is kept (its sessions last at most 15 minutes).
SESSION_RECORD_SECONDS = 3600

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
    # PutMetricFilter: rewriting the CIS pattern disables the chain as surely as deleting it.
    ("logs.amazonaws.com", ("DeleteLogGroup", "DeleteMetricFilter", "PutRetentionPolicy", "PutMetricFilter")),
    ("monitoring.amazonaws.com", ("DeleteAlarms", "DisableAlarmActions", "PutMetricAlarm")),
    # SetSubscriptionAttributes: a filter policy that matches nothing silences a route.
    ("sns.amazonaws.com", ("DeleteTopic", "Unsubscribe", "SetTopicAttributes", "SetSubscriptionAttributes")),
    ("kms.amazonaws.com", ("DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy")),
    ("events.amazonaws.com", ("DeleteRule", "DisableRule", "RemoveTargets", "PutRule", "PutTargets",
                              "DeleteEventBus", "PutPermission", "RemovePermission")),
    ("lambda.amazonaws.com", ("DeleteFunction", "UpdateFunctionCode", "UpdateFunctionConfiguration", "PutFunctionConcurrency",
                              "RemovePermission", "PutFunctionEventInvokeConfig", "UpdateFunctionEventInvokeConfig",
                              "DeleteFunctionEventInvokeConfig")),
    ("sqs.amazonaws.com", ("DeleteQueue", "SetQueueAttributes", "PurgeQueue")),
    # IAM is global: its events reach EventBridge in us-east-1 only.
    ("iam.amazonaws.com", ("PutRolePolicy", "DeleteRolePolicy", "UpdateAssumeRolePolicy", "AttachRolePolicy", "DeleteRole")),
    ("dynamodb.amazonaws.com", ("DeleteTable", "UpdateTimeToLive")),
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


def _unknown_account(account_id: str) -> dict[str, Any]:
    return {"name": "unknown account", "ou": "", "ouName": "", "baseline": None}


@dataclass(frozen=True)
class Directory:
    """The account directory and routing of the whole organization (the archive's JSON file)."""

    accounts: Mapping[str, Mapping[str, Any]]
    topics: Mapping[Severity, str]
    matrix: Mapping[str, Any]
    windows: tuple[Mapping[str, Any], ...]
    runbook_url: str | None
    sessions_table: str | None
    hub_account_id: str
    problems: tuple[str, ...] = ()

    def config_for(self, account_id: Any) -> Config:
        """Everything one alert of ``account_id`` needs; gaps become notes (and a critical alert)."""
        problems = list(self.problems)
        acct = str(account_id) if account_id else "unknown"
        entry = self.accounts.get(acct)
        if not isinstance(entry, Mapping):
            problems.append(f"account {clean(acct, 20)} is not in rootwatch's account directory (not enrolled, or the "
                            "directory is stale: run pulumi up)")
            entry = _unknown_account(acct)
        try:
            baseline = Severity(entry.get("baseline"))
        except ValueError:
            problems.append("the account's baseline level is unknown")
            baseline = Severity.CRITICAL
        matrix: dict[EventClass, Severity] = {}
        try:
            row = self.matrix.get(baseline.value, {})
            matrix = {EventClass(k): Severity(v) for k, v in row.items()}
        except (ValueError, AttributeError) as exc:
            problems.append(f"the directory's {DIR_MATRIX} is unreadable ({type(exc).__name__})")
        windows: list[Window] = []
        for raw in self.windows:
            try:
                if acct in raw["accounts"]:
                    windows.append(_window(raw))
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                problems.append(f"a break-glass window is unreadable ({type(exc).__name__}: {exc})")
        return Config(
            account_id=acct,
            account_name=str(entry.get("name") or "unknown account"),
            ou=str(entry.get("ou") or ""),
            ou_name=str(entry.get("ouName") or ""),
            baseline=baseline,
            topics=self.topics,
            matrix=matrix,
            windows=tuple(windows),
            runbook_url=self.runbook_url,
            problems=tuple(problems),
        )


def load_directory(doc: Any) -> Directory:
    """Read the directory document. Only unreadable topics are fatal; other gaps are reported in the alert."""
    if not isinstance(doc, Mapping):
        raise ConfigurationError("the account directory is not a JSON object")
    try:
        topics = {Severity(k): str(v) for k, v in doc[DIR_TOPICS].items() if v}
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"the directory's {DIR_TOPICS} are missing or unreadable ({type(exc).__name__})") from None
    if Severity.CRITICAL not in topics:
        raise ConfigurationError(f"the directory's {DIR_TOPICS} have no critical topic")
    problems: list[str] = []

    def part(key: str, kind: type, default: Any) -> Any:
        value = doc.get(key, default)
        if not isinstance(value, kind):
            problems.append(f"the directory's {key} is missing or unreadable")
            return default
        return value

    windows = part(DIR_BREAK_GLASS, list, [])
    return Directory(
        accounts=part(DIR_ACCOUNTS, dict, {}),
        topics=topics,
        matrix=part(DIR_MATRIX, dict, {}),
        windows=tuple(w if isinstance(w, Mapping) else {"accounts": []} for w in windows),
        runbook_url=_str(doc.get(DIR_RUNBOOK)),
        sessions_table=_str(doc.get(DIR_SESSIONS_TABLE)),
        hub_account_id=str(doc.get(DIR_HUB) or ""),
        problems=tuple(problems),
    )


def read_directory(env: Mapping[str, str]) -> Directory:
    """The directory file shipped next to the package in the function's archive."""
    from pathlib import Path

    path = env.get(ENV_DIRECTORY_FILE) or str(Path(__file__).resolve().parents[2] / DIRECTORY_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"the account directory {path} is missing or unreadable ({type(exc).__name__})") from None
    return load_directory(doc)


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


def _longest(obj: Any, path: tuple[Any, ...] = ()) -> tuple[int, tuple[Any, ...]]:
    """(length, path) of the longest string inside a JSON-like value."""
    best = (len(obj), path) if isinstance(obj, str) else (-1, path)
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        best = max(best, _longest(v, (*path, k)), key=lambda x: x[0])
    return best


def _cut(text: str, keep: int) -> str:
    return text[:keep] + f"...(cut: {len(text) - keep} characters omitted to fit SNS's 256 KiB)"


def fit_alert(alert: Alert, budget: int = SNS_MESSAGE_BUDGET) -> Alert:
    """Cut the longest parts (the raw event, long fields) until the encoded request fits SNS. Never drops."""
    def size() -> int:
        r = _encode(alert, "arn:aws:sns:us-east-1:000000000000:" + "x" * 256)
        return len(r["Message"].encode()) + len(r["Subject"].encode()) + 200
    if size() <= budget:
        return alert
    note = "the alert was cut to fit SNS's 256 KiB message limit; the full event is in CloudTrail (Event ID)"
    alert.notes.append(note)
    alert.doc.setdefault("notes", []).append(note)
    first, _, rest = alert.text.partition("\n")
    alert.text = f"{first}\nNote: {note}\n{rest}"  # near the top: the cut takes the end
    for _ in range(64):
        over = size() - budget
        if over <= 0:
            break
        text_len = len(alert.text)
        doc_len, path = _longest(alert.doc)
        if text_len >= doc_len:
            alert.text = _cut(alert.text, max(0, text_len - over - 200) if text_len > over else text_len // 2)
        else:
            parent = alert.doc
            for k in path[:-1]:
                parent = parent[k]
            # Text counts once, doc strings twice (sqs and lambda bodies): cut accordingly.
            parent[path[-1]] = _cut(parent[path[-1]], max(0, doc_len - over // 2 - 200))
    return alert


def _encode(alert: Alert, topic_arn: str) -> dict[str, Any]:
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


def sns_request(alert: Alert, topic_arn: str) -> dict[str, Any]:
    """Publish arguments: text for people (email), the JSON document for machines (SQS, Lambda); within SNS's size."""
    return _encode(fit_alert(alert), topic_arn)


def publish(alert: Alert, cfg: Config, client: Any = None) -> str:
    arn = route(alert, cfg)
    if client is None:
        import boto3  # in the Lambda runtime; imported late so the pure parts need nothing

        client = boto3.client("sns", region_name=arn.split(":")[3])
    response = client.publish(**sns_request(alert, arn))
    return str(response.get("MessageId", ""))


# -- centralized root sessions (sts:AssumeRoot) -------------------------------------------------


def assume_root_opening(detail: Mapping[str, Any]) -> dict[str, Any] | None:
    """The caller side of sts:AssumeRoot: who opened a root session in which account, with which task policy."""
    if detail.get("eventSource") != "sts.amazonaws.com" or detail.get("eventName") != "AssumeRoot":
        return None
    key = _str(_get(detail, "responseElements", "credentials", "accessKeyId"))
    if key is None:  # a failed call issued no credentials: nothing to link
        return None
    task = _get(detail, "requestParameters", "taskPolicyArn")
    return {
        "accessKeyId": key,
        "caller": _str(_get(detail, "userIdentity", "arn")) or "unknown caller",
        "callerAccount": _str(_get(detail, "userIdentity", "accountId")) or "",
        "targetAccount": str(_get(detail, "requestParameters", "targetPrincipal") or ""),
        "taskPolicy": _str(_get(task, "arn")) if isinstance(task, Mapping) else _str(task) or "unknown task policy",
        "eventTime": _str(detail.get("eventTime")) or "",
        "eventId": _str(detail.get("eventID")) or "",
    }


class SessionTable:
    """The AssumeRoot openers, in DynamoDB (key: the issued access key id; TTL attribute ``expiresAt``)."""

    def __init__(self, name: str, client: Any = None) -> None:
        self.name = name
        self._client = client

    def _db(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("dynamodb")
        return self._client

    def record(self, opening: Mapping[str, Any], now: float) -> None:
        item = {k: {"S": str(v)} for k, v in opening.items()}
        item["expiresAt"] = {"N": str(int(now) + SESSION_RECORD_SECONDS)}
        self._db().put_item(TableName=self.name, Item=item)

    def opener(self, access_key_id: str) -> dict[str, str] | None:
        got = self._db().get_item(TableName=self.name, Key={"accessKeyId": {"S": access_key_id}}, ConsistentRead=True)
        item = got.get("Item")
        return {k: v.get("S", "") for k, v in item.items() if "S" in v} if item else None


def session_label(detail: Mapping[str, Any], sessions: SessionTable | None) -> str | None:
    """For a root record on temporary (ASIA) credentials: the AssumeRoot session it belongs to, if known."""
    key = _str(_get(detail, "userIdentity", "accessKeyId"))
    if key is None or not key.startswith("ASIA"):
        return None
    opener = None
    if sessions is not None:
        try:
            opener = sessions.opener(key)
        except Exception as exc:  # a lookup failure must not cost the alert
            log.error("session lookup failed: %s", exc)
            return f"root session on temporary credentials {key}: the AssumeRoot lookup failed ({type(exc).__name__})"
    if opener:
        return (f"centralized root session opened by {clean(opener.get('caller'))} with task "
                f"{clean(opener.get('taskPolicy'))} (AssumeRoot at {clean(opener.get('eventTime'))}, from account "
                f"{clean(opener.get('callerAccount'))})")
    return (f"root session on temporary credentials {key} with no known opener: no AssumeRoot call issuing this key "
            "was seen (a console session, or an opener outside rootwatch's accounts)")


def _label(alert: Alert, label: str) -> None:
    lines = alert.text.split("\n")
    # After the marking lines, before the details: responders read it first.
    at = next((i for i, line in enumerate(lines) if line.startswith("Root user activity")), 0) + 1
    lines.insert(at, f"Session: {label}")
    alert.text = "\n".join(lines)
    alert.doc["session"] = label


# -- CloudWatch alarm notifications (the alarm intake queue) -------------------------------------


def _level_of_topic(topic_arn: Any) -> Severity | None:
    name = str(topic_arn or "").rsplit(":", 1)[-1]
    try:
        return Severity(name.rsplit("-", 1)[-1])
    except ValueError:
        return None


def alarm_alert(notification: Mapping[str, Any], message: Mapping[str, Any], directory: Directory) -> Alert:
    """A member's CIS alarm (root activity seen by the metric filter) as a readable alert."""
    cfg = directory.config_for(message.get("AWSAccountId") or str(notification.get("TopicArn", "::::")).split(":")[4])
    notes = list(cfg.problems)
    level = _level_of_topic(notification.get("TopicArn")) or cfg.baseline
    if notes:
        level = Severity.CRITICAL
    name = clean(message.get("AlarmName"), 120)
    state = clean(message.get("NewStateValue"), 30)
    region = clean(message.get("Region"), 60)
    subject = subject_line(f"[{level.value.upper()}] Root activity alarm {name} in {cfg.account_name} ({cfg.account_id})")
    lines = [
        f"CloudWatch alarm {name} is {state}: the CIS root-usage metric filter counted root activity.",
        f"Severity: {level.value.upper()} (account baseline {cfg.baseline.value})",
        *_account_lines(cfg),
        f"Region: {region}",
        f"Reason: {clean(message.get('NewStateReason'), 500)}",
        f"Changed: {clean(message.get('StateChangeTime'))}",
        "Look up the root events in CloudTrail event history (User name: root) around that time.",
        f"Runbook: {cfg.runbook_url or '-'}",
        *[f"Note: {n}" for n in notes],
    ]
    doc = {"kind": "alarm", "severity": level.value, "subject": subject, "account": _account_doc(cfg),
           "alarm": {"name": message.get("AlarmName"), "state": message.get("NewStateValue"),
                     "reason": message.get("NewStateReason"), "time": message.get("StateChangeTime"),
                     "region": message.get("Region"), "topicArn": notification.get("TopicArn")},
           "runbookUrl": cfg.runbook_url, "notes": notes}
    return Alert("alarm", level, subject, "\n".join(lines), doc, notes)


def _alarm_record(record: Mapping[str, Any], directory: Directory, client: Any, clock: Any = None,
                  ledger_client: Any = None) -> dict[str, Any]:
    body = json.loads(record["body"])
    kind = body.get("Type")
    if kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        # Never confirmed from here: the hub creates its own subscriptions (confirmed by AWS).
        log.warning(json.dumps({"ignored": kind, "topicArn": body.get("TopicArn")}))
        return {"kind": "ignored"}
    message = json.loads(body["Message"]) if isinstance(body.get("Message"), str) else {}
    if not isinstance(message, Mapping) or "AlarmName" not in message:
        cfg = directory.config_for(str(body.get("TopicArn", "::::")).split(":")[4])
        alert = fallback_alert(body, cfg, "a message on the alarm intake queue is not a CloudWatch alarm notification")
    elif message.get("NewStateValue") != "ALARM":
        log.info(json.dumps({"alarm": message.get("AlarmName"), "state": message.get("NewStateValue")}))
        return {"kind": "alarm-state", "state": message.get("NewStateValue")}
    else:
        alert = alarm_alert(body, message, directory)
    cfg = directory.config_for(alert.doc["account"]["id"])
    return {"kind": alert.kind, "severity": alert.severity.value,
            "messageId": publish_measured(alert, cfg, body, client, clock, ledger_client)}


def handle_queue(event: Mapping[str, Any], directory: Directory, client: Any = None, clock: Any = None,
                 ledger_client: Any = None) -> dict[str, Any]:
    """An SQS batch from the alarm intake queue; failed messages go back (and on to its dead-letter queue)."""
    failures, results = [], []
    for record in event.get("Records") or []:
        try:
            results.append(_alarm_record(record, directory, client, clock, ledger_client))
        except Exception:  # reported back: SQS redelivers it, then moves it to the dead-letter queue
            log.error("alarm notification failed: %s", traceback.format_exc())
            failures.append({"itemIdentifier": record.get("messageId", "")})
    return {"batchItemFailures": failures, "results": results}


def _is_queue_batch(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, Mapping) else None
    return isinstance(records, list) and bool(records) and all(
        isinstance(r, Mapping) and r.get("eventSource") == "aws:sqs" for r in records)


# -- entry point -------------------------------------------------------------------------------


def _record_incident(alert: Alert, event: Any, ttd: float | None, path: str, now: datetime, client: Any) -> None:
    """Open or update the incident (when a ledger table is configured). Never fails the alert."""
    table = os.environ.get(ledger.ENV_TABLE)
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


def publish_measured(alert: Alert, cfg: Config, event: Any, client: Any = None, clock: Any = None,
                     ledger_client: Any = None) -> str:
    """Publish with the time to detect (event or alarm state change -> this publish) in the message,
    as an Embedded Metric Format line in the log, and in the incident ledger."""
    now = clock() if clock else datetime.now(timezone.utc)
    ttd, path = metrics.time_to_detect(event, now), metrics.path_of(event)
    if alert.kind != "drill":  # a drill's figure is measured end to end by `rootwatch drill`
        alert.text += "\n" + metrics.detect_line(ttd, path)
        alert.doc["timeToDetectSeconds"] = ttd
    message_id = publish(alert, cfg, client)
    if ttd is not None and alert.kind != "drill":  # EMF: CloudWatch Logs extracts the metric, no API call
        print(metrics.emf_line(ttd, path=path, level=alert.severity.value, now=now, kind=alert.kind,
                               account=cfg.account_id, eventId=_get(event, "detail", "eventID")), flush=True)
    _record_incident(alert, event, ttd, path, now, ledger_client)
    return message_id


def handler(event: Any, context: Any = None, *, client: Any = None, directory: Directory | None = None,
            sessions: SessionTable | None = None, now: float | None = None, clock: Any = None,
            ledger_client: Any = None) -> dict[str, Any]:
    """Lambda entry point. Raises only when nothing could be published (then Lambda's
    retries and the on-failure destination deliver the raw event to the critical route).

    ``clock`` (tests) returns the publish time; ``ledger_client`` is the DynamoDB client."""
    import time

    directory = directory or read_directory(os.environ)
    if sessions is None and directory.sessions_table:
        sessions = SessionTable(directory.sessions_table)
    if _is_queue_batch(event):
        return handle_queue(event, directory, client, clock, ledger_client)
    if isinstance(event, Mapping) and event.get("source") == HEARTBEAT_SOURCE:
        # Healthy means able to page: a directory without the critical topic writes no heartbeat.
        if Severity.CRITICAL not in directory.topics:
            raise ConfigurationError("heartbeat: the directory names no critical topic")
        print(metrics.heartbeat_line(datetime.now(timezone.utc), len(directory.accounts)), flush=True)
        return {"kind": "heartbeat"}
    account = event.get("account") if isinstance(event, Mapping) else None
    detail = _detail_of(event)
    if detail is not None and _str(event.get("source") or "") and str(event.get("source")).startswith("aws."):
        # A CloudTrail event keeps its account when a member rule forwards it; the record names it too.
        account = _str(detail.get("recipientAccountId")) or account
    if detail is not None and _str(event.get("source")) == "aws.sts":
        opening = assume_root_opening(detail)
        if opening is not None:
            # The caller side is not an alert (its member-side records are); keep it to label them.
            if sessions is None:
                log.error("no sessions table: AssumeRoot opener %s not recorded", opening["accessKeyId"])
            else:
                sessions.record(opening, time.time() if now is None else now)
            return {"kind": "assume-root-recorded", "accessKeyId": opening["accessKeyId"]}
    if isinstance(event, Mapping) and event.get("source") == DRILL_SOURCE:
        account = _get(event, "detail", "accountId") or account or directory.hub_account_id
    cfg = directory.config_for(account)
    try:
        alert = build_alert(event, cfg)
        if alert.kind == "root" and detail is not None:
            label = session_label(detail, sessions)
            if label:
                _label(alert, label)
    except Exception as exc:  # never lose the alert to a formatting bug
        log.error("formatting failed: %s", traceback.format_exc())
        alert = fallback_alert(event, cfg, f"formatting failed: {type(exc).__name__}: {clean(exc)}")
    message_id = publish_measured(alert, cfg, event, client, clock, ledger_client)
    log.info(json.dumps({"kind": alert.kind, "severity": alert.severity.value, "messageId": message_id,
                         "eventId": _get(event, "detail", "eventID")}, default=str))
    return {"kind": alert.kind, "severity": alert.severity.value, "messageId": message_id}
