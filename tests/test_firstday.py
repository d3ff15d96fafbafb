"""A new user's first day (issue 14): nothing hangs, crashes or quietly misleads.

One test (at least) per bullet of the issue's "Why", each failing on the behaviour
before the fix: Python 3.12 pins, Ctrl-C, YAML timestamps, ROOTWATCH_* overrides,
exit codes, audit scope and schema, and a stack for a real organization (`init`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from rootwatch.commands import init
from rootwatch.commands.cli import main
from rootwatch.core import snapshot
from rootwatch.core.errors import ConfigError
from rootwatch.program import mockrun, settings

ROOT = Path(__file__).resolve().parents[1]
ROUTES = json.dumps({lvl: [{"protocol": "email", "endpoint": "sec@example.com"}] for lvl in ("low", "medium", "high", "critical")})


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- 1. installs where the README says ---------------------------------------------------

# The first release of each pinned package with CPython 3.12 wheels (orjson 3.8.3 had
# none and tried to build with Rust). Pins older than these do not install on 3.12.
FIRST_WITH_312_WHEELS = {"orjson": (3, 9, 10), "pydantic-core": (2, 10, 0), "grpcio": (1, 59, 0)}


def _pins() -> dict[str, tuple[int, ...]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {}
    for dep in (*project["dependencies"], *project["optional-dependencies"]["test"]):
        name, _, version = re.sub(r"\[.*?\]", "", dep).partition("==")
        out[name.strip().lower()] = tuple(int(x) for x in version.split("."))
    return out


def test_pins_have_wheels_for_every_supported_python() -> None:
    pins = _pins()
    for name, first in FIRST_WITH_312_WHEELS.items():
        if name in pins:
            assert pins[name] >= first, f"{name}=={pins[name]} has no CPython 3.12 wheels"


def test_requires_python_matches_the_readme_and_ci() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    supported = re.search(r"Python (3\.\d+) to (3\.\d+)", readme)
    assert supported, "README names the supported Python versions"
    low, high = supported.groups()
    assert requires == f">={low},<3.{int(high.split('.')[1]) + 1}"
    # CI tests the lowest and the highest supported version.
    assert f'versions="${{CI_PYTHONS:-{low} {high}}}"' in ci


# --- 2. Ctrl-C ------------------------------------------------------------------------------


def _big_snapshot(path: Path, members: int) -> None:
    accounts = [{"id": "111111111111", "name": "management", "state": "ACTIVE", "ouPath": "r-ex01", "tags": {}}]
    accounts += [
        {"id": f"2{i:011d}", "name": f"member-{i}", "state": "ACTIVE", "ouPath": "r-ex01/ou-ex01-prod0001", "tags": {}}
        for i in range(1, members + 1)
    ]
    # The example stack's alert hub (rootwatch:hub.accountId), which it includes by id.
    accounts.append({"id": "222222222208", "name": "security-tooling", "state": "ACTIVE",
                     "ouPath": "r-ex01/ou-ex01-secu0001", "tags": {}})
    path.write_text(json.dumps({"managementAccountId": "111111111111", "organizationalUnits": {"ou-ex01-prod0001": "production"},
                                "accounts": accounts}))


def test_ctrl_c_during_a_large_plan_exits_130_at_once_with_one_line(tmp_path: Path) -> None:
    org = tmp_path / "org.json"
    _big_snapshot(org, 300)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rootwatch.commands.cli", "--quiet", "plan", "--org-snapshot", str(org)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    # Mid-plan: well after start-up (imports take ~2 s), long before 300 accounts are planned.
    time.sleep(6)
    assert proc.poll() is None, "the plan finished before it could be interrupted"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the plan hung after Ctrl-C")
    took = time.monotonic() - sent
    assert proc.returncode == 130, (proc.returncode, err[-500:])
    assert err == "rootwatch: interrupted\n"
    assert took < 2.0, took
    assert "Stack example" not in out  # no report of a plan that did not finish


def test_ctrl_c_never_leaves_half_an_output_file(tmp_path: Path) -> None:
    from rootwatch.core import atomicfile

    target = tmp_path / "org.json"
    target.write_text("previous\n")

    class Interrupted(BaseException):
        pass

    real_fsync = os.fsync

    def interrupted_fsync(fd: int) -> None:  # Ctrl-C arrives mid-write
        raise Interrupted

    os.fsync = interrupted_fsync  # type: ignore[assignment]
    try:
        with pytest.raises(Interrupted):
            atomicfile.write_text(target, "x" * 100_000)
    finally:
        os.fsync = real_fsync  # type: ignore[assignment]
    assert target.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["org.json"]


def test_the_interrupt_handler_removes_files_being_written(tmp_path: Path) -> None:
    # The same path the SIGINT handler takes, in a child process: pending temp files go, exit 130.
    code = (
        "import os, sys\n"
        "from rootwatch.core import atomicfile\n"
        "from rootwatch.commands import cli\n"
        f"tmp = os.path.join({str(tmp_path)!r}, '.out.json.x.tmp')\n"
        "open(tmp, 'w').write('half')\n"
        "atomicfile.PENDING.add(tmp)\n"
        "cli.exit_interrupted()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (130, "rootwatch: interrupted\n")
    assert list(tmp_path.iterdir()) == []


# --- 4. YAML as written by hand and by `pulumi config set --path` --------------------------

BREAK_GLASS_YAML = """
  rootwatch:breakGlass:
    maxHours: 4
    windows:
      - ticket: SEC-42
        accounts: ["222222222201"]
        approvers: [ann, bob]
        start: 2026-11-24T10:00:00Z
        end: 2026-11-24T12:00:00Z
        reason: restore MFA device
"""


def test_unquoted_break_glass_timestamps_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack = tmp_path / "Pulumi.bg.yaml"
    stack.write_text((ROOT / "stacks" / "Pulumi.example.yaml").read_text() + BREAK_GLASS_YAML)
    config = mockrun.load_stack_config(str(stack))
    window = json.loads(config.values["rootwatch:breakGlass"])["windows"][0]
    # Kept as written, as the Pulumi CLI passes it (not a datetime, which is not JSON).
    assert (window["start"], window["end"]) == ("2026-11-24T10:00:00Z", "2026-11-24T12:00:00Z")
    s = settings.load(config.values)
    assert s.break_glass.windows[0].start.isoformat() == "2026-11-24T10:00:00+00:00"
    assert s.break_glass.max_hours == 4
    code, out, err = run_cli(capsys, "plan", "--stack", str(stack), "--format", "json")
    assert code == 0, err
    assert "internal error" not in err
    assert any("SEC-42" in w for w in json.loads(out)["warnings"])  # expired by now: a plan warning


def test_numbers_and_booleans_as_pulumi_config_set_path_writes_them(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.typed.yaml"
    stack.write_text(
        "config:\n"
        f"  rootwatch:routes: {ROUTES}\n"
        "  rootwatch:protect: false\n"
        "  rootwatch:shardMaxAccounts: 50\n"
        "  rootwatch:alarm:\n    periodSeconds: 300\n"
        "  rootwatch:accounts:\n    includeAccounts: [222222222201]\n    includeManagement: false\n"
    )
    s = settings.load(mockrun.load_stack_config(str(stack)).values)
    assert (s.protect, s.shard_max_accounts, s.alarm.period_seconds) == (False, 50, 300)
    assert s.accounts.include_accounts == ("222222222201",) and s.accounts.include_management is False


# --- 5. ROOTWATCH_* variables ------------------------------------------------------------------


def test_an_environment_variable_replaces_the_whole_key() -> None:
    stack_routes = {**json.loads(ROUTES), "critical": [{"protocol": "email", "endpoint": "prod-pager@example.com"}]}
    override = {lvl: [{"protocol": "email", "endpoint": "test@example.com"}] for lvl in ("critical", "high")}
    s = settings.load({"rootwatch:routes": json.dumps(stack_routes)}, environ={"ROOTWATCH_ROUTES": json.dumps(override)})
    endpoints = {lvl.value: [r.endpoint for r in subs] for lvl, subs in s.routes.items()}
    # The test redirect must not keep paging production through the stack's other levels.
    assert endpoints == {"critical": ["test@example.com"], "high": ["test@example.com"]}


def test_a_nested_variable_replaces_only_its_key() -> None:
    s = settings.load({"rootwatch:routes": ROUTES, "rootwatch:alarm": json.dumps({"periodSeconds": 60, "namespace": "Sec"})},
                      environ={"ROOTWATCH_ALARM__PERIODSECONDS": "300", "ROOTWATCH_HOMEREGION": "eu-west-1"})
    assert (s.alarm.period_seconds, s.alarm.namespace, s.home_region) == (300, "Sec", "eu-west-1")


def test_misspelled_variables_are_refused_with_a_hint() -> None:
    with pytest.raises(ConfigError) as exc:
        settings.load({"rootwatch:routes": ROUTES}, environ={"ROOTWATCH_HOMEREGOIN": "eu-west-1", "ROOTWATCH_DEBUG": "1"})
    assert exc.value.problems == ["ROOTWATCH_HOMEREGOIN: unknown setting (did you mean ROOTWATCH_HOME_REGION?)"]
    with pytest.raises(ConfigError) as exc:
        settings.load({"rootwatch:routes": ROUTES}, environ={"ROOTWATCH_ALARM__PERIODSECOND": "60"})
    assert exc.value.problems == ["ROOTWATCH_ALARM__PERIODSECOND: unknown setting (did you mean ROOTWATCH_ALARM__PERIOD_SECONDS?)"]


def test_bad_json_in_a_variable_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ROOTWATCH_ROUTES", '{"critical": [')
    code, out, err = run_cli(capsys, "plan")
    assert code == 2 and out == ""
    lines = [ln for ln in err.splitlines() if ln.startswith("rootwatch:")]
    assert len(lines) == 1 and "ROOTWATCH_ROUTES: not valid JSON" in lines[0]
    assert "internal error" not in err and "Traceback" not in err


# --- 6. exit codes -----------------------------------------------------------------------------


def test_plan_exits_1_when_an_account_in_scope_is_not_compliant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An existing-trail stack whose metric filter cannot be on the trail's group: not compliant.
    stack = tmp_path / "Pulumi.weak.yaml"
    text = (ROOT / "stacks" / "Pulumi.example.yaml").read_text()
    stack.write_text(text.replace("retentionDays: 365", "retentionDays: 30"))
    code, out, err = run_cli(capsys, "plan", "--stack", str(stack), "--format", "json")
    report = json.loads(out)
    bad = [a["id"] for a in report["accounts"] if a["compliance"]["status"] == "noncompliant"]
    assert bad, "the weakened stack should have non-compliant accounts"
    assert code == 1


def test_argparse_errors_are_one_line_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--format", "yaml"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice" in err and "rootwatch plan --help" in err


def test_version_and_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("rootwatch ")
    code, out, err = run_cli(capsys, "--quiet", "plan")
    assert code == 0 and "Stack example" in out and err == ""


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["enroll", "--org-snapshot", "missing.json"], "missing.json: org snapshot file not found"),
        (["enroll", "123456789012", "--base-stack", "nope"], "Pulumi.nope.yaml: no such base stack file"),
        (["enroll", "12345"], "12345"),
    ],
)
def test_enroll_checks_its_own_arguments_before_the_pulumi_cli(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi anywhere
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ROOTWATCH_PULUMI", raising=False)
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert expected in err and "Pulumi CLI" not in err, err


def test_enroll_login_failures_are_exit_2() -> None:
    from rootwatch.commands import enroll

    assert enroll.exit_code_for_errors(["error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions"]) == 2
    assert enroll.exit_code_for_errors(["error: getting credentials: NoCredentialProviders"]) == 2
    assert enroll.exit_code_for_errors(["account not compliant: trail: fail"]) == 1


# --- 7. commands respect the stack -----------------------------------------------------------------


def test_audit_audits_the_stack_scope_and_reports_the_rest(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import mock_aws

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        code, out, err = run_cli(capsys, "audit", "--org-snapshot", str(ROOT / "config" / "example-org.json"), "--format", "json")
    report = json.loads(out)
    assert report["schema"] == "rootwatch.audit/v1"
    audited = {a["id"] for a in report["accounts"]}
    # security-tooling (the alert hub) is outside the example stack's includeOus but included by id.
    assert "222222222208" in audited
    assert len(audited) == 9
    out_of_scope = {s["id"]: s["reason"] for s in report["skipped"]}
    assert "222222222208" not in out_of_scope
    assert out_of_scope["222222222207"] == "account is SUSPENDED"
    assert report["stack"] == "example"
    assert code == 1  # moto accounts have no rootwatch


def test_every_json_document_has_a_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "plan", "--format", "json")
    assert json.loads(out)["schema"] == "rootwatch.plan/v1"
    code, out, _ = run_cli(capsys, "shards", "--org-snapshot", str(ROOT / "config" / "example-org.json"), "--format", "json")
    assert json.loads(out)["schema"].startswith("rootwatch.shards/")


# --- 2. init: a stack for the user's own organization ------------------------------------------------


def _moto_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, str]]:
    import boto3
    from moto import mock_aws

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    ids: dict[str, str] = {}
    with mock_aws():
        o = boto3.client("organizations", region_name="us-east-1")
        o.create_organization(FeatureSet="ALL")
        root = o.list_roots()["Roots"][0]["Id"]
        prod = o.create_organizational_unit(ParentId=root, Name="production")["OrganizationalUnit"]["Id"]
        pay = o.create_organizational_unit(ParentId=prod, Name="payments")["OrganizationalUnit"]["Id"]
        dev = o.create_organizational_unit(ParentId=root, Name="development")["OrganizationalUnit"]["Id"]
        for name, parent in (("payments-prod", pay), ("web-prod", prod), ("dev-1", dev), ("dev-2", dev), ("loose", root)):
            acct = o.create_account(Email=f"{name}@example.com", AccountName=name)["CreateAccountStatus"]["AccountId"]
            if parent != root:
                o.move_account(AccountId=acct, SourceParentId=root, DestinationParentId=parent)
            ids[name] = acct
        ids.update(prod=prod, pay=pay, dev=dev)
        out = tmp_path / "org.json"
        assert main(["--quiet", "org", "snapshot", "--out", str(out)]) == 0
    return out, ids


def test_the_example_stack_on_a_real_organization_is_refused_naming_its_filters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    org, _ = _moto_snapshot(tmp_path, monkeypatch)
    capsys.readouterr()
    code, out, err = run_cli(capsys, "plan", "--org-snapshot", str(org))
    assert code == 2 and out == ""
    assert "no account is in scope: accounts.includeOus [ou-ex01-prod0001, ou-ex01-stag0001, ou-ex01-sand0001]" in err
    assert "rootwatch init" in err


def test_init_writes_a_stack_that_plans_every_account_once_routes_are_filled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    org_file, ids = _moto_snapshot(tmp_path, monkeypatch)
    org = snapshot.load(org_file)
    stack = tmp_path / "Pulumi.acme.yaml"
    code, out, _ = run_cli(capsys, "init", "acme", "--org-snapshot", str(org_file), "--out", str(stack))
    assert code == 0
    for step in ("pulumi login", "pulumi stack init acme", "pulumi config set --path --secret", f"rootwatch plan --stack {stack}", "pulumi up"):
        assert step in out
    text = stack.read_text()
    # Real OU ids, names as comments; the management account; a real (uncommented) hub block
    # with the suggested hub account, explained by its comments.
    assert re.search(rf"- {ids['prod']}  # production", text) and re.search(rf"- {ids['dev']}  # development", text)
    assert f"{ids['pay']}  payments" in text  # the child OU, listed as a comment under its parent
    hub = init.suggest_hub(org)
    assert f'- "{org.management_account_id}"  #' in text and "\n  rootwatch:hub:\n" in text
    assert f'    accountId: "{hub}"  #' in text and "# rootwatch:hub:" not in text
    assert "ou-ex01" not in text
    # Every key has a comment line above it or on its line.
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s+[A-Za-z:]+:( |$)", line) and not line.strip().startswith("-") and "rootwatch:routes" not in line:
            key = line.strip().split(":")[0]
            if key in ("config", "lifecycle", "critical", "high", "protocol", "endpoint", "level", "rules", "match"):
                continue
            assert "#" in line or lines[i - 1].strip().startswith("#"), f"no comment for {line!r}"
    # Placeholders are refused until filled.
    code, _, err = run_cli(capsys, "plan", "--stack", str(stack), "--org-snapshot", str(org_file))
    assert code == 2 and "endpoint is still the REPLACE-ME placeholder" in err
    stack.write_text(text.replace("endpoint: REPLACE-ME", "endpoint: security@example.com"))
    code, out, err = run_cli(capsys, "plan", "--stack", str(stack), "--org-snapshot", str(org_file), "--format", "json")
    assert code == 0, err
    planned = {a["id"] for a in json.loads(out)["accounts"]}
    assert planned == {a.id for a in org.accounts if a.state == "ACTIVE"}
    assert all(a["resources"] for a in json.loads(out)["accounts"])


def test_init_for_one_ou_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    org_file, ids = _moto_snapshot(tmp_path, monkeypatch)
    stack = tmp_path / "Pulumi.pilot.yaml"
    assert main(["init", "pilot", "--org-snapshot", str(org_file), "--out", str(stack), "--ou", ids["dev"]]) == 0
    stack.write_text(stack.read_text().replace("endpoint: REPLACE-ME", "endpoint: security@example.com"))
    capsys.readouterr()
    code, out, err = run_cli(capsys, "plan", "--stack", str(stack), "--org-snapshot", str(org_file), "--format", "json")
    assert code == 0, err
    org = snapshot.load(org_file)
    assert {a["id"] for a in json.loads(out)["accounts"]} == {ids["dev-1"], ids["dev-2"], org.management_account_id}
    # Refuses to overwrite, and unknown OUs are one line.
    assert main(["init", "pilot", "--org-snapshot", str(org_file), "--out", str(stack)]) == 2
    assert main(["init", "x", "--org-snapshot", str(org_file), "--out", str(tmp_path / "x.yaml"), "--ou", "ou-zzzz-zzzzzzzz"]) == 2
    assert "not an OU of" in capsys.readouterr().err


def test_org_snapshots_and_drill_reports_carry_a_schema() -> None:
    import io

    from rootwatch.commands import drill

    org = snapshot.load(ROOT / "config" / "example-org.json")
    doc = org.to_json()
    assert doc["schema"] == "rootwatch.orgsnapshot/v1" and snapshot.parse(doc) == org
    with pytest.raises(Exception, match="schema 'rootwatch.orgsnapshot/v9' is not rootwatch.orgsnapshot/v1"):
        snapshot.parse({**doc, "schema": "rootwatch.orgsnapshot/v9"})

    class _Drill:
        id, account_id, region = "d1", "222222222201", "us-east-1"

    out = io.StringIO()
    drill.report_results(_Drill(), [], drill.Cleanup(), "json", out=out)  # type: ignore[arg-type]
    assert json.loads(out.getvalue())["schema"] == "rootwatch.drill/v1"


# --- 9. progress on a terminal -------------------------------------------------------------------


class _Tty:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_plan_shows_accounts_and_resources_registered_so_far_on_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert main(["plan"]) == 0
    frames = [f for f in tty.text.split("\r") if f.startswith("planned:")]
    assert frames, tty.text
    last = re.match(r"planned: ([\d,]+) accounts, ([\d,]+) resources", frames[-1])
    assert last and int(last.group(1)) == 9 and int(last.group(2).replace(",", "")) > 300
    # Not a terminal (CI logs, pipes): no progress frames.
    capsys.readouterr()
    monkeypatch.undo()
    code, _, err = run_cli(capsys, "plan")
    assert code == 0 and "planned:" not in err


# --- 3. Ctrl-C in the other commands --------------------------------------------------------------


def _interrupt(argv: list[str], tmp_path: Path, wait: float = 4.0) -> tuple[int, str, float]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_MAX_ATTEMPTS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rootwatch.commands.cli", *argv], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(wait)
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{argv[0]} hung after Ctrl-C")
    return proc.returncode, err, time.monotonic() - sent


def test_ctrl_c_while_reading_input_or_waiting_for_aws(tmp_path: Path) -> None:
    import socket

    # replay waiting on stdin.
    code, err, took = _interrupt(["replay", "-"], tmp_path)
    assert (code, err) == (130, "rootwatch: interrupted\n") and took < 2.0
    # org snapshot waiting on an endpoint that accepts and never answers: no file appears.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        out = tmp_path / "org.json"
        env_argv = ["org", "snapshot", "--out", str(out), "--endpoint-url", f"http://127.0.0.1:{server.getsockname()[1]}"]
        code, err, took = _interrupt(env_argv, tmp_path)
    assert (code, err) == (130, "rootwatch: interrupted\n") and took < 2.0
    assert list(tmp_path.iterdir()) == []
