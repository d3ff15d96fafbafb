"""`rootwatch playbook` on the example stack: every route level, the break-glass rules, the checklist's state."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from rootwatch.commands import cli
from rootwatch.detection.rule import EventClass

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "kpis"
EXAMPLE = ROOT / "stacks" / "Pulumi.example.yaml"
AS_OF = "2026-05-20T00:00:00Z"


def playbook(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["playbook", "--as-of", AS_OF, *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_example_playbook_names_every_route_level_and_the_break_glass_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = playbook(capsys)
    assert code == 0
    routes = section(text, "1. Who gets paged")
    rows = dict(re.findall(r"^\| (critical|high|medium|low) \| ([^|]+) \|", routes, re.M))
    assert rows == {"critical": "1 email, 1 https", "high": "1 email, 1 sqs", "medium": "1 email", "low": "1 sqs"}
    assert "| 2 | OUs ou-ex01-prod0001 | critical |" in routes and "| default | every other account | medium |" in routes
    assert "| access-key-call | critical | critical | critical | critical |" in routes
    bg = section(text, "3. Break-glass procedure")
    for rule in ("at least two distinct approvers", "at most 8 hours", "start inclusive, end exclusive",
                 "never suppresses an alert", "Tamper alerts stay critical"):
        assert rule in bg
    assert "No windows are configured in this stack." in bg
    assert "Runbook: https://wiki.example.com/security/runbooks/root-activity" in text
    for cls in EventClass:
        assert f"### {cls.value} (default level" in text
    assert "### tamper (critical)" in text
    assert "--task-policy-arn arn=arn:aws:iam::aws:policy/root-task/<TASK>" in text
    assert "rootwatch drill --account <ACCOUNT_ID> --path both" in text


def test_endpoints_never_appear(capsys: pytest.CaptureFixture[str]) -> None:
    _, text, _ = playbook(capsys)
    for endpoint in ("security-oncall@example.com", "security-team@example.com", "rootwatch-siem-intake", "[secret]",
                     "secure:"):
        assert endpoint not in text


def test_the_checklist_is_ticked_from_the_last_audit_and_the_drill_log(capsys: pytest.CaptureFixture[str]) -> None:
    _, text, _ = playbook(capsys, "--audit-history", str(DATA / "audit-history.jsonl"),
                          "--drill-log", str(DATA / "drills.jsonl"))
    check = section(text, "6. Checklist")
    assert "State from the last audit (2026-05-04T08:00:00Z)" in check
    assert "- [x] A multi-region trail logs read and write management events" in check
    assert ("- [ ] No root access keys; root MFA enabled or root credentials centrally managed "
            "(7/8 accounts, audit 2026-05-04T08:00:00Z; failing: dev-sandbox-alice)") in check
    assert "- [ ] The real-time EventBridge rule is enabled, with a target, in every region (not audited with --realtime)" in check
    assert "- [ ] Policy compliance score is 100% (87.5%)" in check
    assert "- [x] Every drilled account and path passed within 92 days (8/8 current)" in check
    assert "| 222222222204 | alarm | 2026-05-17T09:13:00+00:00 | passed |" in section(text, "5. Drills")


def test_without_history_nothing_is_ticked_from_the_audit(capsys: pytest.CaptureFixture[str]) -> None:
    _, text, _ = playbook(capsys)
    check = section(text, "6. Checklist")
    assert "- [ ] A multi-region trail logs" in check and "(not audited)" in check
    assert "- [ ] Every drilled account and path passed within 92 days (no drill log)" in check


def test_windows_are_listed_with_their_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    window = {"accounts": ["222222222201"], "approvers": ["alice@example.com", "bob@example.com"],
              "reason": "rotate root MFA", "level": "high"}
    doc["config"]["rootwatch:breakGlass"] = {"maxHours": 4, "windows": [
        {**window, "ticket": "SEC-1", "start": "2026-05-01T10:00:00Z", "end": "2026-05-01T12:00:00Z"},
        {**window, "ticket": "SEC-2", "start": "2026-05-19T22:00:00Z", "end": "2026-05-20T02:00:00Z"},
        {**window, "ticket": "SEC-3", "start": "2026-06-01T10:00:00Z", "end": "2026-06-01T11:00:00Z"}]}
    stack = tmp_path / "Pulumi.bg.yaml"
    stack.write_text(yaml.safe_dump(doc))
    out = tmp_path / "playbook.md"
    code, stdout, _ = playbook(capsys, "--stack", str(stack), "--output", str(out))
    assert code == 0 and f"wrote {out}" in stdout
    text = out.read_text()
    assert "at most 4 hours" in text
    states = dict(re.findall(r"^\| (SEC-\d) \|.*\| (expired|open now|upcoming) \|$", text, re.M))
    assert states == {"SEC-1": "expired", "SEC-2": "open now", "SEC-3": "upcoming"}
    assert "| SEC-2 | 222222222201 | alice@example.com, bob@example.com | 2026-05-19T22:00Z | 2026-05-20T02:00Z | high |" in text
    assert "- [ ] No expired break-glass windows left in the config (1 expired)" in text


@pytest.mark.parametrize(("argv", "message"), [
    (["--stack", "nope"], "no such stack file"),
    (["--audit-history", "/nonexistent.jsonl"], "/nonexistent.jsonl: not found"),
    (["--as-of", "later"], "--as-of 'later' is not an ISO 8601 time"),
])
def test_bad_input_exits_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, _, err = playbook(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_an_invalid_stack_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["config"]["rootwatch:breakGlass"] = {"windows": [{"ticket": "X", "accounts": ["222222222201"],
                                                         "approvers": ["alice"], "reason": "r",
                                                         "start": "2026-05-01T10:00:00Z", "end": "2026-05-01T11:00:00Z"}]}
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(yaml.safe_dump(doc))
    code, _, err = playbook(capsys, "--stack", str(stack))
    assert code == 2 and "two distinct approvers" in err
