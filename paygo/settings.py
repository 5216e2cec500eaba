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

from billing.assets import ZEC
from billing.errors import InvalidAmount
from billing.money import parse_amount
from chains.zcash_address import ZcashNetwork


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
        )

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)


def _max_amount(env: Mapping[str, str], name: str, default: Decimal) -> int:
    raw = env.get(name, "").strip()
    try:
        return parse_amount(raw or default, ZEC, name)
    except InvalidAmount as exc:
        raise SettingsError(exc.message) from None
