"""`rootwatch replay --sql`: the rule rendered through sqlglot, run in DuckDB over both corpora."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest
import sqlglot

from corpora import project_records, realworld_records
from rootwatch.commands import cli, replay, replay_sql
from rootwatch.core.errors import RootwatchError
from rootwatch.detection import rule as detection

duckdb = pytest.importorskip("duckdb", reason="duckdb is a test dependency: pip install -e '.[test]'")


def serde(value: Any) -> str | None:
    """A JSON value as Athena's CloudTrail SerDe reads it into a STRING column (null and absent: NULL)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()  # numbers, booleans, and nested JSON kept as text


def athena_row(line: int, record: Any) -> dict[str, Any]:
    """One record as a row of the documented cloudtrail_logs table (lower-cased columns, useridentity a struct)."""
    record = record if isinstance(record, dict) else {}
    row: dict[str, Any] = {"line": line}
    ui = record.get("userIdentity")
    struct = {p[1].lower(): serde(ui.get(p[1])) for p in replay_sql.ATHENA_COLUMNS if len(p) == 2} if isinstance(ui, dict) else None
    row["useridentity"] = struct
    for path in replay_sql.ATHENA_COLUMNS:
        if len(path) == 1:
            row[path[0].lower()] = serde(record.get(path[0]))
    return row


def duckdb_table(records: list[Any]) -> Any:
    con = duckdb.connect()
    fields = ", ".join(f"{p[1].lower()} VARCHAR" for p in replay_sql.ATHENA_COLUMNS if len(p) == 2)
    scalars = [p[0].lower() for p in replay_sql.ATHENA_COLUMNS if len(p) == 1]
    con.execute(f"CREATE TABLE cloudtrail_logs (line INTEGER, useridentity STRUCT({fields}), "
                + ", ".join(f"{c} VARCHAR" for c in scalars) + ', "timestamp" VARCHAR)')
    cols = ["line", "useridentity", *scalars]
    rows = [athena_row(i, r) for i, r in enumerate(records)]
    con.executemany(f"INSERT INTO cloudtrail_logs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                    [[row[c] for c in cols] for row in rows])
    con.execute("UPDATE cloudtrail_logs SET \"timestamp\" = replace(substr(eventtime, 1, 10), '-', '/')")
    return con


def sql_verdicts(records: list[Any], **kwargs: Any) -> dict[int, tuple[Any, ...]]:
    con = duckdb_table(records)
    query = sqlglot.parse_one(replay_sql.verdicts_sql("duckdb", **kwargs), read="duckdb")
    query = query.select("line")  # the rendered query, plus the row's position to compare record by record
    cur = con.execute(query.sql(dialect="duckdb"))
    names = [d[0] for d in cur.description]
    assert names == [*replay_sql.VERDICT_COLUMNS, "line"]
    return {row[-1]: row[:-1] for row in cur.fetchall()}


def replay_verdicts(records: list[Any]) -> dict[int, tuple[Any, ...]]:
    evaluate = replay.builtin_evaluator()
    out = {}
    for i, r in enumerate(records):
        m = evaluate(r) if isinstance(r, dict) else None
        if m is not None:
            j = replay.match_to_json(m)
            out[i] = tuple(j[k] for k in replay_sql.VERDICT_COLUMNS)
    return out


@pytest.mark.parametrize("corpus", ["project", "realworld"])
def test_duckdb_rendering_agrees_with_replay_on_every_record(corpus: str) -> None:
    records = [rec for _, _, rec in (project_records() if corpus == "project" else realworld_records())]
    expected = replay_verdicts(records)
    got = sql_verdicts(records)
    assert got == expected
    assert len(got) > 20 and any(not v[4] and v[5] for v in got.values())  # extended-only matches exist
    # The engine agrees too (read from the files' bytes, fast path included).
    found: list[replay.Match] = []
    data = b"\n".join(orjson.dumps(r) for r in records)
    replay.read_documents(data, "x", replay.Problems(io.StringIO()), replay.Stats(),
                          lambda recs, line, raw: replay._scan(recs, line, raw, "x", replay.builtin_evaluator(),
                                                               found.append, replay.Stats(), replay.Problems(io.StringIO())),
                          lazy=True)
    assert [tuple(replay.match_to_json(m)[k] for k in replay_sql.VERDICT_COLUMNS) for m in found] == list(expected.values())


def test_partition_bounds_prune_by_day() -> None:
    records = [rec for _, _, rec in project_records()]
    records = [{**r, "eventTime": r["eventTime"].replace("2025-03-04", "2025-03-05")} if i % 2 else r
               for i, r in enumerate(records)]
    all_rows = sql_verdicts(records)
    days = sorted({v[2][:10].replace("-", "/") for v in all_rows.values()})
    assert len(days) > 1
    some = sql_verdicts(records, since=days[-1], until=days[-1])
    assert some and set(some) < set(all_rows)
    assert all(v[2].startswith(days[-1].replace("/", "-")) for v in some.values())


def test_athena_rendering_is_the_rule() -> None:
    sql = replay_sql.render("athena")
    tree = sqlglot.parse_one(sql.rstrip(";"), read="athena")  # parses back as Athena SQL
    assert [s.alias_or_name for s in tree.selects] == list(replay_sql.VERDICT_COLUMNS)
    assert 'FROM "cloudtrail_logs"' in sql
    assert '"useridentity"."invokedby" IS NULL' in sql and "\"useridentity\".\"type\" = 'Root'" in sql
    assert "\"useridentity\".\"invokedby\" = 'signin.amazonaws.com'" in sql and '"eventtype" IS NULL' in sql
    assert "'2025/01/01'" in replay_sql.render("athena", since="2025/01/01")


def test_rule_change_changes_the_sql(monkeypatch: pytest.MonkeyPatch) -> None:
    narrowed = (*detection.CIS_RULE, (detection.Condition(("eventName",), "eq", "ConsoleLogin"),))
    monkeypatch.setattr(detection, "CIS_RULE", narrowed)
    assert "\"eventname\" = 'ConsoleLogin'" in replay_sql.render("athena")
    monkeypatch.setattr(detection, "CIS_RULE", (*narrowed, (detection.Condition(("tlsDetails", "tlsVersion"), "eq", "x"),)))
    with pytest.raises(RootwatchError, match="tlsDetails.tlsVersion"):
        replay_sql.render("athena")


@pytest.mark.parametrize("argv,fragment", [
    (["--sql", "athena", "--since", "2025-01-01"], "--since '2025-01-01': write the day as YYYY/MM/DD"),
    (["--sql", "athena", "--table", "x; DROP TABLE y"], "--table"),
    (["--sql", "athena", "logs/"], "--sql prints a query and reads no FILE"),
    ([], "replay needs at least one FILE"),
])
def test_sql_usage_errors(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any,
                          argv: list[str], fragment: str) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("rootwatch.commands.replay",))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["replay", *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_sql_cli_prints_the_query(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("rootwatch.commands.replay",))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["replay", "--sql", "athena", "--table", "security.cloudtrail_logs_pp", "--since", "2025/01/01"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("SELECT") and out.rstrip().endswith(";") and 'FROM "security"."cloudtrail_logs_pp"' in out
    assert "\"timestamp\" >= '2025/01/01'" in out
