"""Single-resource rules: is this trail, filter, alarm, topic, key or rule good enough on its own?
Also the policy pack's resource policies.
"""


from __future__ import annotations

import fnmatch
from typing import Any, Mapping, Sequence

from rootwatch.compliance.model import (
    AWS_MANAGED_SNS_KEY,
    CLOUDWATCH_PRINCIPAL,
    DEFAULT_MAX_ALARM_PERIOD_SECONDS,
    KEY_ACTIONS_NEEDED,
)
from rootwatch.compliance.values import (
    Problems,
    as_bool,
    as_list,
    as_number,
    first_object,
    is_unknown,
    known_str,
    log_group_from_arn,
    num_text,
    parse_json,
)
from rootwatch.detection.rule import (
    CIS_METRIC_NAME,
    CIS_PATTERN,
    EVENTBRIDGE_RULE_STATE,
)

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
        flag = as_bool(props.get(key), default)
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
    kms = props.get("kmsKeyId")
    if is_unknown(kms):
        p.unknown.append("kmsKeyId")
    elif not kms:
        p.failures.append("the trail's logs are not KMS-encrypted (CIS 3.x, Security Hub CloudTrail.2): set kmsKeyId "
                          "to a customer-managed key")
    return p


# Conditions that tie a "*" principal to one account, organization or source: not public.
_LIMITING_CONDITION_KEYS = frozenset(k.lower() for k in (
    "aws:SourceArn", "aws:SourceAccount", "aws:SourceOwner", "aws:SourceOrgID", "aws:PrincipalOrgID",
    "aws:PrincipalAccount", "aws:PrincipalArn", "kms:CallerAccount", "aws:SourceVpce", "aws:SourceVpc",
))


def public_statements(policy: Any) -> list[str]:
    """Sids (or indexes) of Allow statements open to any principal without a limiting condition."""
    doc = parse_json(policy)
    if not isinstance(doc, Mapping):
        return []
    found = []
    for i, st in enumerate(as_list(doc.get("Statement"))):
        if not isinstance(st, Mapping) or st.get("Effect") != "Allow":
            continue
        principal = st.get("Principal")
        aws = as_list(principal.get("AWS")) if isinstance(principal, Mapping) else []
        if principal != "*" and "*" not in aws:
            continue
        keys = {str(k).lower() for ops in (st.get("Condition") or {}).values() if isinstance(ops, Mapping) for k in ops}
        if not keys & _LIMITING_CONDITION_KEYS:
            found.append(str(st.get("Sid") or f"statement {i}"))
    return found


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
    mgmt = [s for s in selectors if isinstance(s, Mapping) and as_bool(s.get("includeManagementEvents"), True) is not False]
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
        excluded = sorted({src for s in mgmt for src in as_list(s.get("excludeManagementEventSources"))})
        p.failures.append(f"management events from {', '.join(map(str, excluded))} are excluded "
                          "(excludeManagementEventSources): root actions there go unseen")
        return
    kinds = sorted({str(s.get("readWriteType") or "All") for s in mgmt})
    p.failures.append(f"the event selectors log only {'/'.join(kinds)} management events: set readWriteType: All "
                      "(read-only root calls, e.g. listing buckets with a leaked key, must be logged too)")


def _field_values(selector: Mapping[str, Any], name: str) -> tuple[list[str], list[str]] | None:
    for f in as_list(selector.get("fieldSelectors")):
        if isinstance(f, Mapping) and f.get("field") == name:
            return [str(v) for v in as_list(f.get("equals"))], [str(v) for v in as_list(f.get("notEquals"))]
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
    n = as_number(days)
    if n and n < min_days:  # 0 / absent: never expire
        p.failures.append(f"log group {props.get('name')!r} keeps events {num_text(n)} days; at least {min_days} are "
                          "required (retentionInDays)")
    return p


def is_cis_metric_filter(props: Mapping[str, Any]) -> bool:
    """A filter publishing the CIS root-usage metric (extended detection publishes another metric)."""
    return first_object(props.get("metricTransformation")).get("name") == CIS_METRIC_NAME


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
    elif (limit := as_number(threshold)) is None or limit > 1:
        shown = num_text(limit) if limit is not None else repr(threshold)
        p.failures.append(f"threshold is {shown}: at most 1, so a single root event alarms")
    op = props.get("comparisonOperator")
    if is_unknown(op):
        p.unknown.append("comparisonOperator")
    elif op != "GreaterThanOrEqualToThreshold":
        p.failures.append(f"comparisonOperator is {op!r}: use GreaterThanOrEqualToThreshold")
    period = props.get("period")
    if is_unknown(period):
        p.unknown.append("period")
    elif (seconds := as_number(period)) is None or seconds > max_period_seconds:
        shown = num_text(seconds) if seconds is not None else repr(period)
        p.failures.append(f"alarm {name!r} period is {shown} s; at most {max_period_seconds} s (an alarm notifies only "
                          "on a state change, so a long period mutes repeated root use)")
    enabled = as_bool(props.get("actionsEnabled"), True)
    if enabled is None:
        p.unknown.append("actionsEnabled")
    elif not enabled:
        p.failures.append(f"alarm {name!r} has its actions disabled (actionsEnabled: false): it changes state but "
                          "notifies nobody")
    actions = props.get("alarmActions")
    if is_unknown(actions):
        p.unknown.append("alarmActions")
    else:
        values = as_list(actions)
        if not any(is_unknown(a) or is_sns_arn(a) for a in values):
            p.failures.append(f"alarm {name!r} has no SNS topic in alarmActions: nobody is told")
    return p


def is_sns_arn(value: Any) -> bool:
    s = known_str(value)
    return bool(s and s.split(":")[2:3] == ["sns"])


def is_aws_managed_sns_key(key_ref: Any) -> bool:
    s = known_str(key_ref)
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
        out = {str(s) for s in as_list(principal.get("Service"))}
        if "*" in as_list(principal.get("AWS")):
            out.add("*")
        return out
    return set()


def _allows(statement: Mapping[str, Any], action: str) -> bool:
    patterns = [str(a).lower() for a in as_list(statement.get("Action"))]
    return any(fnmatch.fnmatchcase(action.lower(), pat) for pat in patterns)


def key_policy_problems(props: Mapping[str, Any], label: str = "the key") -> Problems:
    p = Problems()
    enabled = as_bool(props.get("isEnabled"), True)
    if enabled is False:
        p.failures.append(f"{label} is disabled (isEnabled: false): the topic cannot encrypt messages")
    raw = props.get("policy")
    if is_unknown(raw):
        p.unknown.append("key policy")
        return p
    doc = parse_json(raw)
    statements = as_list(doc.get("Statement")) if isinstance(doc, Mapping) else []
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
        if isinstance(identity, Mapping) and "Root" in as_list(identity.get("type")):
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
    return _selects_root(parse_json(pattern))


def rule_problems(props: Mapping[str, Any]) -> Problems:
    p = Problems()
    state = props.get("state")
    if is_unknown(state):
        p.unknown.append("state")
    elif state != EVENTBRIDGE_RULE_STATE:
        p.failures.append(f"rule {props.get('name')!r} has state {state or 'ENABLED'!r}: read-only root calls (List*, "
                          f"Get*, Describe*) never reach it; set state {EVENTBRIDGE_RULE_STATE}")
    return p




def object_lock_problem(mode: Any, days: Any, years: Any) -> str | None:
    """The default retention of a trail bucket's Object Lock, judged once (the evaluation and `audit`):
    None when COMPLIANCE mode with a retention; else what lets someone in the account delete log files."""
    if mode != "COMPLIANCE":
        return (f"Object Lock mode {mode or 'unset'} (GOVERNANCE can be bypassed with s3:BypassGovernanceRetention; "
                "COMPLIANCE cannot)")
    if not (days or years):
        return "Object Lock has no default retention: new log files are not locked"
    return None
