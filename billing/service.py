"""The billing service: what the gateway (and the CLI) asks of billing, over a pool and the funding sources.

Each method holds a pooled connection only for its database work, never across a call to a node or processor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from billing.assets import Asset, AssetRegistry
from billing.cache import PermissionCache
from billing.direct_charges import DirectCharge, allocate_direct_charge_addresses, direct_charge_of_session
from billing.errors import InvalidRequest, NotFound, ServiceUnavailable
from billing.money import parse_amount
from billing.permissions import (
    NewPermission,
    PaymentRow,
    Permission,
    PermissionStatus,
    apply_payments,
    get_permission,
    insert_permission,
    latest_permission_for_wallet,
    payments_of,
    TokenHolder,
    holder_of_token,
)
from billing.reminders import (
    OpenSession,
    ReminderPolicy,
    SentReminder,
    open_sessions_of,
    reminders_of,
    renewal_due,
)
from billing.secrets import new_permission_token, secret_hash
from billing.sessions import OpenedSession, Session, end_session, open_session, session_by_code
from billing.vendors import NewVendor, create_vendor, vendor_for_key
from billing.webhooks import permission_secret, validate_notify_url
from chains.base import FundingRequest, FundingSource, PaymentTarget


OnInsert = Callable[[asyncpg.Connection, Permission], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PermissionRequest:
    """A request for a new permission, as received (amounts not parsed yet)."""

    funding_source: str
    asset: str
    user_wallet_address: str
    requested_amount: object
    rate_per_hour: object
    duration_days: object | None = None
    notify_url: str | None = None
    funding_extra: dict[str, str] = field(default_factory=dict)  # source-specific options (card success_url)


@dataclass(frozen=True, slots=True)
class CreatedPermission:
    permission: Permission
    permission_token: str  # shown once
    notify_secret: str | None = None  # shown once, when the permission has a notify_url


@dataclass(frozen=True, slots=True)
class PermissionState:
    permission: Permission
    payments: list[PaymentRow]
    now: datetime
    reminders: list[SentReminder] = field(default_factory=list)
    open_sessions: list[OpenSession] = field(default_factory=list)
    renewal_due: bool = False  # computed on every read from the permission, `now` and the reminder policy


class BillingService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        sources: dict[str, FundingSource],
        assets: AssetRegistry,
        cache: PermissionCache,
        *,
        default_duration_days: int,
        max_duration_days: int,
        max_amount_units: dict[str, int],
        min_confirmations: dict[str, int],
        webhook_signing_key: str | None = None,
        payment_window_hours: int = 24,
        reminder_policy: ReminderPolicy = ReminderPolicy(),
    ) -> None:
        self.pool = pool
        self.sources = sources
        self.assets = assets
        self.cache = cache
        self.default_duration_days = default_duration_days
        self.max_duration_days = max_duration_days
        self.max_amount_units = max_amount_units
        self.min_confirmations = min_confirmations
        self.webhook_signing_key = webhook_signing_key
        self.payment_window_hours = payment_window_hours
        self.reminder_policy = reminder_policy

    def source(self, name: str) -> FundingSource:
        source = self.sources.get(name)
        if source is None:
            raise ServiceUnavailable(f"{name} funding is not configured on this gateway",
                                     code=f"{name}_not_configured", retry_after=3600)
        return source

    def asset_for(self, funding_source: str, code: str) -> Asset:
        asset = self.assets.get(code)
        if asset is None or asset.funding_source != funding_source:
            accepted = ", ".join(a.code for a in self.assets.for_funding_source(funding_source))
            raise InvalidRequest(f"asset {code!r} is not accepted here (accepted: {accepted})", code="invalid_asset")
        return asset

    def _duration(self, raw: object | None) -> int:
        if raw is None:
            return self.default_duration_days
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= self.max_duration_days:
            raise InvalidRequest(f"duration_days must be a whole number from 1 to {self.max_duration_days}",
                                 code="invalid_duration")
        return raw

    async def create_permission(self, request: PermissionRequest, *, on_insert: OnInsert | None = None
                                ) -> CreatedPermission:
        """Create a permission. `on_insert`, if given, runs in the transaction that inserts it (to record what
        authorized it, such as a wallet's signed EIP-712 authorization); an error there creates nothing."""
        source = self.source(request.funding_source)
        asset = self.asset_for(request.funding_source, request.asset)
        wallet = source.validate_address(request.user_wallet_address)
        maximum = self.max_amount_units.get(asset.code)
        amount = parse_amount(request.requested_amount, asset, "requested_amount", maximum)
        rate = parse_amount(request.rate_per_hour, asset, "rate_per_hour", maximum)
        duration = self._duration(request.duration_days)
        notify_url = self._notify_url(request.notify_url)
        permission_id = uuid4()
        instructions = await source.prepare_funding(
            FundingRequest(reference=str(permission_id), asset=asset.code, amount_units=amount, payer=wallet,
                           extra=request.funding_extra)
        )
        token = new_permission_token()
        async with self.pool.acquire() as conn, conn.transaction():
            permission = await insert_permission(conn, NewPermission(
                id=permission_id, funding_source=source.name, asset=asset.code, asset_decimals=asset.decimals,
                user_wallet_address=wallet, token_hash=secret_hash(token), approved_amount=amount,
                rate_per_hour=rate, duration_days=duration, payment_address=instructions.payment_address,
                payment_locator=instructions.locator, checkout_url=instructions.checkout_url,
                notify_url=notify_url, payment_window_hours=self.payment_window_hours,
            ))
            if on_insert is not None:
                await on_insert(conn, permission)
        notify_secret = (permission_secret(self.webhook_signing_key, permission_id)
                         if notify_url is not None and self.webhook_signing_key is not None else None)
        return CreatedPermission(permission, token, notify_secret)

    def _notify_url(self, raw: str | None) -> str | None:
        if raw is None:
            return None
        if self.webhook_signing_key is None:
            raise InvalidRequest("this gateway sends no webhooks (WEBHOOK_SIGNING_KEY is not set): omit notify_url",
                                 code="webhooks_not_configured")
        return validate_notify_url(raw)

    async def holder_of_token(self, token: str) -> TokenHolder | None:
        async with self.pool.acquire() as conn:
            return await holder_of_token(conn, secret_hash(token))

    async def permission_state(self, permission_id: UUID) -> PermissionState:
        cached = await self.cache.get(permission_id)
        if cached is not None:
            return self._with_renewal_due(_state_from_cache(cached))
        async with self.pool.acquire() as conn:
            permission = await get_permission(conn, permission_id)
            if permission is None:
                raise NotFound("permission not found", code="permission_not_found")
            state = PermissionState(permission, await payments_of(conn, permission_id),
                                    await conn.fetchval("SELECT now()"), await reminders_of(conn, permission_id),
                                    await open_sessions_of(conn, permission_id))
        await self.cache.put(permission_id, _state_to_cache(state))
        return self._with_renewal_due(state)

    def _with_renewal_due(self, state: PermissionState) -> PermissionState:
        return replace(state, renewal_due=renewal_due(state.permission, state.now, self.reminder_policy))

    async def wallet_permission(self, funding_source: str, address: str) -> Permission | None:
        wallet = self.source(funding_source).validate_address(address)
        async with self.pool.acquire() as conn:
            return await latest_permission_for_wallet(conn, funding_source, wallet)

    async def verify_permission(self, permission_id: UUID, hints: tuple[str, ...] = ()) -> PermissionState:
        """Ask the funding source what reached the permission's address and credit what is confirmed.

        `hints` are transaction ids the user says paid it (Ethereum verify takes tx hashes)."""
        async with self.pool.acquire() as conn:
            permission = await get_permission(conn, permission_id)
        if permission is None:
            raise NotFound("permission not found", code="permission_not_found")
        if permission.payment_address is not None or permission.payment_locator is not None:
            source = self.source(permission.funding_source)
            target = PaymentTarget(key=str(permission.id), asset=permission.asset,
                                   payment_address=permission.payment_address,
                                   locator=permission.payment_locator or "", payer=permission.user_wallet_address,
                                   hints=hints)
            seen = (await source.find_payments([target])).get(target.key, [])
            async with self.pool.acquire() as conn:
                await apply_payments(conn, permission.id, seen,
                                     min_confirmations=self.min_confirmations.get(permission.funding_source, 1))
            await self.cache.invalidate(permission.id)
        return await self.permission_state(permission_id)

    async def payments_claimed_elsewhere(self, funding_source: str, txids: Sequence[str],
                                         permission_id: UUID) -> list[str]:
        """The txids among `txids` that already fund another permission (one payment funds one permission)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT txid FROM payments WHERE funding_source = $1 AND txid = ANY($2::text[])"
                " AND permission_id IS DISTINCT FROM $3 ORDER BY txid",
                funding_source, list(txids), permission_id,
            )
        return [row["txid"] for row in rows]

    async def open_session(self, permission_id: UUID, user_wallet_address: str, vendor_id: UUID) -> OpenedSession:
        async with self.pool.acquire() as conn:
            opened = await open_session(conn, permission_id, user_wallet_address=user_wallet_address,
                                        vendor_id=vendor_id)
        await self.cache.invalidate(permission_id)  # the view projects its run-out from the open sessions
        return opened

    async def end_session(self, session_code: str) -> tuple[Session, Permission]:
        async with self.pool.acquire() as conn:
            session, permission = await end_session(conn, session_code)
        await self.cache.invalidate(permission.id)
        return session, permission

    async def direct_charge_of_session(self, session_id: UUID) -> DirectCharge | None:
        """The session's direct charge, given its payment address first if the scheduler has not yet."""
        async with self.pool.acquire() as conn:
            charge = await direct_charge_of_session(conn, session_id)
        if charge is not None and charge.payment_address is None and charge.status != "paid":
            await allocate_direct_charge_addresses(self.pool, self.sources, only=charge.id)
            async with self.pool.acquire() as conn:
                charge = await direct_charge_of_session(conn, session_id)
        return charge

    async def session_state(self, session_code: str) -> tuple[Session, Permission, datetime]:
        async with self.pool.acquire() as conn:
            session = await session_by_code(conn, session_code)
            if session is None:
                raise NotFound("no session with this session_code", code="session_not_found")
            permission = await get_permission(conn, session.permission_id)
            now = await conn.fetchval("SELECT now()")
        assert permission is not None
        return session, permission, now

    async def create_vendor(self, name: str, direct_charge_grace_seconds: int = 0) -> NewVendor:
        async with self.pool.acquire() as conn:
            return await create_vendor(conn, name, direct_charge_grace_seconds)

    async def vendor_for_key(self, api_key: str) -> UUID | None:
        async with self.pool.acquire() as conn:
            return await vendor_for_key(conn, api_key)


def _state_to_cache(state: PermissionState) -> dict[str, Any]:
    return {
        "permission": asdict(state.permission),
        "payments": [asdict(p) for p in state.payments],
        "reminders": [asdict(r) for r in state.reminders],
        "open_sessions": [asdict(s) for s in state.open_sessions],
    }


def _optional_datetime(raw: str | None) -> datetime | None:
    return datetime.fromisoformat(raw) if raw else None


def _state_from_cache(data: dict[str, Any]) -> PermissionState:
    raw = data["permission"]
    permission = Permission(**{
        **raw,
        "id": UUID(raw["id"]),
        "status": PermissionStatus(raw["status"]),
        "created_at": datetime.fromisoformat(raw["created_at"]),
        "activated_at": datetime.fromisoformat(raw["activated_at"]) if raw["activated_at"] else None,
        "expires_at": datetime.fromisoformat(raw["expires_at"]),
        "payment_due_at": _optional_datetime(raw.get("payment_due_at")),
    })
    payments = [PaymentRow(**{**p, "first_seen_at": datetime.fromisoformat(p["first_seen_at"])})
                for p in data["payments"]]
    reminders = [SentReminder(**{**r, "queued_at": datetime.fromisoformat(r["queued_at"]),
                                 "delivered_at": _optional_datetime(r["delivered_at"])})
                 for r in data.get("reminders", [])]
    open_sessions = [OpenSession(**{**s, "started_at": datetime.fromisoformat(s["started_at"])})
                     for s in data.get("open_sessions", [])]
    return PermissionState(permission, payments, datetime.now(UTC), reminders, open_sessions)
