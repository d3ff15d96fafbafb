"""What the control costs: a monthly estimate per account, from what the program plans.

Pure functions. The footprint (how many trails, log groups, alarms, keys, topics,
rules ...) is counted from the resources the program registers for an account (a
mock run's ``Run.by_account()``), so the estimate follows the design; the volumes
(management events, bytes per event, whether a trail already exists) come from
the ``cost`` config section or from ``rootwatch cost --measure``; every price
comes from ``prices.json`` (one file, each figure with its pricing page and date).

What dominates, and why: CloudTrail's first copy of management events is free,
every further copy costs $2.00 per 100,000 events, and a trail that delivers to
CloudWatch Logs pays ingestion on every read and write event. The metric filter,
the alarm and the real-time path cost cents, because root activity is rare:
custom metrics are billed only for hours with data, AWS service events on the
default bus are free, and SNS/Lambda charge per alert.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources as importlib_resources
from typing import Any, Iterable, Mapping, Protocol, Sequence

from rootwatch.program.chain import LOG_GROUP_NAME

PRICES_FILE = "prices.json"
# Per-event metadata CloudWatch Logs archives with each event (CloudWatch pricing page).
ARCHIVE_METADATA_BYTES = 26

TRAIL = "aws:cloudtrail/trail:Trail"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
METRIC_FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
KMS_KEY = "aws:kms/key:Key"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
EVENT_RULE = "aws:cloudwatch/eventRule:EventRule"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
FUNCTION = "aws:lambda/function:Function"
QUEUE = "aws:sqs/queue:Queue"
TABLE = "aws:dynamodb/table:Table"
BUCKET = "aws:s3/bucket:Bucket"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
QUEUE_MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"


class Resource(Protocol):
    """What the estimate reads of a planned resource (mockrun.Registered has these)."""

    type: str
    inputs: Mapping[str, Any]


# --- prices -------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    key: str
    amount: float  # USD per `per` units
    per: float
    unit: str
    url: str
    date: str

    def of(self, quantity: float) -> float:
        return quantity * self.amount / self.per


@dataclass(frozen=True)
class PriceBook:
    checked: str
    checked_regions: tuple[str, ...]
    prices: Mapping[str, Mapping[str, Any]]
    assumptions: Mapping[str, Mapping[str, Any]]

    def price(self, key: str, region: str) -> Price:
        p = self.prices[key]
        amount = p.get("regions", {}).get(region, p["default"])
        return Price(key, float(amount), float(p["per"]), p["unit"], p["url"], p["date"])

    def assume(self, key: str) -> float:
        return float(self.assumptions[key]["value"])

    def region_checked(self, region: str) -> bool:
        return region in self.checked_regions


def price_book_from(doc: Mapping[str, Any]) -> PriceBook:
    return PriceBook(doc["checked"], tuple(doc["checkedRegions"]), doc["prices"], doc["assumptions"])


@lru_cache(maxsize=1)
def load_prices() -> PriceBook:
    """The shipped price file (package data)."""
    text = importlib_resources.files("rootwatch.program").joinpath(PRICES_FILE).read_text()
    return price_book_from(json.loads(text))


# --- what the program plans ----------------------------------------------------------


@dataclass(frozen=True)
class Footprint:
    """The billable parts of one account's planned resources."""

    trails: int = 0
    # Trails whose log files are encrypted with a KMS key (CloudTrail asks KMS for a data key per file).
    encrypted_trails: int = 0
    # Log groups the rootwatch trail delivers to, with their retention in days (0 = never expire).
    trail_log_retention_days: tuple[int, ...] = ()
    metric_filters: int = 0
    standard_alarms: int = 0
    high_resolution_alarms: int = 0
    kms_keys: int = 0
    topics: int = 0
    subscriptions: Mapping[str, int] = field(default_factory=dict)
    event_rules: int = 0
    cross_region_targets: int = 0
    functions: int = 0
    function_memory_mb: int = 0
    queues: int = 0
    # Lambda event source mappings on a queue: their pollers receive all the time, messages or not.
    queue_mappings: int = 0
    tables: int = 0
    buckets: int = 0
    # The trail bucket's lifecycle: days to Glacier (0 = never) and to expiry (0 = never).
    glacier_after_days: int = 0
    expire_after_days: int = 0
    # Regions with a real-time rule: the regions the estimate assumes have activity.
    regions: int = 1
    # Scheduled rules (the hub's formatter heartbeat): invocations per hour, and how many schedules.
    scheduled_per_hour: float = 0.0
    schedules: int = 0
    # Trail buckets replicating into the locked log archive (trail.archive).
    replicated: int = 0


def footprint(resources: Iterable[Resource]) -> Footprint:
    """Count what is billed, from the resources planned for one account."""
    counts: dict[str, int] = {}
    retention: list[int] = []
    subs: dict[str, int] = {}
    std_alarms = hires_alarms = cross_region = memory = 0
    glacier = expire = encrypted = 0
    per_hour = 0.0
    schedules = 0
    rule_regions: set[str] = set()
    for r in resources:
        counts[r.type] = counts.get(r.type, 0) + 1
        i = r.inputs
        if r.type == TRAIL and i.get("kmsKeyId"):
            encrypted += 1
        if r.type == LOG_GROUP and i.get("name") == LOG_GROUP_NAME:
            retention.append(int(i.get("retentionInDays") or 0))
        elif r.type == ALARM:
            # CloudWatch bills a 10 s or 30 s period as a high-resolution alarm.
            if float(i.get("period") or 60) < 60:
                hires_alarms += 1
            else:
                std_alarms += 1
        elif r.type == SUBSCRIPTION:
            proto = str(i.get("protocol", ""))
            subs[proto] = subs.get(proto, 0) + 1
        elif r.type == EVENT_TARGET and ":event-bus/" in str(i.get("arn", "")):
            cross_region += 1  # forwards matched events to the home region's bus
        elif r.type == EVENT_RULE:
            rule_regions.add(str(i.get("region", "")))
            if i.get("scheduleExpression"):
                schedules += 1
                per_hour += schedule_per_hour(str(i["scheduleExpression"]))
        elif r.type == FUNCTION:
            memory = max(memory, int(i.get("memorySize") or 128))
        elif r.type == LIFECYCLE:
            for rule in i.get("rules") or []:
                for t in rule.get("transitions") or []:
                    if t.get("storageClass") == "GLACIER":
                        glacier = int(t.get("days") or 0)
                expire = int((rule.get("expiration") or {}).get("days") or 0) or expire
    return Footprint(
        trails=counts.get(TRAIL, 0),
        encrypted_trails=encrypted,
        trail_log_retention_days=tuple(retention),
        metric_filters=counts.get(METRIC_FILTER, 0),
        standard_alarms=std_alarms,
        high_resolution_alarms=hires_alarms,
        kms_keys=counts.get(KMS_KEY, 0),
        topics=counts.get(TOPIC, 0),
        subscriptions=subs,
        event_rules=counts.get(EVENT_RULE, 0),
        cross_region_targets=cross_region,
        functions=counts.get(FUNCTION, 0),
        function_memory_mb=memory,
        queues=counts.get(QUEUE, 0),
        queue_mappings=counts.get(QUEUE_MAPPING, 0),
        tables=counts.get(TABLE, 0),
        buckets=counts.get(BUCKET, 0),
        glacier_after_days=glacier,
        expire_after_days=expire,
        regions=max(1, len(rule_regions)),
        scheduled_per_hour=per_hour,
        schedules=schedules,
        replicated=counts.get(REPLICATION, 0),
    )


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_PER_HOUR = {"minute": 60.0, "hour": 1.0, "day": 1 / 24}


def schedule_per_hour(expression: str) -> float:
    """Runs per hour of an EventBridge ``rate(...)`` expression; a cron expression counts as hourly
    (rootwatch plans none; the figure is then a rough upper bound for a daily job)."""
    m = _RATE.match(expression.strip())
    if not m:
        return 1.0
    return _PER_HOUR[m.group(2).rstrip("s")] / int(m.group(1))


# --- volumes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Volume:
    events_per_month: int
    bytes_per_event: int
    # Another trail already records the account's management events: a rootwatch trail is a paid copy.
    has_trail: bool
    alerts_per_month: int
    # Where the figures come from: "default", "override N" (cost.overrides[N]) or "measured".
    source: str = "default"


class _Matcher(Protocol):
    def __call__(self, match: Any) -> bool: ...


def volume_for(cost: Any, matches: _Matcher) -> Volume:
    """The account's volumes: the first ``cost.overrides`` entry that matches, over the defaults.

    ``cost`` is the settings' CostSettings; ``matches(match)`` tells whether an AccountMatch
    selects the account (organization.matches bound to it).
    """
    for n, o in enumerate(cost.overrides):
        if matches(o.match):
            return Volume(
                o.events_per_month if o.events_per_month is not None else cost.events_per_month,
                o.bytes_per_event if o.bytes_per_event is not None else cost.bytes_per_event,
                o.has_trail if o.has_trail is not None else cost.has_trail,
                o.alerts_per_month if o.alerts_per_month is not None else cost.alerts_per_month,
                f"override {n}",
            )
    return Volume(cost.events_per_month, cost.bytes_per_event, cost.has_trail, cost.alerts_per_month)


def hub_volume(member_volumes: Sequence[Volume]) -> Volume:
    """The alert hub's volumes: it formats and routes every account's alerts, and records no trail
    events of its own (its account's trail is counted with that account's monitor)."""
    size = max((v.bytes_per_event for v in member_volumes), default=1)
    return Volume(0, size, True, sum(v.alerts_per_month for v in member_volumes), "hub: the sum of every account's alerts")


# --- the estimate --------------------------------------------------------------------


@dataclass(frozen=True)
class LineItem:
    service: str
    item: str
    quantity: float
    unit: str
    usd: float
    price_key: str

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "item": self.item, "quantity": round(self.quantity, 6),
                "unit": self.unit, "usd": round(self.usd, 4), "price": self.price_key}


@dataclass(frozen=True)
class AccountCost:
    items: tuple[LineItem, ...]
    volume: Volume

    @property
    def total(self) -> float:
        return sum(i.usd for i in self.items)

    def by_service(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for i in self.items:
            out[i.service] = out.get(i.service, 0.0) + i.usd
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "monthlyUsd": round(self.total, 2),
            "byService": {k: round(v, 4) for k, v in sorted(self.by_service().items())},
            "volume": {"eventsPerMonth": self.volume.events_per_month, "bytesPerEvent": self.volume.bytes_per_event,
                       "hasTrail": self.volume.has_trail, "alertsPerMonth": self.volume.alerts_per_month,
                       "source": self.volume.source},
            "items": [i.to_json() for i in self.items if i.usd or i.quantity],
        }


def s3_stored_gb(monthly_gb: float, glacier_after_days: int, expire_after_days: int,
                 days_per_month: float, horizon_days: float) -> tuple[float, float]:
    """(GB in S3 Standard, GB in Glacier) once the lifecycle is in steady state.

    Each month adds ``monthly_gb``; objects stay in Standard until ``glacier_after_days``,
    then in Glacier until ``expire_after_days``. Without expiry the figure is the one
    after ``horizon_days`` (storage kept forever has no steady state).
    """
    end = expire_after_days or horizon_days
    standard_days = min(glacier_after_days, end) if glacier_after_days else end
    glacier_days = max(0.0, end - glacier_after_days) if glacier_after_days else 0.0
    return monthly_gb * standard_days / days_per_month, monthly_gb * glacier_days / days_per_month


def estimate(fp: Footprint, vol: Volume, region: str, book: PriceBook | None = None) -> AccountCost:
    """The monthly cost of one account's planned resources at these volumes (steady state)."""
    book = book or load_prices()
    items: list[LineItem] = []

    def add(service: str, item: str, quantity: float, key: str) -> None:
        price = book.price(key, region)
        items.append(LineItem(service, item, quantity, price.unit, price.of(quantity), key))

    events = vol.events_per_month
    gb_per_byte = 1 / book.assume("bytesPerGb")
    dpm = book.assume("daysPerMonth")
    gzip = book.assume("gzipRatio")
    ingested_gb = events * vol.bytes_per_event * gb_per_byte

    # CloudTrail: the rootwatch trail records every management event once more.
    if fp.trails:
        copies = fp.trails if vol.has_trail else fp.trails - 1
        add("CloudTrail", "management events, paid copies" if copies else "management events, first copy (free)",
            events * copies, "cloudtrail.paidManagementCopy")

    # CloudWatch Logs: every event of the trail is ingested, then archived (compressed) for the retention.
    for retention in fp.trail_log_retention_days:
        add("CloudWatch Logs", "trail events ingested (Standard class)", ingested_gb, "logs.ingestStandard")
        kept_days = retention or book.assume("foreverHorizonDays")
        # CloudWatch Logs archives each event with 26 bytes of metadata, gzip-compressed.
        archived_gb = events * (vol.bytes_per_event + ARCHIVE_METADATA_BYTES) * gzip * gb_per_byte
        add("CloudWatch Logs", f"trail events archived ({retention or 'no'} days retention)",
            archived_gb * kept_days / dpm, "logs.storage")

    # S3: the trail's gzip log files, by lifecycle.
    if fp.trails and fp.buckets:
        standard_gb, glacier_gb = s3_stored_gb(ingested_gb * gzip, fp.glacier_after_days, fp.expire_after_days,
                                               dpm, book.assume("foreverHorizonDays"))
        files = min(float(events), fp.regions * book.assume("trailFilesPerRegionMonth"))
        add("S3", "trail log files written", files, "s3.putRequests")
        if fp.encrypted_trails:
            add("KMS", "requests (one data key per encrypted trail log file)", files, "kms.requests")
        if fp.glacier_after_days:
            add("S3", "trail log files moved to Glacier", files, "s3.glacierTransitions")
            end = fp.expire_after_days or book.assume("foreverHorizonDays")
            archived_objects = files * max(0.0, end - fp.glacier_after_days) / dpm
            overhead_kb = book.assume("glacierObjectOverheadKb")
            # 8 of the 40 KB overhead per archived object is billed at Standard, the rest at Glacier.
            standard_gb += archived_objects * 8 * 1024 * gb_per_byte
            glacier_gb += archived_objects * (overhead_kb - 8) * 1024 * gb_per_byte
        add("S3", "trail logs stored, S3 Standard", standard_gb, "s3.standardStorage")
        add("S3", "trail logs stored, Glacier Flexible Retrieval", glacier_gb, "s3.glacierStorage")
        if fp.replicated:
            # trail.archive: each file is written again in the archive (same region: no transfer fee),
            # decrypted with the trail key and encrypted with the archive key, and kept locked in Standard.
            add("S3", "log files replicated into the locked archive", files * fp.replicated, "s3.putRequests")
            add("KMS", "requests (replication: decrypt, then encrypt the replica)", 2 * files * fp.replicated,
                "kms.requests")
            add("S3", "archive copy stored, S3 Standard (after one year; locked copies are never moved)",
                ingested_gb * gzip * book.assume("foreverHorizonDays") / dpm * fp.replicated, "s3.standardStorage")

    alerts = vol.alerts_per_month
    hours = book.assume("hoursPerMonth")
    # A metric filter without a default value emits data only when root activity matches.
    add("CloudWatch", "metric-filter metrics (hours with data)", fp.metric_filters * min(alerts, hours) / hours,
        "cloudwatch.customMetric")
    add("CloudWatch", "standard alarms", fp.standard_alarms, "cloudwatch.standardAlarm")
    add("CloudWatch", "high-resolution alarms", fp.high_resolution_alarms, "cloudwatch.highResolutionAlarm")

    add("KMS", "customer managed keys", fp.kms_keys, "kms.key")
    add("KMS", "requests (alert path)", alerts * book.assume("kmsRequestsPerAlert") if fp.kms_keys else 0,
        "kms.requests")

    if fp.event_rules:
        add("EventBridge", "CloudTrail events on the default bus", 0, "eventbridge.awsServiceEvents")
        # Matched events from other regions travel to the home bus; an upper bound counts every alert.
        add("EventBridge", "root events forwarded to the home region", alerts if fp.cross_region_targets else 0,
            "eventbridge.crossRegionEvents")

    if fp.topics:
        # Each alert is one publish to one topic, delivered to that topic's subscriptions (average over topics).
        per_topic = {proto: n / fp.topics for proto, n in fp.subscriptions.items()}
        add("SNS", "alert publishes", alerts, "sns.publish")
        add("SNS", "e-mail notifications", alerts * per_topic.get("email", 0), "sns.email")
        add("SNS", "https notifications", alerts * per_topic.get("https", 0), "sns.https")
        add("SNS", "SQS and Lambda deliveries", alerts * (per_topic.get("sqs", 0) + per_topic.get("lambda", 0)),
            "sns.sqsOrLambda")

    if fp.functions:
        add("Lambda", "alert formatter invocations", alerts * fp.functions, "lambda.requests")
        add("Lambda", "alert formatter compute", alerts * fp.functions * book.assume("lambdaSecondsPerAlert")
            * fp.function_memory_mb / 1024, "lambda.armGbSecond")

    if fp.scheduled_per_hour and fp.functions:
        # The heartbeat: scheduled rule events are AWS events (free); each run is one invocation, one
        # log line and one data point of a custom metric that reports every period.
        beats = fp.scheduled_per_hour * hours
        add("Lambda", "formatter heartbeat invocations", beats, "lambda.requests")
        add("Lambda", "formatter heartbeat compute",
            beats * book.assume("lambdaSecondsPerHeartbeat") * fp.function_memory_mb / 1024, "lambda.armGbSecond")
        add("CloudWatch Logs", "formatter heartbeat log lines",
            beats * 3 * book.assume("heartbeatLogBytes") / book.assume("bytesPerGb"), "logs.ingestStandard")
        add("CloudWatch", "heartbeat metric (FormatterHeartbeat)", fp.schedules, "cloudwatch.customMetric")

    if fp.queues:
        # Dead-letter queues stay empty while delivery works; nothing polls them. A queue the
        # formatter reads is long-polled by Lambda's pollers around the clock, messages or not.
        polls = fp.queue_mappings * book.assume("sqsIdlePollers") * hours * 3600 / book.assume("sqsLongPollSeconds")
        add("SQS", "Lambda pollers' receives on the alarm intake queue (idle)", polls, "sqs.requests")
        # Per alarm message: the send (SNS delivery), the delete after the formatter's success.
        add("SQS", "alarm messages sent and deleted", alerts * 2 * fp.queue_mappings, "sqs.requests")

    if fp.tables:
        add("DynamoDB", "table writes (one per alert)", alerts * fp.tables, "dynamodb.writeRequests")
        add("DynamoDB", "table storage", 0, "dynamodb.storage")

    return AccountCost(tuple(items), vol)


def assumptions(book: PriceBook | None = None, cost: Any = None) -> list[str]:
    """The assumptions behind every estimate, in words (plan prints them); ``cost`` is CostSettings."""
    book = book or load_prices()
    volumes = []
    if cost is not None:
        trail = ("already have a trail, so a rootwatch trail is a paid copy" if cost.has_trail
                 else "have no other trail, so a rootwatch trail is the free first copy")
        volumes.append(
            f"volumes (cost.*): {cost.events_per_month:,} management events per account and month, "
            f"{cost.bytes_per_event:,} bytes each, {cost.alerts_per_month} alerts; accounts {trail}"
            + (f"; {len(cost.overrides)} override(s) in cost.overrides" if cost.overrides else "")
        )
    return [
        *volumes,
        f"list prices checked {book.checked} (rootwatch/program/prices.json, each figure with its AWS pricing page); "
        f"no free tier; steady state once retention is full",
        "CloudTrail: the first copy of management events is free, each further copy $2.00 per 100,000 events; "
        "an account that already has a trail (organization, Control Tower or its own) pays for the rootwatch copy",
        "CloudWatch Logs: every management event (read and write) is ingested at the Standard class; "
        "the Infrequent Access class is not used because it does not support metric filters",
        f"storage: gzip ratio {book.assume('gzipRatio')}, {int(book.assume('trailFilesPerRegionMonth'))} trail files "
        "per region and month in each real-time region; storage kept forever is shown after one year",
        "alert path (metric data, SNS, Lambda, KMS requests, cross-region events) priced at cost.alertsPerMonth alerts",
    ]


def trade_offs(mode: str, log_group: str | None = None) -> list[str]:
    """What each trail mode buys and gives up, in words (plan prints them)."""
    if mode == "organization":
        return [
            "no member account gets a trail: no second copy of its events and no ingestion of its own",
            "Security Hub evaluates CloudWatch.1 in member accounts as NO_DATA when the only trail is an organization "
            "trail: members are reported as 'organization-trail', not compliant",
            f"one CIS filter and alarm on the organization trail's log group {log_group!r} in its owner account alarm "
            "on root use anywhere in the organization; the event's recipientAccountId and the member's real-time "
            "alert name the account (EventBridge rules stay in every account; they receive the events the "
            "organization trail records there)",
            "assumes the organization trail already delivers to CloudWatch Logs (Control Tower's does); turning that "
            "on for rootwatch ingests every account's events at the Standard rate in the owner account",
        ]
    if mode == "existing":
        return [f"each account's own trail delivers to {log_group!r}: rootwatch adds the CIS filter, alarms and alert "
                "path, no trail or ingestion of its own"]
    return ["every account gets its own multi-region trail: CloudWatch.1 can pass in each account, at the price of a "
            "paid second copy of every management event where another trail already records it "
            "(trail.mode organization avoids that copy)"]


def total(costs: Sequence[AccountCost]) -> float:
    return sum(c.total for c in costs)
