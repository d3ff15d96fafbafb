"""The seed's four KPIs, computed from the records rootwatch keeps (pure; standard library only).

=========================  ===========================================  ===============================
KPI                        from                                         written by
=========================  ===========================================  ===============================
time to detect (p50/p95)   ``TimeToDetect`` of passed drills and of     ``rootwatch drill --log``,
per path, target < 5 min   real alerts (the ledger's ``detections``)    the formatter (ledger)
incidents per quarter      the ledger's incidents, by first event       the formatter (ledger)
(goal: zero)
mean time to remediate     resolvedAt - firstEvent of resolved           ``rootwatch incidents resolve``
                           incidents (also time to acknowledge)
policy compliance score    each audit run's score, over time; the map   ``rootwatch audit --history``
                           colours accounts by the last run
=========================  ===========================================  ===============================

Every reader takes already-decoded JSON (lists of dicts) so the figures are
tested without files; ``read_jsonl`` turns a file's text into those lists and
names the line of anything unreadable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from rootwatch.core.errors import RootwatchError
from rootwatch.core.snapshot import Snapshot

HISTORY_SCHEMA = "rootwatch.audit-history/1"
TARGET_SECONDS = 300.0  # time to detect: the seed's "under five minutes" (as lambdas.metrics)
METRIC = "TimeToDetect"  # the drill log's and the ledger's name for the figure (as lambdas.metrics)
PATHS = ("alarm", "realtime")
STATUS_COLOURS = {  # the map's legend; colour-blind-safe pairs, and each also has a text label
    "compliant": "#1a9850", "non-compliant": "#d73027", "error": "#fc8d59",
    "not audited": "#bdbdbd", "out of scope": "#e0e0e0",
}


# -- inputs ------------------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def read_jsonl(text: str, source: str) -> list[dict[str, Any]]:
    """One JSON object per line (blank lines skipped); errors name the file and line."""
    out: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RootwatchError(f"{source}:{n}: not valid JSON ({exc.msg})") from None
        if not isinstance(doc, dict):
            raise RootwatchError(f"{source}:{n}: each line must be a JSON object")
        out.append(doc)
    return out


def history_line(report: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """What ``rootwatch audit --history`` appends: the score and each account's verdict, no reasons."""
    return {
        "schema": HISTORY_SCHEMA,
        "time": now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kpis": dict(report.get("kpis", {})),
        "accounts": [
            {"id": a["id"], "name": a.get("name") or "", "compliant": bool(a.get("compliant")),
             "error": bool(a.get("error")), "checks": {c: bool(v.get("ok")) for c, v in (a.get("checks") or {}).items()}}
            for a in report.get("accounts", [])
        ],
        "skipped": [{"id": s["id"], "state": s.get("state", "")} for s in report.get("skipped", [])],
    }


# -- statistics --------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (k - lo), 3)


def summary(values: Sequence[float]) -> dict[str, Any]:
    return {"count": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "max": round(max(values), 3) if values else None,
            "withinTarget": sum(1 for v in values if v <= TARGET_SECONDS)}


def quarter(when: datetime) -> str:
    return f"{when.year}-Q{(when.month - 1) // 3 + 1}"


def quarters_between(first: datetime, last: datetime) -> list[str]:
    out, y, q = [], first.year, (first.month - 1) // 3
    while (y, q) <= (last.year, (last.month - 1) // 3):
        out.append(f"{y}-Q{q + 1}")
        y, q = (y + 1, 0) if q == 3 else (y, q + 1)
    return out


# -- the KPIs ----------------------------------------------------------------------------------


def _seconds(doc: Mapping[str, Any]) -> float | None:
    v = doc.get(METRIC, doc.get("latencySeconds", doc.get("seconds")))
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else None


def time_to_detect(drills: Iterable[Mapping[str, Any]], incidents: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """p50/p95 per path, for drills, real alerts and both. Failed drills count as failures, not samples."""
    samples: dict[str, dict[str, list[float]]] = {p: {"drill": [], "alert": []} for p in PATHS}
    failed = {p: 0 for p in PATHS}
    for d in drills:
        path = d.get("path")
        if path not in samples:
            continue
        s = _seconds(d)
        if d.get("ok") and s is not None:
            samples[path]["drill"].append(s)
        else:
            failed[path] += 1
    for inc in incidents:
        for det in inc.get("detections") or []:
            s = _seconds(det)
            if det.get("path") in samples and s is not None:
                samples[det["path"]]["alert"].append(s)
    return {
        p: {"drill": summary(v["drill"]), "alert": summary(v["alert"]), "all": summary(v["drill"] + v["alert"]),
            "failedDrills": failed[p]}
        for p, v in samples.items()
    }


def incidents_per_quarter(incidents: Sequence[Mapping[str, Any]], now: datetime,
                          since: datetime | None = None) -> list[dict[str, Any]]:
    """Incidents by the quarter of their first event, every quarter shown (zero is the goal)."""
    times = [t for t in (parse_time(i.get("firstEvent")) for i in incidents) if t]
    start = min([*times, since] if since else times, default=now)
    rows = {q: {"quarter": q, "incidents": 0, "breakGlassAuthorized": 0} for q in quarters_between(start, now)}
    for inc, t in ((i, parse_time(i.get("firstEvent"))) for i in incidents):
        if t is None:
            continue
        row = rows.setdefault(quarter(t), {"quarter": quarter(t), "incidents": 0, "breakGlassAuthorized": 0})
        row["incidents"] += 1
        row["breakGlassAuthorized"] += 1 if inc.get("breakGlassAuthorized") else 0
    return [rows[q] for q in sorted(rows)]


def remediation(incidents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """MTTR (first event -> resolved) and time to acknowledge, over the incidents that have them."""
    def spans(end_key: str) -> list[float]:
        out = []
        for i in incidents:
            start, end = parse_time(i.get("firstEvent")), parse_time(i.get(end_key))
            if start and end:
                out.append(max(0.0, (end - start).total_seconds()))
        return out

    resolved, acked = spans("resolvedAt"), spans("acknowledgedAt")
    return {
        "resolved": len(resolved), "unresolved": sum(1 for i in incidents if i.get("status") != "resolved"),
        "mttrSeconds": round(sum(resolved) / len(resolved), 1) if resolved else None,
        "medianTtrSeconds": percentile(resolved, 50),
        "mttaSeconds": round(sum(acked) / len(acked), 1) if acked else None,
    }


def resolved_incidents(incidents: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i in incidents:
        start, end = parse_time(i.get("firstEvent")), parse_time(i.get("resolvedAt"))
        if start and end:
            out.append({"id": i.get("id"), "account": i.get("account"), "accountName": i.get("accountName"),
                        "firstEvent": i.get("firstEvent"), "resolvedAt": i.get("resolvedAt"),
                        "resolvedBy": i.get("resolvedBy"), "secondsToResolve": max(0.0, (end - start).total_seconds())})
    return out


def compliance_over_time(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for h in history:
        t, k = parse_time(h.get("time")), h.get("kpis") or {}
        if t is None:
            continue
        rows.append({"time": h["time"], "score": k.get("policyComplianceScore"),
                     "accountsInScope": k.get("accountsInScope"), "accountsCompliant": k.get("accountsCompliant")})
    return sorted(rows, key=lambda r: str(r["time"]))


def account_status(entry: Mapping[str, Any] | None) -> str:
    if entry is None:
        return "not audited"
    if entry.get("error"):
        return "error"
    return "compliant" if entry.get("compliant") else "non-compliant"


def org_map(snapshot: Snapshot | None, last_audit: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The OU tree with each account's status in the last audit (None without a snapshot)."""
    audited = {a["id"]: a for a in (last_audit or {}).get("accounts", [])}

    def account(a: Any) -> dict[str, Any]:
        entry = audited.get(a.id)
        status = "out of scope" if a.state != "ACTIVE" and entry is None else account_status(entry)
        failing = sorted(c for c, ok in ((entry or {}).get("checks") or {}).items() if not ok)
        return {"id": a.id, "name": a.name, "state": a.state, "status": status, "failing": failing}

    if snapshot is None:
        return None

    def node(ou: str) -> dict[str, Any]:
        accounts = [account(a) for a in snapshot.child_accounts(ou)]
        children = [node(c) for c in snapshot.children_ous(ou)]
        counts = {s: 0 for s in STATUS_COLOURS}
        for a in accounts:
            counts[a["status"]] += 1
        for c in children:
            for s, n in c["counts"].items():
                counts[s] += n
        return {"id": ou, "name": snapshot.ou_names.get(ou, "Root" if ou.startswith("r-") else ou),
                "accounts": accounts, "children": children, "counts": counts}

    return node(snapshot.root_id)


def build(*, drills: Sequence[Mapping[str, Any]], incidents: Sequence[Mapping[str, Any]],
          history: Sequence[Mapping[str, Any]], snapshot: Snapshot | None, now: datetime) -> dict[str, Any]:
    """The whole report as data (``rootwatch report --format json``; the HTML renders this)."""
    last = max(history, key=lambda h: str(h.get("time", "")), default=None)
    trend = compliance_over_time(history)
    ttd = time_to_detect(drills, incidents)
    per_quarter = incidents_per_quarter(incidents, now, since=min((parse_time(r["time"]) for r in trend), default=None))
    this_quarter = quarter(now)
    return {
        "schema": "rootwatch.report/1",
        "generatedAt": now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kpis": {
            "timeToDetect": {"targetSeconds": TARGET_SECONDS,
                             "p95Seconds": {p: ttd[p]["all"]["p95"] for p in PATHS},
                             "p50Seconds": {p: ttd[p]["all"]["p50"] for p in PATHS}},
            "incidentsThisQuarter": next((r["incidents"] for r in per_quarter if r["quarter"] == this_quarter), 0),
            "quarter": this_quarter,
            "mttrSeconds": remediation(incidents)["mttrSeconds"],
            "policyComplianceScore": (last or {}).get("kpis", {}).get("policyComplianceScore"),
            "lastAudit": (last or {}).get("time"),
        },
        "timeToDetect": ttd,
        "incidentsPerQuarter": per_quarter,
        "remediation": remediation(incidents),
        "complianceOverTime": trend,
        "organization": org_map(snapshot, last),
        "resolvedIncidents": resolved_incidents(incidents),
        "openIncidents": [
            {k: i.get(k) for k in ("id", "account", "accountName", "status", "level", "firstEvent", "classes",
                                   "breakGlass")}
            for i in incidents if i.get("status") != "resolved"
        ],
    }
