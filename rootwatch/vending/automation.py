"""Per-account stacks through the Pulumi Automation API: enroll, offboard, enroll many.

Every account gets its own stack, ``rootwatch-<accountId>``. It runs this
repository's program (a local program: Pulumi.yaml, not an inline copy) with the
base stack's config, narrowed to that one account.

How this works around Automation API limits:

* **Stack files.** LocalWorkspace ignores ``stackConfigDir`` (pulumi/pulumi#10305).
  The per-account stack file is rendered here and written to
  ``<stackConfigDir>/Pulumi.rootwatch-<id>.yaml``, and every operation gets
  ``config_file=`` for that path. So the CLI reads exactly that file wherever
  it would look by default.
* **Why not ``config set-all --path`` for plain values.** With ``--path`` the CLI
  stores integer-looking strings as numbers: account id ``"123456789012"``
  becomes ``123456789012``, and RootwatchSettings rejects it. Writing the file
  keeps the types, lets a re-run leave the file as it is, and can carry
  ciphertext over.
* **Secrets.** A ``secure:`` value from the base stack keeps its ciphertext only
  when the base stack file holds its secrets-provider material
  (``encryptionsalt`` for passphrase, or ``secretsprovider`` plus
  ``encryptedkey``). That material is copied with the ciphertext, so the account
  stack decrypts with the same key. Otherwise (Pulumi Cloud's per-stack
  ``service`` provider) the ciphertext cannot be reused, and the caller re-sets
  every such value: ``secrets={"rootwatch:routes.critical[0].endpoint": ...}``.
  Those go through ``pulumi config set --path --secret KEY`` with the value on stdin
  (``set_secret_config``: never an argument, which ``ps`` shows to every local user). Ciphertext already
  in the account's own stack file is kept, so it is needed once per stack.
  Values are never printed; errors name keys only.
* **Offboarding and protect.** ``rootwatch:protect`` (default true) protects the
  bucket, key and log group, and ``pulumi destroy`` refuses protected resources.
  offboard runs ``pulumi state unprotect --all --yes`` (state only: no program
  run, no cloud call, no policy pack), then ``destroy``. The bucket, key and log
  group have ``retain_on_delete``, so destroy drops them from state and leaves
  them in AWS. Then the stack is removed.
* **Missing CLI.** The CLI is resolved before anything runs (``--pulumi-path``,
  ``ROOTWATCH_PULUMI``, ``PATH``, ``$PULUMI_HOME/bin``, ``~/.pulumi/bin``). If it
  is missing, PulumiNotFoundError (a RootwatchError) gives one line, never the
  Automation API's FileNotFoundError.
* **Locks.** ConcurrentUpdateError (another update holds the stack) is retried
  with exponential backoff. Enrolling is idempotent, so the whole step is retried.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from rootwatch.core.errors import RootwatchError

if TYPE_CHECKING:
    from pulumi.automation import PulumiCommand, Stack

PROJECT_DIR = Path(__file__).resolve().parents[2]
STACK_PREFIX = "rootwatch-"
DEFAULT_BASE_STACK = "example"
POLICY_PACK_DIR = "policypack"
ENV_PULUMI = "ROOTWATCH_PULUMI"
INSTALL_HINT = (
    "install it (curl -fsSL https://get.pulumi.com | sh, or see https://www.pulumi.com/docs/install/) "
    f"or point to it with --pulumi-path / {ENV_PULUMI} / PULUMI_HOME"
)
# Stack-file keys that carry a stack's secrets-provider material (what makes ciphertext decryptable).
PROVIDER_KEYS = ("secretsprovider", "encryptedkey", "encryptionsalt")
SECRET_MASK = "[secret]"
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_PLAIN_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_$-]+$")
_SEGMENT_RE = re.compile(r'\.([^.\[\]]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')

# `pulumi stack select` rewrites the shared workspace file under PULUMI_HOME; serialize it.
_SELECT_LOCK = threading.Lock()


class PulumiNotFoundError(RootwatchError):
    """The Pulumi CLI is not installed or not where we were told to look."""


class _Default:
    def __repr__(self) -> str:
        return "<the project's policypack/>"


# Sentinel: "use the project's policy pack" (policypack/ at the repo root).
PROJECT_POLICY_PACK: Any = _Default()


# --- accounts and stack names ----------------------------------------------------------


@dataclass(frozen=True)
class AccountSpec:
    """One account to enroll: what goes into its stack's ``accounts.list``."""

    id: str
    name: str
    ou: str | None = None
    # Overrides the base stack's severity rules for this account (a first rule matching its id).
    severity: str | None = None


def validate_account_id(value: str) -> str:
    if not isinstance(value, str) or not _ACCOUNT_RE.match(value):
        raise RootwatchError(f"{value!r} is not a 12-digit AWS account id")
    return value


def stack_name(account_id: str) -> str:
    return STACK_PREFIX + validate_account_id(account_id)


def validate_spec(spec: AccountSpec) -> AccountSpec:
    """Check id, name, OU and severity the way the stack config will (one line per problem)."""
    from pydantic import TypeAdapter, ValidationError

    from rootwatch.core.severity import Severity
    from rootwatch.program.settings import OuId

    validate_account_id(spec.id)
    if not (1 <= len(spec.name or "") <= 50):
        raise RootwatchError(f"[{spec.id}] account name must be 1 to 50 characters")
    if spec.ou:
        try:
            TypeAdapter(OuId).validate_python(spec.ou)
        except ValidationError:
            raise RootwatchError(f"[{spec.id}] {spec.ou!r} is not an OU or root id (ou-xxxx-xxxxxxxx or r-xxxx)") from None
    if spec.severity is not None and spec.severity not in {s.value for s in Severity}:
        raise RootwatchError(f"[{spec.id}] severity {spec.severity!r} is not one of {', '.join(s.value for s in Severity)}")
    return spec


# --- stack files -------------------------------------------------------------------------


def _yaml() -> Any:
    import yaml  # shipped with pulumi

    return yaml


def stack_config_dir(project_dir: Path = PROJECT_DIR) -> Path:
    """Where the CLI keeps stack files: Pulumi.yaml's stackConfigDir (default: the project dir)."""
    path = project_dir / "Pulumi.yaml"
    try:
        doc = _yaml().safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise RootwatchError(f"{path}: no Pulumi project here") from None
    sub = doc.get("stackConfigDir") if isinstance(doc, dict) else None
    return project_dir / sub if isinstance(sub, str) and sub else project_dir


def stack_file(stack: str, project_dir: Path = PROJECT_DIR) -> Path:
    return stack_config_dir(project_dir) / f"Pulumi.{stack}.yaml"


def read_stack_doc(path: Path) -> dict[str, Any] | None:
    """A stack file as data; None when it does not exist."""
    yaml = _yaml()
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        return None
    except yaml.YAMLError:
        raise RootwatchError(f"{path}: not valid YAML") from None
    doc = doc or {}
    if not isinstance(doc, dict) or not isinstance(doc.get("config", {}) or {}, dict):
        raise RootwatchError(f"{path}: 'config' must be a mapping of key: value")
    return doc


def load_base(base_stack: str, project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    path = stack_file(base_stack, project_dir)
    doc = read_stack_doc(path)
    if doc is None:
        available = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in stack_config_dir(project_dir).glob("Pulumi.*.yaml"))
        raise RootwatchError(f"{path}: no such base stack file (stacks: {', '.join(available) or 'none'})")
    return doc


def write_stack_doc(path: Path, doc: Mapping[str, Any], header: str) -> bool:
    """Write ``doc`` unless the file already holds the same data. Returns True if it wrote."""
    if read_stack_doc(path) == doc:
        return False  # idempotent: a second enroll leaves the file (and its mtime) alone
    text = "".join(f"# {line}\n" for line in header.splitlines())
    text += _yaml().safe_dump(dict(doc), sort_keys=False, default_flow_style=False, allow_unicode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


# --- config paths (pulumi config --path syntax) ------------------------------------------


Segment = str | int


def format_path(key: str, segments: Sequence[Segment]) -> str:
    """``("rootwatch:routes", ["critical", 0, "endpoint"])`` -> ``rootwatch:routes.critical[0].endpoint``."""
    out = key
    for s in segments:
        if isinstance(s, int):
            out += f"[{s}]"
        elif _PLAIN_SEGMENT_RE.match(s):
            out += f".{s}"
        else:
            out += f"[{json.dumps(s)}]"
    return out


def parse_path(path: str) -> tuple[str, list[Segment]]:
    """Inverse of format_path. The top-level key is ``namespace:name``."""
    m = re.match(r"^([A-Za-z0-9_-]+:[^.\[]+)", path or "")
    if not m:
        raise RootwatchError(f"config key {path!r} must look like namespace:key or namespace:key.path[0].leaf")
    key, rest, segments = m.group(1), path[m.end():], []
    pos = 0
    while pos < len(rest):
        seg = _SEGMENT_RE.match(rest, pos)
        if not seg:
            raise RootwatchError(f"config key {path!r}: cannot parse the path at {rest[pos:]!r}")
        name, index, quoted = seg.groups()
        segments.append(int(index) if index is not None else (json.loads(f'"{quoted}"') if quoted is not None else name))
        pos = seg.end()
    return key, segments


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def secure_leaves(config: Mapping[str, Any]) -> dict[str, str]:
    """Path-style key -> ciphertext, for every ``secure:`` value in a stack config."""
    found: dict[str, str] = {}

    def walk(key: str, segs: list[Segment], value: Any) -> None:
        if _is_secure(value):
            found[format_path(key, segs)] = value["secure"]
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(key, segs + [str(k)], v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(key, segs + [i], v)

    for k, v in config.items():
        walk(str(k), [], v)
    return found


def _get(config: Mapping[str, Any], path: str) -> Any:
    key, segs = parse_path(path)
    node: Any = config.get(key)
    for s in segs:
        try:
            node = node[s]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _set(config: dict[str, Any], path: str, value: Any) -> None:
    """Set a leaf, creating maps and list items on the way (as `pulumi config set --path` does)."""
    key, segs = parse_path(path)
    if not segs:
        config[key] = value
        return
    parent: Any = config.setdefault(key, [] if isinstance(segs[0], int) else {})
    for s, nxt in zip(segs, segs[1:] + [None]):
        last = nxt is None
        if isinstance(s, int):
            while len(parent) <= s:
                parent.append(None)
            if last:
                parent[s] = value
            elif not isinstance(parent[s], (dict, list)):
                parent[s] = [] if isinstance(nxt, int) else {}
            parent = parent[s]
        else:
            if last:
                parent[s] = value
            else:
                parent = parent.setdefault(s, [] if isinstance(nxt, int) else {})


def _drop(config: dict[str, Any], path: str) -> None:
    key, segs = parse_path(path)
    if not segs:
        config.pop(key, None)
        return
    parent = _get(config, format_path(key, segs[:-1]))
    if isinstance(parent, dict):
        parent.pop(segs[-1], None)  # type: ignore[call-overload]


# --- per-account stack config (pure) -----------------------------------------------------------


def account_config(base_config: Mapping[str, Any], spec: AccountSpec) -> dict[str, Any]:
    """The base stack's config, narrowed to one account.

    ``accounts`` becomes source "list" holding just this account. The base's
    include/exclude filters would otherwise drop an account outside its OUs.
    A given severity becomes the first severity rule, matched by account id,
    because the first rule that matches wins. A per-account stack is not a
    shard, so the shard keys are dropped.
    """
    config = copy.deepcopy(dict(base_config))
    entry: dict[str, Any] = {"id": spec.id, "name": spec.name}
    if spec.ou:
        entry["ou"] = spec.ou
    config["rootwatch:accounts"] = {"source": "list", "list": [entry]}
    for key in ("rootwatch:shard", "rootwatch:shardMaxAccounts"):
        config.pop(key, None)
    if spec.severity:
        severity = config.get("rootwatch:severity")
        severity = dict(severity) if isinstance(severity, dict) else {}
        rules = list(severity.get("rules") or [])
        severity["rules"] = [{"match": {"accounts": [spec.id]}, "level": spec.severity}, *rules]
        config["rootwatch:severity"] = severity
    return config


def provider_header(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: doc[k] for k in PROVIDER_KEYS if doc.get(k)}


def secrets_provider_of(header: Mapping[str, Any]) -> str | None:
    """The --secrets-provider for `stack init`, so the new stack agrees with the copied material."""
    if header.get("secretsprovider"):
        return str(header["secretsprovider"])
    return "passphrase" if header.get("encryptionsalt") else None


@dataclass(frozen=True)
class RenderedStack:
    doc: dict[str, Any]
    # Path-style keys the caller's secrets will set (after the file is written).
    to_set: tuple[str, ...]
    # Secure base values that can be neither copied nor found already set: must be re-set.
    missing: tuple[str, ...]
    secrets_provider: str | None


def render_stack(
    base_doc: Mapping[str, Any],
    spec: AccountSpec,
    existing_doc: Mapping[str, Any] | None = None,
    secret_keys: Iterable[str] = (),
) -> RenderedStack:
    """The account's stack file, from the base stack file.

    The base's ciphertext is copied only with the base's provider material. If
    there is no such material, the account file's own ciphertext is kept, and
    anything still missing is reported.
    """
    base_config = base_doc.get("config") or {}
    config = account_config(base_config, spec)
    header = provider_header(base_doc)
    existing = existing_doc or {}
    existing_config = existing.get("config") or {}
    given = set(secret_keys)
    missing: list[str] = []
    if not header:
        for path in secure_leaves(config):
            mine = _get(existing_config, path)
            if _is_secure(mine):
                _set(config, path, mine)  # encrypted for this very stack before: still valid
            else:
                _drop(config, path)
                if path not in given:
                    missing.append(path)
        # Whatever `stack init` wrote for this stack's own provider stays.
        header = provider_header(existing)
    doc: dict[str, Any] = {**header}
    if base_doc.get("environment"):
        doc["environment"] = copy.deepcopy(base_doc["environment"])
    doc["config"] = config
    return RenderedStack(doc, tuple(sorted(given)), tuple(missing), secrets_provider_of(header))


def engine_view(config: Mapping[str, Any], placeholders: Iterable[str] = ()) -> dict[str, Any]:
    """The config as the program will see it, secure values replaced by the settings placeholder."""
    from rootwatch.program.settings import SECRET_PLACEHOLDER

    def plain(v: Any) -> Any:
        if _is_secure(v):
            return SECRET_PLACEHOLDER
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    view = {k: plain(v) for k, v in config.items()}
    for path in placeholders:
        _set(view, path, SECRET_PLACEHOLDER)
    return view


def validate_config(config: Mapping[str, Any], placeholders: Iterable[str], stack: str, base_stack: str) -> None:
    """Fail before any CLI call if the account's config would not pass the program's validation."""
    from rootwatch.program import settings

    try:
        settings.load(engine_view(config, placeholders))
    except RootwatchError as exc:
        raise RootwatchError(f"stack {stack} (from base stack {base_stack}): {exc}") from None


# --- the Pulumi CLI ----------------------------------------------------------------------------


def find_pulumi(pulumi_path: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """Path of the pulumi binary. Raises PulumiNotFoundError (one line) if there is none."""
    env = os.environ if env is None else env
    explicit = pulumi_path or env.get(ENV_PULUMI)
    if explicit:
        p = Path(explicit).expanduser()
        for candidate in (p, p / "pulumi", p / "bin" / "pulumi") if p.is_dir() else (p,):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        source = "--pulumi-path" if pulumi_path else ENV_PULUMI
        raise PulumiNotFoundError(f"Pulumi CLI not found at {explicit} (from {source}): {INSTALL_HINT}")
    found = shutil.which("pulumi", path=env.get("PATH", ""))
    if found:
        return found
    homes = [Path(env["PULUMI_HOME"]) / "bin"] if env.get("PULUMI_HOME") else []
    if env.get("HOME"):
        homes.append(Path(env["HOME"]) / ".pulumi" / "bin")  # the installer's default, often not on PATH
    for d in homes:
        candidate = d / "pulumi"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    looked = ", ".join(["PATH", *(str(d) for d in homes)])
    raise PulumiNotFoundError(f"Pulumi CLI not found (looked in {looked}): {INSTALL_HINT}")


def set_secret_config(stack: "Stack", secrets: Mapping[str, str]) -> None:
    """Set path-style secrets with ``pulumi config set --path --secret KEY`` reading the value from stdin.

    The Automation API's ``set_all_config`` passes ``--secret KEY=VALUE`` as arguments: visible to
    every local user in ``ps`` and in process accounting. Without a value argument and with
    ``--non-interactive``, the CLI reads the value from stdin instead.
    """
    ws = stack.workspace
    env = {**({"PULUMI_HOME": ws.pulumi_home} if getattr(ws, "pulumi_home", None) else {}), **(ws.env_vars or {})}
    for key, value in secrets.items():
        args = ["config", "set", "--path", "--secret", key, "--stack", stack.name, "--non-interactive"]
        run_with_input(ws.pulumi_command, args, str(ws.work_dir), env, value)


def run_with_input(command: Any, args: list[str], cwd: str, env: Mapping[str, str], stdin: str) -> Any:
    """Run the Pulumi CLI with ``stdin`` as its input (PulumiCommand.run has no stdin)."""
    from pulumi.automation import CommandResult
    from pulumi.automation.errors import create_command_error

    runner = getattr(command, "run_with_input", None)
    if runner is not None:  # a stand-in CLI (tests)
        return runner(args, cwd, env, stdin)
    proc = subprocess.run(
        [command.command, *args], input=stdin, cwd=cwd, capture_output=True, text=True,
        env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true", **env},
    )
    result = CommandResult(proc.stdout, proc.stderr, proc.returncode)
    if proc.returncode:
        raise create_command_error(result)
    return result


def resolve_pulumi(pulumi_path: str | None = None, env: Mapping[str, str] | None = None) -> "PulumiCommand":
    """A PulumiCommand for the located binary (the Automation API would only try `pulumi` on PATH)."""
    from pulumi.automation import PulumiCommand
    from semver import VersionInfo

    binary = find_pulumi(pulumi_path, env)

    class _LocatedPulumi(PulumiCommand):
        def __init__(self) -> None:  # noqa: D107 - super().__init__ only knows `<root>/bin/pulumi`
            self.command = binary
            try:
                out = subprocess.run(
                    [binary, "version"], capture_output=True, text=True, timeout=60,
                    env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"}, check=True,
                ).stdout.strip()
            except (OSError, subprocess.SubprocessError) as exc:
                raise PulumiNotFoundError(f"Pulumi CLI at {binary} does not run ({type(exc).__name__}): {INSTALL_HINT}") from None
            try:
                self.version = VersionInfo.parse(out.removeprefix("v"))
            except ValueError:
                self.version = None

    return _LocatedPulumi()


# --- results ------------------------------------------------------------------------------------


@dataclass
class EnrollResult:
    """What happened to one account. Secret outputs are masked, so printing one is safe."""

    account_id: str
    stack: str
    operation: str  # "up" | "preview" | "offboard"
    status: str  # "ok" | "failed" | "not-enrolled"
    compliant: bool | None = None  # None: not evaluated (preview, offboard) or no compliance record
    compliance: dict[str, Any] | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)
    attempts: int = 1
    error: str | None = None
    stack_file: str | None = None
    config_written: bool = False

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    @property
    def passed(self) -> bool:
        """Succeeded, and (after an up) the account's compliance record says compliant."""
        if not self.ok:
            return False
        return self.compliant is True if self.operation == "up" else True

    def failing_checks(self) -> list[str]:
        checks = (self.compliance or {}).get("checks")
        if not isinstance(checks, dict):
            return []
        return [f"{name}: {c.get('reason', '')}".rstrip(": ") for name, c in checks.items() if isinstance(c, dict) and c.get("ok") is not True]

    def describe(self) -> str:
        if self.status == "failed":
            return f"failed: {self.error}"
        if self.status == "not-enrolled":
            return "not enrolled (no stack): nothing to do"
        changes = ", ".join(f"{n} {op}" for op, n in sorted(self.changes.items()) if op != "same" and n) or "no changes"
        if self.operation == "offboard":
            return f"offboarded ({changes}; retained resources stay in the account)"
        if self.operation == "preview":
            return f"preview: {changes}"
        if self.compliant is True:
            verdict = "compliant"
        elif self.compliant is False:
            verdict = "NOT compliant" + (f" ({'; '.join(self.failing_checks())})" if self.failing_checks() else "")
        else:
            verdict = "compliance unknown (no compliance record for this account in the stack outputs)"
        return f"{changes}; {verdict}"

    def to_json(self) -> dict[str, Any]:
        return {
            "accountId": self.account_id, "stack": self.stack, "operation": self.operation, "status": self.status,
            "passed": self.passed, "compliant": self.compliant, "compliance": self.compliance,
            "changes": self.changes, "attempts": self.attempts, "error": self.error, "outputs": self.outputs,
        }


@dataclass
class EnrollSummary:
    results: list[EnrollResult]
    duration_seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        r = self.results
        return {
            "total": len(r),
            "ok": sum(x.ok for x in r),
            "failed": sum(not x.ok for x in r),
            "compliant": sum(x.compliant is True for x in r),
            "notCompliant": sum(x.ok and x.operation == "up" and x.compliant is False for x in r),
            "unknown": sum(x.ok and x.operation == "up" and x.compliant is None for x in r),
            "retried": sum(x.attempts > 1 for x in r),
        }

    @property
    def passed(self) -> bool:
        return all(x.passed for x in self.results)

    def to_json(self) -> dict[str, Any]:
        return {"schema": "rootwatch.enroll/v1", "passed": self.passed, "counts": self.counts,
                "durationSeconds": round(self.duration_seconds, 1), "accounts": [x.to_json() for x in self.results]}


def plain_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Stack outputs as plain values, secret ones masked."""
    out = {}
    for k, v in outputs.items():
        secret = bool(getattr(v, "secret", False))
        out[k] = SECRET_MASK if secret else getattr(v, "value", v)
    return out


def compliance_record(outputs: Mapping[str, Any], account_id: str) -> dict[str, Any] | None:
    """``outputs["compliance"]["accounts"][id]``, tolerating absence, JSON text and odd shapes."""
    raw = outputs.get("compliance")
    raw = getattr(raw, "value", raw)  # OutputValue or plain
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return None
    accounts = raw.get("accounts") if isinstance(raw, dict) else None
    record = accounts.get(account_id) if isinstance(accounts, dict) else None
    return record if isinstance(record, dict) else None


def is_compliant(record: Mapping[str, Any] | None) -> bool | None:
    """True/False from the record's ``compliant`` flag (or its checks); None if it says neither."""
    if not record:
        return None
    flag = record.get("compliant")
    if isinstance(flag, bool):
        return flag
    status = record.get("status")
    if isinstance(status, str) and status.strip().lower() in ("compliant", "non_compliant", "noncompliant", "not_compliant"):
        return status.strip().lower() == "compliant"
    checks = record.get("checks")
    if isinstance(checks, dict) and checks and all(isinstance(c, dict) and isinstance(c.get("ok"), bool) for c in checks.values()):
        return all(c["ok"] for c in checks.values())
    return None


def error_line(exc: BaseException) -> str:
    """One line for a failed operation: the CLI's first error line, else the exception's text."""
    # CommandError keeps only str(CommandResult): "\n code: N\n stdout: ...\n stderr: ...".
    text = str(exc)
    stderr = re.search(r"\n stderr: (.*)\Z", text, re.S)
    stdout = re.search(r"\n stdout: (.*?)\n stderr: ", text, re.S)
    streams = [m.group(1) for m in (stderr, stdout) if m] or [text]
    lines = [ln.strip() for stream in streams for ln in stream.splitlines() if ln.strip()]
    picked = next((ln for ln in lines if re.search(r"\berror\b", ln, re.I)), lines[0] if lines else "")
    picked = picked or type(exc).__name__
    return picked if len(picked) <= 300 else picked[:297] + "..."


# --- operations ---------------------------------------------------------------------------------


Notify = Callable[[str, str], None]  # (account id, message)


@dataclass
class Runner:
    """Shared context for operations on account stacks (one per CLI run or API call)."""

    command: "PulumiCommand"
    project_dir: Path = PROJECT_DIR
    base_stack: str = DEFAULT_BASE_STACK
    policy_packs: tuple[str, ...] = ()
    policy_pack_configs: tuple[str, ...] = ()
    secrets: Mapping[str, str] = field(default_factory=dict)
    parallel: int | None = None  # the engine's --parallel for each stack
    env_vars: Mapping[str, str] = field(default_factory=dict)
    retries: int = 4
    backoff: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    notify: Notify | None = None
    on_output: Notify | None = None
    _base_doc: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def say(self, account_id: str, message: str) -> None:
        if self.notify:
            self.notify(account_id, message)

    def base_doc(self) -> dict[str, Any]:
        if self._base_doc is None:
            self._base_doc = load_base(self.base_stack, self.project_dir)
        return self._base_doc

    def open_stack(self, name: str, *, create: bool, secrets_provider: str | None = None) -> "Stack":
        from pulumi.automation import (
            LocalWorkspaceOptions,
            create_or_select_stack,
            select_stack,
        )

        opts = LocalWorkspaceOptions(pulumi_command=self.command, secrets_provider=secrets_provider,
                                     env_vars=dict(self.env_vars))
        with _SELECT_LOCK:
            if create:
                return create_or_select_stack(name, work_dir=str(self.project_dir), opts=opts)
            return select_stack(name, work_dir=str(self.project_dir), opts=opts)

    def retrying(self, account_id: str, op: Callable[[], EnrollResult]) -> EnrollResult:
        """Run ``op``; on ConcurrentUpdateError (stack locked) wait and retry, doubling the wait."""
        from pulumi.automation import ConcurrentUpdateError

        attempt = 1
        while True:
            try:
                result = op()
                result.attempts = attempt
                return result
            except ConcurrentUpdateError:
                if attempt > self.retries:
                    raise
                delay = self.backoff * 2 ** (attempt - 1) * (1 + random.uniform(0, 0.25))  # jitter: spread retries
                self.say(account_id, f"stack is locked by another update; retrying in {delay:.1f}s (attempt {attempt + 1}/{self.retries + 1})")
                self.sleep(delay)
                attempt += 1

    def _output(self, account_id: str) -> Callable[[str], None] | None:
        if not self.on_output:
            return None
        cb = self.on_output
        return lambda line: cb(account_id, line)

    # -- enroll --

    def enroll(self, spec: AccountSpec, preview: bool = False) -> EnrollResult:
        validate_spec(spec)
        name = stack_name(spec.id)
        path = stack_file(name, self.project_dir)
        base = self.base_doc()
        # Check the config (and secrets) before touching the backend.
        rendered = render_stack(base, spec, read_stack_doc(path), self.secrets)
        if rendered.missing:
            raise RootwatchError(
                f"[{spec.id}] base stack {self.base_stack} has secret value(s) that cannot be copied (its stack file "
                f"has no secrets-provider material, e.g. Pulumi Cloud's per-stack keys); set them for this stack: "
                f"{', '.join(rendered.missing)} (enroll --secret KEY=ENV_VAR, or secrets= in the API)"
            )
        validate_config(rendered.doc["config"], rendered.to_set, name, self.base_stack)
        return self.retrying(spec.id, lambda: self._enroll_once(spec, preview, name, path, rendered.secrets_provider))

    def _enroll_once(self, spec: AccountSpec, preview: bool, name: str, path: Path, provider: str | None) -> EnrollResult:
        self.say(spec.id, f"{'previewing' if preview else 'enrolling'} (stack {name}, base {self.base_stack})")
        stack = self.open_stack(name, create=True, secrets_provider=provider)
        # Re-render: `stack init` may just have written this stack's own provider material.
        rendered = render_stack(self.base_doc(), spec, read_stack_doc(path), self.secrets)
        header = f"Generated by `rootwatch enroll` from Pulumi.{self.base_stack}.yaml for account {spec.id}.\nRe-run enroll to change it; edits here are overwritten."
        written = write_stack_doc(path, rendered.doc, header)
        if written:
            self.say(spec.id, f"wrote {path.relative_to(self.project_dir) if path.is_relative_to(self.project_dir) else path}")
        if self.secrets:
            set_secret_config(stack, self.secrets)
        common: dict[str, Any] = dict(
            parallel=self.parallel, policy_packs=list(self.policy_packs) or None,
            policy_pack_configs=list(self.policy_pack_configs) or None, on_output=self._output(spec.id),
            color="never", suppress_progress=True, config_file=str(path),
            message=f"rootwatch enroll {spec.id}",
        )
        result = EnrollResult(spec.id, name, "preview" if preview else "up", "ok", stack_file=str(path), config_written=written)
        if preview:
            pre = stack.preview(**common)
            result.changes = {str(k): int(v) for k, v in (pre.change_summary or {}).items()}
            return result
        up = stack.up(**common)
        result.changes = {str(k): int(v) for k, v in ((up.summary.resource_changes if up.summary else None) or {}).items()}
        result.outputs = plain_outputs(up.outputs)
        result.compliance = compliance_record(up.outputs, spec.id)
        result.compliant = is_compliant(result.compliance)
        return result

    # -- offboard --

    def offboard(self, account_id: str) -> EnrollResult:
        from pulumi.automation import StackNotFoundError

        name = stack_name(account_id)
        path = stack_file(name, self.project_dir)
        try:
            stack = self.open_stack(name, create=False)
        except StackNotFoundError:
            return EnrollResult(account_id, name, "offboard", "not-enrolled")

        def once() -> EnrollResult:
            self.say(account_id, f"offboarding (stack {name}): unprotect, destroy (retained resources stay), remove stack")
            self._unprotect_all(stack)
            destroyed = stack.destroy(
                parallel=self.parallel, on_output=self._output(account_id), color="never", suppress_progress=True,
                config_file=str(path) if path.exists() else None, message=f"rootwatch offboard {account_id}",
            )
            stack.workspace.remove_stack(name)
            changes = (destroyed.summary.resource_changes if destroyed.summary else None) or {}
            return EnrollResult(account_id, name, "offboard", "ok", changes={str(k): int(v) for k, v in changes.items()}, stack_file=str(path))

        result = self.retrying(account_id, once)
        # `pulumi stack rm` removes the stack file too; make sure, since we wrote it.
        path.unlink(missing_ok=True)
        return result

    def _unprotect_all(self, stack: "Stack") -> None:
        # State-only: no program run, no cloud call, no policy pack. The Automation API has no wrapper.
        ws = stack.workspace
        env = {**({"PULUMI_HOME": ws.pulumi_home} if ws.pulumi_home else {}), **ws.env_vars}
        self.command.run(["state", "unprotect", "--all", "--yes", "--stack", stack.name], ws.work_dir, env)


def resolve_policy_packs(policy_packs: Any, project_dir: Path = PROJECT_DIR) -> tuple[str, ...]:
    """Absolute policy pack dirs. The default is the project's policypack/, which must then exist."""
    if policy_packs is PROJECT_POLICY_PACK:
        default = project_dir / POLICY_PACK_DIR
        if not default.is_dir():
            raise RootwatchError(f"policy pack not found at {default} (pass policy_packs=() / --no-policy-pack to run without one)")
        return (str(default),)
    packs = tuple(str(Path(p).resolve()) for p in (policy_packs or ()))
    for p in packs:
        if not Path(p).is_dir():
            raise RootwatchError(f"policy pack directory not found: {p}")
    return packs


def _runner(
    *, project_dir: Path | None, base_stack: str, policy_packs: Any, policy_pack_configs: Sequence[str],
    secrets: Mapping[str, str] | None, parallel: int | None, pulumi_command: "PulumiCommand | None",
    pulumi_path: str | None, retries: int, backoff: float, sleep: Callable[[float], None] | None,
    notify: Notify | None, on_output: Notify | None, env_vars: Mapping[str, str] | None = None,
) -> Runner:
    # The CLI first: a missing CLI is the one thing to tell the user, before any config problem.
    command = pulumi_command or resolve_pulumi(pulumi_path)
    # Resolved at call time (not as a default argument) so the project can be relocated.
    project_dir = Path(project_dir) if project_dir is not None else PROJECT_DIR
    for key in secrets or {}:
        parse_path(key)
    return Runner(
        command=command, project_dir=Path(project_dir), base_stack=base_stack,
        policy_packs=resolve_policy_packs(policy_packs, Path(project_dir)),
        policy_pack_configs=tuple(str(Path(c).resolve()) for c in policy_pack_configs),
        secrets=dict(secrets or {}), parallel=parallel, env_vars=dict(env_vars or {}), retries=retries,
        backoff=backoff, sleep=sleep or time.sleep, notify=notify, on_output=on_output,
    )


def enroll_account(
    account_id: str,
    *,
    name: str,
    ou: str | None = None,
    severity: str | None = None,
    base_stack: str = DEFAULT_BASE_STACK,
    preview: bool = False,
    policy_packs: Any = PROJECT_POLICY_PACK,
    policy_pack_configs: Sequence[str] = (),
    secrets: Mapping[str, str] | None = None,
    parallel: int | None = None,
    on_output: Callable[[str], None] | None = None,
    project_dir: Path | None = None,
    pulumi_command: "PulumiCommand | None" = None,
    pulumi_path: str | None = None,
    retries: int = 4,
    backoff: float = 2.0,
    sleep: Callable[[float], None] | None = None,
    notify: Notify | None = None,
) -> EnrollResult:
    """Create or update stack rootwatch-<id> for one account and run up (or preview) with the policy pack.

    Idempotent. Input problems (bad id, config, missing secrets, missing CLI)
    raise RootwatchError. A failed preview or up is returned as
    ``status="failed"``, with one line in ``error``. Check ``result.passed``.
    """
    validate_account_id(account_id)
    runner = _runner(
        project_dir=project_dir, base_stack=base_stack, policy_packs=policy_packs,
        policy_pack_configs=policy_pack_configs, secrets=secrets, parallel=parallel, pulumi_command=pulumi_command,
        pulumi_path=pulumi_path, retries=retries, backoff=backoff, sleep=sleep, notify=notify,
        on_output=(lambda _a, line: on_output(line)) if on_output else None,
    )
    return _guarded(account_id, stack_name(account_id), "preview" if preview else "up",
                    lambda: runner.enroll(AccountSpec(account_id, name, ou, severity), preview))


def offboard_account(
    account_id: str,
    *,
    parallel: int | None = None,
    on_output: Callable[[str], None] | None = None,
    project_dir: Path | None = None,
    pulumi_command: "PulumiCommand | None" = None,
    pulumi_path: str | None = None,
    retries: int = 4,
    backoff: float = 2.0,
    sleep: Callable[[float], None] | None = None,
    notify: Notify | None = None,
) -> EnrollResult:
    """Unprotect, destroy (retained bucket/key/log group stay in AWS), remove stack rootwatch-<id>."""
    validate_account_id(account_id)
    runner = _runner(
        project_dir=project_dir, base_stack=DEFAULT_BASE_STACK, policy_packs=(), policy_pack_configs=(), secrets=None,
        parallel=parallel, pulumi_command=pulumi_command, pulumi_path=pulumi_path, retries=retries, backoff=backoff,
        sleep=sleep, notify=notify, on_output=(lambda _a, line: on_output(line)) if on_output else None,
    )
    return _guarded(account_id, stack_name(account_id), "offboard", lambda: runner.offboard(account_id))


def _guarded(account_id: str, stack: str, operation: str, op: Callable[[], EnrollResult]) -> EnrollResult:
    """Operation failures become a failed result; input errors (RootwatchError) still raise."""
    from pulumi.automation import CommandError

    try:
        return op()
    except RootwatchError:
        raise
    except CommandError as exc:
        return EnrollResult(account_id, stack, operation, "failed", error=error_line(exc))
    except FileNotFoundError as exc:
        # The Automation API's way of saying the CLI vanished (e.g. uninstalled mid-run).
        if Path(str(exc.filename or "")).name != "pulumi":
            raise
        raise PulumiNotFoundError(f"Pulumi CLI not found ({exc.filename}): {INSTALL_HINT}") from None


def enroll_many(
    accounts: Iterable[AccountSpec],
    *,
    parallel: int = 4,
    engine_parallel: int | None = None,
    base_stack: str = DEFAULT_BASE_STACK,
    preview: bool = False,
    policy_packs: Any = PROJECT_POLICY_PACK,
    policy_pack_configs: Sequence[str] = (),
    secrets: Mapping[str, str] | None = None,
    project_dir: Path | None = None,
    pulumi_command: "PulumiCommand | None" = None,
    pulumi_path: str | None = None,
    retries: int = 4,
    backoff: float = 2.0,
    sleep: Callable[[float], None] | None = None,
    notify: Notify | None = None,
    on_output: Notify | None = None,
    on_result: Callable[[EnrollResult], None] | None = None,
) -> EnrollSummary:
    """Enroll accounts with at most ``parallel`` stacks running at once, one stack per account.

    A failure in one account (bad config, failed up, lock that never clears,
    or a bug) becomes that account's failed result, and the others carry on.
    ``engine_parallel`` is each stack's ``pulumi up --parallel``. Keep
    ``parallel * engine_parallel`` within the AWS API rate limits.
    """
    specs = list(accounts)
    bad = [s.id for s in specs if not isinstance(s.id, str) or not _ACCOUNT_RE.match(s.id)]
    if bad:
        raise RootwatchError(f"not 12-digit AWS account ids: {', '.join(map(repr, bad[:5]))}{' ...' if len(bad) > 5 else ''}")
    ids = [s.id for s in specs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise RootwatchError(f"accounts listed twice: {', '.join(dupes)}")
    if parallel < 1:
        raise RootwatchError(f"parallel must be at least 1 (got {parallel})")
    runner = _runner(
        project_dir=project_dir, base_stack=base_stack, policy_packs=policy_packs,
        policy_pack_configs=policy_pack_configs, secrets=secrets, parallel=engine_parallel,
        pulumi_command=pulumi_command, pulumi_path=pulumi_path, retries=retries, backoff=backoff, sleep=sleep,
        notify=notify, on_output=on_output,
    )
    runner.base_doc()  # a missing base stack is one input error, not N failures
    lock = threading.Lock()

    def one(spec: AccountSpec) -> EnrollResult:
        try:
            result = _guarded(spec.id, STACK_PREFIX + spec.id, "preview" if preview else "up",
                              lambda: runner.enroll(spec, preview))
        except PulumiNotFoundError:
            raise
        except Exception as exc:  # isolation: this account fails, the others go on
            result = EnrollResult(spec.id, STACK_PREFIX + spec.id, "preview" if preview else "up", "failed",
                                  error=str(exc) if isinstance(exc, RootwatchError) else f"{type(exc).__name__}: {exc}")
        runner.say(spec.id, result.describe())
        if on_result:
            with lock:
                on_result(result)
        return result

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="rootwatch-enroll") as pool:
        results = list(pool.map(one, specs))
    return EnrollSummary(results, time.monotonic() - start)
