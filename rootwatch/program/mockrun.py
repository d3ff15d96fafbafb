"""Run the real Pulumi program in-process under the mock runtime.

Used by `rootwatch plan` and the tests: no Pulumi CLI, no plugins, no cloud.
Stack config is loaded from ``stacks/Pulumi.<stack>.yaml`` the way the engine
passes it to a program (strings; structured values as JSON), and organization
look-ups are answered from an org snapshot.
"""

from __future__ import annotations

import gc
import json
import logging
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pulumi
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import rpc

from rootwatch.core import snapshot as snap
from rootwatch.core.errors import RootwatchError
from rootwatch.program.settings import SECRET_PLACEHOLDER

PROJECT_DIR = Path(__file__).resolve().parents[2]
PROJECT = "rootwatch"
MONITOR_TYPE = "rootwatch:index:RootActivityMonitor"
HUB_TYPE = "rootwatch:index:AlertHub"  # hub.COMPONENT_TYPE (not imported: the hub imports the program)
HUB_GROUP = "hub"  # by_account's key for the alert hub's own resources
ARCHIVE_TYPE = "rootwatch:index:LogArchive"  # archive.COMPONENT_TYPE (not imported, as above)
ARCHIVE_GROUP = "archive"  # by_account's key for the log archive's resources
DEFAULT_SNAPSHOT = PROJECT_DIR / "config" / "example-org.json"


@dataclass
class Registered:
    """One resource registration as the engine would see it (inputs in camelCase)."""

    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    parent: str
    provider: str
    custom: bool
    protect: bool
    retain_on_delete: bool
    dependencies: list[str]
    aliases: list[Any]
    # Top-level input keys whose value is marked secret (the engine encrypts them in state).
    secret_inputs: frozenset[str] = frozenset()


@dataclass
class StackConfig:
    values: dict[str, str]
    secret_keys: list[str]
    path: Path


@dataclass
class Run:
    stack: str
    resources: list[Registered]
    outputs: dict[str, Any]
    config: StackConfig
    invokes: list[str] = field(default_factory=list)
    error: BaseException | None = None
    # Warnings the program logged (pulumi.log.warn), e.g. expired break-glass windows.
    warnings: list[str] = field(default_factory=list)

    def by_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.type == typ]

    def by_account(self) -> dict[str, list[Registered]]:
        """Cloud resources grouped by the account whose monitor (or provider) owns them.

        The alert hub's resources are grouped apart, under ``HUB_GROUP``, the log archive's under
        ``ARCHIVE_GROUP``; organization-level resources (prevention, in the management account)
        under ``""``."""
        by_urn = {r.urn: r for r in self.resources}
        provider_account = {
            r.urn: r.name.removeprefix("account-") for r in self.resources if r.type == "pulumi:providers:aws"
        }
        groups: dict[str, list[Registered]] = {}
        for r in self.resources:
            if not r.custom:
                continue
            acct = provider_account.get(r.urn)
            node: Registered | None = r
            while acct is None and node is not None:
                if node.type == MONITOR_TYPE:
                    acct = node.name.removeprefix("rootwatch-")
                elif node.type == HUB_TYPE:
                    acct = HUB_GROUP
                elif node.type == ARCHIVE_TYPE:
                    acct = ARCHIVE_GROUP
                node = by_urn.get(node.parent)
            groups.setdefault(acct or "", []).append(r)
        return groups


# --- stack config ------------------------------------------------------------------


def _engine_value(value: Any) -> tuple[Any, bool]:
    """Replace `secure:` leaves (undecryptable offline) with a placeholder; report if any."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET_PLACEHOLDER, True
        found = False
        out = {}
        for k, v in value.items():
            out[k], s = _engine_value(v)
            found |= s
        return out, found
    if isinstance(value, list):
        items = [_engine_value(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def _engine_string(value: Any) -> str:
    # The engine hands every config value to the program as a string; objects as JSON.
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def stack_config_path(stack: str, project_dir: Path = PROJECT_DIR) -> Path:
    """A stack name (stacks/Pulumi.<name>.yaml) or a path to a stack file."""
    if stack.endswith((".yaml", ".yml")):
        return Path(stack)
    return project_dir / "stacks" / f"Pulumi.{stack}.yaml"


def stack_name(stack: str) -> str:
    if stack.endswith((".yaml", ".yml")):
        return Path(stack).stem.removeprefix("Pulumi.")
    return stack


def _engine_yaml_loader() -> type:
    """A safe YAML loader that reads stack files as the Pulumi CLI does.

    The CLI (Go yaml.v3) keeps an unquoted timestamp (``start: 2026-11-24T10:00:00Z``)
    as the text written; PyYAML would make it a datetime, which is not JSON.
    Numbers and booleans stay typed, as `pulumi config set --path` writes them.
    """
    import yaml  # shipped with pulumi

    class EngineLoader(yaml.SafeLoader):
        pass

    EngineLoader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return EngineLoader


def load_stack_config(stack: str, project_dir: Path = PROJECT_DIR) -> StackConfig:
    import yaml  # shipped with pulumi

    path = stack_config_path(stack, project_dir)
    try:
        doc = yaml.load(path.read_text(), Loader=_engine_yaml_loader()) or {}  # noqa: S506 - a SafeLoader
    except FileNotFoundError:
        available = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (project_dir / "stacks").glob("Pulumi.*.yaml"))
        raise RootwatchError(f"{path}: no such stack file (stacks: {', '.join(available) or 'none'})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise RootwatchError(f"{path}: not valid YAML{where}") from None
    raw = doc.get("config", {}) if isinstance(doc, dict) else None
    if not isinstance(raw, dict):
        raise RootwatchError(f"{path}: 'config' must be a mapping of key: value")
    values: dict[str, str] = {}
    secret: list[str] = []
    for key, value in raw.items():
        if ":" not in str(key):
            raise RootwatchError(f"{path}: config key {key!r} needs a namespace (e.g. rootwatch:{key})")
        plain, is_secret = _engine_value(value)
        values[str(key)] = _engine_string(plain)
        if is_secret:
            secret.append(str(key))
    return StackConfig(values, secret, path)


# --- mocks -------------------------------------------------------------------------

_ARN_SERVICE = {
    "aws:cloudtrail/trail:Trail": ("cloudtrail", "trail/"),
    "aws:cloudwatch/logGroup:LogGroup": ("logs", "log-group:"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("cloudwatch", "alarm:"),
    "aws:sns/topic:Topic": ("sns", ""),
    "aws:kms/key:Key": ("kms", "key/"),
    "aws:iam/role:Role": ("iam", "role/"),
    "aws:cloudwatch/eventRule:EventRule": ("events", "rule/"),
    "aws:sqs/queue:Queue": ("sqs", ""),
    "aws:lambda/function:Function": ("lambda", "function:"),
    "aws:s3/bucket:Bucket": ("s3", ""),
    "aws:cloudwatch/eventBus:EventBus": ("events", "event-bus/"),
    "aws:dynamodb/table:Table": ("dynamodb", "table/"),
}


class SnapshotMocks(pulumi.runtime.Mocks):
    """Answers organization look-ups from a snapshot; gives resources plausible ids and ARNs."""

    def __init__(
        self,
        org: snap.Snapshot,
        home_region: str = "us-east-1",
        caller_account: str | None = None,
        delegated_admins: tuple[str, ...] = (),
        log_groups: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.org = org
        self.region = home_region
        # The deploying credentials' account (default: the management account).
        self.caller_account = caller_account or org.management_account_id
        self.delegated_admins = delegated_admins
        # account id -> log group names that exist there (trail.mode existing); None: any name exists.
        self.log_groups = log_groups
        self.invokes: list[str] = []
        # Provider URN -> account id, filled in by RecordingMonitor as providers register.
        self.account_of_provider: dict[str, str] = {}
        self._by_id: dict[str, snap.SnapshotAccount] | None = None

    def _account(self, args: pulumi.runtime.MockResourceArgs) -> str:
        urn = (args.provider or "").rsplit("::", 1)[0]
        return self.account_of_provider.get(urn, self.org.management_account_id)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        if args.typ == "pulumi:providers:aws":
            return f"{args.name}-id", inputs
        name = inputs.get("name") or inputs.get("bucket") or args.name
        rid = str(name)
        if args.typ in _ARN_SERVICE:
            service, kind = _ARN_SERVICE[args.typ]
            region = "" if service in ("iam", "s3") else inputs.get("region") or self.region
            acct = "" if service == "s3" else self._account(args)
            if args.typ == "aws:kms/key:Key":
                rid = f"mock-key-{args.name}"
                inputs["keyId"] = rid
            inputs.setdefault("arn", f"arn:aws:{service}:{region}:{acct}:{kind}{rid if service != 'kms' else rid}")
        inputs.setdefault("name", name)
        return rid, inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        self.invokes.append(args.token)
        # The account whose provider makes the call (the management account's credentials by default).
        caller = self.account_of_provider.get((args.provider or "").rsplit("::", 1)[0], self.org.management_account_id)
        answer: Callable[[Mapping[str, Any]], dict[str, Any]] | None = self._calls.get(args.token)
        if answer is None:
            return {}
        return answer(self, {**args.args, "_account": caller})

    def _log_groups(self, a: Mapping[str, Any]) -> dict[str, Any]:
        prefix = a.get("logGroupNamePrefix") or ""
        acct = a["_account"]
        names = [prefix] if self.log_groups is None else [n for n in self.log_groups.get(acct, ()) if n.startswith(prefix)]
        region = a.get("region") or self.region
        return {"id": region, "region": region, "logGroupNamePrefix": prefix, "logGroupNames": names,
                "arns": [f"arn:aws:logs:{region}:{acct}:log-group:{n}" for n in names]}

    def _caller_identity(self, _: Mapping[str, Any]) -> dict[str, Any]:
        acct = self.caller_account
        return {"id": acct, "accountId": acct, "arn": f"arn:aws:sts::{acct}:assumed-role/deployer/rootwatch",
                "userId": "AROAEXAMPLE:rootwatch"}

    def _delegated(self, _: Mapping[str, Any]) -> dict[str, Any]:
        if self.caller_account not in (self.org.management_account_id, *self.delegated_admins):
            # Real AWS: AccessDenied for a plain member account.
            raise Exception("AccessDeniedException: not the management account or a delegated administrator")
        return {"id": "delegated", "delegatedAdministrators": [
            {"id": a, "arn": f"arn:aws:organizations::{self.org.management_account_id}:account/o-snapshot/{a}",
             "name": a, "email": "", "status": "ACTIVE", "joinedMethod": "CREATED",
             "joinedTimestamp": "2024-01-01T00:00:00Z", "delegationEnabledDate": "2024-01-01T00:00:00Z"}
            for a in self.delegated_admins]}

    # Organization invokes, shaped like the provider's results (camelCase keys).
    def _get_organization(self, _: Mapping[str, Any]) -> dict[str, Any]:
        o = self.org
        if self.caller_account not in (o.management_account_id, *self.delegated_admins):
            # What the data source returns to any other account: no accounts, no roots, no error.
            return {"id": "o-snapshot", "arn": f"arn:aws:organizations::{o.management_account_id}:organization/o-snapshot",
                    "featureSet": "ALL", "masterAccountId": o.management_account_id, "accounts": [],
                    "nonMasterAccounts": [], "roots": []}
        return {
            "id": "o-snapshot",
            "arn": f"arn:aws:organizations::{o.management_account_id}:organization/o-snapshot",
            "featureSet": "ALL",
            "masterAccountId": o.management_account_id,
            "accounts": [_account_result(a) for a in o.accounts],
            "nonMasterAccounts": [_account_result(a) for a in o.accounts if a.id != o.management_account_id],
            "roots": [{"id": o.root_id, "name": "Root", "arn": f"arn:aws:organizations::{o.management_account_id}:root/o-snapshot/{o.root_id}", "policyTypes": []}],
        }

    def _child_ous(self, a: Mapping[str, Any]) -> dict[str, Any]:
        parent = a["parentId"]
        return {"id": parent, "parentId": parent, "children": [
            {"id": ou, "name": self.org.ou_names.get(ou, ou), "arn": f"arn:aws:organizations::{self.org.management_account_id}:ou/o-snapshot/{ou}"}
            for ou in self.org.children_ous(parent)
        ]}

    def _child_accounts(self, a: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": a["parentId"], "parentId": a["parentId"], "accounts": [_account_result(x) for x in self.org.child_accounts(a["parentId"])]}

    def _descendant_accounts(self, a: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": a["parentId"], "parentId": a["parentId"], "accounts": [_account_result(x) for x in self.org.descendant_accounts(a["parentId"])]}

    def _tags(self, a: Mapping[str, Any]) -> dict[str, Any]:
        if self._by_id is None:  # one look-up per account: index once, not a scan each time
            self._by_id = {x.id: x for x in self.org.accounts}
        found = self._by_id.get(a["resourceId"])
        return {"id": a["resourceId"], "resourceId": a["resourceId"], "tags": dict(found.tags) if found else {}}

    _calls: dict[str, Callable[["SnapshotMocks", Mapping[str, Any]], dict[str, Any]]] = {
        "aws:organizations/getOrganization:getOrganization": _get_organization,
        "aws:organizations/getOrganizationalUnits:getOrganizationalUnits": _child_ous,
        "aws:organizations/getOrganizationalUnitChildAccounts:getOrganizationalUnitChildAccounts": _child_accounts,
        "aws:organizations/getOrganizationalUnitDescendantAccounts:getOrganizationalUnitDescendantAccounts": _descendant_accounts,
        "aws:organizations/getResourceTags:getResourceTags": _tags,
        "aws:index/getCallerIdentity:getCallerIdentity": _caller_identity,
        "aws:cloudwatch/getLogGroups:getLogGroups": _log_groups,
        "aws:organizations/getDelegatedAdministrators:getDelegatedAdministrators": _delegated,
    }


def _account_result(a: snap.SnapshotAccount) -> dict[str, Any]:
    return {
        "id": a.id, "name": a.name, "email": a.email, "state": a.state,
        "status": "ACTIVE" if a.state == "ACTIVE" else "SUSPENDED",
        "arn": f"arn:aws:organizations::{a.id}:account/o-snapshot/{a.id}",
        "joinedMethod": "CREATED", "joinedTimestamp": "2024-01-01T00:00:00Z",
    }


class RecordingMonitor(pmocks.MockMonitor):
    """Records each registration with the resource options mocks do not pass on."""

    def __init__(self, mocks: SnapshotMocks, on_register: Callable[[str], None] | None = None) -> None:
        super().__init__(mocks)
        self.snapshot_mocks = mocks
        self.registered: list[Registered] = []
        # Called with each registered type (progress for large organizations).
        self.on_register = on_register

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = rpc.deserialize_properties(request.object)
            if request.type == "pulumi:providers:aws" and inputs.get("allowedAccountIds"):
                allowed = inputs["allowedAccountIds"]
                ids = json.loads(allowed) if isinstance(allowed, str) else allowed
                self.snapshot_mocks.account_of_provider[response.urn] = ids[0]
            self.registered.append(
                Registered(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    inputs=inputs,
                    parent=request.parent,
                    provider=request.provider,
                    custom=bool(request.custom),
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    dependencies=list(request.dependencies),
                    aliases=list(request.aliases) + list(request.aliasURNs),
                    secret_inputs=_secret_keys(request.object),
                )
            )
            if self.on_register is not None:
                self.on_register(request.type)
        return response


class _CollectingLogger(logging.Logger):
    """Keeps the program's warnings for the caller instead of printing them."""

    def __init__(self) -> None:
        super().__init__("rootwatch.program.mockrun", logging.WARNING)
        self.warnings: list[str] = []

    def handle(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.warnings.append(record.getMessage())


def _is_secret(value: Any) -> bool:
    if value.HasField("struct_value"):
        fields = value.struct_value.fields
        sig = fields.get(rpc._special_sig_key)  # noqa: SLF001 - the wire format's marker
        return sig is not None and sig.string_value == rpc._special_secret_sig  # noqa: SLF001
    return False


def _secret_keys(obj: Any) -> frozenset[str]:
    return frozenset(k for k, v in obj.fields.items() if _is_secret(v))


def run(
    stack: str = "example",
    org: snap.Snapshot | None = None,
    config: StackConfig | None = None,
    project_dir: Path = PROJECT_DIR,
    program: Path | None = None,
    extra_config: Mapping[str, str] | None = None,
    check: bool = True,
    caller_account: str | None = None,
    delegated_admins: tuple[str, ...] = (),
    log_groups: Mapping[str, tuple[str, ...]] | None = None,
    on_register: Callable[[str], None] | None = None,
) -> Run:
    """Run ``__main__.py`` for ``stack`` under mocks and return what it registered.

    Exceptions from the program (e.g. pulumi.RunError on bad config) propagate,
    unless ``check`` is False: then they are returned in ``Run.error``.
    ``on_register`` is called with the type of every resource as it registers.
    """
    config = config or load_stack_config(stack, project_dir)
    stack = stack_name(stack)
    values = {**config.values, **(extra_config or {})}
    org = org or snap.load(DEFAULT_SNAPSHOT)
    home = values.get("rootwatch:homeRegion", "us-east-1")
    mocks = SnapshotMocks(org, home, caller_account, delegated_admins, log_groups)
    monitor = RecordingMonitor(mocks, on_register)
    logger = _CollectingLogger()
    # Exports and the root resource are process-global: start clean every run.
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=True, monitor=monitor, logger=logger)
    pulumi.runtime.set_all_config(values, config.secret_keys)
    program_path = program or project_dir / "__main__.py"
    error: list[BaseException] = []
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def _run() -> Any:
        try:
            runpy.run_path(str(program_path), run_name="__main__")
        except BaseException as exc:  # surfaced after the runtime settles
            error.append(exc)
            return None
        exported = dict(getattr(pulumi.runtime.get_root_resource(), "outputs", {}) or {})
        # Deep-resolves nested Outputs once every registration has answered.
        return pulumi.Output.from_input(exported).apply(outputs.update)

    # Every resource stays alive until the run ends, so each generational GC pass rescans
    # a heap that only grows: quadratic in the organization's size (measured: half the
    # wall time at 300 accounts). The run makes little cyclic garbage; collect it after.
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        _run()
    finally:
        if gc_enabled:
            gc.enable()
    if error and check:
        raise error[0]
    return Run(stack, monitor.registered, outputs, config, mocks.invokes, error[0] if error else None, logger.warnings)
