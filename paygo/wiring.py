"""The one place that builds everything from settings: pools (the primary's, the read replica's), migrations (over a
direct connection), Redis, funding sources, the services.

The HTTP gateway (gateway.app.create_app), the scheduler process (`paygo scheduler`) and the CLI each open a
`Runtime` with `open_runtime(settings)`; nothing else reads settings to construct a dependency. Each funding
source's optional abilities are found here, once (billing.sources.FundingSources).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis

from billing.breaker import CircuitBreaker
from billing.db import connect, create_pool
from billing.outbound import WebhookSender
from billing.outbox import RetryPolicy
from billing.permission_service import PermissionPolicy
from billing.reminders import ReminderPolicy
from billing.replica import CONNECT_TIMEOUT_SECONDS as REPLICA_CONNECT_TIMEOUT_SECONDS
from billing.replica import ReadReplica
from billing.retention import RetentionPolicy
from billing.schema import migrate
from billing.services import ServicePolicies, Services, build_services
from billing.sources import FundingSources
from chains.card import CardFundingSource
from chains.ethereum import EthereumFundingSource
from chains.rates import SpotRateProvider
from chains.zcash import ZcashFundingSource
from kernel.assets import ETH, USD, ZEC, Asset, AssetRegistry
from kernel.funding import FundingSource
from paygo.settings import Settings
from scheduler.runner import Intervals

log = logging.getLogger("paygo")

REDIS_TIMEOUT_SECONDS = 1.0


@dataclass
class Runtime:
    settings: Settings
    redis: aioredis.Redis | None
    redis_breaker: CircuitBreaker  # shared by every use of Redis in this process
    services: Services


def build_sources(settings: Settings) -> dict[str, FundingSource]:
    zcash = settings.zcash
    sources: dict[str, FundingSource] = {}
    if zcash.rpc_url:
        sources["zcash"] = ZcashFundingSource(
            wallet_url=zcash.rpc_url, node_url=zcash.node_rpc_url, user=zcash.rpc_user, password=zcash.rpc_password,
            network=zcash.network, min_confirmations=zcash.min_confirmations, account=zcash.service_wallet,
            personality=zcash.rpc_flavor, timeout=float(zcash.rpc_timeout_seconds),
            transparent_receivers=zcash.transparent_receivers,
        )
    if settings.ethereum is not None:
        ethereum = settings.ethereum
        sources["ethereum"] = EthereumFundingSource(
            rpc_url=ethereum.rpc_url, chain_id=ethereum.chain_id, service_address=ethereum.service_address,
            min_confirmations=ethereum.min_confirmations, require_finalized=ethereum.require_finalized,
            tokens=ethereum.tokens, timeout=float(ethereum.rpc_timeout_seconds),
        )
    if settings.card is not None:
        card = settings.card
        sources["card"] = CardFundingSource(
            card.secret_key, webhook_secret=card.webhook_secret,
            webhook_tolerance_seconds=card.webhook_tolerance_seconds, api_base=card.api_base,
            timeout_seconds=float(card.timeout_seconds), min_amount_units=card.min_purchase_units,
            max_amount_units=card.max_purchase_units, success_url=card.success_url, cancel_url=card.cancel_url,
            redirect_hosts=card.redirect_hosts,
        )
    return sources


def assets(settings: Settings) -> AssetRegistry:
    """ZEC, and ETH with the configured ERC-20 tokens and USD where their sources are configured."""
    ethereum: list[Asset] = [ETH, *(token.asset() for token in settings.ethereum.tokens)] if settings.ethereum else []
    return AssetRegistry([ZEC, *ethereum, *([USD] if settings.card else [])])


def intervals(settings: Settings) -> Intervals:
    """How often each scheduler job runs."""
    return Intervals(billing_tick=settings.billing_interval_seconds,
                     expiry=settings.scheduler.expiry_interval_seconds,
                     watcher=settings.notifications.watcher_interval_seconds,
                     hard_stop=settings.scheduler.hard_stop_interval_seconds,
                     prune=settings.retention.prune_interval_seconds)


def policies(settings: Settings) -> ServicePolicies:
    notifications = settings.notifications
    return ServicePolicies(
        permissions=PermissionPolicy(
            default_duration_days=settings.default_permission_duration_days,
            max_duration_days=settings.max_permission_duration_days,
            max_amount_units={"ZEC": settings.zcash.max_amount_units,
                              **(settings.ethereum.max_amount_units if settings.ethereum else {}),
                              **({"USD": settings.card.max_purchase_units} if settings.card else {})},
            webhook_signing_key=notifications.webhook_signing_key,
            allow_private_webhook_targets=notifications.allow_private_webhook_targets,
            payment_window_hours=notifications.payment_window_hours,
            reminder_policy=ReminderPolicy(notifications.reminder_lead_hours,
                                           notifications.low_balance_reminder_percent),
        ),
        retry=RetryPolicy(notifications.outbox_max_attempts, notifications.outbox_backoff_base_seconds,
                          notifications.outbox_backoff_cap_seconds),
        webhook_timeout_seconds=notifications.webhook_timeout_seconds,
        vendor_key_rotation_overlap_seconds=settings.operations.vendor_key_rotation_overlap_seconds,
        retention=RetentionPolicy(settings.retention.outbox_retention_days,
                                  settings.retention.unpaid_permission_grace_days),
        rate_lock_seconds=settings.pricing.rate_lock_seconds,
        tick_connections=settings.scheduler.billing_tick_connections,
    )


def rate_provider(settings: Settings) -> SpotRateProvider | None:
    """The configured rate provider; None (no fiat pricing) without RATE_PROVIDER_URL."""
    pricing = settings.pricing
    if pricing.rate_provider_url is None:
        return None
    return SpotRateProvider(pricing.rate_provider_url, max_age_seconds=pricing.rate_max_age_seconds,
                            timeout_seconds=float(pricing.rate_timeout_seconds))


@asynccontextmanager
async def open_runtime(settings: Settings, *, apply_migrations: bool = True,
                       with_sources: bool = True) -> AsyncIterator[Runtime]:
    """Everything the settings describe, closed on exit. `with_sources=False` (CLI administration) opens no
    funding source. A chain node that serves another network than the settings name stops the start
    (NetworkMismatch)."""
    if not settings.database_url:
        raise ValueError("DATABASE_URL must be resolved before the runtime opens (see paygo.embedded)")
    if apply_migrations:
        await apply_pending_migrations(settings)
    database = settings.database
    pool = await create_pool(settings.database_url, max_size=database.pool_size,
                             statement_cache_size=database.statement_cache_size)
    replica = await _read_replica(settings)
    redis_client = (
        aioredis.from_url(settings.redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                          socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
        if settings.redis_url else None
    )
    perimeter = settings.perimeter
    breaker = CircuitBreaker("Redis", failures=perimeter.redis_breaker_failures,
                             cooldown_seconds=perimeter.redis_breaker_cooldown_seconds)
    sources = FundingSources(build_sources(settings) if with_sources else {}, assets(settings))
    sender = WebhookSender(allow_private=settings.notifications.allow_private_webhook_targets)
    rates = rate_provider(settings) if with_sources else None
    try:
        await sources.check_networks()
        services = build_services(pool, redis_client, sources, sender, policies(settings), breaker, rates,
                                  replica=replica)
        yield Runtime(settings, redis_client, breaker, services)
    finally:
        await sender.close()
        if rates is not None:
            await rates.close()
        await sources.close()
        if redis_client is not None:
            await redis_client.aclose()
        if replica is not None:
            await replica.pool.close()
        await pool.close()


async def apply_pending_migrations(settings: Settings) -> list[str]:
    """Apply what is pending over a direct connection (DATABASE_DIRECT_URL, else DATABASE_URL): the run holds a
    session-level advisory lock, which a transaction-pooling PgBouncer cannot carry."""
    conn = await connect(settings.direct_database_url or "")
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    return applied


async def _read_replica(settings: Settings) -> ReadReplica | None:
    """The replica's pool, connected on first use: a replica that is down at start-up only sends reads to the
    primary until it answers."""
    database = settings.database
    if not database.read_url:
        return None
    pool = await create_pool(database.read_url, min_size=0, max_size=database.pool_size,
                             statement_cache_size=database.statement_cache_size,
                             connect_timeout=REPLICA_CONNECT_TIMEOUT_SECONDS)
    return ReadReplica(pool)
