"""`rootwatch report`: the KPIs computed from fixture data, the HTML page, and a look at it in Chromium."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from rootwatch.commands import cli
from rootwatch.compliance import kpis
from rootwatch.core import snapshot

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "kpis"
ORG = ROOT / "config" / "example-org.json"
AS_OF = "2026-05-20T00:00:00Z"
FIXTURE_ARGS = ["--audit-history", str(DATA / "audit-history.jsonl"), "--drill-log", str(DATA / "drills.jsonl"),
                "--incidents", str(DATA / "incidents.json"), "--org-snapshot", str(ORG), "--as-of", AS_OF]
NOW = datetime(2026, 5, 20, tzinfo=timezone.utc)


def report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["report", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


# -- the figures (pure) ------------------------------------------------------------------------


def test_percentiles_interpolate_between_ranks() -> None:
    assert kpis.percentile([], 50) is None
    assert kpis.percentile([7], 95) == 7
    assert kpis.percentile([1, 2, 3, 4], 50) == 2.5
    assert kpis.percentile(list(range(1, 101)), 95) == 95.05


def test_every_quarter_is_shown_even_with_no_incident() -> None:
    rows = kpis.incidents_per_quarter([{"firstEvent": "2025-11-14T02:11:09Z"}], NOW)
    assert [(r["quarter"], r["incidents"]) for r in rows] == [("2025-Q4", 1), ("2026-Q1", 0), ("2026-Q2", 0)]
    assert kpis.incidents_per_quarter([], NOW) == [{"quarter": "2026-Q2", "incidents": 0, "breakGlassAuthorized": 0}]


def test_failed_drills_are_failures_not_samples() -> None:
    drills = [{"path": "alarm", "ok": True, "TimeToDetect": 90.0}, {"path": "alarm", "ok": False, "TimeToDetect": None},
              {"path": "realtime", "ok": True, "latencySeconds": 4.0}]  # drill logs from before TimeToDetect
    incidents = [{"detections": [{"path": "realtime", "seconds": 6.0}, {"path": "alarm", "seconds": 400.0}]}]
    ttd = kpis.time_to_detect(drills, incidents)
    assert ttd["alarm"]["failedDrills"] == 1 and ttd["alarm"]["drill"]["count"] == 1
    assert ttd["alarm"]["all"] == {"count": 2, "p50": 245.0, "p95": 384.5, "max": 400.0, "withinTarget": 1}
    assert ttd["realtime"]["all"]["p50"] == 5.0


def test_mttr_and_time_to_acknowledge_from_the_fixture_ledger() -> None:
    incidents = json.loads((DATA / "incidents.json").read_text())["incidents"]
    rem = kpis.remediation(incidents)
    # web-prod 3 h 29 min 51 s, payments-staging 1 h, management 22 h
    assert rem == {"resolved": 3, "unresolved": 1, "mttrSeconds": round((12591 + 3600 + 79200) / 3, 1),
                   "medianTtrSeconds": 12591.0, "mttaSeconds": round((531 + 480 + 360 + 1800) / 4, 1)}


def test_the_map_colours_accounts_by_the_last_audit() -> None:
    history = kpis.read_jsonl((DATA / "audit-history.jsonl").read_text(), "h")
    tree = kpis.org_map(snapshot.load(ORG), history[-1])
    assert tree is not None and tree["name"] == "Root"
    assert tree["counts"] == {"compliant": 7, "non-compliant": 1, "error": 0, "not audited": 1, "out of scope": 2}

    def accounts(node: dict[str, Any]) -> dict[str, dict[str, Any]]:
        found = {a["name"]: a for a in node["accounts"]}
        for c in node["children"]:
            found |= accounts(c)
        return found

    by_name = accounts(tree)
    assert by_name["dev-sandbox-alice"]["status"] == "non-compliant"
    assert by_name["dev-sandbox-alice"]["failing"] == ["rootCredentials"]
    assert by_name["security-tooling"]["status"] == "not audited"  # outside the stack's scope
    assert by_name["dev-sandbox-bob"]["status"] == by_name["legacy-reporting"]["status"] == "out of scope"
    payments = next(c for c in tree["children"] if c["name"] == "production")["children"][0]
    assert payments["name"] == "payments" and [a["name"] for a in payments["accounts"]] == ["payments-prod"]


# -- the command ---------------------------------------------------------------------------------


def test_json_report_on_the_fixtures(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = report(capsys, *FIXTURE_ARGS, "--format", "json")
    assert code == 0
    data = json.loads(out)
    k = data["kpis"]
    assert k["quarter"] == "2026-Q2" and k["incidentsThisQuarter"] == 1
    assert k["policyComplianceScore"] == 87.5 and k["lastAudit"] == "2026-05-04T08:00:00Z"
    assert k["mttrSeconds"] == 31797.0
    assert k["timeToDetect"]["p95Seconds"]["realtime"] < 10 < k["timeToDetect"]["p95Seconds"]["alarm"] < 300
    assert [r["incidents"] for r in data["incidentsPerQuarter"]] == [1, 2, 1]  # 2025-Q4 .. 2026-Q2
    assert [r["score"] for r in data["complianceOverTime"]] == [37.5, 50.0, 62.5, 75.0, 87.5, 100.0, 87.5, 87.5]
    assert data["timeToDetect"]["alarm"]["failedDrills"] == 1
    assert [i["accountName"] for i in data["openIncidents"]] == ["dev-sandbox-alice"]


def test_html_report_is_one_offline_file_with_the_four_kpis_and_the_map(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    code, stdout, _ = report(capsys, *FIXTURE_ARGS, "--output", str(out))
    assert code == 0 and f"wrote {out}" in stdout
    page = out.read_text()
    for title in ("Time to detect (p95)", "Incidents 2026-Q2", "Mean time to remediate", "Policy compliance score"):
        assert f'<div class="t">{title}</div>' in page
    assert '<div class="v">87.5%</div>' in page and '<div class="v">8.8 h</div>' in page
    assert page.count("<svg") == 4  # time to detect, incidents per quarter, time to remediate, score over time
    # The map: every account of the snapshot, with its status as text (not colour alone).
    for name in ("management", "payments-prod", "dev-sandbox-alice", "security-tooling", "dev-sandbox-bob"):
        assert f">{name} <span" in page
    assert "non-compliant &middot; failing: rootCredentials" in page
    # Self-contained: nothing to fetch or run at view time. References stay inside the page (#fragment:
    # matplotlib's clip paths and glyph uses); the SVG xmlns is a name, not a request.
    assert not re.search(r"""src\s*=|href\s*=\s*["'](?!#)|url\((?!#)|@import|<script|<link|<img""", page, re.I)
    assert "xlink:href=\"#" in page and "url(#" in page  # the pattern above does look at them
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def test_sections_without_input_say_which_option_feeds_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    code, _, _ = report(capsys, "--audit-history", str(DATA / "audit-history.jsonl"), "--output", str(out))
    page = out.read_text()
    assert code == 0
    assert "No data: pass <code>--drill-log FILE or --incidents FILE</code>" in page
    assert "No data: pass <code>--incidents FILE or --table NAME</code>" in page
    assert "No data: pass <code>--org-snapshot FILE" in page
    assert page.count("<svg") == 1  # the score over time


@pytest.mark.parametrize(("content", "message"), [
    ('{"ok": 1}\n\nnot json\n', "bad.jsonl:3: not valid JSON"),
    ('[1, 2]\n', "bad.jsonl:1: each line must be a JSON object"),
])
def test_bad_input_files_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                                             message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    code, _, err = report(capsys, "--drill-log", str(bad), "--format", "json")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["--audit-history", "/nonexistent/h.jsonl"], "/nonexistent/h.jsonl: audit history not found"),
    (["--incidents", str(DATA / "drills.jsonl")], "not valid JSON"),
    (["--incidents", str(ORG)], "expected {\"incidents\": [...]}"),
    (["--as-of", "soon"], "--as-of 'soon' is not an ISO 8601 time"),
    (["--output", "/nonexistent/dir/r.html"], "--output /nonexistent/dir/r.html: cannot write"),
])
def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, _, err = report(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_cli_start_up_does_not_import_matplotlib() -> None:
    code = "import sys, rootwatch.commands.cli as c; c.build_parser(); print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


# -- looked at in a browser ---------------------------------------------------------------------------

sys.path.insert(0, str(ROOT / "scripts"))
import report_screenshot  # noqa: E402


@pytest.mark.skipif(report_screenshot.browser() is None, reason="chromium not installed")
def test_the_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    from PIL import Image

    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "report_screenshot.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    dom = (tmp_path / "report.dom.html").read_text()
    for text in ("Time to detect (p95)", "Mean time to remediate", "Policy compliance score", "Organization compliance map",
                 "dev-sandbox-alice"):
        assert text in dom
    assert dom.count("<svg") == 4
    with Image.open(tmp_path / "report.png") as img:
        rgb = img.convert("RGB")
        assert rgb.width == 1200
        colours = {c for _, c in rgb.getcolors(maxcolors=1 << 20) or []}
    # Drawn, not blank: the status colours of the map and tiles are on screen.
    assert (26, 152, 80) in colours and (215, 48, 39) in colours
