"""`rootwatch replay`: run the deployed detection forms over stored CloudTrail logs.

The engine is usable in-process (the benchmark does): ``replay(paths, evaluator,
emit, problems, jobs=1) -> Stats``. Inputs are read whole. With the built-in
rules and pysimdjson, replay_fast parses lazily and builds only records whose
``userIdentity.type`` is "Root"; otherwise orjson decodes everything and every
record goes through the cheap ``could_match`` pre-check. ``jobs`` > 1 spreads
inputs over forked worker processes; matches come back in input order.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import re
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

import orjson

from rootwatch.commands import replay_fast
from rootwatch.commands.options import EXIT_FINDINGS, EXIT_OK, add_format_option
from rootwatch.core.errors import RootwatchError
from rootwatch.core.severity import Severity
from rootwatch.detection import eventpattern
from rootwatch.detection import rule as detection
from rootwatch.detection.filterpattern import PatternError, compile_pattern

EPILOG = """\
inputs:
  CloudTrail log files as delivered to S3 ({"Records": [...]}), gzipped or not;
  JSON Lines (one record per line); `aws cloudtrail lookup-events` output;
  EventBridge events (the record is taken from "detail"); `-` for stdin
  (e.g. `zcat *.json.gz | rootwatch replay -`). Directories are walked
  recursively, skipping hidden entries and CloudTrail-Digest files. Each input
  is read whole into memory. A file that is not one JSON document is read as
  JSON Lines, line by line: a malformed line skips that line only. Malformed
  files, lines and records are reported on stderr with file and line, counted
  and skipped; --strict turns any of them into exit 2.

speed:
  Inputs are spread over --jobs worker processes (default: the CPU count; stdin
  is read by one). With pysimdjson installed, records are parsed lazily and only
  those with userIdentity.type "Root" are built and evaluated; with isal, gzip
  is decompressed by ISA-L (pip install 'rootwatch[fast]'). Verdicts and output
  order are the same either way. On a terminal, stderr shows progress.

output:
  Only matching records are printed. --format json prints one object per line:
  eventID, eventName, eventTime, account, cis_metric_filter (the verbatim CIS
  filter matches), detected (the stack would alert: extended filter or
  EventBridge rule), class, severity; with --pattern also "pattern": true.
  The last stderr line gives the counts, skipped input included.

sql:
  --sql athena prints the same rule as a query for Athena's documented
  cloudtrail_logs table (--table, and --since/--until on the partition
  projection column); it returns eventID, eventName, eventTime, account,
  cis_metric_filter and detected, as --format json does.

exit codes:
  0  ran fine, nothing matched
  1  findings: at least one record matched (with --pattern: the pattern matched)
  2  usage or input error: bad --pattern, unknown --stack, no readable input,
     or with --strict any skipped input
"""

# The record fields a Match keeps: what match_to_json, the text table and --stack grading read.
REPORTED_FIELDS = ("eventID", "eventName", "eventTime", "eventSource", "awsRegion", "recipientAccountId",
                   "userIdentity")
MAX_PROBLEMS_SHOWN_PER_INPUT = 10  # a corrupt multi-GB file must not flood stderr
_STACK_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


# -- data ---------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """A record that matched: verdicts of each deployed form, plus its class.

    ``record`` holds the record's REPORTED_FIELDS only (what the outputs and --stack grading
    read), with any number of jobs: whole records would be most of what workers send back.
    """

    record: Mapping[str, Any]
    cis: bool
    detected: bool
    finding: detection.Finding | None
    pattern: bool | None = None  # only in --pattern mode


@dataclass
class Stats:
    inputs: int = 0  # files (or stdin) read from disk
    usable_inputs: int = 0  # inputs holding at least one well-formed document
    records: int = 0
    matched: int = 0
    cis: int = 0
    detected: int = 0
    malformed: int = 0  # files, lines or records skipped
    unreadable: int = 0  # paths that could not be read at all
    digests: int = 0  # CloudTrail digest documents, skipped on purpose
    seconds: float = 0.0

    def summary_line(self) -> str:
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        return (
            f"replay: {self.inputs} files, {self.records} records, {self.matched} matched "
            f"({self.cis} CIS, {self.detected} detected), {self.malformed} malformed skipped, "
            f"{self.unreadable} unreadable, {self.seconds:.2f}s ({rate:,.0f} records/s)"
        )


@dataclass
class Problems:
    """Collects and prints input problems: ``source:line: message`` on stderr."""

    stream: TextIO | None = None
    before_write: Callable[[], None] | None = None  # e.g. clear a progress line first
    malformed: int = 0  # files, lines or records skipped
    unreadable: int = 0  # paths that could not be read at all
    per_source: Counter[str] = field(default_factory=Counter)

    def report(self, source: str, message: str, line: int | None = None, *, unreadable: bool = False) -> None:
        if unreadable:
            self.unreadable += 1
        else:
            self.malformed += 1
        self.per_source[source] += 1
        shown = self.per_source[source]
        if shown <= MAX_PROBLEMS_SHOWN_PER_INPUT:
            where = f"{source}:{line}" if line is not None else source
            self.write(f"rootwatch: warning: {where}: {message}\n")
        elif shown == MAX_PROBLEMS_SHOWN_PER_INPUT + 1:
            self.write(f"rootwatch: warning: {source}: further problems in this input are counted, not shown\n")

    def write(self, text: str) -> None:
        if self.before_write is not None:
            self.before_write()
        (self.stream or sys.stderr).write(text)


Evaluator = Callable[[Any], "Match | None"]


# -- evaluators -------------------------------------------------------------


def builtin_evaluator() -> Evaluator:
    """The deployed forms: verbatim CIS filter, extended filter, EventBridge rules."""
    cis = compile_pattern(detection.CIS_PATTERN)
    extended = compile_pattern(detection.EXTENDED_PATTERN)
    rules = detection.eventbridge_patterns()
    could_match = detection.could_match

    def evaluate(record: Any) -> Match | None:
        if not could_match(record):  # rejects >95% of real traffic in one dict lookup
            return None
        is_cis = cis(record)
        event = detection.wrap_eventbridge(record)
        detected = extended(record) or any(eventpattern.matches(p, event) for p in rules)
        if not (is_cis or detected):
            return None
        return Match(record, is_cis, detected, detection.classify(record))

    evaluate.requires_root = True  # type: ignore[attr-defined]  # lets replay_fast skip non-"Root" records unparsed
    return evaluate


def pattern_evaluator(text: str) -> Evaluator:
    """Any user filter pattern: the offline `aws logs test-metric-filter`."""
    try:
        match = compile_pattern(text)
    except PatternError as exc:
        raise RootwatchError(f"--pattern: {exc}") from None

    def evaluate(record: Any) -> Match | None:
        if not match(record):
            return None
        finding = detection.classify(record)
        cis = bool(finding and finding.cis_match)
        detected = bool(finding and finding.detected)
        return Match(record, cis, detected, finding, pattern=True)

    return evaluate


# -- inputs -------------------------------------------------------------------


def _skip_in_walk(name: str) -> bool:
    return name.startswith(".") or "CloudTrail-Digest" in name


def iter_inputs(paths: Sequence[str], problems: Problems) -> Iterator[str]:
    """Expand directories recursively (sorted, so output order is stable)."""
    for path in paths:
        if path != "-" and os.path.isdir(path):
            found = False
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not _skip_in_walk(d))
                for name in sorted(files):
                    if not _skip_in_walk(name):
                        found = True
                        yield os.path.join(root, name)
            if not found:
                problems.report(path, "directory holds no input files", unreadable=True)
        elif path == "-" or os.path.exists(path):  # files, and pipes such as <(zcat ...)
            yield path
        else:
            problems.report(path, "no such file or directory", unreadable=True)


def read_input(path: str) -> bytes:
    """Raw bytes of a file or stdin, gunzipped when it starts with the gzip magic."""
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = replay_fast.gunzip(data)
    return data.removeprefix(b"\xef\xbb\xbf")  # tolerate a UTF-8 byte-order mark


def _display(path: str) -> str:
    return "<stdin>" if path == "-" else path


# -- documents ------------------------------------------------------------------

Consume = Callable[[Any, "int | None", "bytes | None"], None]  # (records, line, raw bytes if lazy)

MAX_PENDING_BAD_LINES = MAX_PROBLEMS_SHOWN_PER_INPUT + 1  # kept until we know the input is JSON Lines


def _looks_like_record(doc: Mapping[str, Any]) -> bool:
    return "eventName" in doc or "eventVersion" in doc


def _doc_records(doc: Any, source: str, line: int | None, problems: Problems, stats: Stats) -> list[Any] | None:
    """Records held by one JSON document, or None (reported) if it holds none we know."""
    if isinstance(doc, dict):
        records = doc.get("Records")
        if records is not None:
            if isinstance(records, list):
                return records
            problems.report(source, '"Records" is not an array', line)
            return None
        if "digestStartTime" in doc or "digestPublicKeyFingerprint" in doc:
            stats.digests += 1  # CloudTrail integrity digests hold no events
            return []
        if isinstance(doc.get("Events"), list):
            return _lookup_events_records(doc["Events"], source, line, problems)
        if isinstance(doc.get("detail"), dict) and "detail-type" in doc:
            return [doc["detail"]]  # an EventBridge event: the record is the detail
        if _looks_like_record(doc):
            return [doc]
        problems.report(source, "JSON object is not a CloudTrail record or log file (no Records, eventName or eventVersion)", line)
        return None
    if isinstance(doc, list):
        return doc
    problems.report(source, f"expected a JSON object, found {type(doc).__name__}", line)
    return None


def _lookup_events_records(events: list[Any], source: str, line: int | None, problems: Problems) -> list[Any]:
    """`aws cloudtrail lookup-events` output: each event carries its record as a JSON string."""
    out: list[Any] = []
    for i, event in enumerate(events):
        raw = event.get("CloudTrailEvent") if isinstance(event, dict) else None
        try:
            out.append(orjson.loads(raw))  # type: ignore[arg-type]
        except (orjson.JSONDecodeError, TypeError):
            problems.report(source, f"Events[{i}].CloudTrailEvent is not a JSON record", line)
    return out


def _split_concatenated(line: bytes) -> list[Any] | None:
    """Parse `{...}{...}` (files concatenated by zcat without newlines), or None.

    Splits at every `}{` and re-joins pieces until each parses, so a `}{` inside
    a string only costs a retry.
    """
    parts = line.split(b"}{")
    if len(parts) == 1:
        return None
    docs: list[Any] = []
    pending = b""
    last = len(parts) - 1
    for i, part in enumerate(parts):
        pending += (b"{" if i else b"") + part + (b"}" if i < last else b"")
        try:
            docs.append(orjson.loads(pending))
        except orjson.JSONDecodeError:
            continue
        pending = b""
    return docs if not pending.strip() else None


def _parse_line(line: bytes) -> list[Any] | None:
    try:
        return [orjson.loads(line)]
    except orjson.JSONDecodeError:
        return _split_concatenated(line)


def read_documents(data: bytes, source: str, problems: Problems, stats: Stats, consume: Consume,
                   lazy: bool = False) -> None:
    """Hand each batch of records of one input to ``consume``: a whole document, else JSON Lines.

    With ``lazy`` (and simdjson installed), CloudTrail log files and bare-record
    lines are handed over as simdjson arrays with their raw bytes (see replay_fast).
    """
    p = replay_fast.parser() if lazy else None
    if p is not None:
        doc = replay_fast.parse(p, data)
        records = replay_fast.records_array(doc) if doc is not None else None
        if records is None and doc is not None and replay_fast.is_bare_record(doc):
            records = [doc]  # a file holding one record
        if records is not None:
            stats.usable_inputs += 1
            consume(records, None, data)
            return
        records = doc = None  # release before the parser is used again
    try:
        whole = orjson.loads(data)
    except orjson.JSONDecodeError as whole_error:
        _json_lines(data, source, whole_error, problems, stats, consume, p)
        return
    batch = _doc_records(whole, source, None, problems, stats)
    if batch is not None:
        stats.usable_inputs += 1
        consume(batch, None, None)


def _json_lines(data: bytes, source: str, whole_error: orjson.JSONDecodeError, problems: Problems,
                stats: Stats, consume: Consume, p: Any | None) -> None:
    """Read line by line, whatever the first line holds: a bad line skips that line only.

    Bad lines seen before the first good one are held back: if no line parses,
    the input is one broken document and is reported once, as such.
    """
    if not data.strip():
        problems.report(source, "empty input")
        return
    pending: list[int] = []  # line numbers of bad lines before the first good one
    pending_count = 0
    good = usable = False
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        if p is not None:
            doc = replay_fast.parse(p, line)
            if doc is not None and replay_fast.is_bare_record(doc):
                if not good:
                    good = _flush_pending(source, pending, pending_count, problems)
                if not usable:
                    stats.usable_inputs += 1
                    usable = True
                consume([doc], number, line)  # a one-record batch: scan() counts "Root" in this line
                doc = None
                continue
            doc = None
        docs = _parse_line(line)
        if docs is None:
            if good:
                problems.report(source, "malformed JSON line, skipped", number)
            else:
                pending_count += 1
                if len(pending) < MAX_PENDING_BAD_LINES:
                    pending.append(number)
            continue
        if not good:
            good = _flush_pending(source, pending, pending_count, problems)
        for d in docs:
            records = _doc_records(d, source, number, problems, stats)
            if records is not None:
                if not usable:
                    stats.usable_inputs += 1
                    usable = True
                consume(records, number, None)
    if not good:  # not JSON Lines either: one broken document, reported once
        problems.report(source, f"not valid JSON: {whole_error.msg} at line {whole_error.lineno} column {whole_error.colno}")


def _flush_pending(source: str, pending: list[int], count: int, problems: Problems) -> bool:
    for number in pending:
        problems.report(source, "malformed JSON line, skipped", number)
    for _ in range(count - len(pending)):  # beyond what is shown: still counted
        problems.report(source, "malformed JSON line, skipped")
    return True


# -- engine -----------------------------------------------------------------


def _scan(batch: Any, line: int | None, raw: bytes | None, source: str, evaluate: Evaluator,
          emit: Callable[[Match], None], stats: Stats, problems: Problems) -> None:
    def matched(match: Match) -> None:
        stats.matched += 1
        stats.cis += match.cis
        stats.detected += match.detected
        r = match.record
        emit(Match({k: r[k] for k in REPORTED_FIELDS if k in r}, match.cis, match.detected, match.finding, match.pattern))

    def not_object(index: int) -> None:
        problems.report(source, f"record {index} is not a JSON object", line)

    if raw is not None:  # lazy simdjson records: only "Root" candidates become dicts
        stats.records += replay_fast.scan(batch, raw, evaluate, matched, not_object)
        return
    bad = 0
    for index, record in enumerate(batch):
        if type(record) is not dict:
            not_object(index)
            bad += 1
            continue
        match = evaluate(record)
        if match is not None:
            matched(match)
    stats.records += len(batch) - bad


def replay_input(path: str, evaluate: Evaluator, emit: Callable[[Match], None], problems: Problems,
                 stats: Stats) -> None:
    """Read, parse and evaluate one input (a file or '-')."""
    source = _display(path)
    try:
        data = read_input(path)
    except (OSError, EOFError, zlib.error) as exc:  # unreadable, bad or truncated gzip
        problems.report(source, f"cannot read: {getattr(exc, 'strerror', None) or exc}", unreadable=True)
        return
    stats.inputs += 1
    lazy = bool(getattr(evaluate, "requires_root", False))

    def consume(records: Any, line: int | None, raw: bytes | None) -> None:
        _scan(records, line, raw, source, evaluate, emit, stats, problems)

    read_documents(data, source, problems, stats, consume, lazy=lazy)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def replay(paths: Sequence[str], evaluate: Evaluator, emit: Callable[[Match], None], problems: Problems,
           jobs: int = 1, progress: TextIO | None = None) -> Stats:
    """Evaluate every record of every input; matches go to ``emit`` in input order.

    ``jobs`` > 1 spreads whole inputs over worker processes (forked, so any
    evaluator works); output order is the same as with one job.
    ``progress``: a terminal stream for files and records per second.
    """
    stats = Stats()
    started = time.perf_counter()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # parsed records hold no reference cycles; collector passes only cost time
    ticker = _Ticker(progress, started)
    before_write, problems.before_write = problems.before_write, ticker.clear
    try:
        inputs = list(iter_inputs(paths, problems))
        ticker.total = len(inputs)
        if jobs > 1 and len(inputs) > 1 and "-" not in inputs and _can_fork():
            _replay_parallel(inputs, evaluate, emit, problems, stats, min(jobs, len(inputs)), ticker)
        else:
            for path in inputs:
                replay_input(path, evaluate, emit, problems, stats)
                ticker.tick(stats)
    finally:
        ticker.clear()
        problems.before_write = before_write
        if gc_was_enabled:
            gc.enable()
    stats.malformed, stats.unreadable = problems.malformed, problems.unreadable
    stats.seconds = time.perf_counter() - started
    return stats


def _can_fork() -> bool:
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


_WORKER_EVALUATOR: Evaluator | None = None  # set in the parent before forking


def _worker_init() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends the pool


def _worker(path: str) -> tuple[Stats, str, int, int, bytes]:
    assert _WORKER_EVALUATOR is not None
    out = io.StringIO()
    problems = Problems(out)
    stats = Stats()
    found: list[Match] = []
    replay_input(path, _WORKER_EVALUATOR, found.append, problems, stats)
    return stats, out.getvalue(), problems.malformed, problems.unreadable, _pack(found)


# Matches cross the process boundary as one orjson document of plain lists: asdict, enum lookups
# and whole records cost the parent, which shares the CPUs with the workers, more than they save.
_FINDING_FIELDS = tuple(f.name for f in fields(detection.Finding))
_CLASSES = {c.value: c for c in detection.EventClass}
_SEVERITIES = {s.value: s for s in Severity}


def _pack(found: list[Match]) -> bytes:
    return orjson.dumps([[m.record, m.cis, m.detected, m.pattern,
                          None if m.finding is None else [getattr(m.finding, n) for n in _FINDING_FIELDS]]
                         for m in found])


def _unpack(data: bytes) -> list[Match]:
    out = []
    Finding = detection.Finding
    for record, cis, detected, pattern, f in orjson.loads(data):
        finding = None
        if f is not None:
            f[0], f[1] = _CLASSES[f[0]], _SEVERITIES[f[1]]
            finding = Finding(*f)
        out.append(Match(record, cis, detected, finding, pattern))
    return out


def _replay_parallel(inputs: list[str], evaluate: Evaluator, emit: Callable[[Match], None], problems: Problems,
                     stats: Stats, jobs: int, ticker: "_Ticker") -> None:
    import multiprocessing

    global _WORKER_EVALUATOR
    _WORKER_EVALUATOR = evaluate
    pool = multiprocessing.get_context("fork").Pool(jobs, initializer=_worker_init)
    try:
        # imap keeps input order; small chunks keep both workers busy to the end.
        chunk = max(1, min(16, len(inputs) // (jobs * 8)))
        for part, text, malformed, unreadable, found in pool.imap(_worker, inputs, chunksize=chunk):
            if text:
                problems.write(text)
            problems.malformed += malformed
            problems.unreadable += unreadable
            for f in fields(Stats):
                if f.name not in ("malformed", "unreadable", "seconds"):
                    setattr(stats, f.name, getattr(stats, f.name) + getattr(part, f.name))
            for m in _unpack(found):
                emit(m)
            ticker.tick(stats)
        pool.close()
    finally:
        pool.terminate()
        pool.join()
        _WORKER_EVALUATOR = None


@dataclass
class _Ticker:
    """Files and records per second on a terminal, redrawn at most every half second."""

    stream: TextIO | None
    started: float
    total: int = 0
    last: float = 0.0
    drawn: bool = False

    def tick(self, stats: Stats) -> None:
        if self.stream is None:
            return
        now = time.perf_counter()
        if now - self.last < 0.5:
            return
        self.last = now
        rate = stats.records / max(now - self.started, 1e-9)
        self.stream.write(f"\rreplay: {stats.inputs}/{self.total} files, {stats.records:,} records, {rate:,.0f} records/s ")
        self.stream.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn and self.stream is not None:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False



# -- output -------------------------------------------------------------------


def _account(record: Mapping[str, Any]) -> str | None:
    ui = record.get("userIdentity")
    acct = record.get("recipientAccountId") or (ui.get("accountId") if isinstance(ui, dict) else None)
    return acct if isinstance(acct, str) else None


def match_to_json(m: Match) -> dict[str, Any]:
    r = m.record
    out: dict[str, Any] = {
        "eventID": r.get("eventID"),
        "eventName": r.get("eventName"),
        "eventTime": r.get("eventTime"),
        "account": _account(r),
        "cis_metric_filter": m.cis,
        "detected": m.detected,
        "class": str(m.finding.event_class) if m.finding else None,
        "severity": str(m.finding.severity) if m.finding else None,
    }
    if m.pattern is not None:
        out["pattern"] = m.pattern
    return out


_COLUMNS = (("TIME", 20), ("ACCOUNT", 12), ("REGION", 14), ("EVENT", 30), ("CLASS", 21), ("SEVERITY", 8), ("CIS", 3), ("DETECTED", 8))


def _row(values: Sequence[str]) -> str:
    return "  ".join(str(v)[:w].ljust(w) for v, (_, w) in zip(values, _COLUMNS)).rstrip()


@dataclass
class TextReport:
    """A table streamed as matches arrive, then a summary by class and account."""

    out: TextIO
    rows: int = 0
    by_class: Counter[str] = field(default_factory=Counter)
    class_severity: dict[str, str] = field(default_factory=dict)
    by_account: Counter[str] = field(default_factory=Counter)

    def emit(self, m: Match) -> None:
        if self.rows == 0:
            print(_row([name for name, _ in _COLUMNS]), file=self.out)
        self.rows += 1
        j = match_to_json(m)
        cls = j["class"] or "-"
        self.by_class[cls] += 1
        self.class_severity[cls] = j["severity"] or "-"
        self.by_account[j["account"] or "-"] += 1
        yes = {True: "yes", False: "no"}
        print(_row([j["eventTime"] or "-", j["account"] or "-", m.record.get("awsRegion") or "-", j["eventName"] or "-",
                    cls, j["severity"] or "-", yes[m.cis], yes[m.detected]]), file=self.out)

    def finish(self, stats: Stats) -> None:
        if self.rows == 0:
            print(f"No matching records in {stats.records} records.", file=self.out)
            return
        print(f"\n{stats.matched} matching records ({stats.cis} CIS, {stats.detected} detected) in {stats.records} records.",
              file=self.out)
        print("\nBy class:", file=self.out)
        for cls, n in self.by_class.most_common():
            print(f"  {cls:<22} {n:>8}  {self.class_severity[cls]}", file=self.out)
        print("\nBy account:", file=self.out)
        for acct, n in self.by_account.most_common():
            print(f"  {acct:<22} {n:>8}", file=self.out)


def _json_emitter(out: TextIO) -> Callable[[Match], None]:
    def emit(m: Match) -> None:
        out.write(orjson.dumps(match_to_json(m)).decode() + "\n")
    return emit


# -- command ------------------------------------------------------------------


SeverityOf = Callable[[Match], Match]


def stack_severity(stack: str, org_snapshot: str | None) -> SeverityOf:
    """Grade matches as the stack's formatter would: the account's baseline (severity rules, by the
    record's account id, with OU and tags from the org snapshot) through the severity matrix."""
    import dataclasses
    from types import SimpleNamespace

    from rootwatch.core import snapshot
    from rootwatch.lambdas.formatter import class_severity
    from rootwatch.program import mockrun, organization
    from rootwatch.program import settings as rw_settings

    # The stack file check_stack found: ./stacks/ when there is one, else the project's.
    config = mockrun.load_stack_config(stack, Path.cwd() if Path("stacks").is_dir() else mockrun.PROJECT_DIR)
    try:
        settings = rw_settings.load(config.values)
    except RootwatchError as exc:
        raise RootwatchError(f"--stack {stack}: {exc}") from None
    org = snapshot.load(org_snapshot or mockrun.DEFAULT_SNAPSHOT)
    known = {a.id: a for a in organization.accounts_from_snapshot(org)}
    known.update({e.id: organization.Account(e.id, e.name, e.email or "", organization.ACTIVE,
                                              (e.ou,) if e.ou else (), e.tags) for e in settings.accounts.list})
    rows: dict[Severity, dict[Any, Severity]] = {}

    def grade(m: Match) -> Match:
        if m.finding is None:
            return m
        acct = _account(m.record) or ""
        account = known.get(acct) or organization.Account(acct, "", "", organization.ACTIVE, (), {})
        baseline = organization.baseline_severity(settings, account)
        row = rows.setdefault(baseline, settings.realtime.matrix_row(baseline))
        # The formatter's own rule (matrix cell, raised for a record worse than its class).
        level = class_severity(m.finding, SimpleNamespace(matrix=row, baseline=baseline))  # type: ignore[arg-type]
        return dataclasses.replace(m, finding=dataclasses.replace(m.finding, severity=level))

    return grade


def check_stack(name: str, stacks_dir: Path = Path("stacks")) -> None:
    """The stack name is sane and its file exists (its settings are read by ``stack_severity``).

    Like ``plan``, ``--stack`` also takes the path of a ``Pulumi.<name>.yaml`` file."""
    if name.endswith((".yaml", ".yml")):
        if not Path(name).is_file():
            raise RootwatchError(f"--stack {name!r}: no such stack file")
        return
    if not _STACK_NAME_RE.match(name):
        raise RootwatchError(f"--stack {name!r}: stack names use letters, digits, '.', '_' and '-'")
    if stacks_dir.is_dir() and not (stacks_dir / f"Pulumi.{name}.yaml").is_file():
        raise RootwatchError(f"--stack {name!r}: {stacks_dir / f'Pulumi.{name}.yaml'} does not exist")


def _jobs(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"--jobs wants a whole number of at least 1, not {text!r}")
    return n


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "replay",
        help="replay stored CloudTrail logs through the deployed detection rules",
        description="Replay CloudTrail log files offline through the CIS filter, the extended filter\n"
                    "and the EventBridge rules the stack deploys, or through any --pattern.\n"
                    "With --sql, print the same rule as a query for Athena's CloudTrail table instead.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="CloudTrail log file or directory; '-' reads stdin")
    p.add_argument("--stack", default="example",
                   help="stack whose severity rules, account baselines and severity matrix grade each match "
                        "(default: example)")
    p.add_argument("--org-snapshot", metavar="FILE",
                   help="organization snapshot naming each account's OU and tags for the stack's severity rules "
                        "(default: config/example-org.json)")
    p.add_argument("--pattern", metavar="P",
                   help="evaluate this CloudWatch Logs JSON filter pattern instead (like test-metric-filter, without its 50-event limit)")
    p.add_argument("--jobs", "-j", type=_jobs, default=None, metavar="N",
                   help="worker processes (default: the CPU count); output order does not depend on it")
    p.add_argument("--strict", action="store_true",
                   help="exit 2 when any input, line or record was skipped as malformed or unreadable")
    sql = p.add_argument_group("SQL (print a query instead of reading files)")
    sql.add_argument("--sql", choices=("athena", "duckdb"), help="print the rule as SQL for this engine and exit")
    sql.add_argument("--table", default="cloudtrail_logs", help="table name (default: cloudtrail_logs, Athena's documented name)")
    sql.add_argument("--since", metavar="YYYY/MM/DD", help="only this day and later, on the partition projection column")
    sql.add_argument("--until", metavar="YYYY/MM/DD", help="only this day and earlier, on the partition projection column")
    sql.add_argument("--partition-column", default="timestamp", metavar="COL",
                     help="partition projection date column, format yyyy/MM/dd (default: timestamp)")
    add_format_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_stack(args.stack)
    if args.sql is not None:
        return _print_sql(args)
    if not args.files:
        raise RootwatchError("replay needs at least one FILE (or '-' for stdin), or --sql")
    evaluate = pattern_evaluator(args.pattern) if args.pattern is not None else builtin_evaluator()
    if list(args.files).count("-") > 1:
        raise RootwatchError("'-' (stdin) can be given only once")
    out, err = sys.stdout, sys.stderr
    problems = Problems(err)
    text = TextReport(out) if args.format == "text" else None
    jobs = args.jobs if args.jobs is not None else default_jobs()
    progress = err if getattr(err, "isatty", lambda: False)() else None
    emit = text.emit if text else _json_emitter(out)
    grade = stack_severity(args.stack, args.org_snapshot)  # the stack's own levels, as its alerts carry them
    stats = replay(args.files, evaluate, lambda m: emit(grade(m)), problems, jobs=jobs, progress=progress)
    if stats.usable_inputs == 0:
        print(stats.summary_line(), file=err)
        raise RootwatchError("no readable input: every input was missing, unreadable or malformed")
    if text:
        text.finish(stats)
    out.flush()
    print(stats.summary_line(), file=err)
    if args.strict and (stats.malformed or stats.unreadable):
        raise RootwatchError(f"--strict: {stats.malformed} malformed and {stats.unreadable} unreadable inputs, lines or records were skipped")
    return EXIT_FINDINGS if stats.matched else EXIT_OK


def _print_sql(args: argparse.Namespace) -> int:
    from rootwatch.commands import replay_sql  # sqlglot: imported only for --sql

    if args.files or args.pattern is not None:
        raise RootwatchError("--sql prints a query and reads no FILE; --pattern is not rendered to SQL")
    query = replay_sql.render(args.sql, table=args.table, since=args.since, until=args.until,
                              partition_column=args.partition_column)
    sys.stdout.write(query + "\n")
    return EXIT_OK
