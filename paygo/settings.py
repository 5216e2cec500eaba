"""Settings read once from the environment, checked at start-up (fail fast), with no default secrets.

Every variable is listed in the README. Unset connection URLs mean "embedded default": `paygo serve` then finds
or starts a private PostgreSQL, runs the Zcash regtest stand-in in-process, and runs without Redis.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

from billing.vendor_keys import MAX_OVERLAP_SECONDS
from chains.ethereum import Token, normalise_address
from chains.zcash_address import ZcashNetwork
from kernel.assets import ETH, USD, ZEC, Asset
from kernel.errors import InvalidAddress, InvalidAmount
from kernel.money import parse_amount
from paygo.logs import LOG_FORMATS, LOG_LEVELS


class SettingsError(ValueError):
    """A variable is malformed; the message names it (never its value when it is a secret)."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:8080`) to a (host, port) pair."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"listen address must be HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass(frozen=True)
class ZcashSettings:
    rpc_url: str | None
    rpc_user: str | None
    rpc_password: str | None = field(repr=False)
    node_rpc_url: str | None
    service_wallet: str | None
    network: ZcashNetwork
    min_confirmations: int
    rpc_flavor: str
    rpc_timeout_seconds: int
    max_amount_units: int


@dataclass(frozen=True)
class SchedulerSettings:
    """Where the jobs run (inside `paygo serve` unless disabled) and how often expiry is checked."""

    enabled: bool = True
    expiry_interval_seconds: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SchedulerSettings:
        return cls(
            enabled=_bool(env, "SCHEDULER_ENABLED", True),
            expiry_interval_seconds=_int(env, "EXPIRY_INTERVAL_SECONDS", 30, minimum=1),
        )


@dataclass(frozen=True)
class NotificationSettings:
    """Reminders, signed webhooks, the outbox's retries, the payment window and the payment watcher."""

    webhook_signing_key: str | None = field(default=None, repr=False)  # unset: notify_url is refused
    payment_window_hours: int = 24
    reminder_lead_hours: tuple[int, ...] = (72, 24)
    low_balance_reminder_percent: int = 20  # 0 turns the low-balance reminder off
    outbox_max_attempts: int = 8
    outbox_backoff_base_seconds: int = 30
    outbox_backoff_cap_seconds: int = 3600
    webhook_timeout_seconds: int = 5
    watcher_interval_seconds: int = 5

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NotificationSettings:
        key = env.get("WEBHOOK_SIGNING_KEY", "").strip() or None
        if key is not None and len(key) < 32:
            raise SettingsError("WEBHOOK_SIGNING_KEY must be at least 32 characters long")
        percent = _int(env, "LOW_BALANCE_REMINDER_PERCENT", 20)
        if percent > 100:
            raise SettingsError("LOW_BALANCE_REMINDER_PERCENT must be from 0 to 100")
        return cls(
            webhook_signing_key=key,
            payment_window_hours=_int(env, "PAYMENT_WINDOW_HOURS", 24, minimum=1),
            reminder_lead_hours=_hours_list(env, "REMINDER_LEAD_HOURS", (72, 24)),
            low_balance_reminder_percent=percent,
            outbox_max_attempts=_int(env, "OUTBOX_MAX_ATTEMPTS", 8, minimum=1),
            outbox_backoff_base_seconds=_int(env, "OUTBOX_BACKOFF_BASE_SECONDS", 30, minimum=1),
            outbox_backoff_cap_seconds=_int(env, "OUTBOX_BACKOFF_CAP_SECONDS", 3600, minimum=1),
            webhook_timeout_seconds=_int(env, "WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1),
            watcher_interval_seconds=_int(env, "WATCHER_INTERVAL_SECONDS", 5, minimum=1),
        )


def _hours_list(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """A comma-separated list of distinct positive whole hours, largest first ("72,24")."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not parts or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise SettingsError(f"{name} must be a comma-separated list of positive whole hours, got {raw!r}")
    return tuple(sorted({int(part) for part in parts}, reverse=True))


@dataclass(frozen=True)
class OperationsSettings:
    """Logging, vendor key rotation and the thresholds health judges the scheduler and the outbox by."""

    log_format: str = "json"  # json | text
    log_level: str = "INFO"
    vendor_key_rotation_overlap_seconds: int = 86400
    scheduler_max_lag_seconds: int | None = None  # health: how late the last billing tick may be (None: 3 intervals)
    webhook_backlog_max_age_seconds: int = 900  # health: the oldest pending outbox message must be younger

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OperationsSettings:
        log_format = env.get("LOG_FORMAT", "").strip().lower() or "json"
        if log_format not in LOG_FORMATS:
            raise SettingsError(f"LOG_FORMAT must be json or text, got {log_format!r}")
        log_level = env.get("LOG_LEVEL", "").strip().upper() or "INFO"
        if log_level not in LOG_LEVELS:
            raise SettingsError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {log_level!r}")
        overlap = _int(env, "VENDOR_KEY_ROTATION_OVERLAP_SECONDS", 86400)
        if overlap > MAX_OVERLAP_SECONDS:
            raise SettingsError(f"VENDOR_KEY_ROTATION_OVERLAP_SECONDS must be at most {MAX_OVERLAP_SECONDS}")
        return cls(
            log_format=log_format,
            log_level=log_level,
            vendor_key_rotation_overlap_seconds=overlap,
            scheduler_max_lag_seconds=_int(env, "SCHEDULER_MAX_LAG_SECONDS", 0, minimum=0) or None,
            webhook_backlog_max_age_seconds=_int(env, "WEBHOOK_BACKLOG_MAX_AGE_SECONDS", 900, minimum=1),
        )


@dataclass(frozen=True)
class EthereumSettings:
    """Ethereum funding, enabled by ETH_RPC_URL. ETH_TOKENS lists accepted ERC-20 tokens as comma-separated
    `SYMBOL:0xContract:decimals[:max_amount]` (e.g. `USDC:0xA0b8...eB48:6:5000`); max amounts are whole units."""

    rpc_url: str = field(repr=False)  # may hold a provider's API key
    chain_id: int
    service_address: str
    min_confirmations: int
    require_finalized: bool
    tokens: tuple[Token, ...]
    max_amount_units: dict[str, int]  # per asset code: ETH and each token
    rpc_timeout_seconds: int
    discovery_blocks: int = 256  # how far back the payment watcher looks for payments nobody named

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EthereumSettings | None:
        rpc_url = env.get("ETH_RPC_URL", "").strip()
        if not rpc_url:
            return None
        if not env.get("ETH_CHAIN_ID", "").strip():
            raise SettingsError("ETH_CHAIN_ID must be set with ETH_RPC_URL (1 for mainnet, 31337 for anvil)")
        try:
            service_address = normalise_address(env.get("ETH_SERVICE_ADDRESS", ""), "ETH_SERVICE_ADDRESS")
        except InvalidAddress as exc:
            raise SettingsError(exc.message) from None
        tokens, token_maximums = _eth_tokens(env.get("ETH_TOKENS", ""))
        return cls(
            rpc_url=rpc_url,
            chain_id=_int(env, "ETH_CHAIN_ID", 0, minimum=1),
            service_address=service_address,
            min_confirmations=_int(env, "ETH_MIN_CONFIRMATIONS", 12, minimum=1),
            require_finalized=_bool(env, "ETH_REQUIRE_FINALIZED", False),
            tokens=tokens,
            max_amount_units={"ETH": _max_amount(env, "ETH_MAX_PERMISSION_AMOUNT", Decimal(100), ETH),
                              **token_maximums},
            rpc_timeout_seconds=_int(env, "ETH_RPC_TIMEOUT_SECONDS", 10, minimum=1),
            discovery_blocks=_int(env, "ETH_DISCOVERY_BLOCKS", 256, minimum=1),
        )


DEFAULT_TOKEN_MAX_AMOUNT = Decimal(1_000_000)


def _eth_tokens(raw: str) -> tuple[tuple[Token, ...], dict[str, int]]:
    """ETH_TOKENS parsed to tokens and their maximum permission amounts in minor units."""
    tokens: list[Token] = []
    maximums: dict[str, int] = {}
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        fields = [item.strip() for item in entry.split(":")]
        if len(fields) not in (3, 4) or not fields[0] or not fields[2].isdigit() or int(fields[2]) > 36:
            raise SettingsError(f"ETH_TOKENS entry {entry!r} must be SYMBOL:0xContract:decimals[:max_amount]")
        symbol = fields[0].upper()
        if symbol in {"ETH", "ZEC", "USD"} or symbol in maximums or len(symbol) > 16:
            raise SettingsError(f"ETH_TOKENS symbol {symbol!r} is reserved, repeated or too long")
        try:
            token = Token(symbol, normalise_address(fields[1], f"ETH_TOKENS {symbol} contract"), int(fields[2]))
        except InvalidAddress as exc:
            raise SettingsError(exc.message) from None
        tokens.append(token)
        maximums[symbol] = _parse_max(fields[3] if len(fields) == 4 else DEFAULT_TOKEN_MAX_AMOUNT, token.asset(),
                                      f"ETH_TOKENS {symbol} max_amount")
    return tuple(tokens), maximums


@dataclass(frozen=True)
class CardSettings:
    """Card credits through Stripe, enabled by STRIPE_SECRET_KEY (which needs STRIPE_WEBHOOK_SECRET with it).
    Purchase limits are USD amounts; STRIPE_API_BASE points the client at a stand-in (tests) instead of Stripe."""

    secret_key: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    api_base: str | None
    timeout_seconds: int
    webhook_tolerance_seconds: int
    min_purchase_units: int
    max_purchase_units: int
    success_url: str | None
    cancel_url: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CardSettings | None:
        secret_key = env.get("STRIPE_SECRET_KEY", "").strip()
        if not secret_key:
            return None
        webhook_secret = env.get("STRIPE_WEBHOOK_SECRET", "").strip()
        if not webhook_secret:
            raise SettingsError("STRIPE_WEBHOOK_SECRET must be set with STRIPE_SECRET_KEY (`stripe listen` prints one)")
        minimum = _parse_max(env.get("CARD_MIN_PURCHASE", "").strip() or Decimal("1.00"), USD, "CARD_MIN_PURCHASE")
        maximum = _parse_max(env.get("CARD_MAX_PURCHASE", "").strip() or Decimal("1000.00"), USD, "CARD_MAX_PURCHASE")
        if minimum > maximum:
            raise SettingsError("CARD_MIN_PURCHASE must not exceed CARD_MAX_PURCHASE")
        return cls(
            secret_key=secret_key,
            webhook_secret=webhook_secret,
            api_base=env.get("STRIPE_API_BASE", "").strip() or None,
            timeout_seconds=_int(env, "STRIPE_TIMEOUT_SECONDS", 5, minimum=1),
            webhook_tolerance_seconds=_int(env, "STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300, minimum=1),
            min_purchase_units=minimum,
            max_purchase_units=maximum,
            success_url=env.get("STRIPE_SUCCESS_URL", "").strip() or None,
            cancel_url=env.get("STRIPE_CANCEL_URL", "").strip() or None,
        )


@dataclass(frozen=True)
class Settings:
    database_url: str | None = field(repr=False)
    redis_url: str | None = field(repr=False)
    admin_api_key: str | None = field(repr=False)
    listen_host: str
    listen_port: int
    billing_interval_seconds: int
    default_permission_duration_days: int
    max_permission_duration_days: int
    state_dir: Path
    zcash: ZcashSettings
    scheduler: SchedulerSettings = SchedulerSettings()
    notifications: NotificationSettings | None = None
    ethereum: EthereumSettings | None = None
    operations: OperationsSettings | None = None
    card: CardSettings | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        host, port = parse_listen(env.get("LISTEN_ADDR", "").strip() or "127.0.0.1:8080")
        network_name = env.get("ZCASH_NETWORK", "").strip().lower() or (
            "main" if env.get("ZCASH_RPC_URL", "").strip() else "regtest"
        )
        try:
            network = ZcashNetwork(network_name)
        except ValueError:
            raise SettingsError(f"ZCASH_NETWORK must be main, test or regtest, got {network_name!r}") from None
        flavor = env.get("ZCASH_RPC_FLAVOR", "").strip().lower() or "auto"
        if flavor not in {"auto", "zcashd", "zallet"}:
            raise SettingsError(f"ZCASH_RPC_FLAVOR must be auto, zcashd or zallet, got {flavor!r}")
        admin_key = env.get("ADMIN_API_KEY", "").strip() or None
        if admin_key is not None and len(admin_key) < 24:
            raise SettingsError("ADMIN_API_KEY must be at least 24 characters long")
        zcash = ZcashSettings(
            rpc_url=env.get("ZCASH_RPC_URL", "").strip() or None,
            rpc_user=env.get("ZCASH_RPC_USER", "").strip() or None,
            rpc_password=env.get("ZCASH_RPC_PASSWORD", "") or None,
            node_rpc_url=env.get("ZCASH_NODE_RPC_URL", "").strip() or None,
            service_wallet=env.get("ZCASH_SERVICE_WALLET", "").strip() or None,
            network=network,
            min_confirmations=_int(env, "ZCASH_MIN_CONFIRMATIONS", 10, minimum=1),
            rpc_flavor=flavor,
            rpc_timeout_seconds=_int(env, "ZCASH_RPC_TIMEOUT_SECONDS", 10, minimum=1),
            max_amount_units=_max_amount(env, "ZCASH_MAX_PERMISSION_AMOUNT", Decimal(1000)),
        )
        return cls(
            database_url=env.get("DATABASE_URL", "").strip() or None,
            redis_url=env.get("REDIS_URL", "").strip() or None,
            admin_api_key=admin_key,
            listen_host=host,
            listen_port=port,
            billing_interval_seconds=_int(env, "BILLING_INTERVAL_SECONDS", 60, minimum=1),
            default_permission_duration_days=_int(env, "DEFAULT_PERMISSION_DURATION_DAYS", 30, minimum=1),
            max_permission_duration_days=_int(env, "MAX_PERMISSION_DURATION_DAYS", 366, minimum=1),
            state_dir=Path(env.get("PAYGO_STATE_DIR", "").strip() or ".paygo"),
            zcash=zcash,
            scheduler=SchedulerSettings.from_env(env),
            notifications=NotificationSettings.from_env(env),
            ethereum=EthereumSettings.from_env(env),
            operations=OperationsSettings.from_env(env),
            card=CardSettings.from_env(env),
        )

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)


def _max_amount(env: Mapping[str, str], name: str, default: Decimal, asset: Asset = ZEC) -> int:
    return _parse_max(env.get(name, "").strip() or default, asset, name)


def _parse_max(value: str | Decimal, asset: Asset, name: str) -> int:
    try:
        return parse_amount(value, asset, name)
    except InvalidAmount as exc:
        raise SettingsError(exc.message) from None
