"""Organization-level prevention evidence: centralized root access, the root-deny SCP, root credentials.

Pure Python (no pulumi, no boto3), shared by the program (the SCP document it deploys and
the ``compliance`` output), the CrossGuard pack (the advisory ``rootwatch-root-prevention``
rule) and ``rootwatch plan`` (the posture column).

The SCP is compared with Control Tower's control *in effect*, not by text: a small
evaluator of the statement forms SCPs use (Deny, Action/Resource wildcards, ArnLike /
StringLike / their Not forms, Null, Bool) decides, for a fixed set of request contexts,
whether the policy denies the request. The rootwatch document must deny exactly what
Control Tower's ``AWS-GR_RESTRICT_ROOT_USER`` denies, except requests made inside an
``sts:AssumeRoot`` session (the key ``aws:AssumedRoot`` is present there) and the
configured exempt principals.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from rootwatch.compliance.model import PolicyInput
from rootwatch.compliance.values import is_unknown, parse_json

ORG_FEATURES_TYPE = "aws:iam/organizationsFeatures:OrganizationsFeatures"
SERVICE_ACCESS_TYPE = "aws:organizations/awsServiceAccess:AwsServiceAccess"
POLICY_TYPE = "aws:organizations/policy:Policy"
POLICY_ATTACHMENT_TYPE = "aws:organizations/policyAttachment:PolicyAttachment"
ORG_EVIDENCE_TYPES = frozenset({ORG_FEATURES_TYPE, SERVICE_ACCESS_TYPE, POLICY_TYPE, POLICY_ATTACHMENT_TYPE})

SCP_TYPE = "SERVICE_CONTROL_POLICY"
ROOT_FEATURES = ("RootCredentialsManagement", "RootSessions")
IAM_PRINCIPAL = "iam.amazonaws.com"
ROOT_PRINCIPAL_PATTERN = "arn:aws:iam::*:root"
SID = "GRRESTRICTROOTUSER"

# Control Tower's artifact for "Disallow Actions as a Root User" (AWS-GR_RESTRICT_ROOT_USER), as
# published in the Control Tower control reference (strongly recommended preventive controls;
# earlier editions used StringLike, the same test for this ARN). Control Tower exempts AssumeRoot
# sessions with the condition AWS documents in its SCP examples ("Prevent root credentials
# management in member accounts"): "Null": {"aws:AssumedRoot": "true"}.
CONTROL_TOWER_RESTRICT_ROOT_USER: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [{
        "Sid": SID,
        "Effect": "Deny",
        "Action": "*",
        "Resource": ["*"],
        "Condition": {"ArnLike": {"aws:PrincipalArn": [ROOT_PRINCIPAL_PATTERN]}},
    }],
}
ASSUMED_ROOT_EXEMPTION = {"Null": {"aws:AssumedRoot": "true"}}

# Per-account root-credential states (from `rootwatch audit --root-credentials`).
NONE, PRESENT, UNKNOWN = "none", "present", "unknown"
ROOT_STATES = (NONE, PRESENT, UNKNOWN)


def deny_root_scp(exempt_principal_arns: Sequence[str] = ()) -> dict[str, Any]:
    """The SCP rootwatch deploys: Control Tower's deny, AssumeRoot sessions and exempt principals excepted."""
    condition: dict[str, Any] = {"ArnLike": {"aws:PrincipalArn": [ROOT_PRINCIPAL_PATTERN]}, **ASSUMED_ROOT_EXEMPTION}
    if exempt_principal_arns:
        condition["ArnNotLike"] = {"aws:PrincipalArn": list(exempt_principal_arns)}
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": SID, "Effect": "Deny", "Action": "*", "Resource": "*", "Condition": condition}]}


# --- a small SCP evaluator (deny statements only: SCPs grant nothing) ------------------------


class UnsupportedPolicy(ValueError):
    """A statement form the evaluator does not model: equivalence cannot be shown."""


@dataclass(frozen=True)
class Request:
    """One request as an SCP sees it. ``context`` holds the condition keys that are present."""

    action: str
    resource: str
    context: Mapping[str, str]


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _like(pattern: str, value: str) -> bool:
    # IAM's * and ? wildcards; ArnLike also matches segment-wise, the same for these ARNs.
    return fnmatch.fnmatchcase(value, pattern)


def _condition_holds(op: str, key: str, expected: Any, request: Request) -> bool:
    values = [str(v) for v in _as_list(expected)]
    present = key in request.context
    actual = request.context.get(key)
    if op == "Null":
        want_absent = [v.lower() for v in values] == ["true"]
        return (not present) if want_absent else present
    base = op.removeprefix("ForAnyValue:")
    if base in ("ArnLike", "StringLike", "ArnEquals", "StringEquals"):
        return present and any(_like(v, str(actual)) if "Like" in base else v == actual for v in values)
    if base in ("ArnNotLike", "StringNotLike", "ArnNotEquals", "StringNotEquals"):
        # Not-operators hold when the key is absent (IAM's documented behaviour).
        return not present or not any(_like(v, str(actual)) if "Like" in base else v == actual for v in values)
    if base == "Bool":
        return present and str(actual).lower() in [v.lower() for v in values]
    raise UnsupportedPolicy(f"condition operator {op} is not modelled")


def statement_denies(statement: Mapping[str, Any], request: Request) -> bool:
    if statement.get("Effect") != "Deny":
        return False
    if "NotAction" in statement or "NotResource" in statement or "NotPrincipal" in statement:
        raise UnsupportedPolicy("NotAction/NotResource/NotPrincipal are not modelled")
    if not any(_like(a, request.action) for a in _as_list(statement.get("Action", []))):
        return False
    if not any(_like(r, request.resource) for r in _as_list(statement.get("Resource", []))):
        return False
    for op, keys in (statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            if not _condition_holds(op, key, expected, request):
                return False
    return True


def denies(document: Mapping[str, Any], request: Request) -> bool:
    return any(statement_denies(s, request) for s in _as_list(document.get("Statement", [])))


def _sample_requests(exempt: Sequence[str]) -> list[tuple[str, Request]]:
    """Request contexts the comparison ranges over: who calls, inside which session."""
    member = "222222222222"
    root = f"arn:aws:iam::{member}:root"
    out = []
    for action, resource in (("s3:GetObject", "arn:aws:s3:::b/k"), ("iam:CreateAccessKey", "*"),
                             ("iam:DeleteLoginProfile", "*"), ("ec2:RunInstances", "*")):
        out += [
            ("root user (password or keys)", Request(action, resource, {"aws:PrincipalArn": root})),
            ("root user, no MFA", Request(action, resource, {"aws:PrincipalArn": root, "aws:MultiFactorAuthPresent": "false"})),
            ("AssumeRoot session", Request(action, resource, {"aws:PrincipalArn": root, "aws:AssumedRoot": "true"})),
            ("IAM role", Request(action, resource, {"aws:PrincipalArn": f"arn:aws:iam::{member}:role/admin"})),
            ("IAM user", Request(action, resource, {"aws:PrincipalArn": f"arn:aws:iam::{member}:user/alice"})),
            ("role named root", Request(action, resource, {"aws:PrincipalArn": f"arn:aws:iam::{member}:role/root"})),
            ("AWS service", Request(action, resource, {})),
        ]
        out += [("exempt principal", Request(action, resource, {"aws:PrincipalArn": e.replace("*", member)}))
                for e in exempt]
    return out


def equivalence_problems(document: Mapping[str, Any], exempt: Sequence[str] = ()) -> list[str]:
    """Where ``document`` differs in effect from Control Tower's control with the AssumeRoot exemption.

    Expected: deny whatever Control Tower denies, except inside AssumeRoot sessions and for
    the exempt principals; never deny what Control Tower allows. Empty: equivalent.
    """
    problems: list[str] = []
    try:
        for who, req in _sample_requests(exempt):
            control_tower = denies(CONTROL_TOWER_RESTRICT_ROOT_USER, req)
            expected = control_tower and "aws:AssumedRoot" not in req.context and not any(
                _like(e, req.context.get("aws:PrincipalArn", "")) for e in exempt)
            actual = denies(document, req)
            if actual != expected:
                verb = "denies" if actual else "allows"
                problems.append(f"{verb} {req.action} for {who} (Control Tower with the AssumeRoot exemption "
                                f"{'denies' if expected else 'allows'} it)")
    except UnsupportedPolicy as exc:
        return [str(exc)]
    return list(dict.fromkeys(problems))


# --- evidence from the engine view -----------------------------------------------------------


def _content(props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    raw = props.get("content")
    if is_unknown(raw):
        return None
    doc = parse_json(raw) if isinstance(raw, str) else raw
    return doc if isinstance(doc, Mapping) else None


def _exempt_of(doc: Mapping[str, Any]) -> list[str]:
    for s in _as_list(doc.get("Statement", [])):
        arns = ((s.get("Condition") or {}).get("ArnNotLike") or {}).get("aws:PrincipalArn")
        if arns:
            return [str(a) for a in _as_list(arns)]
    return []


def is_root_deny_scp(props: Mapping[str, Any]) -> bool:
    """An SCP that denies root at all (the evidence looks at these)."""
    doc = _content(props)
    if props.get("type", SCP_TYPE) != SCP_TYPE or doc is None:
        return False
    try:
        return denies(doc, Request("s3:GetObject", "*", {"aws:PrincipalArn": "arn:aws:iam::222222222222:root"}))
    except UnsupportedPolicy:
        return False


@dataclass(frozen=True)
class AccountPlace:
    id: str
    ou_path: tuple[str, ...]
    is_management: bool = False


def organization_evidence(resources: Iterable[PolicyInput]) -> dict[str, Any]:
    """The org-wide evidence: ``centralRootAccess`` and ``denyRootScp`` (targets and equivalence)."""
    items = [r for r in resources if r.type in ORG_EVIDENCE_TYPES]
    features: set[str] = set()
    feature_urn = None
    for r in items:
        if r.type == ORG_FEATURES_TYPE:
            listed = r.props.get("enabledFeatures")
            features.update(str(f) for f in (listed if isinstance(listed, list) else []))
            feature_urn = r.urn
    trusted = next((r.urn for r in items if r.type == SERVICE_ACCESS_TYPE
                    and r.props.get("servicePrincipal") == IAM_PRINCIPAL), None)
    central = {
        "enabled": all(f in features for f in ROOT_FEATURES),
        "features": sorted(features),
        "trustedAccess": "managed" if trusted else "not in this stack",
        "resource": feature_urn,
    }
    scps = [r for r in items if r.type == POLICY_TYPE and is_root_deny_scp(r.props)]
    policies = []
    for p in scps:
        doc = _content(p.props) or {}
        problems = equivalence_problems(doc, _exempt_of(doc))
        targets = sorted(
            str(a.props.get("targetId")) for a in items
            if a.type == POLICY_ATTACHMENT_TYPE and _attached_to(a, p)
        )
        policies.append({"name": p.props.get("name") or p.name, "resource": p.urn, "targets": targets,
                         "equivalentToControlTower": not problems, "problems": problems})
    good = [p for p in policies if p["equivalentToControlTower"] and p["targets"]]
    deny = {
        "enabled": bool(good),
        "targets": sorted({t for p in good for t in p["targets"]}),
        "policies": policies,
    }
    return {"centralRootAccess": central, "denyRootScp": deny}


def _attached_to(attachment: PolicyInput, policy: PolicyInput) -> bool:
    """By value (the policy id, known after deploy) or by the property's dependency on the policy."""
    pid = attachment.props.get("policyId")
    deps = attachment.property_dependencies.get("policyId") or attachment.dependencies
    if policy.urn in deps:
        return True
    return isinstance(pid, str) and not is_unknown(pid) and pid in (policy.props.get("id"), policy.name)


def scp_covers(account: AccountPlace, targets: Sequence[str]) -> bool | None:
    """Whether an SCP attached to ``targets`` applies to the account; None for the management account."""
    if account.is_management:
        return None  # SCPs never affect the management account
    return bool(set(targets) & {account.id, *account.ou_path})


def account_prevention(
    accounts: Sequence[AccountPlace], org: Mapping[str, Any], posture: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Per account: ``rootCredentials`` (none / present / unknown) and ``denyRootScp`` (True / False / None)."""
    targets = org["denyRootScp"]["targets"]
    return {
        a.id: {"rootCredentials": posture.get(a.id, UNKNOWN), "denyRootScp": scp_covers(a, targets)}
        for a in accounts
    }


def rootless_share(accounts: Sequence[AccountPlace], per_account: Mapping[str, Mapping[str, Any]]) -> float | None:
    """KPI: percent (one decimal) of member accounts with no root credentials; None without members."""
    members = [a.id for a in accounts if not a.is_management]
    if not members:
        return None
    none = sum(1 for m in members if per_account.get(m, {}).get("rootCredentials") == NONE)
    return round(100 * none / len(members), 1)


def posture_from_audit(doc: Any, source: str = "posture file") -> dict[str, str]:
    """{account: none|present|unknown} from ``rootwatch audit --root-credentials --format json``."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("accounts"), list):
        raise ValueError(f"{source}: not the JSON of `rootwatch audit --root-credentials` (no accounts list)")
    out: dict[str, str] = {}
    for i, row in enumerate(doc["accounts"]):
        state = row.get("rootCredentials") if isinstance(row, Mapping) else None
        acct = row.get("id") if isinstance(row, Mapping) else None
        if not isinstance(acct, str) or state not in ROOT_STATES:
            raise ValueError(f"{source}: accounts[{i}] needs an id and rootCredentials none|present|unknown")
        out[acct] = state
    return out


def prevention_findings(resources: Sequence[PolicyInput]) -> list[tuple[str, str, str]]:
    """What the advisory pack rule reports: (message, urn, account).

    Only about the prevention resources a stack has: a stack without any (prevention off, or
    a foreign stack) is silent here; its ``compliance`` output shows prevention as off.
    """
    if not any(r.type in ORG_EVIDENCE_TYPES for r in resources):
        return []
    org = organization_evidence(resources)
    found: list[tuple[str, str, str]] = []
    central = org["centralRootAccess"]
    if central["resource"] and not central["enabled"]:
        missing = [f for f in ROOT_FEATURES if f not in central["features"]]
        found.append((f"centralized root access lacks {', '.join(missing)} (CIS AWS Foundations 7.0 2.1.1)",
                      central["resource"], ""))
    for p in org["denyRootScp"]["policies"]:
        for problem in p["problems"]:
            found.append((f"SCP {p['name']}: {problem}", p["resource"], ""))
        if not p["targets"]:
            found.append((f"SCP {p['name']} is not attached to any target", p["resource"], ""))
    return found


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False)
