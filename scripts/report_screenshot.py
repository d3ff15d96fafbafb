#!/usr/bin/env python3
"""Render `rootwatch report` from the fixture data and look at it in headless Chromium, offline.

Usage (from the repository root, with the project's virtualenv active):

    python scripts/report_screenshot.py [--out DIR] [--html FILE]

Without ``--html`` it first writes the report from tests/data/kpis/ (audit
history, drill log, incidents) and config/example-org.json (the OU tree), as of
2026-05-20. Then it runs Chromium headless with networking features off and a
throw-away profile, saves ``report.png`` (1200 px wide) and ``report.dom.html``
(the DOM after layout), and prints their paths. Open the PNG to see the four
KPI tiles, the charts and the compliance map.

Needs Chromium (Debian: ``apt-get install -y chromium``). tests/test_report.py
runs this script when chromium is installed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "kpis"
AS_OF = "2026-05-20T00:00:00Z"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def write_fixture_report(path: Path) -> None:
    cmd = [sys.executable, "-m", "rootwatch.commands.cli", "report",
           "--audit-history", str(DATA / "audit-history.jsonl"), "--drill-log", str(DATA / "drills.jsonl"),
           "--incidents", str(DATA / "incidents.json"), "--org-snapshot", str(ROOT / "config" / "example-org.json"),
           "--as-of", AS_OF, "--output", str(path)]
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True, timeout=300)


def chromium(exe: str, html: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="rootwatch-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
               *extra, html.resolve().as_uri()]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=180)


def screenshot(html: Path, out: Path) -> tuple[Path, Path]:
    exe = browser()
    if exe is None:
        raise SystemExit("chromium not installed (apt-get install -y chromium)")
    png, dom = out / "report.png", out / "report.dom.html"
    chromium(exe, html, f"--screenshot={png}", "--window-size=1200,2600", "--hide-scrollbars")
    dom.write_text(chromium(exe, html, "--dump-dom").stdout, encoding="utf-8")
    return png, dom


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "rootwatch-report-shot")
    p.add_argument("--html", type=Path, help="an existing report to look at (default: render the fixture report)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    html = args.html or args.out / "report.html"
    if args.html is None:
        write_fixture_report(html)
    png, dom = screenshot(html, args.out)
    print(f"report:     {html}\nscreenshot: {png}\ndom:        {dom}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
