"""Per-account stacks (rootwatch.vending.automation): config mapping in plain Python, and
orchestration against a stand-in Pulumi CLI.

FakePulumi is a PulumiCommand subclass passed through
LocalWorkspaceOptions(pulumi_command=...). The real Automation API code (Stack,
LocalWorkspace, error classification, output and event parsing) runs unchanged.
Only the `pulumi` process is replaced. It records the exact argv of each call
and emulates a backend: stacks, outputs with a compliance record, a lock
(ConcurrentUpdateError) for a given number of attempts, and failures.
"""

from __future__ import annotations

import copy
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable

import grpc
import pytest
import yaml
from pulumi.automation import CommandResult, LocalWorkspace, PulumiCommand
from pulumi.automation.errors import create_command_error
from pulumi.runtime.proto import events_pb2, events_pb2_grpc
from semver import VersionInfo

from rootwatch.core.errors import RootwatchError
from rootwatch.vending import automation
from rootwatch.vending.automation import AccountSpec

REPO = Path(__file__).resolve().parent.parent
ACCT = "123456789012"
STACK = f"rootwatch-{ACCT}"
SALT = "v1:Zm9vYmFyYmF6:v1:cXV4cXV4cXV4cXV4:c2FsdHktdmFsaWRhdG9y"
PD_KEY = "rootwatch:routes.critical[0].endpoint"
PD_CIPHERTEXT = "v1:cGFnZXJkdXR5LWtleS1wbGFjZWhvbGRlcg=="


# --- the stand-in CLI ----------------------------------------------------------------------


def flag(args: list[str], name: str) -> str | None:
    """The value after ``name`` in an argv (None if absent)."""
    return args[args.index(name) + 1] if name in args else None


def flags(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == name]


class FakePulumi(PulumiCommand):
    """Stand-in `pulumi` binary: records argv and answers like a small backend."""

    def __init__(
        self,
        *,
        locked: dict[str, int] | None = None,
        fail: set[str] | None = None,
        crash: set[str] | None = None,
        noncompliant: set[str] | None = None,
        stacks: set[str] | None = None,
        up_seconds: float = 0.0,
    ) -> None:
        # No super().__init__: it would run `pulumi version`.
        self.command = "pulumi"
        self.version = VersionInfo.parse("3.272.0")
        self.calls: list[list[str]] = []
        self.stdin: list[tuple[list[str], str]] = []
        self.cwds: set[str] = set()
        self.stacks = set(stacks or ())
        self.locked = dict(locked or {})  # stack -> number of attempts answered "locked"
        self.fail = set(fail or ())  # stacks whose up fails in the engine
        self.crash = set(crash or ())  # stacks whose up raises something unexpected
        self.noncompliant = set(noncompliant or ())
        self.up_seconds = up_seconds
        self.outputs: dict[str, dict[str, Any]] = {}
        self.history: dict[str, dict[str, int]] = {}
        self.guard = threading.Lock()
        self.active = 0
        self.max_active = 0

    def run_with_input(self, args: list[str], cwd: str, additional_env: Any, stdin: str) -> CommandResult:
        # What rootwatch feeds the CLI on stdin (secret values), kept apart from argv.
        with self.guard:
            self.stdin.append((list(args), stdin))
        return self.run(args, cwd, additional_env)

    def calls_for(self, stack: str, verb: str | None = None) -> list[list[str]]:
        return [c for c in self.calls if _stack_of(c) == stack and (verb is None or c[0] == verb)]

    def run(self, args: list[str], cwd: str, additional_env: Any, on_output: Callable[[str], None] | None = None,
            on_error: Callable[[str], None] | None = None) -> CommandResult:
        args = list(args)
        with self.guard:
            self.calls.append(args)
            self.cwds.add(cwd)
        stack = _stack_of(args)
        verb = tuple(args[:2])
        if verb == ("stack", "select"):
            if stack not in self.stacks:
                raise create_command_error(CommandResult("", f"error: no stack named '{stack}' found", 255))
        elif verb == ("stack", "init"):
            self.stacks.add(stack)
        elif verb == ("stack", "rm"):
            self.stacks.discard(stack)
        elif verb == ("stack", "output"):
            outs = self.outputs.get(stack, {})
            if "--show-secrets" not in args:
                outs = {k: ("[secret]" if k == "webhookToken" else v) for k, v in outs.items()}
            return CommandResult(json.dumps(outs), "", 0)
        elif verb == ("stack", "history"):
            entry = {"kind": "update", "startTime": "2026-01-01T00:00:00.000Z", "endTime": "2026-01-01T00:00:05.000Z",
                     "message": "", "environment": {}, "config": {}, "result": "succeeded",
                     "resourceChanges": self.history.get(stack, {})}
            return CommandResult(json.dumps([entry]), "", 0)
        elif args[0] in ("up", "preview", "destroy"):
            return self._operation(args[0], stack, args, on_output)
        return CommandResult("", "", 0)

    def _operation(self, verb: str, stack: str, args: list[str], on_output: Callable[[str], None] | None) -> CommandResult:
        with self.guard:
            if self.locked.get(stack, 0) > 0:
                self.locked[stack] -= 1
                raise create_command_error(CommandResult("", "error: [409] Conflict: Another update is currently in progress.", 255))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.up_seconds)  # long enough for the pool to overlap stacks
            if stack in self.crash:
                raise RuntimeError("stand-in crashed")
            if stack in self.fail:
                raise create_command_error(CommandResult(
                    "Updating (rootwatch-x):\n    pulumi:pulumi:Stack rootwatch running",
                    "error: update failed: AccessDenied: not authorized to perform sts:AssumeRole", 255))
            if on_output:
                on_output(f"{verb} {stack}: done")
            account = stack.removeprefix("rootwatch-")
            if verb == "up":
                compliant = stack not in self.noncompliant
                checks = {"trail": {"ok": True, "status": "pass", "reason": "multi-region trail"},
                          "alarm": {"ok": compliant, "status": "pass" if compliant else "fail",
                                    "reason": "alarm ok" if compliant else "no SNS action"}}
                self.outputs[stack] = {
                    "accounts": {account: {"alarmArn": f"arn:aws:cloudwatch:us-east-1:{account}:alarm:rootwatch-root-activity"}},
                    "compliance": {"schema": "rootwatch.compliance/v1", "accounts": {account: {
                        "compliant": compliant, "status": "compliant" if compliant else "noncompliant", "checks": checks}}},
                    "webhookToken": "s3cr3t-token",
                }
                self.history[stack] = {"create": 12} if stack not in self.history else {"same": 12}
            elif verb == "destroy":
                self.history[stack] = {"delete": 9}
            elif verb == "preview":
                _send_summary(flag(args, "--event-log") or "", {"create": 12})
            return CommandResult(f"{verb} ok", "", 0)
        finally:
            with self.guard:
                self.active -= 1


def _stack_of(args: list[str]) -> str | None:
    if "--stack" in args:
        return flag(args, "--stack")
    if args[:2] == ["stack", "init"]:
        return args[2]
    if args[:2] == ["stack", "rm"]:
        return args[-1]
    return None


def _send_summary(event_log: str, changes: dict[str, int]) -> None:
    """What the engine does for preview: stream a summary event to the Automation API's gRPC server."""
    events = [{"sequence": 1, "timestamp": 0, "summaryEvent": {"maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": changes}},
              {"sequence": 2, "timestamp": 0, "cancelEvent": {}}]
    with grpc.insecure_channel(event_log.removeprefix("tcp://")) as channel:
        events_pb2_grpc.EventsStub(channel).StreamEvents(iter([events_pb2.EventRequest(event=json.dumps(e)) for e in events]))


# --- a throwaway project (the real Pulumi.yaml and example stack) ---------------------------------------


def make_project(root: Path) -> Path:
    """A copy of the project's settings: Pulumi.yaml (stackConfigDir: stacks), example stacks, policypack/.

    ``shared``: the example with passphrase material, so its ciphertext can be copied.
    ``example``: as shipped, with a ``secure:`` value but no provider material (like Pulumi Cloud's keys).
    """
    shutil.copy(REPO / "Pulumi.yaml", root / "Pulumi.yaml")
    (root / "stacks").mkdir()
    example = yaml.safe_load((REPO / "stacks" / "Pulumi.example.yaml").read_text())
    # The shipped example holds a plain placeholder; a real base stack holds the endpoint as ciphertext.
    example["config"]["rootwatch:routes"]["critical"][0]["endpoint"] = {"secure": PD_CIPHERTEXT}
    (root / "stacks" / "Pulumi.example.yaml").write_text(yaml.safe_dump(example, sort_keys=False))
    shared = {"encryptionsalt": SALT, **copy.deepcopy(example)}
    (root / "stacks" / "Pulumi.shared.yaml").write_text(yaml.safe_dump(shared, sort_keys=False))
    shutil.copy(REPO / "stacks" / "Pulumi.explicit.yaml", root / "stacks" / "Pulumi.explicit.yaml")
    (root / "policypack").mkdir()
    (root / "policypack" / "PulumiPolicy.yaml").write_text("runtime: python\nversion: 0.1.0\n")
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def enroll(project: Path, fake: FakePulumi, account: str = ACCT, **kw: Any) -> automation.EnrollResult:
    kw.setdefault("name", "payments-prod")
    kw.setdefault("base_stack", "shared")
    return automation.enroll_account(account, project_dir=project, pulumi_command=fake, sleep=lambda s: None, **kw)


def read(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


# --- naming and config mapping (plain Python) -------------------------------------------------------------


def test_stack_names_are_rootwatch_dash_account_id_and_ids_are_validated() -> None:
    assert automation.stack_name("012345678901") == "rootwatch-012345678901"
    for bad in ("12345678901", "1234567890123", "12345678901a", "", "123456789012 "):
        with pytest.raises(RootwatchError, match="12-digit"):
            automation.stack_name(bad)


def test_account_config_narrows_the_base_to_one_account_and_puts_its_severity_first() -> None:
    base = read(REPO / "stacks" / "Pulumi.example.yaml")["config"]
    base["rootwatch:shard"] = "shard-1"
    before = copy.deepcopy(base)
    config = automation.account_config(base, AccountSpec(ACCT, "payments-prod", "ou-ex01-prod0001", "low"))

    assert config["rootwatch:accounts"] == {"source": "list", "list": [{"id": ACCT, "name": "payments-prod", "ou": "ou-ex01-prod0001"}]}
    rules = config["rootwatch:severity"]["rules"]
    assert rules[0] == {"match": {"accounts": [ACCT]}, "level": "low"}  # first match wins
    assert rules[1:] == base["rootwatch:severity"]["rules"]
    assert "rootwatch:shard" not in config  # an account stack is not a shard
    assert config["rootwatch:routes"] == base["rootwatch:routes"]  # the rest is the base's
    assert base == before  # the base is not modified

    plain = automation.account_config(base, AccountSpec(ACCT, "x"))
    assert plain["rootwatch:accounts"]["list"] == [{"id": ACCT, "name": "x"}]
    assert plain["rootwatch:severity"] == base["rootwatch:severity"]


def test_rendering_copies_ciphertext_only_with_the_bases_provider_material(project: Path) -> None:
    example = read(project / "stacks" / "Pulumi.example.yaml")  # with a `secure:` endpoint (make_project)
    spec = AccountSpec(ACCT, "payments-prod")

    shared = automation.render_stack({"encryptionsalt": SALT, **example}, spec)
    assert shared.doc["encryptionsalt"] == SALT
    assert shared.secrets_provider == "passphrase"
    assert automation.secure_leaves(shared.doc["config"]) == {PD_KEY: PD_CIPHERTEXT}
    assert shared.missing == ()

    kms = automation.render_stack({"secretsprovider": "awskms://alias/rootwatch?region=us-east-1", "encryptedkey": "Zm9v", **example}, spec)
    assert (kms.doc["secretsprovider"], kms.doc["encryptedkey"]) == ("awskms://alias/rootwatch?region=us-east-1", "Zm9v")
    assert kms.secrets_provider == "awskms://alias/rootwatch?region=us-east-1"

    # No provider material (Pulumi Cloud's per-stack keys): the ciphertext is useless here, so it is not copied.
    cloud = automation.render_stack(example, spec)
    assert cloud.missing == (PD_KEY,)
    assert automation.secure_leaves(cloud.doc["config"]) == {}
    assert cloud.doc["config"]["rootwatch:routes"]["critical"][0] == {"protocol": "https", "autoConfirms": True}
    assert cloud.secrets_provider is None

    given = automation.render_stack(example, spec, secret_keys=[PD_KEY])
    assert (given.missing, given.to_set) == ((), (PD_KEY,))

    # Ciphertext this stack already holds (set for it earlier) stays: secrets are needed once per stack.
    existing = copy.deepcopy(example)
    existing["config"]["rootwatch:routes"]["critical"][0]["endpoint"] = {"secure": "v1:bWluZQ=="}
    again = automation.render_stack(example, spec, existing_doc=existing)
    assert again.missing == ()
    assert automation.secure_leaves(again.doc["config"]) == {PD_KEY: "v1:bWluZQ=="}


def test_config_paths_round_trip_in_pulumi_path_syntax() -> None:
    for key, segs, text in [
        ("rootwatch:routes", ["critical", 0, "endpoint"], "rootwatch:routes.critical[0].endpoint"),
        ("rootwatch:accounts", ["list", 0, "tags", "cost.center"], 'rootwatch:accounts.list[0].tags["cost.center"]'),
        ("aws:region", [], "aws:region"),
    ]:
        assert automation.format_path(key, segs) == text
        assert automation.parse_path(text) == (key, segs)
    with pytest.raises(RootwatchError, match="namespace:key"):
        automation.parse_path("routes.critical[0]")


def test_account_config_is_validated_before_any_cli_call(project: Path) -> None:
    fake = FakePulumi()
    # The explicit stack routes only high and critical: a "low" account would alert into a void.
    with pytest.raises(RootwatchError, match=r"stack rootwatch-123456789012 \(from base stack explicit\).*routes: level\(s\) low"):
        enroll(project, fake, base_stack="explicit", severity="low")
    with pytest.raises(RootwatchError, match="not an OU or root id"):
        enroll(project, fake, ou="production")
    with pytest.raises(RootwatchError, match="no such base stack file.*example, explicit, shared"):
        enroll(project, fake, base_stack="nope")
    assert fake.calls == []


def test_compliance_records_are_parsed_defensively() -> None:
    rec = {"compliant": False, "status": "noncompliant", "checks": {"alarm": {"ok": False, "reason": "no SNS action"}}}
    outputs = {"compliance": {"accounts": {ACCT: rec}}}
    assert automation.compliance_record(outputs, ACCT) == rec
    assert automation.is_compliant(rec) is False
    assert automation.compliance_record({"compliance": json.dumps({"accounts": {ACCT: rec}})}, ACCT) == rec
    for odd in ({}, {"compliance": None}, {"compliance": "not json"}, {"compliance": {"accounts": []}},
                {"compliance": {"accounts": {ACCT: "yes"}}}, {"compliance": {"accounts": {"999999999999": rec}}}):
        assert automation.compliance_record(odd, ACCT) is None
    assert automation.is_compliant(None) is None
    assert automation.is_compliant({"status": "COMPLIANT"}) is True
    assert automation.is_compliant({"checks": {"a": {"ok": True}, "b": {"ok": True}}}) is True
    assert automation.is_compliant({"checks": {"a": {"ok": True}, "b": {"ok": "maybe"}}}) is None
    assert automation.is_compliant({"status": "pending"}) is None


# --- enroll against the stand-in CLI ------------------------------------------------------------------


def test_enroll_creates_the_stack_writes_its_file_in_stacks_and_runs_up_with_the_policy_pack(project: Path) -> None:
    fake = FakePulumi()
    lines: list[str] = []
    result = enroll(project, fake, ou="ou-ex01-prod0001", severity="critical", parallel=10, on_output=lines.append)

    path = project / "stacks" / f"Pulumi.{STACK}.yaml"
    assert result.status == "ok" and result.passed and result.compliant is True
    assert result.stack == STACK and result.stack_file == str(path)
    assert not (project / f"Pulumi.{STACK}.yaml").exists()  # stackConfigDir, not the project root
    assert fake.cwds == {str(project)}  # the local program: this project's Pulumi.yaml

    # The exact CLI calls, in order.
    pack = str(project / "policypack")
    assert fake.calls == [
        ["stack", "select", "--stack", STACK],
        ["stack", "init", STACK, "--secrets-provider", "passphrase"],
        ["up", "--yes", "--skip-preview", "--message", f"rootwatch enroll {ACCT}", "--policy-pack", pack,
         "--parallel", "10", "--color", "never", "--suppress-progress", "--config-file", str(path),
         "--exec-kind", "auto.local", "--stack", STACK],
        ["stack", "output", "--json", "--stack", STACK],
        ["stack", "output", "--json", "--show-secrets", "--stack", STACK],
        ["stack", "history", "--json", "--show-secrets", "--page-size", "1", "--page", "1", "--stack", STACK],
    ]
    doc = read(path)
    assert doc["encryptionsalt"] == SALT  # copied with the ciphertext, so the account stack can decrypt it
    config = doc["config"]
    assert config["rootwatch:accounts"] == {"source": "list", "list": [{"id": ACCT, "name": "payments-prod", "ou": "ou-ex01-prod0001"}]}
    assert isinstance(config["rootwatch:accounts"]["list"][0]["id"], str)  # why the file is written, not `set-all --path`
    assert config["rootwatch:severity"]["rules"][0] == {"match": {"accounts": [ACCT]}, "level": "critical"}
    assert config["rootwatch:routes"]["critical"][0]["endpoint"] == {"secure": PD_CIPHERTEXT}
    assert path.read_text().startswith("# Generated by `rootwatch enroll` from Pulumi.shared.yaml")

    assert result.changes == {"create": 12}
    assert result.compliance["checks"]["trail"]["ok"] is True
    assert result.outputs["webhookToken"] == "[secret]"  # secret outputs never leave masked
    assert "s3cr3t-token" not in json.dumps(result.to_json())
    assert lines == [f"up {STACK}: done"]


def test_enrolling_twice_changes_nothing(project: Path) -> None:
    fake = FakePulumi()
    first = enroll(project, fake)
    path = project / "stacks" / f"Pulumi.{STACK}.yaml"
    text, mtime = path.read_text(), path.stat().st_mtime_ns
    fake.calls.clear()

    second = enroll(project, fake)
    assert first.config_written and not second.config_written
    assert (path.read_text(), path.stat().st_mtime_ns) == (text, mtime)
    verbs = [c[:2] for c in fake.calls]
    assert ["stack", "init"] not in verbs  # selected, not created again
    assert not any(c[0] == "config" for c in fake.calls)  # no config writes
    assert second.changes == {"same": 12}


def test_secrets_that_cannot_be_copied_must_be_re_set_and_are_never_written_in_clear(project: Path) -> None:
    fake = FakePulumi()
    with pytest.raises(RootwatchError, match=r"cannot be copied.*rootwatch:routes\.critical\[0\]\.endpoint") as exc:
        enroll(project, fake, base_stack="example")
    assert fake.calls == []  # nothing created for a stack that could not deploy

    value = "https://events.pagerduty.com/v2/enqueue?key=TOPSECRET"
    result = enroll(project, fake, base_stack="example", secrets={PD_KEY: value})
    assert result.ok
    # Set through the CLI as a secret, path style, into the stack's own file (the CLI encrypts it),
    # the value on stdin: never an argument, which every local user can read in `ps`.
    config_calls = [c for c in fake.calls if c[0] == "config"]
    assert config_calls == [["config", "set", "--path", "--secret", PD_KEY, "--stack", STACK, "--non-interactive"]]
    assert fake.stdin == [(config_calls[0], value)]
    assert not any("TOPSECRET" in a for c in fake.calls for a in c)
    assert ["stack", "init", STACK] in fake.calls  # the backend's own secrets provider
    text = (project / "stacks" / f"Pulumi.{STACK}.yaml").read_text()
    assert "TOPSECRET" not in text and PD_CIPHERTEXT not in text
    assert "TOPSECRET" not in str(exc.value) and "TOPSECRET" not in json.dumps(result.to_json())


def test_preview_runs_the_policy_pack_and_reports_changes_without_a_verdict(project: Path) -> None:
    fake = FakePulumi()
    result = enroll(project, fake, preview=True)
    (preview,) = [c for c in fake.calls if c[0] == "preview"]
    assert flag(preview, "--policy-pack") == str(project / "policypack")
    assert flag(preview, "--config-file") == str(project / "stacks" / f"Pulumi.{STACK}.yaml")
    assert flag(preview, "--stack") == STACK
    assert not any(c[0] == "up" for c in fake.calls)
    assert (result.operation, result.changes, result.compliant, result.passed) == ("preview", {"create": 12}, None, True)


def test_a_locked_stack_is_retried_with_backoff(project: Path) -> None:
    fake = FakePulumi(locked={STACK: 2})
    waits: list[float] = []
    result = automation.enroll_account(ACCT, name="p", base_stack="shared", project_dir=project, pulumi_command=fake,
                                       sleep=waits.append, backoff=2.0)
    assert result.passed and result.attempts == 3
    assert len(fake.calls_for(STACK, "up")) == 3
    assert len(waits) == 2 and 2.0 <= waits[0] <= 2.5 and 4.0 <= waits[1] <= 5.0  # doubling, with jitter


def test_a_lock_that_never_clears_fails_the_account_with_one_line(project: Path) -> None:
    fake = FakePulumi(locked={STACK: 99})
    result = enroll(project, fake, retries=2)
    assert result.status == "failed" and not result.passed
    assert result.error == "error: [409] Conflict: Another update is currently in progress."
    assert len(fake.calls_for(STACK, "up")) == 3


def test_default_policy_pack_must_exist(project: Path) -> None:
    shutil.rmtree(project / "policypack")
    with pytest.raises(RootwatchError, match="policy pack not found at .*policypack"):
        enroll(project, FakePulumi())
    result = enroll(project, FakePulumi(), policy_packs=())
    assert result.passed


# --- enroll_many ----------------------------------------------------------------------------------------


def test_enroll_many_bounds_parallelism_retries_locks_and_isolates_failures(project: Path) -> None:
    ids = [f"2000000000{i:02d}" for i in range(8)]
    specs = [AccountSpec(i, f"acct-{i[-2:]}") for i in ids]
    specs[5] = AccountSpec(ids[5], "x" * 51)  # bad input: fails alone
    fake = FakePulumi(
        locked={f"rootwatch-{ids[1]}": 1},
        fail={f"rootwatch-{ids[2]}"},
        crash={f"rootwatch-{ids[3]}"},
        noncompliant={f"rootwatch-{ids[4]}"},
        up_seconds=0.15,
    )
    messages: list[tuple[str, str]] = []
    results: list[str] = []
    summary = automation.enroll_many(
        specs, parallel=3, engine_parallel=7, base_stack="shared", project_dir=project, pulumi_command=fake,
        sleep=lambda s: None, notify=lambda a, m: messages.append((a, m)), on_result=lambda r: results.append(r.account_id),
    )

    by_id = {r.account_id: r for r in summary.results}
    assert [r.account_id for r in summary.results] == ids  # input order
    assert sorted(results) == sorted(ids)
    assert by_id[ids[1]].passed and by_id[ids[1]].attempts == 2
    assert by_id[ids[2]].status == "failed"
    assert by_id[ids[2]].error == "error: update failed: AccessDenied: not authorized to perform sts:AssumeRole"
    assert by_id[ids[3]].status == "failed" and by_id[ids[3]].error == "RuntimeError: stand-in crashed"
    assert by_id[ids[4]].ok and by_id[ids[4]].compliant is False and not by_id[ids[4]].passed
    assert by_id[ids[5]].status == "failed" and "1 to 50 characters" in by_id[ids[5]].error
    for i in (0, 6, 7):
        assert by_id[ids[i]].passed
    assert summary.counts == {"total": 8, "ok": 5, "failed": 3, "compliant": 4, "notCompliant": 1, "unknown": 0, "retried": 1}
    assert not summary.passed

    assert 2 <= fake.max_active <= 3  # ran side by side, never more than --parallel
    ups = [c for c in fake.calls if c[0] == "up"]
    assert {flag(c, "--parallel") for c in ups} == {"7"}
    assert {flag(c, "--stack") for c in ups} == {f"rootwatch-{i}" for i in ids if i != ids[5]}
    assert all(flag(c, "--config-file") == str(project / "stacks" / f"Pulumi.{flag(c, '--stack')}.yaml") for c in ups)
    assert any(a == ids[1] and "locked" in m for a, m in messages)
    assert all(len(a) == 12 for a, _ in messages)


def test_enroll_many_rejects_bad_or_duplicate_ids_up_front(project: Path) -> None:
    fake = FakePulumi()
    with pytest.raises(RootwatchError, match="not 12-digit"):
        automation.enroll_many([AccountSpec("123", "x")], project_dir=project, pulumi_command=fake)
    with pytest.raises(RootwatchError, match="listed twice: 123456789012"):
        automation.enroll_many([AccountSpec(ACCT, "x"), AccountSpec(ACCT, "y")], project_dir=project, pulumi_command=fake)
    assert fake.calls == []


# --- offboard -----------------------------------------------------------------------------------------


def test_offboard_unprotects_destroys_keeping_retained_resources_and_removes_the_stack(project: Path) -> None:
    fake = FakePulumi()
    enroll(project, fake)
    path = project / "stacks" / f"Pulumi.{STACK}.yaml"
    fake.calls.clear()

    result = automation.offboard_account(ACCT, project_dir=project, pulumi_command=fake)
    assert result.status == "ok" and result.changes == {"delete": 9}
    assert [c[:3] for c in fake.calls if c[0] != "stack" or c[1] in ("select", "rm")] == [
        ["stack", "select", "--stack"],
        ["state", "unprotect", "--all"],
        ["destroy", "--skip-preview", "--yes"],
        ["stack", "rm", "--yes"],
    ]
    (unprotect,) = [c for c in fake.calls if c[0] == "state"]
    assert unprotect == ["state", "unprotect", "--all", "--yes", "--stack", STACK]
    (destroy,) = [c for c in fake.calls if c[0] == "destroy"]
    assert flag(destroy, "--config-file") == str(path) and flag(destroy, "--stack") == STACK
    assert "--policy-pack" not in destroy  # destroy takes none
    assert ["stack", "rm", "--yes", STACK] in fake.calls
    assert STACK not in fake.stacks and not path.exists()


def test_offboarding_an_account_without_a_stack_is_a_no_op(project: Path) -> None:
    fake = FakePulumi()
    result = automation.offboard_account(ACCT, project_dir=project, pulumi_command=fake)
    assert (result.status, result.ok) == ("not-enrolled", True)
    assert fake.calls == [["stack", "select", "--stack", STACK]]


# --- locating the CLI ---------------------------------------------------------------------------------------


def no_pulumi_env(tmp_path: Path) -> dict[str, str]:
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    return {"PATH": str(empty), "HOME": str(tmp_path)}


def test_without_the_cli_the_automation_api_raises_file_not_found_and_we_raise_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = no_pulumi_env(tmp_path)
    for k in ("PULUMI_HOME", automation.ENV_PULUMI):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(FileNotFoundError):  # the problem being guarded against, for real
        LocalWorkspace(work_dir=str(tmp_path))
    with pytest.raises(automation.PulumiNotFoundError) as exc:
        automation.enroll_account(ACCT, name="x", project_dir=make_project(tmp_path))
    msg = str(exc.value)
    assert "\n" not in msg and "Pulumi CLI not found" in msg and "--pulumi-path" in msg and "get.pulumi.com" in msg


def test_the_cli_is_found_via_rootwatch_pulumi_pulumi_home_or_explicit_path(tmp_path: Path) -> None:
    home = tmp_path / "pulumi-home"
    (home / "bin").mkdir(parents=True)
    binary = home / "bin" / "pulumi"
    binary.write_text("#!/bin/sh\necho v3.272.0\n")
    binary.chmod(0o755)
    env = no_pulumi_env(tmp_path)
    assert automation.find_pulumi(env={**env, "PULUMI_HOME": str(home)}) == str(binary)
    assert automation.find_pulumi(env={**env, automation.ENV_PULUMI: str(home)}) == str(binary)
    assert automation.find_pulumi(str(binary), env=env) == str(binary)
    with pytest.raises(automation.PulumiNotFoundError, match=r"not found at /nowhere/pulumi \(from --pulumi-path\)"):
        automation.find_pulumi("/nowhere/pulumi", env=env)
    cmd = automation.resolve_pulumi(str(binary))
    assert isinstance(cmd, PulumiCommand) and cmd.command == str(binary) and str(cmd.version) == "3.272.0"


def test_the_real_cli_gets_secrets_on_stdin_not_in_argv(tmp_path: Path) -> None:
    # A stand-in binary that records its argv and stdin, run the way the real CLI is.
    record = tmp_path / "record.json"
    binary = tmp_path / "pulumi"
    binary.write_text("#!/usr/bin/env python3\nimport json, sys\n"
                      f"json.dump({{'argv': sys.argv[1:], 'stdin': sys.stdin.read()}}, open({str(record)!r}, 'w'))\n")
    binary.chmod(0o755)

    class Located:
        command = str(binary)

    automation.run_with_input(Located(), ["config", "set", "--path", "--secret", PD_KEY, "--stack", STACK,
                                          "--non-interactive"], str(tmp_path), {}, "https://x.example/?key=TOPSECRET")
    seen = json.loads(record.read_text())
    assert seen["stdin"] == "https://x.example/?key=TOPSECRET"
    assert not any("TOPSECRET" in a for a in seen["argv"])
