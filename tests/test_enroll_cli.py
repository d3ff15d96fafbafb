"""`rootwatch enroll` / `rootwatch offboard`: exit codes, one-line errors, "[account]" progress.

The missing-CLI path runs for real (PATH without pulumi). The rest uses the
stand-in CLI from test_automation, on a throwaway copy of the project.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_automation import ACCT, PD_KEY, STACK, FakePulumi, make_project

from rootwatch.commands import cli
from rootwatch.vending import automation

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = REPO / "config" / "example-org.json"
# Member accounts in scope of the example stack (the management account stays with the org stack).
MEMBERS = ["222222222201", "222222222202", "222222222203", "222222222204", "222222222205", "222222222206", "222222222208", "222222222210"]


@pytest.fixture
def no_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PULUMI_HOME", raising=False)
    monkeypatch.delenv(automation.ENV_PULUMI, raising=False)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakePulumi:
    """The stand-in CLI for every command, on a copy of the project (stacks/ of the repo stay untouched)."""
    stand_in = FakePulumi()
    project = tmp_path / "project"
    project.mkdir()
    make_project(project)
    monkeypatch.setattr(automation, "PROJECT_DIR", project)
    monkeypatch.setattr(automation, "resolve_pulumi", lambda path=None, env=None: stand_in)
    stand_in.project = project  # type: ignore[attr-defined]
    return stand_in


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("argv", [["enroll", ACCT], ["enroll", "--org-snapshot", str(SNAPSHOT)], ["offboard", ACCT]])
def test_without_the_pulumi_cli_every_command_exits_2_with_one_line(no_pulumi: None, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith("rootwatch: error: Pulumi CLI not found")
    assert "--pulumi-path" in line and automation.ENV_PULUMI in line and "get.pulumi.com" in line
    assert captured.out == ""


def test_a_wrong_pulumi_path_names_the_path(no_pulumi: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["enroll", ACCT, "--pulumi-path", "/opt/nowhere/pulumi"]) == 2
    assert "not found at /opt/nowhere/pulumi (from --pulumi-path)" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["enroll"], "give either ACCOUNT_ID or --org-snapshot FILE"),
        (["enroll", ACCT, "--org-snapshot", "x.json"], "give either ACCOUNT_ID or --org-snapshot FILE"),
        (["enroll", "12345"], "'12345' is not a 12-digit AWS account id"),
        (["offboard", "1234567890123"], "is not a 12-digit AWS account id"),
        (["enroll", "--org-snapshot", "x.json", "--name", "n"], "--name, --ou and --severity apply to a single ACCOUNT_ID"),
        (["enroll", "--org-snapshot", "x.json", "--parallel", "0"], "--parallel and --engine-parallel must be at least 1"),
    ],
)
def test_usage_errors_exit_2_before_looking_for_the_cli(no_pulumi: None, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert message in one_line(capsys.readouterr().err)


def test_enroll_one_account_prefixes_progress_and_exits_0_when_compliant(fake: FakePulumi, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["enroll", ACCT, "--name", "payments-prod", "--ou", "ou-ex01-prod0001", "--severity", "critical",
            "--base-stack", "shared", "--engine-parallel", "5"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err and all(line.startswith(f"[{ACCT}] ") for line in captured.err.splitlines())
    assert f"[{ACCT}] enrolling (stack {STACK}, base shared)" in captured.err
    assert f"[{ACCT}] up {STACK}: done" in captured.err  # the engine's own output, prefixed
    assert captured.out.startswith(f"{ACCT}  {STACK}") and "PASS" in captured.out and "compliant" in captured.out
    (up,) = fake.calls_for(STACK, "up")
    assert up[up.index("--parallel") + 1] == "5"
    assert up[up.index("--policy-pack") + 1] == str(fake.project / "policypack")  # type: ignore[attr-defined]
    doc = yaml.safe_load((fake.project / "stacks" / f"Pulumi.{STACK}.yaml").read_text())  # type: ignore[attr-defined]
    assert doc["config"]["rootwatch:severity"]["rules"][0]["level"] == "critical"


def test_enroll_exits_1_when_the_account_is_not_compliant_and_json_says_why(fake: FakePulumi, capsys: pytest.CaptureFixture[str]) -> None:
    fake.noncompliant.add(STACK)
    assert cli.main(["enroll", ACCT, "--base-stack", "shared", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == "rootwatch.enroll/v1" and report["passed"] is False
    (acct,) = report["accounts"]
    assert (acct["accountId"], acct["compliant"], acct["status"]) == (ACCT, False, "ok")
    assert acct["compliance"]["checks"]["alarm"]["reason"] == "no SNS action"
    assert acct["outputs"]["webhookToken"] == "[secret]"


def test_enroll_config_and_secret_problems_exit_2(fake: FakePulumi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.main(["enroll", ACCT]) == 2  # base "example": its secret cannot be copied
    assert "rootwatch:routes.critical[0].endpoint" in one_line(capsys.readouterr().err)
    assert cli.main(["enroll", ACCT, "--secret", f"{PD_KEY}=PD_URL"]) == 2
    assert "environment variable PD_URL is not set" in one_line(capsys.readouterr().err)
    assert fake.calls == []

    monkeypatch.setenv("PD_URL", "https://events.pagerduty.com/v2/enqueue?key=TOPSECRET")
    assert cli.main(["enroll", ACCT, "--secret", f"{PD_KEY}=PD_URL"]) == 0
    captured = capsys.readouterr()
    assert "TOPSECRET" not in captured.err + captured.out
    # The value goes on stdin, never on the command line.
    (cfg,) = [c for c in fake.calls if c[0] == "config"]
    assert cfg == ["config", "set", "--path", "--secret", PD_KEY, "--stack", STACK, "--non-interactive"]
    assert fake.stdin == [(cfg, "https://events.pagerduty.com/v2/enqueue?key=TOPSECRET")]


def test_enroll_preview_changes_nothing_and_exits_0(fake: FakePulumi, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["enroll", ACCT, "--base-stack", "shared", "--preview", "--no-policy-pack"]) == 0
    assert "preview: 12 create" in capsys.readouterr().out
    (preview,) = fake.calls_for(STACK, "preview")
    assert "--policy-pack" not in preview and not fake.calls_for(STACK, "up")


def test_enroll_an_org_snapshot_in_parallel_with_org_wide_severity(fake: FakePulumi, capsys: pytest.CaptureFixture[str]) -> None:
    fake.fail.add("rootwatch-222222222203")
    fake.up_seconds = 0.05
    assert cli.main(["enroll", "--org-snapshot", str(SNAPSHOT), "--parallel", "8", "--base-stack", "shared"]) == 1
    captured = capsys.readouterr()
    ups = [c for c in fake.calls if c[0] == "up"]
    assert sorted(c[c.index("--stack") + 1] for c in ups) == [f"rootwatch-{a}" for a in MEMBERS]
    assert "[111111111111] skipped: management account" in captured.err
    assert "[222222222203] failed: error: update failed" in captured.err
    lines = captured.out.splitlines()
    assert sum("PASS" in ln for ln in lines) == 7 and sum("FAIL" in ln for ln in lines) == 1
    assert "8 account(s): 7 ok, 1 failed, 7 compliant" in captured.out
    # payments-prod sits in payments, under production: the org-wide rule (production -> critical)
    # is evaluated here with the whole OU path, and pinned in the account's stack.
    doc = yaml.safe_load((fake.project / "stacks" / "Pulumi.rootwatch-222222222201.yaml").read_text())  # type: ignore[attr-defined]
    assert doc["config"]["rootwatch:accounts"]["list"] == [{"id": "222222222201", "name": "payments-prod", "ou": "ou-ex01-paym0001"}]
    assert doc["config"]["rootwatch:severity"]["rules"][0] == {"match": {"accounts": ["222222222201"]}, "level": "critical"}


def test_offboard_exits_0_and_reports_retained_resources(fake: FakePulumi, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["enroll", ACCT, "--base-stack", "shared"]) == 0
    capsys.readouterr()
    assert cli.main(["offboard", ACCT]) == 0
    captured = capsys.readouterr()
    assert all(line.startswith(f"[{ACCT}] ") for line in captured.err.splitlines())
    assert "offboarded (9 delete; retained resources stay in the account)" in captured.out
    assert ["state", "unprotect", "--all", "--yes", "--stack", STACK] in fake.calls
    assert cli.main(["offboard", ACCT]) == 0  # again: nothing to do
    assert "not enrolled" in capsys.readouterr().out
