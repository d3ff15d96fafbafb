"""The alert formatter as plain Python, publishing to moto SNS topics read through SQS.

Each level's topic has its own SQS subscriber, so "which route got the alert"
is "which queue has the message". The account directory is built by the same
function the program ships in the hub formatter's archive (rootwatch.program.hub.directory);
``env_for`` renders it as the file's parts (JSON text per key) so tests can break one part.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from rootwatch.core.errors import ConfigError
from rootwatch.core.severity import ORDERED, Severity, highest
from rootwatch.detection import rule as detection
from rootwatch.lambdas import formatter
from rootwatch.program import hub as hubmod
from rootwatch.program import realtime
from rootwatch.program import settings as rw_settings
from rootwatch.program.organization import Account

ROOT = Path(__file__).resolve().parent.parent
CORPUS = json.loads((ROOT / "tests" / "data" / "cloudtrail_corpus.json").read_text())["cases"]
DETECTED = [c for c in CORPUS if c["expect"]["detected"]]
ACCT = "123456789012"  # moto's default account: topic ARNs match the ones the program computes
REGION = "us-east-1"
ACCOUNT = Account(ACCT, "payments-prod", ou_path=("r-ex01", "ou-ex01-prod0001"), ou_name="production")
RUNBOOK = "https://wiki.example.com/security/runbooks/root-activity"
SECRETS = ("hooks.example.com/T0KEN-do-not-leak", "ext-id-do-not-leak", "AWS-SECRET-do-not-leak", "SESSION-do-not-leak")
ALL_ROUTES = {lvl.value: [{"protocol": "email", "endpoint": "oncall@example.com"},
                          {"protocol": "https", "endpoint": f"https://{SECRETS[0]}"}] for lvl in ORDERED}


def load(**config: Any) -> rw_settings.RootwatchSettings:
    values = {"rootwatch:routes": ALL_ROUTES, "rootwatch:runbookUrl": RUNBOOK,
              "rootwatch:access": {"externalId": SECRETS[1]}, **config}
    return rw_settings.load({k: json.dumps(v) if not isinstance(v, str) else v for k, v in values.items()})


ENV_TOPICS, ENV_SEVERITY, ENV_BREAK_GLASS = formatter.DIR_TOPICS, formatter.DIR_MATRIX, formatter.DIR_BREAK_GLASS


def env_for(settings: rw_settings.RootwatchSettings, baseline: Severity, account: Account = ACCOUNT) -> dict[str, str]:
    """The hub directory for one account with ``baseline``, each part as JSON text."""
    doc = hubmod.directory(settings, [account], ACCT, REGION)
    doc[formatter.DIR_ACCOUNTS][account.id]["baseline"] = baseline.value
    doc[formatter.DIR_SESSIONS_TABLE] = None
    return {k: json.dumps(v) for k, v in doc.items()}


def directory_of(env: dict[str, str]) -> formatter.Directory:
    def part(v: str) -> Any:
        try:
            return json.loads(v)
        except ValueError:
            return v
    return formatter.load_directory({k: part(v) for k, v in env.items()})


def load_config(env: dict[str, str]) -> formatter.Config:
    return directory_of(env).config_for(ACCT)


def event(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    rec = copy.deepcopy(record)
    rec.update(changes)
    rec["recipientAccountId"] = ACCT  # the account the directory knows
    return detection.wrap_eventbridge(rec)


def case(name: str) -> dict[str, Any]:
    return next(c for c in CORPUS if c["name"] == name)["record"]


class Routes:
    """moto topics, one SQS queue per level subscribed to its topic."""

    def __init__(self) -> None:
        self.sns = boto3.client("sns", REGION)
        self.sqs = boto3.client("sqs", REGION)
        self.queues: dict[Severity, str] = {}
        for lvl in ORDERED:
            topic = self.sns.create_topic(Name=hubmod.topic_name(lvl))["TopicArn"]
            url = self.sqs.create_queue(QueueName=f"route-{lvl.value}")["QueueUrl"]
            arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
            self.queues[lvl] = url

    def drain(self) -> dict[Severity, list[dict[str, Any]]]:
        """SNS envelopes received per level since the last drain."""
        out: dict[Severity, list[dict[str, Any]]] = {}
        for lvl, url in self.queues.items():
            while msgs := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
                for m in msgs:
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                out.setdefault(lvl, []).extend(json.loads(m["Body"]) for m in msgs)
        return out

    def only(self) -> tuple[Severity, dict[str, Any]]:
        got = self.drain()
        assert len(got) == 1 and len(next(iter(got.values()))) == 1, got
        ((lvl, (envelope,)),) = got.items()
        return lvl, envelope


@pytest.fixture
def routes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Routes]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRETS[2])
    monkeypatch.setenv("AWS_SESSION_TOKEN", SECRETS[3])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield Routes()


def run(env: dict[str, str], evt: Any) -> dict[str, Any]:
    return formatter.handler(evt, None, directory=directory_of(env))


# -- severity -------------------------------------------------------------------------------


def test_every_corpus_class_reaches_the_route_of_its_level(routes: Routes) -> None:
    settings = load()
    env = env_for(settings, Severity.MEDIUM)
    for c in DETECTED:
        result = run(env, event(c["record"]))
        lvl, envelope = routes.only()
        # Default matrix: the higher of the class's level (raised for no-MFA sign-ins) and the baseline.
        expected = highest(Severity(c["expect"]["severity"]), Severity.MEDIUM)
        assert (result["kind"], lvl) == ("root", expected), c["name"]
        doc = json.loads(envelope["Message"])
        assert doc["finding"]["event_class"] == c["expect"]["class"] and doc["severity"] == expected.value, c["name"]
        assert envelope["MessageAttributes"]["severity"]["Value"] == expected.value


@pytest.mark.parametrize("baseline", ORDERED)
def test_default_matrix_is_the_higher_of_class_and_baseline(baseline: Severity) -> None:
    settings = load()
    cfg = load_config(env_for(settings, baseline))
    for c in DETECTED:
        alert = formatter.build_alert(event(c["record"]), cfg)
        assert alert.severity == highest(Severity(c["expect"]["severity"]), baseline), (c["name"], baseline)
        assert alert.doc["finding"]["event_class"] == c["expect"]["class"]


def test_configured_matrix_overrides_cells_but_keeps_the_no_mfa_escalation() -> None:
    matrix = {"console-login-failure": {"*": "low"}, "console-login": {"low": "medium"}}
    settings = load(**{"rootwatch:realtime": {"severityMatrix": matrix}})
    cfg = load_config(env_for(settings, Severity.LOW))
    level = {n: formatter.build_alert(event(case(n)), cfg).severity for n in (
        "root-console-login-failure-no-mfa", "root-console-login-success-mfa", "root-console-login-success-no-mfa",
        "root-key-list-buckets-readonly")}
    assert level == {"root-console-login-failure-no-mfa": Severity.LOW, "root-console-login-success-mfa": Severity.MEDIUM,
                     "root-console-login-success-no-mfa": Severity.CRITICAL, "root-key-list-buckets-readonly": Severity.CRITICAL}
    # "*" applies to every baseline, a named baseline wins over it.
    assert settings.realtime.matrix_row(Severity.CRITICAL)[detection.EventClass.CONSOLE_LOGIN_FAILURE] == Severity.LOW
    assert settings.realtime.matrix_row(Severity.HIGH)[detection.EventClass.CONSOLE_LOGIN] == Severity.HIGH


def test_matrix_levels_count_as_reachable_for_routing() -> None:
    # A matrix that lowers an alert makes that level reachable: it needs a subscriber.
    routes = {"high": ALL_ROUTES["high"], "critical": ALL_ROUTES["critical"]}
    base = {"rootwatch:routes": routes, "rootwatch:severity": {"default": "high"}}
    assert load(**base).levels_for(Severity.HIGH) == [Severity.HIGH, Severity.CRITICAL]
    lowered = {**base, "rootwatch:realtime": {"severityMatrix": {"console-login-failure": {"*": "low"}}}}
    with pytest.raises(ConfigError) as err:
        load(**lowered)
    assert "routes: level(s) low can be reached but have no subscription" in str(err.value)


def test_matrix_keys_are_validated() -> None:
    with pytest.raises(ConfigError) as err:
        load(**{"rootwatch:realtime": {"severityMatrix": {"console-logon": {"*": "low"}}}})
    assert "rootwatch:realtime.severityMatrix.console-logon" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load(**{"rootwatch:realtime": {"severityMatrix": {"console-login": {"urgent": "low"}}}})
    assert "severityMatrix.console-login" in str(err.value)


# -- break-glass ----------------------------------------------------------------------------

WINDOW = {"ticket": "SEC-42", "accounts": [ACCT], "approvers": ["alice@example.com", "bob@example.com"],
          "start": "2026-11-24T10:00:00Z", "end": "2026-11-24T12:00:00Z", "reason": "restore MFA device"}
LOGIN = "root-console-login-success-mfa"


def at(time: str) -> dict[str, Any]:
    return event(case(LOGIN), eventTime=time)


@pytest.mark.parametrize("time,inside", [
    ("2026-11-24T09:59:59Z", False),
    ("2026-11-24T10:00:00Z", True),  # start is inclusive
    ("2026-11-24T11:59:59Z", True),
    ("2026-11-24T12:00:00Z", False),  # end is exclusive
    ("2026-11-25T11:00:00Z", False),
])
def test_break_glass_marks_only_inside_its_window_and_changes_nothing_else(routes: Routes, time: str, inside: bool) -> None:
    plain = env_for(load(), Severity.MEDIUM)
    windowed = env_for(load(**{"rootwatch:breakGlass": {"windows": [WINDOW]}}), Severity.MEDIUM)
    run(plain, at(time))
    lvl_plain, without = routes.only()
    run(windowed, at(time))
    lvl_windowed, with_window = routes.only()
    marking = "AUTHORIZED BREAK-GLASS SEC-42 (approved by alice@example.com, bob@example.com)"
    # Never suppressed, never re-routed by default: the level is the same either way.
    assert lvl_plain == lvl_windowed == Severity.HIGH
    text = json.loads(with_window["Message"])
    if inside:
        assert text["marking"] == [marking]
        assert with_window["Subject"].startswith("[HIGH] BREAK-GLASS SEC-42: Root ConsoleLogin")
        assert text["breakGlass"][0]["ticket"] == "SEC-42"
    else:
        assert text["marking"] == [] and text["breakGlass"] == []
        assert with_window["Subject"] == without["Subject"]
    # Apart from the marking, the message is the one without a window.
    strip = {"marking", "breakGlass", "subject", "timeToDetectSeconds"}  # the wall clock moved between the runs
    assert {k: v for k, v in text.items() if k not in strip} == {k: v for k, v in json.loads(without["Message"]).items() if k not in strip}


def test_break_glass_email_text_carries_the_marking_first() -> None:
    cfg = load_config(env_for(load(**{"rootwatch:breakGlass": {"windows": [WINDOW]}}), Severity.MEDIUM))
    alert = formatter.build_alert(at("2026-11-24T10:30:00Z"), cfg)
    first, *rest = alert.text.splitlines()
    assert first == "AUTHORIZED BREAK-GLASS SEC-42 (approved by alice@example.com, bob@example.com)"
    assert any(line.startswith("Break-glass window: SEC-42, 2026-11-24T10:00:00Z to 2026-11-24T12:00:00Z") and
               "restore MFA device" in line for line in rest)
    outside = formatter.build_alert(at("2026-11-24T13:00:00Z"), cfg)
    assert "AUTHORIZED" not in outside.text and "Break-glass window: none" in outside.text


def test_a_window_level_reroutes_only_inside_the_window(routes: Routes) -> None:
    env = env_for(load(**{"rootwatch:breakGlass": {"windows": [{**WINDOW, "level": "low"}]}}), Severity.MEDIUM)
    run(env, at("2026-11-24T11:00:00Z"))
    assert routes.only()[0] == Severity.LOW
    run(env, at("2026-11-24T12:00:00Z"))
    assert routes.only()[0] == Severity.HIGH


def test_windows_of_other_accounts_never_reach_this_formatter() -> None:
    other = {**WINDOW, "ticket": "SEC-99", "accounts": ["222222222299"]}
    env = env_for(load(**{"rootwatch:breakGlass": {"windows": [WINDOW, other]}}), Severity.MEDIUM)
    # One formatter holds every window; an alert sees only its own account's.
    assert [w.ticket for w in load_config(env).windows] == ["SEC-42"]


def test_tamper_alerts_are_marked_but_stay_critical() -> None:
    cfg = load_config(env_for(load(**{"rootwatch:breakGlass": {"windows": [{**WINDOW, "level": "low"}]}}), Severity.LOW))
    alert = formatter.build_alert(event(case("iam-user-stop-logging"), eventTime="2026-11-24T11:00:00Z"), cfg)
    assert alert.kind == "tamper" and alert.severity == Severity.CRITICAL
    assert alert.doc["marking"] == ["AUTHORIZED BREAK-GLASS SEC-42 (approved by alice@example.com, bob@example.com)"]


@pytest.mark.parametrize("window,message", [
    ({**WINDOW, "approvers": ["alice", " ALICE "]}, "a break-glass window needs at least two distinct approvers"),
    ({**WINDOW, "approvers": ["alice"]}, "a break-glass window needs at least two distinct approvers"),
    ({**WINDOW, "end": "2026-11-24T18:00:01Z"}, "windows[0] (SEC-42) is longer than breakGlass.maxHours (8 h)"),
    ({**WINDOW, "end": "2026-11-24T09:00:00Z"}, "end must be after start"),
    ({**WINDOW, "start": "2026-11-24T10:00:00"}, "needs a timezone"),
    ({**WINDOW, "level": "urgent"}, "breakGlass.windows[0].level"),
])
def test_bad_break_glass_windows_are_config_errors(window: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(**{"rootwatch:breakGlass": {"windows": [window]}})
    assert message in str(err.value)


def test_max_hours_is_configurable_and_windows_must_fit_the_formatter() -> None:
    long = {**WINDOW, "end": "2026-11-25T08:00:00Z"}
    assert load(**{"rootwatch:breakGlass": {"maxHours": 24, "windows": [long]}}).break_glass.windows[0].ticket == "SEC-42"
    many = [{**WINDOW, "ticket": f"SEC-{i}", "reason": "x" * 400} for i in range(8)]
    with pytest.raises(ConfigError) as err:
        load(**{"rootwatch:breakGlass": {"windows": many}})
    assert f"account {ACCT} has" in str(err.value) and "remove expired windows" in str(err.value)


def test_the_environment_fits_lambdas_4kb_with_the_largest_allowed_windows() -> None:
    reason = "r" * 500
    windows = []
    while True:
        candidate = [*windows, {**WINDOW, "ticket": f"SEC-{len(windows)}", "reason": reason}]
        if len(rw_settings.windows_json([rw_settings.BreakGlassWindow.model_validate(w) for w in candidate])) > \
                rw_settings.MAX_WINDOW_BYTES_PER_ACCOUNT:
            break
        windows = candidate
    long_account = Account(ACCT, "n" * 50, ou_path=("r-ex01", "ou-ex01-" + "p" * 32), ou_name="o" * 100)
    env = env_for(load(**{"rootwatch:breakGlass": {"windows": windows}}), Severity.LOW, long_account)
    # The directory is a file in the archive, not Lambda's 4 KB environment: all of it arrives.
    assert sum(len(k) + len(v) for k, v in env.items()) > 4096
    assert len(load_config(env).windows) == len(windows) and load_config(env).problems == ()


# -- message content ------------------------------------------------------------------------


def test_message_has_what_a_responder_needs(routes: Routes) -> None:
    env = env_for(load(), Severity.MEDIUM)
    record = case("root-key-run-instances")
    run(env, event(record))
    lvl, envelope = routes.only()
    doc = json.loads(envelope["Message"])
    assert lvl == Severity.CRITICAL
    subject = envelope["Subject"]
    assert len(subject) <= 100 and subject == f"[CRITICAL] Root RunInstances in payments-prod ({ACCT})"
    cfg = load_config(env)
    text = formatter.build_alert(event(record), cfg).text
    region, event_id = record["awsRegion"], record["eventID"]
    for needed in (
        f"Account: payments-prod ({ACCT})",
        "OU: production (ou-ex01-prod0001)",
        "Event: RunInstances (ec2.amazonaws.com)",
        "Class: access-key-call",
        f"Source IP: {record['sourceIPAddress']}",
        f"User agent: {record['userAgent']}",
        f"Region: {region}",
        "MFA used: ",
        f"Time: {record['eventTime']}",
        f"Console: https://{region}.console.aws.amazon.com/cloudtrailv2/home?region={region}#/events/{event_id}",
        f"Runbook: {RUNBOOK}",
        "Break-glass window: none",
    ):
        assert needed in text, needed
    assert doc["account"] == {"id": ACCT, "name": "payments-prod", "ou": "ou-ex01-prod0001", "ouName": "production",
                              "baseline": "medium"}
    assert doc["consoleUrl"].endswith(f"#/events/{event_id}") and doc["runbookUrl"] == RUNBOOK


def test_subject_stays_within_100_characters_and_one_line() -> None:
    long_account = Account(ACCT, "a-very-long-account-name-" + "x" * 25)
    cfg = load_config(env_for(load(**{"rootwatch:breakGlass": {"windows": [{**WINDOW, "ticket": "T" * 64}]}}),
                                        Severity.LOW, long_account))
    rec = case("root-console-login-success-mfa")
    alert = formatter.build_alert(event(rec, eventName="X" * 120 + "\nInjected", eventTime="2026-11-24T10:30:00Z"), cfg)
    assert len(alert.subject) <= 100 and "\n" not in alert.subject and alert.subject.startswith("[")
    hostile = formatter.build_alert(event(rec, userAgent="curl\r\nSeverity: LOW" + "z" * 1000), cfg)
    ua_line = next(line for line in hostile.text.splitlines() if line.startswith("User agent:"))
    assert "\r" not in ua_line and len(ua_line) <= 320
    assert not any(line.startswith("Severity: LOW") for line in hostile.text.splitlines())


def test_secrets_never_appear_in_messages_or_the_environment(routes: Routes) -> None:
    env = env_for(load(**{"rootwatch:breakGlass": {"windows": [WINDOW]}}), Severity.LOW)
    assert not any(s in json.dumps(env) for s in SECRETS) and "oncall@example.com" not in json.dumps(env)
    for c in CORPUS:
        run(env, event(c["record"]))
    for bad in (None, {}, {"detail": "text"}, "not an event"):
        run(env, bad)
    received = json.dumps(routes.drain())
    # AssumeRoot openers are kept to label their sessions, not alerted (their member-side records are).
    openers = sum(1 for c in CORPUS if formatter.assume_root_opening(c["record"]) is not None)
    assert received.count('"Type": "Notification"') == len(CORPUS) + 4 - openers
    for secret in (*SECRETS, "oncall@example.com"):
        assert secret not in received


def test_sqs_subscribers_get_a_json_document_and_email_gets_text() -> None:
    cfg = load_config(env_for(load(), Severity.MEDIUM))
    alert = formatter.build_alert(event(case(LOGIN)), cfg)
    req = formatter.sns_request(alert, cfg.topics[alert.severity])
    body = json.loads(req["Message"])
    assert req["MessageStructure"] == "json" and body["default"] == alert.text
    assert json.loads(body["sqs"]) == json.loads(body["lambda"]) == json.loads(json.dumps(alert.doc, default=str))


# -- tamper, unrecognized and malformed events ---------------------------------------------------


def test_tamper_event_is_a_critical_alert_naming_the_caller(routes: Routes) -> None:
    env = env_for(load(), Severity.LOW)
    run(env, event(case("iam-user-stop-logging")))
    lvl, envelope = routes.only()
    assert lvl == Severity.CRITICAL and envelope["Subject"].startswith("[CRITICAL] TAMPER: StopLogging on rootwatch")
    doc = json.loads(envelope["Message"])
    assert doc["kind"] == "tamper" and doc["event"]["caller"] == case("iam-user-stop-logging")["userIdentity"]["arn"]


@pytest.mark.parametrize("bad", [
    None,
    "a string",
    [],
    {},
    {"detail": None},
    {"detail": "not an object"},
    {"detail-type": "AWS API Call via CloudTrail", "detail": {"eventName": 7, "userIdentity": "Root"}},
    {"detail": {"userIdentity": {"type": "Root"}, "eventTime": "yesterday", "eventName": ["x"]}},
])
def test_malformed_events_still_alert_critical_with_the_raw_event(routes: Routes, bad: Any) -> None:
    result = run(env_for(load(), Severity.LOW), bad)
    lvl, envelope = routes.only()
    assert lvl == Severity.CRITICAL and result["severity"] == "critical"
    doc = json.loads(envelope["Message"])
    assert doc["kind"] in ("malformed", "unrecognized", "untrusted", "root")
    if doc["kind"] != "root":
        assert doc["rawEvent"] == json.dumps(bad, sort_keys=True, default=str)


def test_events_the_rules_would_not_send_are_unrecognized_not_dropped() -> None:
    cfg = load_config(env_for(load(), Severity.LOW))
    alert = formatter.build_alert(event(case("iam-user-create-bucket")), cfg)
    assert (alert.kind, alert.severity) == ("unrecognized", Severity.CRITICAL)
    assert '"eventName": "CreateBucket"' in alert.doc["rawEvent"]


def test_custom_source_events_are_flagged_as_possibly_forged_not_as_root_activity(routes: Routes) -> None:
    # The rule pattern does not test `source`; PutEvents can never use aws.*, so the formatter does.
    forged = {**event(case(LOGIN)), "source": "attacker.app"}
    result = run(env_for(load(), Severity.LOW), forged)
    lvl, envelope = routes.only()
    doc = json.loads(envelope["Message"])
    assert (lvl, result["kind"]) == (Severity.CRITICAL, "untrusted")
    assert "possibly forged" in " ".join(doc["notes"]) and "attacker.app" in doc["rawEvent"]
    assert not envelope["Subject"].startswith("[CRITICAL] Root")


def test_a_classifier_crash_still_publishes_critical_with_the_raw_event(routes: Routes, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_: Any) -> None:
        raise KeyError("userIdentity")

    monkeypatch.setattr(formatter, "classify", boom)
    result = run(env_for(load(), Severity.LOW), event(case(LOGIN)))
    lvl, envelope = routes.only()
    doc = json.loads(envelope["Message"])
    assert (lvl, result["kind"]) == (Severity.CRITICAL, "malformed")
    assert "formatting failed: KeyError" in " ".join(doc["notes"]) and case(LOGIN)["eventID"] in doc["rawEvent"]


def test_a_failed_publish_fails_the_invocation_so_the_on_failure_destination_takes_over() -> None:
    class Down:
        def publish(self, **_: Any) -> None:
            raise RuntimeError("SNS unavailable")

    env = env_for(load(), Severity.LOW)
    with pytest.raises(RuntimeError, match="SNS unavailable"):
        formatter.handler(event(case(LOGIN)), None, client=Down(), directory=directory_of(env))


def test_without_a_critical_topic_the_invocation_fails_loudly() -> None:
    env = env_for(load(), Severity.LOW)
    with pytest.raises(formatter.ConfigurationError):
        formatter.handler(event(case(LOGIN)), None, directory=directory_of({**env, ENV_TOPICS: "{not json"}))
    no_critical = {k: v for k, v in json.loads(env[ENV_TOPICS]).items() if k != "critical"}
    with pytest.raises(formatter.ConfigurationError):
        formatter.handler(event(case(LOGIN)), None, directory=directory_of({**env, ENV_TOPICS: json.dumps(no_critical)}))


def test_an_unreadable_environment_part_escalates_to_critical_and_says_why(routes: Routes) -> None:
    env = {**env_for(load(), Severity.LOW), ENV_SEVERITY: "{broken", ENV_BREAK_GLASS: '[{"ticket": 1}]'}
    run(env, event(case(LOGIN)))
    lvl, envelope = routes.only()
    notes = json.loads(envelope["Message"])["notes"]
    assert lvl == Severity.CRITICAL
    assert any(ENV_SEVERITY in n for n in notes) and any("break-glass window is unreadable" in n for n in notes)


def test_a_level_without_a_topic_goes_to_critical_with_a_note(routes: Routes) -> None:
    env = env_for(load(), Severity.LOW)
    topics = {k: v for k, v in json.loads(env[ENV_TOPICS]).items() if k != "high"}
    run({**env, ENV_TOPICS: json.dumps(topics)}, event(case(LOGIN)))
    lvl, envelope = routes.only()
    assert lvl == Severity.CRITICAL and "no topic for level high" in envelope["Message"]


# -- packaging ------------------------------------------------------------------------------


def test_the_lambda_package_imports_with_the_standard_library_only(tmp_path: Path) -> None:
    bundle = tmp_path / "formatter.zip"
    with zipfile.ZipFile(bundle, "w") as z:
        for arc, path in realtime.lambda_modules().items():
            z.write(path, arc)
    script = (
        "import sys, json; sys.path.insert(0, sys.argv[1]);"
        "import rootwatch.lambdas.formatter as f;"
        "assert f.__file__.startswith(sys.argv[1]);"
        "assert not any(m.split('.')[0] in ('pydantic', 'pulumi', 'pulumi_aws', 'yaml') for m in sys.modules);"
        "print(callable(f.handler))"
    )
    # -S: no site-packages (as in Lambda, only the archive and the standard library; boto3 is imported late).
    out = subprocess.run([sys.executable, "-S", "-I", "-c", script, str(bundle)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
    assert os.path.basename(realtime.HANDLER.rsplit(".", 1)[0].replace(".", "/")) == "formatter"
