"""Both CloudTrail corpora as (name, raw JSON bytes, record) triples, for tests that check every record.

The held-out real-world corpus is read from ``shared/realworld-cloudtrail`` beside
the clone (``../shared``), never copied into the repository.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

REPO = Path(__file__).resolve().parent.parent
PROJECT_CORPUS = REPO / "tests" / "data" / "cloudtrail_corpus.json"


def realworld_dir() -> Path | None:
    for base in (REPO.parent, *REPO.parents):
        d = base / "shared" / "realworld-cloudtrail"
        if (d / "records.jsonl").is_file():
            return d
    return None


def project_records() -> list[tuple[str, bytes, Any]]:
    cases = json.loads(PROJECT_CORPUS.read_text())["cases"]
    return [(c["name"], orjson.dumps(c["record"]), c["record"]) for c in cases]


def require_realworld_dir() -> Path:
    """The held-out corpus, or skip (fail under CI, where it must be present)."""
    d = realworld_dir()
    if d is None:
        if os.environ.get("CI"):
            pytest.fail("shared/realworld-cloudtrail is missing beside the clone")
        pytest.skip("the held-out corpus shared/realworld-cloudtrail is not beside this clone")
    return d


def realworld_records() -> list[tuple[str, bytes, Any]]:
    d = require_realworld_dir()
    lines = (d / "records.jsonl").read_bytes().splitlines()
    return [(f"records.jsonl:{n}", line, orjson.loads(line)) for n, line in enumerate(lines, 1)]


def realworld_labels() -> dict[int, dict[str, Any]]:
    d = require_realworld_dir()
    return {v["line"]: v for v in json.loads((d / "labels.json").read_text()).values()}
