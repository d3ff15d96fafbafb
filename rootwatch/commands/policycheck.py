"""`rootwatch policy check FILE`: the policy pack's rules over a `pulumi stack export` file.

Audits any stack, including stacks rootwatch did not make, with no Pulumi CLI
and no cloud access: the same rules as the CrossGuard pack (rootwatch.compliance.policy)
and the same per-account verdicts as the `compliance` output (rootwatch.compliance).

Exit codes: 0 clean (advisory findings allowed), 1 mandatory violations,
2 unreadable export or config file.

JSON output (``--format json``, schema ``rootwatch.policycheck/v1``)::

    {"schema": "rootwatch.policycheck/v1", "file": str, "resources": int,
     "violations": [{"policy", "urn", "message", "enforcementLevel", "account"}],
     "summary": {"mandatory": int, "advisory": int},
     "compliance": {rootwatch.compliance/v1 document, see docs/compliance.md}}
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from rootwatch.core.errors import RootwatchError

SCHEMA = "rootwatch.policycheck/v1"


def add_parser(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse's type
    from rootwatch.commands.options import add_format_option

    p = sub.add_parser(
        "policy",
        help="run the policy pack's rules offline",
        description="The rootwatch CrossGuard rules without the Pulumi CLI.",
    )
    inner = p.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", parser_class=type(p))
    inner.required = True
    check = inner.add_parser(
        "check",
        help="audit a `pulumi stack export` file",
        description="Check every resource of a `pulumi stack export` file against the rootwatch policies "
        "(any stack, not only rootwatch's). Exit 0 clean, 1 mandatory violations, 2 unreadable file.",
    )
    check.add_argument("file", metavar="FILE", help="output of `pulumi stack export` ('-' reads stdin)")
    check.add_argument(
        "--config",
        metavar="FILE",
        help="policy config JSON, as for `pulumi preview --policy-pack-config` "
        '(e.g. {"rootwatch-complete-chain": {"requiredRegions": ["us-east-1"]}})',
    )
    add_format_option(check)
    check.set_defaults(func=run)


def _read_json(path: str, what: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    except OSError as exc:
        raise RootwatchError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise RootwatchError(f"{path}: {what} is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RootwatchError(f"{path}: {what} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def run(args: argparse.Namespace) -> int:
    from rootwatch import compliance
    from rootwatch.compliance import policy

    source = "<stdin>" if args.file == "-" else args.file
    resources = policy.from_stack_export(_read_json(args.file, "stack export"), source=source)
    config = _read_json(args.config, "policy config") if args.config else None
    try:
        settings = policy.resolve_config(config)
    except RootwatchError as exc:
        raise RootwatchError(f"{args.config}: {exc}") from None
    violations = policy.check_resources(resources, config)
    # The evidence uses the chain policy's thresholds: the verdicts its violations come from.
    requirements = policy.requirements_from(settings[policy.COMPLETE_CHAIN][1])
    evidence = compliance.summarize(compliance.evaluate(resources, requirements))
    report = {
        "schema": SCHEMA,
        "file": source,
        "resources": len(resources),
        "violations": [v.to_dict() for v in violations],
        "summary": {
            "mandatory": sum(v.enforcement_level == policy.MANDATORY for v in violations),
            "advisory": sum(v.enforcement_level == policy.ADVISORY for v in violations),
        },
        "compliance": evidence,
    }
    if args.format == "json":
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render_text(report, sys.stdout)
    return 1 if policy.has_mandatory(violations) else 0


def render_text(report: dict[str, Any], out: TextIO) -> None:
    evidence = report["compliance"]
    kpis = evidence["kpis"]
    out.write(f"{report['file']}: {report['resources']} resources, {kpis['accountsInScope']} account(s)\n")
    for v in report["violations"]:
        out.write(f"\n[{v['enforcementLevel']}] {v['policy']}: {v['message']}\n")
        out.write(f"    {v['urn'] or '(stack)'}\n")
    if kpis["accountsInScope"]:
        out.write(f"\nAccounts: {kpis['accountsCompliant']} of {kpis['accountsInScope']} compliant "
                  f"(policy compliance score {kpis['policyComplianceScore']}%)\n")
        for acct_id, acct in evidence["accounts"].items():
            not_ok = [name for name, c in acct["checks"].items() if not c["ok"]]
            state = "compliant" if acct["compliant"] else f"{acct['status'].upper()}: {', '.join(not_ok)}"
            out.write(f"  {acct_id}  {state}\n")
    s = report["summary"]
    verdict = "FAIL" if s["mandatory"] else "ok"
    out.write(f"\n{verdict}: {s['mandatory']} mandatory, {s['advisory']} advisory violation(s)\n")
