"""The five per-account checks, following relationships by value (ARN, name) or property
dependencies, never by resource names: trail -> filter -> alarm -> topic, and real-time rules.
"""


from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from rootwatch.compliance.accounts import AccountResources
from rootwatch.compliance.model import (
    ALARM,
    ALARM_TYPE,
    ALIAS_TYPE,
    BUCKET_LOGGING_TYPE,
    BUCKET_TYPE,
    HARDENING,
    IMMUTABLE_LOGS,
    OBJECT_LOCK_TYPE,
    QUEUE_POLICY_TYPE,
    REPLICATION_TYPE,
    QUEUE_TYPE,
    TOPIC_POLICY_TYPE,
    CLOUDWATCH_PRINCIPAL,
    EVENT_RULE_TYPE,
    FAIL,
    KEY_TYPE,
    LOG_GROUP_TYPE,
    METRIC_FILTER,
    METRIC_FILTER_TYPE,
    ORGANIZATION_TRAIL,
    PASS,
    PENDING,
    REALTIME,
    SKIPPED,
    TOPIC,
    TOPIC_TYPE,
    TRAIL,
    TRAIL_TYPE,
    UNVERIFIED,
    CheckResult,
    PolicyInput,
    Requirements,
)
from rootwatch.compliance.rules import (
    alarm_problems,
    is_cis_metric_filter,
    is_root_rule,
    is_sns_arn,
    key_policy_problems,
    object_lock_problem,
    pattern_problems,
    public_statements,
    retention_problems,
    rule_problems,
    topic_encryption_problems,
    trail_problems,
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
)
from rootwatch.detection.rule import CIS_PATTERN, EVENTBRIDGE_RULE_STATE

# --- relationships -------------------------------------------------------------------


class ResourceIndex:
    def __init__(self, resources: Sequence[PolicyInput]) -> None:
        self.by_urn = {r.urn: r for r in resources}

    def deps(self, r: PolicyInput, prop: str, typ: str) -> list[PolicyInput]:
        """Resources of ``typ`` that ``r.prop`` came from (all dependencies when per-property ones are unknown)."""
        urns = r.property_dependencies.get(prop, ()) if r.property_dependencies else r.dependencies
        return [self.by_urn[u] for u in urns if u in self.by_urn and self.by_urn[u].type == typ]


def _region(r: PolicyInput, acct: AccountResources) -> str | None:
    return known_str(r.props.get("region")) or acct.region


def _arn_parts(arn: Any) -> list[str] | None:
    s = known_str(arn)
    parts = s.split(":", 5) if s else []
    return parts if len(parts) == 6 and parts[0] == "arn" else None


def _names_arn(arn: Any, r: PolicyInput, acct: AccountResources, service: str) -> bool:
    """Does ``arn`` name resource ``r`` (by its arn output, else by name, region and account)?"""
    own = known_str(r.props.get("arn"))
    if own:
        return own == arn
    parts = _arn_parts(arn)
    name = known_str(r.props.get("name"))
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


def check_trail(acct: AccountResources, idx: ResourceIndex, req: Requirements) -> tuple[CheckResult, list[_LogGroupRef]]:
    trails = acct.of(TRAIL_TYPE)
    if not trails and req.organization_log_group:
        return check_organization_trail(acct, req.organization_log_group)
    if not trails:
        if req.existing_log_group:
            return (
                CheckResult(TRAIL, UNVERIFIED, f"trail managed outside this stack (trail.mode existing), not verified "
                            f"here (run `rootwatch audit`): its log group {req.existing_log_group!r} is declared "
                            "and checked below"),
                [_LogGroupRef(req.existing_log_group, _log_group_named(acct, req.existing_log_group))],
            )
        reason = ("no CloudTrail trail in this account: add a multi-region trail delivering to CloudWatch Logs "
                  "(or declare trail.mode existing with its log group)")
        return CheckResult(TRAIL, FAIL, reason, acct.provider_urn or None), []
    scored = []
    for t in trails:
        p = trail_problems(t.props)
        _trail_storage_problems(t, acct, idx, p)
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


ORGANIZATION_MEMBER_REASON = ("the organization trail records this account; the CIS filter and alarm are on that "
                              "trail's log group {group!r} in its owner account, so Security Hub evaluates "
                              "CloudWatch.1 here as NO_DATA (trail.mode organization)")


def check_organization_trail(acct: AccountResources, group: str) -> tuple[CheckResult, list[_LogGroupRef]]:
    """trail.mode organization: the owner account (a filter on the trail's group) is checked like mode existing."""
    if any(known_str(f.props.get("logGroupName")) == group for f in acct.of(METRIC_FILTER_TYPE)):
        return (CheckResult(TRAIL, PASS, f"organization trail managed outside this stack: its log group {group!r} "
                            "is in this account and checked below (trail.mode organization)"),
                [_LogGroupRef(group, _log_group_named(acct, group))])
    return CheckResult(TRAIL, ORGANIZATION_TRAIL, ORGANIZATION_MEMBER_REASON.format(group=group)), []


def organization_member(trail: CheckResult, checks: Sequence[CheckResult]) -> list[CheckResult]:
    """A member under an organization trail has no filter, alarm or alarm topic of its own: that is the
    mode's trade-off, reported as its own status rather than as failures (or as compliant)."""
    if trail.status != ORGANIZATION_TRAIL:
        return list(checks)
    return [CheckResult(c.check, ORGANIZATION_TRAIL, trail.reason) if c.status == FAIL else c for c in checks]


def _same_bucket(ref: PolicyInput, prop: str, bucket: str | None, bucket_res: PolicyInput | None, idx: ResourceIndex) -> bool | None:
    """Does ``ref.prop`` name the trail's bucket? None: unknown before deploy."""
    name = known_str(ref.props.get(prop))
    if name and bucket:
        return name == bucket
    deps = idx.deps(ref, prop, BUCKET_TYPE)
    if deps and bucket_res is not None:
        return any(d.urn == bucket_res.urn for d in deps)
    return None


def _trail_bucket(trail: PolicyInput, idx: ResourceIndex) -> tuple[str | None, PolicyInput | None]:
    bucket = known_str(trail.props.get("s3BucketName"))
    bucket_res = next(iter(idx.deps(trail, "s3BucketName", BUCKET_TYPE)), None)
    if bucket is None and bucket_res is not None:
        bucket = known_str(bucket_res.props.get("bucket"))
    return bucket, bucket_res


def _trail_storage_problems(trail: PolicyInput, acct: AccountResources, idx: ResourceIndex, p: Problems) -> None:
    """S3 access logging on the trail's bucket (CIS 3.x) and rotation of the trail's key, when managed here."""
    bucket, bucket_res = _trail_bucket(trail, idx)
    logging = [_same_bucket(bl, "bucket", bucket, bucket_res, idx) for bl in acct.of(BUCKET_LOGGING_TYPE)]
    if True not in logging:
        if None in logging:
            p.unknown.append("bucket access logging")
        elif bucket or bucket_res is not None:
            p.failures.append(f"the trail's bucket {bucket or bucket_res.name!r} does not log access (CIS 3.x): add "  # type: ignore[union-attr]
                              "a BucketLogging into a log bucket of this account")
    ref = trail.props.get("kmsKeyId")
    keys = idx.deps(trail, "kmsKeyId", KEY_TYPE) or [
        k for k in acct.of(KEY_TYPE) if known_str(ref) and known_str(ref) == known_str(k.props.get("arn"))]
    if keys and "kmsKeyId" in p.unknown:
        p.unknown.remove("kmsKeyId")  # unknown before deploy, but it comes from a key of this stack
    for k in keys:
        rotation = as_bool(k.props.get("enableKeyRotation"), False)
        if rotation is None:
            p.unknown.append("key rotation")
        elif not rotation:
            p.failures.append(f"the trail's key {k.props.get('arn') or k.name!r} does not rotate: set enableKeyRotation: true")


def _log_group_named(acct: AccountResources, name: str) -> PolicyInput | None:
    return next((g for g in acct.of(LOG_GROUP_TYPE) if g.props.get("name") == name), None)


def _trail_log_group(trail: PolicyInput, acct: AccountResources, idx: ResourceIndex) -> _LogGroupRef | None:
    """The log group a trail delivers to; None when it delivers to none."""
    arn = trail.props.get("cloudWatchLogsGroupArn")
    name = log_group_from_arn(arn)
    if name:
        return _LogGroupRef(name, _log_group_named(acct, name))
    if not is_unknown(arn):
        return None
    dep = next(iter(idx.deps(trail, "cloudWatchLogsGroupArn", LOG_GROUP_TYPE)), None)
    return _LogGroupRef(known_str(dep.props.get("name")) if dep else None, dep)


def _filter_on(f: PolicyInput, groups: list[_LogGroupRef], idx: ResourceIndex) -> bool | None:
    """Is the filter on one of ``groups``? None when that cannot be known before deploy."""
    name = known_str(f.props.get("logGroupName"))
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


def check_filter(acct: AccountResources, idx: ResourceIndex, groups: list[_LogGroupRef]) -> tuple[CheckResult, list[PolicyInput]]:
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
        group = known_str(f.props.get("logGroupName"))
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
    mt = first_object(f.props.get("metricTransformation"))
    return mt.get("name"), mt.get("namespace")


def _alarm_on(a: PolicyInput, metric: tuple[Any, Any]) -> bool | None:
    name, ns = metric
    mine = (a.props.get("metricName"), a.props.get("namespace"))
    if any(is_unknown(v) for v in (name, ns, *mine)):
        return None
    return mine == (name, ns)


def check_alarm(
    acct: AccountResources, filters: list[PolicyInput], req: Requirements
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
        return CheckResult(ALARM, PASS, f"{label} on {shown}: Sum >= {num_text(as_number(best.props.get('threshold')) or 0)} "
                           f"over {num_text(as_number(best.props.get('period')) or 0)} s, actions enabled, notifies SNS",
                           best.urn), best
    return CheckResult(ALARM, problems.status, problems.text() if problems.failures else f"{label}: {problems.text()}",
                       best.urn), best


def _alarm_topics(alarm: PolicyInput, acct: AccountResources, idx: ResourceIndex) -> tuple[list[PolicyInput], list[str], bool]:
    """The alarm's topics in the stack, the SNS ARNs outside it, and whether some action is unknown."""
    topics = acct.of(TOPIC_TYPE)
    found: list[PolicyInput] = []
    outside: list[str] = []
    unknown = False
    for action in as_list(alarm.props.get("alarmActions")):
        if is_unknown(action):
            unknown = True
            continue
        if not is_sns_arn(action):
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


class SubscriptionIndex:
    """Subscriptions indexed by the topic they name, so a large organization is not scanned per topic."""

    def __init__(self, subs: Sequence[PolicyInput], idx: ResourceIndex) -> None:
        self.by_topic_name: dict[str, list[PolicyInput]] = {}
        self.by_topic_urn: dict[str, list[PolicyInput]] = {}  # topic ARN unknown until deploy
        self.unresolved: list[PolicyInput] = []  # neither an ARN nor a dependency names the topic
        for s in subs:
            ref = known_str(s.props.get("topic"))
            deps = idx.deps(s, "topic", TOPIC_TYPE)
            if ref:
                self.by_topic_name.setdefault(ref.rsplit(":", 1)[-1], []).append(s)
            elif deps:
                for d in deps:
                    self.by_topic_urn.setdefault(d.urn, []).append(s)
            else:
                self.unresolved.append(s)

    def candidates(self, topic: PolicyInput) -> list[PolicyInput]:
        own = known_str(topic.props.get("arn")) or ""
        names = {own.rsplit(":", 1)[-1], known_str(topic.props.get("name")) or ""} - {""}
        found = [s for n in names for s in self.by_topic_name.get(n, ())]
        unique = {s.urn: s for s in found + self.by_topic_urn.get(topic.urn, [])}
        return list(unique.values()) + self.unresolved


def subscription_confirmed(sub: PolicyInput, topic_provider: str, idx: "ResourceIndex | None" = None) -> bool:
    """Does AWS deliver to this subscription? Only a confirmed one counts as a subscriber.

    After deploy the provider reports ``pendingConfirmation``. Before (plan, preview): e-mail
    stays pending until someone clicks; https until its endpoint answers (only endpoints that
    confirm themselves, ``endpointAutoConfirms``, count); an SQS or Lambda endpoint of another
    account is confirmed only when that account created the subscription (its own provider).
    """
    pending = sub.props.get("pendingConfirmation")
    if pending in (True, "true"):
        return False
    if pending in (False, "false"):
        return True
    proto = known_str(sub.props.get("protocol")) or ""
    if proto in ("email", "email-json"):
        return False
    if proto in ("http", "https"):
        return sub.props.get("endpointAutoConfirms") in (True, "true")
    if proto in ("sqs", "lambda"):
        endpoint, topic = _arn_parts(sub.props.get("endpoint")), _arn_parts(sub.props.get("topic"))
        if endpoint and topic and endpoint[4] == topic[4]:
            return True  # same account: confirmed at once
        if sub.provider != topic_provider:
            return True  # created through the endpoint's account
        if endpoint is None and idx is not None:
            # Unknown before the first deploy: the queue or function of this stack it comes from tells the account.
            sources = [d for d in idx.by_urn.values() if d.urn in (sub.property_dependencies.get("endpoint", ())
                                                                    if sub.property_dependencies else sub.dependencies)]
            return bool(sources) and all(d.provider == topic_provider for d in sources)
        return False
    return True


def _subscriptions(topic: PolicyInput, acct: AccountResources, idx: ResourceIndex, index: SubscriptionIndex,
                   confirmed_only: bool = True) -> tuple[int, bool]:
    """(confirmed subscriptions of ``topic``, whether some could not be matched before deploy)."""
    count, unknown = 0, False
    for s in index.candidates(topic):
        ref = s.props.get("topic")
        if known_str(ref):
            hit = _names_arn(ref, topic, acct, "sns")
        else:
            hit = any(d.urn == topic.urn for d in idx.deps(s, "topic", TOPIC_TYPE))
            unknown |= not hit and is_unknown(ref)
        if hit and confirmed_only and not subscription_confirmed(s, acct.provider_urn, idx):
            continue
        count += hit
    return count, unknown


def _topic_key(topic: PolicyInput, acct: AccountResources, idx: ResourceIndex) -> PolicyInput | None:
    ref = known_str(topic.props.get("kmsMasterKeyId"))
    keys = acct.of(KEY_TYPE)
    if ref:
        for k in keys:
            arn, key_id = known_str(k.props.get("arn")), known_str(k.props.get("keyId"))
            if ref in (arn, key_id) or (key_id and ref.endswith(":key/" + key_id)):
                return k
        alias = ref.split(":")[-1] if ref.startswith("arn:") else ref
        for a in acct.of(ALIAS_TYPE):
            if a.props.get("name") == alias:
                target = known_str(a.props.get("targetKeyId"))
                hit = next((k for k in keys if target and target in (k.props.get("keyId"), k.props.get("arn"))), None)
                return hit or next(iter(idx.deps(a, "targetKeyId", KEY_TYPE)), None)
    direct = idx.deps(topic, "kmsMasterKeyId", KEY_TYPE)
    if direct:
        return direct[0]
    for a in idx.deps(topic, "kmsMasterKeyId", ALIAS_TYPE):
        return next(iter(idx.deps(a, "targetKeyId", KEY_TYPE)), None)
    return None


def _topic_problems(topic: PolicyInput, acct: AccountResources, idx: ResourceIndex, subs: SubscriptionIndex) -> Problems:
    name = topic.props.get("name") or topic.name
    p = Problems()
    n, unknown = _subscriptions(topic, acct, idx, subs)
    if not n:
        pending, _ = _subscriptions(topic, acct, idx, subs, confirmed_only=False)
        if unknown:
            p.unknown.append("subscription topic ARNs")
        elif pending:
            p.failures.append(f"topic {name!r} has {pending} subscription(s), none confirmed: SNS delivers nothing "
                              "until one is (e-mail: someone clicks the link; cross-account SQS/Lambda: create it "
                              "through the endpoint's account, as the alert hub does)")
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


def check_topic(acct: AccountResources, idx: ResourceIndex, alarm: PolicyInput | None, all_subs: SubscriptionIndex) -> CheckResult:
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
        return CheckResult(TOPIC, PASS, f"topic {name!r} has {n} confirmed subscription(s) and a customer-managed key that "
                           f"{CLOUDWATCH_PRINCIPAL} may use", best.urn)
    text = problems.text() if problems.failures else f"topic {name!r}: {problems.text()}"
    return CheckResult(TOPIC, problems.status, text, best.urn)


def check_realtime(acct: AccountResources, req: Requirements) -> CheckResult:
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




def check_hardening(acct: AccountResources) -> CheckResult:
    """Every key of the account rotates, and no topic, key or queue policy is open to everyone."""
    p = Problems()
    for k in acct.of(KEY_TYPE):
        rotation = as_bool(k.props.get("enableKeyRotation"), False)
        if rotation is None:
            p.unknown.append(f"rotation of key {k.name}")
        elif not rotation:
            p.failures.append(f"key {k.props.get('arn') or k.name!r} does not rotate (enableKeyRotation)")
    sources = [(TOPIC_POLICY_TYPE, "policy", "topic policy"), (TOPIC_TYPE, "policy", "topic policy"),
               (KEY_TYPE, "policy", "key policy"), (QUEUE_TYPE, "policy", "queue policy"),
               (QUEUE_POLICY_TYPE, "policy", "queue policy")]
    for typ, prop, what in sources:
        for r in acct.of(typ):
            value = r.props.get(prop)
            if is_unknown(value):
                p.unknown.append(f"{what} of {r.name}")
                continue
            open_ = public_statements(value)
            if open_:
                p.failures.append(f"{what} of {r.props.get('name') or r.name!r} is public: statement(s) "
                                  f"{', '.join(open_)} allow any principal with no account or source condition")
    if p.status == PASS:
        return CheckResult(HARDENING, PASS, "every KMS key rotates; no topic, key or queue policy is public")
    return CheckResult(HARDENING, p.status, p.text(), acct.provider_urn or None)


# --- immutable logs (reported, not counted in "compliant") -----------------------------------------


def _lock_of(bucket: str | None, bucket_res: PolicyInput | None, locks: Sequence[PolicyInput],
             idx: ResourceIndex) -> tuple[PolicyInput | None, bool]:
    """The Object Lock configuration of that bucket, and whether some lock's bucket is still unknown."""
    unknown = False
    for lock in locks:
        same = _same_bucket(lock, "bucket", bucket, bucket_res, idx)
        if same:
            return lock, False
        unknown = unknown or same is None
    return None, unknown


def _lock_problem(lock: PolicyInput) -> str | None:
    """None when the lock is COMPLIANCE mode with a positive default retention; else what is wrong."""
    retention = first_object(first_object(lock.props.get("rule")).get("defaultRetention"))
    return object_lock_problem(retention.get("mode"), as_number(retention.get("days")), as_number(retention.get("years")))


def _lock_text(lock: PolicyInput) -> str:
    retention = first_object(first_object(lock.props.get("rule")).get("defaultRetention"))
    n = as_number(retention.get("days"))
    return f"{num_text(n)} days" if n else f"{num_text(as_number(retention.get('years')) or 0)} years"


def check_immutable_logs(acct: AccountResources, idx: ResourceIndex) -> CheckResult | None:
    """Can anyone in the account (root included) erase the trail's log files? PASS when the trail's
    bucket is locked in COMPLIANCE mode, or replicates (without delete markers) into a bucket that is.
    None: the account has no trail in the stack (its logs are kept by a trail outside it)."""
    trails = acct.of(TRAIL_TYPE)
    if not trails:
        return None
    all_items = list(idx.by_urn.values())
    locks = [r for r in all_items if r.type == OBJECT_LOCK_TYPE]
    verdicts = [_trail_immutability(trail, acct, idx, all_items, locks) for trail in trails]
    order = {PASS: 0, PENDING: 1, UNVERIFIED: 2, FAIL: 3}
    return min(verdicts, key=lambda v: order.get(v.status, 9))


def _trail_immutability(trail: PolicyInput, acct: AccountResources, idx: ResourceIndex,
                        all_items: Sequence[PolicyInput], locks: Sequence[PolicyInput]) -> CheckResult:
    bucket, bucket_res = _trail_bucket(trail, idx)
    label = repr(bucket or (bucket_res.name if bucket_res else "?"))
    lock, unknown = _lock_of(bucket, bucket_res, locks, idx)
    if lock is not None:
        problem = _lock_problem(lock)
        if problem:
            return CheckResult(IMMUTABLE_LOGS, FAIL, f"trail bucket {label}: {problem}", lock.urn)
        return CheckResult(IMMUTABLE_LOGS, PASS, f"trail bucket {label} is locked: S3 Object Lock COMPLIANCE, "
                           f"{_lock_text(lock)}", lock.urn)
    found: list[CheckResult] = []
    for rep in acct.of(REPLICATION_TYPE):
        same = _same_bucket(rep, "bucket", bucket, bucket_res, idx)
        unknown = unknown or same is None
        if same:
            found.append(_replication_verdict(rep, label, all_items, locks, idx))
    if found:
        order = {PASS: 0, PENDING: 1, UNVERIFIED: 2, FAIL: 3}
        return min(found, key=lambda v: order.get(v.status, 9))
    return CheckResult(IMMUTABLE_LOGS, PENDING if unknown else FAIL,
                       f"trail bucket {label} is versioned only: the account's root user or an admin can delete every "
                       "version (set trail.archive, or trail.objectLockDays)", acct.provider_urn or None)


def _replication_verdict(rep: PolicyInput, label: str, all_items: Sequence[PolicyInput], locks: Sequence[PolicyInput],
                         idx: ResourceIndex) -> CheckResult:
    rules = rep.props.get("rules") or []
    live = [r for r in rules if isinstance(r, Mapping) and r.get("status") == "Enabled"]
    if not live:
        return CheckResult(IMMUTABLE_LOGS, FAIL, f"trail bucket {label}: replication has no enabled rule", rep.urn)
    rule = live[0]
    if first_object(rule.get("deleteMarkerReplication")).get("status") == "Enabled":
        return CheckResult(IMMUTABLE_LOGS, FAIL, f"trail bucket {label}: replication copies delete markers, so a "
                           "deletion in this account reaches the archive", rep.urn)
    dest = known_str(first_object(rule.get("destination")).get("bucket"))
    if dest is None:
        return CheckResult(IMMUTABLE_LOGS, PENDING, f"trail bucket {label}: replication destination known at deploy",
                           rep.urn)
    name = dest.rsplit(":", 1)[-1]
    target = next((b for b in all_items if b.type == BUCKET_TYPE and b.props.get("bucket") == name), None)
    if target is None:
        return CheckResult(IMMUTABLE_LOGS, UNVERIFIED, f"trail bucket {label} replicates to {name}, outside this stack: "
                           "check its Object Lock there", rep.urn)
    lock, _ = _lock_of(name, target, locks, idx)
    problem = "it has no Object Lock" if lock is None else _lock_problem(lock)
    if problem:
        return CheckResult(IMMUTABLE_LOGS, FAIL, f"trail bucket {label} replicates to {name}, but {problem}", rep.urn)
    return CheckResult(IMMUTABLE_LOGS, PASS, f"trail bucket {label} replicates (no delete markers) to {name}, locked: "
                       f"S3 Object Lock COMPLIANCE, {_lock_text(lock)}", rep.urn)  # type: ignore[arg-type]
