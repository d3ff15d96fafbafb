"""``rootwatch audit --root-credentials``: the root-credential posture of every account.

Per account: does the root user still have a password, access keys, signing
certificates, MFA devices? Two ways to see it:

``AssumeRoot`` (members, when the organization has centralized root access: IAM
``ListOrganizationsFeatures`` answers RootCredentialsManagement and RootSessions)
    sts:AssumeRoot into the member with the task policy
    ``arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials``, then, as the
    member's root user, GetLoginProfile (NoSuchEntity: no password), ListAccessKeys,
    ListSigningCertificates and ListMFADevices. Sees all four.
``GetAccountSummary`` (the management account, and members otherwise)
    through the account's role: AccountAccessKeysPresent,
    AccountSigningCertificatesPresent and AccountMFAEnabled (MFA on, not the number of
    devices). The root *password* is visible only where IAM reports
    AccountPasswordPresent; where it does not, it is "unknown": the login profile of the
    root user is not readable through a role.

``rootCredentials`` is ``present`` when any of password, access keys or signing
certificates exists, ``none`` when all three are known to be absent, else ``unknown``
(also for an account that could not be read). MFA devices are reported but are not a
credential on their own. KPI: the share of member accounts that are root-less.

``--delete-root-credentials ACCOUNT`` deletes a member's root password, access keys and
signing certificates and deactivates its MFA devices in an AssumeRoot session with
``IAMDeleteRootUserCredentials``. It needs ``--yes`` and ``--confirm-account ACCOUNT``
(the id typed again), and refuses the management account (AssumeRoot cannot target it,
and its root user is the organization's last resort).

Exit 0 when every member account is root-less, 1 otherwise (findings), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Mapping, Sequence

from rootwatch.core.errors import RootwatchError

SCHEMA = "rootwatch.rootcredentials/v1"
AUDIT_TASK = "IAMAuditRootUserCredentials"
DELETE_TASK = "IAMDeleteRootUserCredentials"
ROOT_FEATURES = ("RootCredentialsManagement", "RootSessions")
NONE, PRESENT, UNKNOWN = "none", "present", "unknown"
ITEMS = ("password", "accessKeys", "signingCertificates", "mfaDevices")
CREDENTIALS = ("password", "accessKeys", "signingCertificates")  # what makes an account not root-less
SESSION_SECONDS = 900  # AssumeRoot's maximum


def task_policy_arn(task: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::aws:policy/root-task/{task}"


# ---------------------------------------------------------------- the AWS edge (one seam for tests)


class RootApi:
    """IAM ListOrganizationsFeatures and sts:AssumeRoot, from the management account's credentials.

    ``edge`` is ``rootwatch.commands.audit`` (sessions, clients, error text), passed in by its
    caller rather than imported: audit dispatches here, and the layout forbids import circles.
    """

    def __init__(self, base: Any, edge: Any) -> None:
        self.base = base
        self.edge = edge

    def enabled_features(self) -> list[str]:
        return list(self.base("iam").list_organizations_features().get("EnabledFeatures", []))

    def root_iam(self, account_id: str, task: str) -> Any:
        """An IAM client acting as the member's root user, limited to the task policy."""
        from rootwatch.core.arns import partition

        audit = self.edge
        creds = self.base("sts").assume_root(
            TargetPrincipal=account_id,
            TaskPolicyArn={"arn": task_policy_arn(task, partition(self.base.region))},
            DurationSeconds=SESSION_SECONDS,
        )["Credentials"]
        session = audit.new_session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                                    aws_session_token=creds["SessionToken"], region_name=self.base.region)
        return audit.Clients(session, self.base.region, self.base.endpoint_url)("iam")


def root_api(base: Any, edge: Any) -> RootApi:
    return RootApi(base, edge)


# ---------------------------------------------------------------- verdict (pure)


def state_of(creds: Mapping[str, bool | None]) -> str:
    values = [creds.get(k) for k in CREDENTIALS]
    if any(v is True for v in values):
        return PRESENT
    if all(v is False for v in values):
        return NONE
    return UNKNOWN


def from_summary(summary: Mapping[str, Any]) -> tuple[dict[str, bool | None], list[str]]:
    """Credentials as GetAccountSummary shows them, and what it cannot show."""
    def flag(key: str) -> bool | None:
        v = summary.get(key)
        return None if v is None else bool(v)

    creds = {
        "password": flag("AccountPasswordPresent"),
        "accessKeys": flag("AccountAccessKeysPresent"),
        "signingCertificates": flag("AccountSigningCertificatesPresent"),
        # AccountMFAEnabled: root MFA is on (an MFA device is in use); 0 does not rule out an unused device.
        "mfaDevices": True if summary.get("AccountMFAEnabled") == 1 else None,
    }
    notes = []
    if creds["password"] is None:
        notes.append("root password not visible: GetAccountSummary does not report AccountPasswordPresent here "
                     "(only an AssumeRoot audit session reads the root login profile)")
    if creds["mfaDevices"] is None:
        notes.append("root MFA is not enabled (AccountMFAEnabled = 0); unused MFA devices are not visible")
    return creds, notes


def kpis(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    members = [r for r in rows if not r.get("isManagement")]
    rootless = sum(1 for r in members if r["rootCredentials"] == NONE)
    return {
        "memberAccounts": len(members),
        "rootlessMemberAccounts": rootless,
        "rootlessMemberAccountsPercent": round(100 * rootless / len(members), 1) if members else None,
        "unknown": sum(1 for r in rows if r["rootCredentials"] == UNKNOWN),
    }


# ---------------------------------------------------------------- collection


def _no_such_entity(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") == "NoSuchEntity"


def read_root_session(iam: Any) -> dict[str, bool | None]:
    """The four items, as the member's root user (AssumeRoot, IAMAuditRootUserCredentials)."""
    out: dict[str, bool | None] = {}
    try:
        iam.get_login_profile()
        out["password"] = True
    except Exception as exc:
        if not _no_such_entity(exc):
            raise
        out["password"] = False
    out["accessKeys"] = bool(iam.list_access_keys().get("AccessKeyMetadata"))
    out["signingCertificates"] = bool(iam.list_signing_certificates().get("Certificates"))
    out["mfaDevices"] = bool(iam.list_mfa_devices().get("MFADevices"))
    return out


class Context:
    def __init__(self, base: Any, caller: str | None, role_name: str, management_id: str | None,
                 api: RootApi, central: bool, edge: Any) -> None:
        self.base, self.caller, self.role_name = base, caller, role_name
        self.management_id, self.api, self.central, self.edge = management_id, api, central, edge


def audit_account(account_id: str, name: str, ctx: Context) -> dict[str, Any]:
    audit = ctx.edge
    is_mgmt = account_id == ctx.management_id
    row: dict[str, Any] = {"id": account_id, "name": name, "isManagement": is_mgmt, "method": None,
                           "rootCredentials": UNKNOWN, "credentials": dict.fromkeys(ITEMS), "notes": [], "error": None}
    try:
        if ctx.central and not is_mgmt:
            row["method"] = "AssumeRoot"
            try:
                iam = ctx.api.root_iam(account_id, AUDIT_TASK)
            except Exception as exc:
                raise audit.AccountError(f"sts:AssumeRoot ({AUDIT_TASK}) into {account_id}: "
                                         f"{audit.describe_error(exc)}") from None
            row["credentials"] = read_root_session(iam)
        else:
            row["method"] = "GetAccountSummary"
            clients = audit.account_clients(ctx.base, account_id, ctx.caller, ctx.role_name)
            summary = clients("iam").get_account_summary().get("SummaryMap", {})
            row["credentials"], row["notes"] = from_summary(summary)
            if is_mgmt:
                row["notes"].append("management account: centralized root access does not cover it; keep its root "
                                    "password with MFA")
        row["rootCredentials"] = state_of(row["credentials"])
    except Exception as exc:
        row["error"] = audit.describe_error(exc)
        row["rootCredentials"] = UNKNOWN
    return row


def central_access(api: RootApi) -> dict[str, Any]:
    try:
        features = api.enabled_features()
    except Exception as exc:
        return {"enabled": False, "features": [], "error": api.edge.describe_error(exc)}
    return {"enabled": all(f in features for f in ROOT_FEATURES), "features": sorted(features), "error": None}


def delete_root_credentials(api: RootApi, account_id: str) -> list[str]:
    """Delete a member's root password, keys and certificates; deactivate its MFA devices. Returns what was done."""
    iam = api.root_iam(account_id, DELETE_TASK)
    done = []
    try:
        iam.delete_login_profile()
        done.append("deleted the root password")
    except Exception as exc:
        if not _no_such_entity(exc):
            raise
    for key in iam.list_access_keys().get("AccessKeyMetadata", []):
        iam.delete_access_key(AccessKeyId=key["AccessKeyId"])
        done.append(f"deleted root access key {key['AccessKeyId'][:4]}…")
    for cert in iam.list_signing_certificates().get("Certificates", []):
        iam.delete_signing_certificate(CertificateId=cert["CertificateId"])
        done.append("deleted a root signing certificate")
    for device in iam.list_mfa_devices().get("MFADevices", []):
        iam.deactivate_mfa_device(SerialNumber=device["SerialNumber"])
        done.append("deactivated a root MFA device")
    return done


# ---------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("root credentials (rootwatch audit --root-credentials)")
    g.add_argument("--root-credentials", action="store_true",
                   help="report each account's root password, access keys, signing certificates and MFA devices "
                        "(AssumeRoot where centralized root access is enabled, else GetAccountSummary)")
    g.add_argument("--delete-root-credentials", metavar="ACCOUNT",
                   help="delete this member account's root credentials (AssumeRoot, IAMDeleteRootUserCredentials); "
                        "needs --yes and --confirm-account ACCOUNT")
    g.add_argument("--confirm-account", metavar="ACCOUNT", help="the account id of --delete-root-credentials, again")
    g.add_argument("--yes", action="store_true", help="confirm --delete-root-credentials")


def wanted(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "root_credentials", False) or getattr(args, "delete_root_credentials", None))


def run(args: argparse.Namespace, audit: Any, out: Any = None) -> int:
    """``audit``: the rootwatch.commands.audit module (its AWS edge and account scope)."""
    out = out or sys.stdout
    audit.validate_role_name(args.role_name)
    if args.region:
        audit.validate_region(args.region)
    if not 1 <= args.parallel <= 64:
        raise RootwatchError(f"--parallel {args.parallel} must be between 1 and 64")
    target = args.delete_root_credentials
    if target is not None:
        audit.validate_account_id(target, "--delete-root-credentials")
        if not args.yes or args.confirm_account != target:
            raise RootwatchError(f"--delete-root-credentials {target} deletes that account's root credentials: "
                                 f"confirm with --yes --confirm-account {target}")
    base = audit.base_clients(args.region, args.endpoint_url)
    accounts, skipped, mgmt = audit._scope(args, base)  # noqa: SLF001 - the audit's own account scope
    if not accounts:
        raise RootwatchError("no ACTIVE accounts to audit")
    try:
        caller = base("sts").get_caller_identity()["Account"]
    except Exception as exc:
        raise RootwatchError(f"cannot identify the calling account: {audit.describe_error(exc)}") from None
    api = root_api(base, audit)
    central = central_access(api)
    if target is not None:
        if target == (mgmt or caller):
            raise RootwatchError(f"--delete-root-credentials {target}: refused, it is the management account")
        if target not in {a for a, _ in accounts}:
            raise RootwatchError(f"--delete-root-credentials {target}: not an ACTIVE account of this organization")
        if not central["enabled"]:
            why = f": {central['error']}" if central["error"] else ""
            raise RootwatchError("--delete-root-credentials needs centralized root access (RootCredentialsManagement "
                                 f"and RootSessions){why}")
        try:
            done = delete_root_credentials(api, target)
        except Exception as exc:
            raise RootwatchError(f"--delete-root-credentials {target}: {audit.describe_error(exc)}") from None
        print(f"{target}: " + ("; ".join(done) if done else "no root credentials to delete"), file=sys.stderr)
        accounts = [(a, n) for a, n in accounts if a == target]
    ctx = Context(base, caller, args.role_name, mgmt, api, central["enabled"], audit)
    rows = _in_parallel(accounts, lambda a, n: audit_account(a, n, ctx), args.parallel)
    report = {"schema": SCHEMA, "centralRootAccess": central, "accounts": rows, "skipped": skipped, "kpis": kpis(rows)}
    if args.format == "json":
        print(json.dumps(report, indent=2), file=out)
    else:
        print_text(report, out)
    members_ok = all(r["rootCredentials"] == NONE for r in rows if not r["isManagement"])
    return 0 if members_ok and not any(r["error"] for r in rows) else 1


def _in_parallel(accounts: Sequence[tuple[str, str]], fn: Callable[[str, str], dict[str, Any]],
                 parallel: int) -> list[dict[str, Any]]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(accounts)))) as pool:
        return list(pool.map(lambda a: fn(*a), accounts))


def _cell(v: bool | None) -> str:
    return "?" if v is None else "yes" if v else "no"


def print_text(report: Mapping[str, Any], out: Any) -> None:
    c = report["centralRootAccess"]
    state = "enabled" if c["enabled"] else "not enabled"
    print(f"centralized root access: {state}" + (f" ({c['error']})" if c.get("error") else ""), file=out)
    print(f"{'ACCOUNT':<13} {'NAME':<20} {'ROOT':<8} {'PASSWORD':<9} {'KEYS':<5} {'CERTS':<6} {'MFA':<4} METHOD",
          file=out)
    for r in report["accounts"]:
        cr = r["credentials"]
        name = (r.get("name") or "") + (" (mgmt)" if r["isManagement"] else "")
        print(f"{r['id']:<13} {name[:20]:<20} {r['rootCredentials']:<8} {_cell(cr['password']):<9} "
              f"{_cell(cr['accessKeys']):<5} {_cell(cr['signingCertificates']):<6} {_cell(cr['mfaDevices']):<4} "
              f"{r['method'] or '-'}", file=out)
        if r["error"]:
            print(f"    error: {r['error']}", file=out)
        for n in r["notes"]:
            print(f"    note: {n}", file=out)
    k = report["kpis"]
    pct = "n/a" if k["rootlessMemberAccountsPercent"] is None else f"{k['rootlessMemberAccountsPercent']}%"
    print(f"\n{k['rootlessMemberAccounts']}/{k['memberAccounts']} member accounts root-less ({pct}); "
          f"{k['unknown']} unknown", file=out)
