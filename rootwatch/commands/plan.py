"""`rootwatch plan`: what `pulumi up` would build for the whole organization, offline.

Runs the real __main__.py under the Pulumi mock runtime (rootwatch.program.mockrun) with
the stack's config and an org snapshot. No cloud, no credentials, no Pulumi CLI.

JSON output schema (``rootwatch.plan/v1``, see docs/plan.schema.json)::

    {"schema": "rootwatch.plan/v1", "stack": str,
     "accounts": [{"id", "name", "ou", "severity", "routes": {level: {protocol: n}},
                   "resources": [{"type", "name"}], "compliance": {...} | null,
                   "cost": {"monthlyUsd", "byService", "volume", "items"}}],
     "skipped": [{"id", "name", "reason"}],
     "totals": {"accounts", "resources", "resourcesPerAccount", "policyComplianceScore", "monthlyCostUsd"},
     "cost": {"currency", "pricesChecked", "region", "regionPricesChecked", "trailMode", "assumptions"},
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
        "Exit 0 ok, 1 findings (an in-scope account not compliant, or a mandatory policy violation with "
        "--policy), 2 config/snapshot/usage errors (including a stack that selects no account).",
    )
    p.add_argument("--stack", default="example", help="stack name: reads stacks/Pulumi.<NAME>.yaml (default: example)")
    p.add_argument("--org-snapshot", metavar="FILE", help="organization snapshot (default: config/example-org.json)")
    p.add_argument("--policy", action="store_true", help="also run the policy pack's rules over the planned resources")
    add_format_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pulumi

    from rootwatch.commands.options import EXIT_FINDINGS, EXIT_OK, status
    from rootwatch.core import snapshot
    from rootwatch.core.progress import Counter
    from rootwatch.program import mockrun

    org = snapshot.load(args.org_snapshot or mockrun.DEFAULT_SNAPSHOT)
    config = mockrun.load_stack_config(args.stack)
    name = mockrun.stack_name(args.stack)
    status(f"planning stack {name} ({config.path.name}) under the mock runtime ...")
    counter = Counter("planned")
    try:
        result = mockrun.run(args.stack, org=org, config=config, on_register=_progress(counter))
    except pulumi.RunError as exc:
        raise RootwatchError(f"stack {name}: {exc}") from None
    finally:
        counter.close()
    violations = _policy(result) if args.policy else None
    report = build_report(result, violations, org)
    if args.format == "json":
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render_text(report, sys.stdout)
    if violations and any(v["enforcementLevel"] == "mandatory" for v in violations):
        return EXIT_FINDINGS
    # Findings, as everywhere: an in-scope account that is not compliant (README: exit 1).
    if noncompliant_accounts(report):
        return EXIT_FINDINGS
    return EXIT_OK


def _progress(counter: Any) -> Any:
    from rootwatch.program.mockrun import MONITOR_TYPE

    def on_register(typ: str) -> None:
        if typ == MONITOR_TYPE:
            counter.add("accounts", 1)
        elif not typ.startswith(("rootwatch:", "pulumi:")):
            counter.add("resources", 1)

    counter.add("accounts", 0)
    counter.add("resources", 0)
    counter.last = 0.0
    return on_register if counter.active else None


def noncompliant_accounts(report: dict[str, Any]) -> list[str]:
    """In-scope accounts whose compliance verdict is noncompliant (pending is not a finding)."""
    return [a["id"] for a in report["accounts"] if a["compliance"] and a["compliance"].get("status") == "noncompliant"]


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


def cost_report(result: Any, org: Any = None, grouped: dict[str, list[Any]] | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """({account id: its monthly cost}, the assumptions): counted from the planned resources.

    Volumes come from the stack's ``cost`` settings; ``cost.overrides`` match accounts by id,
    OU, tags or name, as severity rules do, so the org snapshot supplies OU paths and tags.
    """
    from rootwatch.core import snapshot
    from rootwatch.program import cost, mockrun, organization
    from rootwatch.program import settings as rw_settings

    settings = rw_settings.load(result.config.values)
    org = org or snapshot.load(mockrun.DEFAULT_SNAPSHOT)
    known = {a.id: a for a in organization.program_scope(settings, org).accounts}
    book = cost.load_prices()
    region = settings.home_region
    grouped = grouped if grouped is not None else result.by_account()
    per_account: dict[str, dict[str, Any]] = {}
    volumes = []
    for acct_id in result.outputs.get("accounts", {}):
        account = known.get(acct_id) or organization.Account(acct_id, "")
        volume = cost.volume_for(settings.cost, lambda m, a=account: organization.matches(m, a))
        volumes.append(volume)
        per_account[acct_id] = cost.estimate(cost.footprint(grouped.get(acct_id, [])), volume, region, book).to_json()
    hub_resources = grouped.get(mockrun.HUB_GROUP, [])
    # The hub is priced on its own: one bus, formatter, queue set and table for the whole organization.
    hub_cost = cost.estimate(cost.footprint(hub_resources), cost.hub_volume(volumes), settings.hub_region,
                             book).to_json() if hub_resources else None
    # The log archive's own resources (its key); each member pays for its replicas.
    archive_resources = grouped.get(mockrun.ARCHIVE_GROUP, [])
    archive_cost = cost.estimate(cost.footprint(archive_resources), cost.Volume(0, settings.cost.bytes_per_event, True, 0), region,
                                 book).to_json() if archive_resources else None
    summary = {
        "currency": "USD",
        "pricesChecked": book.checked,
        "region": region,
        "regionPricesChecked": book.region_checked(region),
        "trailMode": settings.trail.mode,
        "assumptions": cost.assumptions(book, settings.cost),
        "tradeOffs": cost.trade_offs(settings.trail.mode, settings.trail.log_group_name),
        "hub": hub_cost,
        "archive": archive_cost,
    }
    return per_account, summary


def build_report(result: Any, violations: list[dict[str, Any]] | None = None, org: Any = None) -> dict[str, Any]:
    """The plan as plain data: only names, types and counts (never config values or endpoints)."""
    outputs = result.outputs
    compliance = outputs.get("compliance") or {}
    per_account_compliance = compliance.get("accounts", {}) if isinstance(compliance, dict) else {}
    grouped = result.by_account()
    costs, cost_summary = cost_report(result, org, grouped)
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
                "posture": (per_account_compliance.get(acct_id) or {}).get("prevention"),
                "cost": costs[acct_id],
            }
        )
    total = sum(len(a["resources"]) for a in accounts)
    kpis = compliance.get("kpis", {}) if isinstance(compliance, dict) else {}
    hub_out = outputs.get("hub")
    hub = None
    from rootwatch.program import cost, mockrun, trailsecurity
    if isinstance(hub_out, dict):
        hub = {
            "accountId": hub_out.get("accountId"), "region": hub_out.get("region"),
            "routes": hub_out.get("routes", {}), "pendingConfirmation": hub_out.get("pendingConfirmation", {}),
            # The hub's own resources (under the AlertHub component, grouped apart from the members).
            "resources": len(grouped.get(mockrun.HUB_GROUP, [])),
            "memberResourcesMax": max((len(a["resources"]) for a in accounts), default=0),
            # The same without what a CIS-clean trail adds (trail key, access-log bucket): the alert chain.
            "memberChainResourcesMax": max(
                (sum(not trailsecurity.is_hardening(r["name"]) for r in a["resources"]) for a in accounts), default=0),
        }
    archive_out = outputs.get("logArchive")
    archive = None
    if isinstance(archive_out, dict):
        archive = {**archive_out, "resources": len(grouped.get(mockrun.ARCHIVE_GROUP, [])),
                   "replicatingAccounts": sum(any(r["type"] == cost.REPLICATION for r in a["resources"]) for a in accounts)}
    return {
        "schema": SCHEMA,
        "stack": result.stack,
        "hub": hub,
        "archive": archive,
        "accounts": accounts,
        "skipped": [{"id": s["id"], "name": s.get("name", ""), "reason": s["reason"]} for s in outputs.get("skipped", [])],
        "totals": {
            "accounts": len(accounts),
            "resources": total,
            "resourcesPerAccount": round(total / len(accounts), 1) if accounts else 0,
            "policyComplianceScore": kpis.get("policyComplianceScore"),
            # The accounts' monitors and the alert hub.
            "monthlyCostUsd": round(sum(c["monthlyUsd"] for c in costs.values())
                                    + (cost_summary["hub"] or {}).get("monthlyUsd", 0.0)
                                    + (cost_summary["archive"] or {}).get("monthlyUsd", 0.0), 2),
        },
        "cost": cost_summary,
        "warnings": list(result.warnings),
        "policy": {"violations": violations} if violations is not None else None,
        "organization": _organization(compliance, grouped.get("", [])),
    }


def _organization(compliance: Any, resources: list[Any]) -> dict[str, Any] | None:
    """Organization-level prevention: its resources (management account) and evidence."""
    org = compliance.get("organization") if isinstance(compliance, dict) else None
    if org is None:
        return None
    kpis = compliance.get("kpis", {})
    return {
        "resources": [{"type": r.type, "name": r.name} for r in resources],
        "centralRootAccess": org["centralRootAccess"],
        "denyRootScp": org["denyRootScp"],
        "rootlessMemberAccountsPercent": kpis.get("rootlessMemberAccountsPercent"),
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
    if c.get("status") == "organization-trail":
        return "org-trail"  # trail.mode organization member: not compliant, by design (see the trade-offs)
    return "yes" if c.get("compliant") else "NO"


def _posture_cell(p: dict[str, Any] | None) -> str:
    """Root credentials (from the posture file) and whether the root-deny SCP applies."""
    if not p:
        return "-"
    scp = {True: "yes", False: "NO", None: "n/a"}[p.get("denyRootScp")]
    return f"root:{p.get('rootCredentials', 'unknown')} scp:{scp}"


def _usd(amount: float) -> str:
    return f"${amount:,.2f}"


def _render_cost(report: dict[str, Any], out: TextIO) -> None:
    c, t = report["cost"], report["totals"]
    n = t["accounts"]
    hub = c.get("hub")
    hub_usd = hub["monthlyUsd"] if hub else 0.0
    per = sum(a["cost"]["monthlyUsd"] for a in report["accounts"]) / n if n else 0.0
    prices = f"{c['region']} list prices" if c["regionPricesChecked"] else \
        f"us-east-1 list prices (no {c['region']} prices on file)"
    arch = c.get("archive")
    parts = [f"{n} accounts ({_usd(per)} per account)", *([f"the alert hub ({_usd(hub_usd)})"] if hub else []),
             *([f"the log archive ({_usd(arch['monthlyUsd'])})"] if arch else [])]
    what = " and ".join(parts) if len(parts) < 3 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    out.write(f"Monthly cost: {_usd(t['monthlyCostUsd'])} {c['currency']} for {what}, "
              f"trail mode {c['trailMode']}, {prices}\n")
    services: dict[str, float] = {}
    for by_service in [a["cost"]["byService"] for a in report["accounts"]] + [x["byService"] for x in (hub, arch) if x]:
        for svc, usd in by_service.items():
            services[svc] = services.get(svc, 0.0) + usd
    shown = [f"{svc} {_usd(usd)}" for svc, usd in sorted(services.items(), key=lambda kv: -kv[1]) if usd >= 0.005]
    out.write(f"  by service: {', '.join(shown) or '-'}\n")
    out.write("  assumptions:\n")
    for line in c["assumptions"]:
        out.write(f"    - {line}\n")
    out.write(f"  trade-offs of trail mode {c['trailMode']}:\n")
    for line in c["tradeOffs"]:
        out.write(f"    - {line}\n")


def render_text(report: dict[str, Any], out: TextIO) -> None:
    headers = ("ACCOUNT", "NAME", "OU", "SEVERITY", "RESOURCES", "ROUTES", "COMPLIANT", "COST/MONTH", "POSTURE")
    rows = [
        (a["id"], a["name"], a["ou"], a["severity"], str(len(a["resources"])), _routes_cell(a["routes"]),
         _compliant_cell(a["compliance"]), _usd(a["cost"]["monthlyUsd"]), _posture_cell(a.get("posture")))
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
    _render_cost(report, out)
    organization = [a["id"] for a in report["accounts"] if (a["compliance"] or {}).get("status") == "organization-trail"]
    if organization:
        out.write(f"  {len(organization)} account(s) under the organization trail (org-trail): Security Hub "
                  "evaluates CloudWatch.1 there as NO_DATA, so they are not counted compliant\n")
    for c in (a for a in report["accounts"] if a["compliance"] and not a["compliance"].get("compliant")
              and a["compliance"].get("status") != "organization-trail"):
        failing = [f"{name}: {chk.get('reason', '')}" for name, chk in c["compliance"].get("checks", {}).items() if not chk.get("ok")]
        out.write(f"  {c['id']} not compliant: {'; '.join(failing)}\n")
    hub = report.get("hub")
    if hub:
        out.write(f"\nAlert hub: account {hub['accountId']} ({hub['region']}), {hub['resources']} resources; "
                  f"members: at most {hub['memberResourcesMax']} resources per account "
                  f"({hub['memberChainResourcesMax']} alert chain, the rest trail hardening: CIS, immutable logs)\n")
        for level, protos in hub["routes"].items():
            pending = hub["pendingConfirmation"].get(level, 0)
            cell = " ".join(f"{p}:{n}" for p, n in sorted(protos.items())) or "-"
            note = f"  ({pending} pending confirmation until clicked once)" if pending else ""
            out.write(f"  {level:<9} {cell}{note}\n")
    arch = report.get("archive")
    if arch:
        lock = arch["objectLock"]
        out.write(f"\nLog archive: account {arch['accountId']} ({arch['region']}), {arch['resources']} resources; "
                  f"bucket {arch['bucket']} with S3 Object Lock {lock['mode']} {lock['days']} days; "
                  f"{arch['replicatingAccounts']} trail bucket(s) replicate into it\n")
    _render_organization(report.get("organization"), out)
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


def _render_organization(org: dict[str, Any] | None, out: TextIO) -> None:
    if not org:
        return
    central, scp = org["centralRootAccess"], org["denyRootScp"]
    out.write("\nOrganization (management account):\n")
    features = ", ".join(central["features"]) or "none"
    out.write(f"  centralized root access: {'on' if central['enabled'] else 'off'} (features: {features})\n")
    targets = ", ".join(scp["targets"]) or "none"
    out.write(f"  root-deny SCP: {'on' if scp['enabled'] else 'off'} (attached to: {targets})\n")
    for p in scp["policies"]:
        verdict = "equivalent to Control Tower AWS-GR_RESTRICT_ROOT_USER" if p["equivalentToControlTower"] else \
            "NOT equivalent: " + "; ".join(p["problems"])
        out.write(f"    {p['name']}: {verdict}\n")
    pct = org.get("rootlessMemberAccountsPercent")
    out.write(f"  root-less member accounts: {'n/a' if pct is None else f'{pct}%'}\n")
    for r in org["resources"]:
        out.write(f"  + {r['type']}  {r['name']}\n")
