"""Settings read once from the environment, checked at start-up (fail fast), with no default secrets.

Every variable is listed in the README and is one field below: the field's alias is the variable's name, then its
default (in the field's type: amounts in minor units) and its rules. Values are stripped, and blank values mean
unset. A malformed value raises SettingsError naming the variable; its message never repeats what a secret or URL
variable holds (URLs may embed credentials).

Unset connection URLs mean "embedded default": `paygo serve` then finds or starts a private PostgreSQL, runs the
Zcash regtest stand-in in-process, and runs without Redis.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from annotated_types import Ge, Le
from limits import parse_many
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from billing.vendor_keys import MAX_OVERLAP_SECONDS
from chains.ethereum import Token, normalise_address
from chains.zcash_address import ZcashNetwork
from kernel.assets import ETH, USD, ZEC, Asset
from kernel.errors import InvalidAddress, InvalidAmount
from kernel.money import parse_amount
from paygo.logs import LOG_FORMATS, LOG_LEVELS

DEFAULT_TOKEN_MAX_AMOUNT = Decimal(1_000_000)  # whole tokens, for an ETH_TOKENS entry without max_amount


class SettingsError(ValueError):
    """A variable is malformed; the message names it and never holds a secret."""


class _Problem(ValueError):
    """What is wrong with a field's value, without the variable's name (the error message puts it first)."""


def parse_listen(value: str, name: str = "listen address") -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:8080`) to a (host, port) pair; `name` is what an error calls the value."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdecimal() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"{name} must be HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _one_of(choices: tuple[str, ...]) -> AfterValidator:
    def check(value: str) -> str:
        if value not in choices:
            raise _Problem(f"must be {', '.join(choices[:-1])} or {choices[-1]}")
        return value

    return AfterValidator(check)


def _zero_means_unset(value: int | None) -> int | None:
    return value or None


def _units(value: object, asset: Asset, variable: str) -> int:
    """A positive decimal amount of `asset`, as operators write it, in minor units."""
    try:
        return parse_amount(value, asset, variable)
    except InvalidAmount as exc:
        raise SettingsError(exc.message) from None


def _address(value: str, variable: str) -> str:
    try:
        return normalise_address(value, variable)
    except InvalidAddress as exc:
        raise SettingsError(exc.message) from None


_LOWERCASE = BeforeValidator(str.lower)
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_UPPERCASE = BeforeValidator(str.upper)


class _Group(BaseSettings):
    """A group of variables, one field each. Constructed without arguments, it reads the process environment
    (pydantic-settings); arguments, keyed by variable name, take precedence over the environment."""

    # Comma-separated lists are parsed by their validators, never decoded as JSON; defaults are typed, not parsed.
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True, enable_decoding=False,
                                      validate_default=False)

    @model_validator(mode="before")
    @classmethod
    def _blank_means_unset(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        return {name: value.strip() if isinstance(value, str) else value for name, value in data.items()
                if not isinstance(value, str) or value.strip()}

    @classmethod
    def variable(cls, field_name: str | None) -> str:
        """The environment variable behind a field."""
        return str(cls.model_fields[field_name or ""].alias)


class ZcashSettings(_Group):
    """The Zcash wallet (and node) payments go through; unset ZCASH_RPC_URL means the in-process stand-in."""

    rpc_url: str | None = Field(None, alias="ZCASH_RPC_URL", repr=False)
    rpc_user: str | None = Field(None, alias="ZCASH_RPC_USER")
    rpc_password: str | None = Field(None, alias="ZCASH_RPC_PASSWORD", repr=False)
    node_rpc_url: str | None = Field(None, alias="ZCASH_NODE_RPC_URL", repr=False)
    service_wallet: str | None = Field(None, alias="ZCASH_SERVICE_WALLET")
    # unset: the network the node says it serves (asked at start-up); regtest with the stand-in
    network: Annotated[ZcashNetwork | None, _LOWERCASE] = Field(
        default_factory=lambda fields: None if fields.get("rpc_url") else ZcashNetwork.REGTEST,
        alias="ZCASH_NETWORK")
    min_confirmations: int = Field(10, alias="ZCASH_MIN_CONFIRMATIONS", ge=1)
    rpc_flavor: Annotated[Literal["auto", "zcashd", "zallet"], _LOWERCASE] = Field("auto", alias="ZCASH_RPC_FLAVOR")
    rpc_timeout_seconds: int = Field(10, alias="ZCASH_RPC_TIMEOUT_SECONDS", ge=1)
    max_amount_units: int = Field(1000 * ZEC.unit, alias="ZCASH_MAX_PERMISSION_AMOUNT")
    # per-permission addresses also get a P2PKH receiver (wallets that cannot send shielded)
    transparent_receivers: bool = Field(False, alias="ZCASH_TRANSPARENT_RECEIVERS")

    @field_validator("max_amount_units", mode="before")
    @classmethod
    def _zec_units(cls, value: object, info: ValidationInfo) -> int:
        return _units(value, ZEC, cls.variable(info.field_name))


class SchedulerSettings(_Group):
    """Where the jobs run (inside `paygo serve` unless disabled), how often expiry is checked, and how often the
    hard stop looks for permissions whose money runs out now."""

    enabled: bool = Field(True, alias="SCHEDULER_ENABLED")
    expiry_interval_seconds: int = Field(30, alias="EXPIRY_INTERVAL_SECONDS", ge=1)
    hard_stop_interval_seconds: int = Field(1, alias="HARD_STOP_INTERVAL_SECONDS", ge=1)
    # batches of the billing tick charged at once, each on its own connection (the work is PostgreSQL's CPU)
    billing_tick_connections: int = Field(2, alias="BILLING_TICK_CONNECTIONS", ge=1, le=32)


class NotificationSettings(_Group):
    """Reminders, signed webhooks, the outbox's retries, the payment window and the payment watcher."""

    # unset: notify_url is refused
    webhook_signing_key: str | None = Field(None, alias="WEBHOOK_SIGNING_KEY", min_length=32, repr=False)
    payment_window_hours: int = Field(24, alias="PAYMENT_WINDOW_HOURS", ge=1)
    reminder_lead_hours: tuple[int, ...] = Field((72, 24), alias="REMINDER_LEAD_HOURS")  # largest first
    low_balance_reminder_percent: int = Field(20, alias="LOW_BALANCE_REMINDER_PERCENT", ge=0, le=100)  # 0: off
    outbox_max_attempts: int = Field(8, alias="OUTBOX_MAX_ATTEMPTS", ge=1)
    outbox_backoff_base_seconds: int = Field(30, alias="OUTBOX_BACKOFF_BASE_SECONDS", ge=1)
    outbox_backoff_cap_seconds: int = Field(3600, alias="OUTBOX_BACKOFF_CAP_SECONDS", ge=1)
    webhook_timeout_seconds: int = Field(5, alias="WEBHOOK_TIMEOUT_SECONDS", ge=1)
    watcher_interval_seconds: int = Field(5, alias="WATCHER_INTERVAL_SECONDS", ge=1)
    # a development gateway may deliver to 127.0.0.1 and private networks; never in production
    allow_private_webhook_targets: bool = Field(False, alias="ALLOW_PRIVATE_WEBHOOK_TARGETS")

    @field_validator("reminder_lead_hours", mode="before")
    @classmethod
    def _hours(cls, value: str) -> tuple[int, ...]:
        """A comma-separated list of distinct positive whole hours ("72,24"), largest first."""
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not parts or not all(part.isdecimal() and int(part) > 0 for part in parts):
            raise _Problem("must be a comma-separated list of positive whole hours")
        return tuple(sorted({int(part) for part in parts}, reverse=True))


class OperationsSettings(_Group):
    """Logging, vendor key rotation and the thresholds health judges the scheduler and the outbox by."""

    log_format: Annotated[str, _LOWERCASE, _one_of(LOG_FORMATS)] = Field("json", alias="LOG_FORMAT")
    log_level: Annotated[str, _UPPERCASE, _one_of(LOG_LEVELS)] = Field("INFO", alias="LOG_LEVEL")
    vendor_key_rotation_overlap_seconds: int = Field(
        86400, alias="VENDOR_KEY_ROTATION_OVERLAP_SECONDS", ge=0, le=MAX_OVERLAP_SECONDS)
    # health: how late the last billing tick may be (None or 0: three billing intervals)
    scheduler_max_lag_seconds: Annotated[int | None, AfterValidator(_zero_means_unset)] = Field(
        None, alias="SCHEDULER_MAX_LAG_SECONDS", ge=0)
    # health: the oldest pending outbox message must be younger
    webhook_backlog_max_age_seconds: int = Field(900, alias="WEBHOOK_BACKLOG_MAX_AGE_SECONDS", ge=1)


def _rate_limit(value: str) -> str:
    """`limits` notation: one or more `N/period` joined by `;` (`10/minute;100/hour`)."""
    try:
        parse_many(value)
    except ValueError:
        raise _Problem("must be rate limits such as 10/minute or 10/minute;100/hour") from None
    return value


class PerimeterSettings(_Group):
    """What the gateway accepts from the outside: rate limits, live streams, connection timeouts, who may read
    metrics, which proxies to believe, and how long a failing Redis is left alone."""

    # per client address on every anonymous endpoint
    rate_limit_anonymous: Annotated[str, AfterValidator(_rate_limit)] = Field(
        "120/minute", alias="RATE_LIMIT_ANONYMOUS")
    # per client address and per credential on every endpoint that creates something
    rate_limit_create: Annotated[str, AfterValidator(_rate_limit)] = Field(
        "20/minute;300/hour", alias="RATE_LIMIT_CREATE")
    # peers whose X-Forwarded-For is believed (comma-separated addresses or networks); unset: none
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = Field((), alias="TRUSTED_PROXIES")
    max_streams_per_permission: int = Field(4, alias="MAX_STREAMS_PER_PERMISSION", ge=1)
    max_streams: int = Field(500, alias="MAX_STREAMS", ge=1)  # live streams per gateway process
    # a connection that sends no complete request head for this long is closed (idle keep-alive, slow headers)
    http_idle_timeout_seconds: int = Field(30, alias="HTTP_IDLE_TIMEOUT_SECONDS", ge=1)
    http_body_timeout_seconds: int = Field(10, alias="HTTP_BODY_TIMEOUT_SECONDS", ge=1)
    # unset: only the operator key reads /metrics and the detailed /api/v1/health
    metrics_token: str | None = Field(None, alias="METRICS_TOKEN", min_length=24, repr=False)
    redis_breaker_failures: int = Field(3, alias="REDIS_BREAKER_FAILURES", ge=1)
    redis_breaker_cooldown_seconds: int = Field(30, alias="REDIS_BREAKER_COOLDOWN_SECONDS", ge=1)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        try:
            return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",")
                         if part.strip())
        except ValueError:
            raise _Problem("must be a comma-separated list of IP addresses or networks (10.0.0.0/8)") from None


class RetentionSettings(_Group):
    """What the prune job deletes, and how often it runs. The ledger, payments and the audit trail are kept."""

    outbox_retention_days: int = Field(30, alias="OUTBOX_RETENTION_DAYS", ge=1)
    # never-paid permissions are pruned this long after their payment window closed (at least the watcher's
    # 7-day look-back for late payments)
    unpaid_permission_grace_days: int = Field(30, alias="UNPAID_PERMISSION_GRACE_DAYS", ge=7)
    prune_interval_seconds: int = Field(3600, alias="PRUNE_INTERVAL_SECONDS", ge=1)


class PricingSettings(_Group):
    """Fiat-priced permissions: where rates come from (a spot-price API shaped like Coinbase's; unset: the
    in-process stand-in with `paygo serve`'s embedded default, else no fiat pricing), how long a quoted rate holds,
    how old a rate may be, and how long the provider may take."""

    rate_provider_url: str | None = Field(None, alias="RATE_PROVIDER_URL", repr=False)
    rate_lock_seconds: int = Field(120, alias="RATE_LOCK_SECONDS", ge=1)
    rate_max_age_seconds: int = Field(60, alias="RATE_MAX_AGE_SECONDS", ge=1)
    rate_timeout_seconds: int = Field(5, alias="RATE_TIMEOUT_SECONDS", ge=1)


class DatabaseSettings(_Group):
    """How the processes reach PostgreSQL beyond DATABASE_URL: a direct connection for what a transaction-pooling
    PgBouncer cannot carry (migrations under a session-level advisory lock), a streaming replica for reads that may
    lag a little, the pool size per process and asyncpg's prepared-statement cache (0 behind PgBouncer before 1.21,
    which cannot carry protocol-level prepared statements in transaction pooling mode)."""

    direct_url: str | None = Field(None, alias="DATABASE_DIRECT_URL", repr=False)  # unset: DATABASE_URL
    read_url: str | None = Field(None, alias="DATABASE_READ_URL", repr=False)  # unset: every read on the primary
    pool_size: int = Field(20, alias="DATABASE_POOL_SIZE", ge=1)
    statement_cache_size: int = Field(100, alias="DATABASE_STATEMENT_CACHE_SIZE", ge=0)


class ServingSettings(_Group):
    """How `paygo serve` runs: its worker processes (sharing the port), how long a stop waits for requests in
    flight, and where the workers keep their metrics (prometheus-client's multiprocess mode; `paygo serve` sets it
    for its workers)."""

    workers: int = Field(default_factory=lambda: len(os.sched_getaffinity(0)), alias="WORKERS", ge=1)
    shutdown_timeout_seconds: int = Field(30, alias="SHUTDOWN_TIMEOUT_SECONDS", ge=1)
    metrics_dir: Path | None = Field(None, alias="PROMETHEUS_MULTIPROC_DIR")


class EthereumSettings(_Group):
    """Ethereum funding, turned on by ETH_RPC_URL (the first field). ETH_TOKENS lists accepted ERC-20 tokens as
    comma-separated `SYMBOL:0xContract:decimals[:max_amount]` (e.g. `USDC:0xA0b8...eB48:6:5000`); max amounts are
    whole units."""

    rpc_url: str = Field(alias="ETH_RPC_URL", repr=False)  # may hold a provider's API key
    chain_id: int = Field(alias="ETH_CHAIN_ID", ge=1, description="1 for mainnet, 31337 for anvil")
    service_address: str = Field(alias="ETH_SERVICE_ADDRESS")
    min_confirmations: int = Field(12, alias="ETH_MIN_CONFIRMATIONS", ge=1)
    require_finalized: bool = Field(False, alias="ETH_REQUIRE_FINALIZED")
    # each token with the largest amount a permission may ask for, in minor units
    accepted_tokens: tuple[tuple[Token, int], ...] = Field((), alias="ETH_TOKENS")
    eth_max_amount_units: int = Field(100 * ETH.unit, alias="ETH_MAX_PERMISSION_AMOUNT")
    rpc_timeout_seconds: int = Field(10, alias="ETH_RPC_TIMEOUT_SECONDS", ge=1)

    @property
    def tokens(self) -> tuple[Token, ...]:
        return tuple(token for token, _ in self.accepted_tokens)

    @property
    def max_amount_units(self) -> dict[str, int]:
        """The largest permission amount per asset code (ETH and each token), in minor units."""
        return {ETH.code: self.eth_max_amount_units,
                **{token.symbol: maximum for token, maximum in self.accepted_tokens}}

    @field_validator("service_address")
    @classmethod
    def _service_address(cls, value: str, info: ValidationInfo) -> str:
        return _address(value, cls.variable(info.field_name))

    @field_validator("eth_max_amount_units", mode="before")
    @classmethod
    def _eth_units(cls, value: object, info: ValidationInfo) -> int:
        return _units(value, ETH, cls.variable(info.field_name))

    @field_validator("accepted_tokens", mode="before")
    @classmethod
    def _tokens(cls, value: str, info: ValidationInfo) -> tuple[tuple[Token, int], ...]:
        variable = cls.variable(info.field_name)
        accepted: dict[str, tuple[Token, int]] = {}
        for entry in (part.strip() for part in value.split(",")):
            if not entry:
                continue
            fields = [item.strip() for item in entry.split(":")]
            if len(fields) not in (3, 4) or not fields[0] or not fields[2].isdecimal() or int(fields[2]) > 36:
                raise SettingsError(f"{variable} entry {entry!r} must be SYMBOL:0xContract:decimals[:max_amount]")
            symbol = fields[0].upper()
            if symbol in {ETH.code, ZEC.code, USD.code} or symbol in accepted or len(symbol) > 16:
                raise SettingsError(f"{variable} symbol {symbol!r} is reserved, repeated or too long")
            token = Token(symbol, _address(fields[1], f"{variable} {symbol} contract"), int(fields[2]))
            maximum = fields[3] if len(fields) == 4 else DEFAULT_TOKEN_MAX_AMOUNT
            accepted[symbol] = token, _units(maximum, token.asset(), f"{variable} {symbol} max_amount")
        return tuple(accepted.values())


class CardSettings(_Group):
    """Card credits through Stripe, turned on by STRIPE_SECRET_KEY (the first field). Purchase limits are USD
    amounts; STRIPE_API_BASE points the client at a stand-in (tests) instead of Stripe."""

    secret_key: str = Field(alias="STRIPE_SECRET_KEY", repr=False)
    webhook_secret: str = Field(alias="STRIPE_WEBHOOK_SECRET", repr=False, description="`stripe listen` prints one")
    api_base: str | None = Field(None, alias="STRIPE_API_BASE")
    timeout_seconds: int = Field(5, alias="STRIPE_TIMEOUT_SECONDS", ge=1)
    webhook_tolerance_seconds: int = Field(300, alias="STRIPE_WEBHOOK_TOLERANCE_SECONDS", ge=1)
    min_purchase_units: int = Field(1 * USD.unit, alias="CARD_MIN_PURCHASE")
    max_purchase_units: int = Field(1000 * USD.unit, alias="CARD_MAX_PURCHASE")
    success_url: str | None = Field(None, alias="STRIPE_SUCCESS_URL")
    cancel_url: str | None = Field(None, alias="STRIPE_CANCEL_URL")
    # hosts a request's success_url/cancel_url may name (beside those of the two URLs above)
    redirect_hosts: tuple[str, ...] = Field((), alias="CARD_REDIRECT_HOSTS")

    @field_validator("redirect_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: str) -> tuple[str, ...]:
        """A comma-separated list of host names (`shop.example,www.shop.example`), compared case-insensitively."""
        hosts = [part.strip().lower() for part in value.split(",") if part.strip()]
        if not all(_HOST_NAME.fullmatch(host) for host in hosts):
            raise _Problem("must be a comma-separated list of host names")
        return tuple(dict.fromkeys(hosts))

    @field_validator("min_purchase_units", "max_purchase_units", mode="before")
    @classmethod
    def _usd_units(cls, value: object, info: ValidationInfo) -> int:
        return _units(value, USD, cls.variable(info.field_name))

    @model_validator(mode="after")
    def _minimum_within_maximum(self) -> CardSettings:
        if self.min_purchase_units > self.max_purchase_units:
            raise SettingsError(f"{self.variable('min_purchase_units')} must not exceed "
                                f"{self.variable('max_purchase_units')}")
        return self


class Settings(_Group):
    """Every setting: the core variables below and one group per concern. `ethereum` and `card` are None unless the
    variable that turns them on is set."""

    database_url: str | None = Field(None, alias="DATABASE_URL", repr=False)
    redis_url: str | None = Field(None, alias="REDIS_URL", repr=False)
    admin_api_key: str | None = Field(None, alias="ADMIN_API_KEY", min_length=24, repr=False)
    listen: tuple[str, int] = Field(("127.0.0.1", 8080), alias="LISTEN_ADDR")  # also as listen_host, listen_port
    billing_interval_seconds: int = Field(60, alias="BILLING_INTERVAL_SECONDS", ge=1)
    default_permission_duration_days: int = Field(30, alias="DEFAULT_PERMISSION_DURATION_DAYS", ge=1)
    max_permission_duration_days: int = Field(366, alias="MAX_PERMISSION_DURATION_DAYS", ge=1)
    state_dir: Path = Field(Path(".paygo"), alias="PAYGO_STATE_DIR")
    zcash: ZcashSettings
    scheduler: SchedulerSettings
    notifications: NotificationSettings
    operations: OperationsSettings
    perimeter: PerimeterSettings
    retention: RetentionSettings
    pricing: PricingSettings
    database: DatabaseSettings
    serving: ServingSettings
    ethereum: EthereumSettings | None
    card: CardSettings | None

    @property
    def listen_host(self) -> str:
        return self.listen[0]

    @property
    def listen_port(self) -> int:
        return self.listen[1]

    @property
    def direct_database_url(self) -> str | None:
        """Where migrations and session-level locks connect: DATABASE_DIRECT_URL, else DATABASE_URL."""
        return self.database.direct_url or self.database_url

    @field_validator("listen", mode="before")
    @classmethod
    def _listen(cls, value: str, info: ValidationInfo) -> tuple[str, int]:
        return parse_listen(value, cls.variable(info.field_name))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from the process environment, or from `env` alone when given."""
        return _load(cls, env, zcash=_load(ZcashSettings, env), scheduler=_load(SchedulerSettings, env),
                     notifications=_load(NotificationSettings, env), operations=_load(OperationsSettings, env),
                     perimeter=_load(PerimeterSettings, env), retention=_load(RetentionSettings, env),
                     pricing=_load(PricingSettings, env), database=_load(DatabaseSettings, env),
                     serving=_load(ServingSettings, env), ethereum=_load_optional(EthereumSettings, env),
                     card=_load_optional(CardSettings, env))


_G = TypeVar("_G", bound=_Group)


def _load(group: type[_G], env: Mapping[str, str] | None, **parts: Any) -> _G:
    """The group from the process environment (env None) or from `env` alone; `parts` are the root's groups."""
    try:
        return _validate(group, env, parts)
    except ValidationError as exc:
        raise _settings_error(group, exc) from None


def _load_optional(group: type[_G], env: Mapping[str, str] | None) -> _G | None:
    """The group, or None when the variable that turns it on (its first field) is unset."""
    try:
        return _validate(group, env, {})
    except ValidationError as exc:
        if any(error["type"] == "missing" and error["loc"] == (_switch(group),) for error in exc.errors()):
            return None
        raise _settings_error(group, exc) from None


def _validate(group: type[_G], env: Mapping[str, str] | None, parts: dict[str, Any]) -> _G:
    if env is None:
        return group(**parts)
    # Every variable the mapping lacks is given blank (unset), so the process environment never shows through.
    values: dict[str, Any] = {variable: env.get(variable, "") for variable in _variables(group)}
    return group(**values, **parts)


def _variables(group: type[_Group]) -> list[str]:
    return [field.alias for field in group.model_fields.values() if field.alias]


def _switch(group: type[_Group]) -> str:
    return _variables(group)[0]


def _settings_error(group: type[_Group], exc: ValidationError) -> SettingsError:
    """One sentence per failed variable. pydantic's own messages are not used: they repeat the value."""
    problems = [_problem(group, error) for error in exc.errors() if error["type"] != "default_factory_not_called"]
    return SettingsError("; ".join(problems))


def _problem(group: type[_Group], error: ErrorDetails) -> str:
    context = error.get("ctx", {})
    cause = context.get("error")
    if isinstance(cause, SettingsError):  # a rule above wrote the whole sentence
        return str(cause)
    variable = str(error["loc"][0]) if error["loc"] else group.__name__
    field = next((field for field in group.model_fields.values() if field.alias == variable), None)
    kind = error["type"]
    if isinstance(cause, _Problem):
        return f"{variable} {cause}"
    if kind == "missing":
        hint = f" ({field.description})" if field is not None and field.description else ""
        return f"{variable} must be set with {_switch(group)}{hint}"
    if kind.startswith("int_") or kind in {"greater_than_equal", "less_than_equal"}:
        return f"{variable} must be a whole number{_bounds(field)}"
    if kind == "bool_parsing":
        return f"{variable} must be true or false"
    if kind in {"enum", "literal_error"}:
        return f"{variable} must be {context['expected']}"
    if kind == "string_too_short":
        return f"{variable} must be at least {context['min_length']} characters long"
    return f"{variable} is not valid"


def _bounds(field: FieldInfo | None) -> str:
    metadata = field.metadata if field is not None else []
    low = next((item.ge for item in metadata if isinstance(item, Ge)), None)
    high = next((item.le for item in metadata if isinstance(item, Le)), None)
    if low is not None and high is not None:
        return f" from {low} to {high}"
    return f" ≥ {low}" if low is not None else ""
