"""The one door into billing: every use case the gateway, the scheduler and the CLI may ask for, built together
over one database (with its post-commit hook), the configured funding sources, and the rate provider (fiat-priced
permissions)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from billing.breaker import CircuitBreaker
from billing.cache import PermissionCache
from billing.card_service import CardService
from billing.charging import DEFAULT_TICK_CONNECTIONS
from billing.checkout import CheckoutService
from billing.dashboards import DashboardService
from billing.events import LiveNotices
from billing.health_service import HealthService
from billing.idempotency import IdempotencyService
from billing.jobs import JobService
from billing.outbound import WebhookSender
from billing.outbox import RetryPolicy
from billing.permission_service import PermissionPolicy, PermissionService
from billing.pricing import PricingService
from billing.refund_service import RefundService
from billing.replica import ReadReplica
from billing.report_service import ReportService
from billing.retention import RetentionPolicy
from billing.session_service import SessionService
from billing.sources import FundingSources
from billing.unit_of_work import AfterCommit, Database
from billing.vendor_service import VendorService
from kernel.rates import RateProvider


@dataclass(frozen=True)
class ServicePolicies:
    """What the services are configured with (the wiring fills it from settings)."""

    permissions: PermissionPolicy
    retry: RetryPolicy
    webhook_timeout_seconds: int
    vendor_key_rotation_overlap_seconds: int
    retention: RetentionPolicy
    rate_lock_seconds: int = 120
    tick_connections: int = DEFAULT_TICK_CONNECTIONS


@dataclass(frozen=True)
class Services:
    database: Database
    sources: FundingSources
    permissions: PermissionService
    sessions: SessionService
    vendors: VendorService
    card: CardService
    reports: ReportService
    health: HealthService
    jobs: JobService
    idempotency: IdempotencyService
    checkout: CheckoutService
    dashboards: DashboardService
    refunds: RefundService
    pricing: PricingService


def build_services(pool: asyncpg.Pool, redis: aioredis.Redis | None, sources: FundingSources,
                   sender: WebhookSender, policies: ServicePolicies, redis_breaker: CircuitBreaker,
                   rates: RateProvider | None = None, replica: ReadReplica | None = None) -> Services:
    """Every service over one database whose post-commit hook drops cached permissions and wakes live streams.
    Every use of Redis goes through `redis_breaker`. `rates` prices permissions asked for in a fiat currency (None:
    only amounts in the asset itself); the reads that may lag go to `replica` when there is one."""
    cache = PermissionCache(redis, redis_breaker)
    db = Database(pool, AfterCommit([cache.on_commit, LiveNotices(redis, redis_breaker).on_commit]), replica)
    signing_key = policies.permissions.webhook_signing_key
    pricing = PricingService(db, sources, rates, policies.rate_lock_seconds)
    permissions = PermissionService(db, sources, cache, policies.permissions, pricing)
    refunds = RefundService(db, sources, permissions)
    return Services(
        database=db,
        sources=sources,
        permissions=permissions,
        sessions=SessionService(db, sources),
        vendors=VendorService(db, webhook_signing_key=signing_key,
                              default_rotation_overlap_seconds=policies.vendor_key_rotation_overlap_seconds,
                              allow_private_webhook_targets=policies.permissions.allow_private_webhook_targets),
        card=CardService(db, sources),
        reports=ReportService(db),
        health=HealthService(db, sources, redis, redis_breaker),
        jobs=JobService(db, sources, sender, refunds=refunds, pricing=pricing,
                        reminder_policy=policies.permissions.reminder_policy,
                        retry_policy=policies.retry, webhook_signing_key=signing_key,
                        webhook_timeout_seconds=policies.webhook_timeout_seconds, retention=policies.retention,
                        tick_connections=policies.tick_connections),
        idempotency=IdempotencyService(db),
        checkout=CheckoutService(db, sources),
        dashboards=DashboardService(db, permissions),
        refunds=refunds,
        pricing=pricing,
    )
