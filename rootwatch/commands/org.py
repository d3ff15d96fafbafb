"""`rootwatch org snapshot --out FILE`: write an org snapshot from a live organization.

Run it with management-account (or delegated-admin) credentials; the file then
lets `rootwatch plan` show the real organization offline.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rootwatch.commands import options
from rootwatch.core import atomicfile
from rootwatch.core import snapshot as snap
from rootwatch.core.errors import RootwatchError


def add_parser(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse's type
    p = sub.add_parser("org", help="organization helpers (snapshot)")
    org_sub = p.add_subparsers(dest="org_command", metavar="ORG_COMMAND", parser_class=type(p))
    org_sub.required = True
    s = org_sub.add_parser(
        "snapshot",
        help="write an org snapshot from the live organization (Organizations API)",
        description="Read accounts, states, OU paths and tags with the current AWS credentials "
        "(the management or a delegated-admin account) and write a snapshot for `rootwatch plan`.",
    )
    s.add_argument("--out", required=True, metavar="FILE", help="where to write the snapshot JSON ('-' for stdout)")
    s.add_argument("--endpoint-url", help="AWS-compatible endpoint (testing)")
    s.add_argument("--region", default="us-east-1", help="region for the Organizations client (default: us-east-1)")
    s.set_defaults(func=run)


def _client(endpoint_url: str | None, region: str) -> Any:
    import boto3
    from botocore.config import Config

    cfg = Config(retries={"mode": "standard", "max_attempts": 8}, connect_timeout=10, read_timeout=30)
    # A fresh session: credentials are resolved now, never reused from a cached default session.
    return boto3.session.Session().client("organizations", region_name=region, endpoint_url=endpoint_url, config=cfg)


def _pages(client: Any, op: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator(op).paginate(**kwargs):
        items.extend(page[key])
    return items


def read_organization(client: Any) -> snap.Snapshot:
    """Walk the OU tree from the root so each account gets its full path."""
    mgmt = client.describe_organization()["Organization"]["MasterAccountId"]
    roots = _pages(client, "list_roots", "Roots")
    paths: dict[str, tuple[str, ...]] = {}
    ou_names: dict[str, str] = {}

    def walk(parent: str, path: tuple[str, ...]) -> None:
        for acct in _pages(client, "list_accounts_for_parent", "Accounts", ParentId=parent):
            paths[acct["Id"]] = path
        for ou in _pages(client, "list_organizational_units_for_parent", "OrganizationalUnits", ParentId=parent):
            ou_names[ou["Id"]] = ou["Name"]
            walk(ou["Id"], path + (ou["Id"],))

    for root in roots:
        ou_names[root["Id"]] = root.get("Name", "Root")
        walk(root["Id"], (root["Id"],))
    accounts = []
    for a in _pages(client, "list_accounts", "Accounts"):
        tags = {t["Key"]: t["Value"] for t in _pages(client, "list_tags_for_resource", "Tags", ResourceId=a["Id"])}
        # `State` replaced `Status` (2025); older endpoints only return Status.
        state = a.get("State") or {"ACTIVE": "ACTIVE", "SUSPENDED": "SUSPENDED", "PENDING_CLOSURE": "PENDING_CLOSURE"}.get(a.get("Status", ""), "ACTIVE")
        accounts.append(snap.SnapshotAccount(a["Id"], a.get("Name", a["Id"]), a.get("Email", ""), state, paths.get(a["Id"], (roots[0]["Id"],)), tags))
    return snap.from_accounts(mgmt, sorted(accounts, key=lambda x: x.id), ou_names)


def run(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        org = read_organization(_client(args.endpoint_url, args.region))
    except NoCredentialsError:
        raise RootwatchError("no AWS credentials: run with management-account credentials (AWS_PROFILE or env)") from None
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise RootwatchError(f"organizations: {err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")) from None
    except BotoCoreError as exc:
        raise RootwatchError(f"organizations: {exc}") from None
    # Validate what we are about to hand to `plan`.
    snap.parse(org.to_json(), "live organization")
    text = json.dumps(org.to_json(), indent=2) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        try:
            # Whole or not at all: Ctrl-C or a full disk never leaves half a snapshot.
            atomicfile.write_text(args.out, text)
        except OSError as exc:
            raise RootwatchError(f"{args.out}: cannot write snapshot ({exc.strerror})") from None
        if not options.QUIET:
            print(f"wrote {args.out}: {len(org.accounts)} accounts, {len(org.ou_names)} OUs and roots", file=sys.stderr)
    return 0
