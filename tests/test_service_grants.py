"""docs/service-grants.md lists exactly the service grants the program makes (no more, no fewer)."""

from __future__ import annotations

import re
from pathlib import Path

from test_policies import documents

from rootwatch.program import mockrun

DOC = Path(__file__).resolve().parent.parent / "docs" / "service-grants.md"
ROW = re.compile(r"^\| `(?P<service>[a-z0-9.<>-]+)` \| `(?P<grant>[A-Za-z0-9 -]+)`")


def _grant(name: str, sid: str | None) -> str:
    if sid:
        return sid
    return re.sub(r"^rootwatch-(hub|\d{12})-", "", name)  # trust policies: the role's name suffix


def planned() -> set[tuple[str, str]]:
    out = set()
    for stack in ("example", "explicit", "prevention"):
        run = mockrun.run(stack)
        for name, _, doc in documents(run):
            statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
            for st in statements:
                principal = st.get("Principal")
                services = principal.get("Service") if isinstance(principal, dict) else None
                if st.get("Effect") != "Allow" or not services:
                    continue
                for svc in services if isinstance(services, list) else [services]:
                    out.add((re.sub(r"^logs\.[a-z0-9-]+\.", "logs.<region>.", svc), _grant(name, st.get("Sid"))))
        out |= {(p.inputs["principal"], "lambda permission") for p in run.by_type("aws:lambda/permission:Permission")
                if p.inputs["principal"].endswith(".amazonaws.com") and p.inputs["principal"] != "sns.amazonaws.com"}
    return out


def test_the_table_lists_every_grant_and_nothing_else() -> None:
    listed = {(m["service"], m["grant"].strip()) for m in map(ROW.match, DOC.read_text().splitlines()) if m}
    assert listed == planned()
