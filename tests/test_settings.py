"""Settings from the environment: the README's defaults, every rule refusing with the variable's name, no secret in
any error, blank values as unset, and a mapping read on its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chains.ethereum import Token
from chains.zcash_address import ZcashNetwork
from paygo.settings import (
    CardSettings,
    DatabaseSettings,
    EthereumSettings,
    NotificationSettings,
    OperationsSettings,
    PerimeterSettings,
    PricingSettings,
    RetentionSettings,
    SchedulerSettings,
    ServingSettings,
    Settings,
    SettingsError,
    ZcashSettings,
    parse_listen,
)

SERVICE_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
USDC_CONTRACT = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
ETHEREUM = {"ETH_RPC_URL": "http://127.0.0.1:8545", "ETH_CHAIN_ID": "31337", "ETH_SERVICE_ADDRESS": SERVICE_ADDRESS}
CARD = {"STRIPE_SECRET_KEY": "sk_test_not-a-real-key", "STRIPE_WEBHOOK_SECRET": "whsec_not-a-real-secret"}
GROUPS = (Settings, ZcashSettings, SchedulerSettings, NotificationSettings, OperationsSettings, PerimeterSettings,
          RetentionSettings, PricingSettings, DatabaseSettings, ServingSettings, EthereumSettings, CardSettings)


def refusal(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    return str(refused.value)


def test_defaults_are_the_readmes() -> None:
    settings = Settings.from_env({})
    assert (settings.database_url, settings.redis_url, settings.admin_api_key) == (None, None, None)
    assert (settings.listen_host, settings.listen_port) == ("127.0.0.1", 8080)
    assert settings.billing_interval_seconds == 60
    assert (settings.default_permission_duration_days, settings.max_permission_duration_days) == (30, 366)
    assert settings.state_dir == Path(".paygo")
    zcash = settings.zcash
    assert (zcash.rpc_url, zcash.rpc_user, zcash.rpc_password, zcash.node_rpc_url, zcash.service_wallet) == (
        None, None, None, None, None)
    assert zcash.network is ZcashNetwork.REGTEST  # the stand-in
    assert (zcash.min_confirmations, zcash.rpc_flavor, zcash.rpc_timeout_seconds) == (10, "auto", 10)
    assert zcash.max_amount_units == 1000 * 10**8 and zcash.transparent_receivers is False
    pricing = settings.pricing
    assert (pricing.rate_provider_url, pricing.rate_lock_seconds, pricing.rate_max_age_seconds,
            pricing.rate_timeout_seconds) == (None, 120, 60, 5)
    assert (settings.scheduler.enabled, settings.scheduler.expiry_interval_seconds) == (True, 30)
    notifications = settings.notifications
    assert notifications.webhook_signing_key is None
    assert (notifications.payment_window_hours, notifications.reminder_lead_hours) == (24, (72, 24))
    assert notifications.low_balance_reminder_percent == 20
    assert (notifications.outbox_max_attempts, notifications.outbox_backoff_base_seconds,
            notifications.outbox_backoff_cap_seconds) == (8, 30, 3600)
    assert (notifications.webhook_timeout_seconds, notifications.watcher_interval_seconds) == (5, 5)
    operations = settings.operations
    assert (operations.log_format, operations.log_level) == ("json", "INFO")
    assert operations.vendor_key_rotation_overlap_seconds == 86400
    assert operations.scheduler_max_lag_seconds is None  # three billing intervals
    assert operations.webhook_backlog_max_age_seconds == 900
    assert settings.ethereum is None and settings.card is None
    database = settings.database
    assert (database.direct_url, database.read_url, database.pool_size, database.statement_cache_size) == (
        None, None, 20, 100)
    assert settings.direct_database_url is None
    serving = settings.serving
    assert (serving.workers, serving.shutdown_timeout_seconds, serving.metrics_dir) == (
        len(os.sched_getaffinity(0)), 30, None)


def test_migrations_connect_directly_when_told() -> None:
    pooled = "postgresql://paygo@pgbouncer:6432/paygo"
    assert Settings.from_env({"DATABASE_URL": pooled}).direct_database_url == pooled
    settings = Settings.from_env({"DATABASE_URL": pooled, "DATABASE_DIRECT_URL": "postgresql://paygo@db/paygo",
                                  "DATABASE_STATEMENT_CACHE_SIZE": "0", "WORKERS": "4"})
    assert settings.direct_database_url == "postgresql://paygo@db/paygo"
    assert (settings.database.statement_cache_size, settings.serving.workers) == (0, 4)


def test_perimeter_and_retention_defaults_are_the_readmes() -> None:
    settings = Settings.from_env({})
    perimeter, retention = settings.perimeter, settings.retention
    assert (perimeter.rate_limit_anonymous, perimeter.rate_limit_create) == ("120/minute", "20/minute;300/hour")
    assert perimeter.trusted_proxies == () and perimeter.metrics_token is None
    assert (perimeter.max_streams_per_permission, perimeter.max_streams) == (4, 500)
    assert (perimeter.http_idle_timeout_seconds, perimeter.http_body_timeout_seconds) == (30, 10)
    assert (perimeter.redis_breaker_failures, perimeter.redis_breaker_cooldown_seconds) == (3, 30)
    assert (retention.outbox_retention_days, retention.unpaid_permission_grace_days,
            retention.prune_interval_seconds) == (30, 30, 3600)
    assert settings.notifications.allow_private_webhook_targets is False
    card = Settings.from_env({**CARD, "CARD_REDIRECT_HOSTS": " Shop.Example , pay.example "}).card
    assert card is not None and card.redirect_hosts == ("shop.example", "pay.example")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RATE_LIMIT_CREATE": "lots"}, "RATE_LIMIT_CREATE must be rate limits such as 10/minute"),
        ({"TRUSTED_PROXIES": "10.0.0.0/8, proxy"}, "TRUSTED_PROXIES must be a comma-separated list of IP"),
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN must be at least 24 characters long"),
        ({"UNPAID_PERMISSION_GRACE_DAYS": "6"}, "UNPAID_PERMISSION_GRACE_DAYS must be a whole number ≥ 7"),
        ({**CARD, "CARD_REDIRECT_HOSTS": "shop.example/path"}, "CARD_REDIRECT_HOSTS must be a comma-separated list"),
    ],
)
def test_perimeter_rules_refuse_naming_the_variable(env: dict[str, str], message: str) -> None:
    assert message in refusal(env)
    assert "short" not in refusal({"METRICS_TOKEN": "short"})


def test_zcash_network_follows_the_node_with_a_wallet() -> None:
    assert Settings.from_env({"ZCASH_RPC_URL": "http://127.0.0.1:8232"}).zcash.network is None  # asked at start-up
    assert Settings.from_env({"ZCASH_NETWORK": " TEST "}).zcash.network is ZcashNetwork.TEST


def test_values_are_stripped_and_blank_means_unset() -> None:
    settings = Settings.from_env({
        "DATABASE_URL": "  postgresql://db/paygo ", "REDIS_URL": "   ", "LISTEN_ADDR": " [::1]:9000 ",
        "ZCASH_MIN_CONFIRMATIONS": " 3 ", "ZCASH_RPC_URL": "\t", "ETH_RPC_URL": " ", "STRIPE_SECRET_KEY": "",
        "LOG_LEVEL": " debug ", "LOG_FORMAT": "TEXT", "SCHEDULER_ENABLED": " off ", "WEBHOOK_SIGNING_KEY": "  ",
    })
    assert settings.database_url == "postgresql://db/paygo" and settings.redis_url is None
    assert (settings.listen_host, settings.listen_port) == ("::1", 9000)
    assert settings.zcash.min_confirmations == 3
    assert settings.zcash.rpc_url is None and settings.zcash.network is ZcashNetwork.REGTEST
    assert settings.ethereum is None and settings.card is None
    assert (settings.operations.log_level, settings.operations.log_format) == ("DEBUG", "text")
    assert settings.scheduler.enabled is False
    assert settings.notifications.webhook_signing_key is None


def test_a_mapping_is_read_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_API_KEY", "short")
    monkeypatch.setenv("ZCASH_MIN_CONFIRMATIONS", "many")
    monkeypatch.setenv("ETH_RPC_URL", "http://127.0.0.1:8545")
    monkeypatch.setenv("BILLING_INTERVAL_SECONDS", "5")
    settings = Settings.from_env({"REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert settings == Settings.from_env({}).model_copy(update={"redis_url": "redis://127.0.0.1:6379/0"})
    assert settings.billing_interval_seconds == 60 and settings.ethereum is None


def test_no_mapping_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for group in GROUPS:
        for field in group.model_fields.values():
            if field.alias:
                monkeypatch.delenv(field.alias, raising=False)
    monkeypatch.setenv("BILLING_INTERVAL_SECONDS", " 5 ")
    monkeypatch.setenv("REMINDER_LEAD_HOURS", "12,48")
    monkeypatch.setenv("ETH_TOKENS", f"USDC:{USDC_CONTRACT}:6")
    monkeypatch.setenv("LOG_FORMAT", "")
    for name, value in {**ETHEREUM, **CARD}.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert settings.billing_interval_seconds == 5
    assert settings.notifications.reminder_lead_hours == (48, 12)
    assert settings.operations.log_format == "json"
    assert settings.ethereum is not None and settings.ethereum.tokens == (Token("USDC", USDC_CONTRACT, 6),)
    assert settings.card is not None and settings.card.secret_key == CARD["STRIPE_SECRET_KEY"]
    monkeypatch.setenv("ZCASH_MIN_CONFIRMATIONS", "0")
    with pytest.raises(SettingsError, match="ZCASH_MIN_CONFIRMATIONS"):
        Settings.from_env()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ZCASH_MIN_CONFIRMATIONS": "many"}, "ZCASH_MIN_CONFIRMATIONS must be a whole number ≥ 1"),
        ({"ZCASH_MIN_CONFIRMATIONS": "0"}, "ZCASH_MIN_CONFIRMATIONS must be a whole number ≥ 1"),
        ({"ZCASH_RPC_TIMEOUT_SECONDS": "1.5"}, "ZCASH_RPC_TIMEOUT_SECONDS must be a whole number ≥ 1"),
        ({"RATE_LOCK_SECONDS": "0"}, "RATE_LOCK_SECONDS must be a whole number ≥ 1"),
        ({"ZCASH_TRANSPARENT_RECEIVERS": "sometimes"}, "ZCASH_TRANSPARENT_RECEIVERS must be true or false"),
        ({"BILLING_INTERVAL_SECONDS": "0"}, "BILLING_INTERVAL_SECONDS must be a whole number ≥ 1"),
        ({"DEFAULT_PERMISSION_DURATION_DAYS": "-1"}, "DEFAULT_PERMISSION_DURATION_DAYS must be a whole number"),
        ({"MAX_PERMISSION_DURATION_DAYS": "0"}, "MAX_PERMISSION_DURATION_DAYS must be a whole number ≥ 1"),
        ({"EXPIRY_INTERVAL_SECONDS": "0"}, "EXPIRY_INTERVAL_SECONDS must be a whole number ≥ 1"),
        ({"OUTBOX_MAX_ATTEMPTS": "0"}, "OUTBOX_MAX_ATTEMPTS must be a whole number ≥ 1"),
        ({"WATCHER_INTERVAL_SECONDS": "x"}, "WATCHER_INTERVAL_SECONDS must be a whole number ≥ 1"),
        ({"SCHEDULER_MAX_LAG_SECONDS": "-5"}, "SCHEDULER_MAX_LAG_SECONDS must be a whole number ≥ 0"),
        ({"SCHEDULER_ENABLED": "maybe"}, "SCHEDULER_ENABLED must be true or false"),
        ({"WORKERS": "0"}, "WORKERS must be a whole number ≥ 1"),
        ({"SHUTDOWN_TIMEOUT_SECONDS": "0"}, "SHUTDOWN_TIMEOUT_SECONDS must be a whole number ≥ 1"),
        ({"DATABASE_POOL_SIZE": "0"}, "DATABASE_POOL_SIZE must be a whole number ≥ 1"),
        ({"DATABASE_STATEMENT_CACHE_SIZE": "-1"}, "DATABASE_STATEMENT_CACHE_SIZE must be a whole number ≥ 0"),
        ({"LISTEN_ADDR": "localhost"}, "LISTEN_ADDR must be HOST:PORT"),
        ({"LISTEN_ADDR": "127.0.0.1:70000"}, "LISTEN_ADDR must be HOST:PORT"),
        ({"ZCASH_NETWORK": "moon"}, "ZCASH_NETWORK must be 'main', 'test' or 'regtest'"),
        ({"ZCASH_RPC_FLAVOR": "bitcoind"}, "ZCASH_RPC_FLAVOR must be 'auto', 'zcashd' or 'zallet'"),
        ({"ZCASH_MAX_PERMISSION_AMOUNT": "0"}, "ZCASH_MAX_PERMISSION_AMOUNT must be greater than zero"),
        ({"ZCASH_MAX_PERMISSION_AMOUNT": "0.000000001"}, "ZCASH_MAX_PERMISSION_AMOUNT ZEC has 8 decimals"),
        ({"ADMIN_API_KEY": "x" * 23}, "ADMIN_API_KEY must be at least 24 characters long"),
        ({"WEBHOOK_SIGNING_KEY": "x" * 31}, "WEBHOOK_SIGNING_KEY must be at least 32 characters long"),
        ({"REMINDER_LEAD_HOURS": "72,0"}, "REMINDER_LEAD_HOURS must be a comma-separated list of positive whole"),
        ({"REMINDER_LEAD_HOURS": ","}, "REMINDER_LEAD_HOURS must be a comma-separated list"),
        ({"REMINDER_LEAD_HOURS": "²"}, "REMINDER_LEAD_HOURS must be a comma-separated list"),
        ({"LOW_BALANCE_REMINDER_PERCENT": "101"}, "LOW_BALANCE_REMINDER_PERCENT must be a whole number from 0 to 100"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be json or text"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL"),
        ({"VENDOR_KEY_ROTATION_OVERLAP_SECONDS": str(30 * 86400 + 1)},
         "VENDOR_KEY_ROTATION_OVERLAP_SECONDS must be a whole number from 0 to 2592000"),
        ({"ETH_RPC_URL": "http://127.0.0.1:8545", "ETH_SERVICE_ADDRESS": SERVICE_ADDRESS},
         "ETH_CHAIN_ID must be set with ETH_RPC_URL (1 for mainnet, 31337 for anvil)"),
        ({**ETHEREUM, "ETH_CHAIN_ID": "0"}, "ETH_CHAIN_ID must be a whole number ≥ 1"),
        ({"ETH_RPC_URL": "http://127.0.0.1:8545", "ETH_CHAIN_ID": "1"},
         "ETH_SERVICE_ADDRESS must be set with ETH_RPC_URL"),
        ({**ETHEREUM, "ETH_SERVICE_ADDRESS": "0x1234"}, "ETH_SERVICE_ADDRESS '0x1234' is not an Ethereum address"),
        ({**ETHEREUM, "ETH_SERVICE_ADDRESS": SERVICE_ADDRESS.replace("f39Fd", "F39fd")},
         "has a wrong EIP-55 checksum"),
        ({**ETHEREUM, "ETH_MIN_CONFIRMATIONS": "0"}, "ETH_MIN_CONFIRMATIONS must be a whole number ≥ 1"),
        ({**ETHEREUM, "ETH_REQUIRE_FINALIZED": "sometimes"}, "ETH_REQUIRE_FINALIZED must be true or false"),
        ({**ETHEREUM, "ETH_MAX_PERMISSION_AMOUNT": "-1"}, "ETH_MAX_PERMISSION_AMOUNT must be greater than zero"),
        ({**ETHEREUM, "ETH_TOKENS": "USDC"}, "ETH_TOKENS entry 'USDC' must be SYMBOL:0xContract:decimals[:max_amount]"),
        ({**ETHEREUM, "ETH_TOKENS": f"USDC:{USDC_CONTRACT}:six"}, "ETH_TOKENS entry"),
        ({**ETHEREUM, "ETH_TOKENS": f"USDC:{USDC_CONTRACT}:37"}, "ETH_TOKENS entry"),
        ({**ETHEREUM, "ETH_TOKENS": f"USDC:{USDC_CONTRACT}:6:1:2"}, "ETH_TOKENS entry"),
        ({**ETHEREUM, "ETH_TOKENS": f"zec:{USDC_CONTRACT}:6"}, "ETH_TOKENS symbol 'ZEC' is reserved"),
        ({**ETHEREUM, "ETH_TOKENS": f"ETH:{USDC_CONTRACT}:6"}, "ETH_TOKENS symbol 'ETH' is reserved"),
        ({**ETHEREUM, "ETH_TOKENS": f"USD:{USDC_CONTRACT}:6"}, "ETH_TOKENS symbol 'USD' is reserved"),
        ({**ETHEREUM, "ETH_TOKENS": f"USDC:{USDC_CONTRACT}:6,usdc:{SERVICE_ADDRESS}:6"},
         "'USDC' is reserved, repeated"),
        ({**ETHEREUM, "ETH_TOKENS": f"{'T' * 17}:{USDC_CONTRACT}:6"}, "or too long"),
        ({**ETHEREUM, "ETH_TOKENS": "USDC:0xnope:6"}, "ETH_TOKENS USDC contract '0xnope' is not an Ethereum address"),
        ({**ETHEREUM, "ETH_TOKENS": f"USDC:{USDC_CONTRACT}:6:0.0000001"}, "ETH_TOKENS USDC max_amount USDC has 6"),
        ({"STRIPE_SECRET_KEY": "sk_test_x"}, "STRIPE_WEBHOOK_SECRET must be set with STRIPE_SECRET_KEY"),
        ({**CARD, "CARD_MIN_PURCHASE": "5", "CARD_MAX_PURCHASE": "4.99"},
         "CARD_MIN_PURCHASE must not exceed CARD_MAX_PURCHASE"),
        ({**CARD, "CARD_MIN_PURCHASE": "0.001"}, "CARD_MIN_PURCHASE USD has 2 decimals"),
        ({**CARD, "CARD_MAX_PURCHASE": "0"}, "CARD_MAX_PURCHASE must be greater than zero"),
        ({**CARD, "STRIPE_TIMEOUT_SECONDS": "0"}, "STRIPE_TIMEOUT_SECONDS must be a whole number ≥ 1"),
        ({**CARD, "STRIPE_WEBHOOK_TOLERANCE_SECONDS": "0"}, "STRIPE_WEBHOOK_TOLERANCE_SECONDS must be a whole number"),
    ],
)
def test_each_rule_refuses_naming_the_variable(env: dict[str, str], message: str) -> None:
    assert message in refusal(env)


def test_every_problem_is_named() -> None:
    message = refusal({"ZCASH_NETWORK": "moon", "ZCASH_MIN_CONFIRMATIONS": "0"})
    assert "ZCASH_NETWORK" in message and "ZCASH_MIN_CONFIRMATIONS" in message


@pytest.mark.parametrize(
    "env",
    [
        {"ADMIN_API_KEY": "sekrit-value-123"},
        {"WEBHOOK_SIGNING_KEY": "sekrit-webhook-signing-value"},
        {"ZCASH_MIN_CONFIRMATIONS": "sekrit-value-123"},  # pydantic's own messages would repeat it
        {"SCHEDULER_ENABLED": "sekrit-value-123"},
        {"ZCASH_NETWORK": "sekrit-value-123"},
        {"ETH_RPC_URL": "https://mainnet.example/v3/sekrit-value-123"},  # the rest of the group is missing
        {**ETHEREUM, "ETH_RPC_URL": "https://user:sekrit-value-123@rpc.example", "ETH_CHAIN_ID": "x"},
        {**CARD, "STRIPE_SECRET_KEY": "sk_live_sekrit-value-123", "CARD_MIN_PURCHASE": "9", "CARD_MAX_PURCHASE": "1"},
        {"STRIPE_SECRET_KEY": "sk_live_sekrit-value-123"},
        {"DATABASE_URL": "postgresql://paygo:sekrit-value-123@db/paygo", "ADMIN_API_KEY": "short"},
        {"DATABASE_READ_URL": "postgresql://paygo:sekrit-value-123@replica/paygo", "WORKERS": "none"},
        {"REDIS_URL": "redis://:sekrit-value-123@cache:6379/0", "BILLING_INTERVAL_SECONDS": "0"},
        {"ZCASH_RPC_PASSWORD": "sekrit-value-123", "ZCASH_RPC_FLAVOR": "x"},
    ],
)
def test_no_secret_in_any_error(env: dict[str, str]) -> None:
    assert "sekrit" not in refusal(env)


def test_secrets_stay_out_of_repr() -> None:
    settings = Settings.from_env({
        **ETHEREUM, "ETH_RPC_URL": "https://mainnet.example/v3/sekrit-eth", **CARD,
        "STRIPE_SECRET_KEY": "sk_live_sekrit-card", "STRIPE_WEBHOOK_SECRET": "whsec_sekrit",
        "ADMIN_API_KEY": "sekrit-admin-key-0123456789", "WEBHOOK_SIGNING_KEY": "sekrit-webhook-key-0123456789abcdef",
        "DATABASE_URL": "postgresql://paygo:sekrit@db/paygo", "REDIS_URL": "redis://:sekrit@cache:6379/0",
        "ZCASH_RPC_URL": "http://user:sekrit@zcash:8232", "ZCASH_NODE_RPC_URL": "http://user:sekrit@zebra:8232",
        "ZCASH_RPC_PASSWORD": "sekrit-zcash", "METRICS_TOKEN": "sekrit-metrics-token-0123456789",
        "DATABASE_DIRECT_URL": "postgresql://paygo:sekrit@db-direct/paygo",
        "DATABASE_READ_URL": "postgresql://paygo:sekrit@replica/paygo",
    })
    assert "sekrit" not in repr(settings) and "sekrit" not in str(settings)


def test_optional_groups_are_off_until_their_variable_is_set() -> None:
    settings = Settings.from_env({"ETH_CHAIN_ID": "not a number", "CARD_MIN_PURCHASE": "-1"})  # ignored while off
    assert settings.ethereum is None and settings.card is None
    settings = Settings.from_env({**ETHEREUM, **CARD})
    assert settings.ethereum is not None and settings.card is not None
    assert settings.ethereum.chain_id == 31337 and settings.ethereum.service_address == SERVICE_ADDRESS
    assert (settings.ethereum.min_confirmations, settings.ethereum.require_finalized) == (12, False)
    assert settings.ethereum.rpc_timeout_seconds == 10
    assert settings.ethereum.tokens == () and settings.ethereum.max_amount_units == {"ETH": 100 * 10**18}
    card = settings.card
    assert (card.secret_key, card.webhook_secret) == (CARD["STRIPE_SECRET_KEY"], CARD["STRIPE_WEBHOOK_SECRET"])
    assert (card.min_purchase_units, card.max_purchase_units) == (100, 100_000)  # 1.00 and 1000.00 USD
    assert (card.api_base, card.success_url, card.cancel_url) == (None, None, None)
    assert (card.timeout_seconds, card.webhook_tolerance_seconds) == (5, 300)


def test_eth_tokens_grammar() -> None:
    dai = "0x6B175474E89094C44Da98b954EedeAC495271d0F"
    ethereum = Settings.from_env({
        **ETHEREUM, "ETH_TOKENS": f" usdc:{USDC_CONTRACT.lower()}:6:5000 , ,DAI : {dai} : 18 ",
        "ETH_MAX_PERMISSION_AMOUNT": "2.5",
    }).ethereum
    assert ethereum is not None
    assert ethereum.tokens == (Token("USDC", USDC_CONTRACT, 6), Token("DAI", dai, 18))
    assert ethereum.max_amount_units == {"ETH": 25 * 10**17, "USDC": 5000 * 10**6, "DAI": 1_000_000 * 10**18}


def test_hours_percent_and_lag() -> None:
    settings = Settings.from_env({"REMINDER_LEAD_HOURS": "24, 168,24,1", "LOW_BALANCE_REMINDER_PERCENT": "0",
                                  "SCHEDULER_MAX_LAG_SECONDS": "0", "VENDOR_KEY_ROTATION_OVERLAP_SECONDS": "0"})
    assert settings.notifications.reminder_lead_hours == (168, 24, 1)
    assert settings.notifications.low_balance_reminder_percent == 0
    assert settings.operations.scheduler_max_lag_seconds is None  # 0: three billing intervals, as unset
    assert settings.operations.vendor_key_rotation_overlap_seconds == 0
    assert Settings.from_env({"SCHEDULER_MAX_LAG_SECONDS": "600"}).operations.scheduler_max_lag_seconds == 600


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(ValueError):
        settings.billing_interval_seconds = 1  # type: ignore[misc]
    with pytest.raises(ValueError):
        settings.zcash.min_confirmations = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "pair"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:9000", ("::1", 9000)), (":8080", ("0.0.0.0", 8080))],
)
def test_parse_listen(value: str, pair: tuple[str, int]) -> None:
    assert parse_listen(value) == pair


@pytest.mark.parametrize("value", ["8080", "host:", "host:port", "host:65536", "host:²"])
def test_parse_listen_refuses(value: str) -> None:
    with pytest.raises(SettingsError, match="listen address must be HOST:PORT"):
        parse_listen(value)
