"""Typed stack settings: the `rootwatch` namespace of the Pulumi stack config.

Structured values use `pulumi config set --path` style (``rootwatch:alarm`` holds
``{"periodSeconds": 60}``). ``ROOTWATCH_*`` environment variables override the
stack config (``ROOTWATCH_ALARM__PERIODSECONDS=300``, or a JSON value for a
whole key), so automation can adjust a stack without editing its file.

Everything is validated before the first resource is registered: a bad value
raises ConfigError listing every bad key path, and nothing is deployed.
"""

from __future__ import annotations

import difflib
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Mapping

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from rootwatch.core.errors import ConfigError
from rootwatch.core.severity import ORDERED, Severity, highest
from rootwatch.detection.rule import DEFAULT_CLASS_SEVERITY, EventClass

NAMESPACE = "rootwatch"

# Stand-in for a `secure:` value that cannot be decrypted offline (rootwatch plan).
# Validators accept it wherever a secret may stand; it is never a real endpoint.
SECRET_PLACEHOLDER = "[secret]"

# The only retention values CloudWatch Logs accepts (PutRetentionPolicy).
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_REGION_RE = re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx|cn|us-gov)-(north|south|east|west|central|northeast|northwest|southeast|southwest|iso[a-z]*)-\d$")
_ROLE_RE = re.compile(r"^[\w+=,.@-]{1,64}$")
_OU_RE = re.compile(r"^(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32})$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HTTPS_RE = re.compile(r"^https://[^\s/$.?#][^\s]*$")
_ARN_RE = {
    "sqs": re.compile(r"^arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:[\w-]{1,80}(\.fifo)?$"),
    "lambda": re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[\w-]{1,64}(:[\w$-]+)?$"),
}


def region_partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _account_id_digits(v: Any) -> Any:
    # `pulumi config set --path` stores digit-only values as numbers: 012345678901
    # arrives as 12345678901, so restore the 12 digits (and their leading zeros).
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10**12:
        return f"{v:012d}"
    return v


def _account_id(v: str) -> str:
    if not _ACCOUNT_RE.match(v):
        raise ValueError(f"{v!r} is not a 12-digit AWS account id")
    return v


def _region(v: str) -> str:
    if not _REGION_RE.match(v):
        raise ValueError(f"{v!r} is not an AWS region name (e.g. us-east-1)")
    return v


def _role_name(v: str) -> str:
    if not _ROLE_RE.match(v):
        raise ValueError(f"{v!r} is not a valid IAM role name (1-64 of letters, digits and +=,.@_-)")
    return v


def _ou_id(v: str) -> str:
    if not _OU_RE.match(v):
        raise ValueError(f"{v!r} is not an organizational unit or root id (ou-xxxx-xxxxxxxx or r-xxxx)")
    return v


def _https_url(v: str) -> str:
    if not _HTTPS_RE.match(v):
        raise ValueError(f"{v!r} is not an https:// URL")
    return v


AccountId = Annotated[str, BeforeValidator(_account_id_digits), AfterValidator(_account_id)]
Region = Annotated[str, AfterValidator(_region)]
RoleName = Annotated[str, AfterValidator(_role_name)]
OuId = Annotated[str, AfterValidator(_ou_id)]
HttpsUrl = Annotated[str, AfterValidator(_https_url)]


class _Model(BaseModel):
    """Config objects: camelCase keys, unknown keys refused (typos must not pass silently)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Subscription(_Model):
    protocol: Literal["email", "https", "sqs", "lambda"]
    endpoint: str
    # https only: the endpoint answers SNS's SubscriptionConfirmation itself (PagerDuty's
    # Amazon CloudWatch integration URL does; its Events API v2 URL does not).
    auto_confirms: bool = False

    @model_validator(mode="after")
    def _endpoint_fits_protocol(self) -> "Subscription":
        e = self.endpoint
        if e == SECRET_PLACEHOLDER:
            return self
        ok = {
            "email": lambda: bool(_EMAIL_RE.match(e)),
            "https": lambda: bool(_HTTPS_RE.match(e)),
            "sqs": lambda: bool(_ARN_RE["sqs"].match(e)),
            "lambda": lambda: bool(_ARN_RE["lambda"].match(e)),
        }[self.protocol]()
        if not ok:
            # Never echo the endpoint: it may be a secret (a webhook URL with a token).
            raise ValueError(f"endpoint is not a valid {self.protocol} endpoint")
        if self.auto_confirms and self.protocol != "https":
            raise ValueError("autoConfirms applies to https endpoints only")
        return self

    def endpoint_account(self) -> str | None:
        """The account of an sqs/lambda endpoint (its ARN's fifth field); None for email/https or a secret."""
        if self.protocol in ("sqs", "lambda") and self.endpoint != SECRET_PLACEHOLDER:
            return self.endpoint.split(":")[4]
        return None


class AccountEntry(_Model):
    id: AccountId
    name: str = Field(min_length=1, max_length=50)
    email: str | None = None
    ou: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class AccountsSettings(_Model):
    source: Literal["organization", "list"] = "organization"
    # Used when source is "list".
    list: tuple[AccountEntry, ...] = ()
    include_ous: tuple[OuId, ...] = ()
    exclude_ous: tuple[OuId, ...] = ()
    include_accounts: tuple[AccountId, ...] = ()
    exclude_accounts: tuple[AccountId, ...] = ()
    # The management account is monitored through the default provider.
    include_management: bool = True

    @model_validator(mode="after")
    def _source_consistent(self) -> "AccountsSettings":
        if self.source == "list" and not self.list:
            raise ValueError("source is 'list' but accounts.list is empty")
        if self.source == "organization" and self.list:
            raise ValueError("accounts.list is only used with source 'list'")
        ids = [a.id for a in self.list]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate account ids in accounts.list: {', '.join(dupes)}")
        return self


class AccessSettings(_Model):
    role_name: RoleName = "OrganizationAccountAccessRole"
    external_id: str | None = Field(default=None, min_length=2, max_length=1224)
    session_name: str = Field(default="rootwatch", pattern=r"^[A-Za-z0-9_+=,.@-]{2,64}$")


class LifecycleSettings(_Model):
    # Days after which trail objects move to Glacier Flexible Retrieval; 0 disables.
    glacier_after_days: int = Field(default=90, ge=0)
    # Days after which trail objects expire; 0 keeps them forever.
    expire_after_days: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _order(self) -> "LifecycleSettings":
        if self.expire_after_days and self.glacier_after_days and self.expire_after_days <= self.glacier_after_days:
            raise ValueError("expireAfterDays must be greater than glacierAfterDays")
        return self


class TrailSettings(_Model):
    mode: Literal["managed", "existing"] = "managed"
    name: str = Field(default="rootwatch", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{2,127}$")
    # mode "existing": the log group the account's trail already delivers to.
    log_group_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-./#]{1,512}$")
    retention_days: int = 365
    kms_key_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
    lifecycle: LifecycleSettings = LifecycleSettings()

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v not in RETENTION_DAYS:
            raise ValueError(f"{v} is not a retention CloudWatch Logs accepts ({', '.join(map(str, RETENTION_DAYS))})")
        return v

    @model_validator(mode="after")
    def _existing_needs_group(self) -> "TrailSettings":
        if self.mode == "existing" and not self.log_group_name:
            raise ValueError("mode 'existing' needs trail.logGroupName")
        return self


class AlarmSettings(_Model):
    period_seconds: int = 60
    namespace: str = Field(default="CISLogMetrics", pattern=r"^[^:$][^:]{0,254}$")

    @field_validator("period_seconds")
    @classmethod
    def _period(cls, v: int) -> int:
        if v not in (10, 30) and (v <= 0 or v % 60):
            raise ValueError("must be 10, 30 or a multiple of 60")
        # An alarm re-notifies only on a state change: a long period mutes repeated root use.
        if v > 300:
            raise ValueError("must be at most 300 seconds (a longer period mutes repeated root use)")
        return v


class AccountMatch(_Model):
    """Matches an account when every given criterion matches (an empty match matches all)."""

    accounts: tuple[AccountId, ...] = ()
    ous: tuple[OuId, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)
    name_glob: str | None = None


class SeverityRule(_Model):
    match: AccountMatch
    level: Severity


class SeveritySettings(_Model):
    default: Severity = Severity.HIGH
    rules: tuple[SeverityRule, ...] = ()


# Baseline key of a severity-matrix row that applies to every baseline not named.
ANY_BASELINE = "*"
_DEPLOYER_ARN_RE = re.compile(r"^arn:aws[a-z-]*:(sts|iam)::\d{12}:[\w+=,.@/-]+$")


class RegionOverride(_Model):
    """Regions some accounts cannot use (an SCP denies them, or an opt-in region they have not enabled)."""

    match: AccountMatch
    exclude: tuple[Region, ...] = Field(min_length=1)


class RealtimeSettings(_Model):
    """The EventBridge path: rules in every region, the alert formatter, tamper alarms."""

    enabled: bool = True
    # Regions with an EventBridge rule; empty means the standard regions (the 17
    # enabled by default in every account). The home region and us-east-1 are always added.
    regions: tuple[Region, ...] = ()
    # Added to `regions` (or to the standard regions): opt-in regions the accounts enabled.
    extra_regions: tuple[Region, ...] = ()
    # {eventClass: {baseline | "*": level}}: the level of a real-time alert. A cell
    # left out is the higher of the class's default level and the account's baseline.
    severity_matrix: dict[EventClass, dict[Literal["*"] | Severity, Severity]] = Field(default_factory=dict)
    # Per account (first match wins): regions it gets no rules in; reported as a plan warning.
    region_overrides: tuple[RegionOverride, ...] = ()
    # Alert (critical) when anyone but the deploying role changes rootwatch's own resources.
    tamper: bool = True
    # The management account is deployed with the default credentials, not the assumed
    # role: the caller ARN prefix of that deployer (e.g. arn:aws:sts::<id>:assumed-role/ci/).
    # Unset, every change to its rootwatch resources (deploys included) raises a tamper alert.
    management_deployer_arn: str | None = None

    @field_validator("management_deployer_arn")
    @classmethod
    def _deployer_arn(cls, v: str | None) -> str | None:
        if v is not None and not _DEPLOYER_ARN_RE.match(v):
            raise ValueError(f"{v!r} is not an IAM or STS ARN (prefix)")
        return v

    def matrix_row(self, baseline: Severity) -> dict[EventClass, Severity]:
        """The level of each event class for an account with this baseline."""
        row: dict[EventClass, Severity] = {}
        for cls in EventClass:
            cells = self.severity_matrix.get(cls, {})
            default = highest(DEFAULT_CLASS_SEVERITY[cls], baseline)
            row[cls] = cells.get(baseline, cells.get(ANY_BASELINE, default))
        return row

    def levels_for(self, baseline: Severity) -> set[Severity]:
        """Levels the real-time path can alert at for this baseline (windows aside).

        Critical is always reachable: tamper alarms, malformed events, a root
        sign-in without MFA and the formatter's on-failure destination all use it.
        """
        return {*self.matrix_row(baseline).values(), Severity.CRITICAL}


class BreakGlassWindow(_Model):
    ticket: str = Field(min_length=1, max_length=64)
    accounts: tuple[AccountId, ...] = Field(min_length=1)
    approvers: tuple[str, ...]
    start: datetime
    end: datetime
    reason: str = Field(min_length=1, max_length=500)
    level: Severity | None = None

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("needs a timezone (e.g. 2026-11-24T10:00:00Z)")
        return v.astimezone(timezone.utc)

    @model_validator(mode="after")
    def _approvers_and_order(self) -> "BreakGlassWindow":
        if len({a.strip().lower() for a in self.approvers if a.strip()}) < 2:
            raise ValueError("a break-glass window needs at least two distinct approvers")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def to_lambda(self) -> dict[str, Any]:
        """The window as the alert formatter reads it (evaluated there, at alert time)."""
        return {
            "ticket": self.ticket,
            "approvers": list(self.approvers),
            "start": self.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": self.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reason": self.reason,
            "level": self.level.value if self.level else None,
        }


# The formatter's environment holds the windows of its account; Lambda caps all of a
# function's variables at 4 KB together, and topics, account and matrix need ~1 KB.
MAX_WINDOW_BYTES_PER_ACCOUNT = 2800


class BreakGlassSettings(_Model):
    max_hours: float = Field(default=8, gt=0, le=72)
    windows: tuple[BreakGlassWindow, ...] = ()

    @model_validator(mode="after")
    def _length(self) -> "BreakGlassSettings":
        cap = timedelta(hours=self.max_hours)
        for i, w in enumerate(self.windows):
            if w.end - w.start > cap:
                raise ValueError(f"windows[{i}] ({w.ticket}) is longer than breakGlass.maxHours ({self.max_hours:g} h)")
        return self

    @model_validator(mode="after")
    def _fits_lambda_environment(self) -> "BreakGlassSettings":
        for account in sorted({a for w in self.windows for a in w.accounts}):
            size = len(windows_json(self.windows_for(account)))
            if size > MAX_WINDOW_BYTES_PER_ACCOUNT:
                raise ValueError(
                    f"account {account} has {size} bytes of break-glass windows; the alert formatter holds at most "
                    f"{MAX_WINDOW_BYTES_PER_ACCOUNT} per account (remove expired windows, shorten reasons)"
                )
        return self

    def windows_for(self, account_id: str) -> list[BreakGlassWindow]:
        return [w for w in self.windows if account_id in w.accounts]


def windows_json(windows: list[BreakGlassWindow] | tuple[BreakGlassWindow, ...]) -> str:
    """Windows serialized for the formatter's environment (compact: it has a size cap)."""
    return json.dumps([w.to_lambda() for w in windows], separators=(",", ":"), sort_keys=True)


class HubSettings(_Model):
    """The alert hub: the one account (usually security tooling) where every alert reaches people."""

    account_id: AccountId
    # Default: rootwatch:homeRegion.
    region: Region | None = None
    # Organization id for the hub bus policy (aws:PrincipalOrgID) with accounts.source "list";
    # with source "organization" it is read from the Organizations API.
    organization_id: str | None = Field(default=None, pattern=r"^o-[a-z0-9]{10,32}$")


class RootwatchSettings(BaseSettings):
    """The whole `rootwatch:` namespace. Config keys are the camelCase field names.

    No alias generator here: pydantic-settings would also read un-prefixed
    environment variables named after aliases (``HOMEREGION``). Top-level keys
    are mapped camelCase -> snake_case in ``load`` instead.
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix="ROOTWATCH_",
        env_nested_delimiter="__",
        case_sensitive=False,
    )

    accounts: AccountsSettings = AccountsSettings()
    home_region: Region = "us-east-1"
    access: AccessSettings = AccessSettings()
    trail: TrailSettings = TrailSettings()
    alarm: AlarmSettings = AlarmSettings()
    runbook_url: HttpsUrl | None = None
    severity: SeveritySettings = SeveritySettings()
    # Human routes: subscriptions of the hub's topics (never in member accounts).
    routes: dict[Severity, tuple[Subscription, ...]] = Field(default_factory=dict)
    hub: HubSettings | None = None
    realtime: RealtimeSettings = RealtimeSettings()
    break_glass: BreakGlassSettings = BreakGlassSettings()
    # Protect stateful resources (bucket, key, log group) against accidental deletion.
    protect: bool = True
    # When set, only the accounts assigned to this shard are deployed (see `rootwatch shards`).
    shard: str | None = None
    shard_max_accounts: int = Field(default=200, ge=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: ROOTWATCH_* overrides the stack config (passed as init kwargs).
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _realtime_regions_in_home_partition(self) -> "RootwatchSettings":
        # One provider per account: every rule region must be reachable with its credentials.
        home = region_partition(self.home_region)
        rt = self.realtime
        foreign = sorted({r for r in (*rt.regions, *rt.extra_regions) if region_partition(r) != home})
        if foreign:
            raise ValueError(f"realtime: region(s) {', '.join(foreign)} are not in the home region's partition ({home})")
        return self

    @model_validator(mode="after")
    def _home_region_is_never_excluded(self) -> "RootwatchSettings":
        for i, o in enumerate(self.realtime.region_overrides):
            if self.home_region in o.exclude:
                raise ValueError(f"realtime.regionOverrides[{i}].exclude: the home region {self.home_region} holds the "
                                 "account's trail and alarm and cannot be excluded")
        return self

    @model_validator(mode="after")
    def _routes_cover_levels(self) -> "RootwatchSettings":
        # No "alerting to a void": every level any account can reach needs a subscriber.
        reachable: set[Severity] = set()
        for baseline in {self.severity.default, *(r.level for r in self.severity.rules)}:
            reachable.update(self.levels_for(baseline))
        missing = [lvl.value for lvl in ORDERED if lvl in reachable and not self.routes.get(lvl)]
        if missing:
            raise ValueError(f"routes: level(s) {', '.join(missing)} can be reached but have no subscription")
        return self

    @model_validator(mode="after")
    def _queue_and_function_routes_in_the_hub(self) -> "RootwatchSettings":
        # SNS delivers to an SQS queue or Lambda function of another account only through a
        # subscription that account creates: every such endpoint must be in the hub.
        if self.hub is None:
            return self
        for level, subs in self.routes.items():
            for i, sub in enumerate(subs):
                acct = sub.endpoint_account()
                if acct is not None and acct != self.hub.account_id:
                    raise ValueError(
                        f"routes.{level.value}[{i}]: the {sub.protocol} endpoint is in account {acct}, not in the hub "
                        f"account {self.hub.account_id} (rootwatch:hub.accountId)")
        return self

    @property
    def hub_region(self) -> str:
        return (self.hub.region if self.hub and self.hub.region else None) or self.home_region

    def levels_for(self, baseline: Severity, account_id: str | None = None) -> list[Severity]:
        """Levels an account with this baseline can alert at, lowest first.

        The alarm uses the baseline; the real-time path uses the severity
        matrix (by default the higher of baseline and event class) and critical
        for tamper and malformed events; a break-glass window may set its own level.
        """
        levels = {baseline}
        if self.realtime.enabled:
            levels.update(self.realtime.levels_for(baseline))
        for w in self.break_glass.windows:
            if w.level and (account_id is None or account_id in w.accounts):
                levels.add(w.level)
        return [s for s in ORDERED if s in levels]


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if i == 0 and isinstance(part, str):
            part = to_camel(part)
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-after", "function-before", "literal", "enum")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The config keys valid at `loc`, for did-you-mean hints on typos."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        field = next((f for n, f in current.model_fields.items() if part in (f.alias, n, to_camel(n))), None)
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        current = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or to_camel(n) for n, f in current.model_fields.items()]
    return []


def _messages(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(err["loc"])
        path = _format_loc(loc)
        if err["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(str(loc[-1]), _known_keys(RootwatchSettings, loc), n=1)
            msg = "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        else:
            msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{NAMESPACE}:{path}: {msg}" if path else f"{NAMESPACE}: {msg}")
    return problems


def _to_snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def parse_config_value(raw: Any) -> Any:
    """Config arrives as strings; structured (`--path`) values as JSON text."""
    if isinstance(raw, str) and raw[:1] in "{[":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def load(config: Mapping[str, Any]) -> RootwatchSettings:
    """Validate a `{"rootwatch:key": value}` mapping (other namespaces are ignored).

    Raises ConfigError listing every bad key; ROOTWATCH_* environment variables
    override the mapping.
    """
    prefix = NAMESPACE + ":"
    fields = RootwatchSettings.model_fields
    values = {}
    for key, raw in config.items():
        if key.startswith(prefix):
            name = _to_snake(key[len(prefix):])
            # Unknown keys keep their spelling so the error names what the user wrote.
            values[name if name in fields else key[len(prefix):]] = parse_config_value(raw)
    try:
        return RootwatchSettings(**values)
    except ValidationError as exc:
        raise ConfigError(_messages(exc)) from None


def from_pulumi() -> RootwatchSettings:
    """Load settings from the running Pulumi program's config."""
    from pulumi.runtime import config as rc

    merged = {**rc.get_config_env(), **rc.CONFIG.get()}
    return load(merged)


def secret_config_keys() -> set[str]:
    """Keys (without namespace) that the stack marks secret; their values are wrapped as secrets."""
    from pulumi.runtime import config as rc

    prefix = NAMESPACE + ":"
    keys = set(rc._SECRET_KEYS.get()) | set(rc.get_config_secret_keys_env())  # noqa: SLF001 - no public accessor
    return {k[len(prefix):] for k in keys if k.startswith(prefix)}


def expired_windows(settings: RootwatchSettings, now: datetime | None = None) -> list[BreakGlassWindow]:
    now = now or datetime.now(timezone.utc)
    return [w for w in settings.break_glass.windows if w.end <= now]
