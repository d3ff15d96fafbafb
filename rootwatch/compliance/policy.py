"""The CrossGuard rules for root-activity detection, usable with and without the Pulumi CLI.

Each rule is plain data plus a function over ``compliance.PolicyInput``:

- resource rules look at one resource on its own (the part of a check a single
  resource can fail): a detection trail, the CIS metric filter and alarm, a
  topic on ``alias/aws/sns``, a root-activity EventBridge rule;
- stack rules run ``compliance.evaluate`` over every resource: the relationships
  (the filter on *the trail's* log group, the alarm on *that* metric, the topic's
  subscriptions and key) and "every account provider has a complete chain".

The same rules run three ways: ``policies()`` builds the pulumi-policy objects
(the pack in ``policypack/``), ``check_resources()`` runs them in-process (used
by ``rootwatch plan --policy`` and ``rootwatch policy check``).

Unknown values (a preview before the first deploy) never raise a violation of
the check policies: they are reported by the advisory
``rootwatch-verify-after-deploy`` policy and evaluated for real at ``pulumi up``.

pulumi_policy is imported only inside ``policies()`` and the adapters that take
its objects: constructing a ``PolicyPack`` starts a gRPC server and blocks, so
that happens only in ``policypack/__main__.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from rootwatch import compliance
from rootwatch.compliance import PolicyInput, Requirements
from rootwatch.core.errors import RootwatchError

PACK_NAME = "rootwatch"

TRAIL = "rootwatch-trail"
METRIC_FILTER = "rootwatch-metric-filter"
ALARM = "rootwatch-alarm"
TOPIC = "rootwatch-alert-topic"
REALTIME_RULE = "rootwatch-realtime-rule"
COMPLETE_CHAIN = "rootwatch-complete-chain"
VERIFY_AFTER_DEPLOY = "rootwatch-verify-after-deploy"
ROOT_PREVENTION = "rootwatch-root-prevention"
IMMUTABLE_LOGS = "rootwatch-immutable-logs"

MANDATORY, ADVISORY, REMEDIATE, DISABLED = "mandatory", "advisory", "remediate", "disabled"
LEVELS = (MANDATORY, ADVISORY, REMEDIATE, DISABLED)

# Threshold keys of the pack config; defaults live here because the SDK does not
# apply schema defaults (args.get_config() holds only what the engine passes).
MIN_RETENTION_DAYS = "minRetentionDays"
MAX_ALARM_PERIOD = "maxAlarmPeriodSeconds"
REQUIRED_REGIONS = "requiredRegions"
EXISTING_LOG_GROUP = "existingLogGroupName"
ORGANIZATION_LOG_GROUP = "organizationLogGroupName"
DEFAULTS: dict[str, Any] = {
    MIN_RETENTION_DAYS: compliance.DEFAULT_MIN_RETENTION_DAYS,
    MAX_ALARM_PERIOD: compliance.DEFAULT_MAX_ALARM_PERIOD_SECONDS,
    REQUIRED_REGIONS: [],
    EXISTING_LOG_GROUP: None,
    ORGANIZATION_LOG_GROUP: None,
}
CONFIG_SCHEMA: dict[str, dict[str, Any]] = {
    MIN_RETENTION_DAYS: {
        "type": "integer", "minimum": 1, "default": DEFAULTS[MIN_RETENTION_DAYS],
        "description": "Minimum CloudWatch Logs retention (days) of the trail's log group; 'never expire' passes.",
    },
    MAX_ALARM_PERIOD: {
        "type": "integer", "minimum": 10, "default": DEFAULTS[MAX_ALARM_PERIOD],
        "description": "Maximum alarm period (seconds): a long period mutes repeated root use.",
    },
    REQUIRED_REGIONS: {
        "type": "array", "items": {"type": "string"}, "default": DEFAULTS[REQUIRED_REGIONS],
        "description": "Regions that need an EventBridge root-activity rule in every account; empty: not checked.",
    },
    EXISTING_LOG_GROUP: {
        "type": "string",
        "description": "For accounts whose trail is managed elsewhere: the log group it delivers to.",
    },
    ORGANIZATION_LOG_GROUP: {
        "type": "string",
        "description": "trail.mode organization: the organization trail's log group; members without a chain of "
                       "their own get status organization-trail (not compliant, not a violation).",
    },
}
_STACK_KEYS = (MIN_RETENTION_DAYS, MAX_ALARM_PERIOD, REQUIRED_REGIONS, EXISTING_LOG_GROUP, ORGANIZATION_LOG_GROUP)


@dataclass(frozen=True)
class Violation:
    policy: str
    urn: str  # "" when the whole stack is at fault
    message: str
    enforcement_level: str  # "mandatory" or "advisory"
    account: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "urn": self.urn, "message": self.message,
                "enforcementLevel": self.enforcement_level, "account": self.account}


ResourceCheck = Callable[[PolicyInput, Requirements], list[str]]
StackCheck = Callable[[Sequence[PolicyInput], Requirements], list[tuple[str, str, str]]]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    level: str
    check: ResourceCheck | StackCheck
    stack: bool = False
    # Config keys (thresholds) the rule reads, besides enforcementLevel.
    config_keys: tuple[str, ...] = ()
    remediation: str = ""


# --- resource rules: one resource on its own -------------------------------------------


def _trail(r: PolicyInput, _: Requirements) -> list[str]:
    if r.type != compliance.TRAIL_TYPE or not compliance.is_detection_trail(r.props):
        return []
    return compliance.trail_problems(r.props).failures


def _metric_filter(r: PolicyInput, _: Requirements) -> list[str]:
    if r.type != compliance.METRIC_FILTER_TYPE or not compliance.is_cis_metric_filter(r.props):
        return []
    return compliance.pattern_problems(r.props).failures


def _alarm(r: PolicyInput, req: Requirements) -> list[str]:
    if r.type != compliance.ALARM_TYPE or not compliance.is_cis_alarm(r.props):
        return []
    return compliance.alarm_problems(r.props, req.max_alarm_period_seconds).failures


def _topic(r: PolicyInput, _: Requirements) -> list[str]:
    # Only alias/aws/sns is wrong for any topic on its own; subscriptions and the
    # key policy need the other resources (rootwatch-complete-chain).
    if r.type != compliance.TOPIC_TYPE or not compliance.is_aws_managed_sns_key(r.props.get("kmsMasterKeyId")):
        return []
    return compliance.topic_encryption_problems(r.props).failures


def _realtime_rule(r: PolicyInput, _: Requirements) -> list[str]:
    if r.type != compliance.EVENT_RULE_TYPE or not compliance.is_root_rule(r.props):
        return []
    return compliance.rule_problems(r.props).failures


# --- stack rules: compliance.evaluate over everything -----------------------------------


def _verdicts(resources: Sequence[PolicyInput], req: Requirements) -> list[compliance.AccountVerdict]:
    return list(compliance.evaluate(resources, req).values())


def _complete_chain(resources: Sequence[PolicyInput], req: Requirements) -> list[tuple[str, str, str]]:
    return [
        (f"account {v.account_id}: {c.check}: {c.reason}", c.urn or v.provider_urn, v.account_id)
        for v in _verdicts(resources, req)
        for c in v.failures()
    ]


def _verify_after_deploy(resources: Sequence[PolicyInput], req: Requirements) -> list[tuple[str, str, str]]:
    return [
        (f"account {v.account_id}: {c.check}: {c.reason}", c.urn or v.provider_urn, v.account_id)
        for v in _verdicts(resources, req)
        for c in v.pending()
    ]


def _immutable_logs(resources: Sequence[PolicyInput], req: Requirements) -> list[tuple[str, str, str]]:
    """Accounts whose trail's log files someone in the account could delete (the compliance output's
    immutableLogs, from the same evaluation); unknown-until-deploy and outside-the-stack are not findings."""
    return [
        (f"account {v.account_id}: immutable logs: {v.immutable_logs.reason}", v.immutable_logs.urn or v.provider_urn,
         v.account_id)
        for v in _verdicts(resources, req)
        if v.immutable_logs is not None and v.immutable_logs.status == "fail"
    ]


def _root_prevention(resources: Sequence[PolicyInput], _: Requirements) -> list[tuple[str, str, str]]:
    from rootwatch.compliance import prevention

    return prevention.prevention_findings(resources)


RULES: tuple[Rule, ...] = (
    Rule(TRAIL, "A trail delivering to CloudWatch Logs is multi-region, logging, validated and records read and "
         "write management events.", MANDATORY, _trail,
         remediation="Set isMultiRegionTrail, enableLogFileValidation and enableLogging to true; use readWriteType All "
         "with no excluded management event sources."),
    Rule(METRIC_FILTER, "The filter publishing the CIS root-usage metric has the byte-exact CIS pattern.", MANDATORY,
         _metric_filter, remediation=f"Use the pattern {compliance.CIS_PATTERN} verbatim; put extra detection in a "
         "separate filter."),
    Rule(ALARM, "The CIS root-usage alarm is Sum >= 1 over a short period, with actions enabled and an SNS action.",
         MANDATORY, _alarm, config_keys=(MAX_ALARM_PERIOD,),
         remediation="statistic Sum, threshold 1, GreaterThanOrEqualToThreshold, period <= maxAlarmPeriodSeconds, "
         "actionsEnabled true, an SNS topic in alarmActions."),
    Rule(TOPIC, "No SNS topic uses the AWS-managed key alias/aws/sns (CloudWatch alarms cannot publish to it).",
         MANDATORY, _topic, remediation="Use a customer-managed key whose policy grants cloudwatch.amazonaws.com "
         "kms:Decrypt and kms:GenerateDataKey*."),
    Rule(REALTIME_RULE, "An EventBridge root-activity rule receives read-only events too "
         "(state ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS).", MANDATORY, _realtime_rule,
         remediation="Set state to ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS."),
    Rule(COMPLETE_CHAIN, "Every AWS account provider in the stack has a complete root-activity chain: trail -> "
         "CIS filter on its log group -> alarm on that metric -> subscribed, CMK-encrypted topic (-> real-time rules).",
         MANDATORY, _complete_chain, stack=True, config_keys=_STACK_KEYS,
         remediation="See the reason: each names the check and the resource to fix (docs/compliance.md)."),
    Rule(VERIFY_AFTER_DEPLOY, "Parts of the chain depend on values known only after deploy; they are checked again "
         "at pulumi up.", ADVISORY, _verify_after_deploy, stack=True, config_keys=_STACK_KEYS),
    # Advisory by default: prevention is an organization decision (Control Tower may own the SCP).
    Rule(ROOT_PREVENTION, "Root prevention in the stack is whole: centralized root access with both IAM features "
         "(RootCredentialsManagement, RootSessions; CIS AWS 7.0 2.1.1), and every root-deny SCP equal in effect to "
         "Control Tower's AWS-GR_RESTRICT_ROOT_USER (AssumeRoot exempt) and attached.", ADVISORY, _root_prevention,
         stack=True,
         remediation="Set rootwatch:prevention.centralRootAccess.enabled and denyRootScp (docs/prevention.md)."),
    # Advisory by default: CIS does not require it, and Object Lock cannot be undone once on.
    Rule(IMMUTABLE_LOGS, "No one in an account, root included, can delete its trail's log files: the trail's bucket "
         "has S3 Object Lock in COMPLIANCE mode, or replicates (without delete markers) into a bucket that has.",
         ADVISORY, _immutable_logs, stack=True, config_keys=_STACK_KEYS,
         remediation="Set rootwatch:trail.archive (a log-archive account), or keep trail.objectLockDays > 0 "
         "(docs/compliance.md, immutable logs)."),
)
NAMES: tuple[str, ...] = tuple(r.name for r in RULES)


# --- config ----------------------------------------------------------------------------


def _config_error(message: str) -> RootwatchError:
    return RootwatchError(f"policy config: {message}")


def requirements_from(props: Mapping[str, Any] | None) -> Requirements:
    """Thresholds from one policy's config, defaults filled in (the SDK does not apply them)."""
    values = {**DEFAULTS, **{k: v for k, v in (props or {}).items() if v is not None}}
    for key in (MIN_RETENTION_DAYS, MAX_ALARM_PERIOD):
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise _config_error(f"{key} must be a positive integer, not {v!r}")
    regions = values[REQUIRED_REGIONS]
    if isinstance(regions, str) or not isinstance(regions, (list, tuple)) or not all(isinstance(r, str) for r in regions):
        raise _config_error(f"{REQUIRED_REGIONS} must be a list of region names, not {regions!r}")
    existing = values[EXISTING_LOG_GROUP]
    if existing is not None and not isinstance(existing, str):
        raise _config_error(f"{EXISTING_LOG_GROUP} must be a string, not {existing!r}")
    organization = values[ORGANIZATION_LOG_GROUP]
    if organization is not None and not isinstance(organization, str):
        raise _config_error(f"{ORGANIZATION_LOG_GROUP} must be a string, not {organization!r}")
    return Requirements(
        min_retention_days=int(values[MIN_RETENTION_DAYS]),
        max_alarm_period_seconds=int(values[MAX_ALARM_PERIOD]),
        required_regions=tuple(regions) or None,
        existing_log_group=existing or None,
        organization_log_group=organization or None,
    )


def _level(value: Any, where: str) -> str:
    if not isinstance(value, str) or value.lower() not in LEVELS:
        raise _config_error(f"{where}: enforcement level must be one of {', '.join(LEVELS)}, not {value!r}")
    return value.lower()


def resolve_config(config: Mapping[str, Any] | None) -> dict[str, tuple[str, dict[str, Any]]]:
    """``--policy-pack-config`` JSON -> {policy: (enforcement level, threshold props)}.

    Same format as the CLI's: ``{"all": LEVEL, "<policy>": LEVEL | {"enforcementLevel": LEVEL, ...}}``;
    a policy's own level beats "all", which beats the policy's default.
    """
    if config is not None and not isinstance(config, Mapping):
        raise _config_error("must be a JSON object")
    config = dict(config or {})
    unknown = sorted(set(config) - set(NAMES) - {"all"})
    if unknown:
        raise _config_error(f"unknown policy {', '.join(map(repr, unknown))} (policies: {', '.join(NAMES)})")
    everyone = config.get("all")
    if isinstance(everyone, Mapping):
        everyone = everyone.get("enforcementLevel")
    base = _level(everyone, "all") if everyone is not None else None
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for rule in RULES:
        entry = config.get(rule.name)
        level = base or rule.level
        props: dict[str, Any] = {}
        if isinstance(entry, str):
            level = _level(entry, rule.name)
        elif isinstance(entry, Mapping):
            props = {k: v for k, v in entry.items() if k != "enforcementLevel"}
            extra = sorted(set(props) - set(rule.config_keys))
            if extra:
                raise _config_error(f"{rule.name}: unknown setting {', '.join(map(repr, extra))} "
                                    f"(settings: {', '.join(rule.config_keys) or 'none'})")
            if "enforcementLevel" in entry:
                level = _level(entry["enforcementLevel"], rule.name)
        elif entry is not None:
            raise _config_error(f"{rule.name}: expected an enforcement level or an object")
        requirements_from(props)  # fail early on bad thresholds
        out[rule.name] = (level, props)
    return out


def config_for(req: Requirements) -> dict[str, Any]:
    """The pack config a stack's requirements imply (pass it to check_resources for `plan --policy`).

    Real-time regions and an existing trail's log group are stack settings the
    pack cannot see; without them the chain skips check 5 and misses the log group.
    The program computes ``req`` from its settings (``rootwatch.program.outputs.requirements_for``).
    """
    chain: dict[str, Any] = {}
    if req.required_regions:
        chain[REQUIRED_REGIONS] = list(req.required_regions)
    if req.existing_log_group:
        chain[EXISTING_LOG_GROUP] = req.existing_log_group
    if req.organization_log_group:
        chain[ORGANIZATION_LOG_GROUP] = req.organization_log_group
    return {COMPLETE_CHAIN: chain, VERIFY_AFTER_DEPLOY: dict(chain)} if chain else {}


def _reported(level: str) -> str:
    # Remediation is not possible offline; like the engine, report it as mandatory.
    return MANDATORY if level == REMEDIATE else level


# --- running the rules -----------------------------------------------------------------


def check_resources(resources: Iterable[PolicyInput], config: Mapping[str, Any] | None = None) -> list[Violation]:
    """Every rule over ``resources`` (the pack's verdicts, without the CLI); config as ``--policy-pack-config``."""
    items = [PolicyInput(r.type, r.urn, compliance.normalize(dict(r.props)), r.provider, r.name, r.parent,
                         tuple(r.dependencies), dict(r.property_dependencies)) for r in resources]
    settings = resolve_config(config)
    found: list[Violation] = []
    for rule in RULES:
        level, props = settings[rule.name]
        if level == DISABLED:
            continue
        req = requirements_from(props)
        if rule.stack:
            stack_check: StackCheck = rule.check  # type: ignore[assignment]
            found += [Violation(rule.name, urn, msg, _reported(level), acct) for msg, urn, acct in stack_check(items, req)]
        else:
            resource_check: ResourceCheck = rule.check  # type: ignore[assignment]
            found += [Violation(rule.name, r.urn, msg, _reported(level)) for r in items for msg in resource_check(r, req)]
    return found


def has_mandatory(violations: Iterable[Violation]) -> bool:
    return any(v.enforcement_level == MANDATORY for v in violations)


# --- adapters --------------------------------------------------------------------------


def from_registered(resources: Iterable[Any]) -> list[PolicyInput]:
    """mockrun.Registered (the program under mocks) -> PolicyInput."""
    return [
        PolicyInput(r.type, r.urn, r.inputs, compliance.provider_urn(r.provider), r.name, r.parent or "",
                    tuple(getattr(r, "dependencies", ()) or ()))
        for r in resources
    ]


def from_stack_export(doc: Any, source: str = "stack export") -> list[PolicyInput]:
    """``pulumi stack export`` JSON (deployment.resources[]) -> PolicyInput; outputs win over inputs.

    Raises RootwatchError naming ``source`` when the document is not a stack export.
    """
    if not isinstance(doc, Mapping):
        raise RootwatchError(f"{source}: not a Pulumi stack export (expected a JSON object)")
    deployment = doc.get("deployment")
    if not isinstance(deployment, Mapping):
        raise RootwatchError(f"{source}: no 'deployment' object; is this `pulumi stack export` output?")
    resources = deployment.get("resources") or []  # an empty stack has none
    if not isinstance(resources, list):
        raise RootwatchError(f"{source}: deployment.resources must be a list")
    out = []
    for i, r in enumerate(resources):
        where = f"{source}: deployment.resources[{i}]"
        if not isinstance(r, Mapping) or not isinstance(r.get("urn"), str) or not isinstance(r.get("type"), str):
            raise RootwatchError(f"{where}: needs a string 'urn' and 'type'")
        inputs, outputs = r.get("inputs") or {}, r.get("outputs") or {}
        if not isinstance(inputs, Mapping) or not isinstance(outputs, Mapping):
            raise RootwatchError(f"{where} ({r['urn']}): inputs and outputs must be objects")
        if r.get("delete"):  # replaced, waiting to be deleted: not part of the stack's chain
            continue
        prop_deps = r.get("propertyDependencies") or {}
        if not isinstance(prop_deps, Mapping):
            prop_deps = {}
        out.append(
            PolicyInput(
                type=r["type"],
                urn=r["urn"],
                props={**inputs, **outputs},
                provider=compliance.provider_urn(r.get("provider") or ""),
                name=r["urn"].rsplit("::", 1)[-1],
                parent=r.get("parent") or "",
                dependencies=tuple(r.get("dependencies") or ()),
                property_dependencies={k: tuple(v or ()) for k, v in prop_deps.items()},
            )
        )
    return out


def _plain(value: Any) -> Any:
    """pulumi-policy's unknown-checking proxies -> plain dicts/lists, unknown sentinels kept."""
    if type(value).__name__ in ("_DictProxy", "_ListProxy"):
        value = value["__target"]
    if isinstance(value, Mapping):
        return {k: _plain(value[k]) for k in value}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def from_policy_resource_args(args: Any) -> PolicyInput:
    """pulumi_policy.ResourceValidationArgs -> PolicyInput."""
    provider = getattr(args, "provider", None)
    return PolicyInput(args.resource_type, args.urn, _plain(args.props), provider.urn if provider else "", args.name)


def from_policy_resources(resources: Iterable[Any]) -> list[PolicyInput]:
    """pulumi_policy.PolicyResource list (StackValidationArgs.resources) -> PolicyInput, providers included."""
    out: list[PolicyInput] = []
    providers: dict[str, Any] = {}
    for r in resources:
        if r.provider is not None:
            providers.setdefault(r.provider.urn, r.provider)
        out.append(
            PolicyInput(
                r.resource_type, r.urn, _plain(r.props), r.provider.urn if r.provider else "", r.name,
                r.parent.urn if r.parent else "", tuple(d.urn for d in r.dependencies),
                {k: tuple(d.urn for d in v) for k, v in r.property_dependencies.items()},
            )
        )
    present = {r.urn for r in out}
    # Provider resources carry the account id (allowedAccountIds); add any not listed.
    out += [PolicyInput(p.resource_type, urn, _plain(p.props), "", p.name)
            for urn, p in providers.items() if urn not in present]
    return out


# --- the pulumi-policy objects ---------------------------------------------------------


def policies() -> list[Any]:
    """The pack's policies as pulumi_policy objects (build the PolicyPack from these)."""
    from pulumi_policy import (
        EnforcementLevel,
        PolicyConfigSchema,
        ResourceValidationPolicy,
        StackValidationPolicy,
    )

    built: list[Any] = []
    for rule in RULES:
        schema = PolicyConfigSchema(properties={k: CONFIG_SCHEMA[k] for k in rule.config_keys}) if rule.config_keys else None
        common: dict[str, Any] = dict(
            name=rule.name, description=rule.description, enforcement_level=EnforcementLevel(rule.level),
            config_schema=schema, remediation_steps=rule.remediation or None,
        )
        if rule.stack:
            built.append(StackValidationPolicy(validate=_stack_validation(rule), **common))
        else:
            built.append(ResourceValidationPolicy(validate=_resource_validation(rule), **common))
    return built


def _resource_validation(rule: Rule) -> Callable[[Any, Any], None]:
    check: ResourceCheck = rule.check  # type: ignore[assignment]

    def validate(args: Any, report_violation: Any) -> None:
        r = from_policy_resource_args(args)
        r = PolicyInput(r.type, r.urn, compliance.normalize(r.props), r.provider, r.name)
        for message in check(r, requirements_from(args.get_config())):
            report_violation(message)

    return validate


def _stack_validation(rule: Rule) -> Callable[[Any, Any], None]:
    check: StackCheck = rule.check  # type: ignore[assignment]

    def validate(args: Any, report_violation: Any) -> None:
        resources = from_policy_resources(args.resources)
        for message, urn, _account in check(resources, requirements_from(args.get_config())):
            report_violation(message, urn or None)

    return validate
