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
# What `rootwatch init` writes where a route endpoint must go: refused until replaced,
# so a new stack cannot deploy alarms that notify nobody.
ENDPOINT_PLACEHOLDER = "REPLACE-ME"

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
        if e.startswith(ENDPOINT_PLACEHOLDER):
            raise ValueError(
                f"endpoint is still the {ENDPOINT_PLACEHOLDER} placeholder written by `rootwatch init`: set a real "
                f"{self.protocol} endpoint (pulumi config set --path [--secret] 'rootwatch:routes.<level>[<n>].endpoint' ...)"
            )
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
    # The management account is monitored through its own pinned provider (no role assumed).
    include_management: bool = True
    # Mass-removal guard: the accounts the stack managed on its last update (the keys of its
    # `accounts` output, set by CI: ROOTWATCH_ACCOUNTS__PREVIOUSLYMANAGED; see README "Deploying").
    # Discovery that would drop more than maxRemovedFraction of them refuses to run.
    previously_managed: tuple[AccountId, ...] = ()
    max_removed_fraction: float = Field(default=0.1, ge=0, le=1)
    # Set (for one update) to offboard more accounts than maxRemovedFraction allows.
    allow_mass_removal: bool = False

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


class ArchiveSettings(_Model):
    # The organization's log-archive account: a bucket there with S3 Object Lock (compliance mode)
    # receives a replica of every managed trail's log files, so the audited account cannot erase them.
    account_id: AccountId
    # Compliance-mode retention of every replica: no one, root included, can delete it sooner.
    retention_days: int = Field(default=365, ge=1, le=36_500)


class TrailSettings(_Model):
    # "organization": an organization trail already records every account; no member gets a trail
    # of its own, and the CIS filter and alarm go once onto that trail's log group in its owner account.
    mode: Literal["managed", "existing", "organization"] = "managed"
    name: str = Field(default="rootwatch", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{2,127}$")
    # mode "existing": the log group the account's trail already delivers to; mode "organization": the
    # organization trail's log group, Control Tower suffix included (`rootwatch cost --measure` shows it).
    log_group_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-./#]{1,512}$")
    # mode "existing": the first log group whose name starts with this prefix (Control Tower
    # landing zone 4.0 names it aws-controltower/CloudTrailLogs-<random>).
    log_group_prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-./#]{1,512}$")
    retention_days: int = 365
    # The key that encrypts the trail's logs and both log groups. Unset: rootwatch creates
    # one per account (rotation on). A template may name each account's key: {accountId}.
    kms_key_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:(\d{12}|\{accountId\}):(key/[A-Za-z0-9-]+|alias/[A-Za-z0-9/_-]+)$",
    )
    lifecycle: LifecycleSettings = LifecycleSettings()
    # Immutable logs. With ``archive``, replicas in the log-archive account are locked; without it, each
    # managed trail's own bucket gets S3 Object Lock (compliance mode) for this many days (0: none).
    archive: ArchiveSettings | None = None
    object_lock_days: int = Field(default=365, ge=0, le=36_500)
    # mode "organization": the account that owns the organization trail's log group (default: the management account).
    owner_account_id: AccountId | None = None

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v not in RETENTION_DAYS:
            raise ValueError(f"{v} is not a retention CloudWatch Logs accepts ({', '.join(map(str, RETENTION_DAYS))})")
        return v

    @model_validator(mode="after")
    def _existing_needs_group(self) -> "TrailSettings":
        if self.mode == "organization" and not self.log_group_name:
            raise ValueError("mode 'organization' needs trail.logGroupName")
        if self.mode == "existing":
            given = [k for k, v in (("logGroupName", self.log_group_name), ("logGroupPrefix", self.log_group_prefix)) if v]
            if not given:
                raise ValueError("mode 'existing' needs trail.logGroupName or trail.logGroupPrefix")
            if len(given) > 1:
                raise ValueError(f"mode 'existing' takes one of {', '.join(given)}, not several")
        if self.owner_account_id and self.mode != "organization":
            raise ValueError("trail.ownerAccountId is only used with mode 'organization'")
        if self.archive and self.mode != "managed":
            raise ValueError(f"trail.archive replicates rootwatch's own trail buckets: it needs mode 'managed', "
                             f"not '{self.mode}' (lock the bucket of your own trail where it lives)")
        expire = self.lifecycle.expire_after_days
        # The in-account lock only: with an archive the trail bucket is not locked (the archive keeps no lifecycle).
        if not self.archive and expire and self.object_lock_days > expire:
            raise ValueError(f"trail.lifecycle.expireAfterDays ({expire}) is shorter than the Object Lock retention "
                             f"(trail.objectLockDays, {self.object_lock_days} days): S3 cannot expire locked log files")
        return self

    @property
    def lock_days(self) -> int:
        """Days each log file is locked: the archive's retention, else the in-account lock (0: none)."""
        return self.archive.retention_days if self.archive else self.object_lock_days

    def owns_organization_trail(self, account_id: str, is_management: bool) -> bool:
        """mode "organization": whether this account holds the organization trail's log group."""
        if self.mode != "organization":
            return False
        return account_id == self.owner_account_id if self.owner_account_id else is_management

    def key_arn_for(self, account_id: str) -> str | None:
        """The configured trail/log key of one account (the {accountId} template filled in)."""
        return self.kms_key_arn.replace("{accountId}", account_id) if self.kms_key_arn else None


class AlarmSettings(_Model):
    period_seconds: int = 60
    namespace: str = Field(default="CISLogMetrics", pattern=r"^[^:$][^:]{0,254}$")

    @field_validator("period_seconds")
    @classmethod
    def _period(cls, v: int) -> int:
        # 10 and 30 make high-resolution alarms on a one-minute metric: they lapse into INSUFFICIENT_DATA.
        if v <= 0 or v % 60:
            raise ValueError("must be a multiple of 60 (60, 120, 180, 240 or 300): the CIS metric has one-minute resolution")
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


class CostOverride(_Model):
    """Volumes for the accounts a match selects (first match wins; unset fields keep the defaults)."""

    match: AccountMatch
    events_per_month: int | None = Field(default=None, ge=0)
    bytes_per_event: int | None = Field(default=None, ge=100, le=262144)
    has_trail: bool | None = None
    alerts_per_month: int | None = Field(default=None, ge=0)


class CostSettings(_Model):
    """Volumes the cost estimate in `rootwatch plan` assumes (`rootwatch cost --measure` measures them)."""

    # Management events (read and write) per account and month; 300,000 is AWS's CloudTrail Insights pricing example.
    events_per_month: int = Field(default=300_000, ge=0)
    # Average size of one CloudTrail record as CloudWatch Logs ingests it (IncomingBytes / IncomingLogEvents).
    bytes_per_event: int = Field(default=1500, ge=100, le=262144)
    # Another trail (organization, Control Tower or the account's own) already records the account's
    # management events, so a rootwatch trail is a paid second copy. Most organizations have one.
    has_trail: bool = True
    # Root-activity alerts per account and month (the alarm should never fire; this prices the alert path).
    alerts_per_month: int = Field(default=10, ge=0)
    overrides: tuple[CostOverride, ...] = ()


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


# --- prevention (rootwatch:prevention) -------------------------------------------------------

_PRINCIPAL_ARN_RE = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::(\d{12}|\*):[\w+=,.@/*-]+$")
_SCP_NAME_RE = re.compile(r"^[\w+=,.@-]{1,128}$")


def _scp_target(v: str) -> str:
    if v == "root" or _ACCOUNT_RE.match(v) or _OU_RE.match(v):
        return v
    raise ValueError(f"{v!r} is not 'root', an OU or root id (ou-xxxx-xxxxxxxx, r-xxxx) or a 12-digit account id")


def _principal_arn(v: str) -> str:
    if not _PRINCIPAL_ARN_RE.match(v):
        raise ValueError(f"{v!r} is not an IAM/STS principal ARN (e.g. arn:aws:iam::123456789012:root)")
    return v


ScpTarget = Annotated[str, BeforeValidator(_account_id_digits), AfterValidator(_scp_target)]
PrincipalArn = Annotated[str, AfterValidator(_principal_arn)]


class CentralRootAccessSettings(_Model):
    """IAM centralized root access (aws.iam.OrganizationsFeatures), deployed in the management account."""

    enabled: bool = False
    # RootSessions: the management account may open sts:AssumeRoot task sessions in members
    # (needed by `rootwatch audit --root-credentials` and --delete-root-credentials).
    root_sessions: bool = True
    # IAM's features need trusted access for iam.amazonaws.com in Organizations. "manage": this
    # stack enables it (aws.organizations.AwsServiceAccess, kept on destroy); "existing": it is
    # enabled elsewhere, e.g. by the stack that owns aws.organizations.Organization through
    # awsServicePrincipals (the two must not both manage it: the provider reports a perpetual diff).
    trusted_access: Literal["manage", "existing"] = "manage"


class DenyRootScpSettings(_Model):
    """An SCP equal in effect to Control Tower's AWS-GR_RESTRICT_ROOT_USER, AssumeRoot sessions exempt."""

    enabled: bool = False
    name: str = "rootwatch-deny-root"
    # Where it is attached: "root" (the organization root), OU/root ids, or member account ids.
    # Never the management account: SCPs do not affect it (refused when the account is known).
    targets: tuple[ScpTarget, ...] = ()
    # Principals the deny does not apply to (aws:PrincipalArn, wildcards allowed), e.g. one
    # account's root user kept for break-glass: arn:aws:iam::123456789012:root.
    exempt_principal_arns: tuple[PrincipalArn, ...] = ()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _SCP_NAME_RE.match(v):
            raise ValueError(f"{v!r} is not a valid policy name (1-128 of letters, digits and +=,.@_-)")
        return v

    @model_validator(mode="after")
    def _targets(self) -> "DenyRootScpSettings":
        if self.enabled and not self.targets:
            raise ValueError("denyRootScp is enabled but has no targets (use [root] for the whole organization)")
        dupes = sorted({t for t in self.targets if self.targets.count(t) > 1})
        if dupes:
            raise ValueError(f"duplicate targets: {', '.join(dupes)}")
        return self


class PreventionSettings(_Model):
    central_root_access: CentralRootAccessSettings = CentralRootAccessSettings()
    deny_root_scp: DenyRootScpSettings = DenyRootScpSettings()
    # Output of `rootwatch audit --root-credentials --format json`: per-account root-credential
    # evidence for the `compliance` output and `plan` (unset: every account is "unknown").
    posture_file: str | None = Field(default=None, min_length=1)

    @property
    def enabled(self) -> bool:
        return self.central_root_access.enabled or self.deny_root_scp.enabled


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
    # ~58 resources per account with realtime in 4 regions (docs/shards.md): 25 accounts keep a
    # shard under ~1,500 resources, where previews still take minutes, not hours.
    shard_max_accounts: int = Field(default=25, ge=1)
    # Organization-level prevention (management account): off by default.
    prevention: PreventionSettings = PreventionSettings()
    # Volumes behind the cost estimate of `rootwatch plan` (no resource depends on them).
    cost: CostSettings = CostSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the values `load` passes: it applies ROOTWATCH_* itself (environment_overrides),
        # because pydantic-settings deep-merges a JSON variable into the stack's value (a
        # ROUTES override kept the stack's other levels) and ignores misspelled names.
        return (init_settings,)

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
    def _prevention_needs_organization(self) -> "RootwatchSettings":
        # Org-level resources deploy through the management account, which only discovery knows.
        if self.prevention.enabled and self.accounts.source != "organization":
            raise ValueError("prevention needs accounts.source 'organization' (the management account must be known)")
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


ENV_PREFIX = "ROOTWATCH_"
# ROOTWATCH_* variables that are not stack settings (CLI switches, the alert formatter's
# own environment inside Lambda, test switches): never reported as unknown settings.
NON_SETTING_VARIABLES = frozenset({"DEBUG", "PULUMI", "UPDATE_URN_SNAPSHOT", "TOPICS", "ACCOUNT", "BREAK_GLASS", "INCIDENT_TABLE"})


def _model_of(annotation: Any) -> type[BaseModel] | None:
    args = getattr(annotation, "__args__", ())
    return next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)


def _resolve_env_path(name: str) -> tuple[list[str] | None, str | None]:
    """``ALARM__PERIODSECONDS`` -> (["alarm", "periodSeconds"], None), or (None, hint).

    Each part matches a key case-insensitively, with or without underscores
    (HOME_REGION, HOMEREGION); parts below a mapping (routes levels) are kept lowercased.
    """
    parts = name.split("__")
    model: type[BaseModel] | None = RootwatchSettings
    path: list[str] = []
    for i, part in enumerate(parts):
        if model is None:
            path.append(part.lower())
            continue
        squashed = part.replace("_", "").lower()
        keys = {(f.alias or to_camel(n)): f for n, f in model.model_fields.items()}
        found = next((k for k in keys if k.lower() == squashed), None)
        if found is None:
            env_names = {_env_name(k): k for k in keys}
            prefix = ENV_PREFIX + "__".join(p.upper() for p in parts[:i]) + ("__" if i else "")
            hint = difflib.get_close_matches(part.upper(), list(env_names), n=1, cutoff=0.6)
            return None, (prefix + hint[0]) if hint else None
        path.append(found)
        model = _model_of(keys[found].annotation)
    return path, None


def _env_name(key: str) -> str:
    return _to_snake(key).upper()


def environment_overrides(environ: Mapping[str, str]) -> tuple[list[tuple[list[str], Any]], list[str]]:
    """ROOTWATCH_* variables as (key path, value) overrides, and one problem per bad variable.

    A variable replaces the whole key it names (ROOTWATCH_ROUTES replaces every route,
    never merges into the stack's); ``__`` descends one level. Values starting with
    ``{`` or ``[`` are JSON; others are the plain text, typed by validation.
    """
    overrides: list[tuple[list[str], Any]] = []
    problems: list[str] = []
    for var in sorted(environ):
        if not var.upper().startswith(ENV_PREFIX):
            continue
        name = var[len(ENV_PREFIX):]
        if name.upper() in NON_SETTING_VARIABLES:
            continue
        path, hint = _resolve_env_path(name)
        if path is None:
            problems.append(f"{var}: unknown setting" + (f" (did you mean {hint}?)" if hint else ""))
            continue
        raw = environ[var]
        value: Any = raw
        if raw.lstrip()[:1] in ("{", "["):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                problems.append(f"{var}: not valid JSON (column {exc.colno}: {exc.msg})")
                continue
        overrides.append((path, value))
    return overrides, problems


def _set_path(values: dict[str, Any], path: list[str], value: Any) -> None:
    node = values
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def load(config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> RootwatchSettings:
    """Validate a `{"rootwatch:key": value}` mapping (other namespaces are ignored).

    Raises ConfigError listing every bad key; ROOTWATCH_* environment variables
    (``environ``, default os.environ) override the mapping, each replacing the key it names.
    """
    import copy
    import os

    prefix = NAMESPACE + ":"
    fields = RootwatchSettings.model_fields
    values: dict[str, Any] = {}
    for key, raw in config.items():
        if key.startswith(prefix):
            name = _to_snake(key[len(prefix):])
            # Unknown keys keep their spelling so the error names what the user wrote.
            values[name if name in fields else key[len(prefix):]] = parse_config_value(raw)
    overrides, env_problems = environment_overrides(os.environ if environ is None else environ)
    if env_problems:
        raise ConfigError(env_problems)
    for path, value in overrides:
        top = _to_snake(path[0])
        if len(path) > 1:
            values[top] = copy.deepcopy(values.get(top)) if isinstance(values.get(top), dict) else {}
            _set_path(values[top], path[1:], value)
        else:
            values[top] = value
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
