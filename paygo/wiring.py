"""The one place that builds everything from settings: pool, migrations, Redis, funding sources, billing.

Both the HTTP gateway and the scheduler process open a `Runtime` with `open_runtime(settings)`; nothing else
reads settings to construct a dependency.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from billing.assets import ETH, USD, ZEC, Asset, AssetRegistry
from billing.cache import PermissionCache
from billing.db import create_pool
from billing.reminders import ReminderPolicy
from billing.schema import migrate
from billing.service import BillingService
from chains.base import FundingSource
from chains.card import CardFundingSource
from chains.ethereum import EthereumFundingSource
from chains.zcash import ZcashFundingSource
from paygo.settings import Settings

log = logging.getLogger("paygo")

REDIS_TIMEOUT_SECONDS = 1.0


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis | None
    sources: dict[str, FundingSource]
    billing: BillingService


def build_sources(settings: Settings) -> dict[str, FundingSource]:
    zcash = settings.zcash
    sources: dict[str, FundingSource] = {}
    if zcash.rpc_url:
        sources["zcash"] = ZcashFundingSource(
            wallet_url=zcash.rpc_url, node_url=zcash.node_rpc_url, user=zcash.rpc_user, password=zcash.rpc_password,
            network=zcash.network, min_confirmations=zcash.min_confirmations, account=zcash.service_wallet,
            personality=zcash.rpc_flavor, timeout=float(zcash.rpc_timeout_seconds),
        )
    if settings.ethereum is not None:
        ethereum = settings.ethereum
        sources["ethereum"] = EthereumFundingSource(
            rpc_url=ethereum.rpc_url, chain_id=ethereum.chain_id, service_address=ethereum.service_address,
            min_confirmations=ethereum.min_confirmations, require_finalized=ethereum.require_finalized,
            tokens=ethereum.tokens, timeout=float(ethereum.rpc_timeout_seconds),
            discovery_blocks=ethereum.discovery_blocks,
        )
    if settings.card is not None:
        card = settings.card
        sources["card"] = CardFundingSource(
            card.secret_key, api_base=card.api_base, timeout_seconds=float(card.timeout_seconds),
            min_amount_units=card.min_purchase_units, max_amount_units=card.max_purchase_units,
            success_url=card.success_url, cancel_url=card.cancel_url,
        )
    return sources


def ethereum_assets(settings: Settings) -> list[Asset]:
    """ETH and the configured ERC-20 tokens, when Ethereum funding is configured."""
    if settings.ethereum is None:
        return []
    return [ETH, *(token.asset() for token in settings.ethereum.tokens)]


@asynccontextmanager
async def open_runtime(settings: Settings, *, apply_migrations: bool = True) -> AsyncIterator[Runtime]:
    if not settings.database_url:
        raise ValueError("DATABASE_URL must be resolved before the runtime opens (see paygo.embedded)")
    pool = await create_pool(settings.database_url)
    redis_client = (
        aioredis.from_url(settings.redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                          socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
        if settings.redis_url else None
    )
    sources = build_sources(settings)
    try:
        if apply_migrations:
            async with pool.acquire() as conn:
                applied = await migrate(conn)
            if applied:
                log.info("applied migrations: %s", ", ".join(applied))
        notifications = settings.notifications
        billing = BillingService(
            pool, sources, AssetRegistry([ZEC, *ethereum_assets(settings),
                                          *([USD] if settings.card else [])]), PermissionCache(redis_client),
            default_duration_days=settings.default_permission_duration_days,
            max_duration_days=settings.max_permission_duration_days,
            max_amount_units={"ZEC": settings.zcash.max_amount_units,
                              **(settings.ethereum.max_amount_units if settings.ethereum else {}),
                              **({"USD": settings.card.max_purchase_units} if settings.card else {})},
            min_confirmations={"zcash": settings.zcash.min_confirmations,
                               **({"ethereum": settings.ethereum.min_confirmations} if settings.ethereum else {}),
                               **({"card": CardFundingSource.min_confirmations} if settings.card else {})},
            webhook_signing_key=notifications.webhook_signing_key,
            payment_window_hours=notifications.payment_window_hours,
            reminder_policy=ReminderPolicy(notifications.reminder_lead_hours,
                                           notifications.low_balance_reminder_percent),
        )
        yield Runtime(settings, pool, redis_client, sources, billing)
    finally:
        for source in sources.values():
            await source.close()
        if redis_client is not None:
            await redis_client.aclose()
        await pool.close()
