"""Resource names are forever: every URN of the example stacks is pinned.

A changed type, name, parent chain or provider replaces cloud resources on the
next ``pulumi up``. An intentional change must come with ``aliases`` on the moved
resource and a deliberate snapshot update in the same commit:

    ROOTWATCH_UPDATE_URN_SNAPSHOT=1 python -m pytest tests/test_urns.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rootwatch.program import mockrun

DATA = Path(__file__).parent / "data"


def urn_lines(run: mockrun.Run) -> list[str]:
    """One line per resource: URN (type chain and name), parent chain and provider."""
    by_urn = {r.urn: r for r in run.resources}
    lines = []
    for r in run.resources:
        chain, node = [], by_urn.get(r.parent)
        while node is not None:
            chain.append(node.name)
            node = by_urn.get(node.parent)
        # "<urn>::<id>"; the URN's last segment is the provider's name ("" = default provider).
        provider = r.provider.split("::")[-2] if r.provider else "default"
        # Mock URNs carry a pulumi:pulumi:Stack$ prefix the real engine does not.
        urn = r.urn.split("::", 2)[2].removeprefix("pulumi:pulumi:Stack$")
        lines.append(f"{urn}  parents={'/'.join(chain) or '-'}  provider={provider}")
    return sorted(lines)


@pytest.mark.parametrize("stack", ["example", "explicit", "prevention"])
def test_urns_match_the_committed_snapshot(stack: str) -> None:
    lines = urn_lines(mockrun.run(stack))
    assert len(lines) == len(set(lines)), "duplicate URNs: the real engine refuses them"
    path = DATA / f"urns-{stack}.txt"
    if os.environ.get("ROOTWATCH_UPDATE_URN_SNAPSHOT"):
        path.write_text("\n".join(lines) + "\n")
    expected = path.read_text().splitlines()
    missing = sorted(set(expected) - set(lines))
    added = sorted(set(lines) - set(expected))
    assert not missing and not added, (
        f"URNs changed (replaces cloud resources unless aliased): {len(missing)} gone, {len(added)} new; "
        f"first gone: {missing[:5]}; first new: {added[:5]}"
    )
