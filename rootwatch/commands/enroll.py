"""`rootwatch enroll` / `rootwatch offboard`: per-account stacks (rootwatch-<accountId>).

    rootwatch enroll 123456789012 --name payments-prod --ou ou-ab12-prod0001 [--severity critical] [--preview]
    rootwatch enroll --org-snapshot org.json --parallel 8
    rootwatch offboard 123456789012

Progress goes to stderr, one line per event, prefixed with the account:
``[123456789012] ...``. The result goes to stdout as text or ``--format json``
(schema rootwatch.enroll/v1). Exit 0 ok, 1 findings (an account not compliant, of
unknown compliance, or failed), 2 usage/input errors (including a missing Pulumi CLI,
a failed `pulumi login` and missing or expired AWS credentials).
The mechanics are in rootwatch.vending.automation.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from typing import Any, TextIO

from rootwatch.core.errors import RootwatchError

EXIT_OK, EXIT_FINDINGS = 0, 1


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pulumi-path", metavar="PATH", help="the pulumi binary (or its directory); default: ROOTWATCH_PULUMI, PATH, ~/.pulumi/bin")
    p.add_argument("--retries", type=int, default=4, metavar="N", help="retries when the stack is locked by another update (default: 4)")
    p.add_argument("-v", "--verbose", action="store_true", help="also show the Pulumi engine's output for every account")


def add_parser(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse's type
    from rootwatch.commands.options import add_format_option

    e = sub.add_parser(
        "enroll",
        help="deploy rootwatch into one account (or every account of a snapshot) as its own stack",
        description="Create or update stack rootwatch-<ACCOUNT_ID> from the base stack's config, narrowed to the "
        "account, and run `pulumi up` (or --preview) with the project's policy pack. Idempotent. "
        "Exit 0 ok, 1 an account not compliant or failed, 2 usage/input errors.",
    )
    e.add_argument("account_id", nargs="?", metavar="ACCOUNT_ID", help="12-digit AWS account id")
    e.add_argument("--name", help="account name (default: the account id)")
    e.add_argument("--ou", help="the account's OU id (ou-xxxx-xxxxxxxx), used by OU severity rules")
    e.add_argument("--severity", choices=("low", "medium", "high", "critical"), help="override the base stack's severity for this account")
    e.add_argument("--preview", action="store_true", help="preview only: change nothing")
    e.add_argument("--org-snapshot", metavar="FILE", help="enroll every in-scope member account of this org snapshot")
    e.add_argument("--parallel", type=int, default=4, metavar="N", help="accounts deployed at once with --org-snapshot (default: 4)")
    e.add_argument("--engine-parallel", type=int, metavar="N", help="`pulumi up --parallel` for each stack")
    e.add_argument("--base-stack", default="example", metavar="NAME", help="stack whose config is the template: stacks/Pulumi.<NAME>.yaml (default: example)")
    e.add_argument("--policy-pack", action="append", metavar="DIR", help="policy pack directory (repeatable; default: the project's policypack/)")
    e.add_argument("--policy-pack-config", action="append", default=[], metavar="FILE", help="policy pack config JSON (repeatable)")
    e.add_argument("--no-policy-pack", action="store_true", help="run without any policy pack")
    e.add_argument(
        "--secret", action="append", default=[], metavar="KEY=ENV_VAR",
        help="set secret config KEY (path style, e.g. 'rootwatch:routes.critical[0].endpoint') from environment "
        "variable ENV_VAR; needed when the base stack's secrets cannot be copied (the value never appears on the command line)",
    )
    _common(e)
    add_format_option(e)
    e.set_defaults(func=run_enroll)

    o = sub.add_parser(
        "offboard",
        help="remove rootwatch from one account (retained logs bucket, key and log group stay)",
        description="Unprotect the stack's resources (state only), destroy them, and remove stack "
        "rootwatch-<ACCOUNT_ID>. Resources marked retain (logs bucket, KMS key, log group) stay in the account. "
        "Exit 0 ok (or not enrolled), 1 failed, 2 usage/input errors.",
    )
    o.add_argument("account_id", metavar="ACCOUNT_ID", help="12-digit AWS account id")
    _common(o)
    add_format_option(o)
    o.set_defaults(func=run_offboard)


# Convention: the registry calls `func`; `run` is the enroll entry point.
def run(args: argparse.Namespace) -> int:
    return int(args.func(args))


class _Console:
    """Thread-safe "[account] message" lines on stderr."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.lock = threading.Lock()

    def line(self, account_id: str, message: str) -> None:
        with self.lock:
            self.stream.write(f"[{account_id}] {message}\n")
            self.stream.flush()


class _Notes:
    """A console stand-in that keeps lines for later."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def line(self, account_id: str, message: str) -> None:
        self.lines.append((account_id, message))


def _secrets(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, var = pair.partition("=")
        if not sep or not key or not var:
            raise RootwatchError(f"--secret {pair!r}: expected KEY=ENV_VAR")
        if var not in os.environ:
            raise RootwatchError(f"--secret {key}: environment variable {var} is not set")
        out[key] = os.environ[var]
    return out


def _policy_packs(args: argparse.Namespace) -> Any:
    from rootwatch.vending import automation

    if args.no_policy_pack:
        if args.policy_pack:
            raise RootwatchError("--policy-pack and --no-policy-pack are mutually exclusive")
        return ()
    return tuple(args.policy_pack) if args.policy_pack else automation.PROJECT_POLICY_PACK


def _snapshot_specs(path: str, base_stack: str, console: _Console) -> list[Any]:
    """Every in-scope member account of the snapshot, with the severity the base stack gives it.

    Severity is computed here, with the account's whole OU path and tags. A
    per-account stack knows only the parent OU, so a rule on an ancestor OU or
    on tags would otherwise not match there.
    """
    from rootwatch.core import snapshot
    from rootwatch.program import mockrun, organization
    from rootwatch.program import settings as rw_settings
    from rootwatch.vending import automation

    org = snapshot.load(path)
    config = mockrun.load_stack_config(base_stack, automation.PROJECT_DIR)
    try:
        base = rw_settings.load(config.values)
    except RootwatchError as exc:
        raise RootwatchError(f"base stack {base_stack}: {exc}") from None
    specs = []
    for a in organization.program_scope(base, org).accounts:
        if a.is_management:
            # No role to assume into itself: the management account stays with the organization stack.
            console.line(a.id, "skipped: management account (deploy it from the organization stack)")
            continue
        name = (a.name or a.id)[:50]
        specs.append(automation.AccountSpec(a.id, name, a.ou or None, organization.baseline_severity(base, a).value))
    if not specs:
        raise RootwatchError(f"{path}: no member account is in scope of base stack {base_stack}")
    return specs


def run_enroll(args: argparse.Namespace) -> int:
    from rootwatch.vending import automation

    if bool(args.account_id) == bool(args.org_snapshot):
        raise RootwatchError("give either ACCOUNT_ID or --org-snapshot FILE")
    if args.org_snapshot and (args.name or args.ou or args.severity):
        raise RootwatchError("--name, --ou and --severity apply to a single ACCOUNT_ID, not --org-snapshot")
    if args.account_id:
        automation.validate_account_id(args.account_id)
    if args.parallel < 1 or (args.engine_parallel is not None and args.engine_parallel < 1) or args.retries < 0:
        raise RootwatchError("--parallel and --engine-parallel must be at least 1, --retries at least 0")
    # Our own arguments and files first (a typo'd --base-stack, a missing snapshot or
    # secret): each is one line naming it, whether or not the Pulumi CLI is installed.
    console = _Console()
    secrets = _secrets(args.secret)
    automation.load_base(args.base_stack, automation.PROJECT_DIR)
    if args.account_id:
        specs = [automation.AccountSpec(args.account_id, args.name or args.account_id, args.ou, args.severity)]
    else:
        # Notes wait until the Pulumi CLI is found: a missing CLI stays the one line shown.
        notes = _Notes()
        specs = _snapshot_specs(args.org_snapshot, args.base_stack, notes)  # type: ignore[arg-type]
    for spec in specs:
        automation.validate_spec(spec)
    policy_packs = _policy_packs(args)
    command = automation.resolve_pulumi(args.pulumi_path)
    if not args.account_id:
        for account_id, message in notes.lines:
            console.line(account_id, message)
    options: dict[str, Any] = dict(
        base_stack=args.base_stack,
        preview=args.preview,
        policy_packs=policy_packs,
        policy_pack_configs=args.policy_pack_config,
        secrets=secrets,
        pulumi_command=command,
        retries=args.retries,
    )
    if args.account_id:
        # One account: input problems (config, secrets) raise, and exit 2 as usage errors.
        spec = specs[0]
        result = automation.enroll_account(
            spec.id, name=spec.name, ou=spec.ou, severity=spec.severity, parallel=args.engine_parallel,
            notify=console.line, on_output=lambda line: console.line(spec.id, line), **options,
        )
        console.line(spec.id, result.describe())
        summary = automation.EnrollSummary([result])
    else:
        from rootwatch.core.progress import Progress

        with Progress(len(specs), "enrolled", every=10) as progress:
            summary = automation.enroll_many(
                specs, parallel=args.parallel, engine_parallel=args.engine_parallel, notify=console.line,
                on_output=console.line if args.verbose else None,
                on_result=lambda r: progress.advance(r.account_id), **options,
            )
    _print_summary(summary, args.format, sys.stdout)
    if summary.passed:
        return EXIT_OK
    return exit_code_for_errors([r.error or "" for r in summary.results if not r.ok])


# Failures that are the operator's set-up, not findings about an account: not logged in
# to a backend, no or expired AWS credentials, no secrets passphrase.
_SETUP_ERROR = re.compile(
    r"PULUMI_ACCESS_TOKEN|pulumi login|not logged in|unauthorized|401|getting credentials|NoCredentialProviders|"
    r"no valid credential|ExpiredToken|InvalidClientTokenId|security token .* invalid|unable to validate AWS credentials|"
    r"failed to refresh cached credentials|PULUMI_CONFIG_PASSPHRASE|passphrase must be set",
    re.IGNORECASE,
)


def exit_code_for_errors(errors: list[str]) -> int:
    """2 when a failure is a login or credential problem (usage, as the README says), else 1 (findings)."""
    from rootwatch.commands.options import EXIT_USAGE

    return EXIT_USAGE if any(_SETUP_ERROR.search(e) for e in errors) else EXIT_FINDINGS


def run_offboard(args: argparse.Namespace) -> int:
    from rootwatch.vending import automation

    automation.validate_account_id(args.account_id)
    command = automation.resolve_pulumi(args.pulumi_path)
    console = _Console()
    result = automation.offboard_account(
        args.account_id,
        pulumi_command=command,
        retries=args.retries,
        notify=console.line,
        on_output=(lambda line: console.line(args.account_id, line)),
    )
    console.line(args.account_id, result.describe())
    _print_summary(automation.EnrollSummary([result]), args.format, sys.stdout)
    return EXIT_OK if result.ok else exit_code_for_errors([result.error or ""])


def _print_summary(summary: Any, fmt: str, out: TextIO) -> None:
    if fmt == "json":
        json.dump(summary.to_json(), out, indent=2)
        out.write("\n")
        return
    for r in summary.results:
        out.write(f"{r.account_id}  {r.stack:<22}  {'PASS' if r.passed else 'FAIL'}  {r.describe()}\n")
    c = summary.counts
    if c["total"] > 1:
        out.write(
            f"\n{c['total']} account(s): {c['ok']} ok, {c['failed']} failed, {c['compliant']} compliant, "
            f"{c['notCompliant']} not compliant, {c['unknown']} unknown, {c['retried']} retried after a lock\n"
        )
