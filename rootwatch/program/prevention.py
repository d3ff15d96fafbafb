"""Organization-level prevention (``rootwatch:prevention``), deployed in the management account.

- ``centralRootAccess``: ``aws.iam.OrganizationsFeatures`` with RootCredentialsManagement (and
  RootSessions), after trusted access for ``iam.amazonaws.com``. This stack does not own the
  ``aws.organizations.Organization`` resource (its ``awsServiceAccessPrincipals`` would be the
  usual place), so trusted access is the standalone ``aws.organizations.AwsServiceAccess``
  (``trustedAccess: manage``, kept on destroy: other IAM features may rely on it) or left to
  whoever owns the Organization (``trustedAccess: existing``). A DelegatedAdministrator is
  not a substitute: it registers a member as admin of a service, it does not enable it.
- ``denyRootScp``: an SCP equal in effect to Control Tower's AWS-GR_RESTRICT_ROOT_USER with
  AssumeRoot sessions exempt (``rootwatch.compliance.prevention.deny_root_scp``), attached to
  the configured OUs, root or member accounts, never to the management account (SCPs do not
  affect it, and attaching there would only suggest a protection that does not exist). The
  organization must have the SERVICE_CONTROL_POLICY type enabled on its root (a setting of
  the Organization resource; not changed here).
- A management-account EventBridge rule ``rootwatch-prevention-tamper`` catches weakening
  (``rootwatch.detection.weakening``) and hands it to the management monitor's formatter.

Everything goes through the provider the management account's monitor uses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pulumi
import pulumi_aws as aws

from rootwatch.compliance import prevention as evidence
from rootwatch.core.errors import RootwatchError
from rootwatch.detection.weakening import RECREATE_PASSWORD_TASK
from rootwatch.lambdas.formatter import PREVENTION_TAMPER_CALLS
from rootwatch.program import realtime
from rootwatch.program.organization import Account, Scope
from rootwatch.program.settings import RootwatchSettings, region_partition

if TYPE_CHECKING:
    from rootwatch.program.monitor import RootActivityMonitor

COMPONENT_TYPE = "rootwatch:index:OrganizationPrevention"
COMPONENT_NAME = "rootwatch-prevention"
TAMPER_RULE_NAME = "rootwatch-prevention-tamper"


@dataclass(frozen=True)
class Plan:
    """What prevention deploys, decided before any resource is registered (pure)."""

    management: Account | None
    management_id: str
    features: tuple[str, ...]
    manage_trusted_access: bool
    scp_targets: tuple[str, ...]
    scp_document: Mapping[str, Any] | None


def _root_id(scope: Scope) -> str | None:
    return next((a.ou_path[0] for a in scope.accounts if a.ou_path), None)


def plan(scope: Scope, settings: RootwatchSettings) -> Plan | None:
    """Validate prevention against the discovered organization; None when it is off.

    Raises RootwatchError (one line, naming the key) for a target that is the management
    account or cannot be resolved.
    """
    p = settings.prevention
    if not p.enabled:
        return None
    mgmt_id = scope.management_account_id
    if not mgmt_id:
        raise RootwatchError("rootwatch:prevention: the management account is unknown (organization discovery "
                             "returned none: run as the management account)")
    management = next((a for a in scope.accounts if a.id == mgmt_id), None)
    targets: list[str] = []
    scp = p.deny_root_scp
    if scp.enabled:
        for t in scp.targets:
            if t == mgmt_id:
                raise RootwatchError(f"rootwatch:prevention.denyRootScp.targets: {t} is the management account; "
                                     "SCPs do not affect it (attach to the root or to OUs instead)")
            if t == "root":
                root = _root_id(scope)
                if root is None:
                    raise RootwatchError("rootwatch:prevention.denyRootScp.targets: cannot resolve 'root' (no account "
                                         "in scope has an OU path); give the r-xxxx id")
                t = root
            targets.append(t)
    features = evidence.ROOT_FEATURES if p.central_root_access.root_sessions else evidence.ROOT_FEATURES[:1]
    return Plan(
        management=management,
        management_id=mgmt_id,
        features=tuple(features) if p.central_root_access.enabled else (),
        manage_trusted_access=p.central_root_access.enabled and p.central_root_access.trusted_access == "manage",
        scp_targets=tuple(dict.fromkeys(targets)),
        scp_document=evidence.deny_root_scp(scp.exempt_principal_arns) if scp.enabled else None,
    )


def _slug(target: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", target.lower())


# --- the weakening rule (pure pattern) ---------------------------------------------------------


def tamper_pattern(policy_id: str | None, exempt_caller_prefix: str | None) -> dict[str, Any]:
    """The management account's prevention tamper pattern (EventBridge JSON)."""
    calls = dict(PREVENTION_TAMPER_CALLS)
    branches: list[dict[str, Any]] = [
        {"eventSource": ["iam.amazonaws.com"], "eventName": list(calls["iam.amazonaws.com"])},
        {"eventSource": ["organizations.amazonaws.com"], "eventName": ["DisableAWSServiceAccess"],
         "requestParameters": {"servicePrincipal": [evidence.IAM_PRINCIPAL]}},
        {"eventSource": ["organizations.amazonaws.com"], "eventName": ["DisablePolicyType"],
         "requestParameters": {"policyType": [evidence.SCP_TYPE]}},
        # The caller side of a root task that gives a member its root password back.
        {"eventSource": ["sts.amazonaws.com"], "eventName": ["AssumeRoot"],
         "requestParameters": {"taskPolicyArn": {"arn": [{"suffix": f"/{RECREATE_PASSWORD_TASK}"}]}}},
    ]
    if policy_id:
        branches.insert(1, {"eventSource": ["organizations.amazonaws.com"],
                            "eventName": ["DetachPolicy", "UpdatePolicy", "DeletePolicy"],
                            "requestParameters": {"policyId": [policy_id]}})
    detail: dict[str, Any] = {"$or": branches}
    if exempt_caller_prefix:
        detail["userIdentity"] = {"arn": [{"anything-but": {"prefix": exempt_caller_prefix}}]}
    return {"detail-type": [realtime.TAMPER_DETAIL_TYPE], "detail": detail}


# --- resources -----------------------------------------------------------------------------------


class OrganizationPrevention(pulumi.ComponentResource):
    def __init__(self, name: str, p: Plan, settings: RootwatchSettings, stack: str,
                 management_monitor: "RootActivityMonitor | None", opts: pulumi.ResourceOptions) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        from rootwatch.program.organization import managed_tags

        child = pulumi.ResourceOptions(parent=self)
        tags = managed_tags(stack)
        self.features: aws.iam.OrganizationsFeatures | None = None
        self.policy: aws.organizations.Policy | None = None
        self.attachments: dict[str, aws.organizations.PolicyAttachment] = {}
        if p.features:
            depends: list[pulumi.Resource] = []
            if p.manage_trusted_access:
                depends.append(aws.organizations.AwsServiceAccess(
                    f"{name}-iam-trusted-access",
                    service_principal=evidence.IAM_PRINCIPAL,
                    # Disabling it on destroy would switch off every IAM organization feature.
                    opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(retain_on_delete=True)),
                ))
            self.features = aws.iam.OrganizationsFeatures(
                f"{name}-root-access",
                enabled_features=list(p.features),
                # Deleting it switches centralized root access off: protected like the audit data.
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                    depends_on=depends, protect=settings.protect)),
            )
        if p.scp_document is not None:
            self.policy = aws.organizations.Policy(
                f"{name}-deny-root-scp",
                name=settings.prevention.deny_root_scp.name,
                type=evidence.SCP_TYPE,
                description="rootwatch: deny root-user actions in member accounts (Control Tower "
                            "AWS-GR_RESTRICT_ROOT_USER; sts:AssumeRoot sessions exempt)",
                content=json.dumps(p.scp_document),
                tags=tags,
                opts=child,
            )
            for target in p.scp_targets:
                self.attachments[target] = aws.organizations.PolicyAttachment(
                    f"{name}-deny-root-{_slug(target)}",
                    policy_id=self.policy.id,
                    target_id=target,
                    opts=child,
                )
        self.tamper_rules = self._tamper(name, settings, management_monitor, child, tags)
        self.register_outputs({})

    def _tamper(self, name: str, s: RootwatchSettings, monitor: "RootActivityMonitor | None",
                opts: pulumi.ResourceOptions, tags: dict[str, str]) -> list[aws.cloudwatch.EventRule]:
        rt = getattr(monitor, "realtime", None) if monitor is not None else None
        if rt is None or not s.realtime.tamper:
            pulumi.log.warn("rootwatch:prevention: no alert on weakening it (needs the management account in scope "
                            "with realtime.enabled and realtime.tamper)")
            return []
        exempt = s.realtime.management_deployer_arn
        policy_id = self.policy.id if self.policy is not None else pulumi.Output.from_input("")
        pattern = policy_id.apply(lambda pid: realtime.render(tamper_pattern(pid or None, exempt)))
        home = s.home_region
        # IAM, Organizations and the caller side of AssumeRoot (global STS endpoint) deliver to
        # the partition's global-events region; forwarded to the home bus when that differs.
        global_region = realtime.GLOBAL_EVENTS_REGION[region_partition(home)]
        rules = []
        for region in dict.fromkeys([home, global_region]):
            rule = aws.cloudwatch.EventRule(
                f"{name}-tamper-rule-{region}",
                name=TAMPER_RULE_NAME,
                description="rootwatch: weakening of centralized root access or the root-deny SCP",
                event_pattern=pattern,
                state=realtime.TAMPER_RULE_STATE,
                region=region,
                tags=tags,
                opts=opts,
            )
            # Straight to the hub's bus like the member's own rules; the hub's rule for non-root
            # CloudTrail events routes them to the formatter, which words them as tamper alerts.
            aws.cloudwatch.EventTarget(
                f"{name}-tamper-target-{region}",
                rule=rule.name,
                target_id=realtime.HUB_TARGET_ID,
                arn=realtime.hub_bus_arn(s.hub.account_id, s.hub_region) if s.hub else None,
                role_arn=rt.forwarder_role.arn,
                retry_policy=realtime._retry(),  # noqa: SLF001 - the same retries as the root rules
                region=region,
                opts=opts,
            )
            rules.append(rule)
        return rules


def deploy(scope: Scope, settings: RootwatchSettings, stack: str,
           monitors: Mapping[str, "RootActivityMonitor"], p: Plan | None) -> OrganizationPrevention | None:
    """The prevention component, through the management monitor's provider."""
    if p is None:
        return None
    from rootwatch.program import organization

    monitor = monitors.get(p.management_id)
    if monitor is not None:
        provider = monitor.get_provider(evidence.ORG_FEATURES_TYPE)
    elif p.management is not None:
        provider = organization.provider_for(p.management, settings, stack)
    else:
        provider = None  # the default provider: the management account's credentials
    return OrganizationPrevention(COMPONENT_NAME, p, settings, stack, monitor,
                                  pulumi.ResourceOptions(provider=provider))


def load_posture(settings: RootwatchSettings, base_dir: str | None = None) -> dict[str, str]:
    """Per-account root-credential states from ``prevention.postureFile`` ({} when unset)."""
    path = settings.prevention.posture_file
    if not path:
        return {}
    from pathlib import Path

    file = Path(path)
    if not file.is_absolute() and base_dir:
        file = Path(base_dir) / file
    try:
        doc = json.loads(file.read_text())
    except FileNotFoundError:
        raise RootwatchError(f"rootwatch:prevention.postureFile: {path}: no such file") from None
    except ValueError:
        raise RootwatchError(f"rootwatch:prevention.postureFile: {path}: not valid JSON") from None
    try:
        return evidence.posture_from_audit(doc, f"rootwatch:prevention.postureFile: {path}")
    except ValueError as exc:
        raise RootwatchError(str(exc)) from None


def places(scope: Scope) -> Sequence[evidence.AccountPlace]:
    return [evidence.AccountPlace(a.id, a.ou_path, a.is_management) for a in scope.accounts]
