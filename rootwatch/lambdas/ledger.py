"""The incident ledger: every alert opens or updates an incident in a DynamoDB table.

One incident per account at a time: the first alert of an account with no open
incident opens one; later alerts of that account update it (last event, classes,
highest level, break-glass tickets, AssumeRoot sessions, time-to-detect samples)
until someone resolves it with ``rootwatch incidents resolve``. MTTR and incidents
per quarter (``rootwatch report``) are computed from these items.

Table layout (partition key ``id``, string; see ``rootwatch.program.ledger``):

- incident items: ``id`` = ``<account>-<first event, UTC compact>-<6 hex of its event id>``;
- one pointer item per account with an open incident: ``id`` = ``open#<account>``,
  ``incident`` = the open incident's id. Opening writes the pointer and the
  incident in one transaction, on condition that no pointer exists, so two
  concurrent alerts of one account never open two incidents.

Every change is an optimistic write (``version`` must be unchanged), retried on
conflict. A redelivered alert (same event id; EventBridge and Lambda deliver at
least once) changes nothing. The formatter records after it has published, and
a ledger failure is logged, never raised: the ledger must not cost an alert.

Standard library and boto3 only (it runs in the formatter Lambda).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from rootwatch.lambdas.metrics import parse_time

ENV_TABLE = "ROOTWATCH_INCIDENT_TABLE"  # the formatter records incidents when this names the table
DEFAULT_TABLE = "rootwatch-incidents"
POINTER_PREFIX = "open#"
OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED)
MAX_LISTED = 200  # event ids and detections kept per incident (an item holds at most 400 KB)
MAX_ATTEMPTS = 10
_LEVELS = ("low", "medium", "high", "critical")


class LedgerError(RuntimeError):
    """The ledger could not be changed (unknown incident, already resolved, conflict after retries)."""


def utc(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pointer_key(account: str) -> str:
    return POINTER_PREFIX + account


@dataclass(frozen=True)
class AlertFacts:
    """What one published alert tells the ledger (pure: built from the formatter's document)."""

    account: str
    account_name: str
    kind: str  # root | tamper | unrecognized | untrusted | malformed
    event_class: str  # the detection class (console-login, ...) or, for non-root alerts, the kind
    level: str
    event_id: str
    event_time: str  # UTC, ISO 8601
    published_at: str
    break_glass: tuple[str, ...] = ()  # tickets of the windows that authorised it
    assume_root_session: str | None = None  # access key id of the sts:AssumeRoot session
    time_to_detect: float | None = None
    path: str = "realtime"


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def facts_from_alert(doc: Mapping[str, Any], event: Any, *, now: datetime, time_to_detect: float | None = None,
                     path: str = "realtime") -> AlertFacts | None:
    """The ledger's view of an alert document; None for drills (a drill is not an incident)."""
    kind = str(doc.get("kind") or "malformed")
    if kind == "drill":
        return None
    finding = doc.get("finding") if isinstance(doc.get("finding"), Mapping) else {}
    detail = _get(event, "detail")
    when = finding.get("event_time") or _get(doc, "event", "time") or _get(detail, "eventTime")
    parsed = parse_time(when) or now
    event_id = (finding.get("event_id") or _get(doc, "event", "id") or _get(detail, "eventID")
                or _get(event, "id") or f"{kind}-{utc(now)}")
    session = _get(detail, "userIdentity", "accessKeyId") if finding.get("assumed_root") else None
    return AlertFacts(
        account=str(_get(doc, "account", "id") or "unknown"),
        account_name=str(_get(doc, "account", "name") or ""),
        kind=kind,
        event_class=str(finding.get("event_class") or kind),
        level=str(doc.get("severity") or "critical"),
        event_id=str(event_id),
        event_time=utc(parsed),
        published_at=utc(now),
        break_glass=tuple(str(w.get("ticket")) for w in doc.get("breakGlass") or [] if isinstance(w, Mapping)),
        assume_root_session=str(session) if isinstance(session, str) and session else None,
        time_to_detect=time_to_detect,
        path=path,
    )


def incident_id(facts: AlertFacts) -> str:
    stamp = facts.event_time.replace("-", "").replace(":", "")
    return f"{facts.account}-{stamp}-{hashlib.sha256(facts.event_id.encode()).hexdigest()[:6]}"


def _detection(facts: AlertFacts) -> dict[str, Any]:
    return {"path": facts.path, "level": facts.level, "eventTime": facts.event_time, "seconds": facts.time_to_detect}


def _higher(a: str, b: str) -> str:
    return max(a, b, key=lambda lvl: _LEVELS.index(lvl) if lvl in _LEVELS else len(_LEVELS))


def _add(items: list[Any], value: Any) -> list[Any]:
    return items if value in items or value is None else [*items, value][-MAX_LISTED:]


def open_incident(facts: AlertFacts) -> dict[str, Any]:
    """A new incident item for the first alert of an account (pure)."""
    return {
        "id": incident_id(facts), "account": facts.account, "accountName": facts.account_name, "status": OPEN,
        "firstEvent": facts.event_time, "lastEvent": facts.event_time, "openedAt": facts.published_at,
        "updatedAt": facts.published_at, "level": facts.level, "classes": [facts.event_class],
        "kinds": [facts.kind], "eventIds": [facts.event_id], "alertCount": 1,
        "breakGlass": list(dict.fromkeys(facts.break_glass)),
        # Authorised only while every alert of the incident fell inside a break-glass window.
        "breakGlassAuthorized": bool(facts.break_glass),
        "assumeRootSessions": [facts.assume_root_session] if facts.assume_root_session else [],
        "detections": [_detection(facts)] if facts.time_to_detect is not None else [],
        "log": [], "version": 1,
    }


def merge(item: Mapping[str, Any], facts: AlertFacts) -> dict[str, Any]:
    """The incident after one more alert (pure). Out-of-order events widen first/last as needed."""
    new = dict(item)
    new["firstEvent"] = min(item["firstEvent"], facts.event_time)
    new["lastEvent"] = max(item["lastEvent"], facts.event_time)
    new["updatedAt"] = facts.published_at
    new["level"] = _higher(str(item["level"]), facts.level)
    new["classes"] = _add(list(item.get("classes", [])), facts.event_class)
    new["kinds"] = _add(list(item.get("kinds", [])), facts.kind)
    new["eventIds"] = _add(list(item.get("eventIds", [])), facts.event_id)
    new["alertCount"] = int(item.get("alertCount", 0)) + 1
    tickets = list(item.get("breakGlass", []))
    for t in facts.break_glass:
        tickets = _add(tickets, t)
    new["breakGlass"] = tickets
    new["breakGlassAuthorized"] = bool(item.get("breakGlassAuthorized")) and bool(facts.break_glass)
    new["assumeRootSessions"] = _add(list(item.get("assumeRootSessions", [])), facts.assume_root_session)
    if facts.time_to_detect is not None:
        new["detections"] = [*item.get("detections", []), _detection(facts)][-MAX_LISTED:]
    new["version"] = int(item["version"]) + 1
    return new


def transition(item: Mapping[str, Any], status: str, *, by: str, note: str, now: datetime) -> dict[str, Any]:
    """Acknowledge or resolve (pure): who, when and why go on the item and its log."""
    if item.get("status") == RESOLVED:
        raise LedgerError(f"incident {item['id']} is already resolved")
    if status == ACKNOWLEDGED and item.get("status") == ACKNOWLEDGED:
        raise LedgerError(f"incident {item['id']} is already acknowledged by {item.get('acknowledgedBy')}")
    new = dict(item)
    at = utc(now)
    prefix = "acknowledged" if status == ACKNOWLEDGED else "resolved"
    new.update({"status": status, f"{prefix}By": by, f"{prefix}At": at, f"{prefix}Note": note, "updatedAt": at})
    if status == RESOLVED and not item.get("acknowledgedAt"):
        new.update({"acknowledgedBy": by, "acknowledgedAt": at})  # resolving implies having looked at it
    new["log"] = [*item.get("log", []), {"action": prefix, "by": by, "at": at, "note": note}]
    new["version"] = int(item["version"]) + 1
    return new


# -- DynamoDB (a low-level boto3 client is passed in) ------------------------------------------------


def _to_ddb(item: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    ser = TypeSerializer()

    def fix(v: Any) -> Any:  # DynamoDB numbers are Decimals; floats are refused
        if isinstance(v, float):
            return Decimal(str(v))
        if isinstance(v, Mapping):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [fix(x) for x in v]
        return v

    return {k: ser.serialize(fix(v)) for k, v in item.items()}


def _from_ddb(raw: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    de = TypeDeserializer()

    def fix(v: Any) -> Any:
        if isinstance(v, Decimal):
            return int(v) if v == v.to_integral_value() else float(v)
        if isinstance(v, Mapping):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return {k: fix(de.deserialize(v)) for k, v in raw.items()}


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _get_item(client: Any, table: str, key: str) -> dict[str, Any] | None:
    raw = client.get_item(TableName=table, Key={"id": {"S": key}}, ConsistentRead=True).get("Item")
    return _from_ddb(raw) if raw else None


def _put_versioned(client: Any, table: str, new: Mapping[str, Any], old_version: int) -> bool:
    try:
        client.put_item(TableName=table, Item=_to_ddb(new), ConditionExpression="version = :v",
                        ExpressionAttributeValues={":v": {"N": str(old_version)}})
        return True
    except Exception as exc:
        if _code(exc) == "ConditionalCheckFailedException":
            return False
        raise


def _backoff(attempt: int) -> None:
    if attempt:  # lost a race: let the winner finish (jittered, at most ~0.5 s in all)
        time.sleep(random.uniform(0, 0.01 * attempt))


def record(client: Any, table: str, facts: AlertFacts) -> str:
    """Open or update the account's incident for this alert; returns the incident id."""
    for attempt in range(MAX_ATTEMPTS):
        _backoff(attempt)
        pointer = _get_item(client, table, pointer_key(facts.account))
        if pointer is not None:
            iid = str(pointer["incident"])
            item = _get_item(client, table, iid)
            if item is not None and item.get("status") != RESOLVED:
                if facts.event_id in item.get("eventIds", []):
                    return iid  # redelivered: already counted
                if _put_versioned(client, table, merge(item, facts), int(item["version"])):
                    return iid
                continue
            # The pointer outlived its incident (resolved meanwhile): drop it and open a new one.
            try:
                client.delete_item(TableName=table, Key={"id": {"S": pointer_key(facts.account)}},
                                   ConditionExpression="incident = :i", ExpressionAttributeValues={":i": {"S": iid}})
            except Exception as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise
            continue
        item = open_incident(facts)
        try:
            client.transact_write_items(TransactItems=[
                {"Put": {"TableName": table, "ConditionExpression": "attribute_not_exists(id)",
                         "Item": {"id": {"S": pointer_key(facts.account)}, "incident": {"S": item["id"]}}}},
                {"Put": {"TableName": table, "ConditionExpression": "attribute_not_exists(id)", "Item": _to_ddb(item)}},
            ])
            return str(item["id"])
        except Exception as exc:
            if _code(exc) not in ("TransactionCanceledException", "ConditionalCheckFailedException"):
                raise
    raise LedgerError(f"could not record the alert of account {facts.account} after {MAX_ATTEMPTS} attempts")


def change(client: Any, table: str, iid: str, status: str, *, by: str, note: str, now: datetime) -> dict[str, Any]:
    """Acknowledge or resolve incident ``iid``; resolving also closes the account's pointer."""
    if status not in (ACKNOWLEDGED, RESOLVED):
        raise ValueError(status)
    for attempt in range(MAX_ATTEMPTS):
        _backoff(attempt)
        item = _get_item(client, table, iid)
        if item is None or iid.startswith(POINTER_PREFIX):
            raise LedgerError(f"no incident {iid} in table {table}")
        new = transition(item, status, by=by, note=note, now=now)
        if not _put_versioned(client, table, new, int(item["version"])):
            continue
        if status == ACKNOWLEDGED:
            return new
        # The next alert of this account opens a new incident (only if the pointer is still ours).
        try:
            client.delete_item(TableName=table, Key={"id": {"S": pointer_key(str(item["account"]))}},
                               ConditionExpression="incident = :i", ExpressionAttributeValues={":i": {"S": iid}})
        except Exception as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
        return new
    raise LedgerError(f"incident {iid} kept changing; try again")


def incidents(client: Any, table: str) -> list[dict[str, Any]]:
    """Every incident (pointers left out), oldest first event first."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        items.extend(_from_ddb(i) for i in page.get("Items", []))
        if not page.get("LastEvaluatedKey"):
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    found = [i for i in items if not str(i.get("id", "")).startswith(POINTER_PREFIX)]
    return sorted(found, key=lambda i: (str(i.get("firstEvent", "")), str(i["id"])))
