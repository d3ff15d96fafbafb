"""``rootwatch audit``, the alert hub's part: is the one place where alerts reach people working?

Checked in the hub account (``rootwatch:hub.accountId``, region ``hub.region``) through the
same role the audit assumes everywhere:

``bus``
    the ``rootwatch-alerts`` event bus exists and its policy lets members put events
    without being public (an Allow to ``*`` needs an ``aws:PrincipalOrgID``-style condition);
``rules``
    the root, other (tamper, AssumeRoot, delivery alarms) and drill rules on that bus are
    enabled (root: with read-only management events) and target the formatter;
``formatter``
    the formatter function exists and is not failed or inactive;
``topics``
    each level's hub topic exists, is KMS-encrypted with a key CloudWatch and EventBridge may
    use, and has a confirmed subscription (a pending e-mail delivers nothing);
``intake``
    the alarm intake queue exists and an enabled event source mapping feeds it to the formatter.

:func:`collect_hub` is the AWS edge (plain dicts out); :func:`evaluate_hub` is pure. Like
``rootcreds``, this module is handed ``rootwatch.commands.audit`` (``edge``: its clients, topic
reading and topic verdict) instead of importing it, so the two never import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from rootwatch.compliance.rules import public_statements
from rootwatch.core.severity import Severity

Check = dict[str, Any]

HUB_CHECKS = ("bus", "rules", "formatter", "topics", "intake", "tamperPath")
# Lambda function states in which it cannot run (GetFunction Configuration.State).
BROKEN_FUNCTION_STATES = frozenset({"Failed", "Inactive"})
ENABLED_MAPPING_STATES = frozenset({"Enabled", "Enabling", "Updating"})


@dataclass(frozen=True)
class HubTarget:
    """Where the hub is and what it should contain (from the stack's settings)."""

    account_id: str
    region: str
    levels: tuple[str, ...]  # severity levels with a hub topic
    tamper: bool = True  # realtime.tamper: the hub's own tamper rule exists

    @classmethod
    def from_settings(cls, settings: Any) -> "HubTarget | None":
        if settings.hub is None:
            return None
        from rootwatch.program import hub

        return cls(settings.hub.account_id, settings.hub_region, tuple(lvl.value for lvl in hub.hub_levels(settings)),
                   bool(settings.realtime.tamper))


def _names() -> dict[str, Any]:
    from rootwatch.program import hub, realtime

    return {"bus": hub.BUS_NAME, "function": hub.FUNCTION_NAME, "queue": hub.INTAKE_QUEUE_NAME,
            "rules": {hub.ROOT_RULE: realtime.RULE_STATE, hub.OTHER_RULE: "ENABLED", hub.DRILL_RULE: "ENABLED"},
            "topic": hub.topic_arn, "direct": hub.DIRECT_RULE, "hubTamper": hub.HUB_TAMPER_RULE_NAME,
            "heartbeat": hub.HEARTBEAT_ALARM}


def _ok(reason: str) -> Check:
    return {"ok": True, "reason": reason}


def _fail(reason: str) -> Check:
    return {"ok": False, "reason": reason}


def _or_none(edge: Any, call: Any) -> Any:
    """The call's answer, or None when AWS says the resource is not there."""
    try:
        return call()
    except Exception as exc:
        if edge._not_found(exc):
            return None
        raise


# ---------------------------------------------------------------- the AWS edge


def collect_hub(edge: Any, clients: Any, target: HubTarget) -> dict[str, Any]:
    """Read the hub's bus, rules, formatter, topics and intake queue (one account, one region)."""
    n = _names()
    region = target.region
    ev, lam, sqs = clients("events", region), clients("lambda", region), clients("sqs", region)
    facts: dict[str, Any] = {"accountId": target.account_id, "region": region, "rules": {}, "topics": {}}
    facts["bus"] = _or_none(edge, lambda: ev.describe_event_bus(Name=n["bus"]))
    if facts["bus"] is not None:
        for rule_name in n["rules"]:
            rule = _or_none(edge, lambda r=rule_name: ev.describe_rule(Name=r, EventBusName=n["bus"]))
            targets = edge._paginate(ev, "list_targets_by_rule", "Targets", Rule=rule_name,
                                      EventBusName=n["bus"]) if rule else []
            facts["rules"][rule_name] = {"rule": rule, "targets": targets}
    # The formatter-free tamper path: the direct rules' targets and the heartbeat alarm.
    facts["direct"] = {}
    for key, bus in (("direct", n["bus"]), ("hubTamper", "default")):
        if key == "direct" and facts["bus"] is None:
            continue
        rule = _or_none(edge, lambda r=n[key], b=bus: ev.describe_rule(Name=r, EventBusName=b))
        targets = edge._paginate(ev, "list_targets_by_rule", "Targets", Rule=n[key], EventBusName=bus) if rule else []
        facts["direct"][key] = {"rule": rule, "targets": targets}
    alarms = clients("cloudwatch", region).describe_alarms(AlarmNames=[n["heartbeat"]]).get("MetricAlarms", [])
    facts["heartbeat"] = alarms[0] if alarms else None
    function = _or_none(edge, lambda: lam.get_function(FunctionName=n["function"]))
    facts["function"] = (function or {}).get("Configuration")
    for level in target.levels:
        arn = n["topic"](target.account_id, region, Severity(level))
        facts["topics"][level] = {"arn": arn, **edge.collect_topic(clients, arn)}
    url = _or_none(edge, lambda: sqs.get_queue_url(QueueName=n["queue"]))
    facts["intake"] = None
    if url is not None:
        attrs = sqs.get_queue_attributes(QueueUrl=url["QueueUrl"], AttributeNames=["QueueArn"])["Attributes"]
        facts["intake"] = {"arn": attrs["QueueArn"]}
        facts["mappings"] = edge._paginate(lam, "list_event_source_mappings", "EventSourceMappings",
                                            EventSourceArn=attrs["QueueArn"])
    return facts


# ---------------------------------------------------------------- pure verdicts


def _check(problems: Sequence[str], ok: str) -> Check:
    return _fail("; ".join(problems)) if problems else _ok(ok)


def evaluate_bus(bus: Mapping[str, Any] | None) -> Check:
    if bus is None:
        return _fail("event bus rootwatch-alerts not found: no member's real-time alert can arrive")
    policy = bus.get("Policy")
    if not policy:
        return _fail(f"bus {bus.get('Arn', 'rootwatch-alerts')} has no policy: members cannot put events")
    public = public_statements(policy)
    if public:
        return _fail(f"bus policy is public ({', '.join(public)}): anyone may put events and forge alerts")
    return _ok(f"bus {bus.get('Arn', 'rootwatch-alerts')}: policy limited to the organization")


def evaluate_rules(rules: Mapping[str, Any], expected: Mapping[str, str], function_arn: str | None) -> Check:
    problems: list[str] = []
    for name, state in expected.items():
        entry = rules.get(name) or {}
        rule = entry.get("rule")
        if not rule:
            problems.append(f"rule {name} missing")
            continue
        if rule.get("State") != state:
            problems.append(f"rule {name} is {rule.get('State')} (needs {state})")
        arns = [t.get("Arn") for t in entry.get("targets") or []]
        if function_arn and function_arn not in arns:
            problems.append(f"rule {name} does not target the formatter ({', '.join(map(str, arns)) or 'no targets'})")
        elif not arns:
            problems.append(f"rule {name} has no targets")
    return _check(problems, f"{len(expected)} rules on the hub bus, enabled, targeting the formatter")


def evaluate_formatter(config: Mapping[str, Any] | None) -> Check:
    if config is None:
        return _fail("the formatter function is missing: nothing turns events into alerts")
    state = config.get("State")
    if state in BROKEN_FUNCTION_STATES:
        return _fail(f"the formatter {config.get('FunctionArn')} is {state}: "
                           f"{config.get('StateReason') or 'it cannot run'}")
    return _ok(f"formatter {config.get('FunctionArn')} ({state or 'state unknown'})")


def evaluate_topics(topics: Mapping[str, Mapping[str, Any]], topic_verdict: Any) -> Check:
    """``topic_verdict(arn, facts)`` is the member topic's verdict (audit.evaluate_topic): the same rules."""
    if not topics:
        return _fail("no hub topics to check (no level has a route)")
    problems = []
    for level, topic in topics.items():
        verdict = topic_verdict(str(topic.get("arn")), topic)
        if not verdict["ok"]:
            problems.append(f"{level}: {verdict['reason']}")
    return _check(problems, f"{len(topics)} level topic(s), each encrypted with a confirmed subscription")


def evaluate_intake(intake: Mapping[str, Any] | None, mappings: Sequence[Mapping[str, Any]],
                    function_arn: str | None) -> Check:
    if intake is None:
        return _fail("the alarm intake queue is missing: members' CIS alarms reach no one")
    live = [m for m in mappings if m.get("State") in ENABLED_MAPPING_STATES
            and (function_arn is None or m.get("FunctionArn") == function_arn)]
    if not live:
        states = ", ".join(str(m.get("State")) for m in mappings) or "none"
        return _fail(f"no enabled event source mapping from {intake['arn']} to the formatter "
                           f"(mappings: {states}): alarm notifications pile up unread")
    return _ok(f"intake {intake['arn']} feeds the formatter")


def evaluate_tamper_path(direct: Mapping[str, Any], heartbeat: Mapping[str, Any] | None, critical: str,
                         hub_tamper: bool = True) -> Check:
    """Tamper alerts that need no formatter: both direct rules publish to the critical topic, and
    the heartbeat alarm pages it when the formatter falls silent."""
    n = _names()
    problems: list[str] = []
    for key in ("direct", "hubTamper") if hub_tamper else ("direct",):
        entry = direct.get(key) or {}
        rule = entry.get("rule")
        if not rule:
            problems.append(f"rule {n[key]} missing")
        elif rule.get("State") != "ENABLED":
            problems.append(f"rule {n[key]} is {rule.get('State')}")
        elif critical not in [t.get("Arn") for t in entry.get("targets") or []]:
            problems.append(f"rule {n[key]} does not publish to {critical}")
    if heartbeat is None:
        problems.append(f"alarm {n['heartbeat']} missing: a silent formatter would go unnoticed")
    elif not heartbeat.get("ActionsEnabled", True) or critical not in (heartbeat.get("AlarmActions") or []):
        problems.append(f"alarm {n['heartbeat']} does not page {critical}")
    return _check(problems, f"tamper events reach {critical} without the formatter; heartbeat alarm in place")


def evaluate_hub(facts: Mapping[str, Any], topic_verdict: Any, hub_tamper: bool = True) -> dict[str, Check]:
    """Verdict per hub check from the collected facts (pure)."""
    n = _names()
    function = facts.get("function")
    function_arn = (function or {}).get("FunctionArn")
    return {
        "bus": evaluate_bus(facts.get("bus")),
        "rules": evaluate_rules(facts.get("rules") or {}, n["rules"], function_arn)
        if facts.get("bus") is not None else _fail("not checked: no hub bus"),
        "formatter": evaluate_formatter(function),
        "topics": evaluate_topics(facts.get("topics") or {}, topic_verdict),
        "intake": evaluate_intake(facts.get("intake"), facts.get("mappings") or [], function_arn),
        "tamperPath": evaluate_tamper_path(facts.get("direct") or {}, facts.get("heartbeat"),
                                           n["topic"](facts["accountId"], facts["region"], Severity.CRITICAL), hub_tamper),
    }


def audit_hub(edge: Any, target: HubTarget, ctx: Any) -> dict[str, Any]:
    """The hub's row; a failure to reach it becomes its error, never the run's."""
    result: dict[str, Any] = {"accountId": target.account_id, "region": target.region, "compliant": False,
                              "error": None, "checks": {}}
    try:
        clients = edge.account_clients(ctx.base, target.account_id, ctx.caller_account, ctx.role_name)
        result["checks"] = evaluate_hub(collect_hub(edge, clients, target), edge.evaluate_topic, target.tamper)
        result["compliant"] = all(c["ok"] for c in result["checks"].values())
    except Exception as exc:
        result["error"] = edge.describe_error(exc)
    return result


def print_hub(hub: Mapping[str, Any], out: Any) -> None:
    result = "ERROR" if hub["error"] else "PASS" if hub["compliant"] else "FAIL"
    print(f"\nAlert hub {hub['accountId']} ({hub['region']}): {result}", file=out)
    if hub["error"]:
        print(f"    error: {hub['error']}", file=out)
    for name in HUB_CHECKS:
        check = hub["checks"].get(name)
        if check:
            print(f"    {name}: {'ok' if check['ok'] else 'FAIL'}: {check['reason']}", file=out)
