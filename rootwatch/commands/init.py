"""`rootwatch init NAME --org-snapshot FILE`: a stack for *your* organization.

Writes ``stacks/Pulumi.<NAME>.yaml`` from an org snapshot (``rootwatch org snapshot
--out org.json``): the organization's real OU ids (names as comments), the management
account, a hub account suggestion, and alert routes as ``REPLACE-ME`` placeholders that
validation refuses until they are filled in. Every key carries a comment. Then it prints
the commands that take the stack to a deployment.

The stack text is built by a pure function (``render_stack``) so it is tested without files.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from rootwatch.core.errors import RootwatchError

if TYPE_CHECKING:
    from rootwatch.core.snapshot import Snapshot

PROJECT_DIR = Path(__file__).resolve().parents[2]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_HUB_HINT = re.compile(r"secur|audit|log.?archive|tooling", re.IGNORECASE)
# The levels `rootwatch init` routes: the default baseline (high) and what the real-time
# path can escalate to (critical: tamper, root sign-in without MFA, the management account).
ROUTED_LEVELS = ("critical", "high")


def add_parser(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse's type
    p = sub.add_parser(
        "init",
        help="write a stack for your organization from an org snapshot",
        description="Write stacks/Pulumi.<NAME>.yaml for the organization in an org snapshot "
        "(`rootwatch org snapshot --out org.json`): its OU ids with names as comments, the management "
        "account, a hub account, and alert routes as REPLACE-ME placeholders that `plan` and `pulumi up` "
        "refuse until filled in. Exit 0 written, 2 usage/input errors (an existing file without --force).",
    )
    p.add_argument("name", metavar="NAME", help="stack name (letters, digits, _ . -), e.g. prod")
    p.add_argument("--org-snapshot", required=True, metavar="FILE", help="org snapshot to build the stack from")
    p.add_argument("--ou", action="append", default=[], metavar="OU_ID",
                   help="monitor only this OU (repeatable; default: every OU): a gradual rollout starts with one")
    p.add_argument("--region", default="us-east-1", help="home region of the trails, alarms and topics (default: us-east-1)")
    p.add_argument("--hub", metavar="ACCOUNT_ID", help="suggested hub (security tooling) account (default: guessed from names)")
    p.add_argument("--out", metavar="FILE", help="where to write (default: stacks/Pulumi.<NAME>.yaml in the project)")
    p.add_argument("--force", action="store_true", help="overwrite an existing stack file")
    p.set_defaults(func=run)


@dataclass(frozen=True)
class OuInfo:
    id: str
    name: str
    depth: int  # 1 = directly under the root
    active_accounts: int


def ou_tree(org: Snapshot) -> list[OuInfo]:
    """Every OU in the snapshot, parents before children, with its active account count (subtree)."""
    order: list[tuple[str, int]] = []
    seen: set[str] = set()
    for a in org.accounts:
        for depth, ou in enumerate(a.ou_path[1:], start=1):
            if ou not in seen:
                seen.add(ou)
                order.append((ou, depth))

    def key(item: tuple[str, int]) -> tuple[str, ...]:
        # Sort by the path of names so children follow their parent.
        path = next(a.ou_path for a in org.accounts if item[0] in a.ou_path)
        upto = path[1:path.index(item[0]) + 1]
        return tuple(org.ou_names.get(o, o).lower() for o in upto)

    return [
        OuInfo(ou, org.ou_names.get(ou, ""), depth,
               sum(1 for a in org.descendant_accounts(ou) if a.state == "ACTIVE"))
        for ou, depth in sorted(order, key=key)
    ]


def _comment(text: str) -> str:
    return " ".join(str(text).split())[:80]


def suggest_hub(org: Snapshot) -> str:
    """A member account that looks like security tooling, else the management account."""
    for a in org.accounts:
        if a.state == "ACTIVE" and a.id != org.management_account_id and _HUB_HINT.search(a.name):
            return a.id
    return org.management_account_id


def render_stack(name: str, org: Snapshot, *, source: str, region: str = "us-east-1",
                 only_ous: Sequence[str] = (), hub: str | None = None) -> str:
    """The stack file for this organization (YAML with a comment on every key)."""
    from rootwatch.program.settings import ENDPOINT_PLACEHOLDER

    tree = ou_tree(org)
    names = {a.id: a.name for a in org.accounts}
    mgmt = org.management_account_id
    hub = hub or suggest_hub(org)
    chosen = list(only_ous) or [o.id for o in tree if o.depth == 1]
    root_members = [a for a in org.accounts if len(a.ou_path) == 1 and a.id != mgmt and a.state == "ACTIVE"]
    include_accounts = [mgmt] + ([] if only_ous else [a.id for a in root_members])
    lines = [
        f"# rootwatch stack {name!r}, written by `rootwatch init` from {source}",
        f"# (organization with management account {mgmt}, {len(org.accounts)} accounts, {len(tree)} OUs).",
        "# Check it, fill in the REPLACE-ME route endpoints, then `rootwatch plan --stack " + name + "`.",
        "#",
        "# Keys live in the `rootwatch` namespace; set nested values with",
        "#   pulumi config set --path 'rootwatch:alarm.periodSeconds' 60",
        "# and secrets (webhook URLs with tokens) with",
        "#   pulumi config set --path --secret 'rootwatch:routes.critical[1].endpoint' https://...",
        "# ROOTWATCH_* environment variables replace a whole key (ROOTWATCH_HOME_REGION, ROOTWATCH_ROUTES='{...}').",
        "config:",
        "  # Region of the default AWS provider (the management account's resources).",
        f"  aws:region: {region}",
        "  # Region of each account's trail, log group, alarm and topics.",
        f"  rootwatch:homeRegion: {region}",
        "  # Which accounts get the control.",
        "  rootwatch:accounts:",
        "    # \"organization\": discover the accounts through the Organizations API at every run.",
        "    source: organization",
        "    # OUs to monitor (an account in any of them or their child OUs). Roll out gradually:",
        "    # start with one OU, `pulumi up`, check `rootwatch audit`, then add the others.",
        "    includeOus:",
    ]
    by_id = {o.id: o for o in tree}
    for ou in chosen:
        info = by_id.get(ou)
        label = f"{info.name or ou} ({info.active_accounts} active accounts)" if info else ou
        lines.append(f"      - {ou}  # {_comment(label)}")
    others = [o for o in tree if o.id not in chosen]
    if others:
        lines.append("    # The organization's other OUs (children are covered by their parent):")
        for o in others:
            indent = "  " * (o.depth - 1)
            lines.append(f"    #   {indent}{o.id}  {_comment(o.name or '-')} ({o.active_accounts} active accounts)")
    lines.append("    # Accounts monitored by id (the management account sits under the root, in no OU;")
    lines.append("    # it is deployed with the default provider: no role is assumed into itself).")
    lines.append("    includeAccounts:")
    for acct in include_accounts:
        tag = "management account" if acct == mgmt else "directly under the root"
        lines.append(f"      - \"{acct}\"  # {_comment(names.get(acct, ''))} ({tag})")
    lines += [
        "    # OUs left out even when an include matches (e.g. a sandbox OU).",
        "    excludeOus: []",
        "    # Accounts left out even when an include matches (e.g. one being closed).",
        "    excludeAccounts: []",
        "    # Monitor the management account too (recommended: its root user is the most powerful).",
        "    includeManagement: true",
        "  # How the deployment reaches each member account.",
        "  rootwatch:access:",
        "    # Role assumed in every member account (created by Organizations in accounts it created).",
        "    roleName: OrganizationAccountAccessRole",
        "  # Each account's CloudTrail trail and its CloudWatch Logs delivery.",
        "  rootwatch:trail:",
        "    # \"managed\": rootwatch creates each account's multi-region trail; \"existing\" (with",
        "    # logGroupName) attaches the CIS filter to a trail you already have (e.g. Control Tower's).",
        "    mode: managed",
        "    # CloudWatch Logs retention in days (only the values AWS accepts).",
        "    retentionDays: 365",
        "    lifecycle:",
        "      # Trail objects move to Glacier after this many days (0: never).",
        "      glacierAfterDays: 90",
        "      # Trail objects expire after this many days (0: kept forever).",
        "      expireAfterDays: 2557",
        "  # The CIS CloudWatch.1 alarm on the root-activity metric filter.",
        "  rootwatch:alarm:",
        "    # 10, 30 or a multiple of 60, at most 300 (a longer period mutes repeated root use).",
        "    periodSeconds: 60",
        "    # CloudWatch metric namespace of the CIS metric filter.",
        "    namespace: CISLogMetrics",
        "  # Optional: an https runbook link put in alarm descriptions and alert messages.",
        "  # rootwatch:runbookUrl: https://wiki.example.com/security/runbooks/root-activity",
        "  # How urgent root activity is in each account (picks the route below).",
        "  rootwatch:severity:",
        "    # Baseline alert level of an account no rule matches (low, medium, high, critical).",
        "    default: high",
        "    # First match wins (match by accounts, ous, tags or nameGlob).",
        "    rules:",
        f"      - match: {{accounts: [\"{mgmt}\"]}}  # the management account",
        "        level: critical",
        "  # Who is notified at each level the accounts can reach. Every endpoint below is a",
        f"  # {ENDPOINT_PLACEHOLDER} placeholder: `rootwatch plan` and `pulumi up` refuse the stack until",
        "  # each is replaced (protocols: email, https, sqs, lambda). Keep webhook URLs secret:",
        "  #   pulumi config set --path --secret 'rootwatch:routes.critical[0].endpoint' https://events.pagerduty.com/...",
        "  rootwatch:routes:",
    ]
    for level in ROUTED_LEVELS:
        lines += [
            f"    {level}:",
            "      - protocol: email",
            f"        endpoint: {ENDPOINT_PLACEHOLDER}  # e.g. security-oncall@yourcompany.com",
        ]
    lines += [
        "  # The real-time path.",
        "  rootwatch:realtime:",
        "    # The EventBridge path: alerts within about a minute (the alarm is the backstop).",
        "    enabled: true",
        "    # Regions with an EventBridge rule; [] means the 17 standard regions (us-east-1 is always added).",
        "    regions: []",
        "    # Optional: the caller ARN prefix that deploys into the management account, so its",
        "    # own deploys are not tamper alerts, e.g. arn:aws:sts::" + mgmt + ":assumed-role/deployer/",
        "    # managementDeployerArn: arn:aws:sts::" + mgmt + ":assumed-role/deployer/",
        "  # Protect stateful resources (bucket, key, log group) from `pulumi destroy` (unprotect",
        "  # with `pulumi state unprotect --all` before removing the stack).",
        "  rootwatch:protect: true",
        "  # The alert hub: the one account where alerts reach people (event bus, formatter,",
        "  # severity topics with the routes above, alarm intake queue). Member accounts get no",
        "  # human endpoint: their rules send to the hub's event bus. Suggested (a security or",
        "  # tooling account, else the management account; change it with `init --hub`):",
        "  rootwatch:hub:",
        f"    accountId: \"{hub}\"  # {_comment(names.get(hub, ''))}",
        "    # Region of the hub's event bus, formatter, topics and intake queue.",
        f"    region: {region}",
    ]
    return "\n".join(lines) + "\n"


def next_steps(name: str, path: str, snapshot_file: str, stack_ref: str | None = None) -> str:
    return "\n".join([
        f"wrote {path}",
        "",
        "Next:",
        "  pulumi login                                   # your Pulumi Cloud org, or a self-managed backend",
        f"  pulumi stack init {name}",
        "  pulumi config set --path 'rootwatch:routes.critical[0].endpoint' security-oncall@yourcompany.com",
        "  pulumi config set --path 'rootwatch:routes.high[0].endpoint' security-team@yourcompany.com",
        "  pulumi config set --path 'rootwatch:routes.critical[1].protocol' https            # optional: a pager",
        "  pulumi config set --path --secret 'rootwatch:routes.critical[1].endpoint' https://events.pagerduty.com/...",
        f"  rootwatch plan --stack {stack_ref or name} --org-snapshot {snapshot_file}",
        f"  pulumi up --stack {name}",
    ]) + "\n"


def run(args: argparse.Namespace) -> int:
    from rootwatch.core import atomicfile, snapshot
    from rootwatch.program.settings import _region

    if not _NAME_RE.match(args.name):
        raise RootwatchError(f"stack name {args.name!r}: use letters, digits, '_', '.' and '-'")
    try:
        _region(args.region)
    except ValueError as exc:
        raise RootwatchError(f"--region: {exc}") from None
    org = snapshot.load(args.org_snapshot)
    known = {o.id for o in ou_tree(org)}
    for ou in args.ou:
        if ou not in known:
            raise RootwatchError(f"--ou {ou}: not an OU of {args.org_snapshot} ({len(known)} OUs; see the file's ouPath values)")
    if args.hub and args.hub not in {a.id for a in org.accounts}:
        raise RootwatchError(f"--hub {args.hub}: not an account of {args.org_snapshot}")
    if not known and not any(len(a.ou_path) == 1 for a in org.accounts):
        raise RootwatchError(f"{args.org_snapshot}: no OU and no account to monitor")
    out = Path(args.out) if args.out else PROJECT_DIR / "stacks" / f"Pulumi.{args.name}.yaml"
    if out.exists() and not args.force:
        raise RootwatchError(f"{out} exists: pass --force to overwrite it")
    text = render_stack(args.name, org, source=args.org_snapshot, region=args.region, only_ous=args.ou, hub=args.hub)
    try:
        atomicfile.write_text(out, text)
    except OSError as exc:
        raise RootwatchError(f"{out}: cannot write ({exc.strerror or type(exc).__name__})") from None
    sys.stdout.write(next_steps(args.name, str(out), args.org_snapshot, str(out) if args.out else None))
    return 0
