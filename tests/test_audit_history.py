"""`rootwatch audit --history FILE`: each run appends its score and verdicts (the report's trend)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from awsfixtures import MGMT, AccountSpec, aws_env, build_account, moto_server, run_cli

from rootwatch.compliance.kpis import HISTORY_SCHEMA


def test_each_audit_run_appends_one_history_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    history = tmp_path / "audit-history.jsonl"
    with moto_server() as url:
        aws_env(monkeypatch, tmp_path)
        requests.post(f"{url}/moto-api/reset", timeout=10)
        build_account(url, MGMT, AccountSpec())
        argv = ["audit", "--accounts", MGMT, "--endpoint-url", url, "--history", str(history), "--format", "json"]
        for _ in range(2):
            code, out, _ = run_cli(argv, capsys, monkeypatch)
            assert code == 0, out
        requests.post(f"{url}/moto-api/reset", timeout=10)
    lines = [json.loads(x) for x in history.read_text().splitlines()]
    assert len(lines) == 2
    first: dict[str, Any] = lines[0]
    assert first["schema"] == HISTORY_SCHEMA and first["time"].endswith("Z")
    assert first["kpis"] == {"accountsInScope": 1, "accountsCompliant": 1, "policyComplianceScore": 100.0,
                             "accountsWithImmutableLogs": 1}
    (acct,) = first["accounts"]
    assert acct["id"] == MGMT and acct["compliant"] is True and acct["error"] is False
    assert acct["checks"] == {"trail": True, "filter": True, "alarm": True, "topic": True, "rootCredentials": True}


def test_an_unwritable_history_file_is_refused_before_auditing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    aws_env(monkeypatch, tmp_path)
    bad = tmp_path / "no-such-dir" / "h.jsonl"
    code, _, err = run_cli(["audit", "--accounts", MGMT, "--endpoint-url", "http://127.0.0.1:9", "--history", str(bad)],
                           capsys, monkeypatch)
    assert code == 2 and f"--history {bad}: cannot append" in err and "Traceback" not in err
