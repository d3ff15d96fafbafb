"""Benchmark `rootwatch replay` against its baselines on the same generated logs, in one run.

Run by hand from the repository root (pytest does not collect tests/benchmarks):

    python tests/benchmarks/bench_replay.py                          # 1,000,000 records
    python tests/benchmarks/bench_replay.py --records 200000         # quicker
    python tests/benchmarks/bench_replay.py --baseline-rev 0c7c32a   # also replay as of that commit

It writes gzipped CloudTrail files ({"Records": [...]}, --per-file records each)
to a temporary directory, then measures records/s for:

- decompress-only: ``zcat FILES > /dev/null``;
- parse-only: gunzip + ``orjson.loads`` of each file (every object built), and
  gunzip + simdjson parse (lazy: no Python objects), if pysimdjson is installed;
- replay at --baseline-rev: that commit's engine, in-process in a subprocess
  (``git archive`` of the revision), on the same files: "today" before a change;
- replay --jobs 1 and --jobs 2: ``rootwatch.commands.replay.replay`` in-process
  with the deployed forms;
- replay CLI: ``rootwatch replay --format json DIR`` as a subprocess (skip with --no-cli);
- jq: ``zcat FILES | jq -c '<CIS filter>'``. Needs jq: ``apt-get install jq``.

The jq match count must equal replay's CIS count, and every replay variant must
give the same counts (cross-checks the verdicts).
"""

from __future__ import annotations

import argparse
import copy
import gc
import gzip
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from rootwatch.commands import replay  # noqa: E402

CORPUS = REPO / "tests" / "data" / "cloudtrail_corpus.json"
JQ_CIS = '.Records[] | select(.userIdentity.type=="Root" and (.userIdentity.invokedBy|not) and .eventType!="AwsServiceEvent")'
ROOT_SHARE = 0.02  # share of root records: far above real traffic, so the slow path is exercised

# Fields real records carry that the corpus leaves out: they make records a realistic size (~1.3 KB).
PADDING = {
    "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "ec2.us-east-1.amazonaws.com"},
    "resources": [{"accountId": "222222222222", "type": "AWS::EC2::Instance", "ARN": "arn:aws:ec2:us-east-1:222222222222:instance/i-0123456789abcdef0"}],
    "sessionCredentialFromConsole": "true",
}


def templates() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(non-root, root) record templates from the test corpus, padded to a realistic size."""
    cases = json.loads(CORPUS.read_text())["cases"]
    plain: list[dict[str, Any]] = []
    root: list[dict[str, Any]] = []
    for case in cases:
        record = {**case["record"], **PADDING}
        is_root = record.get("userIdentity", {}).get("type") == "Root"
        (root if is_root else plain).append(record)
    return plain, root


def generate(directory: Path, records: int, per_file: int) -> list[Path]:
    plain, root = templates()
    every = max(1, round(1 / ROOT_SHARE))
    files: list[Path] = []
    n = 0
    for f in range((records + per_file - 1) // per_file):
        batch = []
        for _ in range(min(per_file, records - n)):
            pool = root if n % every == 0 else plain
            r = copy.copy(pool[n % len(pool)])
            r["eventID"] = f"{n:08x}-0000-4000-8000-{n:012x}"
            r["eventTime"] = f"2025-03-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:{(n // 60) % 60:02d}Z"
            batch.append(r)
            n += 1
        sub = directory / "AWSLogs" / "222222222222" / "CloudTrail" / "us-east-1" / f"{f // 100:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"222222222222_CloudTrail_us-east-1_{f:06d}.json.gz"
        path.write_bytes(gzip.compress(orjson.dumps({"Records": batch}), compresslevel=6))
        files.append(path)
    return files


REPEAT = 2  # best of N: the machine may be shared, and the first pass warms the allocator


CPU_SECONDS: list[float] = []  # CPU time (this process and its children) of the best run of each timed() call


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs (CPU time of that run goes to CPU_SECONDS)."""
    best, best_cpu, result = float("inf"), 0.0, None
    for _ in range(repeat):
        start, cpu = time.perf_counter(), _cpu()
        result = fn()
        took = time.perf_counter() - start
        if took < best:
            best, best_cpu = took, _cpu() - cpu
    CPU_SECONDS.append(best_cpu)
    return best, result


def parse_only(files: list[Path]) -> int:
    gc.disable()  # as replay does: the collector would rescan every parsed object
    try:
        count = 0
        for path in files:
            count += len(orjson.loads(gzip.decompress(path.read_bytes()))["Records"])
        return count
    finally:
        gc.enable()


def parse_only_lazy(files: list[Path]) -> int:
    import simdjson

    from rootwatch.commands.replay_fast import gunzip

    parser = simdjson.Parser()
    count = 0
    for path in files:
        doc = parser.parse(gunzip(path.read_bytes()))
        count += len(doc["Records"])
        del doc
    return count


def zcat_only(files: list[Path]) -> int:
    with open(os.devnull, "wb") as devnull:
        subprocess.run(["zcat", "--", *map(str, files)], stdout=devnull, check=True)
    return len(files)


def replay_engine(directory: Path, jobs: int) -> tuple[int, int, int]:
    stats = replay.replay([str(directory)], replay.builtin_evaluator(), lambda m: None,
                          replay.Problems(io.StringIO()), jobs=jobs)
    return stats.records, stats.cis, stats.detected


BASELINE_SCRIPT = """
import io, json, sys, time
sys.path.insert(0, sys.argv[1])
from rootwatch.commands import replay
best = None
for _ in range(int(sys.argv[3])):
    start, cpu = time.perf_counter(), time.process_time()
    stats = replay.replay([sys.argv[2]], replay.builtin_evaluator(), lambda m: None, replay.Problems(io.StringIO()))
    took = time.perf_counter() - start
    if best is None or took < best:
        best, best_cpu = took, time.process_time() - cpu
print(json.dumps({"seconds": best, "cpu": best_cpu, "records": stats.records, "cis": stats.cis, "detected": stats.detected}))
"""


def replay_baseline(rev: str, directory: Path, repeat: int) -> dict[str, Any]:
    """The engine as of ``rev`` (git archive into a temporary tree), timed in a fresh interpreter."""
    with tempfile.TemporaryDirectory(prefix="rootwatch-baseline-") as tree:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "rootwatch"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        out = subprocess.run([sys.executable, "-c", BASELINE_SCRIPT, tree, str(directory), str(repeat)],
                             capture_output=True, text=True, check=True, cwd=tree)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def replay_cli(directory: Path, jobs: int) -> int:
    cmd = [sys.executable, "-m", "rootwatch.commands.cli", "replay", "--format", "json", "--jobs", str(jobs), str(directory)]
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.run(cmd, stdout=devnull, stderr=subprocess.PIPE, cwd=directory, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"CLI failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.returncode


def jq_cis(files: list[Path]) -> int:
    zcat = subprocess.Popen(["zcat", "--", *map(str, files)], stdout=subprocess.PIPE)
    jq = subprocess.Popen(["jq", "-c", JQ_CIS], stdin=zcat.stdout, stdout=subprocess.PIPE)
    assert zcat.stdout is not None and jq.stdout is not None
    zcat.stdout.close()  # jq owns the pipe now
    lines = sum(1 for _ in jq.stdout)
    if jq.wait() != 0 or zcat.wait() != 0:
        raise RuntimeError("zcat | jq failed")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="records to generate (default 1,000,000)")
    ap.add_argument("--per-file", type=int, default=1_000, help="records per file (default 1,000)")
    ap.add_argument("--no-cli", action="store_true", help="skip the CLI subprocess measurements")
    ap.add_argument("--no-jq", action="store_true", help="skip jq (slow: about 20,000 records/s)")
    ap.add_argument("--baseline-rev", metavar="REV", help="also time the replay engine as of this git revision")
    ap.add_argument("--keep", metavar="DIR", help="write the logs here and keep them")
    ap.add_argument("--repeat", type=int, default=REPEAT, help=f"best of N runs per measurement (default {REPEAT})")
    args = ap.parse_args()

    directory = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rootwatch-bench-"))
    try:
        t, files = timed(lambda: generate(directory, args.records, args.per_file))
        size = sum(f.stat().st_size for f in files)
        print(f"generated {args.records:,} records in {len(files):,} files ({size / 1e6:.0f} MB gzipped) in {t:.1f}s")
        print(f"accelerators: {replay.replay_fast.accelerators()}; CPUs for --jobs: {replay.default_jobs()}")

        rows: dict[str, float] = {}
        cpu_rows: dict[str, float] = {}  # records per CPU-second: what a core does when it is not shared
        counts: dict[str, tuple[int, int, int]] = {}
        if shutil.which("zcat"):
            t_z, _ = timed(lambda: zcat_only(files), args.repeat)
            rows["decompress-only (zcat)"] = args.records / t_z
        t_parse, n_parse = timed(lambda: parse_only(files), args.repeat)
        rows["parse-only (gunzip+orjson)"] = n_parse / t_parse
        if replay.replay_fast.accelerators()["simdjson"]:
            t_lazy, n_lazy = timed(lambda: parse_only_lazy(files), args.repeat)
            rows["parse-only (gunzip+simdjson)"] = n_lazy / t_lazy
        if args.baseline_rev:
            base = replay_baseline(args.baseline_rev, directory, args.repeat)
            rows[f"replay @{args.baseline_rev} (today)"] = base["records"] / base["seconds"]
            cpu_rows[f"replay @{args.baseline_rev} (today)"] = base["records"] / base["cpu"]
            counts["baseline"] = (base["records"], base["cis"], base["detected"])
        for jobs in (1, 2):
            t_replay, counts[f"jobs {jobs}"] = timed(lambda: replay_engine(directory, jobs), args.repeat)
            rows[f"replay --jobs {jobs} (engine)"] = args.records / t_replay
            cpu_rows[f"replay --jobs {jobs} (engine)"] = args.records / CPU_SECONDS[-1]
        if not args.no_cli:
            for jobs in (1, 2):
                t_cli, _ = timed(lambda: replay_cli(directory, jobs), args.repeat)
                rows[f"replay --jobs {jobs} (CLI, json)"] = args.records / t_cli
        n_jq = None
        if not args.no_jq and shutil.which("jq") and shutil.which("zcat"):
            t_jq, n_jq = timed(lambda: jq_cis(files), max(1, args.repeat - 1))
            rows["jq CIS check"] = args.records / t_jq
        elif not args.no_jq:
            print("jq or zcat not found: apt-get install jq")

        n_replay, n_cis, n_detected = counts["jobs 1"]
        assert n_parse == n_replay == args.records, (n_parse, n_replay)
        print(f"\nreplay: {n_cis:,} CIS matches, {n_detected:,} detected; jq: {n_jq if n_jq is not None else '-'} CIS matches")
        if n_jq is not None and n_jq != n_cis:
            print("MISMATCH: jq and replay disagree on the CIS count")
            return 1
        if counts["jobs 2"] != counts["jobs 1"]:
            print(f"MISMATCH: --jobs 2 gives {counts['jobs 2']}, --jobs 1 {counts['jobs 1']}")
            return 1
        if "baseline" in counts and counts["baseline"][:2] != counts["jobs 1"][:2]:
            # detected may differ on purpose when the rule changed (records without eventType)
            print(f"MISMATCH: baseline {counts['baseline']} vs now {counts['jobs 1']}")
            return 1
        load = os.getloadavg()[0]
        print(f"\nload average now: {load:.1f} on {os.cpu_count()} CPUs (wall figures drop when other work shares them)")
        print(f"{'measurement':<34} {'records/s':>12} {'per CPU-second':>15}")
        for name, rate in rows.items():
            per_cpu = f"{cpu_rows[name]:>15,.0f}" if name in cpu_rows else ""
            print(f"{name:<34} {rate:>12,.0f} {per_cpu}")
        one, two = rows["replay --jobs 1 (engine)"], rows["replay --jobs 2 (engine)"]
        print(f"\n--jobs 2 / --jobs 1:        {two / one:.2f}x")
        if args.baseline_rev:
            today = f"replay @{args.baseline_rev} (today)"
            print(f"--jobs 1 / today:           {one / rows[today]:.2f}x wall, "
                  f"{cpu_rows['replay --jobs 1 (engine)'] / cpu_rows[today]:.2f}x per CPU-second (target >= 3x)")
        print(f"--jobs 1 / parse-only:      {one / rows['parse-only (gunzip+orjson)']:.2f}x")
        if "jq CIS check" in rows:
            print(f"--jobs 1 / jq:              {one / rows['jq CIS check']:.2f}x")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
