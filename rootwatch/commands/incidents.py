"""``rootwatch incidents list|ack|resolve``: the incident ledger, for the people handling it.

The formatter opens or updates an incident for every alert (``rootwatch.lambdas.ledger``);
here a responder lists them, acknowledges one ("I am on it") and resolves it
with a note. Who did it is the caller's AWS identity (or ``--by``), when is the
time of the call: both go on the item and its log, and ``rootwatch report``
computes time to acknowledge, MTTR and incidents per quarter from them.

``list --format json`` is also the offline input of ``rootwatch report --incidents``.
Exit 0 ok, 1 when ``list`` shows unresolved incidents, 2 for bad input or AWS errors.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from rootwatch.core.errors import RootwatchError
from rootwatch.lambdas.ledger import ACKNOWLEDGED, DEFAULT_TABLE, RESOLVED, STATUSES

_TABLE_RE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_ID_RE = re.compile(r"^\d{12}-\d{8}T\d{6}Z-[0-9a-f]{6}$")
MAX_NOTE = 1000


def add_parser(subparsers: Any) -> None:
    from rootwatch.commands.options import add_format_option

    p = subparsers.add_parser("incidents", help="list, acknowledge and resolve root-activity incidents",
                              description="The incident ledger the alert formatter keeps in DynamoDB.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    actions.required = True

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--table", default=DEFAULT_TABLE, help=f"DynamoDB table of the ledger (default: {DEFAULT_TABLE})")
        q.add_argument("--region", help="region of the table (default: the AWS configuration, else us-east-1)")
        q.add_argument("--account", metavar="ID", help="account holding the table (assumes --role-name there)")
        q.add_argument("--role-name", default="OrganizationAccountAccessRole", help="role to assume with --account")
        q.add_argument("--endpoint-url", metavar="URL", help="send every AWS call to this AWS-compatible endpoint")
        add_format_option(q)
        q.set_defaults(func=run)

    lst = actions.add_parser("list", help="list incidents, newest first")
    lst.add_argument("--status", choices=(*STATUSES, "unresolved", "all"), default="all",
                     help="only incidents in this state (default: all)")
    lst.add_argument("--account-id", metavar="ID", help="only this account's incidents")
    common(lst)
    for name, verb in (("ack", "acknowledge"), ("resolve", "resolve")):
        q = actions.add_parser(name, help=f"{verb} an incident")
        q.add_argument("id", metavar="ID", help="incident id (from `rootwatch incidents list`)")
        q.add_argument("--note", required=name == "resolve", default="",
                       help="what was done (required for resolve)")
        q.add_argument("--by", help="who (default: the caller's AWS identity ARN)")
        common(q)


def _clients(args: argparse.Namespace) -> Any:
    from rootwatch.commands import audit

    if args.region:
        audit.validate_region(args.region)
    base = audit.base_clients(args.region, args.endpoint_url)
    if not args.account:
        return base
    account = audit.validate_account_id(args.account, "--account")
    audit.validate_role_name(args.role_name)
    try:
        caller = base("sts").get_caller_identity()["Account"]
        return audit.account_clients(base, account, caller, args.role_name, session_name="rootwatch-incidents")
    except Exception as exc:
        raise RootwatchError(f"cannot reach account {account}: {audit.describe_error(exc)}") from None


def _who(clients: Any) -> str:
    from rootwatch.commands import audit

    try:
        return str(clients("sts").get_caller_identity()["Arn"])
    except Exception as exc:
        raise RootwatchError(f"cannot tell who you are (pass --by NAME): {audit.describe_error(exc)}") from None


def select(items: Sequence[Mapping[str, Any]], status: str, account: str | None) -> list[Mapping[str, Any]]:
    """Filter (pure), newest first event first."""
    def keep(i: Mapping[str, Any]) -> bool:
        if account and i.get("account") != account:
            return False
        if status == "all":
            return True
        return i.get("status") != RESOLVED if status == "unresolved" else i.get("status") == status
    return sorted((i for i in items if keep(i)), key=lambda i: str(i.get("firstEvent", "")), reverse=True)


def run(args: argparse.Namespace) -> int:
    from rootwatch.commands import audit
    from rootwatch.lambdas import ledger

    if not _TABLE_RE.match(args.table):
        raise RootwatchError(f"--table {args.table!r} is not a DynamoDB table name")
    clients = _clients(args)
    table = args.table
    try:
        if args.action == "list":
            if args.account_id:
                audit.validate_account_id(args.account_id, "--account-id")
            shown = select(ledger.incidents(clients("dynamodb"), table), args.status, args.account_id)
            print_list(shown, args.format)
            return 1 if any(i.get("status") != RESOLVED for i in shown) else 0
        if not _ID_RE.match(args.id):
            raise RootwatchError(f"{args.id!r} is not an incident id (e.g. 222222222222-20260304T101500Z-1a2b3c)")
        note = " ".join(str(args.note).split())
        if len(note) > MAX_NOTE:
            raise RootwatchError(f"--note is longer than {MAX_NOTE} characters")
        if args.action == "resolve" and not note:
            raise RootwatchError("--note must say how the incident was resolved")
        by = " ".join(args.by.split()) if args.by else _who(clients)
        status = ACKNOWLEDGED if args.action == "ack" else RESOLVED
        item = ledger.change(clients("dynamodb"), table, args.id, status, by=by, note=note,
                             now=datetime.now(timezone.utc))
    except ledger.LedgerError as exc:
        raise RootwatchError(str(exc)) from None
    except RootwatchError:
        raise
    except Exception as exc:
        raise RootwatchError(f"table {table}: {audit.describe_error(exc)}") from None
    if args.format == "json":
        print(json.dumps(item, indent=2, sort_keys=True))
    else:
        print(f"{item['id']}: {item['status']} by {by} at {item['updatedAt']}")
    return 0


def print_list(items: Sequence[Mapping[str, Any]], fmt: str, out: Any = None) -> None:
    out = out or sys.stdout
    if fmt == "json":
        print(json.dumps({"schema": "rootwatch.incidents/1", "incidents": list(items)}, indent=2, sort_keys=True),
              file=out)
        return
    if not items:
        print("no incidents", file=out)
        return
    print(f"{'ID':<36} {'STATUS':<12} {'LEVEL':<8} {'FIRST EVENT':<20} {'ALERTS':>6}  CLASSES", file=out)
    for i in items:
        mark = " [break-glass " + ",".join(i.get("breakGlass", [])) + "]" if i.get("breakGlass") else ""
        print(f"{i['id']:<36} {i.get('status', ''):<12} {i.get('level', ''):<8} {i.get('firstEvent', ''):<20} "
              f"{i.get('alertCount', 0):>6}  {','.join(i.get('classes', []))}{mark}", file=out)
