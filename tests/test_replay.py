"""`rootwatch replay`: input formats, verdicts on the corpus, bad input, exit codes."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest

from rootwatch.commands import cli, replay

CORPUS: list[dict[str, Any]] = json.loads((Path(__file__).parent / "data" / "cloudtrail_corpus.json").read_text())["cases"]
RECORDS = [c["record"] for c in CORPUS]
EXPECTED = {c["record"]["eventID"]: c["expect"] for c in CORPUS if c["expect"]["cis"] or c["expect"]["detected"]}
JSON_KEYS = ["eventID", "eventName", "eventTime", "account", "cis_metric_filter", "detected", "class", "severity"]


@pytest.fixture(autouse=True)
def only_replay(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Test through the real CLI entry point, independent of other subcommands,
    # from a directory without stacks/ unless a test makes one.
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("rootwatch.commands.replay",))
    monkeypatch.chdir(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["replay", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def write_cloudtrail(path: Path, records: list[Any], gz: bool = True) -> Path:
    data = json.dumps({"Records": records}, separators=(",", ":")).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def assert_corpus_verdicts(objs: list[dict[str, Any]]) -> None:
    assert {o["eventID"] for o in objs} == set(EXPECTED)
    for o in objs:
        assert list(o) == JSON_KEYS
        e = EXPECTED[o["eventID"]]
        assert (o["cis_metric_filter"], o["detected"], o["class"], o["severity"]) == (e["cis"], e["detected"], e["class"], e["severity"])


# -- verdicts ----------------------------------------------------------------------


def test_corpus_as_delivered_to_s3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # AWSLogs/<acct>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz, split over files and dirs.
    base = tmp_path / "AWSLogs" / "222222222222" / "CloudTrail"
    write_cloudtrail(base / "us-east-1/2025/03/04/a.json.gz", RECORDS[:15])
    write_cloudtrail(base / "eu-west-1/2025/03/04/b.json.gz", RECORDS[15:30])
    write_cloudtrail(base / "eu-west-1/2025/03/05/c.json", RECORDS[30:], gz=False)
    write_cloudtrail(tmp_path / "AWSLogs/222222222222/CloudTrail-Digest/us-east-1/x_CloudTrail-Digest_y.json.gz", [{"x": 1}])
    code, out, err = run(capsys, "--format", "json", "AWSLogs")
    assert code == 1
    assert_corpus_verdicts(json_lines(out))
    assert err.strip().splitlines()[-1].startswith(f"replay: 3 files, {len(RECORDS)} records, {len(EXPECTED)} matched (")
    assert "0 malformed" in err and "warning" not in err


def test_json_lines_stdin_and_concatenated_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    jsonl = tmp_path / "records.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in RECORDS[:20]) + "\n\n")
    # `zcat *.json.gz | rootwatch replay -`: documents back to back, no newline between.
    tricky = [{**r, "requestParameters": {"policy": '{"a": 1}{"b": 2}'}} for r in RECORDS[20:]]  # "}{" inside strings
    piped = b"".join(json.dumps({"Records": [r]}, separators=(",", ":")).encode() for r in tricky)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(gzip.compress(piped))))
    code, out, err = run(capsys, "--format", "json", str(jsonl), "-")
    assert code == 1
    assert_corpus_verdicts(json_lines(out))
    assert f"{len(RECORDS)} records" in err


def test_other_wrappers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = next(c["record"] for c in CORPUS if c["name"] == "root-key-run-instances")
    (tmp_path / "lookup.json").write_text(json.dumps({"Events": [{"EventId": "x", "CloudTrailEvent": json.dumps(record)}]}, indent=2))
    (tmp_path / "eventbridge.json").write_text(json.dumps({"version": "0", "detail-type": "AWS API Call via CloudTrail", "detail": record}))
    (tmp_path / "digest.json").write_text(json.dumps({"awsAccountId": "1", "digestStartTime": "x", "digestPublicKeyFingerprint": "y"}))
    (tmp_path / "array.json").write_text(json.dumps([record]))
    code, out, err = run(capsys, "--format", "json", "lookup.json", "eventbridge.json", "digest.json", "array.json")
    assert code == 1
    assert [o["eventName"] for o in json_lines(out)] == ["RunInstances"] * 3
    assert "0 malformed" in err


def test_no_findings_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cloudtrail(tmp_path / "quiet.json.gz", [c["record"] for c in CORPUS if c["expect"]["class"] is None])
    code, out, err = run(capsys, "--format", "json", "quiet.json.gz")
    assert (code, out) == (0, "")
    assert "0 matched" in err.splitlines()[-1]
    code, out, _ = run(capsys, "quiet.json.gz")
    assert code == 0 and "No matching records" in out


def test_text_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cloudtrail(tmp_path / "all.json.gz", RECORDS)
    code, out, err = run(capsys, "all.json.gz")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "ACCOUNT", "REGION", "EVENT", "CLASS", "SEVERITY", "CIS", "DETECTED"]
    assert sum("EnableMFADevice" in ln and " no " in ln and ln.rstrip().endswith("yes") for ln in lines) == 1
    assert "By class:" in out and "By account:" in out
    by_class = out.split("By class:")[1].split("By account:")[0]
    assert "credential-change" in by_class and "critical" in by_class
    assert "222222222222" in out.split("By account:")[1]
    assert err.splitlines()[-1].startswith("replay: ")


# -- --pattern ------------------------------------------------------------------------


def test_user_pattern(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cloudtrail(tmp_path / "all.json.gz", RECORDS)
    code, out, _ = run(capsys, "--format", "json", "--pattern", '{ $.eventName = "StopLogging" }', "all.json.gz")
    objs = json_lines(out)
    assert code == 1
    assert len(objs) == sum(r["eventName"] == "StopLogging" for r in RECORDS) == 3
    assert all(o["pattern"] is True for o in objs)
    assert sorted(o["class"] or "-" for o in objs) == ["-", "-", "logging-tamper"]  # non-root ones have no class
    code, out, _ = run(capsys, "--format", "json", "--pattern", '{ $.eventName = "Nope" }', "all.json.gz")
    assert (code, out) == (0, "")


def test_cis_pattern_given_as_user_pattern_matches_cis_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rootwatch.detection.rule import CIS_PATTERN

    write_cloudtrail(tmp_path / "all.json.gz", RECORDS)
    _, out, _ = run(capsys, "--format", "json", "--pattern", CIS_PATTERN, "all.json.gz")
    assert {o["eventID"] for o in json_lines(out)} == {i for i, e in EXPECTED.items() if e["cis"]}


@pytest.mark.parametrize("pattern", ["ERROR", "{ $.a EXISTS }", "{ $.a = ", "{" + " " * 1100 + "}"])
def test_bad_pattern_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], pattern: str) -> None:
    write_cloudtrail(tmp_path / "all.json.gz", RECORDS)
    code, out, err = run(capsys, "--pattern", pattern, "all.json.gz")
    assert code == 2 and out == ""
    assert err.startswith("rootwatch: error: --pattern: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


# -- bad input ------------------------------------------------------------------------


def test_bad_files_are_reported_counted_and_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "logs"
    write_cloudtrail(d / "good.json.gz", RECORDS)
    (d / "truncated.json.gz").write_bytes(gzip.compress(json.dumps({"Records": RECORDS}).encode())[:200])
    (d / "broken.json").write_text('{"Records": [{"eventName": "x"}, ')
    (d / "binary.bin").write_bytes(bytes(range(256)))
    (d / "empty.json").write_text("")
    (d / "wrong.json").write_text('{"Records": {"not": "a list"}}')
    (d / "scalar.json").write_text("42")
    (d / "foreign.json").write_text('{"hello": "world"}')
    (d / "lines.jsonl").write_text(json.dumps(RECORDS[0]) + "\n{oops\n" + json.dumps(RECORDS[1]) + '\n"text"\n')
    write_cloudtrail(d / "nonobject.json.gz", [1, RECORDS[2], None])
    (d / ".hidden.json").write_text("{bad")  # hidden files are not walked
    code, out, err = run(capsys, "--format", "json", "logs", "missing.json.gz")
    assert code == 1
    ids = [o["eventID"] for o in json_lines(out)]
    assert set(ids) == set(EXPECTED)  # good records still counted, nothing crashed
    for where in ("logs/truncated.json.gz: cannot read", "logs/broken.json: not valid JSON", "logs/binary.bin",
                  "logs/empty.json: empty input", 'logs/wrong.json: "Records" is not an array', "logs/scalar.json: expected a JSON object",
                  "logs/foreign.json: JSON object is not a CloudTrail record", "logs/lines.jsonl:2: malformed JSON line",
                  "logs/lines.jsonl:4: expected a JSON object", "logs/nonobject.json.gz: record 0 is not a JSON object",
                  "logs/nonobject.json.gz: record 2", "missing.json.gz: no such file or directory"):
        assert where in err, where
    assert ".hidden" not in err and "Traceback" not in err
    summary = err.strip().splitlines()[-1]
    assert "2 unreadable" in summary and "10 malformed skipped" in summary, summary
    assert f"{len(RECORDS) + 2 + 1} records" in summary  # good.json.gz, lines.jsonl, nonobject.json.gz


def test_problems_per_input_are_capped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.jsonl").write_text(json.dumps(RECORDS[0]) + "\n" + "{x\n" * 50)
    code, _, err = run(capsys, "bad.jsonl")
    assert code == 1
    assert err.count("malformed JSON line") == replay.MAX_PROBLEMS_SHOWN_PER_INPUT
    assert "further problems in this input are counted" in err
    assert "50 malformed skipped" in err


@pytest.mark.parametrize("setup", ["missing", "all-bad", "not-cloudtrail", "empty-dir"])
def test_no_readable_input_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str) -> None:
    target = tmp_path / "in"
    if setup == "all-bad":
        target.mkdir()
        (target / "a.json").write_text("{nope")
    elif setup == "not-cloudtrail":
        target.mkdir()
        (target / "a.json").write_text('{"hello": 1}\n42\n')
    elif setup == "empty-dir":
        target.mkdir()
    code, out, err = run(capsys, "in")
    assert code == 2 and out == ""
    assert err.strip().splitlines()[-1] == "rootwatch: error: no readable input: every input was missing, unreadable or malformed"


def test_stdin_only_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-", "-")
    assert code == 2 and "stdin" in err


# -- --stack ------------------------------------------------------------------------------


def test_stack_is_checked_against_stacks_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cloudtrail(tmp_path / "quiet.json.gz", [])
    assert run(capsys, "quiet.json.gz")[0] == 0  # no stacks/ dir: nothing to check
    (tmp_path / "stacks").mkdir()
    code, _, err = run(capsys, "quiet.json.gz")
    assert code == 2 and err.strip() == "rootwatch: error: --stack 'example': stacks/Pulumi.example.yaml does not exist"
    # Real stacks: replay grades matches with the stack's severity settings.
    example = (Path(__file__).resolve().parent.parent / "stacks" / "Pulumi.example.yaml").read_text()
    (tmp_path / "stacks" / "Pulumi.example.yaml").write_text(example)
    (tmp_path / "stacks" / "Pulumi.prod.yaml").write_text(example)
    assert run(capsys, "quiet.json.gz")[0] == 0
    assert run(capsys, "--stack", "prod", "quiet.json.gz")[0] == 0
    code, _, err = run(capsys, "--stack", "../etc", "quiet.json.gz")
    assert code == 2 and "stack names use" in err


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["replay", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for text in ("exit codes:", "0  ran fine", "1  findings", "2  usage or input error", "--pattern", "--stack", "--format"):
        assert text in out


def test_engine_in_process(tmp_path: Path) -> None:
    write_cloudtrail(tmp_path / "all.json.gz", RECORDS)
    found: list[replay.Match] = []
    stats = replay.replay([str(tmp_path)], replay.builtin_evaluator(), found.append, replay.Problems(io.StringIO()))
    assert stats.records == len(RECORDS) and stats.matched == len(found) == len(EXPECTED)
    assert stats.cis == sum(e["cis"] for e in EXPECTED.values())
    assert all(m.finding is not None for m in found)


# -- replay never hides input (issue 14) ------------------------------------------------


def _root_login() -> dict[str, Any]:
    return next(c["record"] for c in CORPUS if c["name"] == "root-console-login-success-mfa")


@pytest.mark.parametrize("accelerated", [True, False])
def test_truncated_first_line_skips_that_line_only(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch, accelerated: bool) -> None:
    # Today: the whole file was dropped as "not valid JSON", the root ConsoleLogin on line 5 lost, exit 0.
    if not accelerated:
        from rootwatch.commands import replay_fast
        monkeypatch.setattr(replay_fast, "_simdjson", None)
    quiet = [c["record"] for c in CORPUS if c["expect"]["class"] is None]
    lines = [json.dumps(quiet[0])[:57], *(json.dumps(r) for r in quiet[1:4]), json.dumps(_root_login()), json.dumps(quiet[4])]
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    write_cloudtrail(tmp_path / "b.json", quiet[5:9], gz=False)
    code, out, err = run(capsys, "--format", "json", "a.jsonl", "b.json")
    assert code == 1
    assert [o["eventName"] for o in json_lines(out)] == ["ConsoleLogin"]
    assert "rootwatch: warning: a.jsonl:1: malformed JSON line, skipped" in err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("replay: 2 files, 9 records, 1 matched") and "1 malformed skipped, 0 unreadable" in summary
    code, out, err = run(capsys, "--strict", "--format", "json", "a.jsonl", "b.json")
    assert code == 2 and [o["eventName"] for o in json_lines(out)] == ["ConsoleLogin"]  # findings still printed
    tail = err.strip().splitlines()
    assert "1 malformed skipped" in tail[-2]  # the summary still counts what was skipped
    assert tail[-1] == "rootwatch: error: --strict: 1 malformed and 0 unreadable inputs, lines or records were skipped"


def test_a_broken_document_is_still_reported_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pretty.json").write_text(json.dumps({"Records": RECORDS[:3]}, indent=2)[:-40])
    write_cloudtrail(tmp_path / "ok.json", RECORDS[:2], gz=False)
    code, _, err = run(capsys, "pretty.json", "ok.json")
    assert err.count("pretty.json") == 1 and "pretty.json: not valid JSON" in err
    assert "1 malformed skipped" in err.strip().splitlines()[-1]


def test_strict_counts_unreadable_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cloudtrail(tmp_path / "ok.json.gz", [c["record"] for c in CORPUS if c["expect"]["class"] is None])
    assert run(capsys, "ok.json.gz", "missing.json")[0] == 0  # skipped input alone does not change the exit code
    code, _, err = run(capsys, "--strict", "ok.json.gz", "missing.json")
    assert code == 2 and "0 malformed and 1 unreadable" in err
    assert run(capsys, "--strict", "ok.json.gz")[0] == 0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_only(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        write_cloudtrail(tmp_path / f"f{i}.json.gz", RECORDS)
    term = _Terminal()
    monkeypatch.setattr("sys.stderr", term)
    assert cli.main(["replay", "--jobs", "1", "--format", "json", "."]) == 1
    text = term.getvalue()
    assert "\rreplay: 1/3 files, " in text and "records/s" in text and "\r\x1b[K" in text  # drawn, then cleared
    assert text.rstrip().rsplit("\r\x1b[K", 1)[-1].startswith("replay: 3 files, ")  # the summary on a clean line
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("rootwatch.commands.replay",))
    _, _, err = run(capsys, "--format", "json", ".")
    assert "\r" not in err  # not a terminal: no progress


def test_stack_grades_each_match_by_the_accounts_baseline_and_the_matrix(capsys: pytest.CaptureFixture[str],
                                                                         tmp_path: Path) -> None:
    """One root console login (class default: high) seen in three accounts of the example stack:
    payments-prod is in the critical production OU, dev-sandbox-alice has a low baseline, and an
    account the stack does not know gets the stack's default (medium): max(baseline, class)."""
    corpus = json.loads((Path(__file__).parent / "data" / "cloudtrail_corpus.json").read_text())
    login = next(c["record"] for c in corpus["cases"] if c["name"] == "root-console-login-success-mfa")
    records = [{**login, "eventID": f"e-{acct}", "recipientAccountId": acct,
                "userIdentity": {**login["userIdentity"], "accountId": acct}}
               for acct in ("222222222201", "222222222206", "999999999999")]
    path = tmp_path / "logins.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, out, _ = run(capsys, "--format", "json", "--jobs", "1", str(path))
    assert code == 1
    levels = {j["account"]: (j["class"], j["severity"]) for j in json_lines(out)}
    assert levels == {"222222222201": ("console-login", "critical"), "222222222206": ("console-login", "high"),
                      "999999999999": ("console-login", "high")}
    # The stack's severity matrix overrides the default grading.
    stack = tmp_path / "Pulumi.graded.yaml"
    example = (Path(__file__).resolve().parent.parent / "stacks" / "Pulumi.example.yaml").read_text()
    stack.write_text(example.replace("  rootwatch:realtime:\n", "  rootwatch:realtime:\n"
                                     "    severityMatrix:\n      console-login: {low: medium}\n", 1))
    code, out, _ = run(capsys, "--format", "json", "--jobs", "1", "--stack", str(stack), str(path))
    assert {j["account"]: j["severity"] for j in json_lines(out)}["222222222206"] == "medium"
