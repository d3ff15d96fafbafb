"""Is root-user activity detection complete in each account? One evaluation, three callers.

``evaluate()`` takes resources as (type, URN, properties, provider, dependencies),
the view the Pulumi engine and CrossGuard have, and returns a verdict per
account. The program's ``compliance`` stack output, the CrossGuard pack
(``rootwatch.compliance.policy``) and ``rootwatch policy check`` (over ``pulumi stack
export`` files) all call it, so the three cannot drift apart.

Per account, five checks, each pass / fail / pending / skipped with a reason:

1. ``trail``: a multi-region trail, logging, with log-file validation and
   read+write management events, delivering to CloudWatch Logs (log group kept
   at least ``min_retention_days``). With ``trail.mode: existing`` and no trail in
   the stack, the declared log group stands in for the trail.
2. ``metricFilter``: a filter on *that* log group with the byte-exact CIS pattern.
3. ``alarm``: an alarm on *that* filter's metric and namespace: Sum, threshold at
   most 1, ``>=``, period at most ``max_alarm_period_seconds``, actions enabled,
   an SNS action.
4. ``topic``: *that* topic has a subscription and is encrypted with a
   customer-managed key whose policy lets CloudWatch use it.
5. ``realtime``: when regions are required, an EventBridge root-activity rule in
   each, in state ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS.

Resources belong to an account through their provider (``allowedAccountIds``,
else ARNs in the account's properties, else ``default_account_id``, else
"default"). Relationships are followed by value (ARN, name) and, where a value
is unknown or unmatched, by property dependencies, never by resource names.

Unknown values (a preview before the first deploy) never fail a check: the
check is "pending" ("cannot verify until deploy"), which is not compliant yet,
and ``pulumi up`` evaluates again with real values.

Pure Python: no pulumi import, so the policy pack and the CLI stay light.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from rootwatch.detection.rule import (
    CIS_METRIC_NAME,
    CIS_PATTERN,
    EVENTBRIDGE_RULE_STATE,
)

SCHEMA = "rootwatch.compliance/v1"

# Check names, in chain order (also the keys of the `checks` object in outputs).
TRAIL, METRIC_FILTER, ALARM, TOPIC, REALTIME = "trail", "metricFilter", "alarm", "topic", "realtime"
CHECKS: tuple[str, ...] = (TRAIL, METRIC_FILTER, ALARM, TOPIC, REALTIME)

PASS, FAIL, PENDING, SKIPPED = "pass", "fail", "pending", "skipped"

PROVIDER_TYPE = "pulumi:providers:aws"
TRAIL_TYPE = "aws:cloudtrail/trail:Trail"
LOG_GROUP_TYPE = "aws:cloudwatch/logGroup:LogGroup"
METRIC_FILTER_TYPE = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
ALARM_TYPE = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC_TYPE = "aws:sns/topic:Topic"
SUBSCRIPTION_TYPE = "aws:sns/topicSubscription:TopicSubscription"
KEY_TYPE = "aws:kms/key:Key"
ALIAS_TYPE = "aws:kms/alias:Alias"
EVENT_RULE_TYPE = "aws:cloudwatch/eventRule:EventRule"

# Every type evaluate() reads; anything else is irrelevant to the verdict.
EVIDENCE_TYPES = frozenset({
    PROVIDER_TYPE, TRAIL_TYPE, LOG_GROUP_TYPE, METRIC_FILTER_TYPE, ALARM_TYPE, TOPIC_TYPE,
    SUBSCRIPTION_TYPE, KEY_TYPE, ALIAS_TYPE, EVENT_RULE_TYPE,
})

AWS_MANAGED_SNS_KEY = "alias/aws/sns"
CLOUDWATCH_PRINCIPAL = "cloudwatch.amazonaws.com"
# What SNS asks KMS for when CloudWatch publishes to an encrypted topic.
KEY_ACTIONS_NEEDED = ("kms:Decrypt", "kms:GenerateDataKey")

DEFAULT_MIN_RETENTION_DAYS = 365
DEFAULT_MAX_ALARM_PERIOD_SECONDS = 300
DEFAULT_ACCOUNT = "default"

# Wire-format markers (Pulumi's protocol constants, stable across SDKs). The
# engine's unknown string, and pulumi-policy's per-type unknown sentinels.
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
_UNKNOWN_SENTINELS = frozenset(
    {
        UNKNOWN,
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
        "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
        "e48ece36-62e2-4504-bad9-02848725956a",  # archive
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
    }
)
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
# An encrypted secret (stack export without --show-secrets): present, value hidden.
SECRET = "[secret]"

_ARN_ACCOUNT_RE = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")
_LOG_GROUP_ARN_RE = re.compile(r"^arn:aws[a-z-]*:logs:[a-z0-9-]*:\d*:log-group:(.+?)(?::\*)?$")


# --- input model ---------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyInput:
    """One resource as the engine sees it: camelCase properties, provider by URN.

    ``provider`` is the provider resource's URN ("" for the default provider when
    it is not a resource of its own, as under mocks). ``property_dependencies``
    maps a property to the URNs its value came from; when a source has only
    ``dependencies`` (mock registrations), those stand in for every property.
    """

    type: str
    urn: str
    props: Mapping[str, Any]
    provider: str = ""
    name: str = ""
    parent: str = ""
    dependencies: tuple[str, ...] = ()
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Requirements:
    """What "compliant" means: the thresholds the pack and the program share."""

    min_retention_days: int = DEFAULT_MIN_RETENTION_DAYS
    max_alarm_period_seconds: int = DEFAULT_MAX_ALARM_PERIOD_SECONDS
    # Regions that need a real-time rule; None: check 5 is skipped (see realtime_note).
    required_regions: tuple[str, ...] | None = None
    realtime_note: str = "no real-time regions are required (requiredRegions is empty)"
    # trail.mode "existing": the log group the account's own trail delivers to.
    existing_log_group: str | None = None


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: str
    reason: str
    # The resource the verdict rests on (or should be fixed on); None when absent.
    urn: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in (PASS, SKIPPED)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "status": self.status, "reason": self.reason, "resource": self.urn}


@dataclass(frozen=True)
class AccountVerdict:
    account_id: str
    # The provider that deploys into the account ("" for the default provider).
    provider_urn: str
    checks: Mapping[str, CheckResult]

    @property
    def compliant(self) -> bool:
        return all(c.ok for c in self.checks.values())

    @property
    def status(self) -> str:
        if self.compliant:
            return "compliant"
        if any(c.status == FAIL for c in self.checks.values()):
            return "noncompliant"
        return "pending"

    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks.values() if c.status == FAIL]

    def pending(self) -> list[CheckResult]:
        return [c for c in self.checks.values() if c.status == PENDING]


# --- values --------------------------------------------------------------------------


def normalize(value: Any) -> Any:
    """Plain data: unknowns become UNKNOWN, secrets their value (or SECRET), refs their URN."""
    if isinstance(value, str):
        return UNKNOWN if value in _UNKNOWN_SENTINELS else value
    if isinstance(value, Mapping):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG:
            if "value" in value:
                return normalize(value["value"])
            if "plaintext" in value:  # stack export --show-secrets: JSON text of the value
                try:
                    return normalize(json.loads(value["plaintext"]))
                except (TypeError, ValueError):
                    return value["plaintext"]
            return SECRET
        if sig == _RESOURCE_SIG:
            return value.get("urn", UNKNOWN)
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    if type(value).__name__ == "Unknown":  # pulumi.output.Unknown, without importing pulumi
        return UNKNOWN
    return value


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in _UNKNOWN_SENTINELS


def _known_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value and not is_unknown(value) else None


def _bool(value: Any, default: bool) -> bool | None:
    """True/False (also "true"/"false" as providers encode them); None when unknown."""
    if value is None:
        return default
    if is_unknown(value):
        return None
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None or is_unknown(value):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _json(value: Any) -> Any:
    """Provider inputs and policies arrive JSON-encoded; objects pass through."""
    if isinstance(value, str) and not is_unknown(value):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _as_list(value: Any) -> list[Any]:
    value = _json(value)
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _first_object(value: Any) -> Mapping[str, Any]:
    # Single-block inputs are objects; some state shapes keep them as 1-item lists.
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return value if isinstance(value, Mapping) else {}


def _num_text(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


def log_group_from_arn(arn: Any) -> str | None:
    """``arn:aws:logs:REGION:ACCT:log-group:NAME:*`` -> NAME."""
    s = _known_str(arn)
    m = _LOG_GROUP_ARN_RE.match(s) if s else None
    return m.group(1) if m else None


@dataclass
class Problems:
    """What is wrong with one resource; unknown values are listed, never failed."""

    failures: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return FAIL if self.failures else PENDING if self.unknown else PASS

    def text(self) -> str:
        if self.failures:
            return "; ".join(self.failures)
        if self.unknown:
            return "cannot verify until deploy: " + ", ".join(self.unknown) + " not known yet"
        return ""


# --- single-resource rules (also the pack's resource policies) ----------------------


def is_detection_trail(props: Mapping[str, Any]) -> bool:
    """A trail that feeds CloudWatch Logs is a detection trail (others may archive only)."""
    return props.get("cloudWatchLogsGroupArn") not in (None, "")


def trail_problems(props: Mapping[str, Any]) -> Problems:
    p = Problems()
    checks = (
        ("isMultiRegionTrail", False, "the trail is single-region (isMultiRegionTrail is not true): root activity in "
         "other regions is never logged; set isMultiRegionTrail: true"),
        ("enableLogFileValidation", False, "log file validation is off: set enableLogFileValidation: true so "
         "tampering with delivered logs can be detected"),
        ("enableLogging", True, "logging is stopped (enableLogging: false): the trail records nothing"),
    )
    for key, default, message in checks:
        flag = _bool(props.get(key), default)
        if flag is None:
            p.unknown.append(key)
        elif not flag:
            p.failures.append(message)
    _management_events(props, p)
    group_arn = props.get("cloudWatchLogsGroupArn")
    if is_unknown(group_arn):
        p.unknown.append("cloudWatchLogsGroupArn")
    elif not group_arn:
        p.failures.append("the trail does not deliver to CloudWatch Logs (no cloudWatchLogsGroupArn), so no metric "
                          "filter sees its events; set cloudWatchLogsGroupArn and cloudWatchLogsRoleArn")
    elif log_group_from_arn(group_arn) is None:
        p.failures.append(f"cloudWatchLogsGroupArn {group_arn!r} is not a log group ARN (arn:...:log-group:NAME:*)")
    elif not props.get("cloudWatchLogsRoleArn"):
        p.failures.append("no cloudWatchLogsRoleArn: CloudTrail cannot write to the log group")
    return p


def _management_events(props: Mapping[str, Any], p: Problems) -> None:
    """Read AND write management events, no source excluded (a leaked root key listing buckets is read-only)."""
    advanced = props.get("advancedEventSelectors")
    basic = props.get("eventSelectors")
    if is_unknown(advanced) or is_unknown(basic):
        p.unknown.append("event selectors")
        return
    if advanced:
        _advanced_selectors(advanced, p)
    elif basic:
        _basic_selectors(basic, p)
    # No selectors at all: CloudTrail's default, all management events, read and write.


def _basic_selectors(selectors: Sequence[Any], p: Problems) -> None:
    mgmt = [s for s in selectors if isinstance(s, Mapping) and _bool(s.get("includeManagementEvents"), True) is not False]
    if not mgmt:
        p.failures.append("the event selectors exclude management events (includeManagementEvents: false)")
        return
    if any(is_unknown(s.get("readWriteType")) for s in mgmt):
        p.unknown.append("readWriteType")
        return

    def covers(sels: list[Mapping[str, Any]]) -> bool:
        kinds = {s.get("readWriteType") or "All" for s in sels}
        return "All" in kinds or {"ReadOnly", "WriteOnly"} <= kinds

    clean = [s for s in mgmt if not s.get("excludeManagementEventSources")]
    if covers(clean):
        return
    if covers(mgmt):
        excluded = sorted({src for s in mgmt for src in _as_list(s.get("excludeManagementEventSources"))})
        p.failures.append(f"management events from {', '.join(map(str, excluded))} are excluded "
                          "(excludeManagementEventSources): root actions there go unseen")
        return
    kinds = sorted({str(s.get("readWriteType") or "All") for s in mgmt})
    p.failures.append(f"the event selectors log only {'/'.join(kinds)} management events: set readWriteType: All "
                      "(read-only root calls, e.g. listing buckets with a leaked key, must be logged too)")


def _field_values(selector: Mapping[str, Any], name: str) -> tuple[list[str], list[str]] | None:
    for f in _as_list(selector.get("fieldSelectors")):
        if isinstance(f, Mapping) and f.get("field") == name:
            return [str(v) for v in _as_list(f.get("equals"))], [str(v) for v in _as_list(f.get("notEquals"))]
    return None


def _advanced_selectors(selectors: Sequence[Any], p: Problems) -> None:
    reads = writes = False
    excluded: set[str] = set()
    for s in selectors:
        if not isinstance(s, Mapping):
            continue
        category = _field_values(s, "eventCategory")
        if not category or "Management" not in category[0]:
            continue
        source = _field_values(s, "eventSource")
        if source and (source[0] or source[1]):
            excluded.update(source[1] or ["all but " + ", ".join(source[0])])
            continue
        read_only = _field_values(s, "readOnly")
        values = {v.lower() for v in read_only[0]} if read_only and read_only[0] else {"true", "false"}
        reads |= "true" in values
        writes |= "false" in values
    if reads and writes:
        return
    if excluded and not (reads or writes):
        p.failures.append(f"management events are limited by eventSource ({', '.join(sorted(excluded))}): "
                          "root actions elsewhere go unseen")
    elif reads or writes:
        only = "read-only" if reads else "write-only"
        p.failures.append(f"the advanced event selectors log only {only} management events: drop the readOnly "
                          "field selector so reads and writes are both logged")
    else:
        p.failures.append("no advanced event selector logs management events (eventCategory = Management)")


def retention_problems(props: Mapping[str, Any], min_days: int) -> Problems:
    p = Problems()
    days = props.get("retentionInDays")
    if is_unknown(days):
        p.unknown.append("retentionInDays")
        return p
    n = _number(days)
    if n and n < min_days:  # 0 / absent: never expire
        p.failures.append(f"log group {props.get('name')!r} keeps events {_num_text(n)} days; at least {min_days} are "
                          "required (retentionInDays)")
    return p


def is_cis_metric_filter(props: Mapping[str, Any]) -> bool:
    """A filter publishing the CIS root-usage metric (extended detection publishes another metric)."""
    return _first_object(props.get("metricTransformation")).get("name") == CIS_METRIC_NAME


def pattern_problems(props: Mapping[str, Any]) -> Problems:
    p = Problems()
    pattern = props.get("pattern")
    if is_unknown(pattern):
        p.unknown.append("pattern")
    elif pattern != CIS_PATTERN:
        p.failures.append(f"metric filter {props.get('name')!r} has an edited pattern {pattern!r}: Security Hub "
                          f"CloudWatch.1 requires the byte-exact CIS string {CIS_PATTERN}; put extra detection in a "
                          "separate filter")
    return p


def is_cis_alarm(props: Mapping[str, Any]) -> bool:
    return props.get("metricName") == CIS_METRIC_NAME


def alarm_problems(props: Mapping[str, Any], max_period_seconds: int = DEFAULT_MAX_ALARM_PERIOD_SECONDS) -> Problems:
    p = Problems()
    name = props.get("name")
    stat = props.get("statistic")
    if is_unknown(stat):
        p.unknown.append("statistic")
    elif stat != "Sum":
        p.failures.append(f"statistic is {stat!r}: use Sum so one root event is one count")
    threshold = props.get("threshold")
    if is_unknown(threshold):
        p.unknown.append("threshold")
    elif (limit := _number(threshold)) is None or limit > 1:
        shown = _num_text(limit) if limit is not None else repr(threshold)
        p.failures.append(f"threshold is {shown}: at most 1, so a single root event alarms")
    op = props.get("comparisonOperator")
    if is_unknown(op):
        p.unknown.append("comparisonOperator")
    elif op != "GreaterThanOrEqualToThreshold":
        p.failures.append(f"comparisonOperator is {op!r}: use GreaterThanOrEqualToThreshold")
    period = props.get("period")
    if is_unknown(period):
        p.unknown.append("period")
    elif (seconds := _number(period)) is None or seconds > max_period_seconds:
        shown = _num_text(seconds) if seconds is not None else repr(period)
        p.failures.append(f"alarm {name!r} period is {shown} s; at most {max_period_seconds} s (an alarm notifies only "
                          "on a state change, so a long period mutes repeated root use)")
    enabled = _bool(props.get("actionsEnabled"), True)
    if enabled is None:
        p.unknown.append("actionsEnabled")
    elif not enabled:
        p.failures.append(f"alarm {name!r} has its actions disabled (actionsEnabled: false): it changes state but "
                          "notifies nobody")
    actions = props.get("alarmActions")
    if is_unknown(actions):
        p.unknown.append("alarmActions")
    else:
        values = _as_list(actions)
        if not any(is_unknown(a) or _is_sns_arn(a) for a in values):
            p.failures.append(f"alarm {name!r} has no SNS topic in alarmActions: nobody is told")
    return p


def _is_sns_arn(value: Any) -> bool:
    s = _known_str(value)
    return bool(s and s.split(":")[2:3] == ["sns"])


def is_aws_managed_sns_key(key_ref: Any) -> bool:
    s = _known_str(key_ref)
    return bool(s) and (s == AWS_MANAGED_SNS_KEY or s.endswith(":" + AWS_MANAGED_SNS_KEY))  # type: ignore[union-attr]


def topic_encryption_problems(props: Mapping[str, Any]) -> Problems:
    """The part of check 4 a topic shows on its own: encrypted, and not with alias/aws/sns."""
    p = Problems()
    ref = props.get("kmsMasterKeyId")
    name = props.get("name")
    if is_unknown(ref):
        p.unknown.append("kmsMasterKeyId")
    elif not ref:
        p.failures.append(f"topic {name!r} is not encrypted: set kmsMasterKeyId to a customer-managed key whose policy "
                          f"lets {CLOUDWATCH_PRINCIPAL} use it")
    elif is_aws_managed_sns_key(ref):
        p.failures.append(f"topic {name!r} is encrypted with the AWS-managed key {AWS_MANAGED_SNS_KEY}: CloudWatch "
                          "alarms cannot publish to it and notifications are dropped silently; use a customer-managed "
                          f"key whose policy grants {CLOUDWATCH_PRINCIPAL} kms:Decrypt and kms:GenerateDataKey*")
    return p


def _principal_services(principal: Any) -> set[str]:
    if principal == "*":
        return {"*"}
    if isinstance(principal, Mapping):
        out = {str(s) for s in _as_list(principal.get("Service"))}
        if "*" in _as_list(principal.get("AWS")):
            out.add("*")
        return out
    return set()


def _allows(statement: Mapping[str, Any], action: str) -> bool:
    patterns = [str(a).lower() for a in _as_list(statement.get("Action"))]
    return any(fnmatch.fnmatchcase(action.lower(), pat) for pat in patterns)


def key_policy_problems(props: Mapping[str, Any], label: str = "the key") -> Problems:
    p = Problems()
    enabled = _bool(props.get("isEnabled"), True)
    if enabled is False:
        p.failures.append(f"{label} is disabled (isEnabled: false): the topic cannot encrypt messages")
    raw = props.get("policy")
    if is_unknown(raw):
        p.unknown.append("key policy")
        return p
    doc = _json(raw)
    statements = _as_list(doc.get("Statement")) if isinstance(doc, Mapping) else []
    granted: set[str] = set()
    for st in statements:
        if not isinstance(st, Mapping) or st.get("Effect") != "Allow":
            continue
        services = _principal_services(st.get("Principal"))
        if CLOUDWATCH_PRINCIPAL in services or "*" in services:
            granted.update(a for a in KEY_ACTIONS_NEEDED if _allows(st, a))
    if set(KEY_ACTIONS_NEEDED) - granted:
        why = "has no policy (the default grants only the account)" if not raw else "has a policy that does not"
        p.failures.append(f"{label} {why} let {CLOUDWATCH_PRINCIPAL} use it (kms:Decrypt and kms:GenerateDataKey*): "
                          "alarm notifications would be dropped silently")
    return p


def _selects_root(node: Any) -> bool:
    """Does an EventBridge pattern (or part of one) match userIdentity.type "Root" as a value?"""
    if isinstance(node, Mapping):
        identity = node.get("userIdentity")
        if isinstance(identity, Mapping) and "Root" in _as_list(identity.get("type")):
            return True  # a literal value; {"anything-but": "Root"} is an object, not a match
        return any(_selects_root(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_selects_root(v) for v in node)
    return False


def is_root_rule(props: Mapping[str, Any]) -> bool:
    """An EventBridge rule whose pattern selects root identities (tamper rules that exclude Root do not count)."""
    pattern = props.get("eventPattern")
    if not pattern or is_unknown(pattern):
        return False
    return _selects_root(_json(pattern))


def rule_problems(props: Mapping[str, Any]) -> Problems:
    p = Problems()
    state = props.get("state")
    if is_unknown(state):
        p.unknown.append("state")
    elif state != EVENTBRIDGE_RULE_STATE:
        p.failures.append(f"rule {props.get('name')!r} has state {state or 'ENABLED'!r}: read-only root calls (List*, "
                          f"Get*, Describe*) never reach it; set state {EVENTBRIDGE_RULE_STATE}")
    return p


# --- accounts ------------------------------------------------------------------------


@dataclass
class _Account:
    id: str
    provider_urn: str
    region: str | None
    resources: list[PolicyInput]

    def of(self, typ: str) -> list[PolicyInput]:
        return [r for r in self.resources if r.type == typ]


def provider_urn(ref: str | None) -> str:
    """A provider reference ``<urn>::<id>`` (or a bare URN) -> the URN."""
    if not ref:
        return ""
    parts = ref.split("::")
    # urn:pulumi:STACK::PROJECT::TYPE::NAME has 4 parts; a reference adds the id.
    return "::".join(parts[:-1]) if len(parts) > 4 else ref


def _allowed_account(props: Mapping[str, Any]) -> str | None:
    ids = [str(i) for i in _as_list(props.get("allowedAccountIds")) if not is_unknown(i)]
    return ids[0] if ids else None


def _arn_accounts(value: Any, out: Counter[str]) -> None:
    if isinstance(value, str):
        out.update(_ARN_ACCOUNT_RE.findall(value))
    elif isinstance(value, Mapping):
        for v in value.values():
            _arn_accounts(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _arn_accounts(v, out)


def group_by_account(resources: Sequence[PolicyInput], default_account_id: str | None = None) -> list[_Account]:
    """Resources per account, through their provider. Every aws provider is an account, used or not."""
    providers = {r.urn: r for r in resources if r.type == PROVIDER_TYPE}
    by_provider: dict[str, list[PolicyInput]] = {urn: [] for urn in providers}
    for r in resources:
        if r.type.startswith("aws:"):
            by_provider.setdefault(provider_urn(r.provider), []).append(r)
    merged: dict[str, _Account] = {}
    for purn, members in by_provider.items():
        props = providers[purn].props if purn in providers else {}
        acct = _allowed_account(props)
        if acct is None:
            counts: Counter[str] = Counter()
            for m in members:
                _arn_accounts(m.props, counts)
            acct = counts.most_common(1)[0][0] if counts else (default_account_id or DEFAULT_ACCOUNT)
        region = _known_str(props.get("region"))
        if acct in merged:
            merged[acct].resources.extend(members)
        else:
            merged[acct] = _Account(acct, purn, region, list(members))
    return [merged[k] for k in sorted(merged)]


# --- relationships -------------------------------------------------------------------


class _Index:
    def __init__(self, resources: Sequence[PolicyInput]) -> None:
        self.by_urn = {r.urn: r for r in resources}

    def deps(self, r: PolicyInput, prop: str, typ: str) -> list[PolicyInput]:
        """Resources of ``typ`` that ``r.prop`` came from (all dependencies when per-property ones are unknown)."""
        urns = r.property_dependencies.get(prop, ()) if r.property_dependencies else r.dependencies
        return [self.by_urn[u] for u in urns if u in self.by_urn and self.by_urn[u].type == typ]


def _region(r: PolicyInput, acct: _Account) -> str | None:
    return _known_str(r.props.get("region")) or acct.region


def _arn_parts(arn: Any) -> list[str] | None:
    s = _known_str(arn)
    parts = s.split(":", 5) if s else []
    return parts if len(parts) == 6 and parts[0] == "arn" else None


def _names_arn(arn: Any, r: PolicyInput, acct: _Account, service: str) -> bool:
    """Does ``arn`` name resource ``r`` (by its arn output, else by name, region and account)?"""
    own = _known_str(r.props.get("arn"))
    if own:
        return own == arn
    parts = _arn_parts(arn)
    name = _known_str(r.props.get("name"))
    if not parts or not name or parts[2] != service or parts[5] != name:
        return False
    region = _region(r, acct)
    return (region is None or parts[3] == region) and (not acct.id.isdigit() or parts[4] == acct.id)


@dataclass
class _LogGroupRef:
    name: str | None  # None: unknown until deploy
    resource: PolicyInput | None


# --- the checks ----------------------------------------------------------------------


def _pick(scored: list[tuple[PolicyInput, Problems]]) -> tuple[PolicyInput, Problems]:
    """The best of (at least one) candidates: passing, else pending, else the fewest failures."""
    order = {PASS: 0, PENDING: 1, FAIL: 2}
    return min(scored, key=lambda x: (order[x[1].status], len(x[1].failures)))


def _check_trail(acct: _Account, idx: _Index, req: Requirements) -> tuple[CheckResult, list[_LogGroupRef]]:
    trails = acct.of(TRAIL_TYPE)
    if not trails:
        if req.existing_log_group:
            return (
                CheckResult(TRAIL, PASS, f"trail managed outside this stack (trail.mode existing): its log group "
                            f"{req.existing_log_group!r} is declared and checked below"),
                [_LogGroupRef(req.existing_log_group, _log_group_named(acct, req.existing_log_group))],
            )
        reason = ("no CloudTrail trail in this account: add a multi-region trail delivering to CloudWatch Logs "
                  "(or declare trail.mode existing with its log group)")
        return CheckResult(TRAIL, FAIL, reason, acct.provider_urn or None), []
    scored = []
    for t in trails:
        p = trail_problems(t.props)
        group = _trail_log_group(t, acct, idx)
        if group is not None and group.name and "cloudWatchLogsGroupArn" in p.unknown:
            p.unknown.remove("cloudWatchLogsGroupArn")  # unknown before deploy, but it comes from this log group
        if group is not None and group.resource is not None:
            kept = retention_problems(group.resource.props, req.min_retention_days)
            p.failures += kept.failures
            p.unknown += kept.unknown
        scored.append((t, p))
    best, problems = _pick(scored)
    label = f"trail {best.props.get('name') or best.name!r}"
    # Downstream checks use the log groups of usable trails, else the best trail's (to report every gap at once).
    usable = [t for t, p in scored if p.status != FAIL] or [best]
    groups = [g for g in (_trail_log_group(t, acct, idx) for t in usable) if g is not None]
    if problems.status == PASS:
        where = ", ".join(repr(g.name) for g in groups if g.name)
        return CheckResult(TRAIL, PASS, f"{label} is multi-region and validated, logs read and write management "
                           f"events and delivers to CloudWatch Logs ({where})", best.urn), groups
    return CheckResult(TRAIL, problems.status, f"{label}: {problems.text()}", best.urn), groups


def _log_group_named(acct: _Account, name: str) -> PolicyInput | None:
    return next((g for g in acct.of(LOG_GROUP_TYPE) if g.props.get("name") == name), None)


def _trail_log_group(trail: PolicyInput, acct: _Account, idx: _Index) -> _LogGroupRef | None:
    """The log group a trail delivers to; None when it delivers to none."""
    arn = trail.props.get("cloudWatchLogsGroupArn")
    name = log_group_from_arn(arn)
    if name:
        return _LogGroupRef(name, _log_group_named(acct, name))
    if not is_unknown(arn):
        return None
    dep = next(iter(idx.deps(trail, "cloudWatchLogsGroupArn", LOG_GROUP_TYPE)), None)
    return _LogGroupRef(_known_str(dep.props.get("name")) if dep else None, dep)


def _filter_on(f: PolicyInput, groups: list[_LogGroupRef], idx: _Index) -> bool | None:
    """Is the filter on one of ``groups``? None when that cannot be known before deploy."""
    name = _known_str(f.props.get("logGroupName"))
    dep = next(iter(idx.deps(f, "logGroupName", LOG_GROUP_TYPE)), None)
    undecided = False
    for g in groups:
        if name and g.name:
            if name == g.name:
                return True
        elif dep is not None and g.resource is not None:  # compare the log group resources instead
            if dep.urn == g.resource.urn:
                return True
        else:
            undecided = True
    return None if undecided else False


def _check_filter(acct: _Account, idx: _Index, groups: list[_LogGroupRef]) -> tuple[CheckResult, list[PolicyInput]]:
    filters = acct.of(METRIC_FILTER_TYPE)
    exact = [f for f in filters if f.props.get("pattern") == CIS_PATTERN]
    if not groups:
        return (CheckResult(METRIC_FILTER, FAIL, "no trail delivers to a log group: a CIS filter only counts on the log "
                            "group a compliant trail delivers to (see trail)", exact[0].urn if exact else None), exact)
    shown = ", ".join(repr(g.name) if g.name else "(known after deploy)" for g in groups)
    on = {f.urn: _filter_on(f, groups, idx) for f in filters}
    hits = [f for f in exact if on[f.urn]]
    if hits:
        f = hits[0]
        group = _known_str(f.props.get("logGroupName"))
        return CheckResult(METRIC_FILTER, PASS, f"filter {f.props.get('name')!r} on log group "
                           f"{repr(group) if group else shown} has the byte-exact CIS root-usage pattern", f.urn), hits
    maybe = [f for f in exact if on[f.urn] is None] + [f for f in filters if on[f.urn] and is_unknown(f.props.get("pattern"))]
    if maybe:
        return CheckResult(METRIC_FILTER, PENDING, "cannot verify until deploy: the trail's log group or the filter's "
                           "log group/pattern is not known yet", maybe[0].urn), maybe
    edited = [f for f in filters if on[f.urn] and (is_cis_metric_filter(f.props) or "Root" in str(f.props.get("pattern")))]
    if edited:
        return CheckResult(METRIC_FILTER, FAIL, pattern_problems(edited[0].props).text(), edited[0].urn), edited
    if exact:
        f = exact[0]
        return (CheckResult(METRIC_FILTER, FAIL, f"filter {f.props.get('name')!r} has the CIS pattern but is on log group "
                            f"{f.props.get('logGroupName')!r}, not on the trail's log group {shown}: move it there", f.urn),
                exact)
    return CheckResult(METRIC_FILTER, FAIL, f"no metric filter on log group {shown} has the CIS root-usage pattern: add "
                       f"one with the pattern {CIS_PATTERN}", acct.provider_urn or None), []


def _metric(f: PolicyInput) -> tuple[Any, Any]:
    mt = _first_object(f.props.get("metricTransformation"))
    return mt.get("name"), mt.get("namespace")


def _alarm_on(a: PolicyInput, metric: tuple[Any, Any]) -> bool | None:
    name, ns = metric
    mine = (a.props.get("metricName"), a.props.get("namespace"))
    if any(is_unknown(v) for v in (name, ns, *mine)):
        return None
    return mine == (name, ns)


def _check_alarm(
    acct: _Account, filters: list[PolicyInput], req: Requirements
) -> tuple[CheckResult, PolicyInput | None]:
    metrics = list(dict.fromkeys(_metric(f) for f in filters))
    if not metrics:
        return CheckResult(ALARM, FAIL, "no CIS metric filter, so no metric to alarm on (see metricFilter)",
                           acct.provider_urn or None), None
    shown = ", ".join(f"{ns}/{n}" for n, ns in metrics)
    alarms = acct.of(ALARM_TYPE)
    candidates = [a for a in alarms if any(_alarm_on(a, m) is not False for m in metrics)]
    if not candidates:
        near = [a for a in alarms if any(a.props.get("metricName") == n for n, _ in metrics)]
        hint = (f"; alarm {near[0].props.get('name')!r} watches namespace {near[0].props.get('namespace')!r}"
                if near else "")
        reason = (f"no alarm on the filter's metric {shown}{hint}: add one (Sum >= 1 over at most "
                  f"{req.max_alarm_period_seconds} s, actions to an SNS topic)")
        return CheckResult(ALARM, FAIL, reason, acct.provider_urn or None), None
    scored = []
    for a in candidates:
        p = alarm_problems(a.props, req.max_alarm_period_seconds)
        if any(_alarm_on(a, m) is None for m in metrics) and not any(_alarm_on(a, m) for m in metrics):
            p.unknown.append("metric name/namespace")
        scored.append((a, p))
    best, problems = _pick(scored)
    label = f"alarm {best.props.get('name') or best.name!r}"
    if problems.status == PASS:
        return CheckResult(ALARM, PASS, f"{label} on {shown}: Sum >= {_num_text(_number(best.props.get('threshold')) or 0)} "
                           f"over {_num_text(_number(best.props.get('period')) or 0)} s, actions enabled, notifies SNS",
                           best.urn), best
    return CheckResult(ALARM, problems.status, problems.text() if problems.failures else f"{label}: {problems.text()}",
                       best.urn), best


def _alarm_topics(alarm: PolicyInput, acct: _Account, idx: _Index) -> tuple[list[PolicyInput], list[str], bool]:
    """The alarm's topics in the stack, the SNS ARNs outside it, and whether some action is unknown."""
    topics = acct.of(TOPIC_TYPE)
    found: list[PolicyInput] = []
    outside: list[str] = []
    unknown = False
    for action in _as_list(alarm.props.get("alarmActions")):
        if is_unknown(action):
            unknown = True
            continue
        if not _is_sns_arn(action):
            continue
        match = [t for t in topics if _names_arn(action, t, acct, "sns")]
        found.extend(match)
        if not match:
            outside.append(action)
    # Before deploy the ARNs are unknown, but the dependency still names the topic.
    for t in idx.deps(alarm, "alarmActions", TOPIC_TYPE):
        if unknown and all(f.urn != t.urn for f in found):
            found.append(t)
    return found, outside, unknown and not found


class _Subscriptions:
    """Subscriptions indexed by the topic they name, so a large organization is not scanned per topic."""

    def __init__(self, subs: Sequence[PolicyInput], idx: _Index) -> None:
        self.by_topic_name: dict[str, list[PolicyInput]] = {}
        self.by_topic_urn: dict[str, list[PolicyInput]] = {}  # topic ARN unknown until deploy
        self.unresolved: list[PolicyInput] = []  # neither an ARN nor a dependency names the topic
        for s in subs:
            ref = _known_str(s.props.get("topic"))
            deps = idx.deps(s, "topic", TOPIC_TYPE)
            if ref:
                self.by_topic_name.setdefault(ref.rsplit(":", 1)[-1], []).append(s)
            elif deps:
                for d in deps:
                    self.by_topic_urn.setdefault(d.urn, []).append(s)
            else:
                self.unresolved.append(s)

    def candidates(self, topic: PolicyInput) -> list[PolicyInput]:
        own = _known_str(topic.props.get("arn")) or ""
        names = {own.rsplit(":", 1)[-1], _known_str(topic.props.get("name")) or ""} - {""}
        found = [s for n in names for s in self.by_topic_name.get(n, ())]
        unique = {s.urn: s for s in found + self.by_topic_urn.get(topic.urn, [])}
        return list(unique.values()) + self.unresolved


def _subscriptions(topic: PolicyInput, acct: _Account, idx: _Index, index: _Subscriptions) -> tuple[int, bool]:
    count, unknown = 0, False
    for s in index.candidates(topic):
        ref = s.props.get("topic")
        if _known_str(ref):
            hit = _names_arn(ref, topic, acct, "sns")
        else:
            hit = any(d.urn == topic.urn for d in idx.deps(s, "topic", TOPIC_TYPE))
            unknown |= not hit and is_unknown(ref)
        count += hit
    return count, unknown


def _topic_key(topic: PolicyInput, acct: _Account, idx: _Index) -> PolicyInput | None:
    ref = _known_str(topic.props.get("kmsMasterKeyId"))
    keys = acct.of(KEY_TYPE)
    if ref:
        for k in keys:
            arn, key_id = _known_str(k.props.get("arn")), _known_str(k.props.get("keyId"))
            if ref in (arn, key_id) or (key_id and ref.endswith(":key/" + key_id)):
                return k
        alias = ref.split(":")[-1] if ref.startswith("arn:") else ref
        for a in acct.of(ALIAS_TYPE):
            if a.props.get("name") == alias:
                target = _known_str(a.props.get("targetKeyId"))
                hit = next((k for k in keys if target and target in (k.props.get("keyId"), k.props.get("arn"))), None)
                return hit or next(iter(idx.deps(a, "targetKeyId", KEY_TYPE)), None)
    direct = idx.deps(topic, "kmsMasterKeyId", KEY_TYPE)
    if direct:
        return direct[0]
    for a in idx.deps(topic, "kmsMasterKeyId", ALIAS_TYPE):
        return next(iter(idx.deps(a, "targetKeyId", KEY_TYPE)), None)
    return None


def _topic_problems(topic: PolicyInput, acct: _Account, idx: _Index, subs: _Subscriptions) -> Problems:
    name = topic.props.get("name") or topic.name
    p = Problems()
    n, unknown = _subscriptions(topic, acct, idx, subs)
    if not n:
        if unknown:
            p.unknown.append("subscription topic ARNs")
        else:
            p.failures.append(f"topic {name!r} has no subscription: the alarm would notify nobody; add at least one "
                              "TopicSubscription (and confirm it)")
    enc = topic_encryption_problems(topic.props)
    key = _topic_key(topic, acct, idx)
    if enc.status == PENDING and key is not None:
        enc = Problems()  # the key ARN is unknown before deploy, but the dependency names a key of this stack
    p.failures += enc.failures
    p.unknown += enc.unknown
    if enc.status == PASS:
        if key is None:
            p.failures.append(f"topic {name!r} uses key {topic.props.get('kmsMasterKeyId')!r}, which is not managed in "
                              "this stack, so its policy cannot be verified; manage the key here")
        else:
            kp = key_policy_problems(key.props, f"key {key.props.get('arn') or key.name!r} of topic {name!r}")
            p.failures += kp.failures
            p.unknown += kp.unknown
    return p


def _check_topic(acct: _Account, idx: _Index, alarm: PolicyInput | None, all_subs: _Subscriptions) -> CheckResult:
    if alarm is None:
        return CheckResult(TOPIC, FAIL, "no alarm, so no alert topic to check (see alarm)", acct.provider_urn or None)
    topics, outside, unknown = _alarm_topics(alarm, acct, idx)
    if not topics:
        if unknown:
            return CheckResult(TOPIC, PENDING, "cannot verify until deploy: the alarm's topic ARNs are not known yet",
                               alarm.urn)
        where = (f" ({', '.join(outside)} is not managed in this stack, so its subscriptions and key cannot be "
                 "verified)" if outside else "")
        return CheckResult(TOPIC, FAIL, f"the alarm notifies no SNS topic of this stack{where}", alarm.urn)
    best, problems = _pick([(t, _topic_problems(t, acct, idx, all_subs)) for t in topics])
    name = best.props.get("name") or best.name
    if problems.status == PASS:
        n, _ = _subscriptions(best, acct, idx, all_subs)
        return CheckResult(TOPIC, PASS, f"topic {name!r} has {n} subscription(s) and a customer-managed key that "
                           f"{CLOUDWATCH_PRINCIPAL} may use", best.urn)
    text = problems.text() if problems.failures else f"topic {name!r}: {problems.text()}"
    return CheckResult(TOPIC, problems.status, text, best.urn)


def _check_realtime(acct: _Account, req: Requirements) -> CheckResult:
    if req.required_regions is None:
        return CheckResult(REALTIME, SKIPPED, req.realtime_note)
    if not req.required_regions:
        return CheckResult(REALTIME, SKIPPED, "no real-time regions are required")
    rules = [r for r in acct.of(EVENT_RULE_TYPE) if is_root_rule(r.props) or is_unknown(r.props.get("eventPattern"))]
    missing, wrong, pending = [], [], []
    for region in req.required_regions:
        here = [r for r in rules if _region(r, acct) in (region, None)]
        states = [(r, rule_problems(r.props)) for r in here]
        if any(p.status == PASS and _region(r, acct) == region for r, p in states):
            continue
        if any(p.status == PENDING or _region(r, acct) is None for r, p in states):
            pending.append(region)
        elif states:
            wrong.append(states[0])
        else:
            missing.append(region)
    parts = []
    if missing:
        parts.append(f"no EventBridge root-activity rule in {', '.join(missing)}")
    parts += [p.text() + f" (in {_region(r, acct)})" for r, p in wrong]
    if parts:
        return CheckResult(REALTIME, FAIL, "; ".join(parts) + f" (state {EVENTBRIDGE_RULE_STATE} needed in every "
                           "required region)", wrong[0][0].urn if wrong else acct.provider_urn or None)
    if pending:
        return CheckResult(REALTIME, PENDING, f"cannot verify until deploy: rule state or region in {', '.join(pending)}")
    return CheckResult(REALTIME, PASS, f"root-activity rules with state {EVENTBRIDGE_RULE_STATE} in "
                       f"{', '.join(req.required_regions)}")


# --- evaluation ----------------------------------------------------------------------


def evaluate(
    resources: Iterable[PolicyInput],
    requirements: Requirements = Requirements(),
    default_account_id: str | None = None,
) -> dict[str, AccountVerdict]:
    """Every account's verdict: the one implementation behind outputs, the pack and `policy check`."""
    items = [PolicyInput(r.type, r.urn, normalize(dict(r.props)), provider_urn(r.provider), r.name, r.parent,
                         tuple(r.dependencies), {k: tuple(v) for k, v in r.property_dependencies.items()})
             for r in resources]
    idx = _Index(items)
    # Subscriptions may live in another account, so they are indexed across the whole stack.
    subs = _Subscriptions([r for r in items if r.type == SUBSCRIPTION_TYPE], idx)
    verdicts = {}
    for acct in group_by_account(items, default_account_id):
        trail, groups = _check_trail(acct, idx, requirements)
        metric_filter, filters = _check_filter(acct, idx, groups)
        alarm, alarm_res = _check_alarm(acct, filters, requirements)
        topic = _check_topic(acct, idx, alarm_res, subs)
        realtime = _check_realtime(acct, requirements)
        checks = {c.check: c for c in (trail, metric_filter, alarm, topic, realtime)}
        verdicts[acct.id] = AccountVerdict(acct.id, acct.provider_urn, checks)
    return verdicts


def missing_account(account_id: str) -> AccountVerdict:
    """An account in scope with nothing deployed for it."""
    reason = "nothing is deployed for this account in the stack"
    return AccountVerdict(account_id, "", {c: CheckResult(c, FAIL, reason) for c in CHECKS})


def account_evidence(verdict: AccountVerdict) -> dict[str, Any]:
    return {
        "compliant": verdict.compliant,
        "status": verdict.status,
        "checks": {name: c.to_dict() for name, c in verdict.checks.items()},
    }


def summarize(
    verdicts: Mapping[str, AccountVerdict],
    in_scope: Sequence[str] | None = None,
    skipped: Sequence[Mapping[str, str]] = (),
    details: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``rootwatch.compliance/v1`` document (see docs/compliance.md).

    ``in_scope``: the accounts that must be covered (default: every account found);
    ``details``: extra per-account fields (severity, routes).
    """
    ids = list(in_scope) if in_scope is not None else sorted(verdicts)
    accounts: dict[str, Any] = {}
    for acct_id in ids:
        doc = account_evidence(verdicts.get(acct_id) or missing_account(acct_id))
        doc.update((details or {}).get(acct_id, {}))
        accounts[acct_id] = doc
    compliant = sum(1 for a in accounts.values() if a["compliant"])
    pending = sum(1 for a in accounts.values() if a["status"] == "pending")
    return {
        "schema": SCHEMA,
        "accounts": accounts,
        "kpis": {
            "accountsInScope": len(ids),
            "accountsCompliant": compliant,
            "accountsPending": pending,
            # Percent of in-scope accounts with every check passing; null with no accounts.
            "policyComplianceScore": round(100 * compliant / len(ids), 1) if ids else None,
            "skippedAccounts": [dict(s) for s in skipped],
        },
    }
