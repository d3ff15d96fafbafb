"""``rootwatch report``: the seed's four KPIs and the organization's compliance map, as one HTML page.

Inputs (each optional; a section without its input says which option feeds it):

``--audit-history FILE``  lines appended by ``rootwatch audit --history`` (score over time, the map's colours)
``--drill-log FILE``      lines appended by ``rootwatch drill --log`` (time to detect, drills)
``--incidents FILE``      ``rootwatch incidents list --format json`` (incidents, MTTR, real alerts' time to detect)
``--table NAME``          ... or read the ledger table directly
``--org-snapshot FILE``   the OU tree (``rootwatch org snapshot``)

The HTML file is self-contained: styles inline, charts drawn by matplotlib as
inline SVG (text kept as text), no script, no font or image fetched at view
time. ``--format json`` writes the same figures as data. The computations are
``rootwatch.compliance.kpis``; this module only reads files and draws.
"""

from __future__ import annotations

import argparse
import html
import io
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from rootwatch.core.errors import RootwatchError

DEFAULT_OUTPUT = "rootwatch-report.html"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help="write the KPI report (HTML, or JSON) from audit history, drills and incidents",
                              description="The four KPIs (time to detect, incidents per quarter, MTTR, policy "
                                          "compliance over time) and the organization's compliance map.")
    p.add_argument("--audit-history", metavar="FILE", help="history written by `rootwatch audit --history`")
    p.add_argument("--drill-log", metavar="FILE", help="log written by `rootwatch drill --log`")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--incidents", metavar="FILE", help="output of `rootwatch incidents list --format json`")
    src.add_argument("--table", metavar="NAME", help="read the incident ledger from this DynamoDB table")
    p.add_argument("--region", help="region of --table (default: the AWS configuration, else us-east-1)")
    p.add_argument("--endpoint-url", metavar="URL", help="send the --table calls to this AWS-compatible endpoint")
    p.add_argument("--org-snapshot", metavar="FILE", help="org snapshot for the compliance map (OU tree)")
    p.add_argument("--output", "-o", metavar="FILE",
                   help=f"file to write (default: {DEFAULT_OUTPUT} for html, standard output for json)")
    p.add_argument("--as-of", metavar="DATE", help="report as of this UTC time (ISO 8601; default: now)")
    p.add_argument("--format", choices=("html", "json"), default="html", help="output format (default: html)")
    p.set_defaults(func=run)


# -- inputs ------------------------------------------------------------------------------------


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RootwatchError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RootwatchError(f"{path}: cannot read {what} ({type(exc).__name__})") from None


def load_incidents(path: str) -> list[dict[str, Any]]:
    text = _read(path, "incidents file")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RootwatchError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    items = doc.get("incidents") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not all(isinstance(i, dict) and "id" in i for i in items):
        raise RootwatchError(f"{path}: expected {{\"incidents\": [...]}} as `rootwatch incidents list --format json` writes")
    return items


def _table_incidents(args: argparse.Namespace) -> list[dict[str, Any]]:
    from rootwatch.commands import audit
    from rootwatch.lambdas import ledger

    if args.region:
        audit.validate_region(args.region)
    try:
        return ledger.incidents(audit.base_clients(args.region, args.endpoint_url)("dynamodb"), args.table)
    except Exception as exc:
        raise RootwatchError(f"table {args.table}: {audit.describe_error(exc)}") from None


def gather(args: argparse.Namespace) -> dict[str, Any]:
    from rootwatch.compliance import kpis
    from rootwatch.core import snapshot

    now = datetime.now(timezone.utc)
    if args.as_of:
        now = kpis.parse_time(args.as_of) or _bad(f"--as-of {args.as_of!r} is not an ISO 8601 time")
    history = kpis.read_jsonl(_read(args.audit_history, "audit history"), args.audit_history) if args.audit_history else []
    drills = kpis.read_jsonl(_read(args.drill_log, "drill log"), args.drill_log) if args.drill_log else []
    incidents = load_incidents(args.incidents) if args.incidents else _table_incidents(args) if args.table else []
    snap = snapshot.load(args.org_snapshot) if args.org_snapshot else None
    data = kpis.build(drills=drills, incidents=incidents, history=history, snapshot=snap, now=now)
    data["sources"] = {"auditHistory": args.audit_history, "drillLog": args.drill_log,
                       "incidents": args.incidents or (f"table {args.table}" if args.table else None),
                       "orgSnapshot": args.org_snapshot}
    return data


def _bad(message: str) -> Any:
    raise RootwatchError(message)


def run(args: argparse.Namespace) -> int:
    data = gather(args)
    if args.format == "json":
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        if not args.output:
            sys.stdout.write(text)
            return 0
    else:
        text = render_html(data)
    out = Path(args.output or DEFAULT_OUTPUT)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RootwatchError(f"--output {out}: cannot write ({exc.strerror or type(exc).__name__})") from None
    print(f"wrote {out} ({len(text.encode()) // 1024 + 1} KB)")
    return 0


# -- charts (matplotlib, imported only here) ---------------------------------------------------------


def _figure(width: float = 6.0, height: float = 2.6) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise RootwatchError("rootwatch report needs matplotlib: pip install 'rootwatch[report]'") from None
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _svg(fig: Any) -> str:
    """The figure as inline SVG: text stays text, ids are stable, no timestamp."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "rootwatch"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    # The RDF metadata block (creator, licence URLs) is for files, not for an inline chart.
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)


def _style(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)


def chart_time_to_detect(ttd: Mapping[str, Any], target: float) -> str:
    fig, ax = _figure()
    paths = list(ttd)
    y = range(len(paths))
    p50 = [ttd[p]["all"]["p50"] or 0 for p in paths]
    p95 = [ttd[p]["all"]["p95"] or 0 for p in paths]
    ax.barh([i + 0.2 for i in y], p95, height=0.38, color="#4575b4", label="p95")
    ax.barh([i - 0.2 for i in y], p50, height=0.38, color="#91bfdb", label="p50")
    for i, p in enumerate(paths):
        for dy, v in ((0.2, ttd[p]["all"]["p95"]), (-0.2, ttd[p]["all"]["p50"])):
            ax.text((v or 0) + target * 0.01, i + dy, "no data" if v is None else f"{v:.0f} s" if v >= 10 else f"{v:.1f} s",
                    va="center", fontsize=8)
    ax.axvline(target, color="#d73027", linestyle="--", linewidth=1)
    ax.text(target, len(paths) - 0.45, " target 5 min", color="#d73027", fontsize=8, va="bottom")
    ax.set_yticks(list(y), [f"{p}\n({ttd[p]['all']['count']} samples)" for p in paths])
    ax.set_xlim(0, max(target * 1.15, *(v * 1.15 for v in p95)))
    ax.set_xlabel("seconds from root activity (alarm: state change) to alert", fontsize=8)
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    _style(ax)
    return _svg(fig)


def chart_incidents(rows: Sequence[Mapping[str, Any]]) -> str:
    fig, ax = _figure()
    labels = [r["quarter"] for r in rows]
    other = [r["incidents"] - r["breakGlassAuthorized"] for r in rows]
    bg = [r["breakGlassAuthorized"] for r in rows]
    ax.bar(labels, other, color="#d73027", label="incidents")
    ax.bar(labels, bg, bottom=other, color="#fdae61", label="authorised break-glass")
    for i, r in enumerate(rows):
        ax.text(i, r["incidents"] + 0.05, str(r["incidents"]), ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, max([r["incidents"] for r in rows] + [1]) + 1)
    ax.set_ylabel("incidents (goal: 0)", fontsize=8)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8, frameon=False)
    _style(ax)
    return _svg(fig)


def chart_compliance(rows: Sequence[Mapping[str, Any]]) -> str:
    fig, ax = _figure()
    pts = [(datetime.fromisoformat(str(r["time"]).replace("Z", "+00:00")), r["score"]) for r in rows
           if r["score"] is not None]
    ax.plot([t for t, _ in pts], [s for _, s in pts], marker="o", color="#1a9850", linewidth=1.5, markersize=4)
    for t, s in pts[-1:]:
        ax.annotate(f"{s:g}%", (t, s), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("policy compliance score (%)", fontsize=8)
    ax.axhline(100, color="#999999", linewidth=0.6, linestyle=":")
    fig.autofmt_xdate(rotation=30)
    _style(ax)
    return _svg(fig)


def chart_remediation(resolved: Sequence[Mapping[str, Any]], mttr: float | None) -> str:
    fig, ax = _figure()
    labels = [f"{r.get('accountName') or r.get('account')}\n{str(r['firstEvent'])[:10]}" for r in resolved]
    ax.bar(labels, [r["secondsToResolve"] / 3600 for r in resolved], color="#762a83")
    if mttr is not None:
        ax.axhline(mttr / 3600, color="#333333", linestyle="--", linewidth=1)
        ax.text(len(resolved) - 0.5, mttr / 3600, f" MTTR {mttr / 3600:.1f} h", fontsize=8, va="bottom", ha="right")
    ax.set_ylabel("hours from first event to resolved", fontsize=8)
    _style(ax)
    return _svg(fig)


# -- the page ------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _tile(title: str, value: str, note: str, ok: bool | None) -> str:
    cls = "tile" + ("" if ok is None else " ok" if ok else " bad")
    mark = "" if ok is None else ("on target" if ok else "off target")
    return (f'<div class="{cls}"><div class="t">{_e(title)}</div><div class="v">{_e(value)}</div>'
            f'<div class="n">{_e(note)}{" &middot; " + mark if mark else ""}</div></div>')


def _tree(node: Mapping[str, Any]) -> str:
    from rootwatch.compliance.kpis import STATUS_COLOURS

    counts = ", ".join(f"{n} {s}" for s, n in node["counts"].items() if n)
    parts = [f'<li><span class="ou">{_e(node["name"])}</span> <span class="id">{_e(node["id"])}</span> '
             f'<span class="cnt">{_e(counts)}</span><div class="accts">']
    for a in node["accounts"]:
        failing = f' &middot; failing: {_e(", ".join(a["failing"]))}' if a["failing"] else ""
        parts.append(f'<span class="acct" style="border-color:{STATUS_COLOURS[a["status"]]}">'
                     f'<b style="background:{STATUS_COLOURS[a["status"]]}"></b>{_e(a["name"])} '
                     f'<span class="id">{_e(a["id"])}</span> <i>{_e(a["status"])}{failing}</i></span>')
    parts.append("</div>")
    if node["children"]:
        parts.append("<ul>" + "".join(_tree(c) for c in node["children"]) + "</ul>")
    return "".join(parts) + "</li>"


def _missing(option: str) -> str:
    return f'<p class="none">No data: pass <code>{_e(option)}</code>.</p>'


CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}.tiles{display:grid;grid-template-columns:repeat(4,1fr);gap:12px}
.tile{border:1px solid #ddd;border-left:6px solid #999;border-radius:6px;padding:10px 12px}
.tile.ok{border-left-color:#1a9850}.tile.bad{border-left-color:#d73027}
.t{font-size:12px;color:#555;text-transform:uppercase;letter-spacing:.03em}.v{font-size:26px;font-weight:600}
.n{font-size:12px;color:#555}.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
svg{max-width:100%;height:auto}table{border-collapse:collapse;font-size:13px}
td,th{border-bottom:1px solid #eee;padding:3px 8px;text-align:left}th{color:#555;font-weight:600}
ul.tree,ul.tree ul{list-style:none;padding-left:18px;margin:4px 0}ul.tree{padding-left:0}
.ou{font-weight:600}.id{color:#888;font-size:12px}.cnt{color:#555;font-size:12px}
.accts{display:flex;flex-wrap:wrap;gap:6px;margin:4px 0 8px}
.acct{border:2px solid;border-radius:4px;padding:2px 6px;font-size:12px}
.acct b{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:4px}
.acct i{color:#555}.legend span{margin-right:14px;font-size:12px}
.legend b{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:4px;vertical-align:middle}
.none{color:#777;font-style:italic}.foot{color:#666;font-size:12px;margin-top:28px}
"""


def render_html(data: Mapping[str, Any]) -> str:
    from rootwatch.compliance.kpis import PATHS, STATUS_COLOURS, TARGET_SECONDS

    k, src = data["kpis"], data.get("sources", {})
    ttd = data["timeToDetect"]
    p95 = [v for v in k["timeToDetect"]["p95Seconds"].values() if v is not None]
    worst = max(p95) if p95 else None
    score = k["policyComplianceScore"]
    rem = data["remediation"]
    tiles = "".join([
        _tile("Time to detect (p95)", _dur(worst),
              " / ".join(f"{p} {_dur(k['timeToDetect']['p95Seconds'][p])}" for p in PATHS) + "; target < 5 min",
              None if worst is None else worst <= TARGET_SECONDS),
        _tile(f"Incidents {k['quarter']}", str(k["incidentsThisQuarter"]), "root usage incidents; goal 0",
              k["incidentsThisQuarter"] == 0),
        _tile("Mean time to remediate", _dur(k["mttrSeconds"]),
              f"{rem['resolved']} resolved, {rem['unresolved']} open; acknowledge in {_dur(rem['mttaSeconds'])}", None),
        _tile("Policy compliance score", "n/a" if score is None else f"{score:g}%",
              f"last audit {k['lastAudit'] or 'never'}", None if score is None else score >= 100),
    ])
    has_ttd = any(ttd[p]["all"]["count"] for p in PATHS)
    ttd_rows = "".join(
        f"<tr><td>{_e(p)}</td><td>{_e(src_)}</td><td>{v['count']}</td><td>{_dur(v['p50'])}</td><td>{_dur(v['p95'])}</td>"
        f"<td>{_dur(v['max'])}</td><td>{v['withinTarget']}/{v['count']}</td></tr>"
        for p in PATHS for src_, v in (("drills", ttd[p]["drill"]), ("real alerts", ttd[p]["alert"])) if v["count"])
    failed = sum(ttd[p]["failedDrills"] for p in PATHS)
    ttd_html = (chart_time_to_detect(ttd, TARGET_SECONDS)
                + "<table><tr><th>path</th><th>source</th><th>samples</th><th>p50</th><th>p95</th><th>max</th>"
                f"<th>within 5 min</th></tr>{ttd_rows}</table>"
                + (f"<p>{failed} drill(s) failed (no notification): see the drill log.</p>" if failed else "")
                if has_ttd else _missing("--drill-log FILE or --incidents FILE"))
    have_incidents = bool(src.get("incidents"))
    org = data["organization"]
    legend = "".join(f'<span><b style="background:{c}"></b>{_e(s)}</span>' for s, c in STATUS_COLOURS.items())
    org_html = (f'<div class="legend">{legend}</div><ul class="tree">{_tree(org)}</ul>' if org
                else _missing("--org-snapshot FILE (and --audit-history FILE for the colours)"))
    open_rows = "".join(
        f"<tr><td>{_e(i['id'])}</td><td>{_e(i['accountName'])} ({_e(i['account'])})</td><td>{_e(i['status'])}</td>"
        f"<td>{_e(i['level'])}</td><td>{_e(i['firstEvent'])}</td><td>{_e(', '.join(i.get('classes') or []))}</td></tr>"
        for i in data["openIncidents"])
    incidents_html = (
        f'<div class="grid"><div><h3>Incidents per quarter</h3>{chart_incidents(data["incidentsPerQuarter"])}</div>'
        f'<div><h3>Time to remediate</h3>'
        + (chart_remediation(data["resolvedIncidents"], rem["mttrSeconds"]) if rem["resolved"] else "<p>No incident resolved yet.</p>")
        + "</div></div>"
        + (f"<h3>Unresolved</h3><table><tr><th>id</th><th>account</th><th>status</th><th>level</th><th>first event</th>"
           f"<th>classes</th></tr>{open_rows}</table>" if open_rows else "<p>No unresolved incidents.</p>")
        if have_incidents else _missing("--incidents FILE or --table NAME"))
    trend = data["complianceOverTime"]
    trend_html = chart_compliance(trend) if trend else _missing("--audit-history FILE")
    sources = ", ".join(f"{_e(n)}: {_e(v)}" for n, v in src.items() if v) or "none"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>rootwatch report {_e(data['generatedAt'])}</title><style>{CSS}</style></head><body>
<h1>rootwatch: root-user activity KPIs</h1>
<p class="sub">As of {_e(data['generatedAt'])} &middot; sources: {sources}</p>
<section class="tiles">{tiles}</section>
<h2>Time to detect</h2>{ttd_html}
<h2>Incidents</h2>{incidents_html}
<h2>Policy compliance over time</h2>{trend_html}
<h2>Organization compliance map</h2>{org_html}
<p class="foot">Time to detect: real-time alerts from the CloudTrail event time to the formatter's publish; alarm
alerts from the alarm's state change, which understates by up to one alarm period plus CloudTrail's delivery to
CloudWatch Logs; drills from trigger to the notification's arrival. Incidents come from the ledger the alert
formatter keeps; MTTR is first event to resolution. The score is the share of in-scope accounts passing every
audit check; the map colours each account by the last audit run.</p>
</body></html>
"""
