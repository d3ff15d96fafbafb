"""`rootwatch plan`: what `pulumi up` would build for the whole organization, offline.

Runs the real __main__.py under the Pulumi mock runtime (rootwatch.program.mockrun) with
the stack's config and an org snapshot. No cloud, no credentials, no Pulumi CLI.

JSON output schema (``rootwatch.plan/v1``, see docs/plan.schema.json)::

    {"schema": "rootwatch.plan/v1", "stack": str,
     "accounts": [{"id", "name", "ou", "severity", "routes": {level: {protocol: n}},
                   "resources": [{"type", "name"}], "compliance": {...} | null}],
     "skipped": [{"id", "name", "reason"}],
     "totals": {"accounts", "resources", "resourcesPerAccount", "policyComplianceScore"},
     "warnings": [str], "policy": {"violations": [...]} | null}
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from rootwatch.core.errors import RootwatchError

SCHEMA = "rootwatch.plan/v1"


def add_parser(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse's type
    from rootwatch.commands.options import add_format_option

    p = sub.add_parser(
        "plan",
        help="show what `pulumi up` would build for every account (offline)",
        description="Run the Pulumi program under the mock runtime and show, per account, its severity, "
        "alert routes, resources and compliance. Needs no cloud access, credentials or Pulumi CLI. "
        "Exit 0 ok, 1 mandatory policy violations (--policy), 2 config/snapshot/usage errors.",
    )
    p.add_argument("--stack", default="example", help="stack name: reads stacks/Pulumi.<NAME>.yaml (default: example)")
    p.add_argument("--org-snapshot", metavar="FILE", help="organization snapshot (default: config/example-org.json)")
    p.add_argument("--policy", action="store_true", help="also run the policy pack's rules over the planned resources")
    add_format_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pulumi

    from rootwatch.core import snapshot
    from rootwatch.program import mockrun

    org = snapshot.load(args.org_snapshot or mockrun.DEFAULT_SNAPSHOT)
    config = mockrun.load_stack_config(args.stack)
    name = mockrun.stack_name(args.stack)
    print(f"planning stack {name} ({config.path.name}) under the mock runtime ...", file=sys.stderr)
    try:
        result = mockrun.run(args.stack, org=org, config=config)
    except pulumi.RunError as exc:
        raise RootwatchError(f"stack {name}: {exc}") from None
    violations = _policy(result) if args.policy else None
    report = build_report(result, violations)
    if args.format == "json":
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render_text(report, sys.stdout)
    if violations and any(v["enforcementLevel"] == "mandatory" for v in violations):
        return 1
    return 0


def _policy(result: Any) -> list[dict[str, Any]]:
    try:
        from rootwatch.compliance import policy
    except ImportError:
        raise RootwatchError("--policy: the policy rules are not available in this build") from None
    from rootwatch.program import outputs
    from rootwatch.program import settings as rw_settings

    # The stack's own settings tell the rules what the pack cannot see (regions, existing log group).
    config = policy.config_for(outputs.requirements_for(rw_settings.load(result.config.values)))
    found = policy.check_resources(policy.from_registered(result.resources), config)
    return [
        {"policy": v.policy, "urn": v.urn, "message": v.message, "enforcementLevel": v.enforcement_level}
        for v in found
    ]


def build_report(result: Any, violations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The plan as plain data: only names, types and counts (never config values or endpoints)."""
    outputs = result.outputs
    compliance = outputs.get("compliance") or {}
    per_account_compliance = compliance.get("accounts", {}) if isinstance(compliance, dict) else {}
    grouped = result.by_account()
    accounts = []
    for acct_id, info in sorted(outputs.get("accounts", {}).items()):
        resources = [{"type": r.type, "name": r.name} for r in grouped.get(acct_id, [])]
        accounts.append(
            {
                "id": acct_id,
                "name": info.get("name", ""),
                "ou": info.get("ou", ""),
                "severity": info.get("severity", ""),
                "routes": info.get("routes", {}),
                "resources": resources,
                "compliance": per_account_compliance.get(acct_id),
            }
        )
    total = sum(len(a["resources"]) for a in accounts)
    kpis = compliance.get("kpis", {}) if isinstance(compliance, dict) else {}
    hub_out = outputs.get("hub")
    hub = None
    if isinstance(hub_out, dict):
        hub = {
            "accountId": hub_out.get("accountId"), "region": hub_out.get("region"),
            "routes": hub_out.get("routes", {}), "pendingConfirmation": hub_out.get("pendingConfirmation", {}),
            # The hub's own resources (under the AlertHub component, grouped apart from the members).
            "resources": len(grouped.get("", [])),
            "memberResourcesMax": max((len(a["resources"]) for a in accounts), default=0),
        }
    return {
        "schema": SCHEMA,
        "stack": result.stack,
        "hub": hub,
        "accounts": accounts,
        "skipped": [{"id": s["id"], "name": s.get("name", ""), "reason": s["reason"]} for s in outputs.get("skipped", [])],
        "totals": {
            "accounts": len(accounts),
            "resources": total,
            "resourcesPerAccount": round(total / len(accounts), 1) if accounts else 0,
            "policyComplianceScore": kpis.get("policyComplianceScore"),
        },
        "warnings": list(result.warnings),
        "policy": {"violations": violations} if violations is not None else None,
    }


def _routes_cell(routes: dict[str, dict[str, int]]) -> str:
    counts: dict[str, int] = {}
    for per_level in routes.values():
        for proto, n in per_level.items():
            counts[proto] = counts.get(proto, 0) + n
    return " ".join(f"{p}:{n}" for p, n in sorted(counts.items())) or "-"


def _compliant_cell(c: dict[str, Any] | None) -> str:
    if not c:
        return "n/a"
    return "yes" if c.get("compliant") else "NO"


def render_text(report: dict[str, Any], out: TextIO) -> None:
    headers = ("ACCOUNT", "NAME", "OU", "SEVERITY", "RESOURCES", "ROUTES", "COMPLIANT")
    rows = [
        (a["id"], a["name"], a["ou"], a["severity"], str(len(a["resources"])), _routes_cell(a["routes"]), _compliant_cell(a["compliance"]))
        for a in report["accounts"]
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join("{:<%d}" % w for w in widths)
    out.write(f"Stack {report['stack']}: {report['totals']['accounts']} accounts\n\n")
    out.write(line.format(*headers).rstrip() + "\n")
    for r in rows:
        out.write(line.format(*r).rstrip() + "\n")
    t = report["totals"]
    out.write(f"\nTotals: {t['accounts']} accounts, {t['resources']} resources ({t['resourcesPerAccount']} per account)")
    if t["policyComplianceScore"] is not None:
        out.write(f", policy compliance score {t['policyComplianceScore']}%")
    out.write("\n")
    for c in (a for a in report["accounts"] if a["compliance"] and not a["compliance"].get("compliant")):
        failing = [f"{name}: {chk.get('reason', '')}" for name, chk in c["compliance"].get("checks", {}).items() if not chk.get("ok")]
        out.write(f"  {c['id']} not compliant: {'; '.join(failing)}\n")
    hub = report.get("hub")
    if hub:
        out.write(f"\nAlert hub: account {hub['accountId']} ({hub['region']}), {hub['resources']} resources; "
                  f"members: at most {hub['memberResourcesMax']} resources per account\n")
        for level, protos in hub["routes"].items():
            pending = hub["pendingConfirmation"].get(level, 0)
            cell = " ".join(f"{p}:{n}" for p, n in sorted(protos.items())) or "-"
            note = f"  ({pending} pending confirmation until clicked once)" if pending else ""
            out.write(f"  {level:<9} {cell}{note}\n")
    if report["skipped"]:
        out.write(f"\nSkipped ({len(report['skipped'])}):\n")
        for s in report["skipped"]:
            out.write(f"  {s['id']}  {s['name']:<24} {s['reason']}\n")
    for w in report["warnings"]:
        out.write(f"\nwarning: {w}\n")
    if report["policy"] is not None:
        v = report["policy"]["violations"]
        out.write(f"\nPolicy: {len(v)} violation(s)\n")
        for x in v:
            out.write(f"  [{x['enforcementLevel']}] {x['policy']}: {x['message']} ({x['urn']})\n")

