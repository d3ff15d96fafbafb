"""replay's fast path (simdjson, ISA-L, --jobs) gives the plain matcher's verdicts, record for record."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from rootwatch.commands import cli, replay, replay_fast
from corpora import project_records, realworld_labels, realworld_records

pytestmark = pytest.mark.skipif(not replay_fast.accelerators()["simdjson"], reason="pysimdjson is not installed")


def verdicts(data: bytes, lazy: bool) -> tuple[list[tuple[Any, ...]], replay.Stats, int]:
    """(verdicts in order, stats, problems) of one input through the engine's reader and scanner."""
    problems = replay.Problems(io.StringIO())
    stats = replay.Stats()
    found: list[replay.Match] = []
    evaluate = replay.builtin_evaluator()
    if not lazy:
        evaluate = (lambda f: (lambda r: f(r)))(evaluate)  # same matcher, without the requires_root hint
    lazy_batches: list[bool] = []

    def consume(records: Any, line: int | None, raw: bytes | None) -> None:
        lazy_batches.append(raw is not None)
        replay._scan(records, line, raw, "x", evaluate, found.append, stats, problems)

    replay.read_documents(data, "x", problems, stats, consume, lazy=lazy)
    assert all(lazy_batches) if lazy else not any(lazy_batches)
    rows = [(m.record.get("eventID"), m.cis, m.detected, m.finding) for m in found]
    return rows, stats, problems.malformed


def plain_verdict(record: Any) -> tuple[Any, ...] | None:
    """The plain matcher on the parsed record, no reader involved."""
    m = replay.builtin_evaluator()(record) if isinstance(record, dict) else None
    return None if m is None else (record.get("eventID"), m.cis, m.detected, m.finding)


def check_every_record(corpus: list[tuple[str, bytes, Any]]) -> int:
    matched = 0
    for name, raw, record in corpus:
        expect = plain_verdict(record)
        fast, fstats, _ = verdicts(raw, lazy=True)  # a JSON Lines line: one bare record
        slow, sstats, _ = verdicts(raw, lazy=False)
        assert fast == slow == ([expect] if expect else []), name
        assert (fstats.records, fstats.usable_inputs) == (sstats.records, sstats.usable_inputs), name
        matched += bool(expect)
    # All at once, as a CloudTrail log file {"Records": [...]}: same verdicts, same order.
    log_file = b'{"Records":[' + b",".join(raw for _, raw, _ in corpus) + b"]}"
    fast, fstats, _ = verdicts(log_file, lazy=True)
    slow, sstats, _ = verdicts(log_file, lazy=False)
    assert fast == slow and len(fast) == matched
    assert fstats.records == sstats.records == len(corpus)
    return matched


def test_fast_path_verdicts_on_every_project_corpus_record() -> None:
    assert check_every_record(project_records()) > 20


def test_fast_path_verdicts_on_every_realworld_record() -> None:
    corpus = [(n, raw, rec) for n, raw, rec in realworld_records() if isinstance(rec, dict)]
    assert check_every_record(corpus) == 64


def test_realworld_labels_hold_cis_exactly_and_the_extended_rule_alerts_as_intended() -> None:
    labels = realworld_labels()
    for name, _, record in realworld_records():
        line = int(name.rsplit(":", 1)[1])
        v = plain_verdict(record)
        cis, detected = (v[1], v[2]) if v else (False, False)
        assert cis is labels[line]["cis"], name
        assert detected is labels[line]["should_alert"], name
    old = realworld_records()[25][2]  # line 26: 2014, eventVersion 1.01, no eventType
    assert "eventType" not in old and plain_verdict(old)[1:3] == (False, True)  # type: ignore[index]


def test_lookalikes_escapes_and_duplicates_take_the_exact_path() -> None:
    base = {"eventVersion": "1.09", "eventName": "ListBuckets", "eventSource": "s3.amazonaws.com", "eventType": "AwsApiCall"}
    rows = [
        {**base, "eventID": "iam-user-named-root", "userIdentity": {"type": "IAMUser", "userName": "Root"}},
        {**base, "eventID": "issuer-root", "userIdentity": {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"type": "Root"}}}},
        {**base, "eventID": "real-root", "userIdentity": {"type": "Root", "accountId": "1"}},
        {**base, "eventID": "string-only", "requestParameters": {"p": '{"type":"Root"}'}, "userIdentity": {"type": "IAMUser"}},
    ]
    raw = b'{"Records":[' + b",".join(orjson.dumps(r) for r in rows) + b"]}"
    escaped = raw.replace(b'"real-root","userIdentity":{"type":"Root"', b'"real-root","userIdentity":{"type":"R\\u006fot"')
    assert escaped != raw
    for data in (raw, escaped, json.dumps(json.loads(raw), indent=2).encode()):
        fast, _, _ = verdicts(data, lazy=True)
        slow, _, _ = verdicts(data, lazy=False)
        assert [r[0] for r in fast] == [r[0] for r in slow] == ["real-root"]
    # Non-object records are reported by both paths alike.
    mixed = b'{"Records":[1,' + orjson.dumps(rows[2]) + b',null]}'
    assert verdicts(mixed, lazy=True)[2] == verdicts(mixed, lazy=False)[2] == 2


def _write_files(tmp_path: Path, n: int) -> list[str]:
    records = [rec for _, _, rec in project_records()]
    paths = []
    for i in range(n):
        p = tmp_path / f"f{i:02d}.json.gz"
        body = {"Records": records[i % 7:] + records[: i % 7]}
        p.write_bytes(gzip.compress(orjson.dumps(body)))
        paths.append(str(p))
    (tmp_path / "f99-bad.jsonl").write_text("{bad\n" + json.dumps(records[0]) + "\n")
    paths.append(str(tmp_path / "f99-bad.jsonl"))
    return paths


def test_jobs_give_the_same_output_in_the_same_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("rootwatch.commands.replay",))
    monkeypatch.chdir(tmp_path)
    _write_files(tmp_path, 9)
    runs = []
    for jobs in ("1", "2", "3"):
        code = cli.main(["replay", "--format", "json", "--jobs", jobs, str(tmp_path)])
        out, err = capsys.readouterr()
        runs.append((code, out, err.splitlines()[-1].split(", ")[:-1], [ln for ln in err.splitlines() if "warning" in ln]))
    assert runs[0][0] == 1 and runs[0][1].count("\n") > 9 * 20
    assert runs[0] == runs[1] == runs[2]
    assert "1 malformed skipped" in ", ".join(runs[0][2]) and "f99-bad.jsonl:1: malformed JSON line" in runs[0][3][0]


def test_workers_hand_back_the_same_matches(tmp_path: Path) -> None:
    """Across processes a Match keeps every verdict, its whole Finding and the reported fields."""
    paths = _write_files(tmp_path, 5)
    serial: list[replay.Match] = []
    parallel: list[replay.Match] = []
    replay.replay(paths, replay.builtin_evaluator(), serial.append, replay.Problems(io.StringIO()), jobs=1)
    replay.replay(paths, replay.builtin_evaluator(), parallel.append, replay.Problems(io.StringIO()), jobs=3)
    assert len(serial) > 5 * 10 and parallel == serial
    assert all(m.finding is not None and type(m.finding.severity) is replay.Severity for m in parallel)
    # Records are cut to what outputs read, in both modes alike.
    assert {k for m in serial for k in m.record} <= set(replay.REPORTED_FIELDS)
    assert all("userIdentity" in m.record and "eventID" in m.record for m in serial)


def test_jobs_must_be_a_positive_number(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("rootwatch.commands.replay",))
    with pytest.raises(SystemExit) as exc:
        cli.main(["replay", "--jobs", "0", "x.json"])
    assert exc.value.code == 2 and "--jobs" in capsys.readouterr().err


def test_runs_without_accelerators(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _write_files(tmp_path, 3)
    with_acc: list[replay.Match] = []
    replay.replay(paths, replay.builtin_evaluator(), with_acc.append, replay.Problems(io.StringIO()))
    monkeypatch.setattr(replay_fast, "_simdjson", None)
    monkeypatch.setattr(replay_fast, "_igzip", None)
    assert replay_fast.accelerators() == {"simdjson": False, "isal": False}
    without: list[replay.Match] = []
    stats = replay.replay(paths, replay.builtin_evaluator(), without.append, replay.Problems(io.StringIO()), jobs=2)
    assert [replay.match_to_json(m) for m in without] == [replay.match_to_json(m) for m in with_acc]
    assert stats.malformed == 1 and stats.matched == len(with_acc) > 0


@pytest.mark.parametrize("isal", [True, False])
def test_gunzip_keeps_gzip_semantics(monkeypatch: pytest.MonkeyPatch, isal: bool) -> None:
    if not isal:
        monkeypatch.setattr(replay_fast, "_igzip", None)
    a, b = gzip.compress(b"hello "), gzip.compress(b"world")
    assert replay_fast.gunzip(a + b) == b"hello world"  # every member, like `zcat`
    with pytest.raises(EOFError):
        replay_fast.gunzip((a + b)[:-12])
    with pytest.raises((zlib.error, OSError)):
        replay_fast.gunzip(a[:10] + b"\xff" * 20 + a[30:])
