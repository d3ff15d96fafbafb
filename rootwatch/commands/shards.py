"""rootwatch shards: which shard stack (``rootwatch:shard``) deploys each account.

The assignment rule lives in ``rootwatch.program.shards``; this is its operator view.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Sequence, TextIO

from rootwatch.core.errors import RootwatchError
from rootwatch.program.shards import assign, by_shard, moves, shard_count, target_size

if TYPE_CHECKING:
    from rootwatch.program.settings import RootwatchSettings

SCHEMA = "rootwatch.shards/v1"


def add_parser(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse's type
    from rootwatch.commands.options import add_format_option

    p = sub.add_parser(
        "shards",
        help="assign the organization's accounts to shard stacks",
        description="Show which shard stack (rootwatch:shard) deploys each account. The assignment is "
        "stable: adding or removing accounts moves no other account while the shard count stays the same, "
        "and no shard exceeds --max-accounts. Exit 0 ok, 1 --previous shows accounts that would move, "
        "2 usage/input errors.",
    )
    p.add_argument("--org-snapshot", required=True, metavar="FILE", help="organization snapshot (rootwatch org snapshot)")
    p.add_argument("--max-accounts", type=int, metavar="N", help="most accounts per shard (default: the stack's rootwatch:shardMaxAccounts, 200)")
    p.add_argument("--stack", default="example", help="stack whose account filters apply: stacks/Pulumi.<NAME>.yaml (default: example)")
    p.add_argument("--previous", metavar="FILE", help="an earlier org snapshot: report the accounts that would change shard")
    add_format_option(p)
    p.set_defaults(func=run)


def _settings(stack: str) -> "RootwatchSettings":
    from rootwatch.program import mockrun
    from rootwatch.program import settings as rw_settings

    config = mockrun.load_stack_config(stack, mockrun.PROJECT_DIR)  # looked up now: relocatable in tests
    try:
        return rw_settings.load(config.values)
    except RootwatchError as exc:
        raise RootwatchError(f"stack {stack}: {exc}") from None


def report(scope_ids: Sequence[str], max_accounts: int, stack: str, previous_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """The assignment as plain data (schema rootwatch.shards/v1)."""
    assignment = assign(scope_ids, max_accounts)
    groups = by_shard(assignment, max_accounts)
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "stack": stack,
        "maxAccounts": max_accounts,
        "targetAccounts": target_size(max_accounts),
        "accounts": len(assignment),
        "shards": [{"name": s, "count": len(ids), "accounts": ids} for s, ids in groups.items()],
        # Ready for a GitHub Actions matrix: fromJSON(...).matrix
        "matrix": {"include": [{"shard": s, "accounts": len(ids)} for s, ids in groups.items()]},
    }
    if previous_ids is not None:
        before = assign(previous_ids, max_accounts)
        moved = moves(before, assignment)
        kept = len(before.keys() & assignment.keys())
        out["previous"] = {
            "accounts": len(before),
            "shards": shard_count(len(before), max_accounts),
            "added": len(assignment.keys() - before.keys()),
            "removed": len(before.keys() - assignment.keys()),
            "moved": [{"id": a, "from": f, "to": t} for a, f, t in moved],
            "movedPercent": round(100 * len(moved) / kept, 2) if kept else 0.0,
        }
    return out


def render_text(rep: dict[str, Any], out: TextIO) -> None:
    out.write(
        f"Stack {rep['stack']}: {rep['accounts']} account(s) in {len(rep['shards'])} shard(s) "
        f"(at most {rep['maxAccounts']} per shard, planned {rep['targetAccounts']})\n\n"
    )
    width = max(len("SHARD"), *(len(s["name"]) for s in rep["shards"]))
    out.write(f"{'SHARD':<{width}}  ACCOUNTS\n")
    for s in rep["shards"]:
        out.write(f"{s['name']:<{width}}  {s['count']}\n")
    prev = rep.get("previous")
    if prev is not None:
        out.write(
            f"\nSince the previous snapshot: {prev['added']} added, {prev['removed']} removed, "
            f"{len(prev['moved'])} moved ({prev['movedPercent']}% of the accounts in both)\n"
        )
        for m in prev["moved"]:
            out.write(f"  {m['id']}  {m['from']} -> {m['to']}\n")


def run(args: argparse.Namespace) -> int:
    from rootwatch.core import snapshot
    from rootwatch.program.organization import program_scope

    settings = _settings(args.stack)
    max_accounts = args.max_accounts if args.max_accounts is not None else settings.shard_max_accounts
    if max_accounts < 1:
        raise RootwatchError(f"--max-accounts must be at least 1 (got {max_accounts})")
    org = snapshot.load(args.org_snapshot)
    ids = [a.id for a in program_scope(settings, org).accounts]
    previous = None
    if args.previous:
        previous = [a.id for a in program_scope(settings, snapshot.load(args.previous)).accounts]
    rep = report(ids, max_accounts, args.stack, previous)
    if args.format == "json":
        json.dump(rep, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render_text(rep, sys.stdout)
    # A move means a migration between stacks: worth failing a CI check over.
    return 1 if rep.get("previous", {}).get("moved") else 0
