"""``rootwatch cost --measure``: what the rootwatch trail would cost each account, from live volumes.

Read-only. For every account (assumed into like ``rootwatch audit``, with the same
one-line errors and per-account isolation) it reads:

which trails already record the account
    ``DescribeTrails`` (with shadow trails) in the account, plus the organization
    trails the caller sees (an organization trail records every member account even
    where the member cannot list it), each with ``GetTrailStatus``. When another trail
    that is logging already records the account, a rootwatch trail is a paid second
    copy of every management event ($2.00 per 100,000).
the monthly management-event volume
    the ``AWS/Logs`` metrics ``IncomingLogEvents`` and ``IncomingBytes`` of the log
    group a trail of the account (not an organization trail: its group mixes every
    account) delivers to, summed over ``--days`` and scaled to a month. With
    ``--sample``, accounts without such a log group are sampled with CloudTrail
    ``LookupEvents`` in the home region instead (up to ``--sample-pages`` pages of
    the last ``--sample-hours``; rate extrapolated over the time the sample covers).

Output per account: trails, volume and method, and the monthly cost of a rootwatch
trail (CloudTrail copy + CloudWatch Logs ingestion and archive) at that volume, plus
the ``cost.overrides`` entries that make ``rootwatch plan`` price the measured volumes.
Exit 0 when every account was measured, 1 when some could not be, 2 for bad input.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from rootwatch.core.errors import RootwatchError

DEFAULT_DAYS = 7
DEFAULT_SAMPLE_HOURS = 24
DEFAULT_SAMPLE_PAGES = 10
DEFAULT_TRAIL_NAME = "rootwatch"
DAYS_PER_MONTH = 30.4375
SECONDS_PER_MONTH = DAYS_PER_MONTH * 86400
METHOD_METRICS = "metrics"
METHOD_SAMPLE = "lookupEvents"


# ---------------------------------------------------------------- pure parts


def trail_entry(trail: Mapping[str, Any], status: Mapping[str, Any] | None, account_id: str) -> dict[str, Any]:
    """One trail as the report shows it (owner from the ARN: an organization trail belongs to its management account)."""
    from rootwatch.commands.audit import log_group_from_arn, parse_arn

    arn = trail.get("TrailARN", "")
    lg = log_group_from_arn(trail.get("CloudWatchLogsLogGroupArn") or "")
    return {
        "name": trail.get("Name", ""),
        "arn": arn,
        "owner": parse_arn(arn)["account"] or account_id,
        "homeRegion": trail.get("HomeRegion", ""),
        "organization": bool(trail.get("IsOrganizationTrail")),
        "multiRegion": bool(trail.get("IsMultiRegionTrail")),
        "logging": None if status is None else bool(status.get("IsLogging")),
        "logGroup": lg,
    }


def other_trails(trails: Sequence[Mapping[str, Any]], account_id: str, rootwatch_name: str) -> list[Mapping[str, Any]]:
    """The trails besides rootwatch's own that record this account's management events now.

    A trail that is not logging records nothing; one whose status could not be read counts
    (the account is billed for it if it logs, and a paid copy is the safe assumption).
    """
    return [
        t for t in trails
        if t["logging"] is not False and not (t["name"] == rootwatch_name and t["owner"] == account_id)
    ]


def monthly_from_metrics(events: float, byte_count: float, days: float) -> tuple[int, int | None]:
    """(events per month, bytes per event) from sums over ``days``."""
    per_month = round(events * DAYS_PER_MONTH / days)
    return per_month, (round(byte_count / events) if events else None)


def extrapolate_sample(count: int, window_start: datetime, window_end: datetime,
                       oldest: datetime | None, complete: bool) -> int:
    """Events per month from a LookupEvents sample, newest first.

    ``complete``: every event of the window was read, so the window is the time covered.
    Otherwise the sample covers only ``oldest``..``window_end`` (pages ran out first).
    """
    start = window_start if complete or oldest is None else oldest
    seconds = max((window_end - start).total_seconds(), 1.0)
    return round(count * SECONDS_PER_MONTH / seconds)


def rootwatch_trail_cost(events_per_month: int, bytes_per_event: int, paid_copy: bool, region: str = "us-east-1") -> float:
    """Monthly USD of a rootwatch trail at this volume: the CloudTrail copy and its CloudWatch Logs group."""
    from rootwatch.program import cost

    fp = cost.Footprint(trails=1, trail_log_retention_days=(365,))
    return cost.estimate(fp, cost.Volume(events_per_month, bytes_per_event, paid_copy, 0), region).total


def override_for(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cost.overrides entry that makes `rootwatch plan` price this account's measured volume."""
    v = row.get("volume")
    if row.get("error") or not v or v.get("eventsPerMonth") is None:
        return None
    entry: dict[str, Any] = {"match": {"accounts": [row["id"]]}, "eventsPerMonth": v["eventsPerMonth"],
                             "hasTrail": row["hasTrail"]}
    if v.get("bytesPerEvent"):
        entry["bytesPerEvent"] = max(100, v["bytesPerEvent"])
    return entry


# ---------------------------------------------------------------- AWS edges


def describe_trails(clients: Any) -> list[dict[str, Any]]:
    return clients("cloudtrail").describe_trails(includeShadowTrails=True).get("trailList", [])


def trail_status(clients: Any, trail: Mapping[str, Any], home: str) -> Mapping[str, Any] | None:
    from rootwatch.commands.audit import NOT_FOUND_CODES, error_code

    try:
        return clients("cloudtrail", trail.get("HomeRegion") or home).get_trail_status(
            Name=trail.get("TrailARN") or trail.get("Name"))
    except Exception as exc:
        if error_code(exc) in NOT_FOUND_CODES | {"AccessDeniedException", "AccessDenied"}:
            return None  # e.g. a member may not read the organization trail's status
        raise


def metric_sum(clients: Any, region: str, metric: str, group: str, start: datetime, end: datetime) -> float | None:
    points = clients("cloudwatch", region).get_metric_statistics(
        Namespace="AWS/Logs", MetricName=metric, Dimensions=[{"Name": "LogGroupName", "Value": group}],
        StartTime=start, EndTime=end, Period=86400, Statistics=["Sum"]).get("Datapoints", [])
    return sum(float(p.get("Sum", 0)) for p in points) if points else None


def measure_metrics(clients: Any, group: Mapping[str, str], days: int, now: datetime) -> dict[str, Any] | None:
    start = now - timedelta(days=days)
    events = metric_sum(clients, group["region"], "IncomingLogEvents", group["name"], start, now)
    if not events:
        return None
    byte_count = metric_sum(clients, group["region"], "IncomingBytes", group["name"], start, now) or 0.0
    per_month, size = monthly_from_metrics(events, byte_count, days)
    return {"eventsPerMonth": per_month, "bytesPerEvent": size, "method": METHOD_METRICS,
            "basis": f"IncomingLogEvents/IncomingBytes of {group['name']} ({group['region']}) over {days} days"}


def measure_sample(clients: Any, hours: int, pages: int, now: datetime) -> dict[str, Any]:
    start = now - timedelta(hours=hours)
    ct = clients("cloudtrail")
    count, size, oldest, token = 0, 0, None, None
    for _ in range(pages):
        kwargs: dict[str, Any] = {"StartTime": start, "EndTime": now, "MaxResults": 50}
        if token:
            kwargs["NextToken"] = token
        page = ct.lookup_events(**kwargs)
        for e in page.get("Events", []):
            count += 1
            size += len(e.get("CloudTrailEvent") or "")
            t = e.get("EventTime")
            oldest = t if oldest is None or (t and t < oldest) else oldest
        token = page.get("NextToken")
        if not token:
            break
    complete = token is None
    return {"eventsPerMonth": extrapolate_sample(count, start, now, oldest, complete),
            "bytesPerEvent": round(size / count) if count else None, "method": METHOD_SAMPLE,
            "basis": f"LookupEvents sample of {count} events in {clients.region} "
                     f"({'the whole' if complete else 'part of the'} last {hours} h; other regions not counted)"}


class CostContext:
    def __init__(self, base: Any, caller: str | None, role_name: str, org_trails: Sequence[Mapping[str, Any]],
                 days: int, sample: bool, sample_hours: int, sample_pages: int, trail_name: str) -> None:
        self.base, self.caller, self.role_name = base, caller, role_name
        self.org_trails = org_trails
        self.days, self.sample, self.sample_hours, self.sample_pages = days, sample, sample_hours, sample_pages
        self.trail_name = trail_name
        self.now = datetime.now(timezone.utc)


def organization_trails(base: Any, days: int, now: datetime) -> list[dict[str, Any]]:
    """Organization trails the caller sees (from the management or delegated-admin account), with status.

    The volume of an organization trail's log group is the whole organization's (its
    IncomingLogEvents do not say which account an event came from): reported once, not per account.
    """
    from rootwatch.commands.audit import log_group_from_arn

    found = []
    for t in describe_trails(base):
        if not t.get("IsOrganizationTrail"):
            continue
        lg = log_group_from_arn(t.get("CloudWatchLogsLogGroupArn") or "")
        volume = measure_metrics(base, lg, days, now) if lg else None
        found.append({"trail": t, "status": trail_status(base, t, base.region), "volume": volume})
    return found


def measure_account(account_id: str, ctx: CostContext, name: str = "") -> dict[str, Any]:
    """One account's row; any failure becomes that account's one-line error, never the run's."""
    from rootwatch.commands.audit import account_clients, describe_error

    row: dict[str, Any] = {"id": account_id, "name": name, "error": None, "trails": [], "hasTrail": None,
                           "rootwatchTrail": False, "volume": None, "volumeNote": None, "rootwatchTrailMonthlyUsd": None}
    try:
        clients = account_clients(ctx.base, account_id, ctx.caller, ctx.role_name, session_name="rootwatch-cost")
        listed = describe_trails(clients)
        seen = {t.get("TrailARN") for t in listed}
        trails = [trail_entry(t, trail_status(clients, t, clients.region), account_id) for t in listed]
        # An organization trail records members that cannot see it: add it from the caller's view.
        trails += [trail_entry(o["trail"], o["status"], account_id) for o in ctx.org_trails
                   if o["trail"].get("TrailARN") not in seen]
        row["trails"] = trails
        others = other_trails(trails, account_id, ctx.trail_name)
        row["hasTrail"] = bool(others)
        row["rootwatchTrail"] = any(t["name"] == ctx.trail_name and t["owner"] == account_id for t in trails)
        row["volume"], row["volumeNote"] = _volume(clients, trails, account_id, ctx)
        v = row["volume"]
        if v:
            row["rootwatchTrailMonthlyUsd"] = round(
                rootwatch_trail_cost(v["eventsPerMonth"], v["bytesPerEvent"] or 1500, row["hasTrail"], clients.region), 2)
    except Exception as exc:  # AccessDenied, throttling after retries, timeouts, ...
        row["error"] = describe_error(exc)
    return row


def _volume(clients: Any, trails: Sequence[Mapping[str, Any]], account_id: str,
            ctx: CostContext) -> tuple[dict[str, Any] | None, str | None]:
    # Log groups of this account's own trails (an organization trail's group mixes every account).
    groups = {(t["logGroup"]["region"], t["logGroup"]["name"]): t["logGroup"] for t in trails
              if t["logGroup"] and t["logGroup"]["account"] == account_id and not t["organization"]}
    measured = [m for g in groups.values() if (m := measure_metrics(clients, g, ctx.days, ctx.now))]
    if measured:
        return max(measured, key=lambda m: m["eventsPerMonth"]), None
    why = (f"no IncomingLogEvents data in {ctx.days} days for " + ", ".join(g["name"] for g in groups.values())
           if groups else "no trail of this account delivers to a CloudWatch Logs group in it")
    if not ctx.sample:
        return None, f"{why} (--sample estimates it from LookupEvents)"
    return measure_sample(clients, ctx.sample_hours, ctx.sample_pages, ctx.now), why


def measure_accounts(accounts: Sequence[tuple[str, str]], ctx: CostContext, parallel: int) -> list[dict[str, Any]]:
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from rootwatch.commands.audit import PROGRESS_MIN_ACCOUNTS
    from rootwatch.core.progress import Progress

    results: dict[str, dict[str, Any]] = {}
    show = len(accounts) >= PROGRESS_MIN_ACCOUNTS
    progress = Progress(len(accounts), "measuring") if show else contextlib.nullcontext()
    pool = ThreadPoolExecutor(max_workers=max(1, min(parallel, len(accounts) or 1)))
    try:
        with progress as bar:
            futures = {pool.submit(measure_account, acct, ctx, name): acct for acct, name in accounts}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                if bar is not None:
                    bar.advance(futures[fut])
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return [results[acct] for acct, _ in accounts]


# ---------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> None:
    from rootwatch.commands.audit import DEFAULT_ROLE
    from rootwatch.commands.options import add_format_option

    p = subparsers.add_parser(
        "cost", help="measure each account's event volume and existing trails (live, read-only)",
        description="Measure, in every account, the monthly management-event volume and whether a trail already "
                    "records it (so a rootwatch trail would be a paid copy), and price a rootwatch trail at that "
                    "volume. Read-only. `rootwatch plan` shows the offline estimate from the cost.* settings. "
                    "Exit 0 all measured, 1 some accounts not measured, 2 usage/input errors.")
    p.add_argument("--measure", action="store_true", help="measure live (required: the only mode so far)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--org-snapshot", metavar="FILE", help="measure the ACTIVE accounts of this org snapshot")
    src.add_argument("--accounts", nargs="+", metavar="ID", help="measure these account ids")
    p.add_argument("--stack", help="measure only the accounts this stack deploys to: stacks/Pulumi.<NAME>.yaml or a file "
                                   "(default: every ACTIVE account of the organization)")
    p.add_argument("--role-name", default=DEFAULT_ROLE, help=f"role to assume in each account (default: {DEFAULT_ROLE})")
    p.add_argument("--region", help="home region for API calls (default: the AWS configuration, else us-east-1)")
    p.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"days of log-group metrics (default: {DEFAULT_DAYS})")
    p.add_argument("--sample", action="store_true",
                   help="where no log group can be measured, sample CloudTrail LookupEvents in the home region")
    p.add_argument("--sample-hours", type=int, default=DEFAULT_SAMPLE_HOURS, metavar="H",
                   help=f"LookupEvents window (default: {DEFAULT_SAMPLE_HOURS})")
    p.add_argument("--sample-pages", type=int, default=DEFAULT_SAMPLE_PAGES, metavar="N",
                   help=f"at most N pages of 50 events per account (LookupEvents allows 2 calls/s; default: {DEFAULT_SAMPLE_PAGES})")
    p.add_argument("--trail-name", default=DEFAULT_TRAIL_NAME, help="name of rootwatch's own trail (default: rootwatch)")
    p.add_argument("--endpoint-url", metavar="URL", help="send every AWS call to this AWS-compatible endpoint")
    p.add_argument("--parallel", type=int, default=8, metavar="N", help="accounts measured at once (default: 8)")
    add_format_option(p)
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    from rootwatch.commands.audit import validate_region, validate_role_name

    if not args.measure:
        raise RootwatchError("cost needs --measure (live, read-only); `rootwatch plan` shows the offline estimate")
    validate_role_name(args.role_name)
    if args.region:
        validate_region(args.region)
    for flag, value, low, high in (("--days", args.days, 1, 455), ("--sample-hours", args.sample_hours, 1, 24 * 90),
                                   ("--sample-pages", args.sample_pages, 1, 1000), ("--parallel", args.parallel, 1, 64)):
        if not low <= value <= high:
            raise RootwatchError(f"{flag} {value} must be between {low} and {high}")


def run(args: argparse.Namespace) -> int:
    from rootwatch.commands import audit

    _check_args(args)
    base = audit.base_clients(args.region, args.endpoint_url)
    accounts, skipped, _mgmt = audit._scope(args, base)  # noqa: SLF001 - audit's account selection, shared
    if not accounts:
        raise RootwatchError("no ACTIVE accounts to measure")
    try:
        caller = base("sts").get_caller_identity()["Account"]
    except Exception as exc:
        raise RootwatchError(f"cannot identify the calling account: {audit.describe_error(exc)}") from None
    try:
        org_trails = organization_trails(base, args.days, datetime.now(timezone.utc))
    except Exception as exc:
        raise RootwatchError(f"cannot list the caller's trails: {audit.describe_error(exc)}") from None
    ctx = CostContext(base, caller, args.role_name, org_trails, args.days, args.sample, args.sample_hours,
                      args.sample_pages, args.trail_name)
    rows = measure_accounts(accounts, ctx, args.parallel)
    report = build_report(rows, skipped, org_trails)
    if args.format == "json":
        print(json.dumps(report, indent=2, default=str))
    else:
        print_text(report)
    return 0 if all(not r["error"] and r["volume"] for r in rows) else 1


def build_report(rows: list[dict[str, Any]], skipped: Iterable[Mapping[str, Any]],
                 org_trails: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    measured = [r for r in rows if r["volume"]]
    return {
        "schema": "rootwatch.cost/v1",
        "accounts": rows,
        "skipped": list(skipped),
        "organizationTrails": [
            {"arn": o["trail"].get("TrailARN", ""), "name": o["trail"].get("Name", ""),
             "logging": None if o["status"] is None else bool(o["status"].get("IsLogging")),
             "wholeOrganizationVolume": o["volume"]}
            for o in org_trails
        ],
        "totals": {
            "accounts": len(rows),
            "measured": len(measured),
            "withTrail": sum(1 for r in rows if r["hasTrail"]),
            "eventsPerMonth": sum(r["volume"]["eventsPerMonth"] for r in measured),
            "rootwatchTrailMonthlyUsd": round(sum(r["rootwatchTrailMonthlyUsd"] or 0 for r in measured), 2),
        },
        "costOverrides": [o for r in rows if (o := override_for(r))],
    }


def _trail_cell(row: Mapping[str, Any]) -> str:
    if row["hasTrail"] is None:
        return "-"
    return "yes" if row["hasTrail"] else "no"


def print_text(report: Mapping[str, Any], out: Any = None) -> None:
    out = out or sys.stdout
    print(f"{'ACCOUNT':<13} {'NAME':<20} {'RESULT':<8} {'HAS TRAIL':<9} {'EVENTS/MONTH':>13} {'BYTES/EVENT':>11} "
          f"{'ROOTWATCH TRAIL/MONTH':>21}", file=out)
    for r in report["accounts"]:
        v = r["volume"] or {}
        result = "ERROR" if r["error"] else "ok" if v else "partial"
        events = f"{v['eventsPerMonth']:,}" if v else "-"
        size = f"{v['bytesPerEvent']:,}" if v.get("bytesPerEvent") else "-"
        usd = f"${r['rootwatchTrailMonthlyUsd']:,.2f}" if r["rootwatchTrailMonthlyUsd"] is not None else "-"
        print(f"{r['id']:<13} {(r.get('name') or '')[:20]:<20} {result:<8} {_trail_cell(r):<9} {events:>13} "
              f"{size:>11} {usd:>21}".rstrip(), file=out)
        if r["error"]:
            print(f"    error: {r['error']}", file=out)
            continue
        others = other_trails(r["trails"], r["id"], DEFAULT_TRAIL_NAME)
        if others:
            names = ", ".join(f"{t['name']} ({'organization trail of ' + t['owner'] if t['organization'] else 'own'})"
                              for t in others)
            print(f"    already has a trail: {names}: a rootwatch trail is a paid copy", file=out)
        if v:
            print(f"    volume: {v['basis']}", file=out)
        if r["volumeNote"] and not v:
            print(f"    volume not measured: {r['volumeNote']}", file=out)
    for s in report.get("skipped", []):
        print(f"{s['id']:<13} {(s.get('name') or '')[:20]:<20} {'SKIP':<8} {s['reason']}", file=out)
    for o in report.get("organizationTrails", []):
        v = o["wholeOrganizationVolume"]
        if v:
            print(f"\norganization trail {o['name']}: {v['eventsPerMonth']:,} management events a month for the whole "
                  f"organization ({v['basis']})", file=out)
    t = report["totals"]
    print(f"\n{t['measured']}/{t['accounts']} accounts measured, {t['eventsPerMonth']:,} management events a month; "
          f"{t['withTrail']} already have a trail; a rootwatch trail in the measured accounts: "
          f"${t['rootwatchTrailMonthlyUsd']:,.2f} a month (CloudTrail copy and CloudWatch Logs, list prices)", file=out)
    if report["costOverrides"]:
        print("\nFor `rootwatch plan` with these volumes, set rootwatch:cost.overrides to:", file=out)
        print(json.dumps(report["costOverrides"], separators=(",", ":")), file=out)
