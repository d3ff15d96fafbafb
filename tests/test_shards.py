"""Shards: stable assignment, hard capacity, the same answer in the program and the CLI."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest

from rootwatch.commands import cli
from rootwatch.core import snapshot
from rootwatch.core.errors import RootwatchError
from rootwatch.program import mockrun, shards
from rootwatch.program.organization import Account

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_ORG = REPO / "config" / "example-org.json"
MONITOR = "rootwatch:index:RootActivityMonitor"


def account_ids(n: int, seed: int = 7) -> list[str]:
    """n distinct, random-looking 12-digit ids (as AWS hands them out), in arrival order."""
    rng = random.Random(seed)
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        i = f"{rng.randrange(10**11, 10**12):012d}"
        if i not in seen:
            seen.add(i)
            ids.append(i)
    return ids


def loads(assignment: dict[str, str], max_accounts: int) -> list[int]:
    return [len(v) for v in shards.by_shard(assignment, max_accounts).values()]


def moved_share(before: dict[str, str], after: dict[str, str]) -> float:
    return len(shards.moves(before, after)) / len(before.keys() & after.keys())


# --- the rule ------------------------------------------------------------------------------


def test_growing_from_400_to_425_accounts_moves_no_existing_account_and_no_shard_overflows() -> None:
    ids = account_ids(425)
    before, after = shards.assign(ids[:400], 200), shards.assign(ids, 200)
    assert shards.moves(before, after) == []  # measured: 0 of 400 moved
    assert moved_share(before, after) <= 0.03
    assert len(loads(before, 200)) == len(loads(after, 200)) == 3  # 20% headroom: the shard count holds
    assert max(loads(before, 200)) <= 200 and max(loads(after, 200)) <= 200
    assert sum(loads(after, 200)) == 425


def test_removing_accounts_moves_no_other_account() -> None:
    ids = account_ids(425)
    gone = set(random.Random(3).sample(ids, 25))  # closed, suspended or excluded
    before, after = shards.assign(ids, 200), shards.assign([i for i in ids if i not in gone], 200)
    assert shards.moves(before, after) == []
    assert max(loads(after, 200)) <= 200


def test_a_new_shard_takes_only_its_own_share_and_nothing_else_moves() -> None:
    # Crossing the planned size (160 at max 200) adds shard-4. A state-free rule must then move
    # about 1/N of the accounts. They all go to the new shard; none moves between old shards.
    ids = account_ids(481)
    before, after = shards.assign(ids[:480], 200), shards.assign(ids, 200)
    moved = shards.moves(before, after)
    assert {to for _, _, to in moved} == {"shard-4"}
    assert 0.15 <= len(moved) / 480 <= 0.35


def test_no_shard_ever_exceeds_max_accounts_even_when_the_bound_binds() -> None:
    ids = account_ids(150, seed=11)
    for max_accounts in (1, 2, 3, 5, 7, 10, 200):
        for n in range(0, 150, 7):
            a = shards.assign(ids[:n], max_accounts)
            counts = loads(a, max_accounts)
            assert max(counts, default=0) <= max_accounts
            assert len(counts) == shards.shard_count(n, max_accounts)
            assert sorted(a) == sorted(ids[:n])


def test_the_assignment_depends_only_on_the_set_of_accounts() -> None:
    ids = account_ids(300)
    shuffled = list(ids)
    random.Random(1).shuffle(shuffled)
    assert shards.assign(ids, 50) == shards.assign(shuffled, 50) == shards.assign(ids + ids[:10], 50)


def test_every_process_computes_the_same_assignment() -> None:
    # Shard stacks run in separate processes: no per-process salt (Python's hash()) may leak in.
    ids = account_ids(60)
    code = f"import json; from rootwatch.program import shards; print(json.dumps(shards.assign({ids!r}, 10)))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=REPO).stdout
    assert json.loads(out) == shards.assign(ids, 10)


def test_select_splits_accounts_and_names_each_other_accounts_shard() -> None:
    accounts = [Account(i, f"acct-{i[-3:]}") for i in account_ids(40)]
    assignment = shards.assign((a.id for a in accounts), 10)
    seen: set[str] = set()
    for shard in shards.shard_names(40, 10):
        mine, others = shards.select(accounts, shard, 10)
        assert {a.id for a in mine} == {i for i, s in assignment.items() if s == shard}
        assert all(assignment[a.id] == s and s != shard for a, s in others)
        assert len(mine) + len(others) == 40
        seen |= {a.id for a in mine}
    assert seen == {a.id for a in accounts}  # every account is in exactly one shard


@pytest.mark.parametrize(
    ("shard", "message"),
    [
        ("shard-9", r"rootwatch:shard 'shard-9' does not exist: 40 account\(s\) at shardMaxAccounts 10 make 5 shard\(s\): shard-1 \.\. shard-5"),
        ("shard-0", "'shard-0' does not exist"),
        ("prod", r"'prod' does not exist \(names look like shard-1\)"),
    ],
)
def test_an_unknown_shard_is_a_clear_error(shard: str, message: str) -> None:
    accounts = [Account(i, "a") for i in account_ids(40)]
    with pytest.raises(RootwatchError, match=message):
        shards.select(accounts, shard, 10)


# --- the program under the mock runtime ---------------------------------------------------------------


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = cli.main(["shards", *argv, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_shard_stack_registers_only_its_accounts_the_ones_rootwatch_shards_lists(capsys: pytest.CaptureFixture[str]) -> None:
    code, rep = cli_json(capsys, "--org-snapshot", str(EXAMPLE_ORG), "--max-accounts", "3")
    assert code == 0 and rep["accounts"] == 9 and len(rep["shards"]) == 5
    planned = {s["name"]: set(s["accounts"]) for s in rep["shards"]}
    shard_of = {a: s for s, ids in planned.items() for a in ids}
    shard = next(s for s, ids in planned.items() if len(ids) >= 2)

    run = mockrun.run("example", extra_config={"rootwatch:shard": shard, "rootwatch:shardMaxAccounts": "3"})

    monitors = {m.name.removeprefix("rootwatch-") for m in run.by_type(MONITOR)}
    assert monitors == planned[shard]
    assert set(run.outputs["accounts"]) == planned[shard]
    elsewhere = {s["id"]: s["reason"] for s in run.outputs["skipped"] if s["reason"].startswith("assigned to shard")}
    assert elsewhere == {a: f"assigned to shard {shard_of[a]}" for a in shard_of if shard_of[a] != shard}
    # Filtered accounts are never sharded: they are skipped for their own reason in every shard.
    other = {s["id"]: s["reason"] for s in run.outputs["skipped"] if s["id"] not in elsewhere}
    assert other == {"222222222207": "account is SUSPENDED", "222222222209": "account is CLOSED"}


def test_a_shard_that_does_not_exist_fails_the_program_with_a_clear_error() -> None:
    run = mockrun.run("example", extra_config={"rootwatch:shard": "shard-7", "rootwatch:shardMaxAccounts": "3"}, check=False)
    # The program turns it into pulumi.RunError: one line, no traceback from the engine.
    assert isinstance(run.error, pulumi.RunError)
    assert str(run.error).startswith("rootwatch:shard 'shard-7' does not exist: 9 account(s) at shardMaxAccounts 3 make 5 shard(s)")
    assert run.by_type(MONITOR) == []


# --- rootwatch shards -----------------------------------------------------------------------------------


def big_org(n: int, path: Path) -> Path:
    ids = account_ids(n)
    org = {
        "managementAccountId": ids[0],
        "accounts": [{"id": i, "name": f"acct-{k}", "state": "ACTIVE", "ouPath": "r-ab12/ou-ab12-work0001"} for k, i in enumerate(ids)],
    }
    path.write_text(json.dumps(org))
    snapshot.load(path)  # a valid snapshot
    return path


def test_a_list_stack_shards_its_own_accounts_not_the_snapshots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `explicit` lists its accounts (source: list), as its program would: the snapshot does not widen the scope.
    org = big_org(425, tmp_path / "org.json")
    code, rep = cli_json(capsys, "--org-snapshot", str(org), "--stack", "explicit", "--max-accounts", "200")
    assert code == 0 and rep["accounts"] == 3  # two accounts and the listed hub
    assert rep["matrix"] == {"include": [{"shard": "shard-1", "accounts": 3}]}


def test_shards_cli_on_a_growing_organization(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # A stack over the whole organization: the example's config with no OU filter.
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    text = (REPO / "stacks" / "Pulumi.example.yaml").read_text()
    text = text.replace("includeOus: [ou-ex01-prod0001, ou-ex01-stag0001, ou-ex01-sand0001]", "includeOus: []")
    text = text.replace('includeAccounts: ["111111111111", "222222222208"]', "includeAccounts: []")
    # The hub (and its SQS route) in an account of that organization.
    text = text.replace("222222222208", account_ids(400)[0])
    (stacks / "Pulumi.org.yaml").write_text(text)
    monkeypatch.setattr(mockrun, "PROJECT_DIR", tmp_path)
    old, new = big_org(400, tmp_path / "old.json"), big_org(425, tmp_path / "new.json")

    code, rep = cli_json(capsys, "--org-snapshot", str(new), "--stack", "org", "--previous", str(old), "--max-accounts", "200")
    assert code == 0
    assert rep["schema"] == "rootwatch.shards/v1" and rep["accounts"] == 425 and rep["targetAccounts"] == 160
    assert [s["name"] for s in rep["shards"]] == ["shard-1", "shard-2", "shard-3"]
    assert all(s["count"] <= 200 for s in rep["shards"])
    assert rep["matrix"]["include"] == [{"shard": s["name"], "accounts": s["count"]} for s in rep["shards"]]
    assert rep["previous"] == {"accounts": 400, "shards": 3, "added": 25, "removed": 0, "moved": [], "movedPercent": 0.0}

    # At max 170 (planned 136) 425 accounts pass 3 x 136: a fourth shard appears: the moves are listed, and exit 1 flags the migration.
    code, rep = cli_json(capsys, "--org-snapshot", str(new), "--stack", "org", "--previous", str(old), "--max-accounts", "170")
    assert code == 1 and rep["previous"]["moved"] and {m["to"] for m in rep["previous"]["moved"]} == {"shard-4"}

    assert cli.main(["shards", "--org-snapshot", str(new), "--stack", "org", "--max-accounts", "200"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Stack org: 425 account(s) in 3 shard(s) (at most 200 per shard, planned 160)")


def test_shards_cli_input_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["shards", "--org-snapshot", str(tmp_path / "missing.json")]) == 2
    assert "org snapshot file not found" in capsys.readouterr().err
    assert cli.main(["shards", "--org-snapshot", str(EXAMPLE_ORG), "--max-accounts", "0"]) == 2
    assert "--max-accounts must be at least 1" in capsys.readouterr().err
