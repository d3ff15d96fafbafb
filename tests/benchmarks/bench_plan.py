"""Benchmark `rootwatch plan` against a bare mock-runtime baseline.

Run by hand (not part of the test suite):

    python tests/benchmarks/bench_plan.py [--sizes 100 500 1000] [--stack example]

For each organization size it generates an org snapshot (members spread over the
example's production / staging / sandbox OUs), then, each in a fresh process:

* plan: the real program through `rootwatch.program.mockrun` (what `rootwatch plan` runs);
* baseline: a bare program that registers the SAME number of resources of the
  same types under the same mocks and monitor, with no rootwatch logic.

It prints wall time, peak RSS and resources per account, the plan/baseline time
ratio (target at 1,000 accounts: <= 1.3x, and < 1.5 GB), and how time and memory
grow from the smallest to the largest size (linear growth = ratio ~ size ratio).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

OUS = [
    ("r-ex01/ou-ex01-prod0001", "prod"),
    ("r-ex01/ou-ex01-prod0001/ou-ex01-paym0001", "payments"),
    ("r-ex01/ou-ex01-stag0001", "staging"),
    ("r-ex01/ou-ex01-sand0001", "dev-sandbox"),
]

# A program that registers the same resources (same pulumi_aws classes, names and
# provider type) with placeholder values for required arguments and no logic of ours.
BASELINE_PROGRAM = textwrap.dedent(
    '''
    import importlib, json, re, pulumi, pulumi_aws as aws
    spec = json.loads(pulumi.Config("bench").require("spec"))

    def resource_class(typ):
        if typ == "pulumi:providers:aws":
            return aws.Provider
        module = typ.split(":")[1].split("/")[0]
        module = importlib.import_module("pulumi_aws." + ("lambda_" if module == "lambda" else module))
        return getattr(module, typ.rsplit(":", 1)[1])

    classes = {typ: resource_class(typ) for typ in {t for t, _ in spec}}
    required = {typ: {} for typ in classes}
    for typ, name in spec:
        while True:
            try:
                classes[typ](name, **required[typ])
                break
            except TypeError as exc:  # learn required arguments once per type
                missing = re.search(r"Missing required property '(\\w+)'", str(exc))
                if not missing:
                    raise
                required[typ][missing.group(1)] = "x"
    '''
)

CHILD = textwrap.dedent(
    '''
    import json, resource, sys, time
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from rootwatch.program import mockrun
    from rootwatch.core import snapshot
    org = snapshot.load({snapshot!r})
    mode = {mode!r}
    t0 = time.perf_counter()
    if mode == "plan":
        run = mockrun.run({stack!r}, org=org)
        spec = [[r.type, r.name] for r in run.resources if r.custom]
        Path({spec_out!r}).write_text(json.dumps(spec))
        per_account = {{k: len(v) for k, v in run.by_account().items()}}
        n_accounts = len(run.outputs.get("accounts", {{}}))
    else:
        spec = json.loads(Path({spec_out!r}).read_text())
        run = mockrun.run({stack!r}, org=org, program=Path({baseline!r}),
                          extra_config={{"bench:spec": json.dumps(spec)}})
        n_accounts = 0
    wall = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({{"wall": wall, "rss_mb": rss_mb, "resources": sum(1 for r in run.resources if r.custom),
                      "accounts": n_accounts}}))
    '''
)


def make_snapshot(n_members: int, path: Path) -> None:
    accounts = [{"id": "111111111111", "name": "management", "state": "ACTIVE", "ouPath": "r-ex01", "tags": {}}]
    for i in range(n_members):
        ou, prefix = OUS[i % len(OUS)]
        accounts.append({"id": f"{200000000000 + i:012d}", "name": f"{prefix}-{i:05d}", "state": "ACTIVE",
                         "ouPath": ou, "tags": {"data-classification": "restricted"} if i % 10 == 0 else {}})
    path.write_text(json.dumps({"managementAccountId": "111111111111", "accounts": accounts}))


def measure(mode: str, stack: str, snap: Path, spec: Path, baseline: Path) -> dict[str, float]:
    code = CHILD.format(root=str(ROOT), snapshot=str(snap), mode=mode, stack=stack, spec_out=str(spec), baseline=str(baseline))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 1000], help="member accounts per organization")
    ap.add_argument("--stack", default="example")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        baseline = t / "baseline.py"
        baseline.write_text(BASELINE_PROGRAM)
        for n in args.sizes:
            snap, spec = t / f"org-{n}.json", t / f"spec-{n}.json"
            make_snapshot(n, snap)
            p = measure("plan", args.stack, snap, spec, baseline)
            b = measure("baseline", args.stack, snap, spec, baseline)
            rows.append((n, p, b))
            print(
                f"{n:>5} members: plan {p['wall']:7.1f} s {p['rss_mb']:7.0f} MB | baseline {b['wall']:7.1f} s {b['rss_mb']:7.0f} MB"
                f" | {p['resources']} resources, {p['resources'] / max(p['accounts'], 1):.1f}/account"
                f" | time ratio {p['wall'] / b['wall']:.2f}x",
                flush=True,
            )
    if len(rows) > 1:
        (n0, p0, _), (n1, p1, _) = rows[0], rows[-1]
        print(
            f"growth {n0}->{n1} members (x{n1 / n0:.1f}): plan time x{p1['wall'] / p0['wall']:.1f}, "
            f"peak RSS x{p1['rss_mb'] / p0['rss_mb']:.1f} (RSS above interpreter start-up: "
            f"{p0['rss_mb']:.0f} -> {p1['rss_mb']:.0f} MB)"
        )


if __name__ == "__main__":
    main()
