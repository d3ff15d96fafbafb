"""The detection rule as SQL over Athena's CloudTrail table, rendered with sqlglot from ``detection.rule``.

``render("athena")`` returns a query for the documented ``cloudtrail_logs``
table (CREATE EXTERNAL TABLE ... with the CloudTrail SerDe; column names are
the record's keys in lower case, ``useridentity`` a struct) that returns the
verdict columns of ``rootwatch replay --format json``: eventID, eventName,
eventTime, account, cis_metric_filter, detected. ``render("duckdb")`` is the
same expression tree for DuckDB, which the tests run over both corpora to prove
the SQL agrees with the Python matcher.

Each ``Condition`` of the rule becomes one comparison, clauses become OR,
the rule AND, so a change to rule.py changes the SQL too. The semantics follow
CloudWatch Logs where SQL can: a missing field fails ``=`` and ``!=`` (SQL's
NULL, folded to FALSE), and NOT EXISTS is ``IS NULL``.

Limits of any SQL over that table, worth knowing: its SerDe reads a JSON null
and an absent key alike (both NULL), so ``"invokedBy": null`` on a Root record
reads as NOT EXISTS here, while CloudWatch Logs treats it as present; and class
and severity (``rootwatch replay`` computes them per record) are not rendered.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp

from rootwatch.core.errors import RootwatchError
from rootwatch.detection import rule as detection

DIALECTS = {"athena": "athena", "duckdb": "duckdb"}
DEFAULT_TABLE = "cloudtrail_logs"

# The columns of Athena's documented CloudTrail table that the query reads, as
# (record path) -> SQL type. Struct fields use the same lower-cased names.
ATHENA_COLUMNS: dict[tuple[str, ...], str] = {
    ("eventVersion",): "STRING",
    ("userIdentity", "type"): "STRING",
    ("userIdentity", "principalId"): "STRING",
    ("userIdentity", "arn"): "STRING",
    ("userIdentity", "accountId"): "STRING",
    ("userIdentity", "invokedBy"): "STRING",
    ("userIdentity", "accessKeyId"): "STRING",
    ("userIdentity", "userName"): "STRING",
    ("eventTime",): "STRING",
    ("eventSource",): "STRING",
    ("eventName",): "STRING",
    ("awsRegion",): "STRING",
    ("sourceIPAddress",): "STRING",
    ("userAgent",): "STRING",
    ("errorCode",): "STRING",
    ("errorMessage",): "STRING",
    ("requestParameters",): "STRING",
    ("responseElements",): "STRING",
    ("additionalEventData",): "STRING",
    ("requestID",): "STRING",
    ("eventID",): "STRING",
    ("readOnly",): "STRING",
    ("eventType",): "STRING",
    ("recipientAccountId",): "STRING",
}

# Output columns, named as replay's JSON keys.
VERDICT_COLUMNS = ("eventID", "eventName", "eventTime", "account", "cis_metric_filter", "detected")


def column(path: tuple[str, ...]) -> exp.Expression:
    """A record path as the table's column (``useridentity.invokedby``)."""
    if path not in ATHENA_COLUMNS:
        raise RootwatchError(f"the rule reads {'.'.join(path)}, which Athena's CloudTrail table has no column for")
    node: exp.Expression = exp.column(path[0].lower())
    for field in path[1:]:
        node = exp.Dot(this=node, expression=exp.to_identifier(field.lower()))
    return node


def condition_sql(c: detection.Condition) -> exp.Expression:
    col = column(c.path)
    if c.op == "absent":
        return exp.Is(this=col, expression=exp.Null())
    value = exp.Literal.string(str(c.value))
    return exp.EQ(this=col, expression=value) if c.op == "eq" else exp.NEQ(this=col, expression=value)


def rule_sql(rule: detection.Rule) -> exp.Expression:
    """Every clause must hold; any condition of a clause may. NULL (a missing field) folds to FALSE."""
    clauses = [exp.or_(*(condition_sql(c) for c in clause)) if len(clause) > 1 else condition_sql(clause[0])
               for clause in rule]
    return exp.func("COALESCE", exp.and_(*clauses), exp.false())


def _account() -> exp.Expression:
    # replay: recipientAccountId, else userIdentity.accountId (an empty string counts as missing)
    def nonempty(path: tuple[str, ...]) -> exp.Expression:
        return exp.func("NULLIF", column(path), exp.Literal.string(""))

    return exp.func("COALESCE", nonempty(("recipientAccountId",)), nonempty(("userIdentity", "accountId")))


def query(table: str = DEFAULT_TABLE, since: str | None = None, until: str | None = None,
          partition_column: str = "timestamp") -> exp.Select:
    cis = rule_sql(detection.CIS_RULE)
    extended = rule_sql(detection.EXTENDED_RULE)
    select = exp.select(
        exp.alias_(column(("eventID",)), "eventID", quoted=True),
        exp.alias_(column(("eventName",)), "eventName", quoted=True),
        exp.alias_(column(("eventTime",)), "eventTime", quoted=True),
        exp.alias_(_account(), "account", quoted=True),
        exp.alias_(cis, "cis_metric_filter", quoted=True),
        exp.alias_(extended, "detected", quoted=True),
    ).from_(exp.to_table(table))
    where: list[exp.Expression] = [exp.or_(cis.copy(), extended.copy())]
    # Partition projection (`projection.<col>.format = 'yyyy/MM/dd'`): bounds prune S3 prefixes.
    part = exp.column(partition_column)
    if since is not None:
        where.append(exp.GTE(this=part, expression=exp.Literal.string(_day(since, "--since"))))
    if until is not None:
        where.append(exp.LTE(this=part.copy(), expression=exp.Literal.string(_day(until, "--until"))))
    return select.where(exp.and_(*where)).order_by(column(("eventTime",)), column(("eventID",)))


def _day(text: str, option: str) -> str:
    import re

    if not re.fullmatch(r"\d{4}/\d{2}/\d{2}", text):
        raise RootwatchError(f"{option} {text!r}: write the day as YYYY/MM/DD, the partition projection format")
    return text


def render(engine: str, table: str = DEFAULT_TABLE, since: str | None = None, until: str | None = None,
           partition_column: str = "timestamp", pretty: bool = True) -> str:
    if engine not in DIALECTS:
        raise RootwatchError(f"--sql {engine!r}: expected one of {', '.join(DIALECTS)}")
    if not table.replace("_", "").replace(".", "").isalnum():
        raise RootwatchError(f"--table {table!r}: use letters, digits, '_' and '.' (database.table)")
    q = query(table, since, until, partition_column)
    text: str = q.sql(dialect=DIALECTS[engine], pretty=pretty, identify=True)
    sqlglot.parse_one(text, read=DIALECTS[engine])  # what we print must parse back in that dialect
    return text + ";"


def verdicts_sql(engine: str, **kwargs: Any) -> str:
    """The query without its trailing semicolon, for embedding (tests)."""
    return render(engine, **kwargs).rstrip(";")
