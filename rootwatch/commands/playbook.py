"""``rootwatch playbook``: the incident-response playbook and break-glass procedure, as Markdown.

Everything specific comes from the stack config (validated as ``plan`` does):
the routes per level (protocols and counts only: endpoints can be secrets, a
webhook URL carries its token), who reaches which level (the severity rules),
the real-time severity matrix, the runbook URL, the break-glass rules and
windows, and the centralized-root-access task path. The steps per alert class
follow ``rootwatch.detection.rule.EventClass``. The checklist's boxes are ticked
from the last ``rootwatch audit --history`` line and the drill log.

Regenerate it whenever the stack changes; it is meant to be committed next to
the stack or pasted into the runbook page it links to.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from rootwatch.core.errors import RootwatchError
from rootwatch.core.severity import ORDERED
from rootwatch.detection.rule import DEFAULT_CLASS_SEVERITY, EventClass

DRILL_MAX_AGE = timedelta(days=92)  # every path drilled at least once a quarter
ROOT_TASKS = {  # AWS managed task policies for sts:AssumeRoot (arn:<partition>:iam::aws:policy/root-task/<name>)
    "IAMAuditRootUserCredentials": "see whether the root user has a password, access keys or MFA",
    "IAMDeleteRootUserCredentials": "delete the root password, access keys, signing certificates and MFA",
    "IAMCreateRootUserPassword": "allow password recovery for the root user (only when the root user is really needed)",
    "S3UnlockBucketPolicy": "delete a bucket policy that denies every principal",
    "SQSUnlockQueuePolicy": "delete a queue policy that denies every principal",
}

STEPS: dict[str, tuple[str, list[str]]] = {
    EventClass.CONSOLE_LOGIN.value: ("Someone signed in to the console as root.", [
        "Check the alert's marking: an `AUTHORIZED BREAK-GLASS` ticket means the sign-in was approved; confirm with "
        "the ticket's owner that it is them, then watch the session.",
        "Without a window: call the account owner now. A sign-in without MFA is critical: assume compromise.",
        "Compare the source IP and user agent with the owner's; open the Console link in the alert for the session's "
        "other events.",
        "If not authorised: reset the root password, remove and re-register MFA devices, check for new access keys, "
        "IAM users and roles, then delete the root credentials with the `IAMDeleteRootUserCredentials` task.",
    ]),
    EventClass.CONSOLE_LOGIN_FAILURE.value: ("A root console sign-in failed.", [
        "One failure by the owner is noise; several, or from an unknown IP, are a password-guessing attempt.",
        "Confirm MFA is enabled on the root user (`rootwatch audit`), or that root credentials are centrally managed.",
        "If the account has no reason to keep a root password: delete it with `IAMDeleteRootUserCredentials`.",
    ]),
    EventClass.ACCESS_KEY_CALL.value: ("An API call was signed with root credentials.", [
        "Look at the access key in the alert: `AKIA...` is a long-term root access key (it must not exist); "
        "`ASIA...` with `Session: sts:AssumeRoot` is a centralized-root-access session: find its opener in the "
        "management account's CloudTrail (AssumeRoot, same access key id) and its task policy.",
        "Long-term key: deactivate and delete it now (`IAMDeleteRootUserCredentials`), then review every call it made.",
        "Review what the calls changed (errors included: an AccessDenied is still an attempt).",
    ]),
    EventClass.CONSOLE_ACTION.value: ("The root user changed something in the console.", [
        "List the session's actions in CloudTrail (Console link) and ask the owner for the reason.",
        "Revert unapproved changes; if the session was not the owner's, handle it as an unauthorised sign-in.",
    ]),
    EventClass.CREDENTIAL_CHANGE.value: ("Root credentials changed (password, MFA, access keys).", [
        "Treat as account takeover unless a break-glass window covers it.",
        "Verify the MFA devices, the root email address and the alternate contacts; recover the account through "
        "AWS Support if the owner lost access.",
        "Remove any new root access key; prefer deleting root credentials centrally.",
    ]),
    EventClass.LOGGING_TAMPER.value: ("The root user changed the logging that detects root use.", [
        "Critical: detection may be blind. Restore the trail, filter and alarm now with `pulumi up` on this stack.",
        "Run `rootwatch audit` on the account; then handle the session as an unauthorised sign-in.",
    ]),
    "tamper": ("Someone other than the rootwatch deployer changed rootwatch's own resources.", [
        "Identify the caller ARN in the alert. A deploy from another role means `realtime.managementDeployerArn` or "
        "the access role is wrong; anything else is an attack on the control.",
        "Restore with `pulumi up`, then `rootwatch audit --realtime` and `rootwatch drill --path both`.",
    ]),
    "untrusted / unrecognized / malformed": ("The formatter got an event it could not trust or read.", [
        "The raw event is in the message. `untrusted`: someone used PutEvents with a non-AWS source: find the caller "
        "in CloudTrail (events:PutEvents). Otherwise treat it as root activity until shown otherwise.",
    ]),
}


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("playbook", help="write the incident-response playbook and break-glass procedure (Markdown)",
                              description="Generate the incident-response playbook and break-glass procedure from "
                                          "the stack config, with the checklist ticked from the last audit.")
    p.add_argument("--stack", default="example", help="stack name (stacks/Pulumi.<name>.yaml) or file (default: example)")
    p.add_argument("--audit-history", metavar="FILE", help="history written by `rootwatch audit --history` (checklist state)")
    p.add_argument("--drill-log", metavar="FILE", help="log written by `rootwatch drill --log` (drill state)")
    p.add_argument("--output", "-o", metavar="FILE", help="write here (default: standard output)")
    p.add_argument("--as-of", metavar="DATE", help="evaluate windows and drill ages at this UTC time (default: now)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rootwatch.compliance import kpis
    from rootwatch.program import mockrun
    from rootwatch.program import settings as rw_settings

    now = datetime.now(timezone.utc)
    if args.as_of:
        parsed = kpis.parse_time(args.as_of)
        if parsed is None:
            raise RootwatchError(f"--as-of {args.as_of!r} is not an ISO 8601 time")
        now = parsed
    config = mockrun.load_stack_config(args.stack)
    settings = rw_settings.load(config.values)
    history = kpis.read_jsonl(_read(args.audit_history), args.audit_history) if args.audit_history else []
    drills = kpis.read_jsonl(_read(args.drill_log), args.drill_log) if args.drill_log else []
    last = max(history, key=lambda h: str(h.get("time", "")), default=None)
    text = render(settings, stack=mockrun.stack_name(args.stack), source=config.path.name, last_audit=last,
                  drills=drills, now=now)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise RootwatchError(f"--output {args.output}: cannot write ({exc.strerror or type(exc).__name__})") from None
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RootwatchError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RootwatchError(f"{path}: cannot read ({type(exc).__name__})") from None


# -- the Markdown (pure) -------------------------------------------------------------------------


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _protocols(subs: Sequence[Any]) -> str:
    counts = Counter(s.protocol for s in subs)
    return ", ".join(f"{n} {p}" for p, n in sorted(counts.items())) or "none"


def _match(m: Any) -> str:
    parts = []
    if m.accounts:
        parts.append("accounts " + ", ".join(m.accounts))
    if m.ous:
        parts.append("OUs " + ", ".join(m.ous))
    if m.tags:
        parts.append("tags " + ", ".join(f"{k}={v}" for k, v in m.tags.items()))
    if m.name_glob:
        parts.append(f"name matches `{m.name_glob}`")
    return " and ".join(parts) or "every account"


def routes_section(settings: Any) -> list[str]:
    baselines = {settings.severity.default, *(r.level for r in settings.severity.rules)}
    reachable = {lvl for b in baselines for lvl in settings.levels_for(b)}
    lines = ["## 1. Who gets paged", "",
             "Each level has its own encrypted SNS topic per account; these subscriptions receive it. Endpoints are "
             "not shown here (a webhook URL can carry its token): see the stack config.", "",
             "| level | subscriptions | reachable |", "| --- | --- | --- |"]
    for lvl in reversed(ORDERED):
        subs = settings.routes.get(lvl, ())
        lines.append(f"| {lvl.value} | {_protocols(subs)} | {'yes' if lvl in reachable else 'no'} |")
    lines += ["", "An account's **baseline** level is the first matching rule (else the default "
              f"`{settings.severity.default.value}`). The alarm path pages the baseline's route.", "",
              "| rule | accounts | baseline |", "| --- | --- | --- |"]
    for i, r in enumerate(settings.severity.rules, 1):
        lines.append(f"| {i} | {_cell(_match(r.match))} | {r.level.value} |")
    lines.append(f"| default | every other account | {settings.severity.default.value} |")
    if settings.realtime.enabled:
        ordered = [b for b in reversed(ORDERED) if b in baselines]
        lines += ["", "The real-time path pages by event class (the severity matrix; a break-glass window may set "
                  "its own level, tamper and unreadable events are always critical):", "",
                  "| event class | " + " | ".join(f"baseline {b.value}" for b in ordered) + " |",
                  "| --- |" + " --- |" * len(ordered)]
        rows = {b: settings.realtime.matrix_row(b) for b in ordered}
        for cls in EventClass:
            lines.append(f"| {cls.value} | " + " | ".join(rows[b][cls].value for b in ordered) + " |")
    else:
        lines += ["", "The real-time path is disabled in this stack: only the alarm path pages."]
    return lines


def steps_section(settings: Any) -> list[str]:
    runbook = settings.runbook_url
    lines = ["## 2. First response", "",
             f"Runbook: {runbook}" if runbook else "Runbook: not set (set `rootwatch:runbookUrl`; alerts link to it).",
             "",
             "For every alert: acknowledge it (`rootwatch incidents ack ID --note ...`), work the steps of its class, "
             "then resolve it with what was done (`rootwatch incidents resolve ID --note ...`). Alerts of one account "
             "collect in one open incident until it is resolved; the time between first event and resolution is the "
             "MTTR in `rootwatch report`.", ""]
    for name, (what, steps) in STEPS.items():
        cls = next((c for c in EventClass if c.value == name), None)
        level = f" (default level {DEFAULT_CLASS_SEVERITY[cls].value})" if cls else " (critical)"
        lines += [f"### {name}{level}", "", what, ""]
        lines += [f"{n}. {s}" for n, s in enumerate(steps, 1)]
        lines.append("")
    return lines


def _window_state(w: Any, now: datetime) -> str:
    return "expired" if w.end <= now else "open now" if w.start <= now else "upcoming"


def break_glass_section(settings: Any, now: datetime) -> list[str]:
    bg = settings.break_glass
    lines = ["## 3. Break-glass procedure", "",
             "Rules (enforced when the stack is validated; a window that breaks one stops the deploy):", "",
             "- A window names a ticket, the accounts, **at least two distinct approvers**, a reason (at most 500 "
             "characters) and a start and end with a timezone; the end is after the start.",
             f"- A window lasts **at most {bg.max_hours:g} hours** (`rootwatch:breakGlass.maxHours`).",
             "- It is evaluated at alert time against the event's own time: start inclusive, end exclusive.",
             "- It **never suppresses an alert**: alerts inside it are marked `AUTHORIZED BREAK-GLASS <ticket> "
             "(approved by ...)`; with `level`, root alerts use that level. Tamper alerts stay critical.",
             "- Windows reach the formatter at deploy time: `pulumi up` before the window starts. Expired windows "
             "are reported by `rootwatch plan`; remove them.", "",
             "Procedure:", "",
             "1. Open the ticket; two approvers approve it in the ticket.",
             "2. Prefer a centralized-root-access task (section 4) to signing in as root: it needs no root password.",
             "3. Add the window to `rootwatch:breakGlass.windows` and deploy (`rootwatch plan`, then `pulumi up`).",
             "4. Do the work; the alerts arrive marked with the ticket. Anything outside the ticket's scope is an incident.",
             "5. Afterwards: remove the window, deploy, and resolve the incident with the ticket in the note.", ""]
    if bg.windows:
        lines += ["| ticket | accounts | approvers | start | end | level | state |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for w in bg.windows:
            lines.append(f"| {_cell(w.ticket)} | {', '.join(w.accounts)} | {_cell(', '.join(w.approvers))} | "
                         f"{w.start:%Y-%m-%dT%H:%MZ} | {w.end:%Y-%m-%dT%H:%MZ} | {w.level.value if w.level else '-'} | "
                         f"{_window_state(w, now)} |")
    else:
        lines.append("No windows are configured in this stack.")
    return lines + [""]


def root_access_section(settings: Any) -> list[str]:
    from rootwatch.core.arns import partition

    part = partition(settings.home_region)
    lines = ["## 4. Centralized root access (sts:AssumeRoot)", "",
             "Short, audited root tasks on a member account, without its root password. From the management account "
             "(or the IAM delegated administrator), once per organization:", "",
             "```sh",
             "aws organizations enable-aws-service-access --service-principal iam.amazonaws.com",
             "aws iam enable-organizations-root-credentials-management",
             "aws iam enable-organizations-root-sessions",
             "```", "",
             "For one task (at most 900 seconds; a regional STS endpoint, the global one refuses AssumeRoot):", "",
             "```sh",
             f"aws sts assume-root --region {settings.home_region} --target-principal <ACCOUNT_ID> \\",
             f"    --task-policy-arn arn=arn:{part}:iam::aws:policy/root-task/<TASK> --duration-seconds 900",
             "```", "",
             "| task | for |", "| --- | --- |"]
    lines += [f"| {t} | {why} |" for t, why in ROOT_TASKS.items()]
    lines += ["", "Calls inside the session are root activity in the member account: they alert (marked `Session: "
              "sts:AssumeRoot`) and join the account's incident with the session's access key id. Open a break-glass "
              "window for planned tasks.", ""]
    return lines


def _drill_state(drills: Sequence[Mapping[str, Any]], now: datetime) -> dict[str, Any]:
    from rootwatch.compliance.kpis import parse_time

    last: dict[tuple[str, str], Mapping[str, Any]] = {}
    for d in drills:
        key = (str(d.get("account")), str(d.get("path")))
        if key not in last or str(d.get("time")) > str(last[key].get("time")):
            last[key] = d
    rows = []
    for (acct, path), d in sorted(last.items()):
        t = parse_time(d.get("time"))
        stale = t is None or now - t > DRILL_MAX_AGE
        rows.append({"account": acct, "path": path, "time": d.get("time"), "ok": bool(d.get("ok")), "stale": stale,
                     "seconds": d.get("TimeToDetect", d.get("latencySeconds"))})
    return {"rows": rows, "ok": bool(rows) and all(r["ok"] and not r["stale"] for r in rows)}


def drills_section(settings: Any, drills: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    paths = "both" if settings.realtime.enabled else "alarm"
    lines = ["## 5. Drills", "",
             f"Schedule: every account, path `{paths}`, at least once a quarter ({DRILL_MAX_AGE.days} days), and after "
             "every change to routes or subscriptions; accounts with a critical baseline monthly. A drill proves the "
             "alert reaches a subscriber and records its time to detect:", "",
             "```sh", f"rootwatch drill --account <ACCOUNT_ID> --path {paths} --log rootwatch-drill.jsonl", "```", ""]
    state = _drill_state(drills, now)
    if not drills:
        return lines + ["No drill log given (`--drill-log FILE`): drill state unknown.", ""]
    lines += ["| account | path | last drill | result | time to detect |", "| --- | --- | --- | --- | --- |"]
    for r in state["rows"]:
        result = ("passed" if r["ok"] else "FAILED") + (" (overdue)" if r["stale"] else "")
        secs = "-" if r["seconds"] is None else f"{float(r['seconds']):.1f} s"
        lines.append(f"| {r['account']} | {r['path']} | {r['time']} | {result} | {secs} |")
    return lines + [""]


AUDIT_ITEMS = (
    ("trail", "A multi-region trail logs read and write management events and delivers them to CloudWatch Logs"),
    ("filter", "The byte-exact CIS root-activity filter (Security Hub CloudWatch.1) is on that trail's log group"),
    ("alarm", "An alarm on the filter's metric (Sum >= 1, period <= 300 s) notifies an SNS topic"),
    ("topic", "The alarm's topic has a confirmed subscriber and a key CloudWatch may use"),
    ("rootCredentials", "No root access keys; root MFA enabled or root credentials centrally managed"),
    ("realtime", "The real-time EventBridge rule is enabled, with a target, in every region"),
)


def checklist_section(settings: Any, last_audit: Mapping[str, Any] | None, drills: Sequence[Mapping[str, Any]],
                      now: datetime) -> list[str]:
    from rootwatch.program.settings import expired_windows

    def box(ok: bool, text: str, why: str) -> str:
        return f"- [{'x' if ok else ' '}] {text} ({why})"

    when = f"audit {last_audit.get('time')}" if last_audit else None
    lines = ["## 6. Checklist", "",
             (f"State from the last audit ({last_audit.get('time')}) and the stack config." if last_audit
              else "No audit history given (`rootwatch audit --history FILE`, then `--audit-history FILE`): the "
                   "audit items are unticked."), ""]
    accounts = (last_audit or {}).get("accounts", [])
    for check, text in AUDIT_ITEMS:
        if check == "realtime" and not settings.realtime.enabled:
            continue
        seen = [a for a in accounts if check in (a.get("checks") or {})]
        errors = [a for a in accounts if a.get("error")]
        if not last_audit or not seen:
            why = "not audited" + (" with --realtime" if check == "realtime" and last_audit else "")
            lines.append(box(False, text, why))
            continue
        passing = [a for a in seen if a["checks"][check]]
        failing = sorted(a.get("name") or a["id"] for a in seen if not a["checks"][check])
        why = f"{len(passing)}/{len(seen) + len(errors)} accounts, {when}"
        if failing:
            why += "; failing: " + ", ".join(failing)
        if errors:
            why += "; not reachable: " + ", ".join(sorted(a.get("name") or a["id"] for a in errors))
        lines.append(box(len(passing) == len(seen) and not errors, text, why))
    score = (last_audit or {}).get("kpis", {}).get("policyComplianceScore")
    lines.append(box(score == 100.0, "Policy compliance score is 100%", f"{score}%" if score is not None else "no audit"))
    expired = expired_windows(settings, now)
    lines += [
        box(True, "Every alert level an account can reach has a subscription", "enforced by the stack config"),
        box(bool(settings.runbook_url), "Alerts link to a runbook", "rootwatch:runbookUrl"
            + (" is set" if settings.runbook_url else " is not set")),
        box(True, f"Break-glass windows need two approvers and last at most {settings.break_glass.max_hours:g} h",
            "enforced by the stack config"),
        box(not expired, "No expired break-glass windows left in the config",
            f"{len(expired)} expired" if expired else "none"),
    ]
    state = _drill_state(drills, now)
    lines.append(box(state["ok"], f"Every drilled account and path passed within {DRILL_MAX_AGE.days} days",
                     "no drill log" if not drills else
                     f"{sum(1 for r in state['rows'] if r['ok'] and not r['stale'])}/{len(state['rows'])} current"))
    return lines + [""]


def render(settings: Any, *, stack: str, source: str, last_audit: Mapping[str, Any] | None,
           drills: Sequence[Mapping[str, Any]], now: datetime) -> str:
    lines = [f"# Root-activity incident playbook: stack `{stack}`", "",
             f"Generated by `rootwatch playbook --stack {stack}` from `{source}` on {now:%Y-%m-%d %H:%M} UTC. "
             "Do not edit by hand: change the stack and regenerate.", ""]
    for section in (routes_section(settings), [""], steps_section(settings), break_glass_section(settings, now),
                    root_access_section(settings), drills_section(settings, drills, now),
                    checklist_section(settings, last_audit, drills, now)):
        lines += section
    return "\n".join(lines).rstrip() + "\n"

