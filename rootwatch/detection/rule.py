"""What counts as root-user activity, defined once.

The rule is data: a conjunction of clauses, each clause a disjunction of simple
conditions on one CloudTrail field. Every deployed form is rendered from it:

- ``CIS_PATTERN``: the CIS / Security Hub CloudWatch.1 metric filter, byte-exact;
- ``EXTENDED_PATTERN``: the same rule, also accepting
  ``invokedBy = "signin.amazonaws.com"`` (root console actions such as older MFA
  and access-key changes are logged that way, and CIS drops them);
- ``eventbridge_patterns()``: the extended rule as EventBridge patterns.

``classify()`` evaluates the rendered patterns themselves (through
``rootwatch.detection.filterpattern``), so the offline verdict is the deployed verdict.

Decisions worth knowing:
- Every ``invokedBy`` other than signin.amazonaws.com (support, cloudformation,
  ...) is AWS acting for the account and stays excluded, as does
  ``eventType = "AwsServiceEvent"``.
- A root record without ``eventType`` (CloudTrail before 2014) is root activity for
  the extended rule; the CIS rendering keeps CloudWatch Logs' semantics, where
  ``!=`` on a missing field fails, so CIS does not match it.
- Centralized root access (sts:AssumeRoot): actions inside the session arrive in
  the member account as ``type: "Root"`` without invokedBy, so both forms detect
  them; ``Finding.assumed_root`` marks them. The caller-side record in the
  management (or delegated admin) account is an ``AssumedRole`` calling
  sts:AssumeRoot: it is not root use, matches neither form and ``classify``
  returns None for it; the member-side records it leads to are the findings.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Literal

from rootwatch.core.severity import Severity, highest
from rootwatch.detection.filterpattern import compile_pattern

# Security Hub control CloudWatch.1 remediation text, byte for byte. Security
# Hub and Prowler compare this textually: never edit it, add detection elsewhere.
CIS_PATTERN = '{$.userIdentity.type="Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType !="AwsServiceEvent"}'
CIS_METRIC_NAME = "RootAccountUsage"
EXTENDED_METRIC_NAME = "RootActivityExtended"

# Console sessions of the root user: CIS drops these because invokedBy is set.
ROOT_CONSOLE_INVOKED_BY = "signin.amazonaws.com"

# EventBridge detail-types of CloudTrail events that can carry root activity.
# The real sign-in spelling is "Sign In"; AWS's EventBridge page shows "Signin",
# so both are listed: an unused value costs nothing, a missed one loses alerts.
DETAIL_TYPE_API_CALL = "AWS API Call via CloudTrail"
DETAIL_TYPE_CONSOLE_SIGN_IN = "AWS Console Sign In via CloudTrail"
DETAIL_TYPE_CONSOLE_SIGNIN_DOCS = "AWS Console Signin via CloudTrail"
DETAIL_TYPE_CONSOLE_ACTION = "AWS Console Action via CloudTrail"
DETAIL_TYPE_SERVICE_EVENT = "AWS Service Event via CloudTrail"
EVENTBRIDGE_DETAIL_TYPES: tuple[str, ...] = (
    DETAIL_TYPE_API_CALL,
    DETAIL_TYPE_CONSOLE_SIGN_IN,
    DETAIL_TYPE_CONSOLE_SIGNIN_DOCS,
    DETAIL_TYPE_CONSOLE_ACTION,
)
# Read-only calls (List*, Get*, Describe*) reach a rule only in this state.
EVENTBRIDGE_RULE_STATE = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"


# -- the rule as data -------------------------------------------------------

Op = Literal["eq", "ne", "absent"]


@dataclass(frozen=True)
class Condition:
    """One test on one CloudTrail field: equals, differs from, or is absent."""

    path: tuple[str, ...]
    op: Op
    value: str | None = None


Clause = tuple[Condition, ...]  # any one condition may hold
Rule = tuple[Clause, ...]  # every clause must hold

_IS_ROOT = Condition(("userIdentity", "type"), "eq", "Root")
_NOT_INVOKED = Condition(("userIdentity", "invokedBy"), "absent")
_INVOKED_BY_SIGNIN = Condition(("userIdentity", "invokedBy"), "eq", ROOT_CONSOLE_INVOKED_BY)
_NOT_SERVICE_EVENT = Condition(("eventType",), "ne", "AwsServiceEvent")
# CloudTrail wrote no eventType before 2014 (eventVersion 1.0x). CloudWatch Logs
# fails `!=` on a missing field, so CIS skips those records; a person reading a
# root PutMetricAlarm from 2013 sees root activity, so the extended rule takes it.
_NO_EVENT_TYPE = Condition(("eventType",), "absent")

CIS_RULE: Rule = ((_IS_ROOT,), (_NOT_INVOKED,), (_NOT_SERVICE_EVENT,))
EXTENDED_RULE: Rule = ((_IS_ROOT,), (_NOT_INVOKED, _INVOKED_BY_SIGNIN), (_NOT_SERVICE_EVENT, _NO_EVENT_TYPE))


# -- renderers ----------------------------------------------------------------


def _render_condition(c: Condition) -> str:
    # Spacing copies the CIS text exactly: `$.a="v"`, `$.a NOT EXISTS`, `$.a !="v"`.
    selector = "$." + ".".join(c.path)
    if c.op == "eq":
        return f'{selector}="{c.value}"'
    if c.op == "ne":
        return f'{selector} !="{c.value}"'
    return f"{selector} NOT EXISTS"


def _render_clause(clause: Clause) -> str:
    parts = [_render_condition(c) for c in clause]
    return parts[0] if len(parts) == 1 else "(" + " || ".join(parts) + ")"


def render_metric_filter(rule: Rule) -> str:
    """The rule as a CloudWatch Logs JSON filter pattern."""
    return "{" + " && ".join(_render_clause(cl) for cl in rule) + "}"


def _eventbridge_filter(c: Condition) -> list[Any]:
    if c.op == "eq":
        return [c.value]
    if c.op == "ne":
        return [{"anything-but": c.value}]
    return [{"exists": False}]


def _nest(detail: dict[str, Any], path: tuple[str, ...], leaf: list[Any]) -> None:
    node = detail
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = leaf


def render_eventbridge(rule: Rule) -> list[dict[str, Any]]:
    """The rule as EventBridge patterns: one per combination of clause alternatives.

    Alternatives on one field (absent OR a value) become separate patterns
    rather than one mixed array, so no rule relies on combining ``exists:false``
    with values. The combinations are mutually exclusive: one event, one alert.
    """
    patterns = []
    for combo in itertools.product(*rule):
        detail: dict[str, Any] = {}
        for cond in combo:
            _nest(detail, cond.path, _eventbridge_filter(cond))
        # Only AWS services can emit "aws.*" sources (PutEvents refuses them), so a
        # forged event sent to the bus can never reach the rule.
        patterns.append({"source": [{"prefix": "aws."}], "detail-type": list(EVENTBRIDGE_DETAIL_TYPES), "detail": detail})
    return patterns


def eventbridge_patterns() -> list[dict[str, Any]]:
    """EventBridge patterns for the extended rule; each is JSON-serializable."""
    return render_eventbridge(EXTENDED_RULE)


if render_metric_filter(CIS_RULE) != CIS_PATTERN:  # never ship a drifted CIS string
    raise RuntimeError("detection.CIS_RULE no longer renders to the verbatim CIS pattern")

EXTENDED_PATTERN: str = render_metric_filter(EXTENDED_RULE)

_match_cis = compile_pattern(CIS_PATTERN)
_match_extended = compile_pattern(EXTENDED_PATTERN)


def matches_cis(record: Mapping[str, Any]) -> bool:
    return _match_cis(record)


def matches_extended(record: Mapping[str, Any]) -> bool:
    return _match_extended(record)


def could_match(record: Any) -> bool:
    """Cheap pre-check: False means neither form can match (the rule requires type Root).

    Sound because both rules have the single-condition clause ``_IS_ROOT``
    (checked below at import); replay calls this before full evaluation.
    """
    try:
        return record.get("userIdentity").get("type") == _IS_ROOT.value  # type: ignore[no-any-return]
    except AttributeError:  # not an object, or no userIdentity object
        return False


if any((_IS_ROOT,) not in rule for rule in (CIS_RULE, EXTENDED_RULE)):
    raise RuntimeError("could_match() assumes every rule requires userIdentity.type = Root")


# -- classification -----------------------------------------------------------


class EventClass(StrEnum):
    CONSOLE_LOGIN = "console-login"
    CONSOLE_LOGIN_FAILURE = "console-login-failure"
    ACCESS_KEY_CALL = "access-key-call"
    CONSOLE_ACTION = "console-action"
    CREDENTIAL_CHANGE = "credential-change"
    LOGGING_TAMPER = "logging-tamper"


DEFAULT_CLASS_SEVERITY: dict[EventClass, Severity] = {
    EventClass.CONSOLE_LOGIN: Severity.HIGH,
    EventClass.CONSOLE_LOGIN_FAILURE: Severity.MEDIUM,
    # Root access keys should not exist at all (CIS 1.4): any use is critical.
    EventClass.ACCESS_KEY_CALL: Severity.CRITICAL,
    EventClass.CONSOLE_ACTION: Severity.HIGH,
    EventClass.CREDENTIAL_CHANGE: Severity.CRITICAL,
    EventClass.LOGGING_TAMPER: Severity.CRITICAL,
}

# Calls that blind the audit trail or this detection (source, name).
LOGGING_TAMPER_EVENTS: frozenset[tuple[str, str]] = frozenset(
    [("cloudtrail.amazonaws.com", n) for n in (
        "StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors",
        "DeleteEventDataStore", "StopEventDataStoreIngestion", "UpdateEventDataStore",
    )]
    + [("logs.amazonaws.com", n) for n in ("DeleteLogGroup", "DeleteMetricFilter", "DeleteSubscriptionFilter")]
    + [("monitoring.amazonaws.com", n) for n in ("DeleteAlarms", "DisableAlarmActions")]
    + [("events.amazonaws.com", n) for n in ("DeleteRule", "DisableRule", "RemoveTargets")]
)

# Root credential changes: keys, password (set, recover, update), MFA devices.
CREDENTIAL_CHANGE_EVENTS: frozenset[str] = frozenset({
    "CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey",
    "CreateLoginProfile", "UpdateLoginProfile", "DeleteLoginProfile",
    "ChangePassword", "PasswordUpdated", "PasswordRecoveryRequested", "PasswordRecoveryCompleted",
    "CreateVirtualMFADevice", "EnableMFADevice", "DeactivateMFADevice", "DeleteVirtualMFADevice",
    "ResyncMFADevice",
    "UploadSigningCertificate", "UpdateSigningCertificate", "DeleteSigningCertificate",
})

_LONG_TERM_KEY_PREFIX = "AKIA"  # temporary (console, session) keys start with ASIA


@dataclass(frozen=True)
class Finding:
    """One root-activity record as the alert path and replay report it."""

    event_class: EventClass
    severity: Severity
    cis_match: bool  # the verbatim CIS filter matches
    detected: bool  # the extended rule matches (what the stack alerts on)
    event_name: str | None
    event_time: str | None
    event_id: str | None
    account: str | None
    region: str | None
    source_ip: str | None
    user_agent: str | None
    mfa_used: str | None  # "Yes" / "No" / None when CloudTrail does not say
    event_source: str | None = None
    error_code: str | None = None  # e.g. AccessDenied: the attempt still counts
    invoked_by: str | None = None
    assumed_root: bool = False  # inside an sts:AssumeRoot session

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["event_class"] = str(self.event_class)
        out["severity"] = str(self.severity)
        return out


def _get(record: Mapping[str, Any], *path: str) -> Any:
    cur: Any = record
    for key in path:
        if type(cur) is not dict and not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _is_login_failure(record: Mapping[str, Any]) -> bool:
    outcome = _get(record, "responseElements", "ConsoleLogin")
    return outcome == "Failure" or (outcome != "Success" and bool(record.get("errorMessage") or record.get("errorCode")))


def event_class(record: Mapping[str, Any]) -> EventClass:
    """The class of a root record; most specific first (tamper beats key use)."""
    name = record.get("eventName")
    if (record.get("eventSource"), name) in LOGGING_TAMPER_EVENTS:
        return EventClass.LOGGING_TAMPER
    if name in CREDENTIAL_CHANGE_EVENTS:
        return EventClass.CREDENTIAL_CHANGE
    if name == "ConsoleLogin":
        return EventClass.CONSOLE_LOGIN_FAILURE if _is_login_failure(record) else EventClass.CONSOLE_LOGIN
    key = _get(record, "userIdentity", "accessKeyId")
    if isinstance(key, str) and key.startswith(_LONG_TERM_KEY_PREFIX):
        return EventClass.ACCESS_KEY_CALL
    return EventClass.CONSOLE_ACTION


def mfa_used(record: Mapping[str, Any]) -> str | None:
    """CloudTrail's MFAUsed for sign-ins, else the session's mfaAuthenticated as Yes/No."""
    direct = _get(record, "additionalEventData", "MFAUsed")
    if isinstance(direct, str):
        return direct
    session = _get(record, "userIdentity", "sessionContext", "attributes", "mfaAuthenticated")
    return {"true": "Yes", "false": "No"}.get(session) if isinstance(session, str) else None


def severity_for(cls: EventClass, record: Mapping[str, Any]) -> Severity:
    """The class default, raised to critical for a root console login without MFA."""
    sev = DEFAULT_CLASS_SEVERITY[cls]
    if cls is EventClass.CONSOLE_LOGIN and mfa_used(record) == "No":
        sev = highest(sev, Severity.CRITICAL)
    return sev


def classify(record: Mapping[str, Any]) -> Finding | None:
    """Classify a bare CloudTrail record (or an EventBridge ``detail``); None if neither form matches."""
    if not isinstance(record, Mapping):
        return None
    cis = _match_cis(record)
    detected = _match_extended(record)
    if not (cis or detected):
        return None
    cls = event_class(record)
    ui = record.get("userIdentity") or {}
    return Finding(
        event_class=cls,
        severity=severity_for(cls, record),
        cis_match=cis,
        detected=detected,
        event_name=_str_or_none(record.get("eventName")),
        event_time=_str_or_none(record.get("eventTime")),
        event_id=_str_or_none(record.get("eventID")),
        account=_str_or_none(record.get("recipientAccountId")) or _str_or_none(_get(ui, "accountId")),
        region=_str_or_none(record.get("awsRegion")),
        source_ip=_str_or_none(record.get("sourceIPAddress")),
        user_agent=_str_or_none(record.get("userAgent")),
        mfa_used=mfa_used(record),
        event_source=_str_or_none(record.get("eventSource")),
        error_code=_str_or_none(record.get("errorCode")),
        invoked_by=_str_or_none(_get(ui, "invokedBy")),
        assumed_root=_get(ui, "sessionContext", "assumedRoot") in ("true", True),
    )


# -- EventBridge envelope -------------------------------------------------------

_DETAIL_TYPE_BY_EVENT_TYPE = {
    "AwsConsoleSignIn": DETAIL_TYPE_CONSOLE_SIGN_IN,
    "AwsConsoleAction": DETAIL_TYPE_CONSOLE_ACTION,
    "AwsServiceEvent": DETAIL_TYPE_SERVICE_EVENT,
}


def detail_type_for(record: Mapping[str, Any]) -> str:
    return _DETAIL_TYPE_BY_EVENT_TYPE.get(record.get("eventType"), DETAIL_TYPE_API_CALL)  # type: ignore[arg-type]


def event_source_to_eventbridge_source(event_source: Any) -> str:
    """signin.amazonaws.com -> aws.signin (EventBridge's source for CloudTrail events)."""
    if not isinstance(event_source, str) or not event_source:
        return "aws.unknown"
    return "aws." + event_source.removesuffix(".amazonaws.com")


def wrap_eventbridge(record: Mapping[str, Any]) -> dict[str, Any]:
    """Wrap a CloudTrail record in the envelope EventBridge delivers it in."""
    return {
        "version": "0",
        "id": str(record.get("eventID") or "00000000-0000-0000-0000-000000000000"),
        "detail-type": detail_type_for(record),
        "source": event_source_to_eventbridge_source(record.get("eventSource")),
        "account": record.get("recipientAccountId") or _get(record, "userIdentity", "accountId") or "",
        "time": record.get("eventTime") or "",
        "region": record.get("awsRegion") or "",
        "resources": [],
        "detail": dict(record),
    }
