"""rootwatch audit --root-credentials against a moto organization.

What moto 5.2 lacks, and the stand-in used instead (test code only):

* iam:ListOrganizationsFeatures answers HTTP 500 and sts:AssumeRoot is "not implemented";
  inside an assumed session moto cannot answer the root user's own GetLoginProfile /
  ListAccessKeys / ListSigningCertificates / ListMFADevices (it looks up a user named None).
  ``StandInRootApi`` answers those calls with AWS's documented response shapes
  (``{"OrganizationId", "EnabledFeatures"}``; AssumeRoot's task-policy-scoped session; the
  IAM list shapes), reading each member's root state from moto's backend, where
  ``awsfixtures.set_root_state`` put it. It refuses AssumeRoot into chosen accounts with
  AccessDenied, the way AWS refuses without the delegated permissions.
* Without centralized root access the audit uses only moto's real GetAccountSummary and
  AssumeRole (FaultInjector refuses AssumeRole for the unassumable account).
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from awsfixtures import (
    MGMT,
    FaultInjector,
    aws_env,
    create_member_accounts,
    moto_server,
    run_cli,
    set_root_state,
)
from botocore.exceptions import ClientError

from rootwatch.commands import audit, rootcreds

MEMBERS = ("root-key", "clean", "unassumable")


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import requests

    tmp = tmp_path_factory.mktemp("rootcreds")
    with pytest.MonkeyPatch.context() as mp, moto_server() as url:
        aws_env(mp, tmp)
        requests.post(f"{url}/moto-api/reset", timeout=10)
        ids = create_member_accounts(url, MEMBERS)
        set_root_state(MGMT, access_key=False, mfa=True)
        set_root_state(ids["root-key"], access_key=True, mfa=False)
        set_root_state(ids["clean"], access_key=False, mfa=False)
        set_root_state(ids["unassumable"], access_key=False, mfa=False)
        yield {"url": url, "ids": ids}
        requests.post(f"{url}/moto-api/reset", timeout=10)


def _client_error(code: str, message: str, op: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, op)


class StandInRootIam:
    """The member's root user in an AssumeRoot session (documented response shapes, moto's state)."""

    def __init__(self, account: str, task: str, deleted: set[str]) -> None:
        from moto.iam.models import iam_backends

        self.account, self.task, self.deleted = account, task, deleted
        self.summary = iam_backends[account]["aws"].account_summary

    def _keys(self) -> bool:
        return bool(self.summary._account_access_keys_present) and self.account not in self.deleted

    def get_login_profile(self) -> dict[str, Any]:
        raise _client_error("NoSuchEntity", "The user with name root cannot be found.", "GetLoginProfile")

    def list_access_keys(self) -> dict[str, Any]:
        meta = [{"AccessKeyId": "AKIAROOTKEY000000001", "Status": "Active"}] if self._keys() else []
        return {"AccessKeyMetadata": meta, "IsTruncated": False}

    def list_signing_certificates(self) -> dict[str, Any]:
        return {"Certificates": [], "IsTruncated": False}

    def list_mfa_devices(self) -> dict[str, Any]:
        on = bool(self.summary._account_mfa_enabled)
        return {"MFADevices": [{"SerialNumber": f"arn:aws:iam::{self.account}:mfa/root", "EnableDate": "2025-01-01"}]
                if on else [], "IsTruncated": False}

    def delete_login_profile(self) -> None:
        raise _client_error("NoSuchEntity", "no login profile", "DeleteLoginProfile")

    def delete_access_key(self, AccessKeyId: str) -> None:  # noqa: N803 - boto3's parameter name
        assert self.task.endswith("/IAMDeleteRootUserCredentials")
        self.deleted.add(self.account)
        self.summary._account_access_keys_present = 0


class StandInRootApi(rootcreds.RootApi):
    def __init__(self, base: Any, edge: Any, *, central: bool, refuse: set[str]) -> None:
        super().__init__(base, edge)
        self.central, self.refuse = central, refuse
        self.sessions: list[tuple[str, str]] = []
        self.deleted: set[str] = set()

    def enabled_features(self) -> list[str]:
        if not self.central:
            raise _client_error("InternalFailure", "list_organizations_features is not implemented", "ListOrganizationsFeatures")
        response = {"OrganizationId": "o-aa111bb222", "EnabledFeatures": ["RootCredentialsManagement", "RootSessions"]}
        return list(response["EnabledFeatures"])

    def root_iam(self, account_id: str, task: str) -> Any:
        arn = rootcreds.task_policy_arn(task)
        self.sessions.append((account_id, arn))
        if account_id in self.refuse:
            raise _client_error("AccessDenied", f"not authorized to perform sts:AssumeRoot on {account_id}", "AssumeRoot")
        return StandInRootIam(account_id, arn, self.deleted)


def install(monkeypatch: pytest.MonkeyPatch, **kw: Any) -> list[StandInRootApi]:
    made: list[StandInRootApi] = []

    def factory(base: Any, edge: Any) -> StandInRootApi:
        made.append(StandInRootApi(base, edge, **kw))
        return made[-1]

    monkeypatch.setattr(rootcreds, "root_api", factory)
    return made


def _rows(out: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    report = json.loads(out)
    return report, {r["id"]: r for r in report["accounts"]}


def test_summary_path_on_moto(org: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """No centralized root access (moto's ListOrganizationsFeatures fails): GetAccountSummary through the role."""
    ids = org["ids"]
    FaultInjector(deny_assume=[ids["unassumable"]]).install(monkeypatch)
    code, out, err = run_cli(["audit", "--root-credentials", "--endpoint-url", org["url"], "--format", "json"],
                             capsys, monkeypatch)
    assert code == 1 and "Traceback" not in out + err
    report, rows = _rows(out)
    assert report["schema"] == "rootwatch.rootcredentials/v1"
    assert report["centralRootAccess"]["enabled"] is False
    assert report["centralRootAccess"]["error"]  # the 500 from moto, as one line
    assert set(rows) == {MGMT, *ids.values()}  # the management account is checked too
    key = rows[ids["root-key"]]
    assert key["method"] == "GetAccountSummary" and key["rootCredentials"] == "present"
    assert key["credentials"]["accessKeys"] is True
    clean = rows[ids["clean"]]
    # Keys and certificates are known absent; the password is not visible through the summary.
    assert clean["credentials"] == {"password": None, "accessKeys": False, "signingCertificates": False,
                                    "mfaDevices": None}
    assert clean["rootCredentials"] == "unknown"
    assert any("root password not visible" in n for n in clean["notes"])
    denied = rows[ids["unassumable"]]
    assert denied["rootCredentials"] == "unknown" and "AccessDenied" in denied["error"]
    mgmt = rows[MGMT]
    assert mgmt["isManagement"] and mgmt["credentials"]["mfaDevices"] is True
    assert report["kpis"]["memberAccounts"] == 3 and report["kpis"]["rootlessMemberAccounts"] == 0


def test_assume_root_path(org: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Centralized root access (stand-in for what moto lacks): AssumeRoot with the audit task policy."""
    ids = org["ids"]
    made = install(monkeypatch, central=True, refuse={ids["unassumable"]})
    code, out, err = run_cli(["audit", "--root-credentials", "--endpoint-url", org["url"], "--format", "json"],
                             capsys, monkeypatch)
    assert code == 1 and "Traceback" not in out + err
    report, rows = _rows(out)
    assert report["centralRootAccess"] == {"enabled": True, "error": None,
                                           "features": ["RootCredentialsManagement", "RootSessions"]}
    assert rows[ids["root-key"]]["rootCredentials"] == "present"
    assert rows[ids["root-key"]]["credentials"]["accessKeys"] is True
    assert rows[ids["clean"]]["rootCredentials"] == "none"
    assert rows[ids["clean"]]["credentials"] == {"password": False, "accessKeys": False,
                                                 "signingCertificates": False, "mfaDevices": False}
    assert rows[ids["unassumable"]]["rootCredentials"] == "unknown"
    assert "sts:AssumeRoot (IAMAuditRootUserCredentials)" in rows[ids["unassumable"]]["error"]
    # The management account is never an AssumeRoot target; it is read through its own summary.
    assert rows[MGMT]["method"] == "GetAccountSummary"
    sessions = made[0].sessions
    assert MGMT not in {a for a, _ in sessions}
    assert {arn for _, arn in sessions} == {"arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials"}
    assert report["kpis"] == {"memberAccounts": 3, "rootlessMemberAccounts": 1,
                              "rootlessMemberAccountsPercent": 33.3, "unknown": 2}  # + the management password
    # The text view shows the same states.
    code, text, _ = run_cli(["audit", "--root-credentials", "--endpoint-url", org["url"]], capsys, monkeypatch)
    assert f"{ids['clean']:<13} clean" in text and "1/3 member accounts root-less (33.3%)" in text


def test_posture_file_feeds_compliance(org: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Any) -> None:
    from rootwatch.compliance import prevention

    ids = org["ids"]
    install(monkeypatch, central=True, refuse={ids["unassumable"]})
    _, out, _ = run_cli(["audit", "--root-credentials", "--endpoint-url", org["url"], "--format", "json"],
                        capsys, monkeypatch)
    posture = prevention.posture_from_audit(json.loads(out))
    assert posture[ids["clean"]] == "none" and posture[ids["root-key"]] == "present"
    assert posture[ids["unassumable"]] == "unknown"


@pytest.mark.parametrize("argv, words", [
    (["--delete-root-credentials", "{acct}"], "confirm with --yes --confirm-account {acct}"),
    (["--delete-root-credentials", "{acct}", "--yes"], "confirm with --yes --confirm-account {acct}"),
    (["--delete-root-credentials", "{acct}", "--yes", "--confirm-account", "{mgmt}"], "confirm with"),
    (["--delete-root-credentials", "{mgmt}", "--yes", "--confirm-account", "{mgmt}"], "it is the management account"),
    (["--delete-root-credentials", "12345"], "not a 12-digit AWS account id"),
])
def test_delete_needs_confirmation_and_never_management(org: Any, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                                        words: str) -> None:
    acct = org["ids"]["root-key"]
    made = install(monkeypatch, central=True, refuse=set())
    argv = [a.format(acct=acct, mgmt=MGMT) for a in argv]
    code, _, err = run_cli(["audit", *argv, "--endpoint-url", org["url"]], capsys, monkeypatch)
    assert code == 2 and words.format(acct=acct) in err and "Traceback" not in err
    assert all(not api.deleted for api in made)


def test_delete_needs_central_root_access(org: Any, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    acct = org["ids"]["root-key"]
    install(monkeypatch, central=False, refuse=set())
    code, _, err = run_cli(["audit", "--delete-root-credentials", acct, "--yes", "--confirm-account", acct,
                            "--endpoint-url", org["url"]], capsys, monkeypatch)
    assert code == 2 and "needs centralized root access" in err


@pytest.mark.parametrize("creds, state", [
    ({"password": False, "accessKeys": False, "signingCertificates": False, "mfaDevices": True}, "none"),
    ({"password": True, "accessKeys": False, "signingCertificates": False, "mfaDevices": True}, "present"),
    ({"password": None, "accessKeys": False, "signingCertificates": True, "mfaDevices": None}, "present"),
    ({"password": None, "accessKeys": False, "signingCertificates": False, "mfaDevices": None}, "unknown"),
])
def test_state_of(creds: dict[str, Any], state: str) -> None:
    assert rootcreds.state_of(creds) == state


def test_summary_reading() -> None:
    creds, notes = rootcreds.from_summary({"AccountAccessKeysPresent": 0, "AccountSigningCertificatesPresent": 0,
                                           "AccountMFAEnabled": 1, "AccountPasswordPresent": 1})
    assert creds == {"password": True, "accessKeys": False, "signingCertificates": False, "mfaDevices": True}
    assert notes == []
    printed = io.StringIO()
    rootcreds.print_text({"centralRootAccess": {"enabled": False, "error": None}, "accounts": [], "kpis":
                          rootcreds.kpis([])}, printed)
    assert "0/0 member accounts root-less (n/a)" in printed.getvalue()
    assert audit  # the edge module the command is given


# Last: it resets moto (state is per process), which the module fixture no longer needs then.
def test_delete_root_credentials(tmp_path: Any, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    with moto_server() as url:
        aws_env(monkeypatch, tmp_path)
        requests.post(f"{url}/moto-api/reset", timeout=10)
        ids = create_member_accounts(url, ("doomed-key",))
        acct = ids["doomed-key"]
        set_root_state(acct, access_key=True, mfa=False)
        made = install(monkeypatch, central=True, refuse=set())
        code, out, err = run_cli(["audit", "--delete-root-credentials", acct, "--yes", "--confirm-account", acct,
                                  "--endpoint-url", url, "--format", "json"], capsys, monkeypatch)
        requests.post(f"{url}/moto-api/reset", timeout=10)
    assert code == 0, err
    assert "deleted root access key AKIA" in err
    report = json.loads(out)
    assert [r["id"] for r in report["accounts"]] == [acct]  # re-audited after the deletion
    assert report["accounts"][0]["rootCredentials"] == "none"
    tasks = [arn for _, arn in made[0].sessions]
    assert tasks[0] == "arn:aws:iam::aws:policy/root-task/IAMDeleteRootUserCredentials"
    assert tasks[-1].endswith("/IAMAuditRootUserCredentials")
